"""Model, tokenizer and logging set-up for the PyTorch seq2seq scripts (Trainer and Accelerate twins).

Loading config, tokenizer and model with one-line errors, fitting the position embeddings to --max_source_length,
the Trainer scripts' log set-up and metric table, and the check for hardware bf16 on a CPU.
"""

import logging
import os
import sys

import datasets
import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

from seq2seq_checks import (
    UsageError,
    check_flag_values,
    check_integrations,
    check_model_reachable,
    check_tokenizer_files,
    checkpoint_problem,
    is_offline_mode,
    last_complete_checkpoint,
    set_sibling_log_level,
)
from trainer_speedups import check_eval_max_tokens

logger = logging.getLogger(__name__)


LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
LOG_LEVELS["critical"] = logging.CRITICAL


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


def describe_trainer_run(trainer, train_dataset=None, eval_dataset=None, predict_dataset=None) -> str:
    """One line with the settings users most often get wrong: examples per split, the batch each optimizer step
    sees (per device x processes x accumulation), the number of steps, precision, device and world size."""
    args = trainer.args
    parts = []
    if train_dataset is not None:
        # Per process, whatever sampler sizes the batches; the sampler logs its batches when training starts.
        sampler_logger = logging.getLogger("trainer_speedups")
        sampler_logger.disabled = True
        try:
            batches = len(trainer.get_train_dataloader())
        finally:
            sampler_logger.disabled = False
        steps_per_epoch = max(batches // args.gradient_accumulation_steps, 1)
        steps = args.max_steps if args.max_steps > 0 else int(np.ceil(args.num_train_epochs * steps_per_epoch))
        batch = (
            f"token budget {args.train_max_tokens_per_batch} per device"
            if getattr(args, "train_max_tokens_per_batch", None)
            else f"{args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps} examples "
            f"({args.per_device_train_batch_size} per device x {args.world_size} processes x "
            f"{args.gradient_accumulation_steps} accumulation)"
        )
        parts.append(f"training on {len(train_dataset)} examples: {steps} steps of {batch}")
    if eval_dataset is not None:
        parts.append(f"evaluating on {len(eval_dataset)}")
    if predict_dataset is not None:
        parts.append(f"predicting {len(predict_dataset)}")
    precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
    parts.append(f"{precision} on {args.device.type}, world size: {args.world_size}")
    return "Run: " + "; ".join(parts)


def log_metrics(trainer, split: str, metrics: dict) -> None:
    """The Trainer's metric table, with the signatures (the string values: how BLEU or ROUGE was computed) printed
    in full under it rather than padded into its columns."""
    trainer.log_metrics(split, {key: value for key, value in metrics.items() if not isinstance(value, str)})
    if trainer.is_world_process_zero():
        for key, value in metrics.items():
            if isinstance(value, str):
                print(f"  {key}: {value}")


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


def fit_position_embeddings(model, max_source_length: int, resize: bool | None) -> int:
    """Make the model accept `max_source_length` tokens; return the --max_source_length to use.

    Resizes the position embeddings when the model has fewer; when it cannot and no resize was asked for
    (`resize` is --resize_position_embeddings: None = warn and resize, True = resize, False = error), returns the
    model's limit instead. Raises UsageError naming both fixes.
    """
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions is None or max_positions >= max_source_length:
        return max_source_length
    fixes = f"pass --max_source_length {max_positions} or less"
    if resize is False:
        raise UsageError(
            f"--max_source_length {max_source_length} exceeds the model's {max_positions} position embeddings; "
            f"{fixes}, or drop --resize_position_embeddings False to resize them"
        )
    try:
        model.resize_position_embeddings(max_source_length)
        logger.warning(f"resized the position embeddings from {max_positions} to {max_source_length}")
        return max_source_length
    except NotImplementedError as error:
        if resize:
            raise UsageError(
                f"--resize_position_embeddings: {model.config.model_type} position embeddings cannot be resized; "
                f"{fixes}"
            ) from error
        logger.warning(
            f"--max_source_length {max_source_length} lowered to {max_positions}, the number of position "
            f"embeddings of this {model.config.model_type} model (which cannot be resized)"
        )
        return max_positions


def check_generation_config_saves(model, model_path: str) -> None:
    """Refuse, before training, a generation config that saving the model would refuse at the end: transformers
    saves a published config with minor issues as it is, but validates a changed one strictly, and the scripts
    change it (language codes, decoder start)."""
    config = model.generation_config
    if getattr(config, "_original_object_hash", None) == hash(config):  # unchanged: saved as it is
        return
    try:
        config.validate(strict=True)
    except ValueError as error:
        issue = next((line.lstrip("- ") for line in str(error).splitlines() if line.startswith("- ")), str(error))
        raise UsageError(
            f"{model_path}/generation_config.json cannot be saved with the model once the script sets it up: "
            f"{issue.split(' -- ')[0]}; fix the file"
        ) from None


def load_model_and_tokenizer(model_args):
    """Load config, tokenizer and model; a folder or Hub id that cannot be loaded (missing, unreadable or
    garbage files, no tokenizer, not an encoder-decoder) raises UsageError."""
    common = {
        "cache_dir": model_args.cache_dir,
        "revision": model_args.model_revision,
        "token": model_args.token,
        "trust_remote_code": model_args.trust_remote_code,
    }
    source = model_args.model_name_or_path
    check_tokenizer_files(
        "--tokenizer_name" if model_args.tokenizer_name else "--model_name_or_path",
        model_args.tokenizer_name or source,
    )
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
        if "Unrecognized configuration class" in str(error):
            raise UsageError(
                f"--model_name_or_path '{source}' is a {config.model_type} model, not a sequence-to-sequence "
                "(encoder-decoder) model; use e.g. a T5, BART, mBART, Pegasus or Marian checkpoint"
            ) from error
        if "Unrecognized model" not in str(error) and "model_type" not in str(error):
            raise
        raise UsageError(
            f"--model_name_or_path '{source}': its config.json names no model type transformers knows "
            "(model_type missing or unknown); pass a folder saved with save_pretrained"
        ) from error
    except Exception as error:  # safetensors/pickle errors of a damaged weights file have no common class
        if type(error).__module__.split(".")[0] not in ("safetensors", "_pickle", "pickle", "zipfile", "json"):
            if "safetensors" not in type(error).__name__.lower() and "unpickl" not in str(error).lower():
                raise
        raise UsageError(
            f"--model_name_or_path '{source}': its weights file cannot be read ({type(error).__name__}: "
            f"{str(error).splitlines()[0]}); the file is damaged or not a weights file, save the model again"
        ) from error
    if len(tokenizer) < 2:
        raise UsageError(
            f"--model_name_or_path '{source}': its tokenizer is empty (no vocabulary); pass --tokenizer_name "
            "with the tokenizer the model was trained with"
        )
    # A tokenizer with added tokens needs matching embedding rows (no-op otherwise).
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    return config, tokenizer, model


def check_trainer_run_args(model_args, data_args, training_args) -> None:
    """The Trainer scripts' checks of everything but the data files: lengths, sample caps, the speed options, bf16,
    the launch, Hub access and --resume_from_checkpoint (which it resolves to a folder); raise UsageError naming
    the fix."""
    check_flag_values(data_args, training_args, model_args)
    check_integrations("--report_to", training_args.report_to)
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
    elif resume is not None and (problem := checkpoint_problem(resume, None)) is not None:
        raise UsageError(
            f"--resume_from_checkpoint {resume}: incomplete checkpoint ({problem}); pass an earlier checkpoint-N "
            "folder, or drop the flag to resume from the last complete one"
        )
