#!/usr/bin/env python
"""Run one of our Trainer scripts on several TPU cores with torch_xla.

The target script is imported as a module and its `_mp_fn(index)` entry point is started once per core by
`torch_xla`'s multiprocessing spawner; the script sees its own arguments in `sys.argv` as usual:

    python examples/pytorch/xla_spawn.py --num_cores 8 \
        examples/pytorch/summarization/run_summarization.py \
        --model_name_or_path google-t5/t5-small --source_prefix "summarize: " \
        --dataset_name xsum --do_train --do_eval --predict_with_generate --output_dir outputs/xsum-tpu

Needs a TPU machine with a `torch_xla` that matches the installed torch. Without one, this launcher checks
the script and its arguments and stops with a one-line error before spawning anything.
"""

import argparse
import importlib.util
import os
import sys
from types import ModuleType


class UsageError(ValueError):
    """A problem with the launcher's arguments or environment: one line, no traceback."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a training script on several TPU cores with torch_xla.")
    parser.add_argument("--num_cores", type=int, default=1, help="Number of TPU cores to use (1 or 8 on a TPU VM).")
    parser.add_argument("training_script", help="Path of the script to run on every core; it must define _mp_fn.")
    parser.add_argument("training_script_args", nargs=argparse.REMAINDER, help="The script's own arguments.")
    return parser.parse_args()


def load_training_script(path: str) -> ModuleType:
    """Import the script at `path` as a module (its `main()` does not run); raise UsageError if it has no `_mp_fn`."""
    if not os.path.isfile(path):
        raise UsageError(f"training script {path}: no such file")
    # The script's folder goes first on sys.path, as when it is run directly.
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "_mp_fn", None)):
        raise UsageError(f"training script {path} defines no _mp_fn(index) entry point for TPU launches")
    return module


def main() -> None:
    args = parse_args()
    if args.num_cores < 1:
        raise UsageError(f"--num_cores must be at least 1, got {args.num_cores}")
    module = load_training_script(args.training_script)
    try:
        import torch_xla.distributed.xla_multiprocessing as xmp
    except ImportError as error:  # not installed, or built for another torch (an ABI mismatch fails here too)
        raise UsageError(
            f"torch_xla cannot be imported ({error}); xla_spawn.py needs a TPU machine with a torch_xla that "
            "matches torch. On GPUs or CPUs, use torchrun or accelerate launch instead"
        ) from error
    sys.argv = [args.training_script, *args.training_script_args]
    xmp.spawn(module._mp_fn, args=(), nprocs=args.num_cores)


if __name__ == "__main__":
    try:
        main()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
