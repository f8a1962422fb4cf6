"""Tests keep to themselves: every run of a script gets its own Hugging Face home, so the datasets and hub caches
of one test are invisible to the others, and the user's ~/.cache/huggingface is never read or written."""

import os
from pathlib import Path

from helpers import TEST_ENV, run_example

SHOW_CACHES = (
    "import datasets.config as d, huggingface_hub.constants as h; print(d.HF_DATASETS_CACHE); print(h.HF_HUB_CACHE)"
)


def test_every_run_has_its_own_hf_home_outside_the_users_cache():
    first, second = (run_example(["-c", SHOW_CACHES]).stdout.split() for _ in range(2))
    user_cache = Path(os.path.expanduser("~/.cache/huggingface")).resolve()
    for datasets_cache, hub_cache in (first, second):
        for cache in (datasets_cache, hub_cache):
            assert user_cache not in Path(cache).resolve().parents, cache
    assert first[0] != second[0] and first[1] != second[1]
    # Processes a test starts itself (TEST_ENV) get the test process's own home, also outside the user's cache.
    assert user_cache not in Path(TEST_ENV["HF_HOME"]).resolve().parents
