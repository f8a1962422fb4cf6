"""run_translation_no_trainer.py, run as a user would (subprocess, offline) on the tiny local models."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sacrebleu
from safetensors.numpy import load_file

from helpers import FIXTURES, REPO_ROOT, TEST_ENV, read_json, read_jsonl, read_lines, run_example

SCRIPT = "examples/pytorch/translation/run_translation_no_trainer.py"
TRAINER_SCRIPT = "examples/pytorch/translation/run_translation.py"
WMT16 = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"
ACCELERATE = Path(sys.executable).parent / "accelerate"  # the launcher installed next to this Python
METRIC_KEYS = ("bleu", "chrf", "bleu_signature", "chrf_signature", "gen_len", "samples")

# Copied from tests.pytorch.translation.test_run_translation.SACREBLEU_CLI
SACREBLEU_CLI = [sys.executable, "-m", "sacrebleu"]


# Copied from tests.pytorch.translation.test_run_translation.sacrebleu_cli
def sacrebleu_cli(predictions_path, reference_paths, tokenize: str = "13a") -> dict[str, float]:
    """BLEU and chrF as the sacrebleu command line prints them (4 decimals) for the same files."""
    command = [*SACREBLEU_CLI, *map(str, reference_paths), "-i", str(predictions_path), "-m", "bleu", "chrf"]
    command += ["-tok", tokenize, "-w", "4", "-b"]
    bleu, chrf = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    return {"bleu": bleu, "chrf": chrf}


# Copied from tests.pytorch.translation.test_run_translation.assert_prediction_records
def assert_prediction_records(
    output_dir, references, max_length: int, tokenize: str = "13a", prepare=None, stem: str = "generated_predictions"
) -> list[dict]:
    """`<stem>.jsonl` against `<stem>.txt`: one record per line with the same text, index 0..N-1, the data's
    references (`references`: per example a text or a list of texts; None = no references, so no scores), sentence
    BLEU and chrF equal to sacrebleu's on that line (after `prepare`, e.g. the Romanian post-processing), and
    generated lengths within `max_length`: a generation that stopped at the limit used all of it (the start token is
    given, not generated), one that ended earlier did not. Returns the records."""
    predictions = read_lines(output_dir / f"{stem}.txt")
    records = read_jsonl(output_dir / f"{stem}.jsonl")
    assert [record["index"] for record in records] == list(range(len(predictions)))
    assert [record["prediction"] for record in records] == predictions
    for record in records:
        tokens, at_limit = record["generated_tokens"], record["hit_length_limit"]
        assert type(tokens) is int and 0 < tokens <= max_length - 1, record
        assert type(at_limit) is bool and at_limit == (tokens == max_length - 1), record
    if references is None:
        assert not any("references" in record or "scores" in record for record in records), records[0]
        return records
    prepare = prepare or (lambda text: text)
    for record, expected in zip(records, references, strict=True):
        expected = [expected] if isinstance(expected, str) else list(expected)
        assert record["references"] == expected
        hypothesis, scored = prepare(record["prediction"]), [prepare(text) for text in expected]
        bleu = sacrebleu.sentence_bleu(hypothesis, scored, tokenize=tokenize).score
        chrf = sacrebleu.sentence_chrf(hypothesis, scored).score
        assert record["scores"] == {"bleu": round(bleu, 4), "chrf": round(chrf, 4)}, record
    return records


def no_trainer_args(model_dir, output_dir, **overrides) -> list:
    """A marian en->ro train + eval + predict command on the 10-example WMT16 sample: 5 batches of 2 per epoch,
    so 30 steps = 6 epochs, a checkpoint every 3 steps. A value of None drops the flag; "" makes it a flag."""
    args = {
        "--model_name_or_path": model_dir,
        "--source_lang": "en",
        "--target_lang": "ro",
        "--train_file": WMT16,
        "--validation_file": WMT16,
        "--test_file": WMT16,
        "--do_predict": "",
        "--output_dir": output_dir,
        "--max_train_steps": 30,
        "--checkpointing_steps": 3,
        "--learning_rate": 3e-3,
        "--lr_scheduler_type": "constant",
        "--per_device_train_batch_size": 2,
        "--per_device_eval_batch_size": 4,  # 10 examples: the last eval batch is uneven
        "--max_source_length": 64,
        "--max_target_length": 64,
        "--val_max_target_length": 32,
        "--logging_steps": 5,
        "--seed": 3,
        **overrides,
    }
    command = [SCRIPT]
    for flag, value in args.items():
        command += [] if value is None else [flag] if value == "" else [flag, value]
    return command


def write_references(path) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{row['translation']['ro']}\n" for row in read_jsonl(WMT16))
    return Path(path)


def step_losses(output_dir) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in read_jsonl(Path(output_dir) / "train_log.jsonl")}


def assert_same_weights(expected_dir, actual_dir) -> None:
    expected = load_file(str(Path(expected_dir) / "model.safetensors"))
    actual = load_file(str(Path(actual_dir) / "model.safetensors"))
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert abs(tensor - actual[name]).max() < 1e-5, name


@pytest.fixture(scope="module")
def marian_run(tiny_models, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("marian") / "out"
    start = time.time()
    result = run_example(no_trainer_args(tiny_models / "marian", output_dir))
    return output_dir, result.stdout + result.stderr, time.time() - start


def test_outputs_keys_and_the_loss_goes_down(marian_run):
    output_dir, log, _ = marian_run
    for name in ["all_results.json", "train_results.json", "eval_results.json", "predict_results.json"]:
        assert (output_dir / name).exists(), name
    for name in ["eval_predictions.txt", "generated_predictions.txt", "train_log.jsonl", "model.safetensors"]:
        assert (output_dir / name).exists(), name
    assert sorted(name for name in os.listdir(output_dir) if name.startswith("step_")) == sorted(
        f"step_{step}" for step in range(3, 31, 3)
    )
    results = read_json(output_dir / "all_results.json")
    expected = {"train_loss", "train_runtime", "train_samples", "epoch", "step"}
    expected |= {f"{stage}_{key}" for stage in ("eval", "predict") for key in METRIC_KEYS}
    assert set(results) == expected
    assert results["train_samples"] == results["eval_samples"] == results["predict_samples"] == 10
    assert (results["step"], results["epoch"]) == (30, 6)
    assert results["eval_bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert len(read_lines(output_dir / "eval_predictions.txt")) == 10
    assert len(read_lines(output_dir / "generated_predictions.txt")) == 10
    losses = step_losses(output_dir)
    assert list(losses) == list(range(1, 31))
    first, last = list(losses.values())[:3], list(losses.values())[-3:]
    assert sum(last) / 3 < sum(first) / 3 - 0.5, losses
    assert "world size: 1" in log and "input tokens/s" in log


def test_bleu_and_chrf_equal_the_sacrebleu_command_line(marian_run, tmp_path):
    output_dir, _, _ = marian_run
    references = write_references(tmp_path / "references.ro")
    for split, predictions_file in (("eval", "eval_predictions.txt"), ("predict", "generated_predictions.txt")):
        saved = read_json(output_dir / f"{split}_results.json")
        cli = sacrebleu_cli(output_dir / predictions_file, [references])
        assert {"bleu": saved[f"{split}_bleu"], "chrf": saved[f"{split}_chrf"]} == cli, split
        assert saved[f"{split}_chrf"] > 0  # a real comparison, not 0 == 0


def test_per_example_records_match_the_predictions_and_sacrebleu(marian_run):
    output_dir, _, _ = marian_run
    references = [row["translation"]["ro"] for row in read_jsonl(WMT16)]
    for stem in ("eval_predictions", "generated_predictions"):
        records = assert_prediction_records(output_dir, references, max_length=32, stem=stem)
        assert len(records) == 10 and any(record["scores"]["chrf"] > 0 for record in records), stem


def test_mbart50_forces_the_target_code_as_first_token(tiny_models, tmp_path):
    from transformers import AutoTokenizer

    output_dir = tmp_path / "out"
    # The test data has no Romanian side (translations written, not scored), and a limit of 4 tokens: the start
    # token, the forced ro_RO and two more, so every translation is cut.
    sources = tmp_path / "sources.jsonl"
    with open(sources, "w", encoding="utf-8") as handle:
        handle.writelines(
            json.dumps({"translation": {"en": row["translation"]["en"]}}) + "\n" for row in read_jsonl(WMT16)
        )
    changes = {"--source_lang": "en_XX", "--target_lang": "ro_RO", "--validation_file": None, "--test_file": sources}
    changes |= {"--max_train_steps": 2, "--checkpointing_steps": None, "--val_max_target_length": 4}
    result = run_example(no_trainer_args(tiny_models / "mbart50", output_dir, **changes))
    ro_id = AutoTokenizer.from_pretrained(tiny_models / "mbart50").convert_tokens_to_ids("ro_RO")
    generation = read_json(output_dir / "generation_config.json")
    assert generation["forced_bos_token_id"] == ro_id
    assert generation["decoder_start_token_id"] == 2  # </s>, as in the real checkpoints
    assert "translations are written but not scored" in result.stdout + result.stderr
    records = assert_prediction_records(output_dir, None, max_length=4)
    assert [(record["generated_tokens"], record["hit_length_limit"]) for record in records] == [(3, True)] * 10


def test_same_metric_keys_and_comparable_loss_as_the_trainer_script(marian_run, tiny_models, tmp_path):
    """The Trainer twin with the same model, data, seed and hyper-parameters (constant LR, no warmup, no clipping)."""
    output_dir = tmp_path / "trainer"
    run_example(
        [
            TRAINER_SCRIPT,
            "--model_name_or_path",
            tiny_models / "marian",
            "--source_lang",
            "en",
            "--target_lang",
            "ro",
            "--train_file",
            WMT16,
            "--validation_file",
            WMT16,
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
            64,
            "--max_target_length",
            64,
            "--generation_max_length",
            32,
            "--logging_steps",
            5,
            "--seed",
            3,
            "--save_strategy",
            "no",
            "--output_dir",
            output_dir,
        ]  # fmt: skip
    )
    trainer = read_json(output_dir / "all_results.json")
    ours = read_json(marian_run[0] / "all_results.json")
    # The no_trainer loop reports no eval loss (as upstream), and no timings.
    ignored = {"eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}
    assert {key for key in trainer if key.startswith("eval_")} - ignored == {
        key for key in ours if key.startswith("eval_")
    }
    assert ours["eval_samples"] == trainer["eval_samples"] == 10
    assert ours["eval_bleu_signature"] == trainer["eval_bleu_signature"]
    # Logged Trainer losses are means over 5 steps; compare the same windows (constant LR: steps 1-20 do not
    # depend on the total number of steps).
    trainer_losses = {
        e["step"]: e["loss"] for e in read_json(output_dir / "trainer_state.json")["log_history"] if "loss" in e
    }
    ours_by_step = step_losses(marian_run[0])
    for step in (5, 20):
        window = sum(ours_by_step[s] for s in range(step - 4, step + 1)) / 5
        assert window == pytest.approx(trainer_losses[step], rel=0.2), (step, window, trainer_losses)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_model(marian_run, tiny_models, tmp_path):
    """SIGKILL a run once a checkpoint is complete, run the same command again: it resumes from the newest
    checkpoint and ends with the weights of the uninterrupted run."""
    output_dir = tmp_path / "out"
    command = [sys.executable, *map(str, no_trainer_args(tiny_models / "marian", output_dir))]
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, **TEST_ENV}, stdout=log, stderr=log)
        deadline = time.time() + 300
        checkpoints = []
        # Checkpoints are written as step_N.partial and renamed when complete: wait for a final name.
        while not checkpoints and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
            if output_dir.is_dir():
                checkpoints = [name for name in os.listdir(output_dir) if re.fullmatch(r"step_\d+", name)]
        if process.poll() is None:  # still running (a finished process may not be signalled: its pid is free)
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert checkpoints, (tmp_path / "killed.log").read_text()[-2000:]
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (output_dir / "all_results.json").exists()

    result = run_example(command[1:])
    resumed_at = re.search(r"Resuming training from \S+step_(\d+): step (\d+)", result.stdout)
    assert resumed_at and resumed_at[1] == resumed_at[2], result.stdout[-2000:]
    assert int(resumed_at[1]) >= int(checkpoints[0].split("_")[1])

    uninterrupted = marian_run[0]
    assert_same_weights(uninterrupted, output_dir)
    assert list(step_losses(output_dir)) == list(range(1, 31))
    for step, loss in step_losses(output_dir).items():
        assert loss == pytest.approx(step_losses(uninterrupted)[step], abs=1e-5), step
    expected, actual = read_json(uninterrupted / "all_results.json"), read_json(output_dir / "all_results.json")
    assert expected.keys() == actual.keys()
    for key in expected.keys() - {"train_runtime"}:
        assert actual[key] == pytest.approx(expected[key], abs=1e-5), key
    assert read_lines(output_dir / "generated_predictions.txt") == read_lines(
        uninterrupted / "generated_predictions.txt"
    )


@pytest.mark.slow
def test_two_processes_evaluate_every_example_once(tiny_models, tmp_path):
    output_dir = tmp_path / "two-processes"
    launcher = [
        ACCELERATE, "launch", "--multi_gpu", "--num_processes", 2, "--num_machines", 1, "--mixed_precision", "no",
        "--dynamo_backend", "no",
    ]  # fmt: skip
    changes = {"--max_train_steps": 10, "--test_file": None, "--do_predict": None, "--checkpointing_steps": 5}
    result = run_example(
        no_trainer_args(tiny_models / "marian", output_dir, **changes),
        launcher=launcher,
        env={"ACCELERATE_USE_CPU": "true"},
    )
    log = result.stdout + result.stderr
    for rank in (0, 1):  # the script's own banner, one per process: not the launcher's flags
        assert re.search(rf"Process rank: {rank}, device: cpu(:\d+)?, world size: 2,", log), log[-3000:]
    results = read_json(output_dir / "all_results.json")
    predictions = read_lines(output_dir / "eval_predictions.txt")
    # 10 examples in per-device batches of 4 on 2 processes: the last batch is padded with repeats, dropped again.
    assert results["eval_samples"] == len(predictions) == 10
    cli = sacrebleu_cli(output_dir / "eval_predictions.txt", [write_references(tmp_path / "references.ro")])
    assert {"bleu": results["eval_bleu"], "chrf": results["eval_chrf"]} == cli
    # Written once (by the main process), every example once, in input order.
    references = [row["translation"]["ro"] for row in read_jsonl(WMT16)]
    assert_prediction_records(output_dir, references, max_length=32, stem="eval_predictions")
    assert (output_dir / "step_5" / "random_states_1.pkl").exists()  # every process's RNG is checkpointed
