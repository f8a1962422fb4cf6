"""Golden outputs: what each example script writes on one fixed tiny run, kept under tests/fixtures/golden/.

A fresh run must write the same predictions and metrics (exactly) and the same logged losses (to 1e-6). They are the
regression net for refactors: moving code must not change a single prediction. Regenerate them only for a change
that is meant to change outputs, and say why in the commit:

    GOLDEN_UPDATE=1 .venv/bin/python -m pytest tests/pytorch/test_golden_outputs.py
    GOLDEN_UPDATE=1 .venv-tf/bin/python -m pytest tests/tensorflow/test_golden_outputs.py
"""

import json
import os
from pathlib import Path

import pytest

from helpers import FIXTURES, read_json, read_jsonl, read_lines

GOLDEN = FIXTURES / "golden"
LOSS_TOLERANCE = 1e-6
# Timings and throughput differ from run to run; everything else in *_results.json is compared.
VOLATILE_KEY_PARTS = ("runtime", "per_second")


def results_without_timings(output_dir: Path) -> dict:
    """all_results.json minus the timing and throughput keys."""
    results = read_json(output_dir / "all_results.json")
    return {key: value for key, value in results.items() if not any(part in key for part in VOLATILE_KEY_PARTS)}


def logged_losses(output_dir: Path) -> list[float]:
    """The training losses the run logged: trainer_state.json's log history (Trainer, Keras twins), or
    train_log.jsonl (the Accelerate twins, one line per step)."""
    if (output_dir / "train_log.jsonl").is_file():
        return [entry["loss"] for entry in read_jsonl(output_dir / "train_log.jsonl")]
    history = read_json(output_dir / "trainer_state.json")["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def prediction_files(output_dir: Path) -> list[str]:
    return sorted(name for name in os.listdir(output_dir) if name.endswith("_predictions.txt"))


def record_or_compare(name: str, output_dir: Path) -> None:
    """Compare a run's outputs with tests/fixtures/golden/<name>/; with GOLDEN_UPDATE=1, write them there instead."""
    golden_dir = GOLDEN / name
    outputs = {
        "results.json": results_without_timings(output_dir),
        "losses.json": logged_losses(output_dir),
    }
    if os.environ.get("GOLDEN_UPDATE") == "1":
        golden_dir.mkdir(parents=True, exist_ok=True)
        for file_name, data in outputs.items():
            (golden_dir / file_name).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for file_name in prediction_files(output_dir):
            (golden_dir / file_name).write_text((output_dir / file_name).read_text(encoding="utf-8"), encoding="utf-8")
        return
    assert golden_dir.is_dir(), f"no golden outputs for {name}: run with GOLDEN_UPDATE=1 once"
    expected_files = sorted(path.name for path in golden_dir.glob("*_predictions.txt"))
    assert prediction_files(output_dir) == expected_files
    for file_name in expected_files:
        assert read_lines(output_dir / file_name) == read_lines(golden_dir / file_name), file_name

    expected_losses = read_json(golden_dir / "losses.json")
    assert outputs["losses.json"] == pytest.approx(expected_losses, abs=LOSS_TOLERANCE)

    expected_results = read_json(golden_dir / "results.json")
    actual_results = outputs["results.json"]
    assert sorted(actual_results) == sorted(expected_results)
    for key, value in expected_results.items():
        if "loss" in key:
            assert actual_results[key] == pytest.approx(value, abs=LOSS_TOLERANCE), key
        else:
            assert actual_results[key] == value, key
