"""Argument checks and output safety shared by every seq2seq example script (PyTorch and TensorFlow alike).

One-line user errors (`UsageError`, printed by `run_cli`), argument files, input-file and Hub checks, and what keeps
earlier results safe: the --output_dir guard, complete-checkpoint detection and files written through a temporary
file and a rename. Imports neither torch nor TensorFlow: the same file serves the PyTorch folders (transformers 5)
and the Keras folders (transformers 4.57), kept identical by `utils/check_copies.py` (edit the summarization copy,
then `make fix-copies`).
"""

import json
import logging
import os
import re
import shutil
import sys

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
    "trainer_state.json",
)


DATA_FILE_FLAGS = {"train": "--train_file", "validation": "--validation_file", "test": "--test_file"}


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
    return its dataclasses. Raises UsageError."""
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


def check_data_file(flag: str, path: str) -> None:
    """Raise UsageError unless `path` is an existing, non-empty .csv/.tsv/.json/.jsonl file."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".csv", ".tsv", ".json", ".jsonl"):
        raise UsageError(f"{flag} {path}: unknown extension '{extension}'; use a .csv, .tsv, .json or .jsonl file")
    if not os.path.isfile(path):
        raise UsageError(f"{flag} {path}: no such file")
    if os.path.getsize(path) == 0:
        raise UsageError(f"{flag} {path}: the file is empty; give it one example per row/line")


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


def write_json_atomically(path: str, data: dict) -> None:
    """Write `data` to a temp file, then rename it over `path`: a killed job leaves the old file or the new one."""
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=4, sort_keys=True)
    os.replace(f"{path}.tmp", path)


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


def check_output_dir(training_args, result_files: tuple[str, ...] = RESULT_FILES) -> str | None:
    """Decide what to do with an existing --output_dir; return a checkpoint to resume from, or None.

    An empty or missing folder is fine. A folder that holds only `checkpoint-*` folders (a training job
    that was killed) is resumed from its last checkpoint when training. Anything else is refused unless
    --overwrite_output_dir or --resume_from_checkpoint is given, so no earlier result is overwritten silently.
    `result_files` are the file names that mean "results here" (a script that writes fewer can pass its own).
    """
    output_dir = training_args.output_dir
    if not os.path.isdir(output_dir) or training_args.overwrite_output_dir:
        return None
    entries = sorted(os.listdir(output_dir))
    if not entries or training_args.resume_from_checkpoint:
        return None
    last_checkpoint = last_complete_checkpoint(output_dir)
    results = [name for name in entries if name in result_files]
    if training_args.do_train and last_checkpoint is not None and not results:
        return last_checkpoint
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


def run_cli(main) -> None:
    """Run `main()`: a UsageError becomes `error: <message>` on stderr and exit code 2; anything else is a bug."""
    try:
        main()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
