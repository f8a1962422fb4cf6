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

from transformers import AutoTokenizer

from utils import UsageError, run_cli


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tok_name", required=True, help="tokenizer folder or Hub id used to count tokens")
    parser.add_argument("--max_seq_len", type=int, default=128, help="token budget of a packed source and target")
    parser.add_argument("--data_dir", required=True, help="folder with train.source/train.target (+ val, test)")
    parser.add_argument("--save_path", required=True, help="output folder (must differ from --data_dir)")
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


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    data_dir, save_path = Path(args.data_dir), Path(args.save_path)
    if not (data_dir / "train.source").is_file() or not (data_dir / "train.target").is_file():
        raise UsageError(f"{data_dir} has no train.source/train.target; pass a data folder")
    if save_path.resolve() == data_dir.resolve():
        raise UsageError("--save_path is --data_dir; pass another folder")
    if args.max_seq_len < 1:
        raise UsageError(f"--max_seq_len {args.max_seq_len} must be >= 1")
    src_lines, tgt_lines = read_lines(data_dir / "train.source"), read_lines(data_dir / "train.target")
    if len(src_lines) != len(tgt_lines) or not src_lines:
        raise UsageError(f"train.source has {len(src_lines)} lines and train.target {len(tgt_lines)}; need equal, > 0")

    tokenizer = AutoTokenizer.from_pretrained(args.tok_name)
    packed_src, packed_tgt = pack_examples(tokenizer, src_lines, tgt_lines, args.max_seq_len)
    save_path.mkdir(parents=True, exist_ok=True)
    (save_path / "train.source").write_text("\n".join(packed_src), encoding="utf-8")
    (save_path / "train.target").write_text("\n".join(packed_tgt), encoding="utf-8")
    for split in ("val", "test"):
        for side in ("source", "target"):
            if (data_dir / f"{split}.{side}").is_file():
                shutil.copyfile(data_dir / f"{split}.{side}", save_path / f"{split}.{side}")
    print(f"packed train split from {len(src_lines)} examples -> {len(packed_src)}.")


if __name__ == "__main__":
    run_cli(main)
