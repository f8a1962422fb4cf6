"""examples/legacy/seq2seq/run_eval.py run as a user would: tiny t5 / marian on the legacy en-ro sample."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import sacrebleu

from helpers import FIXTURES, REPO_ROOT, TEST_ENV, expected_legacy_rouge, read_json, read_lines, run_example

SCRIPT = "examples/legacy/seq2seq/run_eval.py"
EN_RO = FIXTURES / "legacy" / "wmt_en_ro"
SOURCE, TARGET = EN_RO / "test.source", EN_RO / "test.target"


def eval_args(model, save, scores, *extra, source=SOURCE, target=TARGET):
    return [SCRIPT, model, source, save, "--reference_path", target, "--score_path", scores, *extra]


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
    assert scores["bleu"] == round(sacrebleu.corpus_bleu(preds, [refs]).score, 4)
    assert scores["num_beams"] == 2 and scores["length_penalty"] == 1.0 and scores["info"] == "tiny marian"
    assert scores["n_obs"] == 12


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
