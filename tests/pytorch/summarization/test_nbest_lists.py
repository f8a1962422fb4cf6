"""n-best lists (--num_return_sequences) and the model card of predict runs, through run_summarization.py and its
Accelerate twin on the tiny T5 model."""

import sys
from pathlib import Path

import pytest

from helpers import FIXTURES, read_json, read_jsonl, read_lines, run_example

SCRIPT = "examples/pytorch/summarization/run_summarization.py"
TWIN = "examples/pytorch/summarization/run_summarization_no_trainer.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
K = 3
# The twin always trains: one step too small to change the float32 weights, so runs on one and two processes
# (different batches) predict with the same model.
ONE_STEP_NO_CHANGE = ["--max_train_steps", "1", "--learning_rate", "1e-9"]


def predict_args(tiny_models, output_dir, sequences: int) -> list:
    return [
        "--model_name_or_path",
        tiny_models / "t5",
        "--source_prefix",
        "summarize: ",
        "--test_file",
        XSUM,
        "--max_predict_samples",
        "6",
        "--max_source_length",
        "64",
        "--val_max_target_length",
        "12",
        "--num_beams",
        "4",
        "--num_return_sequences",
        str(sequences),
        "--output_dir",
        output_dir,
    ]


def assert_nbest_file(output_dir, sequences: int) -> list[dict]:
    """K hypotheses per example, best first by score, the first being the .txt line; returns the records."""
    records = read_jsonl(output_dir / "generated_predictions.nbest.jsonl")
    lines = read_lines(output_dir / "generated_predictions.txt")
    assert [record["index"] for record in records] == list(range(len(lines)))
    for record, line in zip(records, lines, strict=True):
        scores = [hypothesis["score"] for hypothesis in record["hypotheses"]]
        assert len(scores) == sequences
        assert scores == sorted(scores, reverse=True)
        assert record["hypotheses"][0]["text"] == line
    # Beam search with several hypotheses kept finds more than one distinct text somewhere.
    assert any(len({hypothesis["text"] for hypothesis in record["hypotheses"]}) > 1 for record in records)
    return records


def assert_same_nbest(one_process, two_processes) -> None:
    """The same hypotheses in the same order; scores equal up to float noise (the processes batch differently)."""
    one, two = (read_jsonl(folder / "generated_predictions.nbest.jsonl") for folder in (one_process, two_processes))
    assert [[h["text"] for h in record["hypotheses"]] for record in one] == [
        [h["text"] for h in record["hypotheses"]] for record in two
    ]
    for first, second in zip(one, two, strict=True):
        for a, b in zip(first["hypotheses"], second["hypotheses"], strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)


@pytest.fixture(scope="module")
def trainer_predictions(tiny_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nbest")
    for sequences in (1, K):
        run_example(
            [
                SCRIPT,
                *predict_args(tiny_models, folder / f"k{sequences}", sequences),
                "--do_predict",
                "--predict_with_generate",
            ]
        )
    return folder


def test_trainer_writes_sorted_nbest_lists_whose_best_is_the_usual_prediction(trainer_predictions):
    assert_nbest_file(trainer_predictions / f"k{K}", K)
    # Asking for more hypotheses changes nothing else: same best predictions and scores as a run without.
    assert read_lines(trainer_predictions / f"k{K}" / "generated_predictions.txt") == read_lines(
        trainer_predictions / "k1" / "generated_predictions.txt"
    )
    with_nbest, without = (read_json(trainer_predictions / name / "predict_results.json") for name in (f"k{K}", "k1"))
    assert with_nbest["predict_rougeLsum"] == without["predict_rougeLsum"]
    assert not (trainer_predictions / "k1" / "generated_predictions.nbest.jsonl").exists()


def test_trainer_nbest_lists_under_torchrun_equal_one_process(trainer_predictions, tiny_models, tmp_path):
    torchrun = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", 2]
    args = [SCRIPT, *predict_args(tiny_models, tmp_path / "two", K), "--do_predict", "--predict_with_generate"]
    # Batches of 2 over 6 examples: each process generates some, padded and gathered back in order.
    run_example([*args, "--per_device_eval_batch_size", "2"], launcher=torchrun)
    assert_same_nbest(trainer_predictions / f"k{K}", tmp_path / "two")


def test_predict_run_model_card_lists_the_metrics_signature_and_command(trainer_predictions):
    output_dir = trainer_predictions / f"k{K}"
    results = read_json(output_dir / "predict_results.json")
    card = (output_dir / "README.md").read_text()
    assert card.startswith("---\n")  # a card of its own (no training: the Trainer wrote none)
    assert f"| rouge1 | {results['predict_rouge1']} |" in card
    assert f"`predict_rouge_signature`: `{results['predict_rouge_signature']}`" in card
    assert f"- --test_file: `{XSUM}`" in card
    assert "--num_return_sequences 3" in card and "run_summarization.py" in card


def test_twin_writes_the_same_kind_of_nbest_lists(tiny_models, tmp_path):
    outputs = {}
    for sequences in (1, K):
        outputs[sequences] = tmp_path / f"k{sequences}"
        args = predict_args(tiny_models, outputs[sequences], sequences)
        run_example([TWIN, *args, "--do_predict", "--train_file", XSUM, *ONE_STEP_NO_CHANGE])
    assert_nbest_file(outputs[K], K)
    assert read_lines(outputs[K] / "generated_predictions.txt") == read_lines(outputs[1] / "generated_predictions.txt")
    card = (outputs[K] / "README.md").read_text()
    assert "| rougeLsum |" in card and "--num_return_sequences 3" in card
    # Two processes: the same lists (batches differ, so a score may differ in its last digits).
    torchrun = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", 2]
    args = [TWIN, *predict_args(tiny_models, tmp_path / "two", K), "--do_predict", "--train_file", XSUM]
    run_example([*args, *ONE_STEP_NO_CHANGE, "--per_device_eval_batch_size", "2"], launcher=torchrun)
    assert_same_nbest(outputs[K], tmp_path / "two")
