"""examples/legacy/seq2seq/run_distributed_eval.py run as a user would: torchrun with two CPU processes (gloo)
against a single-process run_eval.py on the legacy en-ro sample."""

import sys
from pathlib import Path

import pytest
import sacrebleu

from helpers import FIXTURES, assert_usage_error, read_json, read_lines, run_example

SCRIPT = "examples/legacy/seq2seq/run_distributed_eval.py"
EN_RO = FIXTURES / "legacy" / "wmt_en_ro"
TORCHRUN = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", 2]


@pytest.fixture(scope="module")
def marian(tiny_models, tmp_path_factory):
    """The tiny Marian re-initialized with large weights: the stock tiny models give the same output for every
    input, which could not show a misordered gather. With init_std=1.0 all 20 test outputs differ."""
    folder = tmp_path_factory.mktemp("marian") / "model"
    run_example(
        ["examples/legacy/seq2seq/save_randomly_initialized_model.py", tiny_models / "marian", folder, "--init_std=1"]
    )
    return folder


def test_two_processes_equal_run_eval_in_input_order_and_bleu_matches(marian, tmp_path):
    generation = ["--bs", "3", "--max_length=16"]
    single = tmp_path / "run_eval.txt"
    run_example(["examples/legacy/seq2seq/run_eval.py", marian, EN_RO / "test.source", single, *generation])
    expected = read_lines(single)
    assert len(expected) == 20 and len(set(expected)) >= 15  # input-dependent outputs

    # References: the model's own output on even lines, the real Romanian on odd ones (0 < BLEU < 100).
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.source").write_text((EN_RO / "test.source").read_text(encoding="utf-8"), encoding="utf-8")
    real = (EN_RO / "test.target").read_text(encoding="utf-8").split("\n")
    refs = [own if i % 2 == 0 else ref for i, (own, ref) in enumerate(zip(expected, real, strict=True))]
    (data / "test.target").write_text("\n".join(refs) + "\n", encoding="utf-8")

    save_dir = tmp_path / "dist"
    args = [SCRIPT, "--model_name", marian, "--data_dir", data, "--save_dir", save_dir, "--task", "translation"]
    result = run_example([*args, *generation, "--debug"], launcher=TORCHRUN)
    log = result.stdout + result.stderr
    assert "rank 0, device cpu, world size 2" in log and "rank 1, device cpu, world size 2" in log

    # every input once, in input order, identical to the single-process run
    generations = read_lines(save_dir / "test_generations.txt")
    assert generations == expected
    shares = [read_json(save_dir / f"rank_{rank}_output.json") for rank in (0, 1)]
    ids = [[record["id"] for record in share] for share in shares]
    assert sorted(ids[0] + ids[1]) == list(range(20)) and len(ids[0]) == len(ids[1]) == 10
    lengths = [len(line.encode()) for line in (EN_RO / "test.source").read_text(encoding="utf-8").split("\n")]
    for share_ids in ids:  # each rank generates its share longest first
        assert [lengths[i] for i in share_ids] == sorted((lengths[i] for i in share_ids), reverse=True)

    metrics = read_json(save_dir / "test_bleu.json")
    assert metrics["bleu"] == round(sacrebleu.corpus_bleu(generations, [refs]).score, 4)
    assert 0 < metrics["bleu"] < 100
    assert metrics["n_obs"] == 20 and metrics["n_processes"] == 2 and metrics["n_gpus"] == 0
    assert metrics["seconds_per_sample"] > 0
    assert read_lines(save_dir / "test.target") == refs  # --debug copy of the references used

    # a second run into the same save dir is refused before anything is loaded or written
    before = sorted(p.name for p in save_dir.iterdir())
    again = run_example(args, expect_success=False)
    assert_usage_error(again, "already holds results")
    assert sorted(p.name for p in save_dir.iterdir()) == before


def test_num_return_sequences_writes_pseudolabels(marian, tmp_path):
    save_dir = tmp_path / "pseudo"
    run_example(
        [
            SCRIPT,
            "--model_name",
            marian,
            "--data_dir",
            EN_RO,
            "--type_path",
            "val",
            "--n_obs",
            "5",
            "--save_dir",
            save_dir,
            "--num_return_sequences",
            "2",
            "--max_length=12",
        ]  # fmt: skip
    )
    assert sorted(p.name for p in save_dir.iterdir()) == ["pseudolabel_results.json"]
    candidates = read_json(save_dir / "pseudolabel_results.json")
    assert len(candidates) == 5 and all(len(c) == 2 and all(isinstance(t, str) for t in c) for c in candidates)
    assert any(first != second for first, second in candidates)  # two beams, not one answer twice
    assert len({c[0] for c in candidates}) > 1  # and per input, in input order (inputs give different outputs)


def test_two_processes_with_ctranslate2_equal_run_eval(marian, tmp_path):
    """--generation_backend ctranslate2 under torchrun: rank 0 converts into --save_dir/ctranslate2, both ranks
    generate their share with it, and the gathered generations are run_eval.py's (transformers) ones."""
    generation = ["--bs", "3", "--max_length=16"]
    single = tmp_path / "run_eval.txt"
    run_example(["examples/legacy/seq2seq/run_eval.py", marian, EN_RO / "test.source", single, *generation])
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.source").write_text((EN_RO / "test.source").read_text(encoding="utf-8"), encoding="utf-8")
    save_dir = tmp_path / "dist"
    args = [SCRIPT, "--model_name", marian, "--data_dir", data, "--save_dir", save_dir, "--task", "translation"]
    run_example([*args, *generation, "--generation_backend", "ctranslate2"], launcher=TORCHRUN)
    assert read_lines(save_dir / "test_generations.txt") == read_lines(single)
    assert (save_dir / "ctranslate2" / "model.bin").is_file()
    assert not list(save_dir.glob("ctranslate2.partial-*"))
