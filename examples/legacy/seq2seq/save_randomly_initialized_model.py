#!/usr/bin/env python
"""Save a randomly initialized seq2seq model built from a config (with overrides) and the original tokenizer.

    python examples/legacy/seq2seq/save_randomly_initialized_model.py facebook/bart-large-cnn tiny-bart \
        --encoder_layers=1 --decoder_layers=1 --d_model=32 --encoder_attention_heads=2 --decoder_attention_heads=2

CONFIG_NAME is a local model folder or a Hub id (a Hub id needs HF_HUB_OFFLINE unset or a cached copy).
Every other `--key=value` / `--key value` overrides that config key; values are read as JSON when they can
be (`32`, `0.5`, `true`, `null`, `[1, 2]`; also `True`/`False`/`None`), else kept as strings (`relu`).
A key the config does not have is an error (upstream silently added it). Weights are drawn from
`torch.manual_seed(--seed)`, so the same command gives the same model.
"""

import argparse
import difflib
import json
import os
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM

from seq2seq_checks import check_flag_values, one_line_errors
from utils import UsageError, load_tokenizer, run_cli


def parse_overrides(items: list[str]) -> dict:
    """`["--d_model=32", "--activation_function", "relu"]` -> `{"d_model": 32, "activation_function": "relu"}`.

    Raises:
        UsageError: an item that is not `--key=value` / `--key value`.
    """
    overrides: dict = {}
    items = list(items)
    while items:
        key = items.pop(0)
        if not key.startswith("--") or len(key) == 2:
            raise UsageError(f"unexpected argument {key!r}; config overrides look like --d_model=32")
        if "=" in key:
            key, value = key.split("=", 1)
        elif items and not items[0].startswith("--"):
            value = items.pop(0)
        else:
            raise UsageError(f"{key} has no value; write {key}=VALUE")
        value = {"True": "true", "False": "false", "None": "null"}.get(value, value)
        try:
            overrides[key[2:]] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key[2:]] = value
    return overrides


def load_config(config_name: str, overrides: dict):
    """The config of `config_name` with `overrides` applied (an int given for a float key becomes a float).

    Raises:
        UsageError: the config cannot be loaded, an override names a key the config does not have, or its
            value has the wrong type.
    """
    try:
        config = AutoConfig.from_pretrained(config_name)
    except (OSError, ValueError) as err:
        raise UsageError(
            f"cannot load a config from {config_name} ({str(err).splitlines()[0]}); pass a local model folder "
            "or a Hub id (with HF_HUB_OFFLINE unset)"
        ) from None
    known = set(config.to_dict()) | set(getattr(config, "attribute_map", {}))
    unknown = sorted(key for key in overrides if key not in known)
    if unknown:
        hints = [
            f"--{key}" + "".join(f" (did you mean --{m}?)" for m in difflib.get_close_matches(key, known, n=1))
            for key in unknown
        ]
        raise UsageError(f"the {config.model_type} config has no key {', '.join(hints)}; fix or drop the override")
    for key, value in overrides.items():
        if isinstance(getattr(config, key), float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        try:
            setattr(config, key, value)
        except (TypeError, ValueError) as err:
            raise UsageError(f"--{key}={value!r} is not valid for the {config.model_type} config ({err})") from None
    return config


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("config_name", help="local model folder or Hub id whose config (and tokenizer) to use")
    parser.add_argument("save_dir", help="where the model and tokenizer go; must be empty or new")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args, rest = parser.parse_known_args(argv)
    overrides = parse_overrides(rest)
    check_flag_values(args)
    if os.path.isfile(args.save_dir):
        raise UsageError(f"SAVE_DIR {args.save_dir} is a file; pass a new folder")
    if os.path.isdir(args.save_dir) and os.listdir(args.save_dir):
        raise UsageError(f"{args.save_dir} is not empty; pass a new save_dir")

    config = load_config(args.config_name, overrides)
    tokenizer = load_tokenizer("CONFIG_NAME", args.config_name)
    torch.manual_seed(args.seed)
    try:
        model = AutoModelForSeq2SeqLM.from_config(config)
    except ValueError as err:  # e.g. d_model not divisible by the number of heads, or not a seq2seq config
        raise UsageError(f"cannot build a model from {args.config_name} with {overrides}: {err}") from None

    Path(args.save_dir).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.save_dir)
    tokenizer.save_pretrained(args.save_dir)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"saved a randomly initialized {model.__class__.__name__} ({n_params} parameters) to {args.save_dir}")


if __name__ == "__main__":
    run_cli(main)
