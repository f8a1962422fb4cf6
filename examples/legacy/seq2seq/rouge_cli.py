#!/usr/bin/env python
"""ROUGE of a predictions file against one or more reference files (one text per line), printed as JSON.

    python examples/legacy/seq2seq/rouge_cli.py out/test_generations.txt data/test.target \
        --save_path out/rouge.json
    # ROUGE-1.5.5 as papers report it (pyrouge), with 95% intervals, against two reference sets
    python examples/legacy/seq2seq/rouge_cli.py out/test_generations.txt refs_a.txt refs_b.txt \
        --rouge_backend official

Same numbers as `run_eval.py`: `utils.calculate_rouge` (stemmer, one sentence per line for rougeLsum, x100;
rouge_score: bootstrap mid with seed 0, official: ROUGE-1.5.5's bootstrap mean and `<key>_low` / `<key>_high`).
Each TGT_PATH is one reference set, aligned by line with the predictions; with several, rouge_score keeps the best
reference of each example and official averages them (the Perl script's `-f A`). An empty line in one of several
reference files means that example has no reference in that set. Lines are stripped; as upstream, the references
are cut to the number of predictions (so a partial generation file can be scored). The JSON holds
`rouge_signature`, which says how the numbers were computed.
"""

import argparse
import json
import os

from seq2seq_checks import check_output_file, check_text_file, one_line_errors
from utils import (
    ROUGE_BACKENDS,
    ROUGE_KEYS,
    UsageError,
    check_rouge_backend,
    run_cli,
    save_json,
    score_rouge,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("pred_path", help="predictions, one per line (e.g. run_eval.py's SAVE_PATH)")
    parser.add_argument(
        "tgt_path",
        nargs="+",
        help="references, one per line, aligned with the predictions; several files = several references per example",
    )
    parser.add_argument("--save_path", default=None, help="also write the scores JSON here (default: print only)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --save_path (else refused)")
    parser.add_argument(
        "--rouge_keys", nargs="+", default=list(ROUGE_KEYS), help="ROUGE variants to compute (default: all four)"
    )
    parser.add_argument(
        "--rouge_backend",
        default="rouge_score",
        help=f"how ROUGE is computed: {' or '.join(ROUGE_BACKENDS)}. rouge_score (default) is Google's package, "
        "comparable with the Hugging Face scripts; official is ROUGE-1.5.5 (pure Python), comparable with papers' "
        "pyrouge numbers, with 95%% intervals",
    )
    parser.add_argument("--no_stemmer", action="store_true", help="score without the Porter stemmer")
    parser.add_argument(
        "--no_newline_sep", action="store_true", help="do not split sentences onto lines (changes rougeLsum only)"
    )
    return parser.parse_args(argv)


def read_stripped_lines(path: str, flag: str = "") -> list[str]:
    if not os.path.exists(path):
        raise UsageError(
            f"{flag + ' ' if flag else ''}{path} does not exist; pass a text file with one summary per line"
        )
    check_text_file(flag or "file", path)
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle]


def read_references(pred_path: str, tgt_paths: list[str], n_predictions: int) -> list[str | list[str]]:
    """Each prediction's reference (one file) or references (several, empty lines left out), cut to the predictions.

    Raises:
        UsageError: a reference file is missing, shorter than the predictions, or of another length than the first.
    """
    sets = [read_stripped_lines(path, "TGT_PATH") for path in tgt_paths]
    for path, lines in zip(tgt_paths, sets, strict=True):
        if len(lines) != len(sets[0]):
            raise UsageError(
                f"{path} has {len(lines)} lines but {tgt_paths[0]} has {len(sets[0])}; every TGT_PATH holds one "
                "reference per example, aligned by line: fix or drop the file"
            )
    if len(sets[0]) < n_predictions:
        raise UsageError(
            f"{tgt_paths[0]} has {len(sets[0])} lines but {pred_path} has {n_predictions}; they must align"
        )
    if len(sets) == 1:
        return sets[0][:n_predictions]
    references = []
    for index in range(n_predictions):
        found = [lines[index] for lines in sets if lines[index]]
        references.append(found or [""])  # no reference at all: scored against an empty one (0), as with one file
    return references


def calculate_rouge_path(
    pred_path: str, tgt_path: str | list[str], save_path: str | None = None, backend: str = "rouge_score", **kwargs
) -> dict:
    """`score_rouge` on line files (references cut to the prediction count): the corpus scores and
    `rouge_signature`; saved to `save_path` when given. `kwargs`: rouge_keys, use_stemmer, newline_sep.

    Raises:
        UsageError: a file is missing, has fewer references than predictions, or reference files differ in length.
    """
    tgt_paths = [tgt_path] if isinstance(tgt_path, str) else list(tgt_path)
    preds = read_stripped_lines(pred_path, "PRED_PATH")
    references = read_references(pred_path, tgt_paths, len(preds))
    rouge = score_rouge(preds, references, backend, **kwargs)
    metrics = {**rouge.corpus, "rouge_signature": rouge.signature}
    if save_path:
        save_json(metrics, save_path)
    return metrics


def main(argv: list[str]) -> dict:
    args = parse_args(argv)
    unknown = sorted(set(args.rouge_keys) - set(ROUGE_KEYS))
    if unknown:
        raise UsageError(f"--rouge_keys {' '.join(unknown)} unknown; choose from {' '.join(ROUGE_KEYS)}")
    check_rouge_backend(args.rouge_backend)
    if args.save_path is not None:
        several = len(args.tgt_path) > 1
        inputs = {"PRED_PATH": args.pred_path}
        inputs.update({f"TGT_PATH #{i + 1}" if several else "TGT_PATH": path for i, path in enumerate(args.tgt_path)})
        check_output_file("--save_path", args.save_path, inputs, overwrite=args.overwrite)
    metrics = calculate_rouge_path(
        args.pred_path,
        args.tgt_path,
        args.save_path,
        backend=args.rouge_backend,
        rouge_keys=args.rouge_keys,
        use_stemmer=not args.no_stemmer,
        newline_sep=not args.no_newline_sep,
    )
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    run_cli(main)
