"""Argument checks and output safety shared by every seq2seq example script (PyTorch and TensorFlow alike).

One-line user errors (`UsageError`, printed by `run_cli`), argument files, input-file and Hub checks, and what keeps
earlier results safe: the --output_dir guard, complete-checkpoint detection and files written through a temporary
file and a rename. Imports neither torch nor TensorFlow: the same file serves the PyTorch folders (transformers 5)
and the Keras folders (transformers 4.57), kept identical by `utils/check_copies.py` (edit the summarization copy,
then `make fix-copies`).
"""

import atexit
import codecs
import difflib
import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import time
from contextlib import contextmanager

try:
    from huggingface_hub import is_offline_mode
except ImportError:  # huggingface_hub before 1.0 (the Keras folders' stack)
    from transformers.utils import is_offline_mode
from huggingface_hub import try_to_load_from_cache

logger = logging.getLogger(__name__)


# Files a finished (or partly finished) run leaves in --output_dir. Their presence means "results here".
RESULT_FILES = (
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "predict_results.json",
    "generated_predictions.txt",
    "generated_predictions.jsonl",
    "generated_predictions.nbest.jsonl",
    "trainer_state.json",
    "training_curves.png",
)


DATA_FILE_FLAGS = {"train": "--train_file", "validation": "--validation_file", "test": "--test_file"}

# The Accelerate twins' checkpoints (here so that tools can recognise them without importing accelerate).
CHECKPOINT_NAME = re.compile(r"(step|epoch)_\d+")  # accelerator.save_state folders, as upstream names them
PARTIAL_SUFFIX = ".partial"  # a checkpoint being written; renamed to its final name once complete
# What `accelerator.load_state` reads from a step_N/epoch_N folder of the twins (one model, optimizer, scheduler,
# TrainingProgress): one name of each group, non-empty. Other processes' random_states_<rank>.pkl are optional
# (a resume on fewer processes does not need them).
ACCELERATE_RESUME_FILES = (
    ("model.safetensors", "pytorch_model.bin"),
    ("optimizer.bin",),
    ("scheduler.bin",),
    ("random_states_0.pkl",),
    ("custom_checkpoint_0.pkl",),
)

# Bookkeeping a run keeps in --output_dir: neither results nor a reason to refuse the folder.
LOCK_FILE = "run.lock"
ARGUMENTS_FILE = "run_arguments.json"
BOOKKEEPING_FILES = (LOCK_FILE, ARGUMENTS_FILE)

# What `Trainer.train(resume_from_checkpoint=...)` reads from checkpoint-N: one name of each group, non-empty.
TRAINER_RESUME_FILES = (
    ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json"),
    ("optimizer.pt",),
    ("scheduler.pt",),
    ("rng_state.pth", "rng_state_0.pth"),
    ("trainer_state.json",),
)


class UsageError(ValueError):
    """A problem with the user's arguments or data: reported as one line, without a traceback."""


def set_sibling_log_level(level: int) -> None:
    """Give the script's logger (`__main__`) and those of its sibling modules (the files of this folder) `level`."""
    folder = os.path.dirname(os.path.abspath(__file__))
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name == "__main__" or (path and os.path.dirname(os.path.abspath(path)) == folder):
            logging.getLogger(name).setLevel(level)


def parse_args_or_file(parser) -> tuple:
    """Parse the command line with `parser` (an `HfArgumentParser`), or a single .json/.yaml file of arguments;
    return its dataclasses. Unknown flags or keys get a "did you mean", a file's values are type-checked (a
    quoted "False" is not a boolean). Raises UsageError."""
    one_line_errors(parser)
    connect_processes_without_gpus()
    try:
        if len(sys.argv) == 2 and sys.argv[1].endswith((".json", ".yaml", ".yml")):
            return parser.parse_dict(read_argument_file(parser, sys.argv[1]))
        *groups, remaining = parser.parse_args_into_dataclasses(return_remaining_strings=True)
        if remaining:
            raise UsageError(unknown_flags_message(parser, remaining))
        return tuple(groups)
    except UsageError:
        raise
    except ValueError as error:  # invalid values, found by the dataclasses
        message = str(error).strip().splitlines()[0]
        for known, clearer in CLEARER_MESSAGES.items():
            if known in message:
                message = clearer
        raise UsageError(message) from error
    except ImportError as error:  # a flag that needs a package that is not installed (e.g. --deepspeed)
        raise UsageError(
            f"{str(error).strip().splitlines()[0]} Install it, or drop the flag that needs it."
        ) from error


# transformers' messages that name the wrong fix for the machines these scripts run on.
CLEARER_MESSAGES = {
    "doesn't support bf16/gpu": (
        "--bf16 needs a GPU with bf16 here; add --use_cpu to run bf16 on the CPU (emulated and slow on CPUs without "
        "avx512_bf16/amx_bf16), or drop --bf16"
    ),
}


def one_line_errors(parser) -> None:
    """Make an argparse parser raise UsageError (one line, with a "did you mean" for unknown flags) instead of
    printing its usage block; plain argparse scripts call this before `parse_args()`."""

    def error(message: str):
        if message.startswith("unrecognized arguments: "):
            raise UsageError(unknown_flags_message(parser, message.removeprefix("unrecognized arguments: ").split()))
        raise UsageError(f"{message} (see --help)")

    parser.error = error


def known_flags(parser) -> list[str]:
    """The --long option strings of an argparse parser."""
    return [option for action in parser._actions for option in action.option_strings if option.startswith("--")]


def did_you_mean(name: str, known: list[str]) -> str:
    """' (did you mean X?)' for the closest of `known`, or ''."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_flags_message(parser, remaining: list[str]) -> str:
    unknown = [part for part in remaining if part.startswith("-")] or remaining
    first = unknown[0].split("=", 1)[0]
    return (
        f"unknown argument {first}{did_you_mean(first, known_flags(parser))}: fix or drop it "
        f"(every unrecognized argument: {' '.join(unknown)}; see --help)"
    )


def read_argument_file(parser, path: str) -> dict:
    """The arguments in a .json/.yaml file, checked against `parser`'s flags: every key a known flag (else a
    "did you mean"), booleans written as booleans, numbers as numbers, choices among the allowed ones. Numbers
    that YAML reads as strings (`1e-4`) are converted. Raises UsageError naming the file and key."""
    if not os.path.isfile(path):
        raise UsageError(f"argument file {path} {'is a directory' if os.path.isdir(path) else 'does not exist'}")
    try:
        with open(path, encoding="utf-8") as handle:
            if path.endswith(".json"):
                values = json.load(handle)
            else:
                import yaml

                values = yaml.safe_load(handle)
    except UnicodeDecodeError as error:
        raise UsageError(f"argument file {path} is not UTF-8 text; re-encode it as UTF-8") from error
    except ValueError as error:  # json.JSONDecodeError
        raise UsageError(f"argument file {path} is not valid JSON ({error}); fix the syntax") from error
    except Exception as error:  # yaml.YAMLError: the class is only known once yaml is imported
        raise UsageError(
            f"argument file {path} is not valid YAML ({str(error).splitlines()[0]}); fix the syntax"
        ) from error
    if not isinstance(values, dict):
        raise UsageError(
            f"argument file {path} must map flag names to values (`learning_rate: 1e-4`), not hold a {type(values).__name__}"
        )
    actions = {action.dest: action for action in parser._actions if action.option_strings}
    for key, value in list(values.items()):
        if key not in actions:
            raise UsageError(
                f"argument file {path}: unknown key '{key}'{did_you_mean(str(key), list(actions))}; fix or remove it"
            )
        values[key] = _checked_file_value(path, key, value, actions[key])
    for action in actions.values():
        if action.required and action.dest not in values:
            raise UsageError(f"argument file {path} has no {action.dest} (required); add {action.dest}: <value>")
    return values


def _checked_file_value(path: str, key: str, value, action):
    kind = getattr(action.type, "__name__", "")
    where = f"argument file {path}: {key}"
    if value is None or action.nargs in ("+", "*"):
        return value
    if kind == "string_to_bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            raise UsageError(
                f"{where} is the string '{value}', not a boolean; write {key}: true or {key}: false, without quotes"
            )
        raise UsageError(f"{where} must be true or false, got {value!r}")
    if action.type in (int, float) and not isinstance(value, bool):
        try:
            number = action.type(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if isinstance(number, int | float) and (action.type is float or float(number).is_integer()):
            value = action.type(number)
        else:
            raise UsageError(f"{where} must be {'an integer' if action.type is int else 'a number'}, got {value!r}")
    elif action.type in (int, float):
        raise UsageError(f"{where} must be a number, got {value!r}")
    if action.choices is not None and value not in action.choices and str(value) not in map(str, action.choices):
        choices = ", ".join(str(choice) for choice in action.choices)
        raise UsageError(
            f"{where}: {value!r} is not one of {choices}{did_you_mean(str(value), [str(c) for c in action.choices])}"
        )
    return value


def connect_processes_without_gpus() -> None:
    """Under torchrun/accelerate on a machine without GPUs, connect the processes over gloo on the CPU (as
    --use_cpu does) instead of letting each train alone: sets ACCELERATE_USE_CPU before the device is chosen."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "torch" not in sys.modules:
        return
    if os.environ.get("ACCELERATE_USE_CPU") is not None:
        return
    import torch

    if not torch.cuda.is_available() and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        os.environ["ACCELERATE_USE_CPU"] = "true"
        if is_main_launch_process():
            print(
                f"{os.environ['WORLD_SIZE']} processes and no GPU: connecting them on the CPU over gloo "
                "(ACCELERATE_USE_CPU=true)",
                file=sys.stderr,
            )


# ---------------------------------------------------------------------------------------------------------------
# Values of the numeric flags, checked before anything loads. Each rule: flag names, the test, what it requires,
# an example of a good value. None (unset) always passes; so do the "unset" sentinels listed per rule.

_AT_LEAST_ONE = (
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "num_beams",
    "generation_num_beams",
    "eval_num_beams",
    "num_return_sequences",
    "max_source_length",
    "max_target_length",
    "max_train_samples",
    "max_eval_samples",
    "max_predict_samples",
    "preprocessing_num_workers",
    "eval_subset_size",
    "train_max_tokens_per_batch",
    "save_total_limit",
    "num_warmup_steps_per_epoch",
)
VALUE_RULES = (
    (_AT_LEAST_ONE, lambda value: value >= 1, "at least 1", "1"),
    (
        ("max_steps", "max_train_steps"),
        lambda value: value == -1 or value >= 1,
        "at least 1 (or -1: use epochs)",
        "100",
    ),
    (("num_train_epochs",), lambda value: value > 0, "positive", "3"),
    (("learning_rate",), lambda value: value > 0, "positive", "5e-5"),
    (
        ("weight_decay", "warmup_steps", "num_warmup_steps", "max_grad_norm", "seed"),
        lambda value: value >= 0,
        "0 or more",
        "0",
    ),
    (("warmup_ratio",), lambda value: 0 <= value <= 1, "between 0 and 1", "0.1"),
    (("label_smoothing_factor", "label_smoothing"), lambda value: 0 <= value < 1, "at least 0 and below 1", "0.1"),
    (
        ("generation_max_length", "val_max_target_length", "max_length"),
        lambda value: value >= 2,
        "at least 2 (the decoder start token plus one generated token)",
        "128",
    ),
    (("save_steps", "eval_steps", "logging_steps"), lambda value: value > 0, "positive", "500"),
)


def check_flag_values(*argument_groups) -> None:
    """Raise UsageError for the first flag whose value breaks `VALUE_RULES`, and for num_return_sequences above
    the number of beams; `argument_groups`: the parsed dataclasses or argparse namespaces (any attribute missing
    from all of them is skipped)."""

    def value_of(name):
        for group in argument_groups:
            if hasattr(group, name):
                return getattr(group, name)
        return None

    for names, test, requirement, example in VALUE_RULES:
        for name in names:
            value = value_of(name)
            if value is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not test(value):
                raise UsageError(f"--{name} must be {requirement}, got {value}; pass e.g. --{name} {example}")
    sequences = value_of("num_return_sequences")
    beams = value_of("num_beams") or value_of("generation_num_beams")
    if isinstance(sequences, int) and isinstance(beams, int) and sequences > beams:
        raise UsageError(
            f"--num_return_sequences {sequences} exceeds --num_beams {beams}: beam search returns at most one "
            f"sequence per beam; pass --num_beams {sequences} or more"
        )


def check_different(flag_a: str, value_a, flag_b: str, value_b, why: str) -> None:
    """Raise UsageError when two flags that must differ (input and target column, source and target language)
    have the same value."""
    if value_a is not None and value_a == value_b:
        raise UsageError(f"{flag_a} and {flag_b} are both '{value_a}': {why}; give them different values")


# Python module each --report_to integration needs.
INTEGRATION_MODULES = {
    "wandb": "wandb",
    "tensorboard": ("tensorboard", "tensorboardX"),
    "comet_ml": "comet_ml",
    "mlflow": "mlflow",
    "neptune": "neptune",
    "clearml": "clearml",
    "dvclive": "dvclive",
    "codecarbon": "codecarbon",
    "azure_ml": "azureml",
    "aim": "aim",
    "flyte": "flytekit",
    "swanlab": "swanlab",
    "trackio": "trackio",
}


def check_integrations(flag: str, report_to) -> None:
    """Raise UsageError when an integration named by `flag` (--report_to) is not installed."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    for name in names:
        if name in ("none", "all", None):
            continue
        modules = INTEGRATION_MODULES.get(name)
        if modules is None:
            continue  # an integration this table does not know: transformers/accelerate check it
        modules = (modules,) if isinstance(modules, str) else modules
        if not any(importlib.util.find_spec(module) for module in modules):
            raise UsageError(
                f"{flag} {name}: the {modules[0]} package is not installed; pip install {modules[0]}, or pass "
                f"{flag} none"
            )


def check_data_file(flag: str, path: str) -> None:
    """Raise UsageError unless `path` is an existing, non-empty .csv/.tsv/.json/.jsonl file of UTF-8 text."""
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a directory; pass a .csv, .tsv, .json or .jsonl file inside it")
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".csv", ".tsv", ".json", ".jsonl"):
        raise UsageError(f"{flag} {path}: unknown extension '{extension}'; use a .csv, .tsv, .json or .jsonl file")
    if not os.path.isfile(path):
        raise UsageError(f"{flag} {path}: no such file")
    if os.path.getsize(path) == 0:
        raise UsageError(f"{flag} {path}: the file is empty; give it one example per row/line")
    check_utf8(flag, path)


def check_text_file(flag: str, path: str) -> None:
    """Raise UsageError unless `path` is an existing file of UTF-8 text (one example per line, say)."""
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a directory; pass a text file")
    if not os.path.isfile(path):
        raise UsageError(f"{flag} {path}: no such file")
    check_utf8(flag, path)


def check_utf8(flag: str, path: str, chunk_size: int = 1 << 22) -> None:
    """Raise UsageError naming the line and byte where `path` stops being UTF-8 text (read in chunks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                bad = offset + error.start
                line += chunk[: error.start].count(b"\n")
                raise UsageError(
                    f"{flag} {path}: not UTF-8 text (line {line}, byte 0x{chunk[error.start]:02x} at offset {bad}); "
                    "re-encode it as UTF-8, e.g. iconv -f latin1 -t utf-8 IN > OUT"
                ) from None
            offset += len(chunk)
            line += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UsageError(
            f"{flag} {path}: not UTF-8 text (it ends inside a character); re-encode it as UTF-8"
        ) from None


def same_file(path_a: str, path_b: str) -> bool:
    """Whether two paths name the same file (also through links, or before the file exists)."""
    if os.path.exists(path_a) and os.path.exists(path_b):
        return os.path.samefile(path_a, path_b)
    return os.path.realpath(path_a) == os.path.realpath(path_b)


def check_output_file(
    flag: str, path: str, inputs: dict, overwrite: bool = False, overwrite_flag: str = "--overwrite"
) -> None:
    """Raise UsageError when writing `path` would destroy something: it is one of the `inputs` ({flag: path}),
    a directory, or an existing file (unless `overwrite`, the user's `overwrite_flag`)."""
    for input_flag, input_path in inputs.items():
        if input_path is not None and same_file(path, input_path):
            raise UsageError(
                f"{flag} {path} is also {input_flag}: writing it would destroy that input; write to another file"
            )
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a directory; pass a file path")
    if os.path.exists(path) and not overwrite:
        raise UsageError(f"{flag} {path} already exists; choose another path, or pass {overwrite_flag} to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(parent) and not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {path}: the folder {parent} is not writable; choose a folder you can write to")


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


# A folder holds a usable tokenizer when it has one of these vocabulary files (without one, transformers builds
# an empty tokenizer: every word <unk>, no error).
TOKENIZER_VOCABULARY_FILES = (
    "tokenizer.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "sentencepiece.model",
    "tokenizer.model",
    "source.spm",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "prophetnet.tokenizer",
)


def check_tokenizer_files(flag: str, folder: str) -> None:
    """Raise UsageError for a local model folder without tokenizer files: transformers would build an empty
    tokenizer from it (every token <unk>, scores 0, no error)."""
    if not os.path.isdir(folder):
        return
    if not os.path.isfile(os.path.join(folder, "config.json")) and flag == "--model_name_or_path":
        raise UsageError(
            f"{flag} {folder} has no config.json: not a model folder; pass a folder saved with save_pretrained"
        )
    if not any(os.path.isfile(os.path.join(folder, name)) for name in TOKENIZER_VOCABULARY_FILES):
        raise UsageError(
            f"{flag} {folder} has no tokenizer files (none of tokenizer.json, spiece.model, vocab.json, ...); "
            "save the tokenizer there (tokenizer.save_pretrained) or pass --tokenizer_name"
        )


def checkpoint_problem(folder: str, step: int | None, required_files=TRAINER_RESUME_FILES) -> str | None:
    """Why `folder` cannot be resumed from (a missing or empty file, a trainer_state.json that does not parse or
    names another step), or None when every file the resume needs is there. `required_files`: groups of names,
    one of each group must be present."""
    for names in required_files:
        present = [name for name in names if os.path.isfile(os.path.join(folder, name))]
        if not present:
            return f"no {' or '.join(names)}"
        if all(os.path.getsize(os.path.join(folder, name)) == 0 for name in present):
            return f"{present[0]} is empty"
    state_path = os.path.join(folder, "trainer_state.json")
    if os.path.isfile(state_path):
        try:
            with open(state_path, encoding="utf-8") as handle:
                global_step = json.load(handle).get("global_step")
        except (OSError, ValueError, AttributeError):
            return "trainer_state.json does not parse"
        if step is not None and global_step != step:
            return f"trainer_state.json names step {global_step}"
    return None


def last_complete_checkpoint(output_dir: str, required_files=TRAINER_RESUME_FILES) -> str | None:
    """The newest `checkpoint-N` folder in `output_dir` that a resume can load, or None.

    A checkpoint is complete when every file the resume reads is there and non-empty and its trainer_state.json
    (written last) names step N; a folder left half-written by a killed job, or missing e.g. its optimizer
    state, is skipped with a warning saying what is missing.
    """
    steps = sorted(
        int(match.group(1)) for name in os.listdir(output_dir) if (match := re.fullmatch(r"checkpoint-(\d+)", name))
    )
    for step in reversed(steps):
        folder = os.path.join(output_dir, f"checkpoint-{step}")
        problem = checkpoint_problem(folder, step, required_files)
        if problem is None:
            return folder
        logger.warning(f"skipping {folder}: incomplete ({problem}); a resume starts from an earlier checkpoint")
    return None


@contextmanager
def atomic_write(path: str, mode: str = "w"):
    """Open a temporary file beside `path` for writing; rename it over `path` when the block ends without an
    error. A killed job leaves the old file or the new one, never half of one; a failed block leaves no file."""
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json_atomically(path: str, data: dict) -> None:
    """Write `data` as JSON through a temporary file and a rename (see `atomic_write`)."""
    with atomic_write(path) as handle:
        json.dump(_finite_or_none(data), handle, indent=4, sort_keys=True, allow_nan=False, default=str)


SECRET_ARGUMENTS = ("token", "hub_token", "push_to_hub_token", "hub_private_repo_token")


def save_run_arguments(output_dir: str, *argument_groups) -> None:
    """Write every argument of this run (dataclasses or argparse namespaces, by group) to
    `output_dir/run_arguments.json`, secrets masked: the full record, kept out of the console log. Main process."""
    if not is_main_launch_process():
        return
    record = {}
    for group in argument_groups:
        values = group.to_dict() if hasattr(group, "to_dict") else dict(vars(group))
        record[type(group).__name__] = {
            key: "<secret>" if key in SECRET_ARGUMENTS and value else value for key, value in sorted(values.items())
        }
    os.makedirs(output_dir, exist_ok=True)
    write_json_atomically(os.path.join(output_dir, ARGUMENTS_FILE), record)


def _finite_or_none(value):
    """`value` with NaN and infinite floats replaced by None: JSON has no NaN (json.dump writes a bare NaN that
    strict readers reject)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


def save_results(trainer, split: str, metrics: dict) -> None:
    """For a `Trainer`: like `trainer.save_metrics` (`{split}_results.json`, merged into `all_results.json`), written atomically."""
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


def save_trainer_state(trainer) -> None:
    """For a `Trainer`: like `trainer.save_state` (`trainer_state.json`: the log history), written atomically."""
    if trainer.is_world_process_zero():
        path = os.path.join(trainer.args.output_dir, "trainer_state.json")
        trainer.state.save_to_json(f"{path}.tmp")
        os.replace(f"{path}.tmp", path)


def check_output_dir(
    training_args, result_files: tuple[str, ...] = RESULT_FILES, checkpoint_files=TRAINER_RESUME_FILES
) -> str | None:
    """Take the --output_dir lock (`lock_output_dir`), then decide what to do with an existing --output_dir;
    return a checkpoint to resume from, or None.

    An empty or missing folder is fine. A folder that holds only `checkpoint-*` folders (a training job
    that was killed) is resumed from its last complete checkpoint when training, or started over when none is
    complete (killed while writing its first). Anything else is refused unless
    --overwrite_output_dir or --resume_from_checkpoint is given, so no earlier result is overwritten silently.
    `result_files` are the file names that mean "results here" (a script that writes fewer can pass its own);
    `checkpoint_files` what a complete checkpoint holds (see `checkpoint_problem`).
    """
    output_dir = training_args.output_dir
    lock_output_dir(output_dir, find_checkpoint=lambda: last_complete_checkpoint(output_dir, checkpoint_files))
    if not os.path.isdir(output_dir) or training_args.overwrite_output_dir:
        return None
    entries = sorted(name for name in os.listdir(output_dir) if name not in BOOKKEEPING_FILES)
    if not entries or training_args.resume_from_checkpoint:
        return None
    last_checkpoint = last_complete_checkpoint(output_dir, checkpoint_files)
    results = [name for name in entries if name in result_files]
    if training_args.do_train and last_checkpoint is not None and not results:
        return last_checkpoint
    if training_args.do_train and all(re.fullmatch(r"checkpoint-\d+", name) for name in entries):
        # Killed while writing its first checkpoint: nothing to resume from, nothing of the user's to keep.
        for name in entries:
            shutil.rmtree(os.path.join(output_dir, name))
        logger.warning(
            f"--output_dir {output_dir}: no complete checkpoint to resume from; removed the incomplete "
            f"{', '.join(entries)} and starting over"
        )
        return None
    shown = ", ".join((results or entries)[:5]) + (", ..." if len(results or entries) > 5 else "")
    resume_hint = f", --resume_from_checkpoint {last_checkpoint}" if last_checkpoint else ""
    raise UsageError(
        f"--output_dir {output_dir} already holds an earlier run ({shown}); choose a new --output_dir, "
        f"or pass --overwrite_output_dir to replace it{resume_hint}"
    )


def remove_previous_run(output_dir: str, result_files: tuple[str, ...] = RESULT_FILES) -> None:
    """For --overwrite_output_dir: delete an earlier run's result files and checkpoints (nothing else)."""
    if not os.path.isdir(output_dir):
        return
    for name in sorted(os.listdir(output_dir)):
        path = os.path.join(output_dir, name)
        if name in result_files:
            os.remove(path)
        elif name.startswith("checkpoint-") and os.path.isdir(path):
            shutil.rmtree(path)
        else:
            continue
        logger.info(f"--overwrite_output_dir: removed {path} from the earlier run")


# ---------------------------------------------------------------------------------------------------------------
# One run per --output_dir: a lock file with the owner's process id and host.

_RUN = {"output_dir": None, "find_checkpoint": None}


def is_main_launch_process() -> bool:
    """Whether this is the process that writes shared outputs: rank 0 of a torchrun/accelerate launch, or the only
    process."""
    return int(os.environ.get("RANK", "0")) == 0


def _process_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # running, as another user
        return True
    return True


def lock_output_dir(output_dir: str, flag: str = "--output_dir", find_checkpoint=None) -> None:
    """Make this run the only one writing into `output_dir` until it exits: create `output_dir/run.lock` (process
    id, host, start time, command) or raise UsageError naming the run that holds it. A lock left by a process of
    this host that no longer runs (a killed job) is taken over with a warning. Only the main launch process locks
    (the others write nothing of their own there). `find_checkpoint()` tells an interrupted run what it saved."""
    _RUN["output_dir"], _RUN["find_checkpoint"] = output_dir, find_checkpoint
    if not is_main_launch_process() or _RUN.get("lock") == os.path.join(output_dir, LOCK_FILE):
        return
    lock_path = os.path.join(output_dir, LOCK_FILE)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UsageError(f"{flag} {output_dir} is a file; pass a folder (new or empty) for the run's outputs")
    created_folder = not os.path.isdir(output_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"{flag} {output_dir} cannot be created ({error.strerror}); choose a folder you can write to"
        ) from error
    if not os.access(output_dir, os.W_OK):
        raise UsageError(
            f"{flag} {output_dir} is not writable; choose a folder you can write to, or fix its permissions"
        )
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    owner["command"] = shlex.join(getattr(sys, "orig_argv", sys.argv))
    for _ in range(2):
        try:
            descriptor = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(lock_path)
            alive = holder.get("host") != owner["host"] or _process_is_running(int(holder.get("pid", -1)))
            if holder and alive:
                raise UsageError(
                    f"{flag} {output_dir} is in use by another run (process {holder.get('pid')} on "
                    f"{holder.get('host')}, started {holder.get('started')}); wait for it to end or choose another "
                    f"{flag} (if that run is gone, delete {lock_path})"
                ) from None
            logger.warning(
                f"{flag} {output_dir}: taking over the lock of process {holder.get('pid', '?')}, which no longer runs "
                "(it was killed)"
            )
            try:
                os.remove(lock_path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(owner, handle)
        _RUN["lock"] = lock_path
        atexit.register(_release_lock, lock_path, owner["pid"], output_dir if created_folder else None)
        return
    raise UsageError(f"{flag} {output_dir}: could not take {lock_path}; another run is starting there")


def _read_lock(lock_path: str) -> dict:
    """The lock's owner, or {} when the file is unreadable (a process killed while writing it)."""
    try:
        with open(lock_path, encoding="utf-8") as handle:
            holder = json.load(handle)
        return holder if isinstance(holder, dict) and "pid" in holder else {}
    except (OSError, ValueError):
        return {}


def _release_lock(lock_path: str, pid: int, created_folder: str | None) -> None:
    """At exit: remove our lock (and the output folder this run created, if nothing else was written into it)."""
    if _read_lock(lock_path).get("pid") == pid:
        os.remove(lock_path)
    if created_folder is not None and os.path.isdir(created_folder) and not os.listdir(created_folder):
        os.rmdir(created_folder)


# ---------------------------------------------------------------------------------------------------------------
# Interrupts: Ctrl-C and SIGTERM end with one line saying what was saved and how to resume.


class Interrupted(KeyboardInterrupt):
    """SIGTERM (what batch schedulers send before they kill a job), raised where the job is, like Ctrl-C."""


def _raise_interrupted(signal_number, frame):
    raise Interrupted()


def resume_command() -> str:
    """The command that started this process, for the user to run again (the launcher's, under torchrun)."""
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        script_index = next((i for i, part in enumerate(argv) if part.endswith(".py")), 1)
        nproc = os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])
        return shlex.join(["torchrun", "--nproc_per_node", nproc, *argv[script_index:]])
    return shlex.join(argv)


def interrupted_message(signal_name: str) -> str:
    """One line: what the interrupted run saved, and the command to resume it."""
    output_dir, find_checkpoint = _RUN["output_dir"], _RUN["find_checkpoint"]
    if output_dir is None:
        return f"interrupted ({signal_name}) before anything was written; rerun to start again: {resume_command()}"
    checkpoint = None
    if find_checkpoint is not None and os.path.isdir(output_dir):
        logging.disable(logging.WARNING)  # the skipped-checkpoint warnings would split the one line
        try:
            checkpoint = find_checkpoint()
        finally:
            logging.disable(logging.NOTSET)
    results = sorted(set(os.listdir(output_dir)) & set(RESULT_FILES)) if os.path.isdir(output_dir) else []
    if results:
        return (
            f"interrupted ({signal_name}); {output_dir} holds the finished stages' results ({', '.join(results)}); "
            f"to redo the rest, rerun with another --output_dir (or --overwrite_output_dir): {resume_command()}"
        )
    saved = f"last complete checkpoint: {checkpoint}" if checkpoint else "no checkpoint saved yet"
    return f"interrupted ({signal_name}); {saved}; rerun the same command to resume: {resume_command()}"


def run_cli(main) -> None:
    """Run `main()`: a UsageError becomes `error: <message>` on stderr and exit code 2; Ctrl-C and SIGTERM one line
    with what was saved and the resume command, exit codes 130 and 143; anything else is a bug (a traceback)."""
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        main()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Interrupted)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while we report would print a traceback
        if "tqdm" in sys.modules:  # close progress bars first: closed at exit, they would redraw after our line
            for bar in list(getattr(sys.modules["tqdm"].tqdm, "_instances", [])):
                bar.close()
        if is_main_launch_process():
            print(f"\n{interrupted_message('SIGTERM' if terminated else 'SIGINT, Ctrl-C')}", file=sys.stderr)
        sys.exit(143 if terminated else 130)
