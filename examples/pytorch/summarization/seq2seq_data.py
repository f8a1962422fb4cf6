"""Data in and predictions out, shared by every seq2seq example script (PyTorch and TensorFlow alike).

Loading a Hub dataset or local .csv/.tsv/.json/.jsonl files with one-line errors, the training target of a
multi-reference example, language-code checks, a collator for unlabelled data, and decoding generated ids into
the predictions file and its per-example twin (generated_predictions.jsonl). Imports neither torch nor TensorFlow (see seq2seq_checks.py for how the copies are kept).
"""

import difflib
import json
import logging
import os
from dataclasses import dataclass

import datasets
import numpy as np
from datasets import DatasetDict, load_dataset
from transformers import DataCollatorForSeq2Seq

from seq2seq_checks import DATA_FILE_FLAGS, UsageError, atomic_write, is_offline_mode

logger = logging.getLogger(__name__)


TEXT_DTYPES = ("string", "large_string")


def load_hub_dataset(model_args, data_args) -> DatasetDict:
    """Load --dataset_name from the Hub (or its cache); an unreachable Hub raises UsageError. Offline, a name that
    is not a local folder can only come from the datasets cache, which may hold a local folder of that name loaded
    earlier rather than the Hub dataset: a warning says which cache folder was read."""
    try:
        dataset = load_dataset(
            data_args.dataset_name,
            data_args.dataset_config_name,
            cache_dir=model_args.cache_dir,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
        )
        if is_offline_mode() and not os.path.isdir(data_args.dataset_name):
            cached = [entry["filename"] for split in dataset.values() for entry in split.cache_files][:1]
            logger.warning(
                f"--dataset_name {data_args.dataset_name}: the Hub is offline, so it was read from the datasets cache "
                f"({os.path.dirname(cached[0]) if cached else 'cache'}), which holds whatever was last loaded under "
                "that name (possibly a local folder, not the Hub dataset); pass a folder path or local files to be sure"
            )
        return dataset
    except ConnectionError as error:
        raise UsageError(
            f"--dataset_name {data_args.dataset_name}: {error}; the Hub is unreachable or offline "
            "(HF_HUB_OFFLINE=1): pass local files with --train_file/--validation_file/--test_file instead"
        ) from error
    except FileNotFoundError as error:
        raise UsageError(f"--dataset_name {data_args.dataset_name}: {str(error).splitlines()[0]}") from error


def load_data_file(flag: str, path: str, split: str, cache_dir: str | None) -> datasets.Dataset:
    """Read one local .csv/.tsv/.json/.jsonl file as a Dataset; a file the reader rejects raises UsageError.

    Besides one example per line (or a list of examples), a .json file may hold its examples under one key
    (`{"data": [...]}`) or as columns (`{"document": [...], "summary": [...]}`): both are read as rows.
    """
    extension = os.path.splitext(path)[1].lower()
    reader = "csv" if extension in (".csv", ".tsv") else "json"  # the json reader also reads JSON lines
    options = {"delimiter": "\t"} if extension == ".tsv" else {}
    try:
        dataset = load_dataset(reader, data_files={split: path}, split=split, cache_dir=cache_dir, **options)
        if reader == "json" and dataset.num_rows == 1:
            dataset = _rows_of_single_object(flag, path, split, cache_dir, dataset)
        return dataset
    except (datasets.exceptions.DatasetGenerationError, ValueError) as error:
        if "corresponds to no data" in str(error):  # e.g. a CSV file with only its header line
            raise UsageError(f"{flag} {path} has no examples") from error
        cause = error.__cause__ or error
        raise UsageError(f"{flag} {path} could not be read as {reader}: {str(cause).splitlines()[0]}") from error


def _rows_of_single_object(flag: str, path: str, split: str, cache_dir, dataset: datasets.Dataset):
    """A one-row JSON dataset that is really one object around the examples: `{"key": [{...}, ...]}` (read the
    list under `key` as rows) or `{"column": [values...], ...}` (columns of equal length, read as rows)."""
    features = dataset.features
    wrapped = [name for name, feature in features.items() if isinstance(getattr(feature, "feature", None), dict)]
    if len(wrapped) == 1 and len(features) <= 3:  # e.g. {"version": ..., "data": [...]}
        logger.info(f"{flag} {path}: reading the examples under its '{wrapped[0]}' key")
        return load_dataset("json", data_files={split: path}, split=split, cache_dir=cache_dir, field=wrapped[0])
    row = dataset[0]
    lengths = {len(value) if isinstance(value, list) else -1 for value in row.values()}
    if len(lengths) == 1 and lengths.pop() > 1:  # every column a list, all of one length > 1
        logger.info(f"{flag} {path}: its object holds columns ({', '.join(row)}); reading them as rows")
        return datasets.Dataset.from_dict(row, split=split)
    return dataset


def check_no_missing_values(dataset: datasets.Dataset, columns: list[str], where: str) -> None:
    """Raise UsageError naming the first example (1-based, in file order) whose value in one of `columns` is
    null or missing (a JSON row without that key); `where` is the flag and file, for the message."""
    import pyarrow.compute as pc

    for column in columns:
        values = dataset.data.column(column)
        if values.null_count:
            row = pc.index(pc.is_null(values), True).as_py()
            raise UsageError(
                f"{where}: example {row + 1} has no '{column}' (null or missing; {values.null_count} such "
                "examples in all); fill it in or remove those examples"
            )


def load_raw_datasets(model_args, data_args) -> DatasetDict:
    """Load the Hub dataset, or the local files (each split read by its own extension).

    `model_args` needs cache_dir, token and trust_remote_code; `data_args` dataset_name, dataset_config_name and
    train_file/validation_file/test_file (the dataclasses or the argparse namespace of the twins).
    """
    if data_args.dataset_name is not None:
        return load_hub_dataset(model_args, data_args)
    files = {split: getattr(data_args, f"{split}_file") for split in DATA_FILE_FLAGS}
    return DatasetDict(
        {
            split: load_data_file(DATA_FILE_FLAGS[split], path, split, model_args.cache_dir)
            for split, path in files.items()
            if path is not None
        }
    )


def first_reference(summary: str | list[str] | None) -> str:
    """The training target of an example: the summary, or the first of several references."""
    if isinstance(summary, list):
        return summary[0] if summary else ""
    return summary or ""


def check_language_code(flag: str, code: str, valid_codes: list[str]) -> None:
    """Raise UsageError naming the nearest valid codes when `code` is not one of `valid_codes`."""
    if code in valid_codes:
        return
    same_language = [valid for valid in valid_codes if valid.split("_")[0] == code.split("_")[0]]
    nearest = same_language or difflib.get_close_matches(code, valid_codes, n=3, cutoff=0.4)
    suggestion = f"did you mean {' or '.join(nearest)}? " if nearest else ""
    raise UsageError(
        f"{flag} '{code}' is not a language code of this tokenizer; {suggestion}(valid: {', '.join(valid_codes)})"
    )


@dataclass
class DataCollatorForSeq2SeqAllowingNoLabels(DataCollatorForSeq2Seq):
    """`DataCollatorForSeq2Seq` that leaves `labels` out for unlabelled data (predicting on texts alone).

    The parent returns `labels=None` then (in the transformers versions these scripts run on), and a Trainer takes
    the key's presence as "has labels" and fails looking for a loss.
    """

    def __call__(self, features, return_tensors=None):
        batch = super().__call__(features, return_tensors)
        if batch.get("labels") is None:
            batch.pop("labels", None)
        return batch


def decode_predictions(
    tokenizer, token_ids, num_examples: int, max_length: int | None = None
) -> tuple[list[str], float]:
    """Decode generated ids into one-line texts; return them with the mean count of non-pad tokens (gen_len).

    Under multi-process evaluation the gathered ids end with copies of the first examples (the padding of
    the last, uneven batch, which the Trainer's gathering keeps): only the first `num_examples` rows, which
    are in input order, are kept. Batches are padded with -100 when gathered; those become pad ids first
    (decoding a negative id overflows). A newline inside a prediction becomes a space, so the predictions
    file keeps one line per example. Predictions that run up to `max_length` (the generation limit) were
    probably cut, which silently lowers scores: their count is logged as a warning.
    """
    if isinstance(token_ids, tuple):
        token_ids = token_ids[0]
    token_ids = np.asarray(token_ids)[:num_examples]
    token_ids = np.where(token_ids < 0, tokenizer.pad_token_id, token_ids)
    texts = tokenizer.batch_decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
    predictions = [" ".join(text.split("\n")).strip() for text in texts]
    gen_len = float(np.mean(np.count_nonzero(token_ids != tokenizer.pad_token_id, axis=1))) if len(texts) else 0.0
    if max_length is not None and len(texts):
        # A sequence's used length is the position after its last non-pad token (the start token included).
        used = np.where(token_ids != tokenizer.pad_token_id, np.arange(1, token_ids.shape[1] + 1), 0).max(axis=1)
        cut = int(np.sum(used >= max_length))
        if cut:
            logger.warning(
                f"{cut} of {len(texts)} predictions reached the length limit of {max_length} tokens and may be cut; "
                "raise --generation_max_length (default: --val_max_target_length) if they should be longer"
            )
    return predictions, round(gen_len, 4)


def write_predictions(path: str, predictions: list[str]) -> None:
    """One prediction per line, in input order, newline-terminated; written to a temp file then renamed."""
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        handle.writelines(f"{prediction}\n" for prediction in predictions)
    os.replace(f"{path}.tmp", path)


def generation_lengths(
    token_ids, num_examples: int, pad_token_id: int, eos_token_id: int | None, max_length: int | None
) -> tuple[list[int], list[bool]]:
    """Per example: how many tokens were generated (the decoder start token at position 0 is given, not generated;
    padding is not counted) and whether generation stopped at the length limit rather than at end-of-sequence
    (no EOS generated, or the sequence fills `max_length`, which also catches a forced final EOS)."""
    if isinstance(token_ids, tuple):
        token_ids = token_ids[0]
    token_ids = np.asarray(token_ids)[:num_examples]
    token_ids = np.where(token_ids < 0, pad_token_id, token_ids)
    if token_ids.ndim != 2 or token_ids.shape[1] == 0:
        return [0] * len(token_ids), [False] * len(token_ids)
    generated = token_ids[:, 1:]
    counts = np.count_nonzero(generated != pad_token_id, axis=1)
    used = np.where(token_ids != pad_token_id, np.arange(1, token_ids.shape[1] + 1), 0).max(axis=1)
    no_eos = np.ones(len(token_ids), dtype=bool) if eos_token_id is None else ~(generated == eos_token_id).any(axis=1)
    at_limit = no_eos | (used >= max_length) if max_length is not None else no_eos
    return [int(count) for count in counts], [bool(flag) for flag in at_limit]


def write_prediction_records(
    path: str,
    predictions: list[str],
    references: list[str | list[str]] | None,
    scores: list[dict[str, float]] | None,
    generated_tokens: list[int],
    hit_length_limit: list[bool],
) -> None:
    """generated_predictions.jsonl: one JSON object per example, in the order of generated_predictions.txt, with
    its references, its own scores, and its generated length (sort it by a score to find the worst examples)."""
    with atomic_write(path) as handle:
        for index, prediction in enumerate(predictions):
            record = {"index": index, "prediction": prediction}
            if references is not None:
                reference = references[index]
                record["references"] = [reference] if isinstance(reference, str) else list(reference)
            if scores is not None:
                record["scores"] = scores[index]
            record["generated_tokens"] = generated_tokens[index]
            record["hit_length_limit"] = hit_length_limit[index]
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


NBEST_HELP = (
    "For --do_predict with beam search: also write the K best hypotheses of each example with their scores "
    "(generated_predictions.nbest.jsonl, for reranking); generated_predictions.txt keeps the best one. K <= beams."
)


def check_num_return_sequences(value: int, beams: int | None, predicts: bool, backend: str = "transformers") -> None:
    """--num_return_sequences K (n-best lists) is 1, or up to the beams of a predict run generating with
    transformers (`beams`: None while the model's default is not known yet); raises UsageError."""
    if value < 1:
        raise UsageError(f"--num_return_sequences must be at least 1, got {value}")
    if value == 1:
        return
    if not predicts:
        raise UsageError(
            "--num_return_sequences writes n-best lists of the test set: add --do_predict and "
            "--predict_with_generate, or drop it"
        )
    if backend != "transformers":
        raise UsageError(
            "--num_return_sequences: n-best scores come from the transformers backend; drop --generation_backend "
            f"{backend} or --num_return_sequences"
        )
    if beams is not None and value > beams:
        raise UsageError(
            f"--num_return_sequences {value} is more than the {beams} beam(s) of the search; pass --num_beams "
            f"{value} (or more), or fewer sequences"
        )


def write_nbest_predictions(path: str, tokenizer, token_ids: np.ndarray, scores: np.ndarray) -> None:
    """generated_predictions.nbest.jsonl: per example (examples x K x length ids, in input order), its K
    hypotheses best first with the scores beam search ranked them by, `{"index", "hypotheses": [{"text",
    "score"}]}`; the first hypothesis is the line of generated_predictions.txt."""
    num_examples, sequences = token_ids.shape[:2]
    texts, _ = decode_predictions(tokenizer, token_ids.reshape(num_examples * sequences, -1), num_examples * sequences)
    with atomic_write(path) as handle:
        for index, hypothesis_scores in enumerate(scores):
            hypotheses = texts[index * sequences : (index + 1) * sequences]
            record = {
                "index": index,
                "hypotheses": [
                    {"text": text, "score": round(float(score), 6)}
                    for text, score in zip(hypotheses, hypothesis_scores, strict=True)
                ],
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
