"""What every example test uses: run a script as a user would, and read what it wrote."""

import atexit
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

# Offline, quiet and one thread per process: two test workers share the machine's two cores.
TEST_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "WANDB_MODE": "offline",
    "PYTHONWARNINGS": "ignore::UserWarning",
    # As on CI machines: transformers then also hands its log records to the root logger (our scripts stop that,
    # so each line appears once; tests count log lines).
    "CI": "true",
}

# Hugging Face homes (datasets cache, hub cache, tokens) under one folder per test process, removed when it ends:
# run_example gives every run a fresh one, and TEST_ENV (for tests that start processes themselves) the process's
# own. A test never reads what another test cached, and nothing touches the user's ~/.cache/huggingface.
_HF_HOMES = tempfile.mkdtemp(prefix="seq2seq-tests-hf-home-")
atexit.register(shutil.rmtree, _HF_HOMES, ignore_errors=True)
TEST_ENV["HF_HOME"] = os.path.join(_HF_HOMES, "shared")
# matplotlib (training_curves.png) keeps its font cache here instead of the user's ~/.cache/matplotlib.
TEST_ENV["MPLCONFIGDIR"] = os.path.join(_HF_HOMES, "matplotlib")


def fresh_hf_home() -> str:
    """A new, empty HF_HOME folder for one run."""
    return tempfile.mkdtemp(dir=_HF_HOMES)


def run_example(
    args: list[str],
    *,
    launcher: list | None = None,
    env: dict | None = None,
    expect_success: bool = True,
    timeout: int = 900,
    cwd=REPO_ROOT,
) -> subprocess.CompletedProcess:
    """Run `python <args...>` (or `<launcher...> <args...>`, e.g. torchrun) from `cwd` (default: the repo root),
    offline, with a fresh HF_HOME (unless `env` sets one); on unexpected failure, show the end of stderr."""
    command = [str(part) for part in (launcher or [sys.executable])] + [str(arg) for arg in args]
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **TEST_ENV, "HF_HOME": fresh_hf_home(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if expect_success:
        assert result.returncode == 0, (
            f"{' '.join(command)} exited with {result.returncode}\n--- stderr (end) ---\n{result.stderr[-2000:]}"
        )
    return result


def run_log_lines(args: list) -> tuple[str, list[str]]:
    """Run `python <args...>` as run_example does and return its stdout + stderr and their non-blank lines, counted
    as `wc -l` counts a log file: read as bytes, since universal newlines would make each progress-bar redraw
    (a carriage return) a line of its own."""
    result = subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, **TEST_ENV, "HF_HOME": fresh_hf_home()},
        capture_output=True,
        check=True,
    )
    log = (result.stdout + result.stderr).decode()
    return log, [line for line in log.split("\n") if line.strip()]


def assert_usage_error(result: subprocess.CompletedProcess, expected_text: str, output_dir=None) -> str:
    """A bad-input run: exit code 2, no traceback, the last stderr line carries `error: ` and `expected_text`,
    and `output_dir` (when given) was not written to. Returns that last line."""
    assert result.returncode == 2, f"exit code {result.returncode}\n{result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last_line = result.stderr.strip().splitlines()[-1]
    # Ours start with "error: "; argparse's start with the script name.
    assert "error: " in last_line and expected_text in last_line, last_line
    if output_dir is not None:
        assert not os.path.exists(output_dir) or not os.listdir(output_dir), "the output dir was written to"
    return last_line


def read_json(path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_lines(path) -> list[str]:
    """Lines of a newline-terminated text file (an empty last prediction is kept)."""
    with open(path, encoding="utf-8") as handle:
        return handle.read().splitlines()


def train_losses(output_dir) -> list[float]:
    """The logged training losses, in step order, from trainer_state.json."""
    state = read_json(Path(output_dir) / "trainer_state.json")
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def expected_legacy_rouge(predictions: list[str], references: list[str]) -> dict:
    """ROUGE as the legacy toolkit reports it, computed with rouge_score directly: stemmer, one sentence per
    line (NLTK) for rougeLsum, bootstrap mid with numpy seed 0, x100, 4 places."""
    import nltk
    import numpy as np
    from rouge_score import rouge_scorer, scoring

    def split(text: str) -> str:
        return "\n".join(s for piece in text.split("\n") if piece.strip() for s in nltk.sent_tokenize(piece))

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    aggregator = scoring.BootstrapAggregator()
    for prediction, reference in zip(predictions, references, strict=True):
        aggregator.add_scores(scorer.score(split(reference), split(prediction)))
    np.random.seed(0)
    return {key: round(value.mid.fmeasure * 100, 4) for key, value in aggregator.aggregate().items()}


LEGACY_DIR = str(REPO_ROOT / "examples" / "legacy" / "seq2seq")


def import_legacy(name: str):
    """Import examples/legacy/seq2seq/<name>.py in this process. The toolkit's `import utils` means its own
    utils.py, not the repository's utils/ folder: that folder goes first on sys.path for the import, and
    whatever `utils` meant before is put back afterwards, so other tests are not affected."""
    module = sys.modules.get(name)
    if module is not None and str(getattr(module, "__file__", "")).startswith(LEGACY_DIR):
        return module
    saved_utils = sys.modules.pop("utils", None)
    sys.path.insert(0, LEGACY_DIR)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(LEGACY_DIR)
        sys.modules.pop("utils", None)
        if saved_utils is not None:
            sys.modules["utils"] = saved_utils
