"""run_translation.py, run as a user would (subprocess, offline) on the tiny local models."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sacrebleu

from helpers import (
    FIXTURES,
    REPO_ROOT,
    TEST_ENV,
    assert_usage_error,
    fresh_hf_home,
    read_json,
    read_jsonl,
    read_lines,
    run_example,
    run_log_lines,
    train_losses,
)

SCRIPT = "examples/pytorch/translation/run_translation.py"
WMT16 = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"
CORPUS = FIXTURES / "tokenizer_corpus"
SACREBLEU_CLI = [sys.executable, "-m", "sacrebleu"]

# Per model: the language flags a user passes, and extra flags.
MODELS = {
    "marian": (["--source_lang", "en", "--target_lang", "ro"], []),
    "mbart": (["--source_lang", "en_XX", "--target_lang", "ro_RO"], []),
    "t5": (["--source_lang", "en", "--target_lang", "ro"], ["--source_prefix", "translate English to Romanian: "]),
}


def sacrebleu_cli(predictions_path, reference_paths, tokenize: str = "13a") -> dict[str, float]:
    """BLEU and chrF as the sacrebleu command line prints them (4 decimals) for the same files."""
    command = [*SACREBLEU_CLI, *map(str, reference_paths), "-i", str(predictions_path), "-m", "bleu", "chrf"]
    command += ["-tok", tokenize, "-w", "4", "-b"]
    bleu, chrf = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    return {"bleu": bleu, "chrf": chrf}


def write_lines(path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{line}\n" for line in lines)


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


def run_args(model_dir, output_dir, model: str, **overrides) -> list:
    language_flags, extra = MODELS[model]
    args = {
        "--model_name_or_path": model_dir,
        "--train_file": WMT16,
        "--validation_file": WMT16,
        "--test_file": WMT16,
        "--output_dir": output_dir,
        "--max_steps": 30,
        "--learning_rate": 3e-3,
        "--per_device_train_batch_size": 2,
        "--per_device_eval_batch_size": 4,
        "--max_source_length": 64,
        "--max_target_length": 64,
        "--generation_max_length": 32,
        "--logging_steps": 5,
        "--seed": 3,
        **overrides,
    }
    flags = ["--do_train", "--do_eval", "--do_predict", "--predict_with_generate", *language_flags, *extra]
    return [SCRIPT, *flags, *[item for pair in args.items() if pair[1] is not None for item in pair]]  # None: left out


@pytest.fixture(scope="module", params=list(MODELS))
def wmt16_run(request, tiny_models, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp(f"wmt16-{request.param}")
    result = run_example(run_args(tiny_models / request.param, output_dir, request.param))
    return request.param, output_dir, result


def test_outputs_keys_and_one_prediction_per_input(wmt16_run):
    _, output_dir, _ = wmt16_run
    for name in ["all_results.json", "predict_results.json", "eval_results.json", "generated_predictions.txt"]:
        assert (output_dir / name).exists(), name
    results = read_json(output_dir / "all_results.json")
    for stage in ("eval", "predict"):
        for key in ("bleu", "chrf", "bleu_signature", "chrf_signature", "gen_len", "samples"):
            assert f"{stage}_{key}" in results, f"{stage}_{key} missing"
    assert results["predict_bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert len(read_lines(output_dir / "generated_predictions.txt")) == len(read_jsonl(WMT16)) == 10
    losses = train_losses(output_dir)
    assert losses[-1] < losses[0], losses


def test_bleu_and_chrf_equal_the_sacrebleu_command_line(wmt16_run, tmp_path):
    _, output_dir, _ = wmt16_run
    references = tmp_path / "references.ro"
    write_lines(references, [row["translation"]["ro"] for row in read_jsonl(WMT16)])
    saved = read_json(output_dir / "predict_results.json")
    cli = sacrebleu_cli(output_dir / "generated_predictions.txt", [references])
    assert {"bleu": saved["predict_bleu"], "chrf": saved["predict_chrf"]} == cli


def test_per_example_records_match_the_predictions_and_sacrebleu(wmt16_run):
    _, output_dir, _ = wmt16_run
    references = [row["translation"]["ro"] for row in read_jsonl(WMT16)]
    records = assert_prediction_records(output_dir, references, max_length=32)
    assert len(records) == 10
    # Some translation shares character n-grams with its reference exactly when the corpus chrF is not 0.
    corpus_chrf = read_json(output_dir / "predict_results.json")["predict_chrf"]
    assert any(record["scores"]["chrf"] > 0 for record in records) == (corpus_chrf > 0)


def test_language_codes_reach_the_model(wmt16_run, tiny_models):
    model, output_dir, result = wmt16_run
    config = read_json(output_dir / "config.json")
    generation = read_json(output_dir / "generation_config.json")
    if model == "mbart":  # mBART decodes from the target language code
        vocab = read_json(tiny_models / "mbart" / "tokenizer.json")["model"]["vocab"]
        ro_id = next(index for index, (piece, _) in enumerate(vocab) if piece == "ro_RO")
        assert config["decoder_start_token_id"] == generation["decoder_start_token_id"] == ro_id
    if model == "t5":
        assert "T5 models were trained with task prefixes" not in result.stdout + result.stderr


def test_t5_without_prefix_warns_with_the_expected_prefix(tiny_models, tmp_path):
    args = [
        SCRIPT, "--model_name_or_path", tiny_models / "t5", "--source_lang", "en", "--target_lang", "ro",
        "--test_file", WMT16, "--do_predict", "--max_predict_samples", 2, "--output_dir", tmp_path / "out",
    ]  # fmt: skip
    result = run_example(args)
    assert "--source_prefix 'translate English to Romanian: '" in result.stdout + result.stderr


def english_finnish_with_two_references(path, count: int = 24) -> list[list[str]]:
    """The first `count` WMT16 en-fi newstest2016 sentences with both official Finnish references."""
    en = read_lines(CORPUS / "newstest2016-enfi.en")[:count]
    shared = FIXTURES / "translation" / "wmt16_en_fi"
    reference_a = read_lines(shared / "newstest2016-enfi.fi")[:count]
    reference_b = read_lines(shared / "newstestB2016-enfi.fi")[:count]
    with open(path, "w", encoding="utf-8") as handle:
        for source, a, b in zip(en, reference_a, reference_b, strict=True):
            handle.write(json.dumps({"translation": {"en": source, "fi": [a, b]}}, ensure_ascii=False) + "\n")
    return [reference_a, reference_b]


def test_multiple_references_score_like_sacrebleu(tiny_models, tmp_path):
    data = tmp_path / "enfi.jsonl"
    reference_a, reference_b = english_finnish_with_two_references(data)
    output_dir = tmp_path / "out"
    run_example(
        [
            SCRIPT,
            "--model_name_or_path",
            tiny_models / "marian",
            "--source_lang",
            "en",
            "--target_lang",
            "fi",
            "--train_file",
            data,
            "--test_file",
            data,
            "--do_train",
            "--do_predict",
            "--predict_with_generate",
            "--max_steps",
            10,
            "--learning_rate",
            3e-3,
            "--generation_max_length",
            32,
            "--output_dir",
            output_dir,
        ]  # fmt: skip
    )
    write_lines(tmp_path / "a.fi", reference_a)
    write_lines(tmp_path / "b.fi", reference_b)
    saved = read_json(output_dir / "predict_results.json")
    assert saved["predict_bleu_signature"].startswith("nrefs:2|")
    cli = sacrebleu_cli(output_dir / "generated_predictions.txt", [tmp_path / "a.fi", tmp_path / "b.fi"])
    assert {"bleu": saved["predict_bleu"], "chrf": saved["predict_chrf"]} == cli
    assert_prediction_records(output_dir, list(zip(reference_a, reference_b, strict=True)), max_length=32)


def test_csv_tsv_and_plain_text_pairs(tiny_models, tmp_path):
    rows = [row["translation"] for row in read_jsonl(WMT16)]
    with open(tmp_path / "train.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["en", "ro"])
        writer.writeheader()
        writer.writerows(rows)
    with open(tmp_path / "valid.tsv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["ro", "en"], delimiter="\t")
        writer.writeheader()
        writer.writerows(rows[:6])
    # Plain-text pairs, as WMT distributes them: PREFIX.en and PREFIX.ro, line-aligned (pass PREFIX).
    write_lines(tmp_path / "newsdev.en", read_lines(CORPUS / "newsdev2016.en")[:7])
    write_lines(tmp_path / "newsdev.ro", read_lines(CORPUS / "newsdev2016.ro")[:7])
    output_dir = tmp_path / "out"
    run_example(
        run_args(
            tiny_models / "marian",
            output_dir,
            "marian",
            **{
                "--train_file": tmp_path / "train.csv",
                "--validation_file": tmp_path / "valid.tsv",
                "--test_file": tmp_path / "newsdev",
                "--max_steps": 2,
            },
        )
    )
    results = read_json(output_dir / "all_results.json")
    assert (results["train_samples"], results["eval_samples"], results["predict_samples"]) == (10, 6, 7)
    assert len(read_lines(output_dir / "generated_predictions.txt")) == 7
    cli = sacrebleu_cli(output_dir / "generated_predictions.txt", [tmp_path / "newsdev.ro"])
    assert {"bleu": results["predict_bleu"], "chrf": results["predict_chrf"]} == cli


def romanian_postprocessed(text: str) -> str:
    """WMT16 en-ro scoring post-processing, written out independently of the script: cedilla s/t to
    comma-below (normalise-romanian.py), then Romanian diacritics removed (remove-diacritics.py)."""
    for cedilla, comma in (("\u015e", "\u0218"), ("\u015f", "\u0219"), ("\u0162", "\u021a"), ("\u0163", "\u021b")):
        text = text.replace(cedilla, comma)
    for letter, plain in (("\u0218", "S"), ("\u0219", "s"), ("\u021a", "T"), ("\u021b", "t"), ("\u0102", "A")):
        text = text.replace(letter, plain)
    for letter, plain in (("\u0103", "a"), ("\u00c2", "A"), ("\u00e2", "a"), ("\u00ce", "I"), ("\u00ee", "i")):
        text = text.replace(letter, plain)
    return text


def test_romanian_postprocessing_on_real_romanian_text(tiny_models, tmp_path):
    english = read_lines(CORPUS / "newsdev2016.en")[:20]
    romanian = read_lines(CORPUS / "newsdev2016.ro")[:20]
    assert sum(character in "șțăâîȘȚĂÂÎ" for line in romanian for character in line) > 50  # real diacritics
    # The same references once more with cedilla s/t, as older Romanian corpora write them.
    cedilla = [line.translate(str.maketrans("șțȘȚ", "\u015f\u0163\u015e\u0162")) for line in romanian]
    scores = {}
    for name, references in (("comma", romanian), ("cedilla", cedilla)):
        write_lines(tmp_path / f"{name}.en", english)
        write_lines(tmp_path / f"{name}.ro", references)
        output_dir = tmp_path / f"out-{name}"
        run_example(
            [
                SCRIPT,
                "--model_name_or_path",
                tiny_models / "marian",
                "--source_lang",
                "en",
                "--target_lang",
                "ro",
                "--test_file",
                tmp_path / name,
                "--do_predict",
                "--predict_with_generate",
                "--romanian_postprocessing",
                "--generation_max_length",
                24,
                "--output_dir",
                output_dir,
            ]  # fmt: skip
        )
        predictions = read_lines(output_dir / "generated_predictions.txt")
        write_lines(tmp_path / f"{name}.pred.pp", [romanian_postprocessed(line) for line in predictions])
        write_lines(tmp_path / f"{name}.ref.pp", [romanian_postprocessed(line) for line in references])
        saved = read_json(output_dir / "predict_results.json")
        scores[name] = {"bleu": saved["predict_bleu"], "chrf": saved["predict_chrf"]}
        assert scores[name] == sacrebleu_cli(tmp_path / f"{name}.pred.pp", [tmp_path / f"{name}.ref.pp"])
        # Per example too: the raw references are kept, the scores are those of the post-processed texts.
        assert_prediction_records(output_dir, references, max_length=24, prepare=romanian_postprocessed)
    assert scores["comma"] == scores["cedilla"]  # the two spellings score the same once normalised
    assert romanian_postprocessed(cedilla[0]) == romanian_postprocessed(romanian[0])
    assert not set("șțăâîȘȚĂÂÎşţŞŢ") & set("".join(romanian_postprocessed(line) for line in cedilla))


@pytest.mark.slow
def test_tiny_marian_learns_to_copy_where_an_untrained_model_scores_zero(tiny_models, tmp_path):
    # A copy task from real sentences: the target is the first six words of the English source.
    english = [line.split() for line in read_lines(CORPUS / "newsdev2016.en") if len(line.split()) >= 6]
    for split, lines in (("train", english[:1200]), ("test", english[1500:1600])):
        with open(tmp_path / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for words in lines:
                text = " ".join(words[:6])
                handle.write(json.dumps({"translation": {"en": text, "ro": text}}) + "\n")
    common = [
        SCRIPT, "--model_name_or_path", tiny_models / "marian", "--source_lang", "en", "--target_lang", "ro",
        "--test_file", tmp_path / "test.jsonl", "--do_predict", "--predict_with_generate",
        "--max_source_length", 32, "--max_target_length", 16, "--per_device_eval_batch_size", 50,
    ]  # fmt: skip
    run_example([*common, "--output_dir", tmp_path / "untrained"])
    run_example(
        [
            *common,
            "--output_dir",
            tmp_path / "trained",
            "--train_file",
            tmp_path / "train.jsonl",
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
        ]  # fmt: skip
    )
    before = read_json(tmp_path / "untrained" / "predict_results.json")["predict_bleu"]
    after = read_json(tmp_path / "trained" / "predict_results.json")["predict_bleu"]
    assert before < 1.0, f"an untrained model already scores BLEU {before}: the threshold proves nothing"
    assert after >= 10.0, f"the trained model reached only BLEU {after}"  # ~31 measured


# ---------------------------------------------------------------------------------------------------------
# Bad input: one `error:` line naming the problem and the fix, exit code 2, no traceback, nothing written.

# name: (arguments replacing or extending a valid marian en->ro train+eval command, text the error must contain).
# None removes an argument, "" makes it a flag; {tmp} and {models} are filled in by the test.
BAD_INPUTS = {
    "unknown language code": (
        {"--model_name_or_path": "{models}/mbart", "--source_lang": "en_XX", "--target_lang": "ro"},
        "--target_lang 'ro' is not a language code of this tokenizer; did you mean ro_RO?",
    ),
    "language not in the data": ({"--target_lang": "de"}, "no 'de' texts in"),
    "no language flags": ({"--source_lang": None}, "pass --source_lang and --target_lang"),
    "mismatched line counts": ({"--validation_file": "{tmp}/uneven"}, "mismatched line counts"),
    "empty target": (
        {"--validation_file": "{tmp}/empty_target.jsonl", "--max_source_length": "64"},
        "have an empty source or target",
    ),
    "bad bleu tokenizer": ({"--bleu_tokenize": "moses"}, "not a sacrebleu tokenizer"),
    "romanian flag, german target": (
        {"--target_lang": "de", "--romanian_postprocessing": ""},
        "--romanian_postprocessing is for Romanian targets",
    ),
    "unknown extension": ({"--train_file": "{tmp}/train.txt"}, "use a .csv, .tsv, .json or .jsonl file"),
    "output dir with results": ({"--output_dir": "{tmp}/finished"}, "--overwrite_output_dir"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_with_one_clear_line(case, tiny_models, tmp_path):
    write_lines(tmp_path / "uneven.en", ["One.", "Two.", "Three."])
    write_lines(tmp_path / "uneven.ro", ["Unu.", "Doi."])
    rows = [{"translation": {"en": "Hello.", "ro": "Salut."}}, {"translation": {"en": "Thanks.", "ro": ""}}]
    write_lines(tmp_path / "empty_target.jsonl", [json.dumps(row) for row in rows])
    write_lines(tmp_path / "train.txt", ["Hello."])
    (tmp_path / "finished").mkdir()
    (tmp_path / "finished" / "all_results.json").write_text("{}")
    changes, expected = BAD_INPUTS[case]
    args = {
        "--model_name_or_path": str(tiny_models / "marian"),
        "--source_lang": "en",
        "--target_lang": "ro",
        "--train_file": str(WMT16),
        "--validation_file": str(WMT16),
        "--max_steps": "1",
        "--output_dir": str(tmp_path / "out"),
        **changes,
    }
    command = [SCRIPT, "--do_train", "--do_eval", "--predict_with_generate"]
    for flag, value in args.items():
        value = value if value is None else value.format(tmp=tmp_path, models=tiny_models)
        command += [] if value is None else [flag] if value == "" else [flag, value]
    last_line = assert_usage_error(run_example(command, expect_success=False), expected, tmp_path / "out")
    assert last_line.startswith("error: ")
    assert not (tmp_path / "out").exists()
    assert os.listdir(tmp_path / "finished") == ["all_results.json"]


def test_dataset_name_with_a_translation_feature(tiny_models, tmp_path):
    """--dataset_name goes through load_dataset(name) as for a Hub id; here a local folder of parquet files
    whose features carry the `Translation` type, as the Hub's wmt16 has."""
    import datasets

    rows = [row["translation"] for row in read_jsonl(WMT16)]
    features = datasets.Features({"translation": datasets.Translation(languages=["en", "ro"])})
    folder = tmp_path / "wmt16"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        datasets.Dataset.from_dict({"translation": rows}, features=features).to_parquet(folder / f"{split}.parquet")
    output_dir = tmp_path / "out"
    files = {"--train_file": None, "--validation_file": None, "--test_file": None}
    run_example(run_args(tiny_models / "marian", output_dir, "marian", **files, **{"--dataset_name": folder}))
    results = read_json(output_dir / "all_results.json")
    assert results["train_samples"] == results["eval_samples"] == results["predict_samples"] == 10


# Multilingual models that decode from </s> and must generate the target code first (forced BOS).
FORCED_BOS_MODELS = {
    "mbart50": (["--source_lang", "en_XX", "--target_lang", "ro_RO"], "ro_RO"),
    "m2m100": (["--source_lang", "en", "--target_lang", "ro"], "__ro__"),
    "nllb": (
        ["--source_lang", "eng_Latn", "--target_lang", "ron_Latn", "--source_column", "en", "--target_column", "ro"],
        "ron_Latn",
    ),
}


@pytest.mark.parametrize("model", list(FORCED_BOS_MODELS))
def test_target_code_is_the_forced_first_token(model, tiny_models, tmp_path):
    from transformers import AutoTokenizer

    language_flags, target_token = FORCED_BOS_MODELS[model]
    output_dir = tmp_path / "out"
    run_example(
        [
            SCRIPT,
            "--model_name_or_path",
            tiny_models / model,
            *language_flags,
            "--train_file",
            WMT16,
            "--test_file",
            WMT16,
            "--do_train",
            "--do_predict",
            "--predict_with_generate",
            "--max_steps",
            2,
            "--max_source_length",
            64,
            "--generation_max_length",
            16,
            "--output_dir",
            output_dir,
        ]  # fmt: skip
    )
    target_id = AutoTokenizer.from_pretrained(tiny_models / model).convert_tokens_to_ids(target_token)
    generation = read_json(output_dir / "generation_config.json")
    assert generation["forced_bos_token_id"] == target_id
    assert generation["decoder_start_token_id"] == 2  # </s>, as in the real checkpoints
    assert len(read_lines(output_dir / "generated_predictions.txt")) == 10


@pytest.mark.parametrize(
    ("model", "flags", "expected"),
    [
        ("m2m100", ["--source_lang", "en", "--target_lang", "ro_RO"], "did you mean ro?"),
        ("nllb", ["--source_lang", "eng_Latn", "--target_lang", "ro", "--source_column", "en"], "ron_Latn"),
        ("mbart50", ["--source_lang", "en_XX", "--target_lang", "ro_RO", "--forced_bos_token", "xx"], "--forced_bos"),
    ],
)
def test_unknown_multilingual_codes_name_the_valid_ones(model, flags, expected, tiny_models, tmp_path):
    result = run_example(
        [
            SCRIPT,
            "--model_name_or_path",
            tiny_models / model,
            *flags,
            "--train_file",
            WMT16,
            "--do_train",
            "--max_source_length",
            64,
            "--output_dir",
            tmp_path / "out",
        ],  # fmt: skip
        expect_success=False,
    )
    last_line = assert_usage_error(result, "is not a language code of this tokenizer", tmp_path / "out")
    assert last_line.startswith("error: ") and expected in last_line, last_line


@pytest.mark.parametrize(
    ("target_lang", "extra", "tokenizer", "warning"),
    [
        ("zh", [], "zh", None),  # sacrebleu's tokenizer for Chinese
        ("ja", [], "13a", "install sacrebleu[ja] for ja-mecab"),  # MeCab is not installed here
        ("ro", ["--bleu_tokenize", "intl"], "intl", None),  # the flag overrides the choice
    ],
)
def test_bleu_tokenizer_follows_the_target_language(target_lang, extra, tokenizer, warning, tiny_models, tmp_path):
    rows = [
        {"translation": {"en": row["translation"]["en"], target_lang: row["translation"]["ro"]}}
        for row in read_jsonl(WMT16)
    ]
    data = tmp_path / "test.jsonl"
    write_lines(data, [json.dumps(row, ensure_ascii=False) for row in rows])
    output_dir = tmp_path / "out"
    result = run_example(
        [
            SCRIPT,
            "--model_name_or_path",
            tiny_models / "marian",
            "--source_lang",
            "en",
            "--target_lang",
            target_lang,
            "--test_file",
            data,
            "--do_predict",
            "--predict_with_generate",
            "--generation_max_length",
            16,
            "--output_dir",
            output_dir,
            *extra,
        ]  # fmt: skip
    )
    saved = read_json(output_dir / "predict_results.json")
    assert f"|tok:{tokenizer}|" in saved["predict_bleu_signature"]
    if warning:
        assert warning in result.stdout + result.stderr
    references = tmp_path / "references.txt"
    write_lines(references, [row["translation"][target_lang] for row in rows])
    cli = sacrebleu_cli(output_dir / "generated_predictions.txt", [references], tokenize=tokenizer)
    assert {"bleu": saved["predict_bleu"], "chrf": saved["predict_chrf"]} == cli
    assert_prediction_records(
        output_dir, [row["translation"][target_lang] for row in rows], max_length=16, tokenize=tokenizer
    )


@pytest.mark.slow
def test_two_processes_with_torchrun_score_every_example_once(tiny_models, tmp_path):
    # No --use_cpu: on a machine without GPUs the two processes are connected over gloo by themselves.
    torchrun = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", 2]
    args = run_args(tiny_models / "marian", None, "marian", **{"--max_steps": 6, "--output_dir": None})
    one = run_example([*args, "--output_dir", tmp_path / "one"])
    two = run_example([*args, "--output_dir", tmp_path / "two"], launcher=torchrun)
    assert two.stderr.count("2 processes and no GPU: connecting them on the CPU over gloo") == 1, two.stderr[-3000:]
    assert "world size: 2" in two.stdout + two.stderr and "world size: 1" in one.stdout + one.stderr
    results = read_json(tmp_path / "two" / "all_results.json")
    assert results["eval_samples"] == results["predict_samples"] == 10  # batches of 4 on 2 ranks: uneven
    assert len(read_lines(tmp_path / "two" / "generated_predictions.txt")) == 10
    references = tmp_path / "references.ro"
    write_lines(references, [row["translation"]["ro"] for row in read_jsonl(WMT16)])
    cli = sacrebleu_cli(tmp_path / "two" / "generated_predictions.txt", [references])
    assert {"bleu": results["predict_bleu"], "chrf": results["predict_chrf"]} == cli
    # Written once (by rank 0), every example once, in input order.
    assert_prediction_records(tmp_path / "two", read_lines(references), max_length=32)


def test_predictions_cut_by_the_length_limit_are_reported(tiny_models, tmp_path):
    # An untrained model rarely ends early: with a limit of 8 tokens, its predictions run into the limit. The test
    # data has no Romanian side: translations are written (with their lengths) but not scored.
    sources = tmp_path / "sources.jsonl"
    write_lines(sources, [json.dumps({"translation": {"en": row["translation"]["en"]}}) for row in read_jsonl(WMT16)])
    result = run_example(
        [
            SCRIPT,
            "--model_name_or_path",
            tiny_models / "marian",
            "--source_lang",
            "en",
            "--target_lang",
            "ro",
            "--test_file",
            sources,
            "--do_predict",
            "--predict_with_generate",
            "--generation_max_length",
            8,
            "--output_dir",
            tmp_path / "out",
        ]  # fmt: skip
    )
    log = result.stdout + result.stderr
    assert "10 of 10 predictions reached the length limit of 8 tokens and may be cut" in log
    assert "raise --generation_max_length" in log
    assert "translations are written but not scored" in log
    records = assert_prediction_records(tmp_path / "out", None, max_length=8)
    assert [(record["generated_tokens"], record["hit_length_limit"]) for record in records] == [(7, True)] * 10
    assert "predict_bleu" not in read_json(tmp_path / "out" / "predict_results.json")


def checkpoint_state_step(folder) -> int | None:
    """The step trainer_state.json of a checkpoint folder names, once it is completely written."""
    try:
        return read_json(folder / "trainer_state.json")["global_step"]
    except (OSError, ValueError, KeyError):
        return None


def test_sigterm_names_the_checkpoint_and_the_same_command_resumes(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    command = [
        SCRIPT, "--model_name_or_path", tiny_models / "marian", "--source_lang", "en", "--target_lang", "ro",
        "--train_file", WMT16, "--do_train", "--max_steps", 12, "--save_steps", 2, "--per_device_train_batch_size", 2,
        "--max_source_length", 64, "--max_target_length", 64, "--output_dir", output_dir,
    ]  # fmt: skip
    env = {**os.environ, **TEST_ENV, "HF_HOME": fresh_hf_home()}
    process = subprocess.Popen(
        [sys.executable, *map(str, command)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline, saved = time.time() + 300, False
    while not saved and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)  # trainer_state.json is the last file the Trainer writes into a checkpoint
        saved = checkpoint_state_step(output_dir / "checkpoint-2") == 2
    running = process.poll() is None
    if running:
        process.send_signal(signal.SIGTERM)  # what a batch scheduler sends before it kills a job
    stdout, stderr = process.communicate(timeout=120)
    assert saved and running, stderr[-3000:]
    assert process.returncode == 143, f"exit code {process.returncode}\n{stderr[-3000:]}"
    assert "Traceback" not in stdout + stderr, stderr[-3000:]
    last_line = stderr.strip().splitlines()[-1]
    checkpoint = re.search(
        rf"interrupted \(SIGTERM\); last complete checkpoint: ({re.escape(str(output_dir))}/checkpoint-\d+);",
        last_line,
    )
    assert checkpoint, last_line
    assert "rerun the same command to resume: " in last_line and SCRIPT in last_line, last_line
    assert not (output_dir / "run.lock").exists()

    result = run_example(command)
    assert f"Resuming training from {checkpoint[1]}" in result.stdout + result.stderr, result.stdout[-3000:]
    assert read_json(output_dir / "trainer_state.json")["global_step"] == 12
    assert read_json(output_dir / "train_results.json")["train_samples"] == len(read_jsonl(WMT16))


def test_json_objects_around_the_rows_are_read_as_rows(tiny_models, tmp_path):
    # Rows of mixed shapes (one carries a third language), {"data": [...]} and a dict of lists per language.
    rows = read_jsonl(WMT16)[:4]
    mixed = [rows[0], {"translation": {**rows[1]["translation"], "de": "Zweite."}}, *rows[2:]]
    write_lines(tmp_path / "mixed.jsonl", [json.dumps(row) for row in mixed])
    (tmp_path / "wrapped.json").write_text(json.dumps({"version": "1.0", "data": rows}))
    columns = {key: [row["translation"][key] for row in rows] for key in ("en", "ro")}
    (tmp_path / "columns.json").write_text(json.dumps(columns))
    output_dir = tmp_path / "out"
    files = {"--train_file": "mixed.jsonl", "--validation_file": "wrapped.json", "--test_file": "columns.json"}
    overrides = {flag: tmp_path / name for flag, name in files.items()}
    result = run_example(run_args(tiny_models / "marian", output_dir, "marian", **overrides, **{"--max_steps": 1}))
    assert "wrapped.json: reading the examples under its 'data' key" in result.stdout
    results = read_json(output_dir / "all_results.json")
    assert results["train_samples"] == results["eval_samples"] == results["predict_samples"] == 4
    assert len(read_lines(output_dir / "generated_predictions.txt")) == 4


@pytest.mark.parametrize("script", [SCRIPT, "examples/pytorch/translation/run_translation_no_trainer.py"])
def test_a_two_step_run_prints_at_most_60_lines(script, tiny_models, tmp_path):
    """Train 2 steps on 4 examples, evaluate and predict 4: the effective settings in one Run: line, the results,
    no argument dump (it is in run_arguments.json) and no library chatter."""
    output_dir = tmp_path / "out"
    data = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"
    command = [
        script, "--model_name_or_path", tiny_models / "marian", "--source_lang", "en", "--target_lang", "ro",
        "--train_file", data, "--validation_file", data, "--test_file", data, "--do_predict",
        "--max_train_samples", 4, "--max_eval_samples", 4, "--max_predict_samples", 4,
        "--per_device_train_batch_size", 2, "--output_dir", output_dir,
    ]  # fmt: skip
    if script == SCRIPT:
        command += ["--do_train", "--do_eval", "--predict_with_generate", "--max_steps", 2]
    else:
        command += ["--max_train_steps", 2]
    log, lines = run_log_lines(command)
    assert len(lines) <= 60, "\n".join(lines)
    for noise in ("Offline mode: forcing", "Downloading and preparing", "Model config", "adam_beta1"):
        assert noise not in log, noise
    assert sum(" - Run: " in line for line in lines) == 1
    assert "predict_bleu" in log and (output_dir / "run_arguments.json").is_file()


@pytest.mark.parametrize("script", [SCRIPT, "examples/pytorch/translation/run_translation_no_trainer.py"])
def test_a_generation_config_the_end_could_not_save_is_refused_before_training(script, tiny_models, tmp_path):
    """transformers saves a published generation config with minor issues as it is, but a changed one only if it
    is strictly valid, and setting up the language codes changes it: such a model would train, then fail to save
    (the twin lost its model that way). It is refused first."""
    model = tmp_path / "mbart50"
    shutil.copytree(tiny_models / "mbart50", model)
    config = read_json(model / "generation_config.json")
    (model / "generation_config.json").write_text(json.dumps({**config, "early_stopping": True}))  # 1 beam
    data = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"
    command = [
        script, "--model_name_or_path", model, "--source_lang", "en_XX", "--target_lang", "ro_RO",
        "--train_file", data, "--output_dir", tmp_path / "out",
    ]  # fmt: skip
    command += ["--do_train", "--max_steps", 2] if script == SCRIPT else ["--max_train_steps", 2]
    result = run_example(command, expect_success=False)
    assert_usage_error(result, "generation_config.json cannot be saved with the model", tmp_path / "out")
    assert "`early_stopping`" in result.stderr.strip().splitlines()[-1]
