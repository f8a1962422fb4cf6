#!/usr/bin/env python
"""Official ROUGE in pure Python against the ROUGE-1.5.5 Perl script, side by side, on See et al. (2017).

For each of the three published CNN/DM systems (all 11,490 test documents, ../shared/data/cnndm_see2017_test/):
score the outputs with `official_rouge.py` and with the Perl script (`-c 95 -r 1000 -n 2 -a -m`, the pyrouge
command for R-1/R-2/R-L; WordNet database built correctly), one after the other on the same machine; compare every
per-document R/P/F and every average and interval; print the paper's figures next to both, and both run times.
`rouge_score` (what Hugging Face scripts report) is timed and shown too.

    python bench/official_rouge.py [--documents N] [--output bench/results/official_rouge.json]

Needs Perl with XML::Parser (Debian: libxml-parser-perl). Takes ~6 minutes on 2 cores (the Perl script is ~90%).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples" / "pytorch" / "summarization"))
sys.path.insert(0, str(REPO / "utils"))

from rouge_score import rouge_scorer  # noqa: E402

import official_rouge  # noqa: E402
import rouge155_perl  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cnndm_see2017_test"
# Table 1 of See et al. (2017), ROUGE F1 (R-1, R-2, R-L).
PUBLISHED = {
    "baseline": (31.33, 11.81, 28.83),
    "pointer_gen": (36.44, 15.66, 33.42),
    "pointer_gen_cov": (39.53, 17.28, 36.38),
}
METRICS = ("ROUGE-1", "ROUGE-2", "ROUGE-L")


def read_summaries(path: Path, limit: int | None) -> list[list[str]]:
    """One summary per record, as a list of sentences (the file's lines, stripped, blanks dropped)."""
    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle][:limit]
    return [[line.strip() for line in record["summary"].split("\n") if line.strip()] for record in records]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=None, help="only the first N documents (default: all)")
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "official_rouge.json"))
    args = parser.parse_args()
    problem = rouge155_perl.check_perl()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not DATA.is_dir():
        print(f"error: {DATA} is missing; clone the repo with ../shared beside it", file=sys.stderr)
        return 2
    references = read_summaries(DATA / "references.full.jsonl", args.documents)
    model_summaries = [[reference] for reference in references]
    options = official_rouge.OfficialRougeOptions(max_ngram=2)
    report = {"documents": len(references), "perl_flags": rouge155_perl.FIXTURE_FLAGS["n2"], "systems": {}}
    with tempfile.TemporaryDirectory() as folder:
        data_folder = rouge155_perl.build_data_folder(Path(folder) / "data")
        for system, published in PUBLISHED.items():
            predictions = read_summaries(DATA / f"pred_{system}.full.jsonl", args.documents)
            start = time.perf_counter()
            ours = official_rouge.evaluate(predictions, model_summaries, options)
            python_seconds = time.perf_counter() - start
            start = time.perf_counter()
            perl = rouge155_perl.run_perl_rouge(predictions, model_summaries, report["perl_flags"], data_folder)
            perl_seconds = time.perf_counter() - start

            start = time.perf_counter()
            scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
            totals = [0.0, 0.0, 0.0]
            for prediction, reference in zip(predictions, references, strict=True):
                scores = scorer.score("\n".join(reference), "\n".join(prediction))
                for index, key in enumerate(("rouge1", "rouge2", "rougeLsum")):
                    totals[index] += scores[key].fmeasure
            rouge_score_seconds = time.perf_counter() - start
            rouge_score_f = [round(100 * total / len(predictions), 3) for total in totals]

            per_document_differences = sum(
                1
                for mine, theirs in zip(ours.per_document, perl["per_document"], strict=True)
                for metric in METRICS
                if [f"{value:.5f}" for value in mine[metric]] != theirs[metric]
            )
            averages_equal = all(
                {key: f"{value:.5f}" for key, value in ours.averages[metric].items()} == perl["averages"][metric]
                for metric in METRICS
            )
            python_f = [round(100 * ours.averages[metric]["F"], 3) for metric in METRICS]
            perl_f = [round(100 * float(perl["averages"][metric]["F"]), 3) for metric in METRICS]
            report["systems"][system] = {
                "published": list(published),
                "official_python": python_f,
                "official_perl": perl_f,
                "python_matches_published": [round(value, 2) for value in python_f] == list(published),
                "per_document_scores_differing_from_perl": per_document_differences,
                "averages_and_intervals_equal_to_perl": averages_equal,
                "intervals_python": {m: [ours.averages[m]["F_low"], ours.averages[m]["F_high"]] for m in METRICS},
                "rouge_score_r1_r2_rlsum": rouge_score_f,
                "seconds": {
                    "official_python": round(python_seconds, 2),
                    "perl": round(perl_seconds, 2),
                    "rouge_score": round(rouge_score_seconds, 2),
                },
                "speedup_over_perl": round(perl_seconds / python_seconds, 1),
            }
            row = report["systems"][system]
            print(
                f"{system:16s} paper {published}  python {tuple(python_f)}  perl {tuple(perl_f)}  "
                f"rouge_score {tuple(rouge_score_f)}  per-doc diffs {per_document_differences}  "
                f"averages equal {averages_equal}  python {python_seconds:.1f} s, perl {perl_seconds:.1f} s "
                f"({row['speedup_over_perl']}x), rouge_score {rouge_score_seconds:.1f} s",
                flush=True,
            )
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    exact = all(
        row["python_matches_published"]
        and row["averages_and_intervals_equal_to_perl"]
        and not row["per_document_scores_differing_from_perl"]
        for row in report["systems"].values()
    )
    return 0 if exact or args.documents else 1


if __name__ == "__main__":
    sys.exit(main())
