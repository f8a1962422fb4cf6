#!/usr/bin/env python
"""Average the weights of several checkpoints of one training run into one model (checkpoint averaging).

The element-wise mean of the last few checkpoints is often a little better than the last one alone (the
Transformer paper averages its last 5 or 20). Reads the Trainer's `checkpoint-N` folders (run_summarization.py,
run_translation.py) and Accelerate's `step_N`/`epoch_N` folders (the `_no_trainer` twins), and writes a model
folder that `from_pretrained` loads:

    # the 3 newest complete checkpoints of a run
    python examples/pytorch/summarization/average_checkpoints.py \
        --run_dir outputs/xsum-t5 --last 3 --output_dir outputs/xsum-t5-avg3

    # checkpoints you choose (config and tokenizer come from the newest one, or from its run folder)
    python examples/pytorch/summarization/average_checkpoints.py \
        --checkpoints outputs/xsum-t5/checkpoint-400 outputs/xsum-t5/checkpoint-500 --output_dir outputs/avg

    # step_N folders of a twin's run that never reached its final save (no config/tokenizer in the run folder yet)
    python examples/pytorch/summarization/average_checkpoints.py \
        --run_dir outputs/xsum-acc --last 2 --config_from .cache/tiny-models/t5 --output_dir outputs/avg

The mean is summed in float32 (float64 for float64 weights) and stored in the checkpoints' dtype; integer
tensors (counters, ids) are taken from the newest checkpoint. The output folder holds model.safetensors,
config.json, generation_config.json, the tokenizer files and averaged_checkpoints.json (which checkpoints went
in). Config and tokenizer come from --config_from, else the newest checkpoint, else its run folder (where a twin
saves them at the end). The training scripts' --average_last_checkpoints N does the same in memory after training
(`load_averaged_weights`). PyTorch only; `utils/check_copies.py` keeps the translation folder's copy identical
(edit this file, then `make fix-copies`).
"""

import argparse
import json
import logging
import os
import re
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

from seq2seq_checks import (
    ACCELERATE_RESUME_FILES,
    CHECKPOINT_NAME,
    PARTIAL_SUFFIX,
    TOKENIZER_VOCABULARY_FILES,
    TRAINER_RESUME_FILES,
    UsageError,
    checkpoint_problem,
    one_line_errors,
    run_cli,
    write_json_atomically,
)

logger = logging.getLogger(__name__)

TRAINER_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
WEIGHT_FILES = TRAINER_RESUME_FILES[0]  # model.safetensors, pytorch_model.bin, or the index of their shards
# Averaging needs only the weights (an optimizer state deleted to save space does not matter), plus the file each
# writer writes last, so a checkpoint still being written is never read: the Trainer's trainer_state.json (naming
# step N) and Accelerate's custom_checkpoint_0.pkl (the twins also write step_N under a `.partial` name first).
TRAINER_AVERAGE_FILES = (WEIGHT_FILES, ("trainer_state.json",))
ACCELERATE_AVERAGE_FILES = (ACCELERATE_RESUME_FILES[0], ("custom_checkpoint_0.pkl",))
RECORD_FILE = "averaged_checkpoints.json"
NUMBERED = re.compile(rf"{TRAINER_CHECKPOINT.pattern}|{CHECKPOINT_NAME.pattern}")  # any checkpoint folder


def _step(folder: str) -> int:
    return int(re.split(r"[-_]", os.path.basename(os.path.normpath(folder)))[-1])


def checkpoint_issue(folder: str) -> str | None:
    """Why `folder` is no complete checkpoint to average (a Trainer checkpoint: trainer_state.json or a
    checkpoint-N name; an Accelerate one: custom_checkpoint_0.pkl or a step_N/epoch_N name), or None."""
    name = os.path.basename(os.path.normpath(folder))
    if name.endswith(PARTIAL_SUFFIX):
        return "still being written (or its run was killed while saving it)"
    trainer = TRAINER_CHECKPOINT.fullmatch(name)
    if trainer or os.path.isfile(os.path.join(folder, "trainer_state.json")):
        return checkpoint_problem(folder, int(trainer.group(1)) if trainer else None, TRAINER_AVERAGE_FILES)
    if CHECKPOINT_NAME.fullmatch(name) or os.path.isfile(os.path.join(folder, "custom_checkpoint_0.pkl")):
        return checkpoint_problem(folder, None, ACCELERATE_AVERAGE_FILES)
    return "not a checkpoint folder (no trainer_state.json or custom_checkpoint_0.pkl)"


def complete_checkpoints(run_dir: str) -> list[str]:
    """The complete checkpoint folders of a run, oldest first by training step: the Trainer's checkpoint-N or
    Accelerate's step_N/epoch_N in `run_dir`. Incomplete ones are skipped with a warning saying what is missing.
    Raises UsageError when `run_dir` holds more than one kind (their steps cannot be ordered)."""
    found = {}
    for name in sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []:
        folder = os.path.join(run_dir, name)
        if not NUMBERED.fullmatch(name) or not os.path.isdir(folder):
            continue
        if (problem := checkpoint_issue(folder)) is not None:
            logger.warning(f"skipping {folder}: incomplete ({problem})")
            continue
        found.setdefault(re.split(r"[-_]", name)[0], []).append(folder)
    if len(found) > 1:
        raise UsageError(
            f"{run_dir} holds checkpoints of several kinds ({', '.join(f'{kind}*' for kind in found)}), whose steps "
            "cannot be ordered; name the ones to average with --checkpoints"
        )
    return sorted(next(iter(found.values()), []), key=_step)


def last_checkpoints(run_dir: str, n: int, flag: str = "--last") -> list[str]:
    """The `n` newest complete checkpoints of `run_dir`, oldest first. Raises UsageError (naming `flag`) when it
    holds fewer."""
    found = complete_checkpoints(run_dir)
    if len(found) >= n:
        return found[-n:]
    if not found:
        hint = " (it is a checkpoint itself: pass its run folder)" if checkpoint_issue(run_dir) is None else ""
        raise UsageError(
            f"{flag} {n}: {run_dir} holds no complete checkpoint-N, step_N or epoch_N folder{hint}; save checkpoints "
            "while training (--save_steps, or --checkpointing_steps for the _no_trainer scripts)"
        )
    names = ", ".join(os.path.basename(folder) for folder in found)
    raise UsageError(
        f"{flag} {n}: {run_dir} holds only {len(found)} complete checkpoints ({names}); "
        f"pass {flag} {len(found)} or fewer"
    )


def check_average_last_checkpoints(
    n: int | None,
    saves_checkpoints: bool,
    save_hint: str,
    keeps_at_most: int | None = None,
    flag: str = "--average_last_checkpoints",
) -> None:
    """For a training script's --average_last_checkpoints N (None: not asked for), before anything loads. Raises
    UsageError when N < 1, when the run saves no checkpoints (`saves_checkpoints` False; `save_hint` names the
    flag that saves them, e.g. '--checkpointing_steps 500'), or when it keeps fewer than N (`keeps_at_most`: the
    Trainer's --save_total_limit). Whether N checkpoints were actually written is known only after training:
    `last_checkpoints(output_dir, n, flag)` checks it then."""
    if n is None:
        return
    if n < 1:
        raise UsageError(f"{flag} must be at least 1, got {n}; pass e.g. {flag} 5")
    if not saves_checkpoints:
        raise UsageError(f"{flag} {n} averages saved checkpoints, but this run saves none; add {save_hint}")
    if keeps_at_most is not None and keeps_at_most < n:
        raise UsageError(
            f"{flag} {n}: --save_total_limit {keeps_at_most} keeps only {keeps_at_most} checkpoints; "
            f"pass --save_total_limit {n} or more, or {flag} {keeps_at_most}"
        )


def load_weights(folder: str) -> dict[str, torch.Tensor]:
    """The state dict stored in a checkpoint folder: one file, or every shard its index lists."""
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        shards = [name]
        if name.endswith(".index.json"):
            with open(path, encoding="utf-8") as handle:
                shards = sorted(set(json.load(handle)["weight_map"].values()))
        state = {}
        for shard in (os.path.join(folder, shard) for shard in shards):
            # weights_only: a .bin file is a pickle, and loading it must not run code from it.
            loaded = (
                load_file(shard)
                if shard.endswith(".safetensors")
                else torch.load(shard, map_location="cpu", weights_only=True)
            )
            state.update(loaded)
        return state
    raise UsageError(f"{folder} holds no model weights (none of {', '.join(WEIGHT_FILES)}); pass checkpoint folders")


def _difference(first: dict, other: dict) -> str | None:
    """What differs between two state dicts' names, shapes and dtypes, or None."""
    only_first, only_other = sorted(set(first) - set(other)), sorted(set(other) - set(first))
    if only_first or only_other:
        where, key = ("first", only_first[0]) if only_first else ("second", only_other[0])
        return f"{len(only_first) + len(only_other)} tensor names differ, e.g. '{key}' is only in the {where}"
    for key, tensor in first.items():
        if tensor.shape != other[key].shape:
            return f"'{key}' has shape {list(tensor.shape)} vs {list(other[key].shape)}"
        if tensor.dtype != other[key].dtype:
            return f"'{key}' has dtype {tensor.dtype} vs {other[key].dtype}"
    return None


def average_state_dicts(checkpoint_dirs: list[str]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the checkpoints' weights, summed in float32 (float64 for float64 tensors) and
    returned in their dtype; integer tensors are the last checkpoint's. One checkpoint is held in memory at a time
    besides the sum. Raises UsageError naming two checkpoints whose tensor names, shapes or dtypes differ."""
    if not checkpoint_dirs:
        raise UsageError("no checkpoints to average; pass at least one")
    total, first = {}, None
    for folder in checkpoint_dirs:
        state = load_weights(folder)
        if first is None:
            # Names, shapes and dtypes to compare the others with (meta tensors: no memory).
            first = {key: tensor.to("meta") for key, tensor in state.items()}
        elif (difference := _difference(first, state)) is not None:
            raise UsageError(
                f"checkpoints {checkpoint_dirs[0]} and {folder} differ: {difference}; average checkpoints of one run"
            )
        for key, tensor in state.items():
            if not tensor.is_floating_point():
                total[key] = tensor
            elif key in total:
                total[key] += tensor
            else:  # a copy: the sum must not write into the loaded tensor
                total[key] = tensor.to(torch.promote_types(tensor.dtype, torch.float32), copy=True)
    return {
        key: (value / len(checkpoint_dirs)).to(first[key].dtype) if value.is_floating_point() else value
        for key, value in total.items()
    }


def check_weights_fit(model, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise UsageError unless `state` gives every weight of `model` with its shape: no unknown name, none missing
    except tied copies of a given one (saved files keep one name of lm_head/shared/embed_tokens). `source` says
    where the weights come from."""
    own = model.state_dict(keep_vars=True)
    names_of = {}  # tied weights are one tensor under several names
    for name, tensor in own.items():
        names_of.setdefault(id(tensor), []).append(name)
    unknown = sorted(set(state) - set(own))
    missing = [name for name in own if not any(alias in state for alias in names_of[id(own[name])])]
    wrong = [name for name in sorted(set(state) & set(own)) if state[name].shape != own[name].shape]
    problem = (
        f"'{unknown[0]}' is not a weight of the model ({len(unknown)} unknown)"
        if unknown
        else f"'{missing[0]}' is missing ({len(missing)} missing)"
        if missing
        else f"'{wrong[0]}' has shape {list(state[wrong[0]].shape)}, the model {list(own[wrong[0]].shape)}"
        if wrong
        else None
    )
    if problem is not None:
        raise UsageError(f"the weights of {source} do not fit the model: {problem}; average checkpoints of this model")


def load_averaged_weights(model, checkpoint_dirs: list[str]) -> None:
    """Put the average of `checkpoint_dirs` (`average_state_dicts`) into `model` (an unwrapped transformers model,
    on any device): every weight is replaced, tied copies included. Raises UsageError when the weights do not fit."""
    average = average_state_dicts(checkpoint_dirs)
    check_weights_fit(model, average, ", ".join(checkpoint_dirs))
    model.load_state_dict(average, strict=False)  # strict=False only for the tied copies, checked above
    logger.info(f"Loaded the average of {len(checkpoint_dirs)} checkpoints: {', '.join(checkpoint_dirs)}")


def model_signature(folder: str) -> tuple | None:
    """(model_type, architectures) of the config.json in `folder`, or None when there is none."""
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except ValueError as error:
        raise UsageError(f"{path} is not valid JSON ({error}); pass a folder saved with save_pretrained") from error
    return config.get("model_type"), tuple(config.get("architectures") or ())


def find_config_dir(checkpoints: list[str], config_from: str | None) -> str:
    """Where the output's config and tokenizer come from: --config_from, else the newest checkpoint, else its run
    folder (a twin's step_N holds neither; its run folder does after the final save). Raises UsageError."""
    if config_from is not None:
        if model_signature(config_from) is None:
            raise UsageError(
                f"--config_from {config_from} has no config.json; pass a folder saved with save_pretrained"
            )
        candidates = [config_from]
    else:
        candidates = [checkpoints[-1], os.path.dirname(os.path.abspath(checkpoints[-1]))]
    for folder in candidates:
        has_tokenizer = any(os.path.isfile(os.path.join(folder, name)) for name in TOKENIZER_VOCABULARY_FILES)
        if model_signature(folder) is not None and has_tokenizer:
            return folder
    if config_from is not None:
        raise UsageError(
            f"--config_from {config_from} has no tokenizer files (tokenizer.json, spiece.model, ...); pass the model "
            "folder the run started from"
        )
    raise UsageError(
        f"no config.json with tokenizer files in {candidates[0]} or its run folder {candidates[1]} (a _no_trainer run "
        "saves them at its end); pass --config_from the model folder the run started from"
    )


def check_same_model(checkpoints: list[str], config_dir: str) -> None:
    """Raise UsageError when the checkpoints' configs (their own, or their run folder's) or the config to be
    written name different models (model_type, architectures)."""
    expected = model_signature(config_dir)
    if expected[0] not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        raise UsageError(
            f"{config_dir}: model_type {expected[0]!r} is not a sequence-to-sequence model; pass --config_from a "
            "seq2seq model folder"
        )
    for folder in checkpoints:
        own = model_signature(folder) or model_signature(os.path.dirname(os.path.abspath(folder)))
        if own is not None and own != expected:
            raise UsageError(
                f"{folder} is a {own[0]} model ({', '.join(own[1])}), but {config_dir} is a {expected[0]} model "
                f"({', '.join(expected[1])}); average checkpoints of one model"
            )


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def check_output_folder(output_dir: str, checkpoints: list[str], config_dir: str, overwrite: bool) -> None:
    """Raise UsageError when writing --output_dir could destroy an input (it is, holds or lies inside a checkpoint,
    or holds the config folder), or anything else: a file, or a non-empty folder, which --overwrite replaces only
    when it holds an earlier average (averaged_checkpoints.json), never another folder of the user's."""
    for folder in checkpoints:
        if _inside(output_dir, folder) or _inside(folder, output_dir):
            same = os.path.realpath(output_dir) == os.path.realpath(folder)
            relation = "is" if same else "lies inside" if _inside(output_dir, folder) else "holds"
            raise UsageError(
                f"--output_dir {output_dir} {relation} the checkpoint {folder}: writing it would destroy that input; "
                "choose a folder outside the checkpoints"
            )
    if _inside(config_dir, output_dir):
        raise UsageError(f"--output_dir {output_dir} holds {config_dir}, the config's source; choose another folder")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UsageError(f"--output_dir {output_dir} is a file; pass a new or empty folder")
    existing = os.path.dirname(os.path.abspath(output_dir))  # the folder the output (or its parents) goes into
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK):
        raise UsageError(f"--output_dir {output_dir}: {existing} is not writable; choose a folder you can write to")
    entries = sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []
    if entries and RECORD_FILE not in entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise UsageError(
            f"--output_dir {output_dir} is not empty ({shown}) and holds no earlier average ({RECORD_FILE}), the only "
            "folder --overwrite replaces; choose a new or empty folder"
        )
    if entries and not overwrite:
        raise UsageError(f"--output_dir {output_dir} holds an earlier average; pass --overwrite to replace it")


def load_config_and_tokenizer(config_dir: str) -> tuple:
    """(config, generation config, tokenizer) for the output, from `config_dir` (a generation config made from the
    model config when the folder has none). Raises UsageError when they do not load."""
    try:
        config = AutoConfig.from_pretrained(config_dir)
        tokenizer = AutoTokenizer.from_pretrained(config_dir)
        if os.path.isfile(os.path.join(config_dir, "generation_config.json")):
            return config, GenerationConfig.from_pretrained(config_dir), tokenizer
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{config_dir}: the config or tokenizer does not load ({str(error).strip().splitlines()[0]}); "
            "pass --config_from a model folder saved with save_pretrained"
        ) from error
    return config, GenerationConfig.from_model_config(config), tokenizer


def write_model_folder(output_dir: str, average: dict, saved_with_it: tuple, record: dict) -> None:
    """Write the averaged weights, `saved_with_it` (objects with `save_pretrained`: config, tokenizer, ...) and
    `record` into a temporary folder beside `output_dir`, then put it in place of `output_dir` (replacing an earlier
    average there): a failed or killed run leaves the old folder as it was."""
    output_dir = os.path.normpath(output_dir)
    temporary = f"{output_dir}.tmp-{os.getpid()}"
    os.makedirs(temporary)
    try:
        weights = {key: value.contiguous() for key, value in average.items()}
        save_file(weights, os.path.join(temporary, "model.safetensors"), metadata={"format": "pt"})
        for item in saved_with_it:
            item.save_pretrained(temporary)
        write_json_atomically(os.path.join(temporary, RECORD_FILE), record)
        if os.path.isdir(output_dir):  # empty, or an earlier average that --overwrite replaces
            os.replace(output_dir, f"{temporary}.old")
        os.replace(temporary, output_dir)
    finally:
        for leftover in (temporary, f"{temporary}.old"):
            if os.path.isdir(leftover):
                shutil.rmtree(leftover)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    one_line_errors(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--last", type=int, help="average the N newest complete checkpoints of --run_dir")
    which.add_argument("--checkpoints", nargs="+", help="average these checkpoint folders (of one model)")
    parser.add_argument(
        "--run_dir", help="with --last: the run's --output_dir, holding checkpoint-N or step_N/epoch_N"
    )
    parser.add_argument("--output_dir", required=True, help="where to write the averaged model (new or empty folder)")
    parser.add_argument(
        "--config_from",
        help="folder with config.json and tokenizer files for the output (default: the newest checkpoint, else its "
        "run folder); needed for step_N/epoch_N of a run that has not finished",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier average in --output_dir (other folders: refused)"
    )
    return parser.parse_args(argv)


def select_checkpoints(args: argparse.Namespace) -> list[str]:
    """The checkpoints --last/--run_dir or --checkpoints name, oldest first for --last. Raises UsageError."""
    if args.checkpoints is not None:
        if args.run_dir is not None:
            raise UsageError("--run_dir goes with --last; with --checkpoints, name the folders only (drop --run_dir)")
        for folder in args.checkpoints:
            problem = "no such folder" if not os.path.isdir(folder) else checkpoint_issue(folder)
            if problem is not None:
                raise UsageError(
                    f"--checkpoints {folder}: {problem}; pass complete checkpoint-N, step_N or epoch_N folders"
                )
        if len({os.path.realpath(folder) for folder in args.checkpoints}) < len(args.checkpoints):
            raise UsageError("--checkpoints names a folder twice; name each checkpoint once")
        # Oldest first, as --last orders them (the newest gives the config), when the names say the steps.
        named = all(NUMBERED.fullmatch(os.path.basename(os.path.normpath(folder))) for folder in args.checkpoints)
        return sorted(args.checkpoints, key=_step) if named else args.checkpoints
    check_average_last_checkpoints(args.last, saves_checkpoints=True, save_hint="", flag="--last")
    if args.run_dir is None:
        raise UsageError(
            "--last needs --run_dir, the folder holding the checkpoints; pass --run_dir <output_dir of the run>"
        )
    if not os.path.isdir(args.run_dir):
        raise UsageError(f"--run_dir {args.run_dir}: no such folder; pass the --output_dir of a training run")
    return last_checkpoints(args.run_dir, args.last)


def main(argv: list[str]) -> None:
    # Parse and validate: which checkpoints, where the config comes from, where the output goes.
    args = parse_args(argv)
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        level=logging.INFO,
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    checkpoints = select_checkpoints(args)
    config_dir = find_config_dir(checkpoints, args.config_from)
    check_same_model(checkpoints, config_dir)
    check_output_folder(args.output_dir, checkpoints, config_dir, args.overwrite)
    config, generation_config, tokenizer = load_config_and_tokenizer(config_dir)

    # Average, and check the result against the model the config describes (built on the meta device: no memory).
    logger.info(f"Averaging {len(checkpoints)} checkpoints: {', '.join(checkpoints)}")
    average = average_state_dicts(checkpoints)
    with torch.device("meta"):
        model = AutoModelForSeq2SeqLM.from_config(config)
    check_weights_fit(model, average, f"{checkpoints[0]} (config: {config_dir})")

    # Save, with a record of what went in.
    record = {
        "checkpoints": [os.path.abspath(folder) for folder in checkpoints],
        "config_from": os.path.abspath(config_dir),
        "method": "element-wise mean, summed in float32",
    }
    write_model_folder(args.output_dir, average, (config, generation_config, tokenizer), record)
    logger.info(f"Wrote the averaged model to {args.output_dir} (config and tokenizer from {config_dir})")


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
