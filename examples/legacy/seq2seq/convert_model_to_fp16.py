#!/usr/bin/env python
"""Save a state dict (`model.safetensors` or `pytorch_model.bin`) with its float tensors in fp16.

    python examples/legacy/seq2seq/convert_model_to_fp16.py model/model.safetensors --save_path model_fp16.safetensors

Halves the file size. As upstream, without --save_path the source file is overwritten. Integer and
bool tensors are kept as they are (upstream halved every tensor). The output format follows the
save path's extension: `.safetensors`, otherwise a `torch.save` pickle. `.bin` inputs are loaded with
`weights_only=True`. Values outside fp16's range (|x| > 65504) become inf: a warning names them.
"""

import argparse
import os
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seq2seq_checks import check_output_file, one_line_errors
from utils import UsageError, run_cli


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("src_path", help="a .safetensors or .bin (torch.save) state dict")
    parser.add_argument("--save_path", default=None, help="where the fp16 state dict goes (default: overwrite src)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --save_path (else refused)")
    return parser.parse_args(argv)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of `path`. Raises UsageError for a missing file or a file that is not a state dict."""
    if path.is_dir():
        raise UsageError(f"SRC_PATH {path} is a directory; pass the model.safetensors or pytorch_model.bin inside it")
    if not path.is_file():
        raise UsageError(f"{path} does not exist; pass a model.safetensors or pytorch_model.bin file")
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, ValueError, EOFError, OSError) as error:
        # torch.load's UnpicklingError is a RuntimeError subclass in weights_only mode; a truncated file is EOFError
        raise UsageError(
            f"SRC_PATH {path} is not a readable state dict ({str(error).strip().splitlines()[0][:120]}); pass a "
            "model.safetensors or pytorch_model.bin file"
        ) from None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise UsageError(f"{path} is not a state dict of tensors; save one with torch.save(model.state_dict())")
    return state_dict


def convert(src_path: str, save_path: str | None = None) -> dict[str, torch.Tensor]:
    """Write the fp16 version of `src_path` to `save_path` (default: `src_path`); returns it."""
    state_dict = load_state_dict(Path(src_path))
    halved = {k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}
    overflow = [k for k, v in halved.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if overflow:
        print(f"warning: values out of fp16 range became inf in {', '.join(overflow[:5])}", file=sys.stderr)
    target = Path(save_path or src_path)
    # Written beside the target and renamed over it: a killed run (or a full disk) never leaves half a file, which
    # matters most when the source itself is replaced.
    temporary = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        if target.suffix == ".safetensors":
            # safetensors refuses tensors that share memory; clone so every entry owns its storage.
            save_file({k: v.contiguous().clone() for k, v in halved.items()}, temporary, metadata={"format": "pt"})
        else:
            torch.save(halved, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return halved


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.save_path is not None:
        # No --save_path means "in place" (as upstream); an explicit one never replaces the source or another file.
        check_output_file("--save_path", args.save_path, {"SRC_PATH": args.src_path}, overwrite=args.overwrite)
    halved = convert(args.src_path, args.save_path)
    n_half = sum(v.dtype == torch.float16 for v in halved.values())
    print(f"saved {len(halved)} tensors ({n_half} in fp16) to {args.save_path or args.src_path}")


if __name__ == "__main__":
    run_cli(main)
