#!/usr/bin/env python
"""Fine-tune and evaluate a sequence-to-sequence model for summarization with Keras (TensorFlow).

The Keras twin of `examples/pytorch/summarization/run_summarization.py`: the same data flags, output files
(`all_results.json`, `generated_predictions.txt`, ...), output-dir protection, one-line errors and ROUGE code
(`rouge_score`, stemmer on, F1 x 100, mean over examples), on `TFAutoModelForSeq2SeqLM` checkpoints (T5, BART,
mBART, Pegasus, Marian, ...), trained with `model.fit` and scored with XLA-compiled generation.

It needs its own environment: transformers 5 has no TensorFlow models, so this script runs on transformers
4.57.6 + tensorflow-cpu 2.21 + tf-keras 2.21 (`examples/tensorflow/requirements.txt`; `make .venv-tf/.setup-done`).
On the tiny offline model (`.venv-tf/bin/python utils/create_tiny_tf_models.py --output_dir .cache/tiny-models-tf`)
and the shipped sample data:

    .venv-tf/bin/python examples/tensorflow/summarization/run_summarization.py \
        --model_name_or_path .cache/tiny-models-tf/t5 --source_prefix "summarize: " \
        --train_file tests/fixtures/summarization/xsum/sample.json \
        --validation_file tests/fixtures/summarization/xsum/sample.json \
        --test_file tests/fixtures/summarization/xsum/sample.json \
        --do_train --do_eval --do_predict --num_train_epochs 3 --per_device_train_batch_size 2 \
        --output_dir outputs/xsum-t5-tf

Several GPUs are used through `tf.distribute.MirroredStrategy` automatically, a TPU with `--tpu_name`. All
arguments can also come from one `.json`/`.yaml` file. A killed training run resumes from its last epoch
checkpoint (`checkpoint-N`) when the same command is run again.
"""

import difflib
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field

import datasets
import nltk
import numpy as np
import tensorflow as tf
import tf_keras
import transformers
from datasets import DatasetDict, load_dataset
from huggingface_hub import try_to_load_from_cache
from rouge_score import rouge_scorer
from transformers import (
    AutoConfig,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    DefaultDataCollator,
    HfArgumentParser,
    KerasMetricCallback,
    MBart50Tokenizer,
    MBart50TokenizerFast,
    MBartTokenizer,
    MBartTokenizerFast,
    PushToHubCallback,
    TFAutoModelForSeq2SeqLM,
    TFTrainingArguments,
    create_optimizer,
    set_seed,
)
from transformers.utils import is_offline_mode

logger = logging.getLogger(__name__)

# Tokenizers whose language code decides the decoder start token (set from --lang); transformers 4.57 has a slow
# and a fast class for each.
MULTILINGUAL_TOKENIZERS = (MBartTokenizer, MBartTokenizerFast, MBart50Tokenizer, MBart50TokenizerFast)


# Copied from examples.pytorch.summarization.run_summarization.summarization_name_mapping
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

# Copied from examples.pytorch.summarization.run_summarization.TEXT_DTYPES
TEXT_DTYPES = ("string", "large_string")

# Keras checkpoints: the weights and optimizer state of `checkpoint-N/`, written before its trainer_state.json.
CHECKPOINT_PREFIX = "tf_checkpoint"
# Inputs padded to a multiple of this many tokens: few distinct shapes, so XLA compiles generation few times.
PAD_TO_MULTIPLE_OF = 128
LR_SCHEDULES = ("linear", "constant")


# Copied from examples.pytorch.summarization.run_summarization.UsageError
class UsageError(ValueError):
    """A problem with the user's arguments or data: reported as one line, without a traceback."""


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


# Copied from examples.pytorch.summarization.run_summarization.DataTrainingArguments
@dataclass
class DataTrainingArguments:
    """What data to train and evaluate on, and how to tokenize and score it."""

    lang: str | None = field(
        default=None,
        metadata={"help": "Language code of the text, required by mBART tokenizers (e.g. en_XX)."},
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id (needs network), e.g. xsum or cnn_dailymail."}
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Hub dataset configuration, e.g. 3.0.0 for cnn_dailymail."}
    )
    text_column: str | None = field(
        default=None,
        metadata={"help": "Column with the full text (default: known for Hub datasets, else the first column)."},
    )
    summary_column: str | None = field(
        default=None,
        metadata={
            "help": (
                "Column with the summary (default: known for Hub datasets, else the second column). A list of "
                "strings means several references: training uses the first, ROUGE takes the best per example."
            )
        },
    )
    train_file: str | None = field(default=None, metadata={"help": "Training data: a .csv, .json or .jsonl file."})
    validation_file: str | None = field(
        default=None, metadata={"help": "Evaluation data for --do_eval: a .csv, .json or .jsonl file."}
    )
    test_file: str | None = field(
        default=None,
        metadata={
            "help": "Data for --do_predict: a .csv, .json or .jsonl file. Without the summary column, ROUGE is skipped."
        },
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Tokenize again instead of using the cache."})
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Number of processes for tokenization (default: this one only)."}
    )
    max_source_length: int = field(
        default=1024, metadata={"help": "Maximum input length in tokens after tokenization; longer inputs are cut."}
    )
    max_target_length: int = field(
        default=128, metadata={"help": "Maximum summary length in tokens for training; longer labels are cut."}
    )
    val_max_target_length: int | None = field(
        default=None,
        metadata={
            "help": (
                "Maximum summary length in tokens for eval/predict labels, and the default "
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
        default="", metadata={"help": "Text added before every input, e.g. 'summarize: ' for T5 models."}
    )
    forced_bos_token: str | None = field(
        default=None,
        metadata={"help": "For mBART-50: language code forced as the first generated token (e.g. en_XX)."},
    )

    def __post_init__(self):
        if self.val_max_target_length is None:
            self.val_max_target_length = self.max_target_length


@dataclass
class SummarizationTrainingArguments(TFTrainingArguments):
    """`TFTrainingArguments` plus the generation settings of `Seq2SeqTrainingArguments` and the XLA switch."""

    predict_with_generate: bool = field(
        default=True,
        metadata={
            "help": (
                "Generate summaries in eval/predict and score them with ROUGE (on by default, as the upstream "
                "Keras script always did; --predict_with_generate False reports only the loss)."
            )
        },
    )
    generation_max_length: int | None = field(
        default=None,
        metadata={"help": "Maximum generated length in tokens (default: --val_max_target_length)."},
    )
    generation_num_beams: int | None = field(
        default=None, metadata={"help": "Beams for generation (default: the model's generation config)."}
    )
    use_xla_generation: bool = field(
        default=True,
        metadata={
            "help": (
                "Compile generation with XLA (`tf.function(jit_compile=True)`): much faster after the first batch "
                "of each input shape. --use_xla_generation False generates eagerly (same greedy output)."
            )
        },
    )


# Copied from examples.pytorch.summarization.run_summarization.parse_args
def parse_args() -> tuple[ModelArguments, DataTrainingArguments, SummarizationTrainingArguments]:
    """Parse the command line, or a single .json/.yaml file of arguments. Raises UsageError."""
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, SummarizationTrainingArguments))
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


def setup_logging(training_args: SummarizationTrainingArguments) -> None:
    """HF's log format on stdout; our messages at info, the libraries' at warning (or --log_level)."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    logger.setLevel(logging.INFO)
    library_level = logging.WARNING if training_args.log_level == "passive" else training_args.get_process_log_level()
    datasets.utils.logging.set_verbosity(library_level)
    transformers.utils.logging.set_verbosity(library_level)
    tf.get_logger().setLevel(max(library_level, logging.WARNING))
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


def save_results(output_dir: str, split: str, metrics: dict) -> None:
    """Write `{split}_results.json` and merge the metrics into `all_results.json` (both atomically)."""
    write_json_atomically(os.path.join(output_dir, f"{split}_results.json"), metrics)
    all_results_path = os.path.join(output_dir, "all_results.json")
    all_results = {}
    if os.path.isfile(all_results_path):
        with open(all_results_path, encoding="utf-8") as handle:
            all_results = json.load(handle)
    write_json_atomically(all_results_path, {**all_results, **metrics})


def log_metrics(split: str, metrics: dict) -> None:
    """Log one stage's metrics, one per line, like `Trainer.log_metrics`."""
    logger.info(f"***** {split} metrics *****")
    for key in sorted(metrics):
        logger.info(f"  {key} = {metrics[key]}")


# Copied from examples.pytorch.summarization.run_summarization.check_output_dir
def check_output_dir(training_args: SummarizationTrainingArguments) -> str | None:
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


def check_run_args(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: SummarizationTrainingArguments
) -> None:
    """Check lengths, sample caps, epochs, Hub access and --resume_from_checkpoint; raise UsageError naming the fix."""
    for name in ("max_source_length", "max_target_length", "val_max_target_length"):
        if getattr(data_args, name) < 1:
            raise UsageError(f"--{name} must be a positive number of tokens, got {getattr(data_args, name)}")
    for name in ("max_train_samples", "max_eval_samples", "max_predict_samples", "num_beams"):
        if getattr(data_args, name) is not None and getattr(data_args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(data_args, name)} (leave it out for all)")
    if training_args.do_train and training_args.max_steps <= 0 and int(training_args.num_train_epochs) < 1:
        raise UsageError(
            f"--num_train_epochs {training_args.num_train_epochs}: Keras trains whole epochs; pass 1 or more "
            "(or --max_steps)"
        )
    schedule = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)  # an enum
    if schedule not in LR_SCHEDULES:
        raise UsageError(
            f"--lr_scheduler_type {schedule}: the Keras optimizer supports "
            f"{' and '.join(LR_SCHEDULES)} (with warmup); pass one of them"
        )
    if (training_args.do_eval or training_args.do_predict) and not training_args.predict_with_generate:
        logger.warning("with --predict_with_generate False, eval/predict report only the loss, no generation metrics")
    if training_args.push_to_hub and is_offline_mode():
        raise UsageError(
            "--push_to_hub needs the network, but HF_HUB_OFFLINE=1 is set; unset it or drop --push_to_hub"
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


# Copied from examples.pytorch.summarization.run_summarization.validate_args
def validate_args(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: SummarizationTrainingArguments
) -> str | None:
    """Check every flag and input file before anything is loaded; return a checkpoint to resume from, or None.

    Raises UsageError with the flag, the problem and the fix.
    """
    if data_args.dataset_name is None and not (
        data_args.train_file or data_args.validation_file or data_args.test_file
    ):
        raise UsageError("no data: pass --dataset_name, or --train_file/--validation_file/--test_file")
    for split, flag in DATA_FILE_FLAGS.items():
        path = getattr(data_args, f"{split}_file")
        if path is not None:
            check_data_file(flag, path)
    for action, split in (("do_train", "train"), ("do_eval", "validation"), ("do_predict", "test")):
        if (
            getattr(training_args, action)
            and data_args.dataset_name is None
            and not getattr(data_args, f"{split}_file")
        ):
            raise UsageError(f"--{action} needs data: pass {DATA_FILE_FLAGS[split]} (or --dataset_name)")
    check_trainer_run_args(model_args, data_args, training_args)
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


# Copied from examples.pytorch.summarization.run_summarization.load_raw_datasets
def load_raw_datasets(model_args: ModelArguments, data_args: DataTrainingArguments) -> DatasetDict:
    """Load the Hub dataset, or the local files (each split read by its own extension)."""
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


# Copied from examples.pytorch.summarization.run_summarization.resolve_columns
def resolve_columns(raw_datasets: DatasetDict, splits: list[str], data_args: DataTrainingArguments) -> tuple[str, str]:
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
    return text_column, summary_column


# Copied from examples.pytorch.summarization.run_summarization.first_reference
def first_reference(summary: str | list[str] | None) -> str:
    """The training target of an example: the summary, or the first of several references."""
    if isinstance(summary, list):
        return summary[0] if summary else ""
    return summary or ""


# Copied from examples.pytorch.summarization.run_summarization.drop_empty_examples
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


# Copied from examples.pytorch.summarization.run_summarization.set_up_language_codes
def set_up_language_codes(model, tokenizer, data_args: DataTrainingArguments) -> None:
    """For mBART-family tokenizers: set the language on the tokenizer and the decoder start / forced BOS ids."""
    if not isinstance(tokenizer, MULTILINGUAL_TOKENIZERS):
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
        # transformers 5 keeps generation settings in the generation config only (save_pretrained refuses them
        # in the model config).
        model.generation_config.forced_bos_token_id = forced_id


def fit_position_embeddings(model, data_args: DataTrainingArguments) -> None:
    """Lower --max_source_length to the model's number of position embeddings (TF models cannot resize them)."""
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions is not None and max_positions < data_args.max_source_length:
        logger.warning(
            f"--max_source_length {data_args.max_source_length} lowered to {max_positions}, the number of position "
            f"embeddings of this {model.config.model_type} model (TensorFlow models cannot resize them)"
        )
        data_args.max_source_length = max_positions


def load_model_and_tokenizer(model_args: ModelArguments):
    """Load config, tokenizer and TF model; a folder or Hub id that cannot be loaded raises UsageError."""
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
        model = TFAutoModelForSeq2SeqLM.from_pretrained(source, config=config, **common)
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
            "(encoder-decoder) model with TensorFlow weights; use e.g. a T5, BART, mBART, Pegasus or Marian checkpoint"
        ) from error
    # A tokenizer with added tokens needs matching embedding rows (the embedding layer names its matrix
    # `embeddings` in Keras and `weight` in transformers' shared embeddings).
    embedding = model.get_input_embeddings()
    rows = (embedding.embeddings if hasattr(embedding, "embeddings") else embedding.weight).shape[0]
    if len(tokenizer) > rows:
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


# Copied from examples.pytorch.summarization.run_summarization.split_sentences
def split_sentences(text: str) -> str:
    """One sentence per line: rougeLsum scores summary-level LCS over these lines (NLTK punkt, English)."""
    return "\n".join(nltk.sent_tokenize(text.strip()))


# Copied from examples.pytorch.summarization.run_summarization.check_sentence_splitter
def check_sentence_splitter() -> None:
    """Fail before training, not after it, when NLTK's offline `punkt_tab` data is missing."""
    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError as error:
        raise UsageError(
            "NLTK data 'punkt_tab' (sentence splitter for rougeLsum) is missing: run "
            "`python utils/install_nltk_data.py` from this repo (offline), or `python -m nltk.downloader punkt_tab`"
        ) from error


# Copied from examples.pytorch.summarization.run_summarization.compute_rouge
def compute_rouge(predictions: list[str], references: list[str | list[str]]) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum F1 x 100, mean over examples, rounded to 4 places (rouge_score, Porter stemmer).

    Texts are split into one sentence per line first (this only changes rougeLsum). An example with
    several references gets the best score over them, per ROUGE type.
    """
    rouge_types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(rouge_types, use_stemmer=True)
    totals = dict.fromkeys(rouge_types, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        candidates = [reference] if isinstance(reference, str) else list(reference)
        candidates = [split_sentences(candidate) for candidate in candidates]
        scores = scorer.score_multi(candidates, split_sentences(prediction))
        for rouge_type in rouge_types:
            totals[rouge_type] += scores[rouge_type].fmeasure
    return {key: round(100 * total / max(len(predictions), 1), 4) for key, total in totals.items()}


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


def make_metric_fn(tokenizer, references: list[str | list[str]], max_length: int):
    """`metric_fn` for KerasMetricCallback: ROUGE of the generated texts against the untruncated references.

    Upstream's callback read `result.mid.fmeasure` from the `evaluate` rouge metric, an attribute that no
    longer exists (it returns plain floats); this one calls the same `compute_rouge` as the eval stage.
    """

    def metric_fn(eval_predictions) -> dict[str, float]:
        generated, _labels = eval_predictions
        predictions, gen_len = decode_predictions(tokenizer, generated, len(references), max_length)
        scores = compute_rouge(predictions, references)
        return {**{f"eval_{key}": value for key, value in scores.items()}, "eval_gen_len": gen_len}

    return metric_fn


def make_generate_function(model, generate_kwargs: dict, use_xla: bool):
    """Return `generate(input_ids, attention_mask)`: XLA-compiled (one compilation per input shape) or eager.

    XLA generation cannot ban repeated n-grams, so a model whose generation config sets `no_repeat_ngram_size`
    (BART-large-CNN: 3) generates without it under XLA, with a warning; `generate_kwargs` is updated to match.
    """
    banned_ngrams = generate_kwargs.get("no_repeat_ngram_size", model.generation_config.no_repeat_ngram_size)
    if use_xla and banned_ngrams:
        logger.warning(
            f"no_repeat_ngram_size={banned_ngrams} (from the model's generation config) does not work with XLA "
            "generation and is turned off; pass --use_xla_generation False to keep it"
        )
        generate_kwargs["no_repeat_ngram_size"] = 0

    def generate(input_ids, attention_mask):
        return model.generate(input_ids, attention_mask=attention_mask, **generate_kwargs)

    return tf.function(generate, jit_compile=True) if use_xla else generate


def generate_token_ids(generate, tf_dataset: tf.data.Dataset, pad_token_id: int) -> np.ndarray:
    """Run `generate` over every batch of `tf_dataset` (in order); return the ids, right-padded to one length."""
    batches = []
    for batch in tf_dataset:
        inputs = batch[0] if isinstance(batch, tuple) else batch
        batches.append(np.asarray(generate(inputs["input_ids"], attention_mask=inputs["attention_mask"])))
    if not batches:
        return np.zeros((0, 1), dtype=np.int64)
    width = max(ids.shape[1] for ids in batches)
    return np.concatenate(
        [np.pad(ids, ((0, 0), (0, width - ids.shape[1])), constant_values=pad_token_id) for ids in batches]
    )


# Copied from examples.pytorch.summarization.run_summarization.write_predictions
def write_predictions(path: str, predictions: list[str]) -> None:
    """One prediction per line, in input order, newline-terminated; written to a temp file then renamed."""
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        handle.writelines(f"{prediction}\n" for prediction in predictions)
    os.replace(f"{path}.tmp", path)


def epoch_order(num_examples: int, batch_size: int, seed: int, first_epoch: int, num_epochs: int) -> list[int]:
    """Example indices for epochs first_epoch..num_epochs-1, each a permutation drawn from `seed + epoch`, cut to
    whole batches. Seeding by epoch number makes a resumed run see exactly the order the uninterrupted one saw."""
    per_epoch = (num_examples // batch_size) * batch_size
    order = []
    for epoch in range(first_epoch, num_epochs):
        order.extend(np.random.default_rng(seed + epoch).permutation(num_examples)[:per_epoch].tolist())
    return order


def mean_train_loss(log_history: list[dict]) -> float:
    """The mean loss over all optimization steps (each epoch's mean weighted by its steps), as the Trainer logs."""
    total, previous_step = 0.0, 0
    for entry in log_history:
        total += entry["loss"] * (entry["step"] - previous_step)
        previous_step = entry["step"]
    return round(total / max(previous_step, 1), 6)


class EpochCheckpoint(tf_keras.callbacks.Callback):
    """At the end of each epoch: append the epoch's losses and metrics to `log_history`, and (when `save`) write
    `checkpoint-<step>/` with the Keras weights and optimizer state, then `trainer_state.json` last, so a folder
    with a readable trainer_state.json is complete. `--save_total_limit` keeps only the newest folders."""

    def __init__(self, output_dir: str, checkpoint: tf.train.Checkpoint, log_history: list, save: bool, limit):
        super().__init__()
        self.output_dir, self.checkpoint, self.log_history = output_dir, checkpoint, log_history
        self.save, self.limit = save, limit

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        entry = {"epoch": epoch + 1, "step": step}
        for key, value in (logs or {}).items():
            name = "eval_loss" if key == "val_loss" else key
            entry[name] = round(float(value), 6) if name.endswith("loss") else value
        self.log_history.append(entry)
        logger.info(f"epoch {epoch + 1}: {entry}")
        if not self.save:
            return
        folder = os.path.join(self.output_dir, f"checkpoint-{step}")
        os.makedirs(folder, exist_ok=True)
        self.checkpoint.write(os.path.join(folder, CHECKPOINT_PREFIX))
        state = {"global_step": step, "epoch": epoch + 1, "log_history": self.log_history}
        write_json_atomically(os.path.join(folder, "trainer_state.json"), state)
        if self.limit:
            steps = sorted(
                int(match.group(1))
                for name in os.listdir(self.output_dir)
                if (match := re.fullmatch(r"checkpoint-(\d+)", name))
            )
            for old in steps[: -self.limit]:
                shutil.rmtree(os.path.join(self.output_dir, f"checkpoint-{old}"))


class StopAtStep(tf_keras.callbacks.Callback):
    """Stop training after `max_steps` optimizer steps (--max_steps), mid-epoch if need be."""

    def __init__(self, max_steps: int):
        super().__init__()
        self.max_steps = max_steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.max_steps:
            self.model.stop_training = True


def build_optimizer(training_args: SummarizationTrainingArguments, total_steps: int):
    """transformers' AdamW-style Keras optimizer with linear warmup, then linear (or, for
    --lr_scheduler_type constant, no) decay to 0 over `total_steps`; clipped by --max_grad_norm."""
    warmup_steps = training_args.warmup_steps or math.ceil(total_steps * training_args.warmup_ratio)
    optimizer, _ = create_optimizer(
        init_lr=training_args.learning_rate,
        num_train_steps=total_steps,
        num_warmup_steps=warmup_steps,
        adam_beta1=training_args.adam_beta1,
        adam_beta2=training_args.adam_beta2,
        adam_epsilon=training_args.adam_epsilon,
        weight_decay_rate=training_args.weight_decay,
        adam_global_clipnorm=training_args.max_grad_norm,
        # A polynomial decay of power 0 keeps the rate constant after the warmup.
        power=0.0 if training_args.lr_scheduler_type == "constant" else training_args.poly_power,
    )
    return optimizer, warmup_steps


def train_model(
    model, train_dataset, data_collator, tf_eval_dataset, callbacks: list, training_args, checkpoint_dir
) -> dict:
    """Compile and `fit` the model over whole epochs (resuming from `checkpoint_dir`, if given), with a checkpoint
    and a log_history entry per epoch; write trainer_state.json and return the train metrics.

    Raises UsageError when the batch is larger than the training set.
    """
    strategy = training_args.strategy
    batch_size = training_args.per_device_train_batch_size * strategy.num_replicas_in_sync
    steps_per_epoch = len(train_dataset) // batch_size
    if steps_per_epoch == 0:
        raise UsageError(
            f"--per_device_train_batch_size {training_args.per_device_train_batch_size} x "
            f"{strategy.num_replicas_in_sync} replicas is more than the {len(train_dataset)} training examples; "
            "pass a smaller batch size"
        )
    if training_args.max_steps > 0:
        total_steps = training_args.max_steps
        num_epochs = math.ceil(total_steps / steps_per_epoch)
        callbacks = [*callbacks, StopAtStep(total_steps)]
    else:
        num_epochs = int(training_args.num_train_epochs)
        total_steps = steps_per_epoch * num_epochs
    with strategy.scope():
        optimizer, warmup_steps = build_optimizer(training_args, total_steps)
        # No loss argument: the model computes its own (masked) loss from the labels in the batch.
        model.compile(optimizer=optimizer, jit_compile=training_args.xla)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    first_epoch, log_history = 0, []
    if checkpoint_dir is not None:
        # Slot variables that Adam creates on its first step are restored then (deferred restoration).
        checkpoint.read(os.path.join(checkpoint_dir, CHECKPOINT_PREFIX)).expect_partial()
        with open(os.path.join(checkpoint_dir, "trainer_state.json"), encoding="utf-8") as handle:
            state = json.load(handle)
        first_epoch, log_history = state["epoch"], state["log_history"]
        logger.info(f"restored {checkpoint_dir}: epoch {first_epoch}, step {int(optimizer.iterations.numpy())}")
    order = epoch_order(len(train_dataset), batch_size, training_args.seed, first_epoch, num_epochs)
    tf_train_dataset = model.prepare_tf_dataset(
        train_dataset.select(order),
        collate_fn=data_collator,
        batch_size=batch_size,
        shuffle=False,  # shuffled per epoch by epoch_order, reproducibly across a resume
        drop_remainder=True,
    )
    logger.info(
        f"***** Running training: {len(train_dataset)} examples, {num_epochs} epochs of {steps_per_epoch} steps, "
        f"batch size {batch_size}, {total_steps} optimization steps, {warmup_steps} warmup *****"
    )
    save, limit = training_args.save_strategy != "no", training_args.save_total_limit
    callbacks.append(EpochCheckpoint(training_args.output_dir, checkpoint, log_history, save, limit))
    start = time.perf_counter()
    if first_epoch < num_epochs:
        model.fit(
            tf_train_dataset,
            validation_data=tf_eval_dataset,
            epochs=num_epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=2,
        )
    step = int(optimizer.iterations.numpy())
    epoch = log_history[-1]["epoch"] if log_history else 0
    os.makedirs(training_args.output_dir, exist_ok=True)
    state = {"global_step": step, "epoch": epoch, "log_history": log_history}
    write_json_atomically(os.path.join(training_args.output_dir, "trainer_state.json"), state)
    return {
        "train_loss": mean_train_loss(log_history),
        "train_runtime": round(time.perf_counter() - start, 4),
        "train_samples": len(train_dataset),
        "train_steps": step,
        "epoch": round(step / steps_per_epoch, 4),  # fractional after a --max_steps stop, as the Trainer reports
    }


def loss_and_generated_ids(
    model, tf_dataset, generate, with_loss: bool, pad_token_id: int
) -> tuple[dict, np.ndarray | None]:
    """The mean loss over `tf_dataset` (`{"loss": ...}`, when it has labels) and the ids `generate` produces for it
    (None without `generate`), in input order."""
    metrics, token_ids = {}, None
    if with_loss:
        metrics["loss"] = round(float(model.evaluate(tf_dataset, verbose=0, return_dict=True)["loss"]), 6)
    if generate is not None:
        start = time.perf_counter()
        # Under the strategy scope, as fit() runs the metric callback: the same tracing context, so the XLA
        # function compiled during training is reused instead of compiled again.
        with model.distribute_strategy.scope():
            token_ids = generate_token_ids(generate, tf_dataset, pad_token_id)
        # The first batch of each input shape pays for an XLA compilation; say so, as it can take a while.
        logger.info(f"generated {len(token_ids)} sequences in {time.perf_counter() - start:.1f}s")
    return metrics, token_ids


def main() -> None:
    # Parse and validate every argument before loading anything.
    model_args, data_args, training_args = parse_args()
    setup_logging(training_args)
    last_checkpoint = validate_args(model_args, data_args, training_args)
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        logger.info("There is nothing to do: pass --do_train, --do_eval and/or --do_predict.")
        return
    if training_args.predict_with_generate and (training_args.do_eval or training_args.do_predict):
        check_sentence_splitter()
    strategy = training_args.strategy
    logger.warning(
        f"TensorFlow {tf.__version__}, strategy: {type(strategy).__name__}, replicas: {strategy.num_replicas_in_sync}, "
        f"XLA training: {training_args.xla}, XLA generation: {training_args.use_xla_generation}"
    )
    logger.info(f"Training/evaluation parameters {training_args}")
    if training_args.overwrite_output_dir:
        remove_previous_run(training_args.output_dir)
    checkpoint_dir = training_args.resume_from_checkpoint or last_checkpoint
    if last_checkpoint is not None:
        logger.info(f"Resuming training from {last_checkpoint}, found in --output_dir (a run that was interrupted)")

    # Seed before the model is created so its initialisation (and the data order) is reproducible.
    set_seed(training_args.seed)

    # Load the data and check its columns.
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
    text_column, summary_column = resolve_columns(raw_datasets, splits, data_args)

    # Load the model and tokenizer (inside the strategy scope, so the weights live on every replica).
    with strategy.scope():
        config, tokenizer, model = load_model_and_tokenizer(model_args)
    set_up_language_codes(model, tokenizer, data_args)
    if model.config.decoder_start_token_id is None:
        raise UsageError(
            f"the model config has no decoder_start_token_id; set it in {model_args.model_name_or_path}/config.json"
        )
    fit_position_embeddings(model, data_args)
    if config.model_type == "t5" and not data_args.source_prefix:
        logger.warning("T5 models were trained with task prefixes: pass --source_prefix 'summarize: '")

    # Tokenize.
    prefix = data_args.source_prefix
    padding = "max_length" if data_args.pad_to_max_length else False

    def preprocess_function(examples, max_target_length: int):
        inputs = [prefix + (text or "") for text in examples[text_column]]
        model_inputs = tokenizer(inputs, max_length=data_args.max_source_length, padding=padding, truncation=True)
        model_inputs.pop("token_type_ids", None)  # TF generate() rejects them; seq2seq models do not use them
        if summary_column not in examples:
            return model_inputs
        targets = [first_reference(summary) for summary in examples[summary_column]]
        labels = tokenizer(text_target=targets, max_length=max_target_length, padding=padding, truncation=True)
        if padding == "max_length" and data_args.ignore_pad_token_for_loss:
            labels["input_ids"] = [
                [(token if token != tokenizer.pad_token_id else -100) for token in label]
                for label in labels["input_ids"]
            ]
        model_inputs["labels"] = labels["input_ids"]
        # Targets are short, so tokenizing them a second time untruncated is cheap; it counts cut references.
        full_lengths = [len(ids) for ids in tokenizer(text_target=targets)["input_ids"]]
        model_inputs["label_truncated"] = [length > max_target_length for length in full_lengths]
        return model_inputs

    def tokenize(split: str, max_samples: int | None, max_target_length: int):
        dataset = raw_datasets[split]
        if split != "test":
            dataset = drop_empty_examples(dataset, text_column, summary_column, split)
            if len(dataset) == 0:
                raise UsageError(f"the {split} split ({DATA_FILE_FLAGS[split]}) has no non-empty examples")
        if max_samples is not None:
            dataset = dataset.select(range(min(max_samples, len(dataset))))
        # Metrics need the untruncated references of eval/test sets (small); training needs none.
        has_references = split != "train" and summary_column in dataset.column_names
        references = dataset[summary_column] if has_references else None
        tokenized = dataset.map(
            preprocess_function,
            fn_kwargs={"max_target_length": max_target_length},
            batched=True,
            num_proc=data_args.preprocessing_num_workers,
            remove_columns=dataset.column_names,
            load_from_cache_file=not data_args.overwrite_cache,
            desc=f"Running tokenizer on {split} dataset",
        )
        if "label_truncated" in tokenized.column_names:
            truncated = sum(tokenized["label_truncated"])
            tokenized = tokenized.remove_columns("label_truncated")
            if truncated:
                logger.warning(
                    f"{truncated} of {len(tokenized)} {split} summaries are longer than {max_target_length} tokens "
                    "and were truncated for the loss; ROUGE is scored against the full reference text"
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
            logger.warning(f"no '{summary_column}' column in the test data: predictions are written but not scored")

    # Data collator: pads each batch to a multiple of 128 tokens (few shapes for XLA), labels with -100 so that
    # padding adds no loss; the model builds decoder inputs from the labels.
    label_pad_token_id = -100 if data_args.ignore_pad_token_for_loss else tokenizer.pad_token_id
    if data_args.pad_to_max_length:
        data_collator = DefaultDataCollator(return_tensors="np")
    else:
        data_collator = DataCollatorForSeq2SeqAllowingNoLabels(
            tokenizer,
            model=model,
            label_pad_token_id=label_pad_token_id,
            pad_to_multiple_of=PAD_TO_MULTIPLE_OF,
            return_tensors="np",
        )
    num_replicas = strategy.num_replicas_in_sync

    def to_tf_dataset(dataset, batch_size: int) -> tf.data.Dataset:
        # In order, every example kept; auto-sharding off, as the batches are already per step.
        tf_dataset = model.prepare_tf_dataset(
            dataset, collate_fn=data_collator, batch_size=batch_size, shuffle=False, drop_remainder=False
        )
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return tf_dataset.with_options(options)

    eval_batch_size = training_args.per_device_eval_batch_size * num_replicas
    tf_eval_dataset = to_tf_dataset(eval_dataset, eval_batch_size) if eval_dataset is not None else None

    # Generation settings for eval/predict: lengths and beams from our flags unless given explicitly.
    if training_args.generation_max_length is None:
        training_args.generation_max_length = data_args.val_max_target_length
    num_beams = data_args.num_beams or training_args.generation_num_beams
    generate_kwargs = {"max_length": training_args.generation_max_length}
    if num_beams is not None:
        generate_kwargs["num_beams"] = num_beams
    generate = make_generate_function(model, generate_kwargs, training_args.use_xla_generation)

    # Train: one fit() over whole epochs; each epoch ends with eval metrics (when --do_eval) and a checkpoint.
    if training_args.do_train:
        callbacks = []
        if tf_eval_dataset is not None and training_args.predict_with_generate:
            metric_callback = KerasMetricCallback(
                metric_fn=make_metric_fn(tokenizer, eval_references, training_args.generation_max_length),
                eval_dataset=tf_eval_dataset,
                predict_with_generate=True,
                use_xla_generation=training_args.use_xla_generation,
                generate_kwargs=generate_kwargs,
            )
            # The callback compiles its own XLA function only while this is None: share ours, compile once.
            metric_callback.generation_function = generate if training_args.use_xla_generation else None
            callbacks.append(metric_callback)
        if training_args.push_to_hub:
            callbacks.append(
                PushToHubCallback(
                    output_dir=training_args.output_dir,
                    hub_model_id=training_args.hub_model_id,
                    hub_token=training_args.hub_token or model_args.token,
                    tokenizer=tokenizer,
                    model_name=os.path.basename(training_args.output_dir.rstrip("/")),
                    tasks="summarization",
                    finetuned_from=model_args.model_name_or_path,
                )
            )
        metrics = train_model(
            model, train_dataset, data_collator, tf_eval_dataset, callbacks, training_args, checkpoint_dir
        )
        model.save_pretrained(training_args.output_dir)
        tokenizer.save_pretrained(training_args.output_dir)
        log_metrics("train", metrics)
        save_results(training_args.output_dir, "train", metrics)
    else:
        with strategy.scope():
            model.compile(optimizer="sgd", jit_compile=training_args.xla)  # only evaluate() and generate() follow

    # Evaluate and predict: the loss (when there are labels), then generated texts scored with ROUGE.
    def run_stage(split: str, dataset, tf_dataset, references) -> list[str] | None:
        logger.info(f"*** {split.capitalize()} ***")
        start = time.perf_counter()
        use_generate = generate if training_args.predict_with_generate else None
        metrics, token_ids = loss_and_generated_ids(
            model, tf_dataset, use_generate, references is not None, tokenizer.pad_token_id
        )
        metrics = {f"{split}_{key}": value for key, value in metrics.items()}
        predictions = None
        if token_ids is not None:
            predictions, gen_len = decode_predictions(
                tokenizer, token_ids, len(dataset), training_args.generation_max_length
            )
            if references is not None:
                metrics.update(
                    {f"{split}_{key}": value for key, value in compute_rouge(predictions, references).items()}
                )
            metrics[f"{split}_gen_len"] = gen_len
        metrics[f"{split}_runtime"] = round(time.perf_counter() - start, 4)
        metrics[f"{split}_samples"] = len(dataset)
        log_metrics(split, metrics)
        save_results(training_args.output_dir, split, metrics)
        return predictions

    os.makedirs(training_args.output_dir, exist_ok=True)
    if training_args.do_eval:
        run_stage("eval", eval_dataset, tf_eval_dataset, eval_references)
    if training_args.do_predict:
        tf_predict_dataset = to_tf_dataset(predict_dataset, eval_batch_size)
        predictions = run_stage("predict", predict_dataset, tf_predict_dataset, predict_references)
        if predictions is not None:
            write_predictions(os.path.join(training_args.output_dir, "generated_predictions.txt"), predictions)

    written = sorted(os.listdir(training_args.output_dir))
    logger.info(f"Outputs in {os.path.abspath(training_args.output_dir)}: {', '.join(written)}")


# Copied from examples.pytorch.summarization.run_summarization.cli
def cli() -> None:
    """Entry point: a UsageError becomes `error: <message>` on stderr and exit code 2; anything else is a bug."""
    try:
        main()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
