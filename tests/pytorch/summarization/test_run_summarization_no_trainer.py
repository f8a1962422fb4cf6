"""run_summarization_no_trainer.py, run as a user would (subprocess, offline) on the tiny local models."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nltk
import pytest
from filelock import FileLock
from rouge_score import rouge_scorer
from safetensors.numpy import load_file

from helpers import FIXTURES, REPO_ROOT, TEST_ENV, fresh_hf_home, read_json, read_jsonl, read_lines, run_example

SCRIPT = "examples/pytorch/summarization/run_summarization_no_trainer.py"
TRAINER_SCRIPT = "examples/pytorch/summarization/run_summarization.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
TRACKING = "summarization_no_trainer"  # the tracker project name, as upstream
ACCELERATE = Path(sys.executable).parent / "accelerate"  # the launcher installed next to this Python


# Copied from tests.pytorch.summarization.test_run_summarization.reference_rouge
def reference_rouge(predictions: list[str], references: list) -> dict[str, float]:
    """ROUGE as the reference implementation computes it: rouge_score with the Porter stemmer, on texts
    split into one sentence per line by NLTK punkt (for rougeLsum), best reference per example, mean F1 x 100."""
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        candidates = [reference] if isinstance(reference, str) else reference
        best = {key: 0.0 for key in ROUGE_KEYS}
        for candidate in candidates:
            scores = scorer.score(
                "\n".join(nltk.sent_tokenize(candidate.strip())), "\n".join(nltk.sent_tokenize(prediction))
            )
            best = {key: max(best[key], scores[key].fmeasure) for key in ROUGE_KEYS}
        totals = {key: totals[key] + best[key] for key in ROUGE_KEYS}
    return {key: round(100 * total / len(predictions), 4) for key, total in totals.items()}


def no_trainer_args(model_dir, output_dir, **overrides) -> list:
    """A train + eval command on the 10-example xsum sample: 5 batches of 2 per epoch, so 20 steps = 4 epochs.
    A value of None drops the flag; "" makes it a flag without value."""
    args = {
        "--model_name_or_path": model_dir,
        "--train_file": XSUM,
        "--validation_file": XSUM,
        "--output_dir": output_dir,
        "--max_train_steps": 20,
        "--learning_rate": 3e-3,
        "--lr_scheduler_type": "constant",
        "--per_device_train_batch_size": 2,
        "--per_device_eval_batch_size": 4,  # 10 examples: the last eval batch is uneven
        "--max_source_length": 128,
        "--max_target_length": 32,
        "--logging_steps": 5,
        "--seed": 7,
        **overrides,
    }
    command = [SCRIPT]
    for flag, value in args.items():
        command += [] if value is None else [flag] if value == "" else [flag, value]
    return command


def run_once(name: str, tmp_path_factory, worker_id: str, command: list, **run_options) -> tuple[Path, str]:
    """Run `command` (with `--output_dir <folder>` added) once per test session, even under pytest-xdist: the first
    worker runs it, the others wait on the lock and read its output (the pytest-xdist recipe for shared fixtures).
    Returns the output folder and the run's stdout + stderr."""
    root = tmp_path_factory.getbasetemp()
    root = root if worker_id == "master" else root.parent
    output_dir, log_file = root / name, root / f"{name}.log"
    with FileLock(str(root / f"{name}.lock")):
        if not log_file.exists():
            result = run_example([*command, "--output_dir", output_dir], **run_options)
            log_file.write_text(result.stdout + result.stderr)
    return output_dir, log_file.read_text()


# Two fixed runs that several tests read. t5: step checkpoints, tracking and predict. bart: epoch checkpoints and
# gradient accumulation over an odd number of batches (5 per epoch = steps of 2, 2 and 1 batches).
@pytest.fixture(scope="module")
def t5_run(tiny_models, tmp_path_factory, worker_id):
    command = no_trainer_args(
        tiny_models / "t5",
        None,
        **{
            "--source_prefix": "summarize: ",
            "--test_file": XSUM,
            "--do_predict": "",
            "--checkpointing_steps": 7,
            "--with_tracking": "",
            "--report_to": "tensorboard",
        },
    )
    return run_once("no-trainer-t5", tmp_path_factory, worker_id, command)


BART_OVERRIDES = {"--max_train_steps": 9, "--gradient_accumulation_steps": 2, "--checkpointing_steps": "epoch"}


@pytest.fixture(scope="module")
def bart_run(tiny_models, tmp_path_factory, worker_id):
    command = no_trainer_args(tiny_models / "bart", None, **BART_OVERRIDES)
    return run_once("no-trainer-bart", tmp_path_factory, worker_id, command)


@pytest.fixture(params=["t5_run", "bart_run"])
def xsum_run(request):
    return request.getfixturevalue(request.param)


def step_losses(output_dir) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in read_jsonl(Path(output_dir) / "train_log.jsonl")}


def model_weights(folder) -> dict:
    return load_file(str(Path(folder) / "model.safetensors"))


def assert_same_weights(expected_dir, actual_dir) -> None:
    expected, actual = model_weights(expected_dir), model_weights(actual_dir)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert abs(tensor - actual[name]).max() < 1e-5, name


def checkpoint_folders(output_dir) -> list[str]:
    return sorted(name for name in os.listdir(output_dir) if name.startswith(("step_", "epoch_")))


def test_writes_every_output_file(t5_run, bart_run):
    common = ["all_results.json", "train_results.json", "eval_results.json", "eval_predictions.txt"]
    common += ["train_log.jsonl", "config.json", "model.safetensors", "tokenizer_config.json"]
    t5_files = [*common, "predict_results.json", "generated_predictions.txt", "step_7", "step_14"]
    for output_dir, names in ((t5_run[0], t5_files), (bart_run[0], [*common, "epoch_0", "epoch_1", "epoch_2"])):
        for name in names:
            assert (output_dir / name).exists(), f"{name} missing from {sorted(os.listdir(output_dir))}"
    assert checkpoint_folders(t5_run[0]) == ["step_14", "step_7"]  # every 7 of 20 steps
    assert checkpoint_folders(bart_run[0]) == ["epoch_0", "epoch_1", "epoch_2"]
    for checkpoint in (t5_run[0] / "step_7", bart_run[0] / "epoch_1"):
        for name in ("model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
            assert (checkpoint / name).exists(), f"{name} missing from {checkpoint}"
    # --with_tracking --report_to tensorboard, offline: event files under output_dir/summarization_no_trainer,
    # holding the per-epoch metrics and the periodic training loss (tag names are stored as plain bytes).
    events = b"".join(path.read_bytes() for path in (t5_run[0] / TRACKING).rglob("events.out.tfevents.*"))
    for tag in (b"eval_rouge1", b"train_loss", b"lr"):
        assert tag in events, tag


def test_metric_keys_and_counts(xsum_run):
    output_dir, _ = xsum_run
    results = read_json(output_dir / "all_results.json")
    expected = {"train_loss", "train_runtime", "train_samples", "epoch", "step", "eval_gen_len", "eval_samples"}
    expected |= {f"eval_{key}" for key in ROUGE_KEYS} | {"eval_rouge_signature"}
    if (output_dir / "predict_results.json").exists():
        expected |= {f"predict_{key}" for key in ROUGE_KEYS} | {"predict_gen_len", "predict_samples"}
        expected |= {"predict_rouge_signature"}
        assert results["predict_samples"] == 10
        assert results["predict_rouge_signature"] == results["eval_rouge_signature"]
    assert set(results) == expected
    assert results["eval_rouge_signature"].startswith("rouge:rouge_score-0.1.2|")
    assert results["train_samples"] == results["eval_samples"] == 10
    assert len(read_lines(output_dir / "eval_predictions.txt")) == 10
    assert results["step"] == (20 if "t5" in output_dir.name else 9)
    assert results["epoch"] == (4 if "t5" in output_dir.name else 3)  # 5 steps/epoch; bart: 3 steps/epoch
    for key in ROUGE_KEYS:
        assert 0.0 <= results[f"eval_{key}"] <= 100.0


def test_every_step_is_logged_and_the_loss_goes_down(xsum_run):
    output_dir, log = xsum_run
    losses = step_losses(output_dir)
    steps = read_json(output_dir / "all_results.json")["step"]
    assert list(losses) == list(range(1, steps + 1))
    assert losses[steps] < losses[1] - 0.5, losses
    first, last = list(losses.values())[:3], list(losses.values())[-3:]
    assert sum(last) / 3 < sum(first) / 3 - 0.5, losses
    assert read_json(output_dir / "train_results.json")["train_loss"] == pytest.approx(sum(losses.values()) / steps)
    assert "world size: 1" in log and "input tokens/s" in log


def test_rouge_equals_rouge_score_on_the_written_predictions(xsum_run):
    output_dir, _ = xsum_run
    references = [row["summary"] for row in read_jsonl(XSUM)]
    for split, predictions_file in (("eval", "eval_predictions.txt"), ("predict", "generated_predictions.txt")):
        if not (output_dir / predictions_file).exists():
            continue
        saved = read_json(output_dir / f"{split}_results.json")
        expected = reference_rouge(read_lines(output_dir / predictions_file), references)
        assert {key: saved[f"{split}_{key}"] for key in ROUGE_KEYS} == expected


def test_same_metrics_and_comparable_loss_as_the_trainer_script(t5_run, tiny_models, tmp_path):
    """The Trainer twin with the same model, data, seed and hyper-parameters (constant LR, no warmup, no clipping)."""
    output_dir = tmp_path / "trainer"
    run_example(
        [
            TRAINER_SCRIPT,
            "--model_name_or_path",
            tiny_models / "t5",
            "--source_prefix",
            "summarize: ",
            "--train_file",
            XSUM,
            "--validation_file",
            XSUM,
            "--do_train",
            "--do_eval",
            "--predict_with_generate",
            "--max_steps",
            20,
            "--learning_rate",
            3e-3,
            "--lr_scheduler_type",
            "constant",
            "--warmup_steps",
            0,
            "--max_grad_norm",
            0,
            "--per_device_train_batch_size",
            2,
            "--per_device_eval_batch_size",
            4,
            "--max_source_length",
            128,
            "--max_target_length",
            32,
            "--logging_steps",
            5,
            "--seed",
            7,
            "--save_strategy",
            "no",
            "--output_dir",
            output_dir,
        ]  # fmt: skip
    )
    trainer = read_json(output_dir / "all_results.json")
    ours = read_json(t5_run[0] / "all_results.json")
    eval_keys = {key for key in trainer if key.startswith("eval_")} - {
        "eval_loss",  # the no_trainer loop reports no eval loss (as upstream), and no timings
        "eval_runtime",
        "eval_samples_per_second",
        "eval_steps_per_second",
    }
    assert eval_keys == {key for key in ours if key.startswith("eval_")}
    assert set(ours) - {"step"} - {key for key in ours if key.startswith("predict_")} <= set(trainer)
    assert ours["eval_samples"] == trainer["eval_samples"] == 10
    # Logged Trainer losses are means over 5 steps; compare the same windows.
    trainer_losses = {
        e["step"]: e["loss"] for e in read_json(output_dir / "trainer_state.json")["log_history"] if "loss" in e
    }
    ours_by_step = step_losses(t5_run[0])
    for step in (5, 20):
        window = sum(ours_by_step[s] for s in range(step - 4, step + 1)) / 5
        assert window == pytest.approx(trainer_losses[step], rel=0.2), (step, window, trainer_losses)


@pytest.mark.slow
def test_resume_mid_epoch_ends_exactly_like_the_uninterrupted_run(tiny_models, tmp_path):
    # Dropout on, so that the resumed run must also restore the RNG state to match.
    model_dir = tmp_path / "t5-dropout"
    shutil.copytree(tiny_models / "t5", model_dir)
    config = read_json(model_dir / "config.json")
    (model_dir / "config.json").write_text(json.dumps({**config, "dropout_rate": 0.1}))
    output_dir = tmp_path / "out"
    command = no_trainer_args(model_dir, output_dir, **{"--source_prefix": "summarize: ", "--checkpointing_steps": 7})
    run_example(command)
    uninterrupted = tmp_path / "uninterrupted"
    shutil.copytree(output_dir, uninterrupted, ignore=shutil.ignore_patterns("step_*"))

    # Leave the folder as a job killed after step_7 would have (step 7 = epoch 1, 2 of its 5 batches done).
    for path in output_dir.iterdir():
        if path.name != "step_7":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    result = run_example([*command, "--resume_from_checkpoint", output_dir / "step_7"])
    assert "Resuming training from" in result.stdout and "step 7, epoch 1, 2 batches into it" in result.stdout

    resumed_losses, losses = step_losses(output_dir), step_losses(uninterrupted)
    assert list(resumed_losses) == list(range(8, 21))
    for step, loss in resumed_losses.items():
        assert loss == pytest.approx(losses[step], abs=1e-5), (step, resumed_losses, losses)
    expected, actual = read_json(uninterrupted / "all_results.json"), read_json(output_dir / "all_results.json")
    assert expected.keys() == actual.keys()
    for key in expected.keys() - {"train_runtime"}:
        assert actual[key] == pytest.approx(expected[key], abs=1e-5), key  # train_loss covers steps 1-7 too
    assert_same_weights(uninterrupted, output_dir)
    assert read_lines(output_dir / "eval_predictions.txt") == read_lines(uninterrupted / "eval_predictions.txt")


def test_the_same_command_resumes_from_the_newest_complete_epoch_checkpoint(bart_run, tiny_models, tmp_path):
    """Auto-resume (a folder holding only checkpoints) at an epoch boundary, with gradient accumulation. The newest
    checkpoint lost its optimizer state and another one was never finished: both are skipped."""
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    shutil.copytree(bart_run[0] / "epoch_0", output_dir / "epoch_0")
    shutil.copytree(bart_run[0] / "epoch_1", output_dir / "epoch_1")
    (output_dir / "epoch_1" / "optimizer.bin").unlink()  # now the newest folder, but a resume cannot load it
    (output_dir / "epoch_2.partial").mkdir()  # a save the kill interrupted: must be ignored
    (output_dir / "epoch_2.partial" / "model.safetensors").write_text("half a file")
    result = run_example(no_trainer_args(tiny_models / "bart", output_dir, **BART_OVERRIDES))
    log = result.stdout + result.stderr
    assert f"skipping {output_dir / 'epoch_1'}: incomplete (no optimizer.bin)" in log, log[-3000:]
    assert f"Resuming training from {output_dir / 'epoch_0'}: step 3, epoch 1, 0 batches into it" in result.stdout
    assert list(step_losses(output_dir)) == list(range(4, 10))
    for step, loss in step_losses(output_dir).items():
        assert loss == pytest.approx(step_losses(bart_run[0])[step], abs=1e-5), step
    for key in ("eval_rouge1", "eval_rougeLsum", "eval_gen_len", "train_loss", "step", "epoch"):
        expected = read_json(bart_run[0] / "all_results.json")[key]
        assert read_json(output_dir / "all_results.json")[key] == pytest.approx(expected, abs=1e-5), key
    assert_same_weights(bart_run[0], output_dir)
    assert sorted(os.listdir(output_dir / "epoch_1")) == sorted(os.listdir(bart_run[0] / "epoch_1"))


@pytest.mark.slow
def test_two_processes_evaluate_every_example_once(t5_run, tiny_models, tmp_path):
    output_dir = tmp_path / "two-processes"
    launcher = [
        ACCELERATE, "launch", "--multi_gpu", "--num_processes", 2, "--num_machines", 1, "--mixed_precision", "no",
        "--dynamo_backend", "no",
    ]  # fmt: skip
    command = no_trainer_args(
        tiny_models / "t5", output_dir, **{"--source_prefix": "summarize: ", "--checkpointing_steps": 7}
    )
    result = run_example(command, launcher=launcher, env={"ACCELERATE_USE_CPU": "true"})
    log = result.stdout + result.stderr
    for rank in (0, 1):  # the script's own banner, one per process: not the launcher's flags
        assert f"Process rank: {rank}, device: cpu" in log and "world size: 2" in log, log[-3000:]
    results = read_json(output_dir / "all_results.json")
    predictions = read_lines(output_dir / "eval_predictions.txt")
    # 10 examples in per-device batches of 4 on 2 processes: the last batch is padded with repeats, dropped again.
    assert results["eval_samples"] == len(predictions) == 10
    references = [row["summary"] for row in read_jsonl(XSUM)]
    assert {key: results[f"eval_{key}"] for key in ROUGE_KEYS} == reference_rouge(predictions, references)
    # The logged loss is the true mean over both processes: step 1 starts from the same model as the 1-process run.
    losses, single = step_losses(output_dir), step_losses(t5_run[0])
    assert losses[1] == pytest.approx(single[1], rel=0.1) and losses[20] < losses[1] - 0.5, losses
    assert (output_dir / "step_7" / "random_states_1.pkl").exists()  # every process's RNG is checkpointed


def test_boolean_values_parse_strictly_and_a_new_model_trains_from_scratch(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    result = run_example(
        no_trainer_args(
            None,
            output_dir,
            **{
                "--model_name_or_path": None,
                "--model_type": "t5",
                "--config_name": tiny_models / "t5",
                "--tokenizer_name": tiny_models / "t5",
                "--validation_file": None,
                "--max_train_samples": 4,
                "--max_train_steps": 2,
                "--ignore_pad_token_for_loss": "False",  # upstream's type=bool read this as True
                "--resize_position_embeddings": "no",
            },
        )
    )
    recorded = read_json(output_dir / "run_arguments.json")["Namespace"]  # every argument, not in the log
    assert recorded["ignore_pad_token_for_loss"] is False and recorded["resize_position_embeddings"] is False
    assert "Arguments:" not in result.stdout
    assert "Training a new t5 model from scratch" in result.stdout
    results = read_json(output_dir / "all_results.json")
    assert results["step"] == 2 and results["train_samples"] == 4 and "eval_rouge1" not in results
    assert (output_dir / "model.safetensors").exists()


def test_refuses_an_output_dir_with_results_unless_overwrite(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    (output_dir / "step_3").mkdir(parents=True)
    (output_dir / "all_results.json").write_text('{"eval_rouge1": 42.0}')
    args = no_trainer_args(
        tiny_models / "t5", output_dir, **{"--validation_file": None, "--max_train_steps": 1, "--max_train_samples": 2}
    )
    refused = run_example(args, expect_success=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    last_line = refused.stderr.strip().splitlines()[-1]
    assert "already holds an earlier run (all_results.json)" in last_line and "--overwrite_output_dir" in last_line
    assert read_json(output_dir / "all_results.json") == {"eval_rouge1": 42.0}

    run_example([*args, "--overwrite_output_dir"])
    results = read_json(output_dir / "all_results.json")
    assert "eval_rouge1" not in results and results["step"] == 1  # nothing stale merged in
    assert not (output_dir / "step_3").exists()


@pytest.mark.slow
def test_two_processes_train_a_model_with_fixed_position_tables(tiny_models, tmp_path):
    """Pegasus' sinusoidal position table is a parameter that gets no gradient; plain DDP refuses to train it."""
    launcher = [
        ACCELERATE, "launch", "--multi_gpu", "--num_processes", 2, "--num_machines", 1, "--mixed_precision", "no",
        "--dynamo_backend", "no",
    ]  # fmt: skip
    output_dir = tmp_path / "pegasus"
    command = no_trainer_args(tiny_models / "pegasus", output_dir, **{"--max_train_steps": 4})
    result = run_example(command, launcher=launcher, env={"ACCELERATE_USE_CPU": "true"})
    assert (result.stdout + result.stderr).count("world size: 2") >= 2
    assert read_json(output_dir / "all_results.json")["eval_samples"] == 10


def test_torchrun_without_gpus_trains_the_two_processes_together(tiny_models, tmp_path):
    # No ACCELERATE_USE_CPU: on a machine without GPUs the two processes are connected on the CPU by themselves.
    torchrun = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", 2]
    output_dir = tmp_path / "out"
    changes = {"--validation_file": None, "--max_train_samples": 4, "--max_train_steps": 2, "--source_prefix": "s: "}
    result = run_example(no_trainer_args(tiny_models / "t5", output_dir, **changes), launcher=torchrun)
    log = result.stdout + result.stderr
    assert result.stderr.count("2 processes and no GPU: connecting them on the CPU over gloo") == 1, log[-3000:]
    for rank in (0, 1):
        assert re.search(rf"Process rank: {rank}, device: cpu(:\d+)?, world size: 2,", log), log[-3000:]
    # One run: 4 examples in batches of 2 per process = 1 step of 4 examples per epoch, not two runs of 2 steps.
    assert "training on 4 examples: 2 steps (1 per epoch) of 4 examples (2 per device x 2 processes" in log
    results = read_json(output_dir / "all_results.json")
    assert (results["step"], results["epoch"], results["train_samples"]) == (2, 2, 4)


def test_a_short_run_prints_a_few_lines_and_records_every_argument(tiny_models, tmp_path):
    """Train, evaluate and predict for 2 steps on 4 examples, with a checkpoint at every step."""
    output_dir = tmp_path / "out"
    changes = {"--source_prefix": "summarize: ", "--test_file": XSUM, "--do_predict": "", "--max_train_steps": 2}
    changes |= {"--max_train_samples": 4, "--max_eval_samples": 4, "--max_predict_samples": 4}
    changes |= {"--checkpointing_steps": 1, "--hub_token": "hf_not_a_real_token"}
    result = run_example(no_trainer_args(tiny_models / "t5", output_dir, **changes))
    log = result.stdout + result.stderr
    assert log.count("\n") <= 60, log
    assert "INFO - accelerate_training - Process rank: 0, device: cpu, world size: 1, precision: no" in log
    run_lines = [line for line in log.splitlines() if " - Run: " in line]
    assert len(run_lines) == 1 and "training on 4 examples: 2 steps (2 per epoch) of 2 examples" in run_lines[0]
    assert "evaluating on 4 after every epoch; predicting 4; fp32 on cpu, world size: 1" in run_lines[0]
    for noise in ("Arguments:", "Offline mode", "Model config", "GenerationConfig", "saved in", "Removed shared"):
        assert noise not in log, noise
    recorded = read_json(output_dir / "run_arguments.json")["Namespace"]
    assert recorded["max_train_steps"] == 2 and recorded["hub_token"] == "<secret>"
    assert "hf_not_a_real_token" not in log + (output_dir / "run_arguments.json").read_text()
    assert "run_arguments.json" not in log  # the outputs line lists results, not bookkeeping


def test_sigterm_names_the_checkpoint_and_the_same_command_resumes(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    command = no_trainer_args(
        tiny_models / "t5",
        output_dir,
        **{"--source_prefix": "summarize: ", "--validation_file": None, "--checkpointing_steps": 1},
    )
    env = {**os.environ, **TEST_ENV, "HF_HOME": fresh_hf_home()}
    # Output to files, not pipes: nobody reads a pipe while the run goes on, and a full one would stall it.
    with open(tmp_path / "stdout.log", "w") as stdout_file, open(tmp_path / "stderr.log", "w") as stderr_file:
        process = subprocess.Popen(
            [sys.executable, *map(str, command)], cwd=REPO_ROOT, env=env, stdout=stdout_file, stderr=stderr_file
        )
        deadline, checkpoints = time.time() + 300, []
        while not checkpoints and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)  # step_N.partial is renamed to step_N once complete: wait for a final name
            if output_dir.is_dir():
                checkpoints = [name for name in os.listdir(output_dir) if re.fullmatch(r"step_\d+", name)]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # what a batch scheduler sends before it kills a job
        process.wait(timeout=120)
    stdout, stderr = (tmp_path / "stdout.log").read_text(), (tmp_path / "stderr.log").read_text()
    assert checkpoints, stderr[-3000:]
    assert process.returncode == 143, f"exit code {process.returncode}\n{stderr[-3000:]}"
    assert "Traceback" not in stdout + stderr, stderr[-3000:]
    last_line = stderr.strip().splitlines()[-1]
    saved = re.search(
        rf"interrupted \(SIGTERM\); last complete checkpoint: {re.escape(str(output_dir))}/step_(\d+);", last_line
    )
    assert saved, last_line
    assert "rerun the same command to resume: " in last_line and SCRIPT in last_line, last_line
    assert not (output_dir / "run.lock").exists()

    result = run_example(command)
    assert f"Resuming training from {output_dir}/step_{saved[1]}: step {saved[1]}," in result.stdout, result.stdout
    assert read_json(output_dir / "all_results.json")["step"] == 20
    assert list(step_losses(output_dir)) == list(range(1, 21))
