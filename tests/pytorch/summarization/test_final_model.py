"""Which weights a run ends with: early stopping on the generation metric with the best model kept, and averaged
checkpoints, through run_summarization.py and its Accelerate twin on the tiny T5 model. Also the training curves and
the model card those runs write."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

from helpers import FIXTURES, read_json, read_jsonl, run_example

SCRIPT = "examples/pytorch/summarization/run_summarization.py"
TWIN = "examples/pytorch/summarization/run_summarization_no_trainer.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
PATIENCE = 2


def common_args(tiny_models, output_dir) -> list:
    return [
        "--model_name_or_path",
        tiny_models / "t5",
        "--source_prefix",
        "summarize: ",
        "--train_file",
        XSUM,
        "--validation_file",
        XSUM,
        "--max_eval_samples",
        "4",
        "--max_source_length",
        "64",
        "--max_target_length",
        "16",
        "--output_dir",
        output_dir,
    ]


def assert_same_weights(saved: dict, checkpoint: dict) -> None:
    """Every tensor the saved model holds equals the checkpoint's (checkpoints may also hold tied copies)."""
    assert set(saved) <= set(checkpoint)
    for key, tensor in saved.items():
        assert torch.equal(tensor, checkpoint[key]), key


def differs(first: dict, second: dict) -> bool:
    return any(not torch.equal(first[key], second[key]) for key in first if key in second)


def expected_stop(values: list[float], patience: int) -> tuple[int, int]:
    """(index of the best evaluation, index of the evaluation training stops after) by the Trainer's rules with
    threshold 0: patience counts evaluations that do not beat the best so far; the best is the first maximum."""
    best, without = 0, 0
    for index, value in enumerate(values[1:], start=1):
        if value > values[best]:
            best, without = index, 0
        else:
            without += 1
            if without >= patience:
                return best, index
    return best, len(values) - 1


@pytest.fixture(scope="module")
def early_stopped_run(tiny_models, tmp_path_factory):
    """Trainer run that evaluates ROUGE every 2 steps, with a learning rate that changes the weights but not the
    tiny model's ROUGE: a plateau."""
    output_dir = tmp_path_factory.mktemp("early_stopping") / "out"
    return output_dir, run_example(early_stopping_args(tiny_models, output_dir))


def early_stopping_args(tiny_models, output_dir) -> list:
    return (
        [SCRIPT, *common_args(tiny_models, output_dir)]
        + ["--do_train", "--do_eval", "--predict_with_generate", "--per_device_train_batch_size", "2"]
        + ["--max_steps", "40", "--learning_rate", "1e-3", "--eval_strategy", "steps", "--eval_steps", "2"]
        + ["--save_steps", "2", "--logging_steps", "1", "--val_max_target_length", "8"]
        + ["--early_stopping_patience", str(PATIENCE), "--load_best_model_at_end", "True"]
        + ["--metric_for_best_model", "rougeLsum"]
    )


def test_trainer_stops_on_a_plateau_and_keeps_the_best_checkpoint(early_stopped_run):
    output_dir, _ = early_stopped_run
    state = read_json(output_dir / "trainer_state.json")
    evaluations = [entry for entry in state["log_history"] if "eval_rougeLsum" in entry]
    best, last = expected_stop([entry["eval_rougeLsum"] for entry in evaluations], PATIENCE)
    assert state["global_step"] == evaluations[last]["step"] < 40  # stopped before the step limit
    best_checkpoint = output_dir / f"checkpoint-{evaluations[best]['step']}"
    assert state["best_model_checkpoint"].endswith(best_checkpoint.name)
    saved = load_file(output_dir / "model.safetensors")
    assert_same_weights(saved, load_file(best_checkpoint / "model.safetensors"))
    last_checkpoint = load_file(output_dir / f"checkpoint-{state['global_step']}" / "model.safetensors")
    assert differs(saved, last_checkpoint)  # training did change the weights: the best one was put back


def test_a_resumed_run_keeps_counting_and_stops_where_the_uninterrupted_one_did(
    early_stopped_run, tiny_models, tmp_path
):
    output_dir, _ = early_stopped_run
    state = read_json(output_dir / "trainer_state.json")
    # The run killed after its second-to-last evaluation: only the checkpoints up to then are left.
    interrupted = tmp_path / "out"
    for step in range(2, state["global_step"], 2):
        shutil.copytree(output_dir / f"checkpoint-{step}", interrupted / f"checkpoint-{step}")
    result = run_example(early_stopping_args(tiny_models, interrupted))
    last_kept = interrupted / f"checkpoint-{state['global_step'] - 2}"
    assert f"Resuming training from {last_kept}" in result.stdout + result.stderr
    resumed = read_json(interrupted / "trainer_state.json")
    assert resumed["global_step"] == state["global_step"]
    assert resumed["best_model_checkpoint"].endswith(state["best_model_checkpoint"].rsplit("/", 1)[1])
    assert_same_weights(load_file(interrupted / "model.safetensors"), load_file(output_dir / "model.safetensors"))


def test_trainer_run_writes_curves_and_a_card_that_says_how_it_ended(early_stopped_run):
    from training_curves import read_plotted_series

    output_dir, _ = early_stopped_run
    state = read_json(output_dir / "trainer_state.json")
    series = read_plotted_series(str(output_dir / "training_curves.png"))
    losses = [(entry["step"], entry["loss"]) for entry in state["log_history"] if "loss" in entry]
    assert list(zip(series["loss"]["step"], series["loss"]["value"], strict=True)) == losses
    rouge = [(entry["step"], entry["eval_rougeLsum"]) for entry in state["log_history"] if "eval_rougeLsum" in entry]
    assert list(zip(series["eval_rougeLsum"]["step"], series["eval_rougeLsum"]["value"], strict=True)) == rouge
    card = (output_dir / "README.md").read_text()
    eval_results = read_json(output_dir / "eval_results.json")
    assert f"| rougeLsum | {eval_results['eval_rougeLsum']} |" in card
    assert f"`eval_rouge_signature`: `{eval_results['eval_rouge_signature']}`" in card
    assert f"Training stopped early at step {state['global_step']} of 40" in card
    assert "--early_stopping_patience 2" in card and f"--train_file {XSUM}" in card
    assert "tiny-models/t5" in card


def test_trainer_evaluates_and_saves_the_average_of_the_last_checkpoints(tiny_models, tmp_path):
    output_dir = tmp_path / "averaged"
    run_example(
        [SCRIPT, *common_args(tiny_models, output_dir)]
        + ["--do_train", "--do_eval", "--per_device_train_batch_size", "2", "--max_steps", "6"]
        + ["--learning_rate", "1e-3", "--save_steps", "2", "--average_last_checkpoints", "2"]
    )
    first, second = (load_file(output_dir / f"checkpoint-{step}" / "model.safetensors") for step in (4, 6))
    saved = load_file(output_dir / "model.safetensors")
    for key, tensor in saved.items():
        assert torch.equal(tensor, (first[key] + second[key]) / 2), key
    assert differs(saved, second)
    # The final evaluation is the averaged model's: an eval-only run of the saved folder gives the same loss.
    check_dir = tmp_path / "check"
    run_example([SCRIPT, *common_args(tiny_models, check_dir)[2:]] + ["--model_name_or_path", output_dir, "--do_eval"])
    assert (
        read_json(output_dir / "eval_results.json")["eval_loss"]
        == read_json(check_dir / "eval_results.json")["eval_loss"]
    )
    assert (
        "the average of the last 2 checkpoints (checkpoint-4, checkpoint-6)" in (output_dir / "README.md").read_text()
    )


def test_twin_stops_on_a_plateau_and_restores_the_best_epoch(tiny_models, tmp_path):
    output_dir = tmp_path / "twin"
    run_example(
        [TWIN, *common_args(tiny_models, output_dir)]
        + ["--per_device_train_batch_size", "5", "--num_train_epochs", "12", "--learning_rate", "1e-3"]
        + ["--checkpointing_steps", "epoch", "--val_max_target_length", "8", "--logging_steps", "1"]
        + ["--early_stopping_patience", str(PATIENCE), "--load_best_model_at_end", "--metric_for_best_model", "rougeL"]
    )
    evaluations = [record for record in read_jsonl(output_dir / "eval_log.jsonl")]
    best, last = expected_stop([record["eval_rougeL"] for record in evaluations], PATIENCE)
    assert len(evaluations) == last + 1 < 12  # stopped before the epoch limit
    saved = load_file(output_dir / "model.safetensors")
    assert_same_weights(saved, load_file(output_dir / f"epoch_{evaluations[best]['epoch']}" / "model.safetensors"))
    assert differs(saved, load_file(output_dir / f"epoch_{evaluations[last]['epoch']}" / "model.safetensors"))
    # eval_results.json is the restored model's evaluation: the best epoch's scores.
    eval_results = read_json(output_dir / "eval_results.json")
    assert eval_results["eval_rougeL"] == evaluations[best]["eval_rougeL"]
    assert eval_results["eval_gen_len"] == evaluations[best]["eval_gen_len"]
    card = (output_dir / "README.md").read_text()
    assert f"at epoch_{evaluations[best]['epoch']}" in card and "Training stopped early" in card
    from training_curves import read_plotted_series

    series = read_plotted_series(str(output_dir / "training_curves.png"))
    assert series["eval_rougeL"]["value"] == [record["eval_rougeL"] for record in evaluations]
