#!/usr/bin/env python
"""ROUGE of a predictions file against a references file (one text per line), printed as JSON.

    python examples/legacy/seq2seq/rouge_cli.py out/test_generations.txt data/test.target \
        --save_path out/rouge.json

Same numbers as `run_eval.py`: `utils.calculate_rouge` (stemmer, one sentence per line for rougeLsum,
bootstrap mid with seed 0, x100). Lines are stripped; as upstream, the references are cut to the number of
predictions (so a partial generation file can be scored). Fewer references than predictions is an error.
"""

import argparse
import json
import os

from seq2seq_checks import check_output_file, check_text_file, one_line_errors
from utils import ROUGE_KEYS, UsageError, calculate_rouge, run_cli, save_json


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("pred_path", help="predictions, one per line (e.g. run_eval.py's SAVE_PATH)")
    parser.add_argument("tgt_path", help="references, one per line, aligned with the predictions")
    parser.add_argument("--save_path", default=None, help="also write the scores JSON here (default: print only)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --save_path (else refused)")
    parser.add_argument(
        "--rouge_keys", nargs="+", default=list(ROUGE_KEYS), help="ROUGE variants to compute (default: all four)"
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


def calculate_rouge_path(pred_path: str, tgt_path: str, save_path: str | None = None, **kwargs) -> dict:
    """`calculate_rouge` on two line files (references cut to the prediction count); saves to `save_path`.

    Raises:
        UsageError: a file is missing or has fewer references than predictions.
    """
    preds, targets = read_stripped_lines(pred_path, "PRED_PATH"), read_stripped_lines(tgt_path, "TGT_PATH")
    if len(targets) < len(preds):
        raise UsageError(f"{tgt_path} has {len(targets)} lines but {pred_path} has {len(preds)}; they must align")
    metrics = calculate_rouge(preds, targets[: len(preds)], **kwargs)
    if save_path:
        save_json(metrics, save_path)
    return metrics


def main(argv: list[str]) -> dict:
    args = parse_args(argv)
    unknown = sorted(set(args.rouge_keys) - set(ROUGE_KEYS))
    if unknown:
        raise UsageError(f"--rouge_keys {' '.join(unknown)} unknown; choose from {' '.join(ROUGE_KEYS)}")
    if args.save_path is not None:
        inputs = {"PRED_PATH": args.pred_path, "TGT_PATH": args.tgt_path}
        check_output_file("--save_path", args.save_path, inputs, overwrite=args.overwrite)
    metrics = calculate_rouge_path(
        args.pred_path,
        args.tgt_path,
        args.save_path,
        rouge_keys=args.rouge_keys,
        use_stemmer=not args.no_stemmer,
        newline_sep=not args.no_newline_sep,
    )
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    run_cli(main)
