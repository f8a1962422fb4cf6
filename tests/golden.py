"""Golden outputs: what each example script writes on one fixed tiny run, kept under tests/fixtures/golden/.

A fresh run must write the same predictions and metrics (exactly) and the same logged losses (to 1e-6). They are the
regression net for refactors: moving code must not change a single prediction. Regenerate them only for a change
that is meant to change outputs, and say why in the commit:

    GOLDEN_UPDATE=1 .venv/bin/python -m pytest tests/pytorch/test_golden_outputs.py
    GOLDEN_UPDATE=1 .venv-tf/bin/python -m pytest tests/tensorflow/test_golden_outputs.py

CPUs differ in their fp32 arithmetic (which vector kernels torch, MKL and oneDNN pick: AVX2, AVX-512, ...): the
first logged loss agrees to the bit, later ones drift in the 5th digit, and after hundreds of steps the tiny
models predict different words. So each golden folder may hold variants, `variants/<cpu>/`, recorded on another
kind of CPU from the same known-good commit (`GOLDEN_UPDATE=1 GOLDEN_VARIANT=<cpu>`). A run is compared exactly
with the variant whose logged losses it matches (to 1e-6). On a CPU of no recorded kind, the comparison
is weaker and says so (a pytest warning): the same files and keys, the first loss to 1e-6, the rest to 5%.
"""

import json
import os
import warnings
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
    """Compare a run's outputs with tests/fixtures/golden/<name>/ (or the variant recorded on this kind of CPU);
    with GOLDEN_UPDATE=1, write them there instead (with GOLDEN_VARIANT=<cpu> as a variant)."""
    golden_dir = GOLDEN / name
    outputs = {
        "results.json": results_without_timings(output_dir),
        "losses.json": logged_losses(output_dir),
    }
    if os.environ.get("GOLDEN_UPDATE") == "1":
        if os.environ.get("GOLDEN_VARIANT"):
            golden_dir = golden_dir / "variants" / os.environ["GOLDEN_VARIANT"]
        golden_dir.mkdir(parents=True, exist_ok=True)
        for file_name, data in outputs.items():
            (golden_dir / file_name).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for file_name in prediction_files(output_dir):
            (golden_dir / file_name).write_text((output_dir / file_name).read_text(encoding="utf-8"), encoding="utf-8")
        return
    assert golden_dir.is_dir(), f"no golden outputs for {name}: run with GOLDEN_UPDATE=1 once"
    candidates = [golden_dir, *sorted((golden_dir / "variants").glob("*"))]
    losses = outputs["losses.json"]
    for candidate in candidates:
        expected_losses = read_json(candidate / "losses.json")
        if losses == pytest.approx(expected_losses, abs=LOSS_TOLERANCE):  # this kind of CPU's arithmetic
            compare_exactly(candidate, output_dir, outputs)
            return
    compare_loosely(golden_dir, output_dir, outputs)
    warnings.warn(
        f"golden outputs of {name} not compared exactly: this CPU's fp32 arithmetic matches no recorded variant "
        f"(first losses {losses[:3]}); record one with GOLDEN_UPDATE=1 GOLDEN_VARIANT=<cpu> on a known-good commit",
        stacklevel=2,
    )


def compare_exactly(golden_dir: Path, output_dir: Path, outputs: dict) -> None:
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


def compare_loosely(golden_dir: Path, output_dir: Path, outputs: dict) -> None:
    """For a CPU of no recorded kind: the same prediction files with the same number of lines, the same result
    keys and sample counts, the first loss to 1e-6 and the others to 5%."""
    expected_files = sorted(path.name for path in golden_dir.glob("*_predictions.txt"))
    assert prediction_files(output_dir) == expected_files
    for file_name in expected_files:
        assert len(read_lines(output_dir / file_name)) == len(read_lines(golden_dir / file_name)), file_name
    expected_losses = read_json(golden_dir / "losses.json")
    assert len(outputs["losses.json"]) == len(expected_losses)
    assert outputs["losses.json"][0] == pytest.approx(expected_losses[0], abs=LOSS_TOLERANCE)
    assert outputs["losses.json"] == pytest.approx(expected_losses, rel=0.05)
    expected_results = read_json(golden_dir / "results.json")
    assert sorted(outputs["results.json"]) == sorted(expected_results)
    for key, value in expected_results.items():
        if key.endswith("_samples"):
            assert outputs["results.json"][key] == value, key
