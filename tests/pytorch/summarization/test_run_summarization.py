"""run_summarization.py, run as a user would (subprocess, offline) on the tiny local models."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nltk
import pytest
from rouge_score import rouge_scorer

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "utils"))
import rouge155_perl  # noqa: E402
from helpers import (  # noqa: E402
    FIXTURES,
    REPO_ROOT,
    TEST_ENV,
    assert_usage_error,
    read_json,
    read_jsonl,
    read_lines,
    run_example,
    train_losses,
)

SCRIPT = "examples/pytorch/summarization/run_summarization.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


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


def train_eval_predict_args(model_dir, output_dir, **overrides) -> list:
    args = {
        "--model_name_or_path": model_dir,
        "--train_file": XSUM,
        "--validation_file": XSUM,
        "--test_file": XSUM,
        "--output_dir": output_dir,
        "--max_steps": 30,
        "--learning_rate": 3e-3,
        "--warmup_steps": 4,
        "--per_device_train_batch_size": 2,
        "--per_device_eval_batch_size": 4,
        "--max_source_length": 128,
        "--max_target_length": 32,
        "--logging_steps": 5,
        "--save_steps": 10,
        "--seed": 7,
        **overrides,
    }
    flags = ["--do_train", "--do_eval", "--do_predict", "--predict_with_generate"]
    return [SCRIPT, *flags, *[item for pair in args.items() if pair[1] is not None for item in pair]]  # None: left out


# One full run per model; several tests read its outputs.
@pytest.fixture(scope="module", params=["t5", "bart"])
def xsum_run(request, tiny_models, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp(f"xsum-{request.param}")
    extra = {"--source_prefix": "summarize: "} if request.param == "t5" else {}
    result = run_example(train_eval_predict_args(tiny_models / request.param, output_dir, **extra))
    return output_dir, result


def test_writes_every_output_file(xsum_run):
    output_dir, _ = xsum_run
    for name in [
        "all_results.json",
        "train_results.json",
        "eval_results.json",
        "predict_results.json",
        "trainer_state.json",
        "generated_predictions.txt",
        "config.json",
        "model.safetensors",
        "tokenizer_config.json",
        "README.md",  # the model card
        "checkpoint-30",
    ]:
        assert (output_dir / name).exists(), f"{name} missing from {sorted(os.listdir(output_dir))}"


def test_metric_keys_and_counts(xsum_run):
    output_dir, _ = xsum_run
    results = read_json(output_dir / "all_results.json")
    expected = ["train_loss", "train_runtime", "train_samples", "epoch", "eval_loss", "eval_gen_len", "eval_samples"]
    expected += [f"eval_{key}" for key in ROUGE_KEYS] + [f"predict_{key}" for key in ROUGE_KEYS]
    expected += ["predict_loss", "predict_gen_len", "predict_samples"]
    assert not set(expected) - set(results), f"missing keys: {set(expected) - set(results)}"
    assert results["train_samples"] == results["eval_samples"] == results["predict_samples"] == 10
    for key in ROUGE_KEYS:
        assert 0.0 <= results[f"eval_{key}"] <= 100.0


def test_one_prediction_per_input_line(xsum_run):
    output_dir, _ = xsum_run
    assert len(read_lines(output_dir / "generated_predictions.txt")) == len(read_jsonl(XSUM)) == 10


def test_train_loss_goes_down(xsum_run):
    output_dir, _ = xsum_run
    losses = train_losses(output_dir)
    assert len(losses) == 6, losses  # 30 steps, logged every 5
    assert losses[-1] < losses[0] - 0.5, losses


def test_predict_rouge_equals_rouge_score_on_the_written_predictions(xsum_run):
    output_dir, _ = xsum_run
    predictions = read_lines(output_dir / "generated_predictions.txt")
    references = [row["summary"] for row in read_jsonl(XSUM)]
    saved = read_json(output_dir / "predict_results.json")
    expected = reference_rouge(predictions, references)
    assert {key: saved[f"predict_{key}"] for key in ROUGE_KEYS} == expected


def test_generated_predictions_jsonl_has_each_examples_text_references_rouge_and_length(xsum_run):
    output_dir, result = xsum_run
    predictions = read_lines(output_dir / "generated_predictions.txt")
    references = [row["summary"] for row in read_jsonl(XSUM)]
    records = read_jsonl(output_dir / "generated_predictions.jsonl")
    assert [record["index"] for record in records] == list(range(10))
    assert [record["prediction"] for record in records] == predictions
    assert [record["references"] for record in records] == [[reference] for reference in references]
    for record, prediction, reference in zip(records, predictions, references, strict=True):
        expected = reference_rouge([prediction], [reference])  # this one example, as the reference computes it
        assert record["scores"] == expected
        assert isinstance(record["generated_tokens"], int) and 0 <= record["generated_tokens"] < 32
        assert isinstance(record["hit_length_limit"], bool)
    # The mean of the per-example scores is the corpus score (up to the rounding of each example to 4 places).
    saved = read_json(output_dir / "predict_results.json")
    for key in ROUGE_KEYS:
        mean = sum(record["scores"][key] for record in records) / len(records)
        assert mean == pytest.approx(saved[f"predict_{key}"], abs=1e-3)
    signature = "rouge:rouge_score-0.1.2|nrefs:1|refs:best|tok:rouge_score|stem:nltk-porter-3.10.4|"
    signature += "split:nltk-punkt-3.10.4|agg:mean|scale:f1x100"
    assert saved["predict_rouge_signature"] == read_json(output_dir / "eval_results.json")["eval_rouge_signature"]
    assert saved["predict_rouge_signature"] == signature
    assert f"  predict_rouge_signature: {signature}" in result.stdout


def test_a_generation_limit_that_cuts_every_prediction_is_flagged_per_example(tiny_models, tmp_path):
    run_example(
        [
            SCRIPT,
            "--model_name_or_path",
            tiny_models / "t5",
            "--test_file",
            XSUM,
            "--do_predict",
            "--predict_with_generate",
            "--max_predict_samples",
            4,
            "--generation_max_length",
            5,
            "--source_prefix",
            "summarize: ",
            "--output_dir",
            tmp_path / "cut",
        ]  # fmt: skip
    )
    records = read_jsonl(tmp_path / "cut" / "generated_predictions.jsonl")
    assert len(records) == 4
    assert all(record["hit_length_limit"] for record in records)  # 4 new tokens at most: the untrained T5 never stops
    assert all(record["generated_tokens"] <= 4 for record in records)


def test_logs_how_many_references_were_truncated(xsum_run):
    _, result = xsum_run
    log = result.stdout + result.stderr
    assert "validation summaries are longer than 32 tokens" in log, log[-3000:]
    assert "ROUGE is scored against the full reference text" in log


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


@pytest.fixture(scope="module")
def copy_task_runs(tiny_models, tmp_path_factory):
    """The tiny T5 before and after 600 steps on the copy task (predictions for its test split in both)."""
    tmp_path = tmp_path_factory.mktemp("copy-task")
    data = make_copy_task(tmp_path)
    common = [
        "--model_name_or_path", tiny_models / "t5", "--test_file", data["test"], "--do_predict",
        "--predict_with_generate", "--max_source_length", 32, "--max_target_length", 12,
        "--per_device_eval_batch_size", 50,
    ]  # fmt: skip
    untrained = run_example([SCRIPT, *common, "--output_dir", tmp_path / "untrained"])
    trained = run_example(
        [
            SCRIPT,
            *common,
            "--output_dir",
            tmp_path / "trained",
            "--train_file",
            data["train"],
            "--do_train",
            "--max_steps",
            600,
            "--per_device_train_batch_size",
            16,
            "--learning_rate",
            3e-3,
            "--lr_scheduler_type",
            "constant",
            "--save_strategy",
            "no",
            "--logging_steps",
            100,
        ]  # fmt: skip
    )
    assert untrained.returncode == trained.returncode == 0
    return tmp_path, data


@pytest.mark.slow
def test_tiny_t5_learns_a_copy_task_that_an_untrained_model_cannot_do(copy_task_runs):
    tmp_path, data = copy_task_runs
    before = read_json(tmp_path / "untrained" / "predict_results.json")["predict_rouge1"]
    after = read_json(tmp_path / "trained" / "predict_results.json")["predict_rouge1"]
    assert before < 3.0, f"an untrained model already scores ROUGE-1 {before}: the threshold proves nothing"
    assert after >= 10.0, f"the trained model reached only ROUGE-1 {after}"
    # The metric on real (non-empty) predictions still matches the reference implementation exactly.
    predictions = read_lines(tmp_path / "trained" / "generated_predictions.txt")
    references = [row["summary"] for row in read_jsonl(data["test"])]
    assert reference_rouge(predictions, references)["rouge1"] == after


@pytest.mark.slow
def test_official_backend_gives_the_perl_scripts_numbers_with_several_references(copy_task_runs, tmp_path):
    """--rouge_backend official on multi-reference data (SciTLDR: 1-4 TLDRs per paper) with a model that writes real
    words (the copy-task T5 copies the abstract's start): every corpus score and interval, and every example's
    score in generated_predictions.jsonl, equal what ROUGE-1.5.5.pl prints for the same texts."""
    trained = copy_task_runs[0] / "trained"
    data = FIXTURES / "summarization" / "scitldr" / "test.jsonl"
    result = run_example(
        [
            SCRIPT,
            "--model_name_or_path",
            trained,
            "--test_file",
            data,
            "--do_predict",
            "--predict_with_generate",
            "--max_source_length",
            32,
            "--max_predict_samples",
            12,
            "--rouge_backend",
            "official",
            "--output_dir",
            tmp_path / "official",
        ]  # fmt: skip
    )
    saved = read_json(tmp_path / "official" / "predict_results.json")
    signature = saved["predict_rouge_signature"]
    assert signature.startswith("rouge:official-1.5.5|") and "|nrefs:var|refs:average|" in signature
    assert "|agg:bootstrap-1000|ci:95|opts:-c 95 -r 1000 -n 2 -a -m|" in signature
    assert f"  predict_rouge_signature: {signature}" in result.stdout  # printed under the metric table
    predictions = read_lines(tmp_path / "official" / "generated_predictions.txt")
    references = [row["summary"] for row in read_jsonl(data)[:12]]
    records = read_jsonl(tmp_path / "official" / "generated_predictions.jsonl")
    assert [record["prediction"] for record in records] == predictions
    assert [record["references"] for record in records] == references
    assert saved["predict_rouge1"] > 1.0, "the copying model should overlap with the TLDRs"

    problem = rouge155_perl.check_perl()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"the live ROUGE-1.5.5 comparison needs Perl: {problem}")
        pytest.skip(f"Perl comparison not run: {problem}")
    split_predictions = [nltk.sent_tokenize(text) for text in predictions]
    split_references = [[nltk.sent_tokenize(text) for text in refs] for refs in references]
    perl = rouge155_perl.run_perl_rouge(split_predictions, split_references, rouge155_perl.FIXTURE_FLAGS["n2"])
    unsplit = rouge155_perl.run_perl_rouge(
        [[text] for text in predictions],
        [[[text] for text in refs] for refs in references],
        "-c 95 -r 1000 -n 1 -a -m",
    )
    perl_metric = {"rouge1": (perl, "ROUGE-1"), "rouge2": (perl, "ROUGE-2"), "rougeLsum": (perl, "ROUGE-L")}
    perl_metric["rougeL"] = (unsplit, "ROUGE-L")
    for key, (output, metric) in perl_metric.items():
        averages = output["averages"][metric]
        assert saved[f"predict_{key}"] == round(100 * float(averages["F"]), 4), key
        assert saved[f"predict_{key}_low"] == round(100 * float(averages["F_low"]), 4), key
        assert saved[f"predict_{key}_high"] == round(100 * float(averages["F_high"]), 4), key
        expected = [round(100 * float(document[metric][2]), 4) for document in output["per_document"]]
        assert [record["scores"][key] for record in records] == expected, key


def write_csv(path, rows: list[dict], delimiter: str = ",") -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


def test_csv_tsv_and_json_inputs_with_sample_caps(tiny_models, tmp_path):
    rows = read_jsonl(XSUM)
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "valid.tsv", rows, delimiter="\t")  # (.jsonl is covered by the multi-reference test)
    with open(tmp_path / "test.json", "w", encoding="utf-8") as handle:  # one JSON document, not JSON lines
        json.dump([{"document": row["document"]} for row in rows], handle)
    output_dir = tmp_path / "out"
    run_example(
        train_eval_predict_args(
            tiny_models / "bart",
            output_dir,
            **{
                "--train_file": tmp_path / "train.csv",
                "--validation_file": tmp_path / "valid.tsv",
                "--test_file": tmp_path / "test.json",
                "--max_train_samples": 4,
                "--max_eval_samples": 3,
                "--max_predict_samples": 5,
                "--max_steps": 2,
            },
        )
    )
    results = read_json(output_dir / "all_results.json")
    assert (results["train_samples"], results["eval_samples"], results["predict_samples"]) == (4, 3, 5)
    assert "eval_rouge1" in results
    # The test file has no summary column: predictions are written, not scored.
    assert "predict_rouge1" not in results and "predict_gen_len" in results
    assert len(read_lines(output_dir / "generated_predictions.txt")) == 5


def test_multi_reference_summaries_score_the_best_reference(tiny_models, tmp_path):
    data = FIXTURES / "summarization" / "scitldr"
    output_dir = tmp_path / "out"
    run_example(
        [
            SCRIPT,
            "--model_name_or_path",
            tiny_models / "t5",
            "--source_prefix",
            "summarize: ",
            "--train_file",
            data / "train.jsonl",
            "--test_file",
            data / "test.jsonl",
            "--do_train",
            "--do_predict",
            "--predict_with_generate",
            "--max_train_samples",
            64,
            "--max_predict_samples",
            12,
            "--max_steps",
            8,
            "--per_device_train_batch_size",
            8,
            "--learning_rate",
            3e-3,
            "--max_source_length",
            96,
            "--max_target_length",
            24,
            "--output_dir",
            output_dir,
        ]  # fmt: skip
    )
    predictions = read_lines(output_dir / "generated_predictions.txt")
    references = [row["summary"] for row in read_jsonl(data / "test.jsonl")[:12]]
    assert all(isinstance(reference, list) for reference in references)
    saved = read_json(output_dir / "predict_results.json")
    assert {key: saved[f"predict_{key}"] for key in ROUGE_KEYS} == reference_rouge(predictions, references)


def test_mbart_needs_and_uses_a_language_code(tiny_models, tmp_path):
    args = [
        SCRIPT, "--model_name_or_path", tiny_models / "mbart", "--train_file", XSUM, "--test_file", XSUM,
        "--do_train", "--do_predict", "--predict_with_generate", "--max_steps", 2, "--max_source_length", 64,
        "--max_target_length", 16,
    ]  # fmt: skip
    run_example([*args, "--lang", "en_XX", "--forced_bos_token", "en_XX", "--output_dir", tmp_path / "ok"])
    config = read_json(tmp_path / "ok" / "config.json")
    en_id = read_json(tmp_path / "ok" / "tokenizer.json")["model"]["vocab"].index(["en_XX", 0.0])
    assert read_json(tmp_path / "ok" / "generation_config.json")["forced_bos_token_id"] == en_id
    tokenizer_config = read_json(tmp_path / "ok" / "tokenizer_config.json")
    assert config["decoder_start_token_id"] is not None
    assert len(read_lines(tmp_path / "ok" / "generated_predictions.txt")) == 10
    assert tokenizer_config.get("src_lang") in (None, "en_XX")

    missing = run_example([*args, "--output_dir", tmp_path / "missing"], expect_success=False)
    assert_usage_error(missing, "--lang", tmp_path / "missing")
    wrong = run_example([*args, "--lang", "en", "--output_dir", tmp_path / "wrong"], expect_success=False)
    assert_usage_error(wrong, "en_XX", tmp_path / "wrong")


def test_resume_after_an_interruption_matches_the_uninterrupted_run(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    args = train_eval_predict_args(
        tiny_models / "t5", output_dir, **{"--max_steps": 20, "--source_prefix": "summarize: "}
    )
    args = [arg for arg in args if arg not in ("--do_eval", "--do_predict")]
    run_example(args)
    uninterrupted = read_json(output_dir / "trainer_state.json")["log_history"]

    # Leave the folder as a job killed right after checkpoint-10 would have: only that checkpoint.
    for name in os.listdir(output_dir):
        if name != "checkpoint-10":
            path = output_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    result = run_example(args)  # the same command again
    assert "Resuming training from" in result.stdout + result.stderr
    resumed = read_json(output_dir / "trainer_state.json")["log_history"]
    losses = {entry["step"]: entry["loss"] for entry in uninterrupted if "loss" in entry}
    resumed_losses = {entry["step"]: entry["loss"] for entry in resumed if "loss" in entry}
    assert set(resumed_losses) == set(losses) == {5, 10, 15, 20}
    for step in (15, 20):
        assert resumed_losses[step] == pytest.approx(losses[step], abs=1e-4), (step, resumed_losses, losses)

    # An explicit --resume_from_checkpoint into a finished folder works too.
    result = run_example([*args, "--resume_from_checkpoint", output_dir / "checkpoint-10"])
    assert read_json(output_dir / "trainer_state.json")["global_step"] == 20


# Bad input: the table in test_bad_inputs_summarization.py.


def test_refuses_an_output_dir_with_results_unless_overwrite(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "all_results.json").write_text('{"eval_rouge1": 42.0}')
    (output_dir / "generated_predictions.txt").write_text("my earlier predictions\n")
    args = [
        SCRIPT, "--model_name_or_path", tiny_models / "t5", "--test_file", XSUM, "--do_predict",
        "--predict_with_generate", "--max_predict_samples", 2, "--max_source_length", 64, "--output_dir", output_dir,
    ]  # fmt: skip
    refused = run_example(args, expect_success=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--overwrite_output_dir" in refused.stderr.strip().splitlines()[-1]
    assert (output_dir / "generated_predictions.txt").read_text() == "my earlier predictions\n"
    assert read_json(output_dir / "all_results.json") == {"eval_rouge1": 42.0}

    run_example([*args, "--overwrite_output_dir"])
    results = read_json(output_dir / "all_results.json")
    assert "eval_rouge1" not in results and results["predict_samples"] == 2  # nothing stale merged in
    assert len(read_lines(output_dir / "generated_predictions.txt")) == 2


def test_yaml_argument_file_and_unknown_keys(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    config = tmp_path / "args.yaml"
    config.write_text(
        f"model_name_or_path: {tiny_models / 't5'}\ntest_file: {XSUM}\ndo_predict: true\n"
        f"predict_with_generate: true\nmax_predict_samples: 3\nmax_source_length: 64\noutput_dir: {output_dir}\n"
    )
    run_example([SCRIPT, config])
    assert read_json(output_dir / "predict_results.json")["predict_samples"] == 3

    config.write_text(config.read_text() + "learning_rat: 0.1\n")
    result = run_example([SCRIPT, config], expect_success=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "learning_rat" in result.stderr.strip().splitlines()[-1]


def test_dataset_name_uses_the_known_columns_of_that_dataset(tiny_models, tmp_path):
    """--dataset_name goes through load_dataset(name) as for a Hub id; here a local folder named like the Hub's
    cnn_dailymail, whose columns (id, article, highlights) only the known-dataset map gets right."""
    folder = tmp_path / "cnn_dailymail"
    folder.mkdir()
    rows = [
        {"id": index, "article": row["document"], "highlights": row["summary"]}  # an int id: not text
        for index, row in enumerate(read_jsonl(XSUM))
    ]
    for split in ("train", "validation"):
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
    output_dir = tmp_path / "out"
    run_example(
        [
            SCRIPT,
            "--model_name_or_path",
            tiny_models / "bart",
            "--dataset_name",
            folder,
            "--do_train",
            "--do_eval",
            "--predict_with_generate",
            "--max_steps",
            2,
            "--max_source_length",
            64,
            "--output_dir",
            output_dir,
        ]  # fmt: skip
    )
    results = read_json(output_dir / "all_results.json")
    assert results["train_samples"] == results["eval_samples"] == 10 and "eval_rouge1" in results


@pytest.mark.slow
def test_two_processes_with_torchrun_match_one_process(tiny_models, tmp_path):
    torchrun = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", 2]
    common = train_eval_predict_args(
        tiny_models / "t5", None, **{"--max_steps": 10, "--logging_steps": 2, "--save_strategy": "no"}
    )
    common += ["--source_prefix", "summarize: "]
    one = run_example([*common, "--per_device_train_batch_size", 4, "--output_dir", tmp_path / "one"])
    two = run_example(
        [*common, "--per_device_train_batch_size", 2, "--use_cpu", "--output_dir", tmp_path / "two"],
        launcher=torchrun,
    )
    assert "world size: 1" in one.stdout + one.stderr
    assert "world size: 2" in two.stdout + two.stderr  # the ranks are connected
    results = read_json(tmp_path / "two" / "all_results.json")
    assert results["eval_samples"] == results["predict_samples"] == 10  # 10 = 4 + 4 + 2: an uneven last batch
    predictions = read_lines(tmp_path / "two" / "generated_predictions.txt")
    references = [row["summary"] for row in read_jsonl(XSUM)]
    assert {key: results[f"predict_{key}"] for key in ROUGE_KEYS} == reference_rouge(predictions, references)
    # The logged loss is the true loss (transformers 5.23's default logs ~2x under DDP).
    for single, double in zip(train_losses(tmp_path / "one"), train_losses(tmp_path / "two"), strict=True):
        assert double == pytest.approx(single, rel=0.1)

    # Predicting with the same model: the same predictions, each once, in input order, same ROUGE.
    predict = [
        SCRIPT, "--model_name_or_path", tmp_path / "one", "--test_file", XSUM, "--do_predict",
        "--predict_with_generate", "--per_device_eval_batch_size", 3, "--max_source_length", 128,
        "--source_prefix", "summarize: ",
    ]  # fmt: skip
    run_example([*predict, "--output_dir", tmp_path / "predict-one"])
    run_example([*predict, "--use_cpu", "--output_dir", tmp_path / "predict-two"], launcher=torchrun)
    assert read_lines(tmp_path / "predict-two" / "generated_predictions.txt") == read_lines(
        tmp_path / "predict-one" / "generated_predictions.txt"
    )
    scores_one = read_json(tmp_path / "predict-one" / "predict_results.json")
    scores_two = read_json(tmp_path / "predict-two" / "predict_results.json")
    assert {key: scores_two[f"predict_{key}"] for key in ROUGE_KEYS} == {
        key: scores_one[f"predict_{key}"] for key in ROUGE_KEYS
    }


def test_torchrun_without_gpus_connects_the_processes_over_gloo(tiny_models, tmp_path):
    # No --use_cpu: on a machine without GPUs the two processes are connected on the CPU by themselves.
    torchrun = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", 2]
    args = [
        SCRIPT, "--model_name_or_path", tiny_models / "t5", "--train_file", XSUM, "--do_train", "--max_steps", 2,
        "--per_device_train_batch_size", 2, "--max_source_length", 64, "--source_prefix", "summarize: ",
    ]  # fmt: skip
    result = run_example([*args, "--output_dir", tmp_path / "out"], launcher=torchrun)
    assert "2 processes and no GPU: connecting them on the CPU over gloo" in result.stderr
    # One run of 2 steps with a total batch of 4 (2 per process), not two separate runs.
    state = read_json(tmp_path / "out" / "trainer_state.json")
    assert state["global_step"] == 2 and state["train_batch_size"] == 2
    assert read_json(tmp_path / "out" / "train_results.json")["train_samples"] == 10
    assert "world size: 2" in result.stdout + result.stderr


def model_weights(folder) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_the_same_command_ends_with_the_same_weights(tiny_models, tmp_path):
    args = train_eval_predict_args(
        tiny_models / "t5",
        None,
        **{"--max_steps": 300, "--save_steps": 40, "--logging_steps": 20, "--source_prefix": "summarize: "},
    )
    args = [arg for arg in args if arg not in ("--do_eval", "--do_predict")]
    run_example([*args, "--output_dir", tmp_path / "straight"])

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, *map(str, args), "--output_dir", str(killed)],
        cwd=REPO_ROOT,
        env={**os.environ, **TEST_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not (killed / "checkpoint-80" / "trainer_state.json").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint-80 within 300 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "train_results.json").exists() and not (killed / "model.safetensors").exists()

    result = run_example([*args, "--output_dir", killed])  # the same command again
    assert "Resuming training from" in result.stdout + result.stderr
    straight, resumed = model_weights(tmp_path / "straight"), model_weights(killed)
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        assert abs(tensor - resumed[name]).max() < 1e-5, name
    assert train_losses(killed)[-1] == pytest.approx(train_losses(tmp_path / "straight")[-1], abs=1e-4)
