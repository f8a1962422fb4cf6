"""Reading `{"src", "tgt"}` records, tokenising them, the training dataset and collator, detokenising outputs."""

import csv
import json
import os
from collections import Counter

import numpy as np
import torch

from .masks import Corruption, SpecialIds, build_example, collate
from .utils import UsageError, check_utf8

DATA_EXTENSIONS = (".jsonl", ".json", ".csv", ".tsv")


def check_data_file(flag: str, path: str) -> None:
    """Raise UsageError unless `path` is an existing, non-empty .jsonl/.json/.csv/.tsv file of UTF-8 text.

    The checks of `seq2seq_checks.check_data_file`, with s2s-ft's own messages: JSON lines come first (the
    format of its data) and a line holds one example (`{"src", "tgt"}`), not a row of a table.
    """
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a directory; pass a .jsonl, .json, .csv or .tsv file inside it")
    extension = os.path.splitext(path)[1].lower()
    if extension not in DATA_EXTENSIONS:
        raise UsageError(f"{flag} {path}: unknown extension '{extension}'; use a .jsonl, .json, .csv or .tsv file")
    if not os.path.isfile(path):
        raise UsageError(f"{flag} {path}: no such file")
    if os.path.getsize(path) == 0:
        raise UsageError(f"{flag} {path}: the file is empty; give it one example per line")
    check_utf8(flag, path)


def read_rows(flag: str, path: str) -> list:
    """All rows of a JSON-lines file (`.json` may also be one JSON array, or `{"data": [rows]}`) or a CSV/TSV file
    with a header. Raises UsageError naming the line that is not JSON."""
    extension = os.path.splitext(path)[1].lower()
    with open(path, encoding="utf-8", newline="" if extension in (".csv", ".tsv") else None) as handle:
        if extension in (".csv", ".tsv"):
            return list(csv.DictReader(handle, delimiter="\t" if extension == ".tsv" else ","))
        text = handle.read()
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None  # JSON lines (or broken JSON: found line by line below)
    if isinstance(whole, list):
        return whole
    if isinstance(whole, dict) and isinstance(whole.get("data"), list) and len(whole) == 1:
        return whole["data"]  # {"data": [rows]}, as datasets' `field="data"` reads it
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise UsageError(
                f"{flag} {path} line {number}: not valid JSON ({error.msg} at column {error.colno}); give one "
                'JSON object per line, e.g. {"src": "...", "tgt": "..."}'
            ) from error
    return rows


def _row_value(flag: str, path: str, number: int, row, column: str, option: str):
    """The row's `column`: a non-empty string or a list of token strings; UsageError naming the line otherwise."""
    where = f"{flag} {path} line {number}"
    if not isinstance(row, dict):
        raise UsageError(
            f"{where}: a {type(row).__name__}, not an object with '{column}'; give one JSON object per line"
        )
    if column not in row:
        raise UsageError(f"{where}: no '{column}' ({', '.join(map(str, row)) or 'no keys'}); pass {option} <key>")
    value = row[column]
    if value is None:
        raise UsageError(f"{where}: '{column}' is null; fill it in or drop the line")
    if isinstance(value, list) and all(isinstance(token, str) for token in value):
        if not value:
            raise UsageError(f"{where}: '{column}' is an empty list of tokens; fill it in or drop the line")
        return value
    if not isinstance(value, str):
        raise UsageError(
            f"{where}: '{column}' is a {type(value).__name__} ({str(value)[:40]}), not text or a list of tokens; "
            "fix the line"
        )
    if not value.strip():
        raise UsageError(f"{where}: '{column}' is empty; fill it in or drop the line")
    return value


def read_records(
    flag: str, path: str, source_column: str, target_column: str | None, source_option: str = "--source_column"
) -> list[tuple]:
    """(source, target) pairs; each side is a non-empty string, or a list of tokens (pre-tokenised). With
    `target_column=None` (decoding) targets are None. Raises UsageError naming the file and line of a missing,
    null, empty or mistyped value (`source_option`: the flag that renames the source key). Line numbers count data
    rows (CSV: after the header)."""
    rows = read_rows(flag, path)
    if not rows:
        raise UsageError(f"{flag} {path}: no examples")
    records = []
    for number, row in enumerate(rows, start=1):
        source = _row_value(flag, path, number, row, source_column, source_option)
        target = (
            None if target_column is None else _row_value(flag, path, number, row, target_column, "--target_column")
        )
        records.append((source, target))
    return records


def tokenize_texts(tokenizer, values: list) -> list[list[int]]:
    """Token ids without special tokens: strings through the tokenizer (one batched call), lists of tokens
    mapped to ids directly (pre-tokenised input, e.g. WordPiece pieces with `##`)."""
    texts = [index for index, value in enumerate(values) if isinstance(value, str)]
    result = [None] * len(values)
    if texts:
        encoded = tokenizer([values[index] for index in texts], add_special_tokens=False)["input_ids"]
        for index, ids in zip(texts, encoded, strict=True):
            result[index] = ids
    for index, value in enumerate(values):
        if result[index] is None:
            result[index] = tokenizer.convert_tokens_to_ids([str(token) for token in value or []])
    return result


def special_ids(tokenizer) -> SpecialIds:
    """The tokenizer's [CLS]/[SEP]/[MASK]/[PAD] ids (RoBERTa: <s>, </s>, <mask>, <pad>); UsageError if one is missing."""
    values = {name: getattr(tokenizer, f"{name}_token_id") for name in ("cls", "sep", "mask", "pad")}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise UsageError(
            f"the tokenizer has no {'/'.join(missing)} token; s2s-ft needs a BERT-style tokenizer (pass --tokenizer_name)"
        )
    return SpecialIds(**values, vocab_size=len(tokenizer))


def length_histogram(lengths: list[int], bucket: int = 16) -> str:
    """`0-15: 3, 16-31: 10, ...`: how many sequences fall in each bucket of `bucket` tokens."""
    counts = Counter(length // bucket for length in lengths)
    return ", ".join(f"{key * bucket}-{key * bucket + bucket - 1}: {counts[key]}" for key in sorted(counts))


class Seq2SeqTrainingDataset(torch.utils.data.Dataset):
    """Tokenised (source, target) pairs; each read lays one out for the mode and draws its corruption afresh.

    The noise of item `i` in epoch `e` comes from a generator seeded with (seed, e, i), so a resumed run sees
    exactly the noise of an uninterrupted one, whatever was prefetched or skipped. The Trainer calls `set_epoch`.
    """

    def __init__(self, pairs, mode: str, ids: SpecialIds, max_source: int, max_target: int, corruption, seed: int):
        self.pairs, self.mode, self.ids = pairs, mode, ids
        self.max_source, self.max_target = max_source, max_target
        self.corruption: Corruption = corruption
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        source, target = self.pairs[index]
        return build_example(
            source, target, self.mode, self.ids, self.max_source, self.max_target, self.corruption, rng
        )


class Seq2SeqCollator:
    """Pads and packs examples from `Seq2SeqTrainingDataset` into model inputs (see `masks.collate`)."""

    def __init__(self, mode: str, ids: SpecialIds, source_type_id: int, target_type_id: int):
        self.mode, self.ids = mode, ids
        self.source_type_id, self.target_type_id = source_type_id, target_type_id

    def __call__(self, examples: list[dict]) -> dict:
        return collate(examples, self.mode, self.ids, self.source_type_id, self.target_type_id)


def detokenize(tokenizer, token_ids: list[int]) -> str:
    """Output text: `##` pieces glued (WordPiece) or the tokenizer's own detokeniser (BPE); special tokens
    dropped; a newline becomes ` [X_SEP] ` so the file keeps one output per line."""
    text = tokenizer.decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return " [X_SEP] ".join(part.strip() for part in text.strip().split("\n"))
