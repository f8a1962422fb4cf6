"""The Keras scripts under stress (#14): what a short run prints, a training loss that stops being finite, SIGTERM
in the middle of training and the resume after it, past a checkpoint left incomplete. Real runs of the scripts in
.venv-tf on the tiny TF models, as a user would start them (no TF_CPP_MIN_LOG_LEVEL: the scripts quiet TensorFlow
themselves)."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from helpers import FIXTURES, REPO_ROOT, TEST_ENV, fresh_hf_home, read_json, run_example

SUMMARIZATION = "examples/tensorflow/summarization/run_summarization.py"
TRANSLATION = "examples/tensorflow/translation/run_translation.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
WMT16 = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"


def short_run(script: str, models, output_dir, *extra) -> list:
    """Train 2 steps on 4 examples, evaluate on 4 (eager generation of at most 16 tokens)."""
    if script == SUMMARIZATION:
        task = ["--model_name_or_path", models / "t5", "--source_prefix", "summarize: ", "--train_file", XSUM]
        task += ["--validation_file", XSUM]
    else:
        task = ["--model_name_or_path", models / "marian", "--source_lang", "en", "--target_lang", "ro"]
        task += ["--train_file", WMT16, "--validation_file", WMT16]
    return [
        script, *task, "--output_dir", output_dir, "--do_train", "--do_eval", "--max_train_samples", 4,
        "--max_eval_samples", 4, "--per_device_train_batch_size", 2, "--per_device_eval_batch_size", 4,
        "--max_steps", 2, "--max_source_length", 64, "--max_target_length", 16, "--use_xla_generation", "False",
        *extra,
    ]  # fmt: skip


def strict_json(path) -> dict:
    """A JSON file read the way strict readers do: a bare NaN or Infinity is an error."""

    def refuse(constant):
        raise ValueError(f"{path} holds a bare {constant}")

    with open(path, encoding="utf-8") as handle:
        return json.load(handle, parse_constant=refuse)


@pytest.mark.slow
@pytest.mark.parametrize("script", [SUMMARIZATION, TRANSLATION], ids=["summarization", "translation"])
def test_a_two_step_run_prints_at_most_60_lines(script, tiny_tf_models, tmp_path):
    """No TensorFlow start-up notices, no argument dump, no library chatter: one Run: line with the effective
    settings, the epoch line, the metrics. Every argument is in run_arguments.json instead, the token masked."""
    output_dir = tmp_path / "out"
    result = run_example(short_run(script, tiny_tf_models, output_dir, "--token", "hf_not_a_real_secret"))
    log = result.stdout + result.stderr
    lines = log.splitlines()
    assert len(lines) <= 60, f"{len(lines)} lines:\n{log}"
    for noise in ("oneDNN", "absl::InitializeLog", "cuda", "cpu_feature_guard", "XLA service", "TrainingArguments("):
        assert noise not in log, f"{noise!r} in the log:\n{log}"
    for noise in ("TensorFlow and JAX classes are deprecated", "All model checkpoint layers were used"):
        assert noise not in log, f"{noise!r} in the log:\n{log}"
    run_lines = [line for line in lines if " - Run: " in line]
    assert len(run_lines) == 1, log
    assert "training on 4 examples: 2 steps" in run_lines[0] and "of 2 examples" in run_lines[0], run_lines
    assert "evaluating on 4" in run_lines[0] and "float32 on cpu" in run_lines[0], run_lines
    assert "eval_loss = " in log  # the results table

    arguments = (output_dir / "run_arguments.json").read_text()
    assert "hf_not_a_real_secret" not in arguments and "hf_not_a_real_secret" not in log
    recorded = json.loads(arguments)
    assert recorded["ModelArguments"]["token"] == "<secret>"
    assert any(group.get("max_steps") == 2 for group in recorded.values())
    results = strict_json(output_dir / "all_results.json")
    assert results["train_steps"] == 2 and results["eval_samples"] == 4
    assert "run.lock" not in os.listdir(output_dir)  # released at exit


def test_a_diverging_loss_stops_training_with_one_line(tiny_tf_models, tmp_path):
    """An infinite learning rate turns the weights into inf/NaN at step 1, so the loss of step 2 is NaN (a finite
    one, even 1e38, does not: T5's RMS norms turn overflowing activations into zeros and the loss into log(vocab)).
    The run stops there with one error line instead of training on and writing NaN results and checkpoints."""
    output_dir = tmp_path / "out"
    args = short_run(SUMMARIZATION, tiny_tf_models, output_dir, "--learning_rate", "inf", "--do_eval", "False")
    result = run_example(args, expect_success=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: the training loss became (nan|inf) at step [12] .*lower --learning_rate.*", last_line)
    written = sorted(os.listdir(output_dir))
    assert written == ["run_arguments.json"], written  # no checkpoint of broken weights, no results


def start(args: list) -> subprocess.Popen:
    env = {**os.environ, **TEST_ENV, "HF_HOME": fresh_hf_home()}
    command = [sys.executable, *map(str, args)]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigterm_names_the_last_checkpoint_and_the_rerun_resumes_past_an_incomplete_one(tiny_tf_models, tmp_path):
    """SIGTERM (what a scheduler sends) after two epoch checkpoints: exit 143 and one line naming the last complete
    checkpoint and the command. Then that checkpoint loses its data file (a copy cut short): the same command skips
    it with a warning, resumes from the one before and finishes every step."""
    output_dir = tmp_path / "out"
    args = [
        SUMMARIZATION, "--model_name_or_path", tiny_tf_models / "t5", "--source_prefix", "summarize: ",
        "--train_file", XSUM, "--max_train_samples", 4, "--per_device_train_batch_size", 2, "--do_train",
        "--num_train_epochs", 30, "--max_source_length", 32, "--max_target_length", 8, "--output_dir", output_dir,
    ]  # fmt: skip
    process = start(args)
    try:
        deadline = time.monotonic() + 600
        while not (output_dir / "checkpoint-4" / "trainer_state.json").exists():
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no second checkpoint after 10 minutes"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    last_line = stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        r"interrupted \(SIGTERM\); last complete checkpoint: (\S+); rerun the same command to resume: (.*)", last_line
    )
    assert match, last_line
    named = match.group(1)
    assert os.path.dirname(named) == str(output_dir) and str(SUMMARIZATION) in match.group(2), last_line
    step = int(named.rsplit("-", 1)[1])
    assert step >= 4 and step < 60, last_line
    assert not (output_dir / "run.lock").exists()

    os.remove(os.path.join(named, "tf_checkpoint.data-00000-of-00001"))
    result = run_example(args)
    log = result.stdout + result.stderr
    assert f"skipping {named}: incomplete (no tf_checkpoint.data-00000-of-00001)" in log, log[-3000:]
    assert f"Resuming training from {output_dir}/checkpoint-{step - 2}" in log, log[-3000:]
    state = read_json(output_dir / "trainer_state.json")
    assert state["global_step"] == 60
    assert [entry["step"] for entry in state["log_history"]] == list(range(2, 61, 2))
    assert strict_json(output_dir / "train_results.json")["train_steps"] == 60
