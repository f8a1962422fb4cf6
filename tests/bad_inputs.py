"""The table-driven bad-input suite's runner: each case runs the real script on a bad flag, file or model and
checks what a user would see and keep.

A case passes when the script exits non-zero, prints no traceback, its last stderr line starts with `error: `
and holds every expected text (the flag or input, and the fix), and nothing under the test's folder or among the
files the command names was created, changed or deleted (so no output folder appears either).

Cases are `BadInput(changes, expected)`; `changes` edits a valid base command given as a flag dict (a value
of None drops the flag, "" makes it a bare flag) or, for tools with positional arguments, is the whole
argument list. `{tmp}` (the test's folder, holding the files of `make_bad_files`), `{models}` (the tiny
models) and `{fixtures}` are filled in everywhere.
"""

import hashlib
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from helpers import FIXTURES, run_example


@dataclass(frozen=True)
class BadInput:
    changes: dict | list
    expected: str | tuple[str, ...]
    env: dict = field(default_factory=dict)
    exit_code: int = 2


XSUM_ROWS = [
    {"document": "The quick brown fox jumps over the lazy dog near the river bank.", "summary": "A fox jumps."},
    {"document": "Prices of apples rose sharply this week in the city market.", "summary": "Apple prices rose."},
]


def make_bad_files(folder: Path) -> None:
    """The bad inputs every case table can point at, written into `folder`."""
    folder = Path(folder)
    (folder / "notes.txt").write_text("not a dataset\n")
    (folder / "empty.jsonl").write_text("")
    (folder / "empty.txt").write_text("")
    (folder / "header_only.csv").write_text("document,summary\n")
    (folder / "blank.jsonl").write_text('{"document": "", "summary": ""}\n{"document": "  ", "summary": "s"}\n')
    (folder / "broken.json").write_text('{"document": "a", "summary": \n')
    (folder / "a_folder").mkdir(exist_ok=True)
    (folder / "a_folder" / "train.json").write_text(json.dumps(XSUM_ROWS[0]) + "\n")
    # Latin-1 bytes (é = 0xe9) on line 2: not UTF-8.
    (folder / "latin1.jsonl").write_bytes(
        (json.dumps(XSUM_ROWS[0]) + "\n").encode()
        + '{"document": "Caf\xe9 au lait", "summary": "s"}\n'.encode("latin-1")
    )
    (folder / "latin1.csv").write_bytes("document,summary\nCaf\xe9 au lait,caf\xe9\n".encode("latin-1"))
    (folder / "latin1.txt").write_bytes("first line\nCaf\xe9 au lait\n".encode("latin-1"))
    (folder / "summary_only.jsonl").write_text(
        "".join(json.dumps({"summary": row["summary"]}) + "\n" for row in XSUM_ROWS)
    )
    (folder / "null_summary.jsonl").write_text(
        json.dumps(XSUM_ROWS[0]) + "\n" + json.dumps({"document": XSUM_ROWS[1]["document"], "summary": None}) + "\n"
    )
    (folder / "missing_summary.jsonl").write_text(
        json.dumps(XSUM_ROWS[0]) + "\n" + json.dumps({"document": XSUM_ROWS[1]["document"]}) + "\n"
    )
    (folder / "list_of_strings.json").write_text(json.dumps(["a text", "another text"]))
    # Argument files for the HfArgumentParser scripts (keys every Trainer script has).
    (folder / "bad_bool.yaml").write_text("do_train: ture\noutput_dir: out\n")
    (folder / "quoted_bool.yaml").write_text('do_eval: "False"\noutput_dir: out\n')
    (folder / "unknown_key.yaml").write_text("learning_rat: 0.1\noutput_dir: out\n")
    (folder / "bad_number.yaml").write_text("learning_rate: fast\noutput_dir: out\n")
    (folder / "bad_choice.yaml").write_text("lr_scheduler_type: zigzag\noutput_dir: out\n")
    (folder / "not_a_mapping.yaml").write_text("- do_train\n- do_eval\n")
    (folder / "broken.yaml").write_text("do_train: [true\n")
    (folder / "broken_args.json").write_text('{"do_train": true,}\n')
    (folder / "no_model.yaml").write_text("do_train: true\noutput_dir: out\n")
    # An --output_dir another run (this test process: alive, this host) is writing into.
    (folder / "busy_out").mkdir(exist_ok=True)
    (folder / "busy_out" / "run.lock").write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-12-03 10:00:00"})
    )
    # A checkpoint folder a killed job left half-written: its state, but no weights or optimizer.
    (folder / "incomplete_run" / "checkpoint-2").mkdir(parents=True, exist_ok=True)
    (folder / "incomplete_run" / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (folder / "not_a_model").mkdir(exist_ok=True)
    (folder / "not_a_model" / "readme.md").write_text("no config.json here\n")


def model_without_tokenizer(models: Path, folder: Path, name: str = "t5") -> Path:
    """A copy of a tiny model with its weights and config but none of its tokenizer files."""
    target = Path(folder) / f"{name}-no-tokenizer"
    if not target.exists():
        target.mkdir()
        for path in (Path(models) / name).iterdir():
            if path.name in ("config.json", "generation_config.json") or path.suffix in (
                ".safetensors",
                ".bin",
                ".h5",
            ):
                shutil.copy(path, target / path.name)
    return target


def model_with_garbage_weights(models: Path, folder: Path, name: str = "t5") -> Path:
    """A copy of a tiny model whose weights file is not a weights file."""
    target = Path(folder) / f"{name}-garbage-weights"
    if not target.exists():
        shutil.copytree(Path(models) / name, target)
        for path in target.iterdir():
            if path.suffix in (".safetensors", ".bin", ".h5"):
                path.write_bytes(b"these bytes are not model weights" * 10)
    return target


def _fill(value, tmp_path, models):
    return str(value).format(tmp=tmp_path, models=models, fixtures=FIXTURES)


def build_command(base_args: dict | list, case: BadInput, tmp_path, models) -> list[str]:
    """The command line of a case: the base flags with the case's changes, or the case's own argument list."""
    if isinstance(case.changes, list):
        return [_fill(part, tmp_path, models) for part in case.changes]
    command = []
    for flag, value in {**base_args, **case.changes}.items():
        if value is None:
            continue
        command += [flag] if value == "" else [flag, _fill(value, tmp_path, models)]
    return command


def snapshot(paths) -> dict:
    """Every file and folder under `paths` (and each path itself): its content hash, or 'dir'."""
    state = {}
    for root in paths:
        root = Path(root)
        if root.is_file():
            state[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
        elif root.is_dir():
            state[str(root)] = "dir"
            for dirpath, dirnames, filenames in os.walk(root):
                for name in dirnames:
                    state[os.path.join(dirpath, name)] = "dir"
                for name in filenames:
                    path = os.path.join(dirpath, name)
                    state[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return state


def check_bad_input(
    script: str,
    base_args: dict | list,
    case: BadInput,
    tmp_path,
    models,
    *,
    leading: list | None = None,
    launcher: list | None = None,
    python=None,
) -> str:
    """Run `script` with the case's arguments and assert the refusal described in this module's docstring;
    return the error line. `leading`: arguments before the base flags (e.g. --do_train), not before a case's
    own argument list;
    `python`: the interpreter (the TF venv's for the Keras twins)."""
    make_bad_files(tmp_path)
    command = build_command(base_args, case, tmp_path, models)
    if not isinstance(case.changes, list):  # a case's own argument list is the whole command
        command = [*(leading or []), *command]
    named_files = [part for part in command if os.path.exists(part) and not os.path.isdir(part)]
    watched = [tmp_path, *named_files]
    before = snapshot(watched)
    result = run_example(
        [script, *command],
        launcher=launcher or ([python] if python else None),
        env=case.env,
        expect_success=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"exit code 0 for {command}\n{output[-3000:]}"
    if case.exit_code is not None:
        assert result.returncode == case.exit_code, f"exit code {result.returncode}\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    lines = result.stderr.strip().splitlines()
    last_line = lines[-1] if lines else ""
    assert last_line.startswith("error: "), f"last stderr line: {last_line!r}\n{output[-3000:]}"
    for expected in (case.expected,) if isinstance(case.expected, str) else case.expected:
        expected = _fill(expected, tmp_path, models)
        assert expected in last_line, f"{expected!r} not in {last_line!r}"
    after = snapshot(watched)
    changed = sorted(path for path in set(before) | set(after) if before.get(path) != after.get(path))
    assert not changed, f"the refused run changed {changed}"
    return last_line
