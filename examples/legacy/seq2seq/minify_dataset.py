#!/usr/bin/env python
"""Copy the first N lines of every `.source` / `.target` file of a data folder into a new folder.

    python examples/legacy/seq2seq/minify_dataset.py data/wmt_en_ro 100 data/wmt_en_ro_100

Handy for smoke tests of a recipe. As upstream, the files are written without a final newline (the
toolkit counts a last line without one). Other files in SRC_DIR are not copied.
"""

import argparse
import sys
from pathlib import Path


# Its own UsageError rather than utils.run_cli: importing utils (torch) would make this plain file tool slow.
class UsageError(ValueError):
    """A user mistake: printed as one `error: ...` line, exit code 2."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src_dir", help="data folder with {train,val,test}.{source,target}")
    parser.add_argument("n", type=int, help="number of lines to keep from each file")
    parser.add_argument("dest_dir", help="output folder (created; existing files of the same name are replaced)")
    return parser.parse_args(argv)


def minify(src_dir: str, dest_dir: str, n: int) -> list[Path]:
    """Write the first `n` lines of every `*.source` / `*.target` in `src_dir` to `dest_dir`; returns the
    written paths.

    Raises:
        UsageError: `src_dir` has no such files, `n` < 1, or `dest_dir` is `src_dir`.
    """
    src, dest = Path(src_dir), Path(dest_dir)
    if n < 1:
        raise UsageError(f"N={n} must be >= 1")
    files = sorted(p for p in src.glob("*") if p.suffix in (".source", ".target") and p.is_file())
    if not files:
        raise UsageError(f"{src_dir} has no .source/.target files; pass a data folder")
    if dest.resolve() == src.resolve():
        raise UsageError("DEST_DIR is SRC_DIR; pass another folder")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        lines = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if len(lines) == n:
                    break
                lines.append(line.rstrip("\r\n"))
        (dest / path.name).write_text("\n".join(lines), encoding="utf-8")
        written.append(dest / path.name)
    return written


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    for path in minify(args.src_dir, args.dest_dir, args.n):
        print(path)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
