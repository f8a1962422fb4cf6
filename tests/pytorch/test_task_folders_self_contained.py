"""A task folder is the unit a user copies: each PyTorch folder, copied alone to a directory outside the repository,
runs its scripts from there with only the installed requirements, and writes the golden outputs
(tests/fixtures/golden/) of tests/pytorch/test_golden_outputs.py."""

import ast
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
from test_golden_outputs import RUNS

from golden import record_or_compare
from helpers import REPO_ROOT, run_example

FOLDERS = ("summarization", "translation")


def local_imports(folder: Path) -> set[str]:
    """Top-level module names the folder's files import that are not installed: they must be files of the folder."""
    names = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and not installed(name)}


def installed(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    # The folders' own modules are on pytest's path (pyproject.toml); they are not installed packages.
    return spec is not None and "site-packages" in str(spec.origin or "")


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_import_is_an_installed_package_or_a_file_of_the_folder(folder):
    source = REPO_ROOT / "examples" / "pytorch" / folder
    missing = {name for name in local_imports(source) if not (source / f"{name}.py").is_file()}
    assert not missing, f"{source} imports {missing}, which are neither installed nor files of the folder"


@pytest.mark.parametrize("name", list(RUNS))
def test_a_copied_folder_runs_alone_and_writes_the_golden_outputs(name, tiny_models, tmp_path):
    script = Path(RUNS[name][0])
    copy = tmp_path / "my-project" / script.parent.name
    shutil.copytree(REPO_ROOT / script.parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    command = [str(arg).replace("{models}", str(tiny_models)) for arg in RUNS[name][1:]]
    output_dir = tmp_path / "out"
    # From outside the repository, with nothing added to the import path: only the folder and installed packages.
    run_example([copy / script.name, *command, "--output_dir", output_dir], cwd=tmp_path, env={"PYTHONPATH": ""})
    record_or_compare(name, output_dir)
