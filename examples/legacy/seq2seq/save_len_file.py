#!/usr/bin/env python
"""Save the token length of every train/val example to `DATA_DIR/train.len` and `DATA_DIR/val.len`.

    python examples/legacy/seq2seq/save_len_file.py t5-small data/wmt_en_ro --max_source_length 128

Each file is a JSON list with one int per line of `{split}.source`: the number of tokens (special tokens
included, after truncation to --max_source_length), or with `--consider_target` the max of that and the
target's length. Upstream wrote a pickle; JSON is safe to load and readable (`json.load`). A split whose
files are missing is skipped with a message; none found is an error.
"""

import argparse
import json
import sys
from pathlib import Path

from seq2seq_checks import check_flag_values, check_text_file, one_line_errors
from utils import UsageError, chunks, load_tokenizer, run_cli, save_json


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("tokenizer_name", help="tokenizer folder or Hub id (the model you will train)")
    parser.add_argument("data_dir", help="folder with train/val .source/.target files")
    parser.add_argument("--max_source_length", type=int, default=1024, help="source truncation length")
    parser.add_argument("--max_target_length", type=int, default=1024, help="target truncation length")
    parser.add_argument(
        "--consider_target", action="store_true", help="store max(source, target) length instead of the source's"
    )
    parser.add_argument("--batch_size", type=int, default=512, help="lines tokenized per call")
    return parser.parse_args(argv)


def token_lengths(tokenizer, path: Path, max_length: int, batch_size: int) -> list[int]:
    """Tokens per line of `path` (special tokens included, truncated to `max_length`)."""
    with open(path, encoding="utf-8") as handle:
        lines = [line.rstrip("\r\n") for line in handle]
    lengths = []
    for batch in chunks(lines, batch_size):
        encoded = tokenizer(list(batch), truncation=True, max_length=max_length)["input_ids"]
        lengths.extend(len(ids) for ids in encoded)
    return lengths


def main(argv: list[str]) -> dict[str, list[int]]:
    args = parse_args(argv)
    check_flag_values(args)
    if args.batch_size < 1:
        raise UsageError(f"--batch_size must be at least 1, got {args.batch_size}; pass e.g. --batch_size 512")
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        raise UsageError(
            f"DATA_DIR {data_dir} is {'a file' if data_dir.exists() else 'no such folder'}; pass a data folder"
        )
    splits = [s for s in ("train", "val") if (data_dir / f"{s}.source").is_file()]
    if not splits:
        raise UsageError(f"{data_dir} has no train.source or val.source; pass a data folder")
    for split in splits:
        for side in ("source", "target") if args.consider_target else ("source",):
            if (data_dir / f"{split}.{side}").is_file():
                check_text_file("DATA_DIR", str(data_dir / f"{split}.{side}"))
    # {split}.len files are rewritten: they are derived from the data, and a stale one would mislead the sampler.
    tokenizer = load_tokenizer("TOKENIZER_NAME", args.tokenizer_name)
    result = {}
    for split in splits:
        lengths = token_lengths(tokenizer, data_dir / f"{split}.source", args.max_source_length, args.batch_size)
        if args.consider_target:
            target = data_dir / f"{split}.target"
            if not target.is_file():
                raise UsageError(f"--consider_target needs {target}; it does not exist")
            tgt = token_lengths(tokenizer, target, args.max_target_length, args.batch_size)
            if len(tgt) != len(lengths):
                raise UsageError(f"{target} has {len(tgt)} lines but {split}.source has {len(lengths)}")
            lengths = [max(s, t) for s, t in zip(lengths, tgt, strict=True)]
        save_json(lengths, data_dir / f"{split}.len", indent=None)
        result[split] = lengths
        print(json.dumps({"split": split, "n": len(lengths), "max": max(lengths, default=0), "path": f"{split}.len"}))
    for split in sorted({"train", "val"} - set(splits)):
        print(f"{split}.source not found; {split}.len not written", file=sys.stderr)
    return result


if __name__ == "__main__":
    run_cli(main)
