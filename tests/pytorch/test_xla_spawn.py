"""xla_spawn.py up to and including its call to torch_xla's spawner (no TPU or torch_xla on our machines).

The last test puts a stand-in `torch_xla` package on PYTHONPATH whose `spawn` records its arguments and runs
the entry point once in-process: that checks the wiring (script import, `sys.argv`, `_mp_fn`, `--num_cores`)
with the real training script, not TPU execution.
"""

import json

import pytest

from helpers import FIXTURES, read_json, read_lines, run_example

LAUNCHER = "examples/pytorch/xla_spawn.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
WMT16 = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"

STAND_IN_SPAWN = """
import json, os


def spawn(fn, args=(), nprocs=None, **kwargs):
    with open(os.environ["SPAWN_RECORD"], "w") as handle:
        json.dump({"nprocs": nprocs, "args": list(args), "fn": fn.__name__}, handle)
    fn(0, *args)
"""


def predict_args(tiny_models, output_dir, task: str) -> list:
    if task == "summarization":
        script = "examples/pytorch/summarization/run_summarization.py"
        data = ["--model_name_or_path", tiny_models / "t5", "--test_file", XSUM]
    else:
        script = "examples/pytorch/translation/run_translation.py"
        data = ["--model_name_or_path", tiny_models / "marian", "--test_file", WMT16]
        data += ["--source_lang", "en", "--target_lang", "ro"]
    return [script, *data, "--do_predict", "--predict_with_generate", "--max_predict_samples", 3,
            "--max_source_length", 64, "--output_dir", output_dir]  # fmt: skip


def test_without_torch_xla_it_stops_before_running_anything(tiny_models, tmp_path):
    result = run_example(
        [LAUNCHER, "--num_cores", 8, *predict_args(tiny_models, tmp_path / "out", "summarization")],
        expect_success=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: torch_xla cannot be imported")
    assert not (tmp_path / "out").exists()


def test_a_script_without_mp_fn_is_refused(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("def main():\n    pass\n")
    result = run_example([LAUNCHER, script], expect_success=False)
    assert result.returncode == 2
    assert "defines no _mp_fn(index) entry point" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("task", ["summarization", "translation"])
def test_spawn_runs_the_real_script_through_mp_fn(task, tiny_models, tmp_path):
    package = tmp_path / "stand_in" / "torch_xla" / "distributed"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "xla_multiprocessing.py").write_text(STAND_IN_SPAWN)
    record = tmp_path / "spawn.json"
    output_dir = tmp_path / "out"
    run_example(
        [LAUNCHER, "--num_cores", 8, *predict_args(tiny_models, output_dir, task)],
        # USE_TORCH_XLA=0 keeps transformers from treating the stand-in as a real torch_xla (it runs on CPU).
        env={"PYTHONPATH": str(tmp_path / "stand_in"), "SPAWN_RECORD": str(record), "USE_TORCH_XLA": "0"},
    )
    assert json.loads(record.read_text()) == {"nprocs": 8, "args": [], "fn": "_mp_fn"}
    assert read_json(output_dir / "predict_results.json")["predict_samples"] == 3  # the script's own argv arrived
    assert len(read_lines(output_dir / "generated_predictions.txt")) == 3
