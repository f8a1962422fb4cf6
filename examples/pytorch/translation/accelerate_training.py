"""The Accelerate machinery of the `_no_trainer` twins (run_summarization_no_trainer.py and its translation twin).

Flags every twin shares (model, optimisation, checkpoints, tracking, Hub), the --output_dir guard and the
--resume_from_checkpoint lookup for Accelerate's step_N/epoch_N checkpoints, the log set-up, a model built from
scratch (--model_type), the eval/predict generation loop on all processes, result files, train_log.jsonl, the
resumable training position, checkpoints written under a temporary name, and saving/pushing the model.
What a user adapts (data columns, preprocessing, the metric, the loop itself) stays in the scripts.
PyTorch only; `utils/check_copies.py` keeps the translation folder's copy identical (edit this file, then
`make fix-copies`).
"""

import argparse
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass

import datasets
import numpy as np
import torch
import transformers
from accelerate import Accelerator
from accelerate.utils import LoggerType
from huggingface_hub import HfApi
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import CONFIG_MAPPING, AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

from ctranslate2_generation import generation_config_for
from seq2seq_checks import (
    ACCELERATE_RESUME_FILES,
    BOOKKEEPING_FILES,
    CHECKPOINT_NAME,
    PARTIAL_SUFFIX,
    RESULT_FILES,
    UsageError,
    check_flag_values,
    check_integrations,
    check_model_reachable,
    checkpoint_problem,
    did_you_mean,
    is_offline_mode,
    lock_output_dir,
    set_sibling_log_level,
)
from seq2seq_data import decode_predictions, generation_lengths
from trainer_speedups import generation_batches, restore_input_order, with_shared_cross_attention

logger = logging.getLogger(__name__)


# Written during training (not results): --overwrite_output_dir deletes them with RESULT_FILES and the checkpoints.
RUN_LOG_FILES = ("train_log.jsonl", "eval_log.jsonl", "eval_predictions.txt", "eval_predictions.jsonl")
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
TRACKERS = tuple(tracker.value for tracker in LoggerType if tracker.value != "all")  # --report_to names
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def parse_bool(value: str) -> bool:
    """argparse type for flags that take a value: true/false, 1/0, yes/no (any case). Anything else is an error,
    unlike `type=bool`, which turns every non-empty string (even "False") into True."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"'{value}' is not a boolean; use true or false (or 1/0, yes/no)")


def parse_checkpointing_steps(value: str) -> int | str:
    """argparse type for --checkpointing_steps: a positive number of steps, or 'epoch'."""
    if value == "epoch":
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError(f"'{value}' is neither a positive number of steps nor 'epoch'")


BOOL_FLAG = {"type": parse_bool, "nargs": "?", "const": True, "metavar": "{true,false}"}  # `--flag` alone = true


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Which model, config and tokenizer to fine-tune (help texts as in the Trainer script's ModelArguments)."""
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


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Optimisation, checkpoints, tracking and outputs (the flags of upstream's `_no_trainer` scripts)."""
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
    train.add_argument(
        "--report_to",
        default="all",
        help=f"Tracker for --with_tracking: one of {', '.join(TRACKERS)} ('all': every installed one).",
    )
    train.add_argument(
        "--log_level",
        choices=sorted(LOG_LEVELS),
        help=(
            "Log level of the main process (default: this script at info, the libraries at warning). 'info' lets "
            "the libraries' info lines through too; 'debug' adds the full argument dump (also in run_arguments.json)."
        ),
    )
    train.add_argument("--push_to_hub", action="store_true", help="Upload the model to the Hub (needs network).")
    train.add_argument("--hub_model_id", help="Hub repository for --push_to_hub (default: the output_dir name).")
    train.add_argument("--hub_token", help="Hub token for --push_to_hub (default: the one from `hf auth login`).")


def checkpoint_folders(output_dir: str) -> list[str]:
    """The step_N/epoch_N folders in `output_dir`, newest first (by time written, then by number)."""
    if not os.path.isdir(output_dir):
        return []
    folders = [
        os.path.join(output_dir, name)
        for name in os.listdir(output_dir)
        if CHECKPOINT_NAME.fullmatch(name) and os.path.isdir(os.path.join(output_dir, name))
    ]
    return sorted(folders, key=lambda folder: (os.path.getmtime(folder), int(folder.rsplit("_", 1)[1])), reverse=True)


def check_training_args(args: argparse.Namespace, generates: bool) -> None:
    """The checks both twins share, before anything loads: every numeric flag's value (`check_flag_values`), the
    generation length when the run generates (`generates`: eval or predict data), the model flags, the trackers
    and the Hub. Sets --max_train_steps -1 (use epochs) to None and --val_max_target_length's default
    (--max_target_length). Raises UsageError."""
    check_flag_values(args)
    if args.max_train_steps == -1:
        args.max_train_steps = None
    if args.val_max_target_length is None:  # filled in only now, so that a bad value is named by its own flag
        args.val_max_target_length = args.max_target_length
    if generates and args.val_max_target_length < 2:
        # Checked here, not after training: generate() with max_length 1 stops at the decoder start token.
        flag = (
            "--val_max_target_length"
            if args.val_max_target_length != args.max_target_length
            else ("--max_target_length (also the generation length while --val_max_target_length is unset)")
        )
        raise UsageError(
            f"{flag} is {args.val_max_target_length}, but generating needs at least 2 tokens (the decoder start "
            "token plus one generated token); pass e.g. --val_max_target_length 128"
        )
    if args.model_name_or_path is None and (args.model_type is None or args.tokenizer_name is None):
        raise UsageError(
            "no model: pass --model_name_or_path, or --model_type and --tokenizer_name to train a new model"
        )
    if args.push_to_hub and is_offline_mode():
        raise UsageError(
            "--push_to_hub needs the network, but HF_HUB_OFFLINE=1 is set; unset it or drop --push_to_hub"
        )
    for flag in ("--model_name_or_path", "--config_name", "--tokenizer_name"):
        check_model_reachable(flag, getattr(args, flag.removeprefix("--")))
    if args.with_tracking:
        if args.report_to not in (*TRACKERS, "all"):
            raise UsageError(
                f"--report_to {args.report_to}: not a tracker accelerate knows"
                f"{did_you_mean(args.report_to, [*TRACKERS, 'all'])}; use one of {', '.join(TRACKERS)} or all"
            )
        check_integrations("--report_to", args.report_to)


def last_checkpoint(output_dir: str) -> str | None:
    """The newest step_N/epoch_N folder in `output_dir` that `accelerator.load_state` can resume from, or None.

    A folder missing one of `ACCELERATE_RESUME_FILES` (or holding it empty), e.g. a checkpoint whose optimizer
    state was deleted or never written, is skipped with a warning naming what is missing."""
    for folder in checkpoint_folders(output_dir):
        problem = checkpoint_problem(folder, None, ACCELERATE_RESUME_FILES)
        if problem is None:
            return folder
        logger.warning(f"skipping {folder}: incomplete ({problem}); a resume starts from an earlier checkpoint")
    return None


def check_output_dir_for_accelerate(args: argparse.Namespace) -> str | None:
    """Take the --output_dir lock (one run per folder), then decide what to do with an existing --output_dir;
    return a step_N/epoch_N checkpoint to resume from, or None.

    As `seq2seq_checks.check_output_dir` does for the Trainer's checkpoint-N folders: an empty or missing folder
    is fine, a folder holding checkpoints but no results (a killed run) is resumed from its newest complete
    checkpoint, and anything else is refused unless --overwrite_output_dir or --resume_from_checkpoint is given.
    The lock's and the argument record's files (`BOOKKEEPING_FILES`) are not results. Raises UsageError.
    """
    lock_output_dir(args.output_dir, find_checkpoint=lambda: last_checkpoint(args.output_dir))
    if not os.path.isdir(args.output_dir) or args.overwrite_output_dir:
        return None
    entries = sorted(name for name in os.listdir(args.output_dir) if name not in BOOKKEEPING_FILES)
    if not entries or args.resume_from_checkpoint:
        return None
    checkpoint = last_checkpoint(args.output_dir)
    results = [name for name in entries if name in RESULT_FILES]
    if checkpoint is not None and not results:
        return checkpoint
    leftovers = [name for name in entries if name not in RUN_LOG_FILES]
    if all(CHECKPOINT_NAME.fullmatch(name.removesuffix(PARTIAL_SUFFIX)) for name in leftovers):
        # Killed before its first checkpoint was complete: nothing to resume from; the log restarts with the run.
        for name in entries:
            path = os.path.join(args.output_dir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        logger.warning(
            f"--output_dir {args.output_dir}: no complete checkpoint to resume from; removed the "
            f"incomplete {', '.join(entries)} and starting over"
        )
        return None
    shown = ", ".join((results or entries)[:5]) + (", ..." if len(results or entries) > 5 else "")
    resume_hint = f", --resume_from_checkpoint {checkpoint}" if checkpoint else ""
    raise UsageError(
        f"--output_dir {args.output_dir} already holds an earlier run ({shown}); choose a new --output_dir, "
        f"or pass --overwrite_output_dir to replace it{resume_hint}"
    )


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
        found = last_checkpoint(args.output_dir)
        if found is None:
            raise UsageError(
                f"--resume_from_checkpoint {resume}: no complete step_*/epoch_* folder in {args.output_dir}; "
                "drop the flag to start from scratch"
            )
        return found
    if not os.path.isdir(resume):
        raise UsageError(f"--resume_from_checkpoint {resume}: no such folder; pass a step_N or epoch_N folder")
    if not os.path.isfile(os.path.join(resume, "custom_checkpoint_0.pkl")):
        raise UsageError(
            f"--resume_from_checkpoint {resume}: not a checkpoint folder of this script (no custom_checkpoint_0.pkl "
            "in it); pass a step_N or epoch_N folder from --output_dir"
        )
    problem = checkpoint_problem(resume, None, ACCELERATE_RESUME_FILES)
    if problem is not None:
        complete = [
            folder
            for folder in checkpoint_folders(os.path.dirname(os.path.abspath(resume)))
            if checkpoint_problem(folder, None, ACCELERATE_RESUME_FILES) is None
        ]
        hint = f"pass --resume_from_checkpoint {complete[0]}" if complete else "drop the flag to start from scratch"
        raise UsageError(f"--resume_from_checkpoint {resume}: incomplete checkpoint ({problem}); {hint}")
    return resume


class _DropNotices(logging.Filter):
    """Leave out library notices that say nothing to act on (accelerate's "Removed shared tensor ... This should
    be OK" at every checkpoint of a model with tied embeddings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in record.getMessage()


def setup_accelerate_logging(accelerator: Accelerator, log_level: str | None = None) -> None:
    """HF's log format on stdout and one info line per process (rank, device, world size, precision). Then, on the
    local main process, the script's own lines at info and the libraries' at warning (their info lines are config
    dumps, offline-mode and checkpoint-file notices), or everything at `log_level` (--log_level); errors only on
    the other processes."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        level=logging.INFO,
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    logger.info(
        f"Process rank: {accelerator.process_index}, device: {accelerator.device}, "
        f"world size: {accelerator.num_processes}, precision: {accelerator.mixed_precision}"
    )
    if not accelerator.is_local_main_process:
        ours = libraries = logging.ERROR
    elif log_level is not None:
        ours = libraries = LOG_LEVELS[log_level]
    else:
        ours, libraries = logging.INFO, logging.WARNING
    logging.getLogger().setLevel(libraries)  # loggers of other libraries
    set_sibling_log_level(ours)
    for name in ("accelerate", "absl", "torch"):  # accelerate logs every checkpoint file; absl (rouge_score) chats
        logging.getLogger(name).setLevel(libraries)
    logging.getLogger("accelerate.utils.other").addFilter(_DropNotices())
    datasets.utils.logging.set_verbosity(libraries)
    transformers.utils.logging.set_verbosity(libraries)
    # datasets and (with CI=true in the environment) transformers also pass their records to the root handler:
    # each line twice.
    transformers.utils.logging.disable_propagation()
    datasets.utils.logging.disable_propagation()


def describe_accelerate_run(
    accelerator: Accelerator, args: argparse.Namespace, examples: dict, steps: int, steps_per_epoch: int
) -> str:
    """One line with the settings users most often get wrong: examples per split (`examples`: {split: count}), the
    batch each optimizer step sees (per device x processes x accumulation), the steps, precision and world size."""
    total_batch = args.per_device_train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    parts = [
        f"training on {examples['train']} examples: {steps} steps ({steps_per_epoch} per epoch) of {total_batch} "
        f"examples ({args.per_device_train_batch_size} per device x {accelerator.num_processes} processes x "
        f"{args.gradient_accumulation_steps} accumulation)"
    ]
    if examples.get("validation") is not None:
        parts.append(f"evaluating on {examples['validation']} after every epoch")
    if examples.get("test") is not None:
        parts.append(f"predicting {examples['test']}")
    precision = "fp32" if accelerator.mixed_precision == "no" else accelerator.mixed_precision
    parts.append(f"{precision} on {accelerator.device.type}, world size: {accelerator.num_processes}")
    return "Run: " + "; ".join(parts)


def remove_previous_accelerate_run(output_dir: str, tracking_project: str) -> None:
    """For --overwrite_output_dir: delete an earlier run's results, logs, step_N/epoch_N checkpoints and tracker
    logs (the `tracking_project` folder), and nothing else."""
    if not os.path.isdir(output_dir):
        return
    for name in sorted(os.listdir(output_dir)):
        path = os.path.join(output_dir, name)
        if name in BOOKKEEPING_FILES:  # this run's own lock and argument record
            continue
        if name in RESULT_FILES or name in RUN_LOG_FILES:
            os.remove(path)
        elif os.path.isdir(path) and (
            CHECKPOINT_NAME.fullmatch(name.removesuffix(PARTIAL_SUFFIX)) or name == tracking_project
        ):
            shutil.rmtree(path)
        else:
            continue
        logger.info(f"--overwrite_output_dir: removed {path} from the earlier run")


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


def generate_texts(
    accelerator: Accelerator,
    model,
    dataloader,
    tokenizer,
    gen_kwargs: dict,
    desc: str,
    order: np.ndarray | None,
    share_cross_attention: bool = True,
    ctranslate2=None,
    num_return_sequences: int = 1,
):
    """Generate an output text (summary, translation) for every example of `dataloader`, on all processes; return
    (texts in input order, gen_len, (generated token counts, hit the length limit) per example). The gathered rows are cut to the dataset's length: `gather_for_metrics` drops
    the examples repeated to fill the last batch, and token-budget batches put their filler copies last, so each
    example counts once. `order` says how the dataset was reordered (`order_for_generation`); with
    `share_cross_attention`, beam search leaves the cross-attention keys/values in place
    (`BeamSharedCrossAttentionCache`); with `ctranslate2` (a `CTranslate2Generator`), the tokens come from it.
    With `num_return_sequences` K > 1 a fourth item holds the n-best lists: (token ids as examples x K x length,
    scores as examples x K), in input order, best first; else None."""
    model.eval()
    generator = accelerator.unwrap_model(model)
    rows, nbest_rows, nbest_scores = [], [], []
    for batch in tqdm(dataloader, desc=desc, disable=not accelerator.is_local_main_process):
        if ctranslate2 is not None:
            config = generation_config_for(generator, gen_kwargs)
            generated = ctranslate2.generate(batch["input_ids"], batch["attention_mask"], config)
            generated = generated.to(batch["input_ids"].device)
        elif num_return_sequences > 1:
            kwargs = with_shared_cross_attention(generator, gen_kwargs) if share_cross_attention else gen_kwargs
            with torch.no_grad():
                output = generator.generate(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    num_return_sequences=num_return_sequences,
                    output_scores=True,
                    return_dict_in_generate=True,
                    **kwargs,
                )
            # Examples x K x length: gathered along the examples, padded along the length.
            hypotheses = output.sequences.view(len(batch["input_ids"]), num_return_sequences, -1)
            hypotheses = accelerator.pad_across_processes(hypotheses, dim=2, pad_index=tokenizer.pad_token_id)
            nbest_rows.extend(accelerator.gather_for_metrics(hypotheses).cpu().tolist())
            scores = output.sequences_scores.view(len(batch["input_ids"]), num_return_sequences)
            nbest_scores.extend(accelerator.gather_for_metrics(scores).cpu().tolist())
            generated = hypotheses[:, 0]
        else:
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
    token_ids = restore_input_order(token_ids, num_examples, order)
    texts, gen_len = decode_predictions(tokenizer, token_ids, num_examples)
    max_length = gen_kwargs.get("max_length")
    nbest = None
    if nbest_rows:
        width = max(len(hypothesis) for row in nbest_rows for hypothesis in row)
        nbest_ids = np.full((len(nbest_rows), num_return_sequences, width), tokenizer.pad_token_id)
        for index, row in enumerate(nbest_rows):
            for rank, hypothesis in enumerate(row):
                nbest_ids[index, rank, : len(hypothesis)] = hypothesis
        nbest = (
            restore_input_order(nbest_ids, num_examples, order),
            restore_input_order(np.asarray(nbest_scores), num_examples, order),
        )
    return (
        texts,
        gen_len,
        generation_lengths(token_ids, num_examples, tokenizer.pad_token_id, tokenizer.eos_token_id, max_length),
        nbest,
    )


def write_json(path: str, data: dict) -> None:
    """Write `data` as sorted, indented JSON to a temp file, then rename it: a killed run never leaves half a file."""
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=4, sort_keys=True)
        handle.write("\n")
    os.replace(f"{path}.tmp", path)


def save_metrics(output_dir: str, split: str, metrics: dict) -> None:
    """Write `<split>_results.json` and merge the metrics into `all_results.json` (the Trainer's file names)."""
    write_json(os.path.join(output_dir, f"{split}_results.json"), metrics)
    all_path = os.path.join(output_dir, "all_results.json")
    merged = {}
    if os.path.isfile(all_path):
        with open(all_path, encoding="utf-8") as handle:
            merged = json.load(handle)
    write_json(all_path, {**merged, **metrics})


def open_train_log(path: str, resumed_step: int):
    """Open train_log.jsonl (one line per optimizer step) or eval_log.jsonl (one per evaluation) for appending. A resumed run keeps the lines up to its
    checkpoint's step and drops later ones (written after the checkpoint by the interrupted run)."""
    kept = []
    if resumed_step and os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            # A run killed while writing may leave half a last line (no newline yet): it is dropped.
            kept = [line for line in handle if line.endswith("\n") and json.loads(line)["step"] <= resumed_step]
    handle = open(path, "w", encoding="utf-8")  # kept open for the whole run; main() closes it
    handle.writelines(kept)
    return handle


@dataclass
class TrainingProgress:
    """Where training stands, saved in every checkpoint (`register_for_checkpointing`) so a resumed run continues
    with the next batch of the same epoch, the same step count and the same running loss."""

    epoch: int = 0
    batches_done: int = 0  # batches of `epoch` already trained on
    completed_steps: int = 0
    loss_sum: float = 0.0  # sum of the per-step training losses, for the mean train_loss
    # Early stopping and the best model (best_model.record_evaluation): a resumed run keeps counting.
    best_metric: float | None = None
    best_checkpoint: str | None = None  # the epoch_N folder saved right after the best evaluation
    best_step: int | None = None
    evaluations_without_improvement: int = 0
    stopped_early: bool = False

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


def push_folder(args: argparse.Namespace, repo_id: str, message: str) -> None:
    """Upload --output_dir (checkpoints excluded) to the Hub repository `repo_id`."""
    HfApi().upload_folder(
        repo_id=repo_id,
        folder_path=args.output_dir,
        commit_message=message,
        token=args.hub_token,
        ignore_patterns=["step_*", "epoch_*", "*.tmp"],
    )


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


def save_model(accelerator: Accelerator, model, tokenizer, output_dir: str) -> None:
    """Save the unwrapped model and the tokenizer with `save_pretrained` (written once, by the main process)."""
    accelerator.wait_for_everyone()
    accelerator.unwrap_model(model).save_pretrained(
        output_dir, is_main_process=accelerator.is_main_process, save_function=accelerator.save
    )
    if accelerator.is_main_process:
        tokenizer.save_pretrained(output_dir)
