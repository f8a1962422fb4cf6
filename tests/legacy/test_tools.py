"""The small legacy tools run as a user would: rouge_cli, run_eval_search, save_len_file, minify_dataset,
convert_model_to_fp16 and pack_dataset (examples/legacy/seq2seq)."""

import json

import nltk
import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer, scoring
from safetensors.torch import load_file
from transformers import AutoTokenizer

from helpers import FIXTURES, REPO_ROOT, expected_legacy_rouge, import_legacy, read_json, read_lines, run_example

TOOLS = "examples/legacy/seq2seq"
EN_RO = FIXTURES / "legacy" / "wmt_en_ro"
CNNDM = FIXTURES / "legacy" / "cnndm_see2017"

lu = import_legacy("utils")
official_rouge = import_legacy("official_rouge")


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- rouge_cli.py
def see_et_al_summaries(name):
    with open(CNNDM / name, encoding="utf-8") as handle:
        return [json.loads(line)["summary"].replace("\n", " ") for line in handle]


def reference_sets(count: int) -> list[list[str]]:
    """1-3 reference sets for the 100 CNN/DM articles: the real summaries, the articles' first 60 words (a lead
    baseline as a second reference) and another article's summary (a poor third one)."""
    refs = see_et_al_summaries("references.jsonl")
    lead = [" ".join(line.split()[:60]) for line in read_lines(CNNDM / "test.source")]
    return [refs, lead, refs[1:] + refs[:1]][:count]


def one_sentence_per_line(text: str) -> str:
    return "\n".join(nltk.sent_tokenize(text))


def expected_rouge_score_multi(predictions, sets) -> dict:
    """rouge_score directly: per example the best reference (score_multi), bootstrap mid with numpy seed 0, x100."""
    scorer = rouge_scorer.RougeScorer(list(lu.ROUGE_KEYS), use_stemmer=True)
    aggregator = scoring.BootstrapAggregator()
    for index, prediction in enumerate(predictions):
        targets = [one_sentence_per_line(refs[index]) for refs in sets]
        aggregator.add_scores(scorer.score_multi(targets, one_sentence_per_line(prediction)))
    np.random.seed(0)
    return {key: round(value.mid.fmeasure * 100, 4) for key, value in aggregator.aggregate().items()}


def expected_official(predictions, sets) -> dict:
    """official_rouge.evaluate itself: ROUGE-1/2/L over one sentence per line (rougeLsum), ROUGE-L alone over the
    unsplit texts (rougeL); several references per example given as a list of sentence lists."""
    references = [
        [one_sentence_per_line(refs[index]).split("\n") for refs in sets] for index in range(len(predictions))
    ]
    split = official_rouge.evaluate(
        [one_sentence_per_line(p) for p in predictions], references, official_rouge.OfficialRougeOptions(max_ngram=2)
    )
    unsplit = official_rouge.evaluate(
        predictions,
        [[[" ".join(sentences)] for sentences in example] for example in references],
        official_rouge.OfficialRougeOptions(max_ngram=0),
    )
    sources = {"rouge1": (split, "ROUGE-1"), "rouge2": (split, "ROUGE-2"), "rougeL": (unsplit, "ROUGE-L")}
    sources["rougeLsum"] = (split, "ROUGE-L")
    expected = {}
    for key, (result, metric) in sources.items():
        for end in ("", "_low", "_high"):
            expected[key + end] = round(100 * result.averages[metric][f"F{end}"], 4)
    return expected


def test_rouge_cli_equals_calculate_rouge_on_see_et_al_outputs(tmp_path):
    preds, refs = see_et_al_summaries("pred_pointer_gen_cov.jsonl")[:40], see_et_al_summaries("references.jsonl")
    pred_path, ref_path = write_lines(tmp_path / "pred.txt", preds), write_lines(tmp_path / "ref.txt", refs)
    result = run_example([f"{TOOLS}/rouge_cli.py", pred_path, ref_path, "--save_path", tmp_path / "rouge.json"])
    # References are cut to the 40 predictions, as upstream; the numbers are rouge_score's, as before the backends.
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed == read_json(tmp_path / "rouge.json")
    signature = printed.pop("rouge_signature")
    assert printed == expected_legacy_rouge(preds, refs[:40]) == lu.calculate_rouge(preds, refs[:40])
    assert 20 < printed["rouge1"] < 50 and printed["rougeLsum"] > printed["rougeL"]
    assert signature.startswith("rouge:rouge_score-") and "|nrefs:1|refs:best|" in signature
    assert "|agg:bootstrap-mid-1000|seed:0|" in signature and "|stem:nltk-porter-" in signature

    only = run_example([f"{TOOLS}/rouge_cli.py", pred_path, ref_path, "--rouge_keys", "rouge2", "--no_stemmer"])
    only = json.loads(only.stdout)
    assert "|stem:none|" in only.pop("rouge_signature")
    assert only == lu.calculate_rouge(preds, refs[:40], rouge_keys=["rouge2"], use_stemmer=False)

    short = write_lines(tmp_path / "short.txt", refs[:10])
    bad = run_example([f"{TOOLS}/rouge_cli.py", pred_path, short], expect_success=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "must align" in bad.stderr


@pytest.mark.parametrize("backend", ["rouge_score", "official"])
@pytest.mark.parametrize("n_refs", [1, 2, 3])
def test_rouge_cli_several_reference_files(tmp_path, backend, n_refs):
    """One file per reference set: rouge_score keeps each example's best reference, official averages them (the
    Perl script's -f A), with the 95% interval as <key>_low/_high."""
    preds, sets = see_et_al_summaries("pred_pointer_gen_cov.jsonl")[:30], reference_sets(n_refs)
    ref_paths = [write_lines(tmp_path / f"ref{i}.txt", refs) for i, refs in enumerate(sets)]
    pred_path = write_lines(tmp_path / "pred.txt", preds)
    result = run_example([f"{TOOLS}/rouge_cli.py", pred_path, *ref_paths, "--rouge_backend", backend])
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    signature = printed.pop("rouge_signature")
    cut = [refs[:30] for refs in sets]
    if backend == "official":
        assert printed == expected_official(preds, cut)
        assert signature.startswith("rouge:official-1.5.5|") and "|refs:average|" in signature
        assert "|agg:bootstrap-mean-1000|ci:95|opts:-c 95 -r 1000 -n 2 -a -m|" in signature
        assert all(printed[f"{key}_low"] <= printed[key] <= printed[f"{key}_high"] for key in lu.ROUGE_KEYS)
    else:
        assert printed == expected_rouge_score_multi(preds, cut)
        assert "|refs:best|" in signature
    assert f"|nrefs:{n_refs}|" in signature
    if n_refs == 1:
        assert printed["rouge1"] > 20
    else:  # more references: best-of can only go up; the lead-60 reference raises the average too
        single = expected_official(preds, cut[:1]) if backend == "official" else expected_legacy_rouge(preds, cut[0])
        assert printed["rouge1"] != single["rouge1"]
        if backend == "rouge_score":
            assert printed["rouge1"] > single["rouge1"]


# ----------------------------------------------------------------------------- run_eval_search.py
def test_run_eval_search_grid_table_and_best(tiny_models, tmp_path):
    source = write_lines(tmp_path / "test.source", read_lines(EN_RO / "test.source")[:5])
    target = write_lines(tmp_path / "test.target", read_lines(EN_RO / "test.target")[:5])
    marian = tiny_models / "marian"
    # References = the model's own output with num_beams=2 max_length=12, so that setting must win (BLEU 100).
    own = tmp_path / "own.txt"
    run_example([f"{TOOLS}/run_eval.py", marian, source, own, "--num_beams", "2", "--max_length", "12"])
    search = ["--search", "num_beams=1:2 max_length=8:12", "--task", "translation", "--bs", "2"]
    result = run_example(
        [f"{TOOLS}/run_eval_search.py", marian, source, tmp_path / "s", "--reference_path", own, *search]
    )
    out = result.stdout
    header = next(line for line in out.splitlines() if line.startswith("| num_beams"))
    assert " num_beams | max_length | bleu" in header and "Info" not in out
    table = out[out.index(header) :].split("\n\n")[0].splitlines()[2:]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    assert sorted((r[0], r[1]) for r in rows) == [("1", "12"), ("1", "8"), ("2", "12"), ("2", "8")]
    bleus = [float(r[2]) for r in rows]
    assert bleus == sorted(bleus, reverse=True) and rows[0][:2] == ["2", "12"] and bleus[0] == 100.0
    assert "Best score args:" in out and "--num_beams=2 --max_length=12" in out.splitlines()[-1]
    saved = read_json(tmp_path / "s" / "search_results.json")
    assert [r["bleu"] for r in saved] == bleus
    assert read_lines(tmp_path / "s" / "num_beams=2,max_length=12" / "generations.txt") == read_lines(own)

    bad = run_example(
        [
            f"{TOOLS}/run_eval_search.py",
            marian,
            source,
            tmp_path / "b",
            "--reference_path",
            target,
            "--search",
            "num_beams",
        ],
        expect_success=False,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: --search entry")


# ----------------------------------------------------------------------------- save_len_file.py
def test_save_len_file_writes_token_lengths_as_json(tiny_models, tmp_path):
    data = tmp_path / "data"
    run_example([f"{TOOLS}/minify_dataset.py", EN_RO, "100", data])
    run_example([f"{TOOLS}/save_len_file.py", tiny_models / "t5", data, "--max_source_length", "16"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_models / "t5")
    for split in ("train", "val"):
        lines = read_lines(EN_RO / f"{split}.source")
        expected = [len(tokenizer(x, truncation=True, max_length=16)["input_ids"]) for x in lines]
        assert json.loads((data / f"{split}.len").read_text()) == expected
        assert max(expected) == 16 and len(expected) == len(lines)
    run_example([f"{TOOLS}/save_len_file.py", tiny_models / "t5", data, "--consider_target"])
    src_lens = [len(tokenizer(x)["input_ids"]) for x in read_lines(EN_RO / "val.source")]
    tgt_lens = [len(tokenizer(x)["input_ids"]) for x in read_lines(EN_RO / "val.target")]
    assert json.loads((data / "val.len").read_text()) == [max(s, t) for s, t in zip(src_lens, tgt_lens, strict=True)]


# ----------------------------------------------------------------------------- minify_dataset.py
def test_minify_dataset_keeps_first_n_lines(tmp_path):
    run_example([f"{TOOLS}/minify_dataset.py", EN_RO, "3", tmp_path / "mini"])
    names = sorted(p.name for p in (tmp_path / "mini").iterdir())
    assert names == sorted(p.name for p in EN_RO.iterdir() if p.suffix in (".source", ".target"))
    for name in names:
        text = (tmp_path / "mini" / name).read_text(encoding="utf-8")
        assert text.split("\n") == read_lines(EN_RO / name)[:3] and not text.endswith("\n")
    bad = run_example([f"{TOOLS}/minify_dataset.py", tmp_path / "nothing", "3", tmp_path / "x"], expect_success=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


# ----------------------------------------------------------------------------- convert_model_to_fp16.py
@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_convert_model_to_fp16(tiny_models, tmp_path, suffix):
    original = load_file(tiny_models / "t5" / "model.safetensors")
    src = tmp_path / "model.safetensors"
    src.write_bytes((tiny_models / "t5" / "model.safetensors").read_bytes())
    if suffix == ".bin":
        src = tmp_path / "pytorch_model.bin"
        torch.save(original, src)
    out = tmp_path / f"half{suffix}"
    run_example([f"{TOOLS}/convert_model_to_fp16.py", src, "--save_path", out])
    halved = load_file(out) if suffix == ".safetensors" else torch.load(out, weights_only=True)
    assert halved.keys() == original.keys()
    for key, value in original.items():
        assert halved[key].dtype == (torch.float16 if value.is_floating_point() else value.dtype)
        torch.testing.assert_close(halved[key].float(), value.float(), rtol=1e-3, atol=1e-4)
    assert out.stat().st_size < 0.6 * src.stat().st_size
    # Without --save_path the source is overwritten, as upstream.
    run_example([f"{TOOLS}/convert_model_to_fp16.py", src])
    assert out.stat().st_size == pytest.approx(src.stat().st_size, rel=0.05)


# ----------------------------------------------------------------------------- pack_dataset.py
def test_pack_dataset_respects_budget_and_keeps_text(tiny_models, tmp_path):
    budget = 400  # the shipped train pairs are 11-397 tokens: two pairs pack at 400
    run_example(
        [
            f"{TOOLS}/pack_dataset.py",
            "--tok_name",
            tiny_models / "t5",
            "--max_seq_len",
            budget,
            "--data_dir",
            EN_RO,
            "--save_path",
            tmp_path / "packed",
        ]
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_models / "t5")
    packed = tmp_path / "packed"
    for side in ("source", "target"):
        original = read_lines(EN_RO / f"train.{side}")
        text = (packed / f"train.{side}").read_text(encoding="utf-8")
        lines = text.split("\n")
        assert not text.endswith("\n") and len(lines) == len(original) - 2
        assert " ".join(lines) == " ".join(original)  # all text, in order
        for line in lines:
            n = len(tokenizer(line)["input_ids"])
            # Only a single example longer than the budget may exceed it.
            assert n <= budget or line in original, (n, line)
    assert len(read_lines(packed / "train.source")) == len(read_lines(packed / "train.target"))
    for name in ("val.source", "val.target", "test.source", "test.target"):
        assert (packed / name).read_bytes() == (EN_RO / name).read_bytes()


def test_rouge_cli_official_gives_the_perl_scripts_numbers_for_one_to_four_references(tmp_path):
    """The issue's acceptance check, on data official_rouge was never tuned on: SciTLDR dev papers (1-4 TLDRs each,
    one file per reference set, an empty line where a paper has fewer), the abstract's first sentence as the
    prediction. rouge_cli.py's averages and intervals equal what ROUGE-1.5.5.pl prints for the same sentences."""
    import os
    import sys

    sys.path.insert(0, str(REPO_ROOT / "utils"))
    import rouge155_perl

    problem = rouge155_perl.check_perl()
    shared = REPO_ROOT.parent / "shared" / "data" / "scitldr_a" / "dev.jsonl"
    if problem or not shared.is_file():
        reason = problem or f"{shared} is missing (clone with ../shared beside it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with open(shared, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle][:150]
    predictions = [" ".join(record["source"][0].split()) for record in records]  # one line each
    targets = [[" ".join(target.split()) for target in record["target"][:4]] for record in records]
    assert {1, 2, 3, 4} <= {len(refs) for refs in targets}
    ref_paths = [
        write_lines(tmp_path / f"ref{i}.txt", [refs[i] if i < len(refs) else "" for refs in targets]) for i in range(4)
    ]
    pred_path = write_lines(tmp_path / "pred.txt", predictions)
    result = run_example([f"{TOOLS}/rouge_cli.py", pred_path, *ref_paths, "--rouge_backend", "official"])
    printed = json.loads(result.stdout.strip().splitlines()[-1])

    split = rouge155_perl.run_perl_rouge(
        [nltk.sent_tokenize(text) for text in predictions],
        [[nltk.sent_tokenize(text) for text in refs] for refs in targets],
        rouge155_perl.FIXTURE_FLAGS["n2"],
    )
    unsplit = rouge155_perl.run_perl_rouge(
        [[text] for text in predictions], [[[text] for text in refs] for refs in targets], "-c 95 -r 1000 -n 1 -a -m"
    )
    sources = {"rouge1": (split, "ROUGE-1"), "rouge2": (split, "ROUGE-2"), "rougeLsum": (split, "ROUGE-L")}
    sources["rougeL"] = (unsplit, "ROUGE-L")
    for key, (perl, metric) in sources.items():
        for end in ("", "_low", "_high"):
            assert printed[key + end] == round(100 * float(perl["averages"][metric][f"F{end}"]), 4), key + end
