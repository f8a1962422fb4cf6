"""Session fixture for the Keras twins' tests, which run in .venv-tf (`make test-tf`; `make test` runs them too).

Under another interpreter (the PyTorch .venv has no TensorFlow: `.venv/bin/python -m pytest tests`) these tests are
not collected, with a warning that says where they run, instead of failing on a missing import in every script.
"""

import importlib.metadata
import warnings

import pytest
from filelock import FileLock

from helpers import REPO_ROOT, run_example

TINY_TF_MODELS_DIR = REPO_ROOT / ".cache" / "tiny-models-tf"
# TensorFlow's C++ start-up notices (oneDNN, CUDA probing) only add noise to the logs.
TF_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}

try:
    # The installed distribution, not find_spec("tensorflow"): that finds this folder, on sys.path under pytest.
    importlib.metadata.version("tensorflow")
except importlib.metadata.PackageNotFoundError:
    collect_ignore_glob = ["test_*.py"]
    warnings.warn(
        "tests/tensorflow not collected: this interpreter has no TensorFlow; they run in .venv-tf (make test-tf)",
        stacklevel=1,
    )


@pytest.fixture(scope="session")
def tiny_tf_models():
    """Folder with t5, bart, marian and mbart from utils/create_tiny_tf_models.py (TF weights, transformers 4.57).

    The script skips an up-to-date build, and the lock makes pytest-xdist workers wait for the one that builds.
    """
    TINY_TF_MODELS_DIR.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TINY_TF_MODELS_DIR) + ".lock"):
        run_example(["utils/create_tiny_tf_models.py", "--output_dir", TINY_TF_MODELS_DIR], env=TF_ENV)
    return TINY_TF_MODELS_DIR
