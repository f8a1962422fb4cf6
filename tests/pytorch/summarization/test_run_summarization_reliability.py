"""run_summarization.py under interrupts, concurrent runs, damaged checkpoints and odd JSON shapes, and its log.

Interrupts end with one line (what was saved, the command to resume) and exit 130/143; the same command then
resumes. One run per --output_dir (run.lock); a lock left by a killed job is taken over. A checkpoint missing a
file the resume needs is skipped.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from helpers import FIXTURES, REPO_ROOT, TEST_ENV, fresh_hf_home, read_json, read_lines, run_example, run_log_lines

SCRIPT = "examples/pytorch/summarization/run_summarization.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"


def training_args(tiny_models, output_dir, max_steps: int = 60, save_steps: int = 5) -> list:
    return [
        SCRIPT, "--model_name_or_path", tiny_models / "t5", "--train_file", XSUM, "--do_train",
        "--max_steps", max_steps, "--save_steps", save_steps, "--logging_steps", 5, "--per_device_train_batch_size", 2,
        "--max_source_length", 64, "--max_target_length", 16, "--source_prefix", "summarize: ", "--seed", 3,
        "--output_dir", output_dir,
    ]  # fmt: skip


def start(args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, **TEST_ENV, "HF_HOME": fresh_hf_home()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, process, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signal_number", "exit_code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")]
)
def test_an_interrupt_says_what_was_saved_and_the_same_command_resumes(
    signal_number, exit_code, name, tiny_models, tmp_path
):
    output_dir = tmp_path / "out"
    args = training_args(tiny_models, output_dir)
    process = start(args)
    wait_for(output_dir / "checkpoint-10" / "trainer_state.json", process)
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == exit_code, stderr[-3000:]
    assert "Traceback" not in stdout + stderr, stderr[-3000:]
    last_line = stderr.strip().split("\n")[-1]  # (not splitlines: progress bars redraw with \r)
    assert last_line.startswith(f"interrupted ({name}") and "last complete checkpoint: " in last_line, last_line
    assert "rerun the same command to resume: " in last_line and SCRIPT in last_line and str(output_dir) in last_line
    saved = last_line.split("last complete checkpoint: ")[1].split(";")[0]
    assert os.path.isdir(saved) and int(saved.rsplit("-", 1)[1]) >= 10
    assert not (output_dir / "run.lock").exists()  # released on the way out

    resumed = run_example(args)  # the command the line gave
    assert f"Resuming training from {saved}" in resumed.stdout + resumed.stderr
    assert read_json(output_dir / "trainer_state.json")["global_step"] == 60


def test_a_second_run_into_the_same_output_dir_is_refused_while_the_first_runs(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    args = training_args(tiny_models, output_dir, max_steps=100000, save_steps=100000)  # runs until stopped
    first = start(args)
    wait_for(output_dir / "run.lock", first)
    second = run_example(args, expect_success=False)
    last_line = second.stderr.strip().splitlines()[-1]
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert (
        f"--output_dir {output_dir} is in use by another run (process {first.pid} on {socket.gethostname()}"
        in last_line
    )
    assert first.poll() is None  # the first run goes on, undisturbed
    first.send_signal(signal.SIGTERM)
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 143, stderr[-3000:]
    assert not (output_dir / "run.lock").exists()


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its process id now names no running process
    lock = {"pid": dead.pid, "host": socket.gethostname(), "started": "2026-12-03 09:00:00"}
    (output_dir / "run.lock").write_text(json.dumps(lock))
    result = run_example(training_args(tiny_models, output_dir, max_steps=2))
    assert f"taking over the lock of process {dead.pid}, which no longer runs" in result.stdout + result.stderr
    assert read_json(output_dir / "trainer_state.json")["global_step"] == 2
    assert not (output_dir / "run.lock").exists()


@pytest.mark.slow
def test_a_checkpoint_missing_its_optimizer_state_is_skipped(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    args = training_args(tiny_models, output_dir, max_steps=10, save_steps=5)
    run_example(args)
    # Leave the folder as a job killed while writing checkpoint-10: everything but its optimizer state.
    for name in os.listdir(output_dir):
        if not name.startswith("checkpoint-"):
            path = output_dir / name
            path.unlink() if path.is_file() else None
    (output_dir / "checkpoint-10" / "optimizer.pt").unlink()
    result = run_example(args)
    log = result.stdout + result.stderr
    assert f"skipping {output_dir / 'checkpoint-10'}: incomplete (no optimizer.pt)" in log
    assert f"Resuming training from {output_dir / 'checkpoint-5'}" in log
    assert read_json(output_dir / "trainer_state.json")["global_step"] == 10


def test_json_holding_its_examples_under_a_key_or_as_columns_is_read_as_rows(tiny_models, tmp_path):
    rows = [json.loads(line) for line in XSUM.read_text().splitlines()][:4]
    (tmp_path / "wrapped.json").write_text(json.dumps({"version": "1.0", "data": rows}))
    columns = {name: [row[name] for row in rows] for name in ("document", "summary")}
    (tmp_path / "columns.json").write_text(json.dumps(columns))
    for name in ("wrapped", "columns"):
        output_dir = tmp_path / f"out-{name}"
        run_example([
            SCRIPT, "--model_name_or_path", tiny_models / "t5", "--test_file", tmp_path / f"{name}.json",
            "--do_predict", "--predict_with_generate", "--max_source_length", 64, "--generation_max_length", 8,
            "--output_dir", output_dir,
        ])  # fmt: skip
        assert len(read_lines(output_dir / "generated_predictions.txt")) == 4
        assert read_json(output_dir / "predict_results.json")["predict_samples"] == 4


def test_a_two_step_run_prints_a_short_log_and_keeps_every_argument_in_a_file(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    command = [
        SCRIPT, "--model_name_or_path", tiny_models / "t5", "--train_file", XSUM, "--validation_file", XSUM,
        "--test_file", XSUM, "--do_train", "--do_eval", "--do_predict", "--predict_with_generate", "--max_steps", 2,
        "--max_train_samples", 4, "--max_eval_samples", 4, "--max_predict_samples", 4,
        "--per_device_train_batch_size", 2, "--source_prefix", "summarize: ", "--output_dir", output_dir,
    ]  # fmt: skip
    log, lines = run_log_lines(command)
    assert len(lines) <= 60, "\n".join(lines)
    for noise in (
        "Offline mode: forcing",
        "Downloading and preparing",
        "Model config",
        "adam_beta1",
        "huggingface.co",
    ):
        assert noise not in log
    run_line = next(line for line in lines if " - Run: " in line)
    assert "training on 4 examples: 2 steps of 2 examples" in run_line and "world size: 1" in run_line
    assert "predict_rouge1" in log and "eval_rouge1" in log  # the results tables
    record = read_json(output_dir / "run_arguments.json")
    assert record["SummarizationTrainingArguments"]["max_steps"] == 2
    assert record["DataTrainingArguments"]["max_train_samples"] == 4
    # With --log_level info the libraries speak again.
    verbose = run_example([
        SCRIPT, "--model_name_or_path", tiny_models / "t5", "--test_file", XSUM, "--do_predict", "--max_predict_samples",
        2, "--log_level", "info", "--output_dir", tmp_path / "verbose",
    ])  # fmt: skip
    assert "loading configuration file" in verbose.stdout + verbose.stderr


def test_offline_dataset_name_read_from_the_cache_says_so(tiny_models, tmp_path):
    """A local folder named like a Hub dataset, loaded once, fills the datasets cache under that name; offline, a
    later --dataset_name of that name (no such folder where it runs) is read from there: the run must say so."""
    folder = tmp_path / "project" / "cnn_dailymail"
    folder.mkdir(parents=True)
    rows = [json.loads(line) for line in XSUM.read_text().splitlines()][:4]
    (folder / "test.jsonl").write_text(
        "".join(json.dumps({"article": row["document"], "highlights": row["summary"]}) + "\n" for row in rows)
    )
    (tmp_path / "elsewhere").mkdir()
    hf_home = {"HF_HOME": str(tmp_path / "hf-home")}
    command = [
        REPO_ROOT / SCRIPT, "--model_name_or_path", tiny_models / "t5", "--dataset_name", "cnn_dailymail",
        "--do_predict", "--predict_with_generate", "--max_source_length", 32, "--generation_max_length", 4,
    ]  # fmt: skip
    run_example([*command, "--output_dir", tmp_path / "first"], cwd=tmp_path / "project", env=hf_home)
    result = run_example([*command, "--output_dir", tmp_path / "second"], cwd=tmp_path / "elsewhere", env=hf_home)
    log = result.stdout + result.stderr
    assert "--dataset_name cnn_dailymail: the Hub is offline, so it was read from the datasets cache" in log
    assert "pass a folder path or local files to be sure" in log


def test_a_run_killed_while_writing_its_first_checkpoint_starts_over(tiny_models, tmp_path):
    # What the kill soak found: only a half-written checkpoint-5 left; the same command must not refuse the folder.
    output_dir = tmp_path / "out"
    (output_dir / "checkpoint-5").mkdir(parents=True)
    (output_dir / "checkpoint-5" / "model.safetensors").write_bytes(b"half")
    result = run_example(training_args(tiny_models, output_dir, max_steps=4, save_steps=2))
    log = result.stdout + result.stderr
    assert "no complete checkpoint to resume from; removed the incomplete checkpoint-5 and starting over" in log
    assert read_json(output_dir / "trainer_state.json")["global_step"] == 4
    assert not (output_dir / "checkpoint-5").exists()
