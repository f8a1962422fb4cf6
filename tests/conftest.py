"""Session fixtures: the tiny offline models, built once per test run and shared by all workers."""

import pytest
from filelock import FileLock

from helpers import REPO_ROOT, run_example

TINY_MODELS_DIR = REPO_ROOT / ".cache" / "tiny-models"


@pytest.fixture(scope="session")
def tiny_models():
    """Folder with t5, bart, mbart, mbart50, marian, m2m100, nllb, pegasus, bert, roberta from utils/create_tiny_models.py.

    The script skips an up-to-date build (same script, same seed), and the lock makes pytest-xdist
    workers wait for the one that builds instead of building it twice.
    """
    TINY_MODELS_DIR.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TINY_MODELS_DIR) + ".lock"):
        run_example(["utils/create_tiny_models.py", "--output_dir", TINY_MODELS_DIR])
    return TINY_MODELS_DIR
