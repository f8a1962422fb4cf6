"""examples/tensorflow/summarization/run_summarization.py (the Keras twin), run as a user would: a subprocess of
the .venv-tf interpreter, offline, on the tiny TF models. Few runs, several assertions each: every TF process
pays ~8 s of imports and ~10 s of first-epoch tracing, and an XLA compilation of generate() ~30 s."""

import csv
import json
import os
import shutil

import nltk
import pytest
from rouge_score import rouge_scorer

from helpers import FIXTURES, assert_usage_error, read_json, read_jsonl, read_lines, run_example
from rouge_scoring import score_rouge

SCRIPT = "examples/tensorflow/summarization/run_summarization.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# TensorFlow's C++ start-up notices (oneDNN, CUDA probing) only add noise to the logs the tests read.
TF_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def run_tf(args: list, **kwargs):
    return run_example(args, env=TF_ENV, **kwargs)


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


def command(model_dir, output_dir, **overrides) -> list:
    """A train+eval+predict command on the xsum sample; `None` leaves a flag out, "" makes it a bare flag."""
    args = {
        "--model_name_or_path": model_dir,
        "--train_file": XSUM,
        "--validation_file": XSUM,
        "--test_file": XSUM,
        "--output_dir": output_dir,
        "--do_train": "",
        "--do_eval": "",
        "--do_predict": "",
        "--num_train_epochs": 3,
        "--learning_rate": 5e-3,
        "--per_device_train_batch_size": 2,
        "--per_device_eval_batch_size": 10,  # one batch: one input shape, one XLA compilation
        "--max_source_length": 128,
        "--max_target_length": 32,
        "--seed": 7,
        **overrides,
    }
    flags = []
    for flag, value in args.items():
        flags += [] if value is None else [flag] if value == "" else [flag, value]
    return [SCRIPT, *flags]


def check_outputs_and_true_rouge(output_dir, log: str) -> None:
    for name in [
        "all_results.json",
        "train_results.json",
        "eval_results.json",
        "predict_results.json",
        "trainer_state.json",
        "generated_predictions.txt",
        "config.json",
        "generation_config.json",
        "tokenizer_config.json",
        "checkpoint-5",
        "checkpoint-15",
    ]:
        assert (output_dir / name).exists(), f"{name} missing from {sorted(os.listdir(output_dir))}"
    assert (output_dir / "tf_model.h5").exists() or (output_dir / "model.safetensors").exists()

    results = read_json(output_dir / "all_results.json")
    expected = ["train_loss", "train_runtime", "train_samples", "epoch", "eval_loss", "eval_gen_len", "eval_samples"]
    expected += [f"eval_{key}" for key in ROUGE_KEYS] + [f"predict_{key}" for key in ROUGE_KEYS]
    expected += ["predict_loss", "predict_gen_len", "predict_samples"]
    assert not set(expected) - set(results), f"missing keys: {set(expected) - set(results)}"
    assert results["train_samples"] == results["eval_samples"] == results["predict_samples"] == 10
    assert results["epoch"] == 3 and results["train_steps"] == 15

    # One prediction per input, and the saved ROUGE is rouge_score's on exactly those lines.
    predictions = read_lines(output_dir / "generated_predictions.txt")
    assert len(predictions) == len(read_jsonl(XSUM)) == 10
    references = [row["summary"] for row in read_jsonl(XSUM)]
    saved = read_json(output_dir / "predict_results.json")
    assert {key: saved[f"predict_{key}"] for key in ROUGE_KEYS} == reference_rouge(predictions, references)
    # Per example: the same text as the .txt line, its reference, its own rouge_score F1, its generated length.
    records = read_jsonl(output_dir / "generated_predictions.jsonl")
    assert [record["prediction"] for record in records] == predictions
    assert [record["references"] for record in records] == [[reference] for reference in references]
    for record, prediction, reference in zip(records, predictions, references, strict=True):
        assert record["scores"] == reference_rouge([prediction], [reference])
        assert 0 <= record["generated_tokens"] < 32 and isinstance(record["hit_length_limit"], bool)
    assert saved["predict_rouge_signature"].startswith("rouge:rouge_score-0.1.2|nrefs:1|refs:best|")
    # Eval and predict ran on the same data with the same model: the same scores.
    assert {key: results[f"eval_{key}"] for key in ROUGE_KEYS} == {key: saved[f"predict_{key}"] for key in ROUGE_KEYS}

    # The metric callback scored every epoch, and the loss went down.
    history = read_json(output_dir / "trainer_state.json")["log_history"]
    assert [entry["epoch"] for entry in history] == [1, 2, 3]
    assert all(f"eval_{key}" in entry and "eval_loss" in entry for entry in history for key in ROUGE_KEYS)
    assert history[-1]["loss"] < history[0]["loss"] - 0.5, history
    # The last epoch's callback scored the final model: the same ROUGE as the eval stage.
    assert {key: history[-1][f"eval_{key}"] for key in ROUGE_KEYS} == {
        key: results[f"eval_{key}"] for key in ROUGE_KEYS
    }

    assert "validation summaries are longer than 32 tokens" in log, log[-3000:]
    assert "XLA generation: True" in log


def check_plain_generation_gives_the_xla_predictions(trained_dir, tmp_path) -> None:
    """Greedy generation without XLA, on the model the XLA run saved: the same texts. The test data has no summary
    column (predictions are written, not scored), and the output dir holds an earlier run (--overwrite_output_dir)."""
    rows = read_jsonl(XSUM)
    with open(tmp_path / "texts.json", "w", encoding="utf-8") as handle:  # one JSON document, not JSON lines
        json.dump([{"document": row["document"]} for row in rows], handle)
    output_dir = tmp_path / "plain"
    output_dir.mkdir()
    (output_dir / "all_results.json").write_text('{"eval_rouge1": 42.0}')
    (output_dir / "generated_predictions.txt").write_text("my earlier predictions\n")
    args = [
        SCRIPT, "--model_name_or_path", trained_dir, "--test_file", tmp_path / "texts.json", "--do_predict",
        "--per_device_eval_batch_size", 10, "--max_source_length", 128, "--val_max_target_length", 32,
        "--source_prefix", "summarize: ", "--use_xla_generation", "False", "--output_dir", output_dir,
    ]  # fmt: skip
    refused = run_tf(args, expect_success=False)
    assert_usage_error(refused, "--overwrite_output_dir")
    assert (output_dir / "generated_predictions.txt").read_text() == "my earlier predictions\n"

    result = run_tf([*args, "--overwrite_output_dir"])
    assert "XLA generation: False" in result.stdout + result.stderr
    plain = read_lines(output_dir / "generated_predictions.txt")
    assert plain == read_lines(trained_dir / "generated_predictions.txt")
    results = read_json(output_dir / "all_results.json")
    assert "eval_rouge1" not in results and "predict_rouge1" not in results  # nothing stale, nothing unscored
    assert results["predict_samples"] == 10 and "predict_gen_len" in results


# The main run: tiny T5, three epochs with ROUGE after each (KerasMetricCallback), XLA generation; then, on the model
# it saved, plain generation. One test: the second run needs the first one's outputs.
@pytest.mark.slow
def test_t5_xla_run_then_plain_generation(tiny_tf_models, tmp_path):
    output_dir = tmp_path / "xsum-t5"
    result = run_tf(command(tiny_tf_models / "t5", output_dir, **{"--source_prefix": "summarize: "}))
    check_outputs_and_true_rouge(output_dir, result.stdout + result.stderr)
    check_plain_generation_gives_the_xla_predictions(output_dir, tmp_path)


def make_copy_task(tmp_path, words: int = 4):
    """A task a model must learn, from real sentences: the target is the first `words` words of the source."""
    with open(FIXTURES / "tokenizer_corpus" / "newsdev2016.en", encoding="utf-8") as handle:
        sentences = [line.split() for line in handle if len(line.split()) >= 8]
    paths = {}
    for split, rows in (("train", sentences[:1200]), ("test", sentences[1500:1600])):
        paths[split] = tmp_path / f"{split}.jsonl"
        with open(paths[split], "w", encoding="utf-8") as handle:
            for words_of in rows:
                record = {"text": " ".join(words_of[:16]), "summary": " ".join(words_of[:words])}
                handle.write(json.dumps(record) + "\n")
    return paths


@pytest.mark.slow
def test_tiny_t5_learns_a_copy_task_that_an_untrained_model_cannot_do(tiny_tf_models, tmp_path):
    data = make_copy_task(tmp_path)
    common = [
        SCRIPT, "--model_name_or_path", tiny_tf_models / "t5", "--test_file", data["test"], "--do_predict",
        "--max_source_length", 32, "--max_target_length", 12, "--per_device_eval_batch_size", 50,
        "--use_xla_generation", "False", "--pad_to_max_length",  # static shapes: 4x fewer tokens than padding to 128
    ]  # fmt: skip
    run_tf([*common, "--output_dir", tmp_path / "untrained"])
    run_tf(
        [
            *common,
            "--output_dir",
            tmp_path / "trained",
            "--train_file",
            data["train"],
            "--do_train",
            "--num_train_epochs",
            8,
            "--per_device_train_batch_size",
            16,
            "--learning_rate",
            3e-3,
            "--lr_scheduler_type",
            "constant",
            "--save_strategy",
            "no",
        ]  # fmt: skip
    )
    before = read_json(tmp_path / "untrained" / "predict_results.json")["predict_rouge1"]
    after = read_json(tmp_path / "trained" / "predict_results.json")["predict_rouge1"]
    assert before < 3.0, f"an untrained model already scores ROUGE-1 {before}: the threshold proves nothing"
    assert after >= 10.0, f"the trained model reached only ROUGE-1 {after}"
    predictions = read_lines(tmp_path / "trained" / "generated_predictions.txt")
    references = [row["summary"] for row in read_jsonl(data["test"])]
    assert len(predictions) == 100
    assert reference_rouge(predictions, references)["rouge1"] == after
    assert not list((tmp_path / "trained").glob("checkpoint-*"))  # --save_strategy no

    # The official backend on the trained model's predictions: ROUGE-1.5.5's numbers with its interval and signature.
    official_args = [arg if arg != tiny_tf_models / "t5" else tmp_path / "trained" for arg in common]
    run_tf([*official_args, "--rouge_backend", "official", "--output_dir", tmp_path / "official"])
    saved = read_json(tmp_path / "official" / "predict_results.json")
    assert read_lines(tmp_path / "official" / "generated_predictions.txt") == predictions
    expected = score_rouge(predictions, references, "official")
    assert {key: saved[f"predict_{key}"] for key in expected.corpus} == expected.corpus
    assert saved["predict_rouge1_low"] <= saved["predict_rouge1"] <= saved["predict_rouge1_high"]
    assert saved["predict_rouge1"] != after  # a different tokeniser, stemmer and average than rouge_score
    assert (
        saved["predict_rouge_signature"] == expected.signature
        and "opts:-c 95 -r 1000 -n 2 -a -m" in expected.signature
    )
    records = read_jsonl(tmp_path / "official" / "generated_predictions.jsonl")
    assert [record["scores"] for record in records] == expected.per_example


def write_csv(path, rows: list[dict], delimiter: str = ",") -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow
def test_bart_on_tsv_and_csv_then_a_resume_ends_with_the_same_model(tiny_tf_models, tmp_path):
    """Train on a TSV, predict on a CSV (JSON lines and a JSON document are covered above), with sample caps. Then
    the folder a run killed after epoch 1 leaves (only checkpoint-3): the same command resumes it (weights, Adam
    state, data order) and ends with the uninterrupted run's losses and predictions."""
    rows = read_jsonl(XSUM)
    write_csv(tmp_path / "train.tsv", rows, delimiter="\t")
    write_csv(tmp_path / "test.csv", rows)
    overrides = {
        "--train_file": tmp_path / "train.tsv",
        "--test_file": tmp_path / "test.csv",
        "--do_eval": None,
        "--validation_file": None,
        "--max_train_samples": 6,
        "--max_predict_samples": 5,
        "--num_train_epochs": 2,
        "--val_max_target_length": 16,
        "--use_xla_generation": "False",
    }
    straight_dir = tmp_path / "straight"
    run_tf(command(tiny_tf_models / "bart", straight_dir, **overrides))
    results = read_json(straight_dir / "all_results.json")
    assert (results["train_samples"], results["predict_samples"], results["train_steps"]) == (6, 5, 6)
    predictions = read_lines(straight_dir / "generated_predictions.txt")
    assert len(predictions) == 5
    references = [row["summary"] for row in rows[:5]]
    assert {key: results[f"predict_{key}"] for key in ROUGE_KEYS} == reference_rouge(predictions, references)

    killed_dir = tmp_path / "killed"
    killed_dir.mkdir()
    shutil.copytree(straight_dir / "checkpoint-3", killed_dir / "checkpoint-3")
    result = run_tf(command(tiny_tf_models / "bart", killed_dir, **overrides))  # the same command again
    assert "Resuming training from" in result.stdout + result.stderr
    straight = read_json(straight_dir / "trainer_state.json")["log_history"]
    resumed = read_json(killed_dir / "trainer_state.json")["log_history"]
    assert [entry["step"] for entry in resumed] == [3, 6]
    for before, after in zip(straight, resumed, strict=True):
        assert after["loss"] == pytest.approx(before["loss"], abs=1e-4), (straight, resumed)
    assert read_lines(killed_dir / "generated_predictions.txt") == predictions
    assert sorted(path.name for path in killed_dir.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]


# ---------------------------------------------------------------------------------------------------------
# Bad input: one `error:` line naming the problem and the fix, exit code 2, no traceback, nothing written.
# Each case is a TF process (~8 s of imports), so only a few: the file checks and most messages are the PyTorch
# twin's code (`# Copied from`, tested there); here a column check after loading and a Keras-only flag.
BAD_INPUTS = {
    "text column": ({"--text_column": "body"}, "--text_column 'body' not in"),
    "keras schedule": ({"--lr_scheduler_type": "cosine"}, "--lr_scheduler_type cosine"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_with_one_clear_line(case, tiny_tf_models, tmp_path):
    changes, expected = BAD_INPUTS[case]
    changes = {flag: value if value is None else value.format(tmp=tmp_path) for flag, value in changes.items()}
    output_dir = tmp_path / "out"
    args = command(tiny_tf_models / "t5", output_dir, **{"--do_predict": None, "--test_file": None, **changes})
    result = run_tf(args, expect_success=False)
    assert_usage_error(result, expected.format(tmp=tmp_path), output_dir)
