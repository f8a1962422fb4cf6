"""Translation data: local files (also line-aligned PREFIX.<lang> text files), the source and target texts of a
split (from `translation` dicts or columns), checks that both languages are there, dropping empty pairs, and the
language codes of multilingual tokenizers (mBART, mBART-50, M2M100, NLLB). Shared by the translation scripts
(PyTorch and Keras); imports neither torch nor TensorFlow.

`data_args` is the script's DataTrainingArguments (or the argparse namespace of the `_no_trainer` twin): it needs
source_lang/target_lang, source_column/target_column, dataset_name, the three data files and forced_bos_token.
"""

import logging
import os
import re

import datasets
from datasets import DatasetDict

from seq2seq_checks import DATA_FILE_FLAGS, UsageError, check_utf8
from seq2seq_data import check_language_code, first_reference, load_data_file, load_hub_dataset

logger = logging.getLogger(__name__)


# Language names for the T5 prefix hint ("translate English to Romanian: "), as T5 was pre-trained with them.
T5_LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "ro": "Romanian"}

# Multilingual tokenizers, by class name over the MRO: transformers 4 has a slow and a fast class of each,
# transformers 5 one. mBART decodes from the target code; the others start from </s> and force the code first.
MBART_TOKENIZERS = ("MBartTokenizer", "MBartTokenizerFast")
LANG_CODE_TOKENIZERS = MBART_TOKENIZERS + ("MBart50Tokenizer", "MBart50TokenizerFast", "M2M100Tokenizer")
NLLB_TOKENIZERS = ("NllbTokenizer", "NllbTokenizerFast")  # their codes are special tokens such as eng_Latn


def is_tokenizer_of(tokenizer, class_names: tuple[str, ...]) -> bool:
    """Whether the tokenizer's class, or one it derives from, has one of these names."""
    return any(cls.__name__ in class_names for cls in type(tokenizer).__mro__)


def text_pair_files(path: str, data_args) -> tuple[str, str | None] | None:
    """For a data file given as PREFIX of line-aligned PREFIX.<source> / PREFIX.<target> files, return their
    paths (the target's None when it does not exist); for anything else return None."""
    if os.path.splitext(path)[1].lower() in (".csv", ".tsv", ".json", ".jsonl") or os.path.exists(path):
        return None
    source_path = f"{path}.{data_args.source_column}"
    target_path = f"{path}.{data_args.target_column}"
    if not os.path.isfile(source_path):
        return None
    return source_path, target_path if os.path.isfile(target_path) else None


def read_lines(path: str) -> list[str]:
    """Lines of a text file, split on "\\n" only: str.splitlines() would also split inside a sentence at
    Unicode separators (U+2028, U+0085) and break the alignment with the other language's file."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":  # the final newline ends the last line; it does not start another
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def check_text_pair(flag: str, source_path: str, target_path: str | None, needs_target: bool) -> None:
    """Raise UsageError for an empty source file, a missing target file, a file that is not UTF-8 text, or files
    of different line counts."""
    if os.path.getsize(source_path) == 0:
        raise UsageError(f"{flag} {source_path}: the file is empty; give it one sentence per line")
    check_utf8(flag, source_path)
    if target_path is None:
        if needs_target:
            raise UsageError(f"{flag}: {source_path} has no target file next to it; add the line-aligned target file")
        return
    check_utf8(flag, target_path)
    source_lines, target_lines = len(read_lines(source_path)), len(read_lines(target_path))
    if source_lines != target_lines:
        raise UsageError(
            f"{flag}: mismatched line counts: {source_path} has {source_lines} lines, {target_path} has "
            f"{target_lines}; the files must be line-aligned (one sentence pair per line number)"
        )


def load_translation_datasets(model_args, data_args) -> DatasetDict:
    """Load the Hub dataset, or the local files (each split read by its own format)."""
    if data_args.dataset_name is not None:
        return load_hub_dataset(model_args, data_args)
    splits = {}
    for split, flag in DATA_FILE_FLAGS.items():
        path = getattr(data_args, f"{split}_file")
        pair = text_pair_files(path, data_args) if path is not None else None
        if pair is not None:
            source_path, target_path = pair
            columns = {data_args.source_column: read_lines(source_path)}
            if target_path is not None:
                columns[data_args.target_column] = read_lines(target_path)
            splits[split] = datasets.Dataset.from_dict(columns)
        elif path is not None:
            dataset = load_data_file(flag, path, split, model_args.cache_dir)
            if dataset.num_rows == 1 and os.path.splitext(path)[1].lower() == ".json":
                dataset = rows_of_json_object(flag, path, split, model_args.cache_dir, dataset, data_args)
            splits[split] = dataset
    return DatasetDict(splits)


def rows_of_json_object(flag: str, path: str, split: str, cache_dir, dataset: datasets.Dataset, data_args):
    """The examples of a .json file that holds one object around them, read as one row: `{"data": [{...}, ...]}`
    (any one key holding the list of rows, beside at most two others such as "version") is read as those rows;
    a dict of lists, `{"en": [...], "ro": [...]}` or `{"translation": [{"en": ..., "ro": ...}, ...]}`, as one row
    per position. Lists of different lengths raise UsageError. A true one-example file comes back unchanged."""
    features = dataset.features
    wrapped = [name for name, feature in features.items() if isinstance(getattr(feature, "feature", None), dict)]
    if len(wrapped) == 1 and len(features) <= 3:
        logger.info(f"{flag} {path}: reading the examples under its '{wrapped[0]}' key")
        return datasets.load_dataset(
            "json", data_files={split: path}, split=split, cache_dir=cache_dir, field=wrapped[0]
        )
    row = dataset[0]
    source = row.get(data_args.source_column)
    if not (isinstance(source, list) and all(isinstance(value, list) for value in row.values())):
        return dataset  # one example (a target may be a list of references, a source never is)
    lengths = {name: len(value) for name, value in row.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name}: {length}" for name, length in lengths.items())
        raise UsageError(
            f"{flag} {path} holds one object of lists of different lengths ({shown}); give every list one entry per "
            'example, or write one {"translation": {"<source>": ..., "<target>": ...}} object per line (.jsonl)'
        )
    logger.info(f"{flag} {path}: its object holds lists ({', '.join(row)}); reading them as rows")
    return datasets.Dataset.from_dict(row, split=split)


def language_keys(dataset: datasets.Dataset) -> list[str]:
    """The languages a split holds: the keys of its `translation` dicts (in any row), or its columns."""
    if "translation" not in dataset.column_names:
        return dataset.column_names
    feature = dataset.features["translation"]
    if isinstance(feature, datasets.Translation):
        return list(feature.languages)
    if isinstance(feature, dict):
        return list(feature)
    # Rows of different shapes (datasets' Json feature): the union of their keys, in order of appearance.
    keys = {}
    for pair in dataset["translation"]:
        keys.update(dict.fromkeys(pair if isinstance(pair, dict) else ()))
    return list(keys)


def language_texts(batch: dict, key: str) -> list:
    """The texts of one language in a batch of rows, from the `translation` dicts or from a column."""
    if "translation" in batch:
        return [(pair or {}).get(key) for pair in batch["translation"]]
    return batch[key]


def check_languages_in_data(raw_datasets: DatasetDict, splits: list[str], data_args) -> None:
    """Raise UsageError when a split lacks the source or target language (a test split may lack the target in
    every row), naming the languages it has; or when some rows lack a text or hold a null, naming the file and
    the first such row."""
    for split in splits:
        dataset = raw_datasets[split]
        available = language_keys(dataset)
        where = data_args.dataset_name or getattr(data_args, f"{split}_file")
        for side, key in (("source", data_args.source_column), ("target", data_args.target_column)):
            if key not in available:
                if side == "target" and split == "test":
                    continue
                raise UsageError(
                    f"no '{key}' texts in {where} (languages: {', '.join(available)}): pass --{side}_lang, or "
                    f"--{side}_column to name the {side} key/column"
                )
            problem = first_row_without(dataset, key)
            if problem is not None:
                row, what, count = problem
                place = (
                    f"--dataset_name {where} ({split} split)"
                    if data_args.dataset_name
                    else f"{DATA_FILE_FLAGS[split]} {where}"
                )
                raise UsageError(
                    f"{place}: row {row} {what} ({count} of {dataset.num_rows} rows); fill in the {side} text "
                    f"'{key}' or remove those rows"
                )


def first_row_without(dataset: datasets.Dataset, key: str) -> tuple[int, str, int] | None:
    """The first row (1-based, in file order) without a text for `key`, what is wrong with it, and how many rows
    are like it; None when every row has one. Reads the arrow columns, except for rows of mixed shapes."""
    import pyarrow.compute as pc

    if "translation" not in dataset.column_names:
        values = dataset.data.column(key)
        if not values.null_count:
            return None
        return (
            pc.index(pc.is_null(values), True).as_py() + 1,
            f"has no '{key}' text: null or missing",
            values.null_count,
        )
    if isinstance(dataset.features["translation"], dict | datasets.Translation):
        pairs = dataset.data.column("translation")
        missing = pc.or_(pc.is_null(pairs), pc.is_null(pc.struct_field(pairs, key)))
        count = pc.sum(missing).as_py() or 0
        if not count:
            return None
        index = pc.index(missing, True).as_py()
        what = "has a null translation" if pairs[index].as_py() is None else f"has no '{key}' text: null or missing"
        return index + 1, what, count
    problems = []
    for index, pair in enumerate(dataset["translation"]):
        if not isinstance(pair, dict):
            what = (
                "has a null translation"
                if pair is None
                else f"has a {type(pair).__name__} as its translation, not a dict of language: text"
            )
            problems.append((index + 1, what))
        elif pair.get(key) is None:
            holds = ", ".join(name for name, text in pair.items() if text is not None) or "no text"
            problems.append((index + 1, f"has no '{key}' text (its translation holds: {holds})"))
    return (*problems[0], len(problems)) if problems else None


def drop_empty_examples(dataset: datasets.Dataset, data_args, split: str) -> datasets.Dataset:
    """Drop training pairs with an empty side (logged); an empty pair in evaluation data is an error, because
    BLEU over a set with holes is not comparable with anyone else's."""
    source_key, target_key = data_args.source_column, data_args.target_column
    kept = dataset.filter(
        lambda batch: [
            bool(source and source.strip()) and bool(first_reference(target).strip())
            for source, target in zip(
                language_texts(batch, source_key), language_texts(batch, target_key), strict=True
            )
        ],
        batched=True,
        desc=f"Checking {split} examples for empty texts",
    )
    dropped = len(dataset) - len(kept)
    if dropped and split != "train":
        where = data_args.dataset_name or getattr(data_args, f"{split}_file")
        raise UsageError(
            f"{dropped} of {len(dataset)} {split} examples in {where} have an empty source or target; fix or remove them"
        )
    if dropped:
        logger.warning(f"dropped {dropped} training examples with an empty source or target")
    return kept


def language_codes(tokenizer) -> list[str] | None:
    """The language codes a multilingual tokenizer (mBART, mBART-50, M2M100, NLLB) knows, else None."""
    if is_tokenizer_of(tokenizer, LANG_CODE_TOKENIZERS):
        return list(tokenizer.lang_code_to_id)
    if is_tokenizer_of(tokenizer, NLLB_TOKENIZERS):
        return [token for token in tokenizer.all_special_tokens if re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", token)]
    return None


def language_code_id(tokenizer, code: str) -> int:
    """The token id of a language code: M2M100's codes (en) stand for tokens (__en__), the others are tokens."""
    if is_tokenizer_of(tokenizer, ("M2M100Tokenizer",)):
        return tokenizer.get_lang_id(code)
    return tokenizer.convert_tokens_to_ids(code)


def set_up_language_codes(model, tokenizer, data_args, log_setup: bool = False) -> None:
    """Set the languages on a multilingual tokenizer, and the decoder start / forced BOS ids of the target.

    mBART starts decoding from the target language code. mBART-50, M2M100 and NLLB start from </s> and must
    generate the target code first, so it becomes the forced BOS token unless --forced_bos_token says otherwise.
    `log_setup` logs the languages and both ids at info level (the Keras script does).
    """
    valid_codes = language_codes(tokenizer)
    if valid_codes is None:
        if data_args.forced_bos_token is not None:
            logger.warning(f"--forced_bos_token ignored: {type(tokenizer).__name__} has no language codes")
        return
    check_language_code("--source_lang", data_args.source_lang, valid_codes)
    check_language_code("--target_lang", data_args.target_lang, valid_codes)
    tokenizer.src_lang = data_args.source_lang
    tokenizer.tgt_lang = data_args.target_lang
    target_id = language_code_id(tokenizer, data_args.target_lang)
    is_mbart = is_tokenizer_of(tokenizer, MBART_TOKENIZERS)
    if is_mbart:
        model.config.decoder_start_token_id = target_id
        model.generation_config.decoder_start_token_id = target_id
    forced_bos_id = None if is_mbart else target_id
    if data_args.forced_bos_token is not None:
        check_language_code("--forced_bos_token", data_args.forced_bos_token, valid_codes)
        forced_bos_id = language_code_id(tokenizer, data_args.forced_bos_token)
    if forced_bos_id is not None:
        # Generation settings belong in the generation config (transformers 5's save_pretrained refuses them in the
        # model config).
        model.generation_config.forced_bos_token_id = forced_bos_id
    if log_setup:
        logger.info(
            f"{type(tokenizer).__name__}: {data_args.source_lang} -> {data_args.target_lang}; decoding starts from "
            f"id {model.config.decoder_start_token_id}, forced first token: {forced_bos_id}"
        )
