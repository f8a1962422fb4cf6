#!/usr/bin/env python
"""Pack consecutive short train examples into longer ones, so fewer padded tokens are wasted.

    python examples/legacy/seq2seq/pack_dataset.py --tok_name t5-small --max_seq_len 128 \
        --data_dir data/wmt_en_ro --save_path data/wmt_en_ro_packed

Greedy, in file order: an example is joined (with a space, on both sides) to the current pack while both
the packed source and the packed target stay within --max_seq_len tokens (special tokens included);
otherwise the pack is written and a new one starts. Examples are never split: one already longer than
the budget stays on its own. Only `train` is packed; `val` and `test` files are copied unchanged. As
upstream, packed files have no final newline.
"""

import argparse
import shutil
from pathlib import Path

from seq2seq_checks import atomic_write, check_text_file, one_line_errors, same_file
from utils import UsageError, load_tokenizer, run_cli

SPLITS = ("train", "val", "test")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("--tok_name", required=True, help="tokenizer folder or Hub id used to count tokens")
    parser.add_argument("--max_seq_len", type=int, default=128, help="token budget of a packed source and target")
    parser.add_argument("--data_dir", required=True, help="folder with train.source/train.target (+ val, test)")
    parser.add_argument("--save_path", required=True, help="output folder (must differ from --data_dir)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the .source/.target files of an earlier run in --save_path (without it they are refused)",
    )
    return parser.parse_args(argv)


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\r\n") for line in handle]


def pack_examples(tokenizer, src_lines: list[str], tgt_lines: list[str], max_tokens: int) -> tuple[list, list]:
    """Greedily join consecutive (source, target) pairs while both sides fit `max_tokens`; returns the
    packed sources and targets."""

    def n_tokens(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    packed_src, packed_tgt = [], []
    src, tgt = src_lines[0], tgt_lines[0]
    for next_src, next_tgt in zip(src_lines[1:], tgt_lines[1:], strict=True):
        cand_src, cand_tgt = f"{src} {next_src}", f"{tgt} {next_tgt}"
        if n_tokens(cand_src) <= max_tokens and n_tokens(cand_tgt) <= max_tokens:
            src, tgt = cand_src, cand_tgt
        else:
            packed_src.append(src)
            packed_tgt.append(tgt)
            src, tgt = next_src, next_tgt
    packed_src.append(src)
    packed_tgt.append(tgt)
    return packed_src, packed_tgt


def check_paths(args: argparse.Namespace) -> list[str]:
    """Raise UsageError for a --data_dir without UTF-8 train files, or a --save_path that is --data_dir, a file,
    or holds files this run would replace (without --overwrite); return the names of the files to write."""
    data_dir, save_path = Path(args.data_dir), Path(args.save_path)
    if not data_dir.is_dir():
        what = "is not a folder" if data_dir.exists() else "does not exist"
        raise UsageError(f"--data_dir {data_dir} {what}; pass a folder with train.source and train.target")
    if not (data_dir / "train.source").is_file() or not (data_dir / "train.target").is_file():
        raise UsageError(f"{data_dir} has no train.source/train.target; pass a data folder")
    if save_path.exists() and same_file(str(save_path), str(data_dir)):
        raise UsageError("--save_path is --data_dir; pass another folder")
    if save_path.is_file():
        raise UsageError(f"--save_path {save_path} is a file; pass a folder for the packed data")
    names = [f"{split}.{side}" for split in SPLITS for side in ("source", "target")]
    names = [name for name in names if name.startswith("train.") or (data_dir / name).is_file()]
    for name in names:
        check_text_file("--data_dir", str(data_dir / name))
    existing = [name for name in names if (save_path / name).exists()]
    if existing and not args.overwrite:
        raise UsageError(
            f"--save_path {save_path} already holds {', '.join(existing)}; choose a new folder, or pass --overwrite "
            "to replace them"
        )
    return names


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.max_seq_len < 1:
        raise UsageError(f"--max_seq_len {args.max_seq_len} must be >= 1")
    names = check_paths(args)
    data_dir, save_path = Path(args.data_dir), Path(args.save_path)
    src_lines, tgt_lines = read_lines(data_dir / "train.source"), read_lines(data_dir / "train.target")
    if len(src_lines) != len(tgt_lines) or not src_lines:
        raise UsageError(f"train.source has {len(src_lines)} lines and train.target {len(tgt_lines)}; need equal, > 0")

    tokenizer = load_tokenizer("--tok_name", args.tok_name)
    packed_src, packed_tgt = pack_examples(tokenizer, src_lines, tgt_lines, args.max_seq_len)
    save_path.mkdir(parents=True, exist_ok=True)
    for name, lines in (("train.source", packed_src), ("train.target", packed_tgt)):
        with atomic_write(str(save_path / name)) as handle:
            handle.write("\n".join(lines))
    for name in names:
        if not name.startswith("train."):
            with atomic_write(str(save_path / name), "wb") as handle, open(data_dir / name, "rb") as source:
                shutil.copyfileobj(source, handle)
    print(f"packed train split from {len(src_lines)} examples -> {len(packed_src)}.")


if __name__ == "__main__":
    run_cli(main)
