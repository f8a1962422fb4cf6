"""Tests for `utils/check_copies.py`, run as `make check` runs it: a subprocess on a temporary mini-repo.

The mini-repo has one original (`run_summarization.py`: a function, a decorated dataclass, a dict) and one file of
copies (`run_translation.py`: a plain copy, a copy with renames, a copy of an assignment). Each test breaks one
thing and checks the exit status and the `path:line:` message; the fix tests check the rewritten file exactly.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "utils" / "check_copies.py"
ORIGINAL_PATH = "examples/pytorch/summarization/run_summarization.py"
COPY_PATH = "examples/pytorch/translation/run_translation.py"
PREFIX = "examples.pytorch.summarization.run_summarization"

ORIGINAL = '''"""Tiny summarization script: the originals."""

from dataclasses import dataclass, field

summarization_name_mapping = {
    "xsum": ("document", "summary"),
}


@dataclass
class SummarizationArguments:
    """Arguments for Summarization."""

    source_prefix: str = field(default="summarize: ", metadata={"help": "Prefix for summarization inputs."})


def check_output_dir(output_dir: str) -> str:
    """Return the output folder, which must be set."""
    if not output_dir:
        raise ValueError("--output_dir is required")
    return output_dir


def unrelated() -> int:
    return 1
'''

# Line numbers of the markers below: 6 (check_output_dir), 14 (the dataclass), 22 (the mapping).
COPIES = f'''"""Tiny translation script: the copies.

# Copied from inside.a.docstring.is_not_a_marker
"""

# Copied from {PREFIX}.check_output_dir
def check_output_dir(output_dir: str) -> str:
    """Return the output folder, which must be set."""
    if not output_dir:
        raise ValueError("--output_dir is required")
    return output_dir


# Copied from {PREFIX}.SummarizationArguments with Summarization->Translation, summarization->translation
@dataclass
class TranslationArguments:
    """Arguments for Translation."""

    source_prefix: str = field(default="summarize: ", metadata={{"help": "Prefix for translation inputs."}})


# Copied from {PREFIX}.summarization_name_mapping with summarization->translation
translation_name_mapping = {{
    "xsum": ("document", "summary"),
}}
'''


def run_checker(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the checker on `root` and return the finished process (stdout and stderr as text)."""
    command = [sys.executable, str(SCRIPT), "--repo_root", str(root), "--without_listed_full_copies", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def output(result: subprocess.CompletedProcess) -> str:
    """Everything the checker printed, for assertion messages."""
    return result.stdout + result.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A mini-repo with the original, its in-sync copies and the real ruff config."""
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    write(tmp_path, ORIGINAL_PATH, ORIGINAL)
    write(tmp_path, COPY_PATH, COPIES)
    return tmp_path


def write(root: Path, rel: str, text: str) -> None:
    """Write root/rel, creating its folders."""
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def edit(root: Path, rel: str, old: str, new: str) -> None:
    """Replace exactly one occurrence of `old` in root/rel."""
    text = (root / rel).read_text()
    assert text.count(old) == 1, old
    (root / rel).write_text(text.replace(old, new))


def test_in_sync_copies_pass(repo: Path):
    result = run_checker(repo)
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == "checked 3 copies in 1 files: all in sync"


def test_formatting_and_blank_lines_are_ignored(repo: Path):
    edit(
        repo,
        COPY_PATH,
        '        raise ValueError("--output_dir is required")\n',
        "\n        raise ValueError('--output_dir is required')\n\n",
    )
    result = run_checker(repo)
    assert result.returncode == 0, output(result)


def test_modified_copy_fails_with_path_and_line(repo: Path):
    edit(repo, COPY_PATH, "    return output_dir\n", "    return output_dir.rstrip('/')\n")
    result = run_checker(repo)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"{COPY_PATH}:6: copy of {PREFIX}.check_output_dir differs (first diff at line 11); run make fix-copies"
    )


def test_fix_restores_the_copy_and_leaves_the_original(repo: Path):
    edit(repo, COPY_PATH, "    return output_dir\n", "    return output_dir.rstrip('/')\n")
    edit(repo, COPY_PATH, '"""Arguments for Translation."""', '"""Arguments."""')
    result = run_checker(repo, "--fix")
    assert result.returncode == 0, output(result)
    assert f"{COPY_PATH}:6: fixed copy of {PREFIX}.check_output_dir" in result.stdout
    assert f"{COPY_PATH}:14: fixed copy of {PREFIX}.SummarizationArguments" in result.stdout
    assert "checked 3 copies in 1 files: all in sync" in result.stdout
    assert (repo / COPY_PATH).read_text() == COPIES
    assert (repo / ORIGINAL_PATH).read_text() == ORIGINAL
    assert run_checker(repo).returncode == 0


def test_fix_rewrites_the_copy_when_the_original_changes(repo: Path):
    edit(repo, ORIGINAL_PATH, "    return output_dir\n", "    return output_dir.rstrip('/')\n")
    assert run_checker(repo).returncode == 1
    assert run_checker(repo, "--fix").returncode == 0
    assert '    return output_dir.rstrip("/")\n' in (repo / COPY_PATH).read_text()  # formatted by ruff
    assert run_checker(repo).returncode == 0


def test_rename_mismatch_is_detected(repo: Path):
    # The copy forgot one rename: "summarization" is still in the help text.
    edit(repo, COPY_PATH, "Prefix for translation inputs.", "Prefix for summarization inputs.")
    result = run_checker(repo)
    assert result.returncode == 1
    assert f"{COPY_PATH}:14: copy of {PREFIX}.SummarizationArguments differs (first diff at line 19)" in result.stderr


def test_missing_rename_in_marker_is_detected(repo: Path):
    edit(
        repo,
        COPY_PATH,
        "with Summarization->Translation, summarization->translation",
        "with summarization->translation",
    )
    result = run_checker(repo)
    assert result.returncode == 1
    assert f"{COPY_PATH}:14: copy of {PREFIX}.SummarizationArguments differs (first diff at line 16)" in result.stderr


def test_copy_of_a_copy_is_checked_against_the_copy(repo: Path):
    marker = "# Copied from examples.pytorch.translation.run_translation.TranslationArguments with Translation->Mt"
    block = COPIES.split("@dataclass\n", 1)[1].split("\n\n\n")[0].replace("Translation", "Mt")
    write(repo, "examples/pytorch/mt/run_mt.py", f"{marker}\n@dataclass\n{block}\n")
    assert run_checker(repo).returncode == 0
    # A stale middle link is reported once, and --fix repairs the whole chain.
    edit(repo, ORIGINAL_PATH, '"""Arguments for Summarization."""', '"""All arguments for Summarization."""')
    result = run_checker(repo)
    assert result.returncode == 1
    assert result.stderr.count("differs") == 1
    assert run_checker(repo, "--fix").returncode == 0
    assert '"""All arguments for Mt."""' in (repo / "examples/pytorch/mt/run_mt.py").read_text()
    assert run_checker(repo).stdout.strip() == "checked 4 copies in 2 files: all in sync"


def test_stale_target_fails(repo: Path):
    edit(repo, ORIGINAL_PATH, "def check_output_dir(", "def validate_output_dir(")
    result = run_checker(repo)
    assert result.returncode == 1
    assert f"{COPY_PATH}:6: check_output_dir not found in {ORIGINAL_PATH}" in result.stderr


def test_missing_module_fails(repo: Path):
    edit(
        repo,
        COPY_PATH,
        f"# Copied from {PREFIX}.check_output_dir",
        "# Copied from examples.pytorch.s2s-ft.run_seq2seq.check_output_dir",
    )
    result = run_checker(repo)
    assert result.returncode == 1
    assert f"{COPY_PATH}:6: module of examples.pytorch.s2s-ft.run_seq2seq.check_output_dir not found" in result.stderr


def test_hyphenated_folder_resolves(repo: Path):
    write(repo, "examples/pytorch/s2s-ft/run_seq2seq.py", ORIGINAL)
    edit(
        repo,
        COPY_PATH,
        f"# Copied from {PREFIX}.check_output_dir",
        "# Copied from examples.pytorch.s2s-ft.run_seq2seq.check_output_dir",
    )
    result = run_checker(repo)
    assert result.returncode == 0, output(result)


@pytest.mark.parametrize(
    "old, new",
    [
        ("\ndef check_output_dir(", "\n\ndef check_output_dir("),
        ("@dataclass\nclass", f"@dataclass\n# Copied from {PREFIX}.SummarizationArguments\nclass"),
        ("translation_name_mapping = {", "if True:\n    pass\ntranslation_name_mapping = {"),
    ],
    ids=["blank-line-below-marker", "marker-between-decorator-and-class", "marker-above-an-if"],
)
def test_marker_not_above_a_def_or_class_fails(repo: Path, old: str, new: str):
    edit(repo, COPY_PATH, old, new)
    result = run_checker(repo)
    assert result.returncode == 1
    assert "marker not directly above a top-level def, class (or its decorators) or `NAME = ...`" in result.stderr
    assert result.stderr.startswith(f"{COPY_PATH}:")


def test_malformed_rename_fails(repo: Path):
    edit(repo, COPY_PATH, "with summarization->translation\n", "with summarization=>translation\n")
    result = run_checker(repo)
    assert result.returncode == 1
    assert f"{COPY_PATH}:22: malformed rename 'summarization=>translation'" in result.stderr


def test_empty_scan_fails(repo: Path):
    (repo / COPY_PATH).unlink()
    result = run_checker(repo)
    assert result.returncode == 1
    assert "no `# Copied from` markers found: nothing checked" in result.stderr


def test_full_copy_drift_is_detected_and_fixed(repo: Path):
    original, copy = "examples/pytorch/summarization/xla_spawn.py", "examples/pytorch/translation/xla_spawn.py"
    text = '"""Launch on TPU cores."""\n\nimport sys\n\nprint(sys.argv)\n'
    write(repo, original, text)
    write(repo, copy, text)
    full_copy = f"--full_copy={copy}={original}"
    result = run_checker(repo, full_copy)
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == "checked 4 copies in 2 files: all in sync"

    write(repo, copy, text.replace("print(sys.argv)", "print(sys.argv[1:])"))
    result = run_checker(repo, full_copy)
    assert result.returncode == 1
    assert f"{copy}:1: copy of {original} differs (first diff at line 5); run make fix-copies" in result.stderr

    result = run_checker(repo, full_copy, "--fix")
    assert result.returncode == 0, output(result)
    assert (repo / copy).read_text() == text
    assert (repo / original).read_text() == text
    assert run_checker(repo, full_copy).returncode == 0


def test_real_repo_is_in_sync():
    # Runs on this repository, as `make check` does.
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, output(result)
    assert result.stdout.strip().endswith("files: all in sync")


def test_the_listed_full_copies_are_checked_unless_told_otherwise(repo: Path):
    # Without --without_listed_full_copies the repo's FULL_COPIES apply: the mini-repo lacks their originals.
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--repo_root", str(repo)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    original = "examples/pytorch/summarization/seq2seq_checks.py"
    assert f"full copy of {original}: the original does not exist" in result.stderr
