#!/usr/bin/env python
"""Make a smaller student from a seq2seq teacher by copying some of its layers (DistilBART "shrink").

    python examples/legacy/seq2seq/make_student.py facebook/bart-large-cnn --save_path student_cnn_12_6 -e 12 -d 6

The student has the teacher's config with fewer encoder (-e) and/or decoder (-d) layers (omitted: as many as
the teacher). It gets the teacher's embeddings, positional tables, layer norms, LM head and
`final_logits_bias`, and for each stack the teacher layers of `LAYERS_TO_COPY` (first and last layer kept,
the rest spread evenly), or the first N with --copy_first_teacher_layers, or an explicit list
(--e_layers_to_copy 0,6,11). The copied layer ids are recorded in `config.init_metadata`; the model,
its generation config and the teacher's tokenizer are saved to --save_path. Supported: BART, mBART,
Marian, Pegasus, T5/mT5 (and other models with the same layouts). Extra `--key=value` arguments override
config fields (e.g. `--dropout=0.0`).
"""

import argparse
import copy
import logging
import os
import shutil
import warnings

import torch
from transformers import AutoModelForSeq2SeqLM

from seq2seq_checks import one_line_errors
from utils import (
    UsageError,
    check_seq2seq_model,
    load_seq2seq_model,
    load_tokenizer,
    parse_numeric_n_bool_cl_kwargs,
    run_cli,
)

logger = logging.getLogger(__name__)

# teacher depth -> student depth -> teacher layers to copy (0-based), from the DistilBART recipes.
LAYERS_TO_COPY = {
    12: {
        1: [0],
        2: [0, 6],
        3: [0, 6, 11],
        4: [0, 4, 8, 11],
        6: [0, 2, 4, 7, 9, 11],
        9: [0, 1, 2, 4, 5, 7, 9, 10, 11],
        12: list(range(12)),
    },
    16: {
        1: [0],
        2: [0, 15],
        3: [0, 8, 15],
        4: [0, 5, 10, 15],
        6: [0, 3, 6, 9, 12, 15],
        8: [0, 2, 4, 6, 8, 10, 12, 15],
        9: [0, 1, 3, 5, 7, 9, 11, 13, 15],
        12: [0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 15],
        16: list(range(16)),
    },
    6: {1: [0], 2: [0, 5], 3: [0, 2, 5], 4: [0, 1, 3, 5], 6: list(range(6))},
}
# teacher depth -> student depth -> teacher hidden states each student layer imitates (--supervise_forward).
LAYERS_TO_SUPERVISE = {
    6: {1: [5], 2: [3, 5], 3: [1, 4, 5], 4: [1, 2, 4, 5]},
    12: {1: [11], 2: [5, 11], 3: [3, 7, 11], 6: [1, 3, 5, 8, 10, 11]},
    16: {1: [15], 4: [4, 9, 12, 15], 8: [1, 3, 5, 7, 9, 11, 13, 15]},
}


def pick_layers_to_copy(n_student: int, n_teacher: int) -> list[int]:
    """Teacher layers for an n_student-layer stack: the LAYERS_TO_COPY entry, else the first n_student
    (with a warning unless the depths are equal)."""
    try:
        return list(LAYERS_TO_COPY[n_teacher][n_student])
    except KeyError:
        if n_student != n_teacher:
            warnings.warn(
                f"no LAYERS_TO_COPY entry for a {n_teacher}-layer teacher and a {n_student}-layer student; "
                f"copying the first {n_student} layers",
                stacklevel=2,
            )
        return list(range(n_student))


def get_layers_to_supervise(n_student: int, n_teacher: int) -> list[int]:
    """Teacher hidden-state indices matched to the student's layers under --supervise_forward."""
    if n_student > n_teacher:
        raise UsageError(f"a {n_student}-layer student cannot be supervised by a {n_teacher}-layer teacher")
    if n_student == n_teacher:
        return list(range(n_teacher))
    if n_student == 1:
        return [n_teacher - 1]
    try:
        return list(LAYERS_TO_SUPERVISE[n_teacher][n_student])
    except KeyError:
        known = ", ".join(f"{t}->{sorted(v)}" for t, v in LAYERS_TO_SUPERVISE.items())
        raise UsageError(
            f"--supervise_forward has no layer map for a {n_teacher}-layer teacher and a {n_student}-layer "
            f"student (known teacher->student depths: {known}); drop --supervise_forward to supervise each "
            "student layer with the teacher layer it was copied from"
        ) from None


def layer_stacks(model) -> tuple[torch.nn.ModuleList, torch.nn.ModuleList]:
    """The encoder and decoder layer lists: `.layers` (BART family) or `.block` (T5)."""
    stacks = []
    for stack in (model.get_encoder(), model.get_decoder()):
        layers = getattr(stack, "layers", None)
        if layers is None:
            layers = getattr(stack, "block", None)
        if not isinstance(layers, torch.nn.ModuleList):
            raise UsageError(
                f"make_student does not support {model.config.model_type} models (no encoder/decoder `layers` or "
                "`block` list); use BART, mBART, Marian, Pegasus or T5"
            )
        stacks.append(layers)
    return stacks[0], stacks[1]


def layer_count_keys(config) -> tuple[str, str]:
    """Config fields holding the encoder and decoder depths."""
    if config.model_type in ("t5", "mt5", "umt5"):
        return "num_layers", "num_decoder_layers"
    if hasattr(config, "encoder_layers") and hasattr(config, "decoder_layers"):
        return "encoder_layers", "decoder_layers"
    raise UsageError(
        f"make_student does not support {config.model_type} models (no encoder_layers/decoder_layers in the "
        "config); use BART, mBART, Marian, Pegasus or T5"
    )


def check_layer_list(flag: str, layers: list[int], n_student: int, n_teacher: int) -> None:
    if len(layers) != n_student:
        raise UsageError(f"{flag} lists {len(layers)} layers but the student stack has {n_student}")
    if any(not 0 <= layer < n_teacher for layer in layers):
        raise UsageError(f"{flag} {layers}: teacher layers are numbered 0..{n_teacher - 1}")
    if len(set(layers)) != len(layers):
        raise UsageError(f"{flag} {layers}: a teacher layer is listed twice")


def create_student_by_copying_alternating_layers(
    teacher,
    save_path: str | os.PathLike | None = "student",
    e: int | None = None,
    d: int | None = None,
    copy_first_teacher_layers: bool = False,
    e_layers_to_copy: list[int] | None = None,
    d_layers_to_copy: list[int] | None = None,
    **extra_config_kwargs,
):
    """Build (and, with `save_path`, save) a student; returns (student, encoder layers copied, decoder layers copied).

    `teacher` is a loaded model or a name/path (then its tokenizer is saved beside the student too).
    `e` / `d` = student depths (None: the teacher's). Raises UsageError for both None, a student deeper than
    the teacher, a bad explicit layer list, or an architecture without the expected layer lists.
    """
    if e is None and d is None:
        raise UsageError("give the student's encoder (-e) and/or decoder (-d) depth; both were left out")
    tokenizer = None
    if isinstance(teacher, str | os.PathLike):
        check_seq2seq_model("TEACHER", str(teacher))
        tokenizer = load_tokenizer("TEACHER", str(teacher))
        teacher = load_seq2seq_model("TEACHER", str(teacher))
    if not getattr(teacher.config, "is_encoder_decoder", False):
        raise UsageError(f"the teacher is a {teacher.config.model_type} model, not an encoder-decoder")
    enc_key, dec_key = layer_count_keys(teacher.config)
    teacher_enc_layers, teacher_dec_layers = layer_stacks(teacher)
    n_teacher_enc, n_teacher_dec = len(teacher_enc_layers), len(teacher_dec_layers)
    e = n_teacher_enc if e is None else e
    d = n_teacher_dec if d is None else d
    for flag, n_student, n_teacher in (("-e", e, n_teacher_enc), ("-d", d, n_teacher_dec)):
        if not 1 <= n_student <= n_teacher:
            raise UsageError(
                f"{flag} {n_student}: the student needs 1..{n_teacher} layers (the teacher has {n_teacher})"
            )

    # The student config is the teacher's with new depths (and any overrides).
    config = copy.deepcopy(teacher.config)
    setattr(config, enc_key, e)
    setattr(config, dec_key, d)
    for key, value in extra_config_kwargs.items():
        if not hasattr(config, key):
            raise UsageError(f"--{key}: a {config.model_type} config has no such field")
        setattr(config, key, value)
    student = AutoModelForSeq2SeqLM.from_config(config)
    student.generation_config = copy.deepcopy(teacher.generation_config)

    # One non-strict load copies embeddings, positions, norms, LM head, final_logits_bias and the first layers;
    # the teacher's extra layers are unexpected keys. No student tensor may be left out.
    missing, _ = student.load_state_dict(teacher.state_dict(), strict=False)
    tied = set(getattr(student, "_tied_weights_keys", None) or [])  # tied copies are filled by tying
    missing = [key for key in missing if key not in tied]
    if missing:
        raise RuntimeError(f"student tensors not found in the teacher: {missing[:5]}")

    if copy_first_teacher_layers:
        e_layers, d_layers = list(range(e)), list(range(d))
    else:
        e_layers = list(e_layers_to_copy) if e_layers_to_copy is not None else pick_layers_to_copy(e, n_teacher_enc)
        d_layers = list(d_layers_to_copy) if d_layers_to_copy is not None else pick_layers_to_copy(d, n_teacher_dec)
    check_layer_list("--e_layers_to_copy", e_layers, e, n_teacher_enc)
    check_layer_list("--d_layers_to_copy", d_layers, d, n_teacher_dec)
    student_enc_layers, student_dec_layers = layer_stacks(student)
    # Student layer k <- teacher layer list[k], for both stacks (the identity when a stack keeps its depth).
    student_enc_layers.load_state_dict(torch.nn.ModuleList([teacher_enc_layers[i] for i in e_layers]).state_dict())
    student_dec_layers.load_state_dict(torch.nn.ModuleList([teacher_dec_layers[i] for i in d_layers]).state_dict())

    student.config.init_metadata = {
        "teacher_type": teacher.config.model_type,
        "copied_encoder_layers": e_layers,
        "copied_decoder_layers": d_layers,
    }
    if save_path is not None:
        save_student(student, tokenizer, str(save_path))
    return student, e_layers, d_layers


def save_student(student, tokenizer, save_path: str) -> None:
    """`save_pretrained` into a folder beside `save_path`, renamed to it when complete: a killed run leaves no
    half-written student."""
    staging = f"{save_path.rstrip(os.sep)}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        student.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if os.path.isdir(save_path) and not os.listdir(save_path):
            os.rmdir(save_path)
        os.replace(staging, save_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def parse_layer_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UsageError(f"layer list {text!r}: write comma-separated layer numbers, e.g. 0,6,11") from None


def main(argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("teacher", help="teacher model folder or Hub id")
    parser.add_argument("--save_path", default="student", help="where the student goes (default: ./student)")
    parser.add_argument("-e", type=int, default=None, help="student encoder layers (default: the teacher's)")
    parser.add_argument("-d", type=int, default=None, help="student decoder layers (default: the teacher's)")
    parser.add_argument("--copy_first_teacher_layers", action="store_true", help="copy layers 0..N-1")
    parser.add_argument("--e_layers_to_copy", help="explicit teacher encoder layers, e.g. 0,6,11")
    parser.add_argument("--d_layers_to_copy", help="explicit teacher decoder layers, e.g. 0,11")
    args, unknown = parser.parse_known_args(argv)
    try:
        overrides = parse_numeric_n_bool_cl_kwargs(unknown)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if os.path.isfile(args.save_path):
        raise UsageError(f"--save_path {args.save_path} is a file; choose a new folder")
    if os.path.isdir(args.save_path) and os.listdir(args.save_path):
        raise UsageError(f"--save_path {args.save_path} is not empty; choose a new folder or empty it")
    for flag, value in (("-e", args.e), ("-d", args.d)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: a student stack needs at least 1 layer")
    # Before any weights load: an encoder-only model (BERT) has no decoder to shrink.
    check_seq2seq_model("TEACHER", args.teacher)
    load_tokenizer("TEACHER", args.teacher)
    logging.basicConfig(level=logging.INFO)
    student, e_layers, d_layers = create_student_by_copying_alternating_layers(
        args.teacher,
        args.save_path,
        e=args.e,
        d=args.d,
        copy_first_teacher_layers=args.copy_first_teacher_layers,
        e_layers_to_copy=parse_layer_list(args.e_layers_to_copy),
        d_layers_to_copy=parse_layer_list(args.d_layers_to_copy),
        **overrides,
    )
    n_params = sum(p.numel() for p in {id(p): p for p in student.parameters()}.values())
    print(
        f"student saved to {args.save_path}: {n_params:,} parameters; encoder layers copied {e_layers}, "
        f"decoder layers copied {d_layers}"
    )
    return student


if __name__ == "__main__":
    run_cli(main)
