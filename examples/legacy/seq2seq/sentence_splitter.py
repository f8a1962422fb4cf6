#!/usr/bin/env python
"""Split every line of a text file into sentences (nltk punkt), e.g. to make Pegasus-style `<n>` targets.

    python examples/legacy/seq2seq/sentence_splitter.py data/train.target data/train.target.n
    python examples/legacy/seq2seq/sentence_splitter.py data/test.target --marker newline > sentences.txt

Default (`--marker "<n>"`, or any other marker): one output line per input line, its sentences joined by
the marker, so the file stays aligned with its `.source`. `--marker newline`: one sentence per line, with an
empty line after each input line (so documents can be told apart; the output is no longer line-aligned).
Existing `<n>` markers and empty input lines are kept as sentence breaks / empty lines. Without OUTPUT the
result goes to stdout. Needs nltk's `punkt_tab` data; nothing is downloaded.

`add_newline_to_end_of_each_sentence` (one sentence per line, what rougeLsum expects) is importable from
here, as upstream; it is `utils.add_newline_to_end_of_each_sentence`, which, unlike upstream, really
treats `<n>` as a sentence break instead of leaving it in the text.
"""

import argparse
import os
import sys

import nltk

from seq2seq_checks import atomic_write, check_output_file, check_text_file, one_line_errors
from utils import UsageError, add_newline_to_end_of_each_sentence, run_cli

__all__ = ["add_newline_to_end_of_each_sentence", "split_lines"]


def split_lines(lines: list[str], marker: str) -> list[str]:
    """Each line's sentences joined by `marker` ("newline": one sentence per line plus an empty line after
    each input line). Returns the output lines."""
    out: list[str] = []
    for line in lines:
        sentences = add_newline_to_end_of_each_sentence(line).split("\n") if line.strip() else []
        if marker == "newline":
            out.extend([*sentences, ""])
        else:
            out.append(marker.join(sentences))
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("input", help="text file, one document per line")
    parser.add_argument("output", nargs="?", default=None, help="where the result goes (default: stdout)")
    parser.add_argument(
        "--marker",
        default="<n>",
        help='joins the sentences of a line (default "<n>", the Pegasus convention); "newline" writes one '
        "sentence per line and an empty line after each input line",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT (else refused)")
    args = parser.parse_args(argv)
    if not args.marker:
        raise UsageError('--marker is empty; pass "<n>", "newline" or another separator')
    if os.path.exists(args.input):
        check_text_file("INPUT", args.input)
    if args.output is not None:
        check_output_file("OUTPUT", args.output, {"INPUT": args.input}, overwrite=args.overwrite)
    try:
        with open(args.input, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        raise UsageError(
            f"cannot read {args.input} ({err.strerror}); pass a text file, one document per line"
        ) from None
    try:
        nltk.data.find("tokenizers/punkt_tab")
    except LookupError:
        raise UsageError("nltk's punkt_tab data is missing; run: python -m nltk.downloader punkt_tab") from None
    text = "".join(line + "\n" for line in split_lines(lines, args.marker))
    if args.output is None:
        sys.stdout.write(text)
    else:
        with atomic_write(args.output) as handle:
            handle.write(text)


if __name__ == "__main__":
    run_cli(main)
