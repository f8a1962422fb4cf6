"""training_curves.py: the PNG it draws for real runs (Trainer and Accelerate twin, finished and still running) holds
exactly the logged numbers; odd logs (NaN, one point, eval lines, a half-written line) and bad input."""

import json
import logging
import math
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

import training_curves
from helpers import FIXTURES, REPO_ROOT, TEST_ENV, assert_usage_error, read_json, read_jsonl, run_example

CLI = "examples/pytorch/summarization/training_curves.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROUGE_KEYS = ("eval_rouge1", "eval_rouge2", "eval_rougeL", "eval_rougeLsum")


def common_args(model_dir, output_dir) -> list:
    return [
        "--model_name_or_path", model_dir, "--train_file", XSUM, "--validation_file", XSUM, "--output_dir", output_dir,
        "--source_prefix", "summarize: ", "--learning_rate", "3e-3", "--per_device_train_batch_size", "2",
        "--per_device_eval_batch_size", "4", "--max_source_length", "128", "--max_target_length", "32", "--seed", "7",
    ]  # fmt: skip


def expected_series(log_history: list[dict], keys) -> dict:
    """What the picture must show, computed here from the log: each key's (step, value) pairs in logged order."""
    return {
        key: {
            "step": [entry["step"] for entry in log_history if key in entry],
            "value": [entry[key] for entry in log_history if key in entry],
        }
        for key in keys
    }


def png_series(path) -> dict:
    """The series stored in the PNG, read with PIL (not with the module's own reader), after decoding the image."""
    with Image.open(path) as image:
        image.load()
        return json.loads(image.text["training_curves"])


def assert_valid_png(path, min_width: int = 600) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.load()  # decodes every pixel: a truncated file fails here
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= 400, image.size


# A Trainer run that evaluates during training (steps 2 and 4) and logs every step; then the CLI on its folder.
@pytest.fixture(scope="module")
def trainer_run(tiny_models, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("trainer-run")
    flags = ["--do_train", "--do_eval", "--predict_with_generate", "--eval_strategy", "steps", "--eval_steps", "2"]
    flags += ["--logging_steps", "1", "--max_steps", "4", "--save_steps", "2", "--warmup_steps", "1"]
    run_example(
        ["examples/pytorch/summarization/run_summarization.py", *flags, *common_args(tiny_models / "t5", output_dir)]
    )
    return output_dir, run_example([CLI, output_dir])


@pytest.fixture(scope="module")
def twin_run(tiny_models, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("twin-run")
    flags = ["--max_train_steps", "5", "--logging_steps", "1"]  # 5 batches of 2: one epoch, then one evaluation
    run_example(
        [
            "examples/pytorch/summarization/run_summarization_no_trainer.py",
            *flags,
            *common_args(tiny_models / "t5", output_dir),
        ]
    )
    return output_dir, run_example([CLI, output_dir])


def test_trainer_run_png_is_a_readable_picture(trainer_run):
    output_dir, result = trainer_run
    assert_valid_png(output_dir / "training_curves.png")
    assert f"wrote {output_dir / 'training_curves.png'}" in result.stdout


def test_trainer_run_png_holds_exactly_the_logged_values(trainer_run):
    output_dir, _ = trainer_run
    log_history = read_json(output_dir / "trainer_state.json")["log_history"]
    keys = ("loss", "learning_rate", "eval_loss", *ROUGE_KEYS, "eval_gen_len")
    expected = expected_series(log_history, keys)
    assert expected["loss"]["step"] == [1, 2, 3, 4] and expected["eval_loss"]["step"] == [2, 4], expected
    stored = png_series(output_dir / "training_curves.png")
    # Exactly these panels: no eval_runtime, eval_samples_per_second, eval_steps_per_second, signature, train_loss.
    assert stored == expected
    assert list(stored) == list(keys)  # training first, eval_loss, the metrics, generation length last
    assert training_curves.read_plotted_series(output_dir / "training_curves.png") == stored


def test_running_trainer_run_is_read_from_its_newest_checkpoint(trainer_run, tmp_path):
    output_dir, _ = trainer_run
    running = tmp_path / "running"
    shutil.copytree(output_dir / "checkpoint-2", running / "checkpoint-2")  # no top-level trainer_state.json yet
    result = run_example([CLI, running])
    assert "checkpoint-2" in result.stdout
    log_history = read_json(running / "checkpoint-2" / "trainer_state.json")["log_history"]
    expected = expected_series(log_history, ("loss", "learning_rate", "eval_loss", *ROUGE_KEYS, "eval_gen_len"))
    assert expected["loss"]["step"] == [1, 2]
    assert png_series(running / "training_curves.png") == expected


def test_the_state_with_most_steps_wins_and_a_half_written_checkpoint_is_skipped(trainer_run, tmp_path):
    output_dir, _ = trainer_run
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-6").mkdir()
    shutil.copy(output_dir / "checkpoint-2" / "trainer_state.json", tmp_path / "trainer_state.json")  # stale
    shutil.copy(output_dir / "checkpoint-4" / "trainer_state.json", tmp_path / "checkpoint-4")
    (tmp_path / "checkpoint-6" / "trainer_state.json").write_text('{"log_history": [{"loss": 1.0, "st')  # mid-write
    log_history, source = training_curves.find_log_history(str(tmp_path))
    assert source == str(tmp_path / "checkpoint-4" / "trainer_state.json")
    assert log_history == read_json(output_dir / "checkpoint-4" / "trainer_state.json")["log_history"]


def test_twin_run_training_series_equal_train_log(twin_run):
    output_dir, result = twin_run
    assert_valid_png(output_dir / "training_curves.png")
    assert "train_log.jsonl" in result.stdout
    lines = read_jsonl(output_dir / "train_log.jsonl")
    steps = [line for line in lines if "loss" in line]
    assert [line["step"] for line in steps] == [1, 2, 3, 4, 5]
    stored = png_series(output_dir / "training_curves.png")
    assert stored["loss"] == {"step": [1, 2, 3, 4, 5], "value": [line["loss"] for line in steps]}
    assert stored["learning_rate"] == {"step": [1, 2, 3, 4, 5], "value": [line["lr"] for line in steps]}
    # The evaluation after the epoch (eval_log.jsonl): every numeric metric drawn as logged.
    evaluations = read_jsonl(output_dir / "eval_log.jsonl")
    assert [line["step"] for line in evaluations] == [5]
    not_metrics = ("_runtime", "_per_second", "_time", "_samples")  # as the docstring says; signatures are strings
    eval_keys = {key for line in evaluations for key in line if key.startswith("eval_")}
    eval_keys = {key for key in eval_keys if not key.endswith(not_metrics) and not key.endswith("_signature")}
    assert {"eval_rouge1", "eval_rougeLsum", "eval_gen_len"} <= eval_keys
    assert set(stored) == {"loss", "learning_rate", *eval_keys}
    assert {key: stored[key] for key in eval_keys} == expected_series(evaluations, eval_keys)


def write_lines(path, lines: list, tail: str = "") -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + tail, encoding="utf-8")


def test_twin_step_and_eval_logs_nan_losses_and_a_half_written_last_line(tmp_path):
    lines = [
        {"step": 1, "epoch": 0, "loss": 9.0, "lr": 1e-3},
        {"step": 2, "epoch": 0, "loss": float("nan"), "lr": 2e-3},
        {"step": 2, "epoch": 0, "eval_bleu": 1.5, "eval_chrf": 10.25, "eval_bleu_signature": "nrefs:1|case:mixed",
         "eval_gen_len": 12.0, "eval_samples": 10},
        {"step": 3, "epoch": 1, "loss": float("inf"), "lr": 3e-3},
        {"step": 4, "epoch": 1, "loss": 7.5, "lr": 4e-3},
        {"step": 4, "epoch": 1, "eval_bleu": 2.5, "eval_loss": 6.0, "eval_chrf": 12.5, "eval_gen_len": 11.0,
         "eval_samples": 10},
    ]  # fmt: skip
    steps = [line for line in lines if "loss" in line]
    write_lines(tmp_path / "train_log.jsonl", steps, tail='{"step": 5, "epoch": 1, "lo')  # the run is writing it
    write_lines(tmp_path / "eval_log.jsonl", [line for line in lines if "loss" not in line])
    log_history = training_curves.read_log_history(str(tmp_path))
    assert len(log_history) == 6 and "lr" not in log_history[0] and log_history[0]["learning_rate"] == 1e-3
    series = training_curves.plot_training_curves(log_history, str(tmp_path / "curves.png"), title="a twin run")
    assert series == {
        "loss": {"step": [1, 4], "value": [9.0, 7.5]},  # NaN and inf left out
        "learning_rate": {"step": [1, 2, 3, 4], "value": [1e-3, 2e-3, 3e-3, 4e-3]},
        "eval_loss": {"step": [4], "value": [6.0]},  # only in the second evaluation
        "eval_bleu": {"step": [2, 4], "value": [1.5, 2.5]},
        "eval_chrf": {"step": [2, 4], "value": [10.25, 12.5]},
        "eval_gen_len": {"step": [2, 4], "value": [12.0, 11.0]},
    }
    assert png_series(tmp_path / "curves.png") == series
    assert_valid_png(tmp_path / "curves.png")


def test_one_training_point_and_a_loss_that_is_all_nan(tmp_path):
    one_point = training_curves.plot_training_curves([{"step": 1, "loss": 2.0}], str(tmp_path / "one.png"))
    assert one_point == {"loss": {"step": [1], "value": [2.0]}}
    assert_valid_png(tmp_path / "one.png")
    diverged = [{"step": step, "loss": math.nan, "learning_rate": 0.1} for step in (1, 2)]
    series = training_curves.plot_training_curves(diverged, str(tmp_path / "nan.png"))
    assert series == {"loss": {"step": [], "value": []}, "learning_rate": {"step": [1, 2], "value": [0.1, 0.1]}}
    assert png_series(tmp_path / "nan.png") == series


def test_a_long_per_step_log_keeps_every_spike_and_stays_readable_by_pil(tmp_path):
    log_history = [{"step": step, "loss": 5.0 / step, "learning_rate": 1e-4 * step} for step in range(1, 40001)]
    log_history[12344]["loss"] = 50.0  # one diverging step at 12345
    log_history[30000]["loss"] = -1.0
    series = training_curves.plot_training_curves(log_history, str(tmp_path / "long.png"))
    assert_valid_png(tmp_path / "long.png")  # PIL refuses to open a PNG with a text chunk over 1 MB
    assert png_series(tmp_path / "long.png") == series == training_curves.read_plotted_series(tmp_path / "long.png")
    logged = {(entry["step"], entry["loss"]) for entry in log_history}
    kept = list(zip(series["loss"]["step"], series["loss"]["value"], strict=True))
    assert 1000 < len(kept) < 20_000 and set(kept) <= logged  # thinned to logged points only
    assert {(1, 5.0), (12345, 50.0), (30001, -1.0), (40000, 5.0 / 40000)} <= set(kept)  # ends and spikes kept
    assert series["loss"]["step"] == sorted(series["loss"]["step"])


def test_write_training_curves_warns_instead_of_failing(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=training_curves.logger.name)
    assert training_curves.write_training_curves(str(tmp_path)) is None  # no log at all
    write_lines(tmp_path / "train_log.jsonl", [])
    assert training_curves.write_training_curves(str(tmp_path)) is None  # nothing logged yet
    write_lines(tmp_path / "train_log.jsonl", [{"step": 1, "epoch": 0, "loss": 3.0, "lr": 0.1}])
    (tmp_path / "training_curves.png").write_text("the user's own picture")
    assert training_curves.write_training_curves(str(tmp_path)) is None  # not ours: left alone
    assert (tmp_path / "training_curves.png").read_text() == "the user's own picture"
    assert len(caplog.records) == 3 and all("no training curves" in r.getMessage() for r in caplog.records)
    (tmp_path / "training_curves.png").unlink()
    assert training_curves.write_training_curves(str(tmp_path)) == str(tmp_path / "training_curves.png")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["train_log.jsonl", "training_curves.png"]  # no temp


def test_cli_refreshes_its_own_png_and_refuses_other_files(trainer_run, tmp_path):
    output_dir, _ = trainer_run
    run_example([CLI, output_dir])  # ours: redrawn
    theirs = tmp_path / "theirs.png"
    theirs.write_bytes(PNG_SIGNATURE + b"someone else's picture")
    result = run_example([CLI, output_dir, "--output", theirs], expect_success=False)
    assert "is not a training-curves PNG" in assert_usage_error(result, "--output")
    assert theirs.read_bytes() == PNG_SIGNATURE + b"someone else's picture"
    result = run_example([CLI, output_dir, "--output", tmp_path / "curves.txt"], expect_success=False)
    assert_usage_error(result, "ending in .png")
    assert not (tmp_path / "curves.txt").exists()


@pytest.mark.parametrize("case", ["missing folder", "no log", "no step yet", "bad line"])
def test_cli_refuses_folders_without_a_log_history(case, tmp_path):
    run_dir = tmp_path / "run"
    if case != "missing folder":
        run_dir.mkdir()
    if case == "no step yet":
        write_lines(run_dir / "train_log.jsonl", [])
    if case == "bad line":
        (run_dir / "train_log.jsonl").write_text('{"step": 1, "loss": 2.0, "lr": 0.1}\nnot json\n{"step": 2}\n')
    result = run_example([CLI, run_dir], expect_success=False)
    expected = {"missing folder": "does not exist", "no log": "no log history", "no step yet": "no step logged yet"}
    assert_usage_error(result, expected.get(case, "line 2 is not a JSON object"))
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (run_dir / "training_curves.png").exists()


def test_importing_the_module_does_not_import_matplotlib():
    code = "import sys, training_curves; assert 'matplotlib' not in sys.modules, 'imported at import time'"
    folder = REPO_ROOT / "examples" / "pytorch" / "summarization"
    subprocess.run([sys.executable, "-c", code], cwd=folder, env={**os.environ, **TEST_ENV}, check=True)
