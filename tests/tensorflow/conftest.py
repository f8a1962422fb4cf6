"""Session fixture for the Keras twins' tests (run in .venv-tf): the tiny TF models, built once per test run."""

import pytest
from filelock import FileLock

from helpers import REPO_ROOT, run_example

TINY_TF_MODELS_DIR = REPO_ROOT / ".cache" / "tiny-models-tf"
# TensorFlow's C++ start-up notices (oneDNN, CUDA probing) only add noise to the logs.
TF_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="session")
def tiny_tf_models():
    """Folder with t5, bart and marian from utils/create_tiny_tf_models.py (TensorFlow weights, transformers 4.57).

    The script skips an up-to-date build, and the lock makes pytest-xdist workers wait for the one that builds.
    """
    TINY_TF_MODELS_DIR.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TINY_TF_MODELS_DIR) + ".lock"):
        run_example(["utils/create_tiny_tf_models.py", "--output_dir", TINY_TF_MODELS_DIR], env=TF_ENV)
    return TINY_TF_MODELS_DIR
