"""Summarization data: the text and summary columns (known for Hub datasets, checked in every split), dropping
empty examples, and mBART language codes. Shared by the summarization scripts (PyTorch and Keras); imports neither
torch nor TensorFlow.
"""

import logging
import os

import datasets

from seq2seq_checks import DATA_FILE_FLAGS, UsageError
from seq2seq_data import TEXT_DTYPES, check_language_code, check_no_missing_values, first_reference

logger = logging.getLogger(__name__)


# Text and summary columns of well-known Hub summarization datasets, used when the flags are not given.
summarization_name_mapping = {
    "amazon_reviews_multi": ("review_body", "review_title"),
    "big_patent": ("description", "abstract"),
    "cnn_dailymail": ("article", "highlights"),
    "orange_sum": ("text", "summary"),
    "pn_summary": ("article", "summary"),
    "psc": ("extract_text", "summary_text"),
    "samsum": ("dialogue", "summary"),
    "thaisum": ("body", "summary"),
    "xglue": ("news_body", "news_title"),
    "xsum": ("document", "summary"),
    "wiki_summary": ("article", "highlights"),
    "multi_news": ("document", "summary"),
}


# Tokenizers whose language code decides the decoder start token (set from --lang), by class name: transformers 4
# has a slow and a fast class of each, transformers 5 one.
MULTILINGUAL_TOKENIZERS = ("MBartTokenizer", "MBartTokenizerFast", "MBart50Tokenizer", "MBart50TokenizerFast")


def resolve_columns(raw_datasets: datasets.DatasetDict, splits: list[str], data_args) -> tuple[str, str]:
    """Return (text_column, summary_column) after checking they exist and hold text in every split used.

    The test split may lack the summary column (predictions are then written but not scored).
    """
    first_columns = raw_datasets[splits[0]].column_names
    known = summarization_name_mapping.get(os.path.basename(data_args.dataset_name or ""))
    text_column = data_args.text_column or (known[0] if known else first_columns[0])
    if data_args.summary_column:
        summary_column = data_args.summary_column
    elif known:
        summary_column = known[1]
    else:
        summary_column = first_columns[1] if len(first_columns) > 1 else "summary"
    if text_column == summary_column and not (data_args.text_column and data_args.summary_column):
        raise UsageError(
            f"{data_args.dataset_name or getattr(data_args, f'{splits[0]}_file')} has only the column "
            f"'{text_column}' (columns: {', '.join(first_columns)}); an example needs a text and a summary: pass "
            "--text_column and --summary_column"
        )
    for split in splits:
        where = data_args.dataset_name or getattr(data_args, f"{split}_file")
        columns = raw_datasets[split].column_names
        for flag, column in (("--text_column", text_column), ("--summary_column", summary_column)):
            if column not in columns:
                if flag == "--summary_column" and split == "test":
                    continue
                raise UsageError(
                    f"{flag} '{column}' not in {where} (columns: {', '.join(columns)}); pass {flag} <one of them>"
                )
            feature = raw_datasets[split].features[column]
            inner = getattr(feature, "feature", None) if flag == "--summary_column" else None  # list of references
            if getattr(feature, "dtype", None) not in TEXT_DTYPES and getattr(inner, "dtype", None) not in TEXT_DTYPES:
                raise UsageError(
                    f"{flag} '{column}' in {where} holds {feature}, not text; pass {flag} <a text column>"
                )
        present = [column for column in (text_column, summary_column) if column in columns]
        flag = "--dataset_name" if data_args.dataset_name else DATA_FILE_FLAGS[split]
        if (
            split == "test"
            and summary_column in present
            and raw_datasets[split].data.column(summary_column).null_count == len(raw_datasets[split])
        ):
            present.remove(summary_column)  # no references at all: predictions are written, not scored
        check_no_missing_values(raw_datasets[split], present, f"{flag} {where}")
    return text_column, summary_column


def drop_empty_examples(dataset: datasets.Dataset, text_column: str, summary_column: str, name: str):
    """Drop rows whose text or summary is empty (they teach nothing and break ROUGE); log how many."""
    kept = dataset.filter(
        lambda batch: [
            bool(text and text.strip()) and bool(first_reference(summary).strip())
            for text, summary in zip(batch[text_column], batch[summary_column], strict=True)
        ],
        batched=True,
        desc=f"Dropping empty {name} examples",
    )
    if len(kept) < len(dataset):
        logger.warning(f"dropped {len(dataset) - len(kept)} {name} examples with an empty text or summary")
    return kept


def set_up_language_codes(model, tokenizer, data_args) -> None:
    """For mBART-family tokenizers: set the language on the tokenizer and the decoder start / forced BOS ids."""
    if not any(cls.__name__ in MULTILINGUAL_TOKENIZERS for cls in type(tokenizer).__mro__):
        if data_args.lang or data_args.forced_bos_token:
            logger.warning(f"--lang/--forced_bos_token ignored: {type(tokenizer).__name__} has no language codes")
        return
    valid_codes = list(tokenizer.lang_code_to_id)
    if data_args.lang is None:
        raise UsageError(f"{type(tokenizer).__name__} needs --lang, the language code of your text (e.g. en_XX)")
    check_language_code("--lang", data_args.lang, valid_codes)
    tokenizer.src_lang = data_args.lang
    tokenizer.tgt_lang = data_args.lang
    if model.config.decoder_start_token_id is None:
        # mBART starts decoding from the language code of the target text.
        lang_id = tokenizer.convert_tokens_to_ids(data_args.lang)
        model.config.decoder_start_token_id = lang_id
        model.generation_config.decoder_start_token_id = lang_id
    if data_args.forced_bos_token is not None:
        check_language_code("--forced_bos_token", data_args.forced_bos_token, valid_codes)
        forced_id = tokenizer.convert_tokens_to_ids(data_args.forced_bos_token)
        # Generation settings belong in the generation config (transformers 5's save_pretrained refuses them in the
        # model config).
        model.generation_config.forced_bos_token_id = forced_id
