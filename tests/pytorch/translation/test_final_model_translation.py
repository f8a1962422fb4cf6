"""The translation scripts' final model (early stopping on BLEU with the best model kept, averaged checkpoints),
n-best lists and model card, on the tiny Marian model."""

import torch
from safetensors.torch import load_file

from helpers import FIXTURES, read_json, read_jsonl, read_lines, run_example

SCRIPT = "examples/pytorch/translation/run_translation.py"
TWIN = "examples/pytorch/translation/run_translation_no_trainer.py"
WMT16 = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"


def common_args(tiny_models, output_dir) -> list:
    return [
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
        "--test_file",
        WMT16,
        "--max_eval_samples",
        "4",
        "--max_predict_samples",
        "4",
        "--max_source_length",
        "32",
        "--max_target_length",
        "12",
        "--num_beams",
        "3",
        "--num_return_sequences",
        "2",
        "--do_predict",
        "--output_dir",
        output_dir,
    ]


def assert_nbest(output_dir) -> None:
    records = read_jsonl(output_dir / "generated_predictions.nbest.jsonl")
    lines = read_lines(output_dir / "generated_predictions.txt")
    assert len(records) == len(lines) == 4
    for record, line in zip(records, lines, strict=True):
        scores = [hypothesis["score"] for hypothesis in record["hypotheses"]]
        assert len(scores) == 2 and scores[0] >= scores[1]
        assert record["hypotheses"][0]["text"] == line


def test_trainer_stops_on_bleu_keeps_the_best_model_and_records_it(tiny_models, tmp_path):
    """With the two-tier evaluation: greedy on 2 examples during training picks the best model."""
    output_dir = tmp_path / "out"
    run_example(
        [SCRIPT, *common_args(tiny_models, output_dir)]
        + ["--do_train", "--do_eval", "--predict_with_generate", "--per_device_train_batch_size", "2"]
        + ["--max_steps", "30", "--learning_rate", "1e-3", "--eval_strategy", "steps", "--eval_steps", "2"]
        + ["--save_steps", "2", "--early_stopping_patience", "1", "--load_best_model_at_end", "True"]
        + ["--metric_for_best_model", "bleu", "--eval_subset_size", "2", "--eval_num_beams", "1"]
    )
    state = read_json(output_dir / "trainer_state.json")
    assert state["global_step"] < 30
    best = state["best_model_checkpoint"]
    saved = load_file(output_dir / "model.safetensors")
    checkpoint = load_file(f"{best}/model.safetensors")
    assert all(torch.equal(tensor, checkpoint[key]) for key, tensor in saved.items())
    assert_nbest(output_dir)
    card = (output_dir / "README.md").read_text()
    predict = read_json(output_dir / "predict_results.json")
    assert f"| bleu | {read_json(output_dir / 'eval_results.json')['eval_bleu']} | {predict['predict_bleu']} |" in card
    assert f"`predict_bleu_signature`: `{predict['predict_bleu_signature']}`" in card
    assert "- Languages: `en -> ro`" in card and "Training stopped early" in card


def test_twin_averages_its_last_step_checkpoints(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    run_example(
        [TWIN, *common_args(tiny_models, output_dir)]
        + ["--per_device_train_batch_size", "2", "--max_train_steps", "3", "--learning_rate", "1e-3"]
        + ["--checkpointing_steps", "1", "--average_last_checkpoints", "2"]
    )
    first, second = (load_file(output_dir / f"step_{step}" / "model.safetensors") for step in (2, 3))
    saved = load_file(output_dir / "model.safetensors")
    for key, tensor in saved.items():
        assert torch.equal(tensor, (first[key] + second[key]) / 2), key
    assert_nbest(output_dir)
    assert "the average of the last 2 checkpoints (step_2, step_3)" in (output_dir / "README.md").read_text()
