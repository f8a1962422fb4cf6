"""Check that copied code is still identical to its original; `--fix` rewrites drifted copies.

Task folders share code by whole-file copies of their sibling modules, listed in FULL_COPIES (style guide §4): a copy
must equal its original byte for byte. The few blocks that cannot be whole files (argument dataclasses with renames)
carry a `# Copied from` marker, directly above a top-level `def`, `class` (above its decorators) or `NAME = ...`
statement:

    # Copied from examples.pytorch.summarization.run_summarization.check_output_dir
    # Copied from examples.pytorch.summarization.run_summarization.ModelArguments with Summarization->Translation

The dotted path is folders, module file (no `.py`) and one top-level name; hyphenated folders are written as they
are (`examples.pytorch.s2s-ft.run_seq2seq.foo`). `with Old->New, old->new` lists literal replacements applied to
the original in order. Copy and renamed original are compared after `ruff format` (repo pyproject.toml), ignoring
blank lines. The original is the source of truth: edit it, then run `make fix-copies`.

Usage:
    python utils/check_copies.py          # `make check`: exit 1 on a drifted copy, a broken marker or no markers
    python utils/check_copies.py --fix    # `make fix-copies`: rewrite the copies (never the originals)
"""

import argparse
import ast
import io
import re
import subprocess
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

# Whole-file copies: copy path -> original path, both relative to the repo root. `--fix` overwrites the copy.
FULL_COPIES: dict[str, str] = {
    # The PyTorch translation folder: the framework-free modules and the PyTorch machinery.
    "examples/pytorch/translation/seq2seq_checks.py": "examples/pytorch/summarization/seq2seq_checks.py",
    "examples/pytorch/translation/seq2seq_data.py": "examples/pytorch/summarization/seq2seq_data.py",
    "examples/pytorch/translation/seq2seq_setup.py": "examples/pytorch/summarization/seq2seq_setup.py",
    "examples/pytorch/translation/trainer_speedups.py": "examples/pytorch/summarization/trainer_speedups.py",
    "examples/pytorch/translation/accelerate_training.py": "examples/pytorch/summarization/accelerate_training.py",
    "examples/pytorch/translation/ctranslate2_generation.py": (
        "examples/pytorch/summarization/ctranslate2_generation.py"
    ),
    "examples/pytorch/translation/average_checkpoints.py": "examples/pytorch/summarization/average_checkpoints.py",
    "examples/pytorch/translation/training_curves.py": "examples/pytorch/summarization/training_curves.py",
    "examples/pytorch/translation/model_card.py": "examples/pytorch/summarization/model_card.py",
    "examples/pytorch/translation/best_model.py": "examples/pytorch/summarization/best_model.py",
    # The Keras folders: only modules that import neither torch nor TensorFlow.
    "examples/tensorflow/summarization/seq2seq_checks.py": "examples/pytorch/summarization/seq2seq_checks.py",
    "examples/tensorflow/summarization/seq2seq_data.py": "examples/pytorch/summarization/seq2seq_data.py",
    "examples/tensorflow/summarization/summarization_data.py": "examples/pytorch/summarization/summarization_data.py",
    "examples/tensorflow/summarization/rouge_scoring.py": "examples/pytorch/summarization/rouge_scoring.py",
    "examples/tensorflow/summarization/official_rouge.py": "examples/pytorch/summarization/official_rouge.py",
    "examples/tensorflow/translation/seq2seq_checks.py": "examples/pytorch/summarization/seq2seq_checks.py",
    "examples/tensorflow/translation/seq2seq_data.py": "examples/pytorch/summarization/seq2seq_data.py",
    "examples/tensorflow/translation/translation_data.py": "examples/pytorch/translation/translation_data.py",
    "examples/tensorflow/translation/bleu_scoring.py": "examples/pytorch/translation/bleu_scoring.py",
    # The libraries (legacy toolkit, s2s-ft): the modules they use unchanged, next to their scripts.
    "examples/legacy/seq2seq/seq2seq_checks.py": "examples/pytorch/summarization/seq2seq_checks.py",
    "examples/legacy/seq2seq/official_rouge.py": "examples/pytorch/summarization/official_rouge.py",
    "examples/legacy/seq2seq/ctranslate2_generation.py": "examples/pytorch/summarization/ctranslate2_generation.py",
    "examples/legacy/seq2seq/training_curves.py": "examples/pytorch/summarization/training_curves.py",
    "examples/legacy/seq2seq/model_card.py": "examples/pytorch/summarization/model_card.py",
    "examples/pytorch/s2s-ft/seq2seq_checks.py": "examples/pytorch/summarization/seq2seq_checks.py",
    "examples/pytorch/s2s-ft/rouge_scoring.py": "examples/pytorch/summarization/rouge_scoring.py",
    "examples/pytorch/s2s-ft/official_rouge.py": "examples/pytorch/summarization/official_rouge.py",
    # The Keras machinery (imports TensorFlow; only the Keras folders have it).
    "examples/tensorflow/translation/keras_training.py": "examples/tensorflow/summarization/keras_training.py",
}
SCANNED_DIRS = ("examples", "utils", "tests")
MARKER = "# Copied from"
MARKER_RE = re.compile(r"# Copied from ([\w-]+(?:\.[\w-]+)+)(?:\s+with\s+(.+?))?\s*")
SEPARATOR = "# ---- check_copies: next block ----\n"
MAX_FIX_PASSES = 5  # a copy of a copy needs one --fix pass per link of the chain


class CopyError(Exception):
    """A marker or file the checker cannot check; the message starts with `path:line:`."""


@dataclass
class Copy:
    """Lines start..end of `path` copy `target`, whose renamed text is `original` (`where` is `path:line`).

    A drifted copy gets `diff_line` (first differing line of the file) and `replacement` (its lines after --fix).
    """

    where: str
    target: str
    path: Path
    start: int
    end: int
    code: str = ""
    original: str = ""
    diff_line: int = 0
    replacement: list[str] = field(default_factory=list)


def parse_blocks(rel: str, source: str) -> dict[str, tuple[int, int]]:
    """Map each top-level def, class and single-name assignment to its first and last line (decorators included)."""
    try:
        tree = ast.parse(source, filename=rel)
    except SyntaxError as err:
        raise CopyError(f"{rel}:{err.lineno}: cannot parse: {err.msg}") from None
    blocks = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            blocks[node.name] = (min([node.lineno] + [d.lineno for d in node.decorator_list]), node.end_lineno)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Name):
                blocks[targets[0].id] = (node.lineno, node.end_lineno)
    return blocks


def find_markers(rel: str, source: str) -> list[tuple[int, int, str]]:
    """Return (line, column, text) of every `# Copied from` comment; the same text inside a string is ignored."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError) as err:
        raise CopyError(f"{rel}:1: cannot tokenize: {err}") from None
    return [
        (tok.start[0], tok.start[1], tok.string.strip())
        for tok in tokens
        if tok.type == tokenize.COMMENT and tok.string.startswith(MARKER)
    ]


def parse_marker(where: str, comment: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a marker into its dotted target and its (old, new) renames; raise CopyError if malformed."""
    match = MARKER_RE.fullmatch(comment)
    if match is None:
        raise CopyError(f"{where}: malformed marker {comment!r}; expected `# Copied from a.b.name [with A->B, ...]`")
    renames = []
    for pair in match[2].split(",") if match[2] else []:
        old, arrow, new = (part.strip() for part in pair.partition("->"))
        if not (old and arrow and new):
            raise CopyError(f"{where}: malformed rename {pair.strip()!r}; expected `Old->New`")
        renames.append((old, new))
    return match[1], renames


def load(root: Path, rel: str, cache: dict) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Return the lines (with line ends) and the top-level blocks of root/rel, parsed once per scan."""
    if rel not in cache:
        source = (root / rel).read_text(encoding="utf-8")
        cache[rel] = (source.splitlines(keepends=True), parse_blocks(rel, source))
    return cache[rel]


def resolve(root: Path, where: str, target: str, cache: dict) -> str:
    """Return the current source of the block `target` names; raise CopyError if it does not exist."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the longest prefix naming a file is the module, the rest the name
        rel = "/".join(parts[:i]) + ".py"
        if (root / rel).is_file():
            break
    else:
        raise CopyError(f"{where}: module of {target} not found: no {'/'.join(parts[:-1])}.py under the repo root")
    name = ".".join(parts[i:])
    if "." in name:
        raise CopyError(f"{where}: {target}: only top-level names of {rel} can be copied, not {name}")
    lines, blocks = load(root, rel, cache)
    if name not in blocks:
        raise CopyError(f"{where}: {name} not found in {rel} (stale marker: was the original renamed or removed?)")
    start, end = blocks[name]
    return "".join(lines[start - 1 : end])


def run_ruff(root: Path, source: str) -> str | None:
    """Return `source` formatted by `ruff format` with the repo's config, or None if ruff cannot parse it."""
    ruff = Path(sys.executable).with_name("ruff")
    command = [str(ruff)] if ruff.is_file() else [sys.executable, "-m", "ruff"]
    if (root / "pyproject.toml").is_file():
        command += ["--config", str(root / "pyproject.toml")]
    result = subprocess.run(command + ["format", "-"], input=source, capture_output=True, encoding="utf-8", cwd=root)
    return result.stdout if result.returncode == 0 else None


def ruff_format(root: Path, texts: list[str], labels: list[str]) -> list[str]:
    """Format each top-level block in `texts` with a single ruff call (blocks joined by a separator comment)."""
    if not texts:
        return []
    formatted = run_ruff(root, "".join(SEPARATOR + text + "\n" for text in texts))
    chunks = formatted.split(SEPARATOR)[1:] if formatted is not None else []
    if len(chunks) != len(texts):  # find the block ruff rejects, to name it
        for label, text in zip(labels, texts, strict=True):
            if run_ruff(root, text) is None:
                raise CopyError(f"{label}: ruff format cannot parse this block")
        raise CopyError("ruff format failed on the joined copies")
    return [chunk.strip("\n") + "\n" for chunk in chunks]


def first_difference(a: list[str], b: list[str]) -> int | None:
    """Index of the first line where a and b differ, or None if they are equal."""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def collect_copies(root: Path) -> tuple[list[Copy], list[str]]:
    """Find every marker under SCANNED_DIRS and resolve its target; return the copies and the broken markers."""
    copies, errors, cache = [], [], {}
    for path in sorted(p for folder in SCANNED_DIRS for p in (root / folder).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        source = path.read_text(encoding="utf-8")
        if MARKER not in source:  # cheap filter: most files have no marker
            continue
        try:
            markers = find_markers(rel, source)
            lines, blocks = load(root, rel, cache) if markers else ([], {})
        except CopyError as err:
            errors.append(str(err))
            continue
        starts = {start: end for start, end in blocks.values()}
        for line, column, comment in markers:
            where, start = f"{rel}:{line}", line + 1
            try:
                target, renames = parse_marker(where, comment)
                if column or start not in starts:
                    raise CopyError(
                        f"{where}: marker not directly above a top-level def, class (or its decorators) or `NAME = ...`"
                    )
                original = resolve(root, where, target, cache)
            except CopyError as err:
                errors.append(str(err))
                continue
            for old, new in renames:
                original = original.replace(old, new)
            code = "".join(lines[start - 1 : starts[start]])
            copies.append(Copy(where, target, path, start, starts[start], code, original))
    return copies, errors


def compare_copies(root: Path, copies: list[Copy]) -> list[Copy]:
    """Return the copies that differ from their renamed original after ruff format, ignoring blank lines."""
    texts = [text for copy in copies for text in (copy.code, copy.original)]
    labels = [label for copy in copies for label in (copy.where, f"{copy.where}: {copy.target} after renames")]
    formatted = ruff_format(root, texts, labels)
    drifted = []
    for copy, ours, theirs in zip(copies, formatted[::2], formatted[1::2], strict=True):
        index = first_difference(*([line for line in text.splitlines() if line.strip()] for text in (ours, theirs)))
        if index is not None:
            # File line of the index-th non-blank line of the copy: exact when the copy is ruff-formatted.
            numbers = [n for n, line in enumerate(copy.code.splitlines(), copy.start) if line.strip()]
            copy.diff_line = numbers[min(index, len(numbers) - 1)]
            copy.replacement = theirs.splitlines(keepends=True)
            drifted.append(copy)
    return drifted


def compare_full_copies(root: Path, full_copies: dict[str, str]) -> tuple[list[str], list[Copy]]:
    """Compare each whole-file copy with its original; return the broken entries and the drifted copies."""
    errors, drifted = [], []
    for copy_rel, original_rel in sorted(full_copies.items()):
        if not (root / original_rel).is_file():
            errors.append(f"{copy_rel}:1: full copy of {original_rel}: the original does not exist")
            continue
        original = (root / original_rel).read_text(encoding="utf-8").splitlines(keepends=True)
        path = root / copy_rel
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.is_file() else []
        index = first_difference(lines, original)
        if index is not None:
            drifted.append(Copy(f"{copy_rel}:1", original_rel, path, 1, len(lines), diff_line=index + 1))
            drifted[-1].replacement = original
    return errors, drifted


def scan(root: Path, full_copies: dict[str, str]) -> tuple[int, int, list[str], list[Copy]]:
    """Check the whole repo; return (copies checked, files holding them, broken markers, drifted copies)."""
    copies, errors = collect_copies(root)
    full_errors, full_drifted = compare_full_copies(root, full_copies)
    files = {copy.path for copy in copies} | {root / rel for rel in full_copies}
    count = len(copies) + len(full_copies) - len(full_errors)
    return count, len(files), errors + full_errors, compare_copies(root, copies) + full_drifted


def apply_fixes(drifted: list[Copy]) -> None:
    """Replace each drifted copy by its original, bottom-up so that earlier line numbers stay valid."""
    contents: dict[Path, list[str]] = {}
    for copy in sorted(drifted, key=lambda copy: copy.start, reverse=True):
        if copy.path not in contents:
            exists = copy.path.is_file()
            contents[copy.path] = copy.path.read_text(encoding="utf-8").splitlines(keepends=True) if exists else []
        contents[copy.path][copy.start - 1 : copy.end] = copy.replacement
    for path, lines in contents.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the check (or the fix) and return the exit status: 0 when everything is in sync, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fix", action="store_true", help="rewrite drifted copies from their originals")
    parser.add_argument("--repo_root", type=Path, default=Path(__file__).resolve().parents[1], help="repo to scan")
    parser.add_argument("--full_copy", action="append", default=[], metavar="COPY=ORIGINAL", help="add a full copy")
    parser.add_argument(
        "--without_listed_full_copies",
        action="store_true",
        help="check only the --full_copy pairs given, not this repo's FULL_COPIES (for another tree, e.g. a test's)",
    )
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.full_copy):
        parser.error("--full_copy takes COPY=ORIGINAL (paths relative to the repo root)")
    root = args.repo_root.resolve()
    listed = {} if args.without_listed_full_copies else FULL_COPIES
    full_copies = {**listed, **dict(item.split("=", 1) for item in args.full_copy)}
    fixed = []
    try:
        count, files, errors, drifted = scan(root, full_copies)
        for _ in range(MAX_FIX_PASSES if args.fix else 0):
            if not drifted:
                break
            apply_fixes(drifted)
            fixed += [f"{copy.where}: fixed copy of {copy.target}" for copy in drifted]
            count, files, errors, drifted = scan(root, full_copies)
    except CopyError as err:
        print(err, file=sys.stderr)
        return 1
    for line in fixed:
        print(line)
    errors += [
        f"{copy.where}: copy of {copy.target} differs (first diff at line {copy.diff_line}); run make fix-copies"
        for copy in drifted
    ]
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    if count == 0:
        print("no `# Copied from` markers found: nothing checked", file=sys.stderr)
        return 1
    print(f"checked {count} copies in {files} files: all in sync")
    return 0


if __name__ == "__main__":
    sys.exit(main())
