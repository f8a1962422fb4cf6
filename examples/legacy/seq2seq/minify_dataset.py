#!/usr/bin/env python
"""Copy the first N lines of every `.source` / `.target` file of a data folder into a new folder.

    python examples/legacy/seq2seq/minify_dataset.py data/wmt_en_ro 100 data/wmt_en_ro_100

Handy for smoke tests of a recipe. As upstream, the files are written without a final newline (the
toolkit counts a last line without one). Other files in SRC_DIR are not copied.
"""

import argparse
import sys
from pathlib import Path

# seq2seq_checks rather than utils: importing utils (torch) would make this plain file tool slow.
from seq2seq_checks import UsageError, atomic_write, check_text_file, one_line_errors, run_cli, same_file


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("src_dir", help="data folder with {train,val,test}.{source,target}")
    parser.add_argument("n", type=int, help="number of lines to keep from each file")
    parser.add_argument("dest_dir", help="output folder (created; files of the same name there are refused)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace files of the same name in DEST_DIR (without it: refused)"
    )
    return parser.parse_args(argv)


def minify(src_dir: str, dest_dir: str, n: int, overwrite: bool = False) -> list[Path]:
    """Write the first `n` lines of every `*.source` / `*.target` in `src_dir` to `dest_dir`; returns the
    written paths.

    Raises:
        UsageError: `src_dir` has no such files (or one is not UTF-8 text), `n` < 1, `dest_dir` is `src_dir` or a
            file, or (without `overwrite`) already holds a file of the same name.
    """
    src, dest = Path(src_dir), Path(dest_dir)
    if n < 1:
        raise UsageError(f"N={n} must be >= 1")
    files = sorted(p for p in src.glob("*") if p.suffix in (".source", ".target") and p.is_file())
    if not files:
        raise UsageError(f"{src_dir} has no .source/.target files; pass a data folder")
    if dest.exists() and same_file(str(dest), str(src)):
        raise UsageError("DEST_DIR is SRC_DIR; pass another folder")
    if dest.is_file():
        raise UsageError(f"DEST_DIR {dest} is a file; pass a folder")
    for path in files:
        check_text_file("SRC_DIR", str(path))
    existing = [path.name for path in files if (dest / path.name).exists()]
    if existing and not overwrite:
        raise UsageError(
            f"DEST_DIR {dest} already holds {', '.join(existing[:4])}; choose a new folder, or pass --overwrite to "
            "replace them"
        )
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        lines = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if len(lines) == n:
                    break
                lines.append(line.rstrip("\r\n"))
        with atomic_write(str(dest / path.name)) as handle:
            handle.write("\n".join(lines))
        written.append(dest / path.name)
    return written


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    for path in minify(args.src_dir, args.dest_dir, args.n, args.overwrite):
        print(path)


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
