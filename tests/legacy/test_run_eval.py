"""examples/legacy/seq2seq/run_eval.py run as a user would: tiny t5 / marian on the legacy en-ro sample."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import nltk
import pytest
import sacrebleu
import torch
from rouge_score import rouge_scorer
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from helpers import (
    FIXTURES,
    REPO_ROOT,
    TEST_ENV,
    expected_legacy_rouge,
    import_legacy,
    read_json,
    read_jsonl,
    read_lines,
    run_example,
)

SCRIPT = "examples/legacy/seq2seq/run_eval.py"
EN_RO = FIXTURES / "legacy" / "wmt_en_ro"
SOURCE, TARGET = EN_RO / "test.source", EN_RO / "test.target"


official_rouge = import_legacy("official_rouge")
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def eval_args(model, save, scores, *extra, source=SOURCE, target=TARGET):
    return [SCRIPT, model, source, save, "--reference_path", target, "--score_path", scores, *extra]


def check_records(save_path, references, max_length) -> list[dict]:
    """The per-example records beside SAVE_PATH (`<stem>.jsonl`): one per prediction, in its order, with the
    references and the generation lengths (generation stops at the limit exactly when it used every position)."""
    records = read_jsonl(save_path.with_suffix(".jsonl"))
    predictions = read_lines(save_path)
    assert [record["index"] for record in records] == list(range(len(predictions)))
    assert [record["prediction"] for record in records] == predictions
    for record in records:
        expected_keys = {"index", "prediction", "generated_tokens", "hit_length_limit"}
        if references is not None:
            assert record["references"] == [references[record["index"]]]
            expected_keys |= {"references", "scores"}
        assert set(record) == expected_keys
        assert 0 <= record["generated_tokens"] <= max_length - 1
        # (0: a random tiny model that generated only pad tokens, which count as padding; it never stopped.)
        assert record["hit_length_limit"] == (record["generated_tokens"] in (0, max_length - 1))
    return records


def one_sentence_per_line(text: str) -> str:
    return "\n".join(nltk.sent_tokenize(text))


def test_t5_summarization_sorted_equals_unsorted_and_rouge_matches(tiny_models, tmp_path):
    common = ["--task", "summarization", "--prefix", "summarize: ", "--bs", "3", "--max_length", "24"]
    run_example(eval_args(tiny_models / "t5", tmp_path / "sorted.txt", tmp_path / "sorted.json", *common))
    run_example(eval_args(tiny_models / "t5", tmp_path / "plain.txt", tmp_path / "plain.json", *common, "--no_sort"))
    preds = read_lines(tmp_path / "sorted.txt")
    refs = TARGET.read_text(encoding="utf-8").split("\n")
    assert len(preds) == len(refs) == 20
    assert preds == read_lines(tmp_path / "plain.txt")
    assert not (tmp_path / "sorted.txt.partial.jsonl").exists()
    scores = read_json(tmp_path / "sorted.json")
    assert {k: scores[k] for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")} == expected_legacy_rouge(preds, refs)
    assert (
        scores["rouge_signature"].startswith("rouge:rouge_score-")
        and "|agg:bootstrap-mid-1000|" in scores["rouge_signature"]
    )
    assert check_records(tmp_path / "sorted.txt", refs, 24) == check_records(tmp_path / "plain.txt", refs, 24)
    assert scores["n_obs"] == scores["n_generated"] == 20 and scores["n_resumed"] == 0
    assert scores["samples_per_second"] > 0 and scores["generated_tokens_per_second"] > 0
    assert scores["seconds_per_sample"] >= 0 and isinstance(scores["runtime"], int)


def test_marian_translation_sorted_with_shared_beam_cache_equals_the_plain_path_and_bleu_matches(
    tiny_models, tmp_path
):
    common = ["--task", "translation", "--bs", "4", "--num_beams", "2", "--max_length=20", "--length_penalty=1.0"]
    common += ["--n_obs", "12", "--dump-args", "--info", "tiny marian"]
    run_example(eval_args(tiny_models / "marian", tmp_path / "sorted.txt", tmp_path / "sorted.json", *common))
    plain = ["--no_sort", "--no_share_cross_attention"]  # input order, generate()'s own beam cache
    run_example(eval_args(tiny_models / "marian", tmp_path / "plain.txt", tmp_path / "plain.json", *common, *plain))
    preds = read_lines(tmp_path / "sorted.txt")
    assert len(preds) == 12 and preds == read_lines(tmp_path / "plain.txt")
    refs = TARGET.read_text(encoding="utf-8").split("\n")[:12]
    scores = read_json(tmp_path / "sorted.json")
    assert scores["bleu"] == round(sacrebleu.corpus_bleu(preds, [refs]).score, 4) and "rouge_signature" not in scores
    for record in check_records(tmp_path / "sorted.txt", refs, 20):
        prediction, reference = record["prediction"], record["references"]
        assert record["scores"] == {
            "bleu": round(sacrebleu.sentence_bleu(prediction, reference).score, 4),
            "chrf": round(sacrebleu.sentence_chrf(prediction, reference).score, 4),
        }
    assert scores["num_beams"] == 2 and scores["length_penalty"] == 1.0 and scores["info"] == "tiny marian"
    assert scores["n_obs"] == 12


def test_ctranslate2_backend_writes_the_transformers_predictions(tiny_models, tmp_path):
    """--generation_backend ctranslate2: the same predictions, records and BLEU as generate() (mBART-50 with its
    forced target code, greedy; a marian with early stopping, 3 beams), the converted model beside SAVE_PATH; a
    model setting it cannot reproduce is refused before anything is written."""
    marian = tmp_path / "marian"
    shutil.copytree(tiny_models / "marian", marian)
    config = read_json(marian / "generation_config.json")
    (marian / "generation_config.json").write_text(json.dumps({**config, "num_beams": 3, "early_stopping": True}))
    runs = {
        "mbart50": [tiny_models / "mbart50", "--src_lang", "en_XX", "--tgt_lang", "ro_RO", "--max_length", "12"],
        "marian": [marian, "--max_length", "16"],
    }
    for name, (model, *flags) in runs.items():
        common = ["--task", "translation", "--bs", "4", "--n_obs", "12", *flags]
        for backend in ("transformers", "ctranslate2"):
            save = tmp_path / f"{name}-{backend}.txt"
            args = [
                SCRIPT,
                model,
                SOURCE,
                save,
                "--reference_path",
                TARGET,
                "--score_path",
                tmp_path / f"{name}-{backend}.json",
            ]
            run_example([*args, *common, "--generation_backend", backend])
        assert read_lines(tmp_path / f"{name}-ctranslate2.txt") == read_lines(tmp_path / f"{name}-transformers.txt")
        assert read_jsonl(tmp_path / f"{name}-ctranslate2.jsonl") == read_jsonl(
            tmp_path / f"{name}-transformers.jsonl"
        )
        scores = {
            backend: read_json(tmp_path / f"{name}-{backend}.json") for backend in ("transformers", "ctranslate2")
        }
        assert scores["ctranslate2"]["bleu"] == scores["transformers"]["bleu"]
        assert (tmp_path / f"{name}-ctranslate2.ctranslate2" / "model.bin").is_file()
    refused = run_example(
        [SCRIPT, tiny_models / "marian", SOURCE, tmp_path / "refused.txt", "--task", "translation", "--num_beams", "3",
         "--generation_backend", "ctranslate2"],
        expect_success=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "early_stopping=False with beam search" in refused.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "refused.txt").exists() and not (tmp_path / "refused.ctranslate2").exists()


def test_official_rouge_backend_signature_and_per_example_records(tiny_models, tmp_path):
    """--rouge_backend official: ROUGE-1.5.5 numbers with intervals and signature, per-example scores equal to
    official_rouge's per document; rouge_score's per-example scores equal rouge_score's. The references are built
    from a first run's predictions (tiny random models share no words with real references)."""
    common = ["--task", "summarization", "--bs", "5", "--max_length", "20"]
    model = tiny_models / "marian"
    run_example([SCRIPT, model, SOURCE, tmp_path / "first.txt", *common])  # no references: no scores
    predictions = read_lines(tmp_path / "first.txt")
    check_records(tmp_path / "first.txt", None, 20)
    sources = read_lines(SOURCE)
    # Every (i % 3 + 1)-th prediction word, then source words: partial, differing overlaps, two sentences.
    references = [
        " ".join(p.split()[:: i % 3 + 1]) + " . " + " ".join(sources[i].split()[:12])
        for i, p in enumerate(predictions)
    ]
    target = tmp_path / "refs.txt"
    target.write_text("\n".join(references) + "\n", encoding="utf-8")

    run_example(eval_args(model, tmp_path / "official.txt", tmp_path / "official.json", *common, "--rouge_backend",
                          "official", target=target))  # fmt: skip
    assert read_lines(tmp_path / "official.txt") == predictions
    scores = read_json(tmp_path / "official.json")
    signature = scores["rouge_signature"]
    assert signature.startswith("rouge:official-1.5.5|") and "|agg:bootstrap-mean-1000|ci:95|" in signature
    split = official_rouge.evaluate(
        [one_sentence_per_line(p) for p in predictions],
        [[one_sentence_per_line(r).split("\n")] for r in references],
        official_rouge.OfficialRougeOptions(max_ngram=2),
    )
    unsplit = official_rouge.evaluate(predictions, references, official_rouge.OfficialRougeOptions(max_ngram=0))
    metrics = {"rouge1": (split, "ROUGE-1"), "rouge2": (split, "ROUGE-2"), "rougeL": (unsplit, "ROUGE-L")}
    metrics["rougeLsum"] = (split, "ROUGE-L")
    for key, (result, metric) in metrics.items():
        for end in ("", "_low", "_high"):
            assert scores[key + end] == round(100 * result.averages[metric][f"F{end}"], 4)
    assert 10 < scores["rouge1"] < 100
    records = check_records(tmp_path / "official.txt", references, 20)
    for record, document in zip(records, split.per_document, strict=True):
        assert record["scores"]["rouge1"] == round(100 * document["ROUGE-1"][2], 4)
        assert record["scores"]["rougeLsum"] == round(100 * document["ROUGE-L"][2], 4)
    assert [r["scores"]["rougeL"] for r in records] == [round(100 * d["ROUGE-L"][2], 4) for d in unsplit.per_document]
    assert len({record["scores"]["rouge1"] for record in records}) > 2

    run_example(eval_args(model, tmp_path / "default.txt", tmp_path / "default.json", *common, target=target))
    default = read_json(tmp_path / "default.json")
    assert {key: default[key] for key in ROUGE_KEYS} == expected_legacy_rouge(predictions, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    for record in check_records(tmp_path / "default.txt", references, 20):
        expected = scorer.score(
            one_sentence_per_line(record["references"][0]), one_sentence_per_line(record["prediction"])
        )
        assert record["scores"] == {key: round(100 * value.fmeasure, 4) for key, value in expected.items()}


@pytest.fixture(scope="module")
def nbest_runs(tiny_models, tmp_path_factory):
    """Tiny marian, 4 beams, 12 inputs: `k3.*` with --num_return_sequences 3, `k1.*` the same command with 1."""
    folder = tmp_path_factory.mktemp("nbest")
    common = ["--task", "translation", "--bs", "4", "--num_beams", "4", "--max_length", "16", "--n_obs", "12"]
    for k in (3, 1):
        run_example(eval_args(tiny_models / "marian", folder / f"k{k}.txt", folder / f"k{k}.json", *common,
                              "--num_return_sequences", str(k)))  # fmt: skip
    return folder


def test_nbest_lists_hold_k_hypotheses_best_first_the_first_being_the_prediction(nbest_runs):
    rows = read_jsonl(nbest_runs / "k3.nbest.jsonl")
    predictions = read_lines(nbest_runs / "k3.txt")
    assert len(predictions) == 12 and [row["index"] for row in rows] == list(range(12))
    for row, prediction in zip(rows, predictions, strict=True):
        assert set(row) == {"index", "hypotheses"} and len(row["hypotheses"]) == 3
        scores = [hypothesis["score"] for hypothesis in row["hypotheses"]]
        assert scores == sorted(scores, reverse=True) and all(score < 0 for score in scores)
        assert row["hypotheses"][0]["text"] == prediction
    # Three different beams per input, not one hypothesis repeated.
    assert all(len({hypothesis["text"] for hypothesis in row["hypotheses"]}) == 3 for row in rows)


def test_nbest_scores_are_the_beam_search_scores_of_generate(nbest_runs, tiny_models):
    """The scores are transformers' `sequences_scores` (length-penalised log-probabilities), recomputed here one
    input at a time (no padding, hence the tolerance)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_models / "marian")
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models / "marian").eval()
    rows = read_jsonl(nbest_runs / "k3.nbest.jsonl")
    for line, row in zip(read_lines(SOURCE)[:4], rows, strict=False):
        with torch.no_grad():
            output = model.generate(
                **tokenizer([line], return_tensors="pt"),
                num_beams=4,
                max_length=16,
                num_return_sequences=3,
                output_scores=True,
                return_dict_in_generate=True,
            )
        texts = tokenizer.batch_decode(output.sequences, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        assert [hypothesis["text"] for hypothesis in row["hypotheses"]] == [text.strip() for text in texts]
        expected = output.sequences_scores.tolist()
        assert [hypothesis["score"] for hypothesis in row["hypotheses"]] == pytest.approx(expected, abs=1e-4)


def test_nbest_run_writes_what_the_single_best_run_writes(nbest_runs):
    """SAVE_PATH, its records and the scores of K = 3 are those of K = 1 with the same beams: the best hypothesis."""
    assert read_lines(nbest_runs / "k3.txt") == read_lines(nbest_runs / "k1.txt")
    assert read_jsonl(nbest_runs / "k3.jsonl") == read_jsonl(nbest_runs / "k1.jsonl")
    scores = read_json(nbest_runs / "k3.json")
    references = read_lines(TARGET)[:12]
    assert scores["bleu"] == read_json(nbest_runs / "k1.json")["bleu"]
    assert scores["bleu"] == round(sacrebleu.corpus_bleu(read_lines(nbest_runs / "k3.txt"), [references]).score, 4)
    assert not (nbest_runs / "k1.nbest.jsonl").exists()
    assert not list(nbest_runs.glob("*.partial.jsonl"))


def count_records(partial_path) -> int:
    """Finished predictions in a partial file: complete JSON lines after the settings header."""
    n = 0
    if partial_path.exists():
        for line in partial_path.read_text(encoding="utf-8").splitlines()[1:]:
            try:
                json.loads(line)
            except json.JSONDecodeError:
                break
            n += 1
    return n


@pytest.mark.slow
def test_killed_run_resumes_without_regenerating(tiny_models, tmp_path):
    # 100 inputs (the 20 en-ro lines five times), small batches: enough generation time to kill it halfway.
    source, target = tmp_path / "test.source", tmp_path / "test.target"
    source.write_text("\n".join(SOURCE.read_text(encoding="utf-8").split("\n") * 5) + "\n", encoding="utf-8")
    target.write_text("\n".join(TARGET.read_text(encoding="utf-8").split("\n") * 5) + "\n", encoding="utf-8")
    common = ["--task", "translation", "--bs", "2", "--max_length", "32", "--num_beams", "2"]
    model = tiny_models / "marian"
    run_example(eval_args(model, tmp_path / "full.txt", tmp_path / "full.json", *common, source=source, target=target))

    save, partial = tmp_path / "resumed.txt", tmp_path / "resumed.txt.partial.jsonl"
    args = eval_args(model, save, tmp_path / "resumed.json", *common, source=source, target=target)
    process = subprocess.Popen(
        [sys.executable, *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, **TEST_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while count_records(partial) < 10 and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = count_records(partial)
    assert 10 <= done_before < 100, f"kill landed after {done_before} of 100 predictions"
    assert not save.exists()

    result = run_example(args)
    assert read_lines(save) == read_lines(tmp_path / "full.txt")
    assert len(read_lines(save)) == 100 and not partial.exists()
    scores = read_json(tmp_path / "resumed.json")
    assert scores["n_resumed"] == done_before and scores["n_generated"] == 100 - done_before
    assert f"generated {100 - done_before} predictions, {done_before} resumed" in result.stderr
    assert scores["bleu"] == read_json(tmp_path / "full.json")["bleu"]
    # The per-example records cover every example, in order, resumed ones included, as the uninterrupted run's.
    assert read_jsonl(tmp_path / "resumed.jsonl") == read_jsonl(tmp_path / "full.jsonl")
    assert len(check_records(save, read_lines(target), 32)) == 100


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_input", "does not exist"),
        ("reference_count", "has 19 lines but"),
        ("unknown_task", "--task 'qa' is unknown"),
    ],
)
def test_usage_errors_are_one_line(tmp_path, case, expected):
    source, target, extra = SOURCE, TARGET, []
    if case == "missing_input":
        source = tmp_path / "nope.source"
    elif case == "reference_count":
        target = tmp_path / "short.target"
        target.write_text("\n".join(TARGET.read_text(encoding="utf-8").split("\n")[:19]) + "\n", encoding="utf-8")
    else:
        extra = ["--task", "qa"]
    result = run_example(
        eval_args("unused-model", tmp_path / "out.txt", tmp_path / "s.json", *extra, source=source, target=target),
        expect_success=False,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last and "Traceback" not in result.stderr
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.slow
def test_sigterm_ends_with_one_line_and_the_same_command_resumes(tiny_models, tmp_path):
    source, target = tmp_path / "test.source", tmp_path / "test.target"
    source.write_text("\n".join(SOURCE.read_text(encoding="utf-8").split("\n") * 5) + "\n", encoding="utf-8")
    target.write_text("\n".join(TARGET.read_text(encoding="utf-8").split("\n") * 5) + "\n", encoding="utf-8")
    save, partial = tmp_path / "out.txt", tmp_path / "out.txt.partial.jsonl"
    common = ["--task", "translation", "--bs", "2", "--max_length", "32", "--num_beams", "2"]
    args = eval_args(tiny_models / "marian", save, tmp_path / "s.json", *common, source=source, target=target)
    process = subprocess.Popen(
        [sys.executable, *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, **TEST_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while count_records(partial) < 6 and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 143 and "Traceback" not in stderr, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    saved = count_records(partial)
    assert last.startswith(f"interrupted (SIGTERM); {saved} of 100 predictions saved in {partial}"), last
    assert "rerun the same command to resume:" in last and str(save) in last
    assert not save.exists()
    result = run_example(args)
    assert f"{100 - saved} predictions, {saved} resumed" in result.stderr and len(read_lines(save)) == 100
    # The finished run's outputs are now refused as the target of a rerun without --overwrite.
    again = run_example(args, expect_success=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr.strip().splitlines()[-1]
