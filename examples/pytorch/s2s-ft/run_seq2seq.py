#!/usr/bin/env python
"""Fine-tune a BERT-like encoder (BERT, RoBERTa, XLM-R, ELECTRA, MiniLM) as a sequence-to-sequence generator.

Source and target are packed in one sequence and trained with s2s-ft's attention masks, in one of three modes
(`--finetuning_mode`, upstream `--mask_way`): `causal` (v0, predict the next target token), `masked` (v1,
predict corrupted target tokens in place) or `pseudo_masked` (v2, default: every target token is predicted by a
pseudo `[MASK]` twin at its position). Data: JSON lines `{"src": ..., "tgt": ...}` (text, or lists of tokens),
or CSV/TSV with those columns. Built on the `Trainer`: checkpoints, resume, multi-process and logging work as in
the project's other scripts. Decode the result with `decode_seq2seq.py`.

One process, on the tiny offline demo model and the shipped sample data:

    python examples/pytorch/s2s-ft/run_seq2seq.py \
        --model_type bert --model_name_or_path .cache/tiny-models/bert \
        --train_file tests/fixtures/s2s_ft/copy/train.jsonl --finetuning_mode pseudo_masked \
        --max_source_seq_length 48 --max_target_seq_length 32 --per_device_train_batch_size 16 \
        --learning_rate 1e-3 --warmup_steps 20 --max_steps 200 --output_dir outputs/s2s-ft-copy

Several GPUs (or two CPU processes): the same arguments after `torchrun --nproc_per_node 2` or
`accelerate launch --num_processes 2`. All arguments can also come from one `.json`/`.yaml` file.
"""

import logging
import os
import sys
from dataclasses import dataclass, field

import datasets
import transformers
from s2s_ft.data import (
    Seq2SeqCollator,
    Seq2SeqTrainingDataset,
    check_data_file,
    length_histogram,
    read_records,
    special_ids,
    tokenize_texts,
)
from s2s_ft.masks import MASK_WAY_TO_MODE, MODES, Corruption
from s2s_ft.modeling import (
    MODEL_TYPES,
    check_encoder_checkpoint,
    check_tokenizer_folder,
    extend_position_embeddings,
    load_s2s_model,
)
from safetensors import SafetensorError
from transformers import AutoTokenizer, HfArgumentParser, Trainer, TrainingArguments, set_seed

from seq2seq_checks import (
    UsageError,
    check_different,
    check_flag_values,
    check_integrations,
    check_model_reachable,
    check_output_dir,
    checkpoint_problem,
    last_complete_checkpoint,
    parse_args_or_file,
    remove_previous_run,
    run_cli,
    save_results,
    save_run_arguments,
    save_trainer_state,
    set_sibling_log_level,
)

logger = logging.getLogger(__name__)

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
LOG_LEVELS["critical"] = logging.CRITICAL

# Files a finished (or partly finished) run of this script leaves in --output_dir: their presence means "results
# here" (for check_output_dir and remove_previous_run; fewer than the summarization scripts', which also evaluate).
RESULT_FILES = ("all_results.json", "train_results.json", "trainer_state.json")


@dataclass
class ModelArguments:
    """Which encoder to start from, and how to load it."""

    model_type: str = field(
        metadata={"help": f"How to read the checkpoint: {', '.join(MODEL_TYPES)} (minilm = any BERT layout)."}
    )
    model_name_or_path: str = field(
        metadata={"help": "Local folder saved with `save_pretrained`, or a Hub model id (needs network)."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer name or path, if not the same as --model_name_or_path."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store models downloaded from the Hub."})
    hidden_dropout_prob: float | None = field(
        default=None, metadata={"help": "Dropout on hidden states (default: the checkpoint's, 0.1 for BERT)."}
    )
    attention_probs_dropout_prob: float | None = field(
        default=None, metadata={"help": "Dropout on attention weights (default: the checkpoint's)."}
    )
    fix_word_embedding: bool = field(
        default=False,
        metadata={"help": "Freeze the word embeddings (and so the tied output projection of the LM head)."},
    )


@dataclass
class DataTrainingArguments:
    """What to train on, how sequences are cut, and the fine-tuning mode and its noise."""

    train_file: str | None = field(
        default=None, metadata={"help": "Training data: .jsonl/.json lines {'src','tgt'}, or .csv/.tsv."}
    )
    source_column: str = field(default="src", metadata={"help": "Key/column of the source (text or token list)."})
    target_column: str = field(default="tgt", metadata={"help": "Key/column of the target (text or token list)."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training examples (quick runs, debugging)."}
    )
    max_source_seq_length: int = field(
        default=464,
        metadata={"help": "Source tokens, special tokens included; longer sources lose their end (Ls, spec §3)."},
    )
    max_target_seq_length: int = field(
        default=48,
        metadata={"help": "Target tokens, the end/start [SEP] included; longer targets lose their end (Lt)."},
    )
    finetuning_mode: str | None = field(
        default=None,
        metadata={
            "help": "causal (next-token, GPT-style), masked (UniLM v1 style) or pseudo_masked (UniLM v2 style); "
            "default pseudo_masked."
        },
    )
    mask_way: str | None = field(
        default=None, metadata={"help": "Upstream name of --finetuning_mode: v0 causal, v1 masked, v2 pseudo_masked."}
    )
    target_mask_prob: float | None = field(
        default=None,
        metadata={
            "help": "Share of target tokens corrupted (spec §6). Default 0.5 for masked/pseudo_masked (the paper "
            "uses 0.4-0.7; 0.4-0.5 for XSum, 0.7-0.8 for CNN/DM) and 0 for causal, where it is word dropout."
        },
    )
    source_mask_prob: float = field(default=0.0, metadata={"help": "Share of source tokens corrupted (no loss)."})
    keep_prob: float = field(default=0.1, metadata={"help": "Chance that a corrupted token keeps its value."})
    random_prob: float = field(default=0.1, metadata={"help": "Chance that a corrupted token becomes a random one."})
    num_max_mask_token: int | None = field(
        default=None,
        metadata={"help": "masked mode: at most this many target tokens corrupted per example (default: Lt)."},
    )
    label_smoothing: float = field(default=0.1, metadata={"help": "Label smoothing (0 = plain cross-entropy)."})

    def __post_init__(self):
        if self.mask_way is not None and self.mask_way not in MASK_WAY_TO_MODE:
            raise UsageError(f"--mask_way must be one of v0, v1, v2, got '{self.mask_way}'")
        from_mask_way = MASK_WAY_TO_MODE.get(self.mask_way)
        if self.finetuning_mode and from_mask_way and self.finetuning_mode != from_mask_way:
            raise UsageError(
                f"--mask_way {self.mask_way} means {from_mask_way}, but --finetuning_mode is {self.finetuning_mode}; "
                "pass only one of them"
            )
        self.finetuning_mode = self.finetuning_mode or from_mask_way or "pseudo_masked"
        if self.target_mask_prob is None:
            self.target_mask_prob = 0.0 if self.finetuning_mode == "causal" else 0.5
        if self.num_max_mask_token is None:
            self.num_max_mask_token = self.max_target_seq_length


@dataclass
class S2SFTTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the paper's optimiser settings as defaults (Adam eps 1e-6, weight decay 0.01,
    1000 warm-up steps), the output-directory guard, and a true logged loss under multi-process training."""

    adam_epsilon: float = field(default=1e-6, metadata={"help": "Adam epsilon (paper: 1e-6; upstream code 1e-8)."})
    weight_decay: float = field(
        default=0.01, metadata={"help": "AdamW weight decay (paper and upstream: 0.01; not on biases/LayerNorm)."}
    )
    warmup_steps: float = field(
        default=1000,
        metadata={"help": "Linear warm-up steps (paper: 1000; lower it for short runs), or a ratio when < 1."},
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept off: the collator builds the model inputs from the whole example."}
    )
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


# Copied from examples.pytorch.summarization.seq2seq_setup.setup_logging
def setup_logging(training_args) -> None:
    """HF's log format on stdout. On the main process our own lines (the script and its sibling modules) at info
    and the libraries' at warning: their info lines are config dumps, cache notices and adverts. --log_level
    info/debug lets the libraries speak too; other processes log warnings (--log_level_replica)."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    requested = training_args.log_level if training_args.should_log else training_args.log_level_replica
    if requested in LOG_LEVELS:
        ours = libraries = LOG_LEVELS[requested]
    else:  # "passive": our defaults
        ours, libraries = (logging.INFO, logging.WARNING) if training_args.should_log else (logging.WARNING,) * 2
    set_sibling_log_level(ours)
    datasets.utils.logging.set_verbosity(libraries)
    transformers.utils.logging.set_verbosity(libraries)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    # datasets and (with CI=true in the environment) transformers also pass their records to the root handler:
    # each line twice.
    transformers.utils.logging.disable_propagation()
    datasets.utils.logging.disable_propagation()


def check_probabilities(data_args: DataTrainingArguments) -> None:
    """Raise UsageError for a mode, probability or length out of range."""
    if data_args.finetuning_mode not in MODES:
        raise UsageError(f"--finetuning_mode must be one of {', '.join(MODES)}, got '{data_args.finetuning_mode}'")
    for name in ("target_mask_prob", "source_mask_prob", "keep_prob", "random_prob", "label_smoothing"):
        value = getattr(data_args, name)
        closed = name.endswith("mask_prob")  # corrupting every token is allowed; a keep/random/smoothing of 1 is not
        if not (0 <= value <= 1 if closed else 0 <= value < 1):
            raise UsageError(f"--{name} must be in [0, 1{']' if closed else ')'}, got {value}")
    if data_args.keep_prob + data_args.random_prob > 1:
        raise UsageError(
            f"--keep_prob {data_args.keep_prob} + --random_prob {data_args.random_prob} exceed 1; lower one of them"
        )
    for name in ("max_source_seq_length", "max_target_seq_length"):
        if getattr(data_args, name) < 2:
            raise UsageError(
                f"--{name} must be at least 2 (a special token plus one token), got {getattr(data_args, name)}"
            )
    if data_args.num_max_mask_token < 1:
        raise UsageError(
            f"--num_max_mask_token must be at least 1, got {data_args.num_max_mask_token} (upstream's 0 crashes "
            "masked mode); leave it out for --max_target_seq_length"
        )
    if data_args.max_train_samples is not None and data_args.max_train_samples < 1:
        raise UsageError(f"--max_train_samples must be at least 1, got {data_args.max_train_samples}")


def validate_args(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: S2SFTTrainingArguments
) -> None:
    """Check every flag, input file and model folder before anything is loaded (the data rows are checked as they
    are read, the --output_dir by `check_output_dir`)."""
    if model_args.model_type not in MODEL_TYPES:
        raise UsageError(f"--model_type must be one of {', '.join(MODEL_TYPES)}, got '{model_args.model_type}'")
    if not training_args.do_train:
        training_args.do_train = True  # this script only trains; decode with decode_seq2seq.py
    if data_args.train_file is None:
        raise UsageError("no data: pass --train_file (JSON lines with 'src' and 'tgt')")
    check_flag_values(model_args, data_args, training_args)
    check_probabilities(data_args)
    check_different(
        "--source_column",
        data_args.source_column,
        "--target_column",
        data_args.target_column,
        "a model that copies its input learns nothing",
    )
    check_integrations("--report_to", training_args.report_to)
    check_data_file("--train_file", data_args.train_file)
    check_encoder_checkpoint("--model_name_or_path", model_args.model_name_or_path, model_args.model_type)
    check_model_reachable("--model_name_or_path", model_args.model_name_or_path)
    check_model_reachable("--tokenizer_name", model_args.tokenizer_name)
    if model_args.tokenizer_name is None:
        check_tokenizer_folder("--model_name_or_path", model_args.model_name_or_path)
    else:
        check_tokenizer_folder("--tokenizer_name", model_args.tokenizer_name, "another --tokenizer_name")
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and training_args.world_size == 1:
        raise UsageError(
            f"launched as {launched} processes (WORLD_SIZE={launched}), but they are not connected: each would "
            "train alone and write the same --output_dir; without GPUs, pass --use_cpu"
        )
    check_resume_checkpoint(training_args)


def check_resume_checkpoint(training_args: S2SFTTrainingArguments) -> None:
    """Resolve --resume_from_checkpoint true/last to the last complete checkpoint; refuse a folder a resume cannot
    load (missing, or without one of the files the Trainer reads: weights, optimizer, scheduler, RNG, state)."""
    resume = training_args.resume_from_checkpoint
    if resume is None:
        return
    if resume.lower() in ("true", "last"):
        found = last_complete_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
        if found is None:
            raise UsageError(
                f"--resume_from_checkpoint {resume}: no complete checkpoint-* folder in {training_args.output_dir}; "
                "drop the flag to start from the beginning"
            )
        training_args.resume_from_checkpoint = found
        return
    if not os.path.isdir(resume):
        raise UsageError(f"--resume_from_checkpoint {resume}: no such folder; pass a checkpoint-N folder")
    problem = checkpoint_problem(resume, None)
    if problem is not None:
        raise UsageError(
            f"--resume_from_checkpoint {resume}: not a complete checkpoint ({problem}); pass an earlier checkpoint-N"
        )


def tokenize_pairs(tokenizer, records: list[tuple], data_args: DataTrainingArguments) -> list[tuple]:
    """Token ids of every (source, target); logs length histograms and how many will be truncated."""
    sources = tokenize_texts(tokenizer, [source for source, _ in records])
    targets = tokenize_texts(tokenizer, [target for _, target in records])
    # Both modes add one special token to each side ([CLS] to the source; [SEP] to the target).
    for side, ids, limit in (
        ("source", sources, data_args.max_source_seq_length),
        ("target", targets, data_args.max_target_seq_length),
    ):
        lengths = [len(item) + 1 for item in ids]
        logger.info(f"{side} lengths (tokens, buckets of 16): {length_histogram(lengths)}")
        cut = sum(length > limit for length in lengths)
        if cut:
            logger.warning(f"{cut} of {len(ids)} {side}s are longer than {limit} tokens and lose their end")
    return list(zip(sources, targets, strict=True))


def main() -> None:
    # Parse and validate every argument before loading anything.
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, S2SFTTrainingArguments))
    model_args, data_args, training_args = parse_args_or_file(parser)
    setup_logging(training_args)
    validate_args(model_args, data_args, training_args)
    # Read the data before the --output_dir is touched: a bad row leaves it as it was.
    records = read_records("--train_file", data_args.train_file, data_args.source_column, data_args.target_column)
    if data_args.max_train_samples is not None:
        records = records[: data_args.max_train_samples]
    last_checkpoint = check_output_dir(training_args, RESULT_FILES)
    precision = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"
    logger.warning(
        f"Process rank: {training_args.process_index}, device: {training_args.device}, "
        f"world size: {training_args.world_size}, precision: {precision}"
    )
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # pinning only helps copies to an accelerator
    if training_args.overwrite_output_dir and training_args.should_save:
        remove_previous_run(training_args.output_dir, RESULT_FILES)
    if last_checkpoint is not None:
        logger.info(f"Resuming training from {last_checkpoint}, found in --output_dir (a run that was interrupted)")

    # Seed before the model is created so a new head's initialisation is reproducible.
    set_seed(training_args.seed)

    # Load the tokenizer and the encoder, converted to the BERT layout, with a position table long enough for
    # source + target (pseudo tokens reuse target positions).
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.tokenizer_name or model_args.model_name_or_path, cache_dir=model_args.cache_dir
    )
    ids = special_ids(tokenizer)
    overrides = {
        name: getattr(model_args, name)
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob")
        if getattr(model_args, name) is not None
    }
    try:
        model, new_weights = load_s2s_model(model_args.model_type, model_args.model_name_or_path, **overrides)
    except SafetensorError as error:
        raise UsageError(
            f"--model_name_or_path {model_args.model_name_or_path}: its weights file cannot be read ({error}); save "
            "the model again, or pass another folder"
        ) from error
    except (OSError, ValueError) as error:
        raise UsageError(
            f"--model_name_or_path {model_args.model_name_or_path}: {str(error).splitlines()[0]}"
        ) from error
    if new_weights:
        logger.warning(f"newly initialised (not in the checkpoint): {', '.join(new_weights)}")
    if model.config.vocab_size < len(tokenizer):
        raise UsageError(
            f"the tokenizer has {len(tokenizer)} tokens but the model only {model.config.vocab_size} embeddings; "
            "pass the tokenizer the checkpoint was trained with (--tokenizer_name)"
        )
    total_length = data_args.max_source_seq_length + data_args.max_target_seq_length
    if extend_position_embeddings(model, total_length):
        logger.info(f"position table extended to {total_length} rows by tiling the pre-trained rows")
    # Segment ids: source 0, target 1; a checkpoint with one token type (RoBERTa, XLM-R) uses it for both.
    two_types = model.config.type_vocab_size >= 2
    model.config.update(
        {
            "s2s_ft_mode": data_args.finetuning_mode,
            "source_type_id": 0,
            "target_type_id": 1 if two_types else 0,
            "label_smoothing": data_args.label_smoothing,
            "pad_token_id": ids.pad,
            "architectures": ["S2SFTForSeq2Seq"],
        }
    )
    if model_args.fix_word_embedding:
        model.bert.embeddings.word_embeddings.weight.requires_grad = False

    # Tokenize; each read of an example lays it out and draws its corruption (see Seq2SeqTrainingDataset).
    pairs = tokenize_pairs(tokenizer, records, data_args)
    corruption = Corruption(
        target_mask_prob=data_args.target_mask_prob,
        source_mask_prob=data_args.source_mask_prob,
        keep_prob=data_args.keep_prob,
        random_prob=data_args.random_prob,
        num_max_mask_token=data_args.num_max_mask_token,
    )
    train_dataset = Seq2SeqTrainingDataset(
        pairs,
        data_args.finetuning_mode,
        ids,
        data_args.max_source_seq_length,
        data_args.max_target_seq_length,
        corruption,
        training_args.seed,
    )
    collator = Seq2SeqCollator(data_args.finetuning_mode, ids, 0, model.config.target_type_id)
    total_batch = (
        training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * training_args.world_size
    )
    logger.info(
        f"mode {data_args.finetuning_mode}, {len(pairs)} training pairs, total batch size {total_batch}, "
        f"target_mask_prob {data_args.target_mask_prob}, label smoothing {data_args.label_smoothing}"
    )

    # Train; the full record of this run's arguments goes to --output_dir (run_arguments.json), not the log.
    save_run_arguments(training_args.output_dir, model_args, data_args, training_args)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=collator,
        processing_class=tokenizer,
    )
    checkpoint = training_args.resume_from_checkpoint or last_checkpoint
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()  # saves the tokenizer and the config (with the mode and segment ids) too
    metrics = train_result.metrics
    metrics["train_samples"] = len(pairs)
    trainer.log_metrics("train", metrics)
    save_results(trainer, "train", metrics)
    save_trainer_state(trainer)
    if trainer.is_world_process_zero():
        logger.info(f"Outputs in {os.path.abspath(training_args.output_dir)}: decode with decode_seq2seq.py")
    # Every process waits for the others, then closes the process group of a multi-process launch: a process that
    # exits while another one still runs can abort in gloo's threads ("terminate called without an active
    # exception") after all work is done.
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    run_cli(main)
