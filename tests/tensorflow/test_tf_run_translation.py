"""examples/tensorflow/translation/run_translation.py (the Keras twin), run as a user would: a subprocess of the
.venv-tf interpreter, offline, on the tiny TF models. XLA generation, resume and the learning test are covered by
the summarization twin's tests (the same code, kept identical by `# Copied from`); here generation is eager."""

import csv
import json
import os
import subprocess
import sys

import pytest
import sacrebleu

from helpers import FIXTURES, assert_usage_error, read_json, read_jsonl, read_lines, run_example

SCRIPT = "examples/tensorflow/translation/run_translation.py"
WMT16 = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"
SACREBLEU_CLI = [sys.executable, "-m", "sacrebleu"]
# TensorFlow's C++ start-up notices (oneDNN, CUDA probing) only add noise to the logs the tests read.
TF_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def run_tf(args: list, **kwargs):
    return run_example(args, env=TF_ENV, **kwargs)


def sacrebleu_cli(predictions_path, reference_paths, tokenize: str = "13a") -> dict[str, float]:
    """BLEU and chrF as the sacrebleu command line prints them (4 decimals) for the same files."""
    command = [*SACREBLEU_CLI, *map(str, reference_paths), "-i", str(predictions_path), "-m", "bleu", "chrf"]
    command += ["-tok", tokenize, "-w", "4", "-b"]
    bleu, chrf = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    return {"bleu": bleu, "chrf": chrf}


def write_lines(path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{line}\n" for line in lines)


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


def command(model_dir, output_dir, **overrides) -> list:
    """A train+eval+predict en->ro command on the WMT16 sample; `None` leaves a flag out, "" makes it a bare flag."""
    args = {
        "--model_name_or_path": model_dir,
        "--source_lang": "en",
        "--target_lang": "ro",
        "--train_file": WMT16,
        "--validation_file": WMT16,
        "--test_file": WMT16,
        "--output_dir": output_dir,
        "--do_train": "",
        "--do_eval": "",
        "--do_predict": "",
        "--num_train_epochs": 2,
        "--learning_rate": 5e-3,
        "--per_device_train_batch_size": 2,
        "--per_device_eval_batch_size": 10,
        "--max_source_length": 64,
        "--max_target_length": 64,
        "--generation_max_length": 16,  # the tiny models generate to the limit: each token costs eager steps
        "--use_xla_generation": "False",
        "--seed": 3,
        **overrides,
    }
    flags = []
    for flag, value in args.items():
        flags += [] if value is None else [flag] if value == "" else [flag, value]
    return [SCRIPT, *flags]


@pytest.mark.slow
def test_marian_run_writes_every_output_and_true_bleu(tiny_tf_models, tmp_path):
    output_dir = tmp_path / "out"
    run_tf(command(tiny_tf_models / "marian", output_dir))
    for name in ["all_results.json", "train_results.json", "eval_results.json", "predict_results.json"]:
        assert (output_dir / name).exists(), f"{name} missing from {sorted(os.listdir(output_dir))}"
    assert (output_dir / "checkpoint-5").is_dir() and (output_dir / "checkpoint-10").is_dir()
    results = read_json(output_dir / "all_results.json")
    for split in ("eval", "predict"):
        for key in ("loss", "bleu", "chrf", "bleu_signature", "chrf_signature", "gen_len"):
            assert f"{split}_{key}" in results, f"{split}_{key} missing: {sorted(results)}"
    assert results["train_samples"] == results["eval_samples"] == results["predict_samples"] == 10
    assert results["train_steps"] == 10 and results["epoch"] == 2
    assert "tok:13a" in results["predict_bleu_signature"]

    # One translation per input, and the saved BLEU/chrF are the sacrebleu command line's on exactly those lines.
    predictions = read_lines(output_dir / "generated_predictions.txt")
    references = [row["translation"]["ro"] for row in read_jsonl(WMT16)]
    assert len(predictions) == len(references) == 10
    write_lines(tmp_path / "ref.ro", references)
    expected = sacrebleu_cli(output_dir / "generated_predictions.txt", [tmp_path / "ref.ro"])
    assert {"bleu": results["predict_bleu"], "chrf": results["predict_chrf"]} == expected
    assert (results["eval_bleu"], results["eval_chrf"]) == (results["predict_bleu"], results["predict_chrf"])
    # One record per translation, in the same order, scored on its own line.
    assert_prediction_records(output_dir, references, max_length=16)

    # The metric callback scored every epoch, with the same code: the last epoch's scores are the final model's.
    history = read_json(output_dir / "trainer_state.json")["log_history"]
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert history[-1]["eval_bleu"] == results["eval_bleu"] and history[-1]["eval_chrf"] == results["eval_chrf"]
    assert history[-1]["loss"] < history[0]["loss"], history


def test_t5_on_text_pairs_and_csv_with_a_prefix(tiny_tf_models, tmp_path):
    """Train on line-aligned PREFIX.en/PREFIX.ro files, translate a CSV; BLEU/chrF equal sacrebleu's."""
    rows = [row["translation"] for row in read_jsonl(WMT16)]
    write_lines(tmp_path / "train.en", [row["en"] for row in rows])
    write_lines(tmp_path / "train.ro", [row["ro"] for row in rows])
    with open(tmp_path / "test.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["en", "ro"])
        writer.writeheader()
        writer.writerows(rows[:6])
    output_dir = tmp_path / "out"
    overrides = {
        "--train_file": tmp_path / "train",
        "--test_file": tmp_path / "test.csv",
        "--do_eval": None,
        "--validation_file": None,
        "--source_prefix": "translate English to Romanian: ",
        "--num_train_epochs": 1,
    }
    result = run_tf(command(tiny_tf_models / "t5", output_dir, **overrides))
    assert "T5 models were trained with task prefixes" not in result.stdout + result.stderr
    results = read_json(output_dir / "all_results.json")
    assert (results["train_samples"], results["predict_samples"], results["train_steps"]) == (10, 6, 5)
    assert len(read_lines(output_dir / "generated_predictions.txt")) == 6
    write_lines(tmp_path / "ref.ro", [row["ro"] for row in rows[:6]])
    expected = sacrebleu_cli(output_dir / "generated_predictions.txt", [tmp_path / "ref.ro"])
    assert {"bleu": results["predict_bleu"], "chrf": results["predict_chrf"]} == expected
    assert len(assert_prediction_records(output_dir, [row["ro"] for row in rows[:6]], max_length=16)) == 6


def test_mbart_target_code_starts_decoding(tiny_tf_models, tmp_path):
    output_dir = tmp_path / "out"
    overrides = {"--source_lang": "en_XX", "--target_lang": "ro_RO", "--do_train": None, "--do_eval": None}
    overrides |= {"--max_predict_samples": 4, "--generation_max_length": 8}
    result = run_tf(command(tiny_tf_models / "mbart", output_dir, **overrides))
    ro_id = read_json(tiny_tf_models / "mbart" / "tokenizer.json")["added_tokens"]
    ro_id = next(token["id"] for token in ro_id if token["content"] == "ro_RO")
    assert (
        f"en_XX -> ro_RO; decoding starts from id {ro_id}, forced first token: None" in result.stdout + result.stderr
    )
    assert len(read_lines(output_dir / "generated_predictions.txt")) == 4
    assert "predict_bleu" in read_json(output_dir / "all_results.json")
    # Untrained, with a limit of 8 tokens: every translation runs into it (7 generated after the start token).
    references = [row["translation"]["ro"] for row in read_jsonl(WMT16)[:4]]
    records = assert_prediction_records(output_dir, references, max_length=8)
    assert [(record["generated_tokens"], record["hit_length_limit"]) for record in records] == [(7, True)] * 4


# Bad input: one `error:` line naming the problem and the fix, exit code 2, no traceback, nothing written.
# Each case is a TF process (~8 s of imports): two translation-specific checks, before and after loading the model.
BAD_INPUTS = {
    "no language flags": ({"--source_lang": None}, "pass --source_lang and --target_lang"),
    "unknown mBART code": (
        {"--model_name_or_path": "{models}/mbart", "--source_lang": "en_XX", "--target_lang": "ro"},
        "--target_lang 'ro' is not a language code of this tokenizer; did you mean ro_RO?",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_with_one_clear_line(case, tiny_tf_models, tmp_path):
    changes, expected = BAD_INPUTS[case]
    changes = {
        flag: value if value is None else value.format(models=tiny_tf_models) for flag, value in changes.items()
    }
    output_dir = tmp_path / "out"
    result = run_tf(command(tiny_tf_models / "marian", output_dir, **changes), expect_success=False)
    assert_usage_error(result, expected, output_dir)
