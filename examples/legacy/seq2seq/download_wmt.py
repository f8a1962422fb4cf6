#!/usr/bin/env python
"""Write a `translation` dataset as `{train,val,test}.{source,target}` line files (the legacy data layout).

    python examples/legacy/seq2seq/download_wmt.py --src_lang ro --tgt_lang en --dataset wmt16 --save_dir wmt16-ro-en
    python examples/legacy/seq2seq/download_wmt.py --src_lang en --tgt_lang ro \
        --dataset tests/fixtures/translation/wmt_en_ro --save_dir data/wmt_en_ro

`--dataset` is a Hub id (loaded with config `--config_name`, default `{src_lang}-{tgt_lang}`; WMT sets name
their pairs `xx-en`, so for en->ro from wmt16 pass `--config_name ro-en`) or a local folder / data file
that `datasets.load_dataset` reads (json, jsonl, csv, parquet). Every split with a `translation` column
({lang: text} records) is written; `validation` becomes `val`. Line breaks inside a text are replaced by
spaces (one example per line is what keeps `.source` and `.target` aligned), and their count is logged.
The default save dir is `<dataset>-<src_lang>-<tgt_lang>`.
"""

import argparse
import logging
import os
from pathlib import Path

import datasets
from huggingface_hub.constants import HF_HUB_OFFLINE

from seq2seq_checks import atomic_write, check_different, check_utf8, one_line_errors
from utils import UsageError, run_cli

logger = logging.getLogger(__name__)

LOCAL_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def load_translation_dataset(dataset: str, config_name: str | None) -> "datasets.DatasetDict":
    """`dataset` from a local folder / file or the Hub.

    Raises:
        UsageError: it cannot be loaded (with the fix: unset HF_HUB_OFFLINE for a Hub id while offline).
    """
    try:
        if os.path.isdir(dataset):
            for path in sorted(Path(dataset).iterdir()):
                if path.suffix in (".json", ".jsonl", ".csv"):
                    check_utf8("--dataset", str(path))
            return datasets.load_dataset(dataset)
        if os.path.isfile(dataset):
            builder = LOCAL_BUILDERS.get(Path(dataset).suffix)
            if builder is None:
                raise UsageError(f"{dataset}: unknown file type; use one of {', '.join(LOCAL_BUILDERS)}")
            if builder != "parquet":
                check_utf8("--dataset", dataset)
            return datasets.load_dataset(builder, data_files=dataset)
        return datasets.load_dataset(dataset, config_name)
    except UsageError:
        raise
    except Exception as err:  # datasets raises many types (ConnectionError, ValueError, DatasetNotFoundError, ...)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if HF_HUB_OFFLINE:
            raise UsageError(
                f"cannot load --dataset {dataset} offline ({reason}); it is neither a local folder nor cached: "
                "unset HF_HUB_OFFLINE to download it, or pass a local folder"
            ) from None
        raise UsageError(f"cannot load --dataset {dataset} with config {config_name} ({reason})") from None


def write_split(split, save_dir: Path, name: str, src_lang: str, tgt_lang: str) -> int:
    """Write one split's `{name}.source` / `{name}.target` (each through a temporary file and a rename); returns
    how many texts had line breaks."""
    n_joined = 0
    with (
        atomic_write(str(save_dir / f"{name}.source")) as src,
        atomic_write(str(save_dir / f"{name}.target")) as tgt,
    ):
        for record in split["translation"]:
            for lang, handle in ((src_lang, src), (tgt_lang, tgt)):
                text = record[lang]
                if not isinstance(text, str):
                    raise UsageError(
                        f"a {lang} text of the {name} split is {text!r}, not a string; fix or drop that record"
                    )
                one_line = " ".join(text.splitlines())  # every kind of line break, as str.splitlines sees them
                n_joined += one_line != text
                handle.write(one_line + "\n")
    return n_joined


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src_lang", default="ro", help="language code of the .source files")
    parser.add_argument("--tgt_lang", default="en", help="language code of the .target files")
    parser.add_argument("--dataset", default="wmt16", help="Hub id, or a local folder / json, csv, parquet file")
    parser.add_argument(
        "--config_name", default=None, help="Hub dataset config; default {src_lang}-{tgt_lang} (unused for local data)"
    )
    parser.add_argument("--save_dir", default=None, help="output folder; default <dataset>-<src_lang>-<tgt_lang>")
    one_line_errors(parser)
    args = parser.parse_args(argv)
    check_different(
        "--src_lang", args.src_lang, "--tgt_lang", args.tgt_lang, "the .source and .target would be the same"
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    save_dir = Path(args.save_dir or f"{Path(args.dataset).name}-{args.src_lang}-{args.tgt_lang}")
    if save_dir.is_file():
        raise UsageError(f"--save_dir {save_dir} is a file; pass a new folder")
    if save_dir.is_dir() and any(save_dir.glob("*.source")):
        raise UsageError(f"{save_dir} already holds .source files; pass a new --save_dir or remove them")

    ds = load_translation_dataset(args.dataset, args.config_name or f"{args.src_lang}-{args.tgt_lang}")
    for split_name, split in ds.items():
        if "translation" not in split.column_names:
            raise UsageError(
                f"split {split_name} of {args.dataset} has no 'translation' column (columns: "
                f"{', '.join(split.column_names)}); it needs {{lang: text}} records"
            )
        langs = set(split[0]["translation"]) if len(split) else {args.src_lang, args.tgt_lang}
        missing = [lang for lang in (args.src_lang, args.tgt_lang) if lang not in langs]
        if missing:
            raise UsageError(
                f"split {split_name} of {args.dataset} has no {', '.join(missing)} texts (languages: "
                f"{', '.join(sorted(langs))}); fix --src_lang / --tgt_lang"
            )

    save_dir.mkdir(parents=True, exist_ok=True)
    for split_name, split in ds.items():
        name = "val" if split_name == "validation" else split_name
        n_joined = write_split(split, save_dir, name, args.src_lang, args.tgt_lang)
        logger.info(f"{split_name}: {len(split)} pairs -> {save_dir}/{name}.source, {name}.target")
        if n_joined:
            logger.warning(f"{split_name}: {n_joined} texts had line breaks, replaced by spaces to keep one per line")


if __name__ == "__main__":
    run_cli(main)
