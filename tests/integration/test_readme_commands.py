"""The README's first command, `make demo`, run as a new user runs it (the second, `make test`, is CI itself)."""

import os
import subprocess

import pytest

from helpers import REPO_ROOT, TEST_ENV, read_json, read_lines


@pytest.mark.slow
def test_make_demo_trains_evaluates_predicts_and_prints_the_rouge_table(tiny_models):
    result = subprocess.run(
        ["make", "demo"], cwd=REPO_ROOT, env={**os.environ, **TEST_ENV}, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output_dir = REPO_ROOT / "outputs" / "demo-summarization"
    assert f"Outputs in {output_dir}" in result.stdout
    table = result.stdout[result.stdout.index("metric ") :]
    for row in ("rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len"):
        assert f"\n{row} " in table, table
    assert "\npredict_rouge_signature: rouge:rouge_score-0.1.2|nrefs:var|refs:best|" in table, (
        table
    )  # SciTLDR: 1-N refs
    results = read_json(output_dir / "all_results.json")
    assert results["predict_samples"] == 100 and results["eval_samples"] == 50
    assert len(read_lines(output_dir / "generated_predictions.txt")) == 100
