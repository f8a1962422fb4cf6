"""The model card (`README.md` in --output_dir) records what a run produced and how: the final eval and predict
metrics with their signatures, the data, the base model, notes on the final weights (best model, averaged
checkpoints, early stop) and the exact command line.

The Trainer scripts first let transformers write its card (training hyperparameters, the training-loss table);
`write_model_card` then adds its section between two markers, replacing the one an earlier stage of the same run
wrote. Without a card (the Accelerate twins, eval-only runs) it writes a new one with a short YAML header.
Framework-free: the legacy toolkit uses it too.
"""

import json
import os
import shlex
import sys

BEGIN = "<!-- seq2seq-examples results: written by the script, replaced on every run -->"
END = "<!-- end of seq2seq-examples results -->"
SECRET_FLAGS = ("--token", "--hub_token")
SPLITS = ("eval", "predict", "val", "test")  # result prefixes: the PyTorch scripts', then the legacy toolkit's
SKIPPED = ("_runtime", "_samples_per_second", "_steps_per_second", "_n_objs", "_samples")


def command_line(argv: list[str] | None = None) -> str:
    """The command that started this process, with Hub tokens masked, as a user would retype it (`torchrun` or
    `accelerate launch` show as the processes they started: `python` with the script and its arguments)."""
    argv = list(sys.argv if argv is None else argv)
    for index, arg in enumerate(argv):
        if arg in SECRET_FLAGS and index + 1 < len(argv):
            argv[index + 1] = "***"
        elif arg.startswith(tuple(f"{flag}=" for flag in SECRET_FLAGS)):
            argv[index] = arg.split("=", 1)[0] + "=***"
    return shlex.join(["python", *argv])


def results_table(results: dict) -> list[str]:
    """Markdown lines: one row per metric, one column per split that has it, then each split's signatures."""
    splits = [split for split in SPLITS if any(key.startswith(f"{split}_") for key in results)]
    names = []
    for key, value in results.items():
        split = next((split for split in splits if key.startswith(f"{split}_")), None)
        name = key[len(split) + 1 :] if split else None
        if name and isinstance(value, int | float) and not key.endswith(SKIPPED) and name not in names:
            names.append(name)
    if not names:
        return ["No evaluation or prediction metrics were computed in this run."]
    lines = ["| metric | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for name in names:
        cells = [results.get(f"{split}_{name}", "") for split in splits]
        lines.append(f"| {name} | " + " | ".join(str(cell) for cell in cells) + " |")
    signatures = [(key, value) for key, value in results.items() if key.endswith("_signature")]
    counts = [(key, value) for key, value in results.items() if key.endswith(("_samples", "_n_objs"))]
    if counts:
        lines += ["", "Examples: " + ", ".join(f"{key} {value}" for key, value in counts) + "."]
    if signatures:
        lines += ["", "Signatures (how the scores were computed):", ""]
        lines += [f"- `{key}`: `{value}`" for key, value in signatures]
    return lines


def card_section(
    base_model: str | None, task: str, data: dict[str, str], results: dict, notes: list[str], command: str
) -> str:
    """Our part of the card, between the markers."""
    lines = [BEGIN, "", "## Results", ""] + results_table(results)
    lines += [
        "",
        "## Base model and data",
        "",
        f"- Task: {task}",
        f"- Base model: `{base_model or 'trained from scratch'}`",
    ]
    lines += [f"- {name}: `{value}`" for name, value in data.items() if value]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    lines += ["", "## How this run was made", "", "```bash", command, "```", ""]
    if "WORLD_SIZE" in os.environ and os.environ["WORLD_SIZE"] != "1":
        lines += [f"Launched as {os.environ['WORLD_SIZE']} processes (torchrun or accelerate launch).", ""]
    lines += ["Every argument, defaults included: `run_arguments.json` beside this card.", "", END]
    return "\n".join(lines) + "\n"


def write_model_card(
    output_dir: str,
    *,
    base_model: str | None,
    task: str,
    data: dict[str, str],
    results: dict | None = None,
    notes: list[str] | None = None,
    command: str | None = None,
) -> str:
    """Write or update `output_dir/README.md` with the run's results (default: `all_results.json` of the folder),
    data, base model, notes and command line; return its path. Written atomically (temp file, then rename)."""
    path = os.path.join(output_dir, "README.md")
    if results is None:
        results_path = os.path.join(output_dir, "all_results.json")
        results = {}
        if os.path.isfile(results_path):
            with open(results_path, encoding="utf-8") as handle:
                results = json.load(handle)
    section = card_section(base_model, task, data, results, notes or [], command or command_line())
    card = None
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            card = handle.read()
    if card is None:
        header = ["---", "library_name: transformers", f"pipeline_tag: {task}"]
        if base_model and not os.path.isabs(base_model):
            header.append(f"base_model: {base_model}")
        title = os.path.basename(os.path.abspath(output_dir))
        card = "\n".join(
            header + ["---", "", f"# {title}", "", f"A {task} model fine-tuned with seq2seq-examples.", ""]
        )
        card += "\n" + section
    elif BEGIN in card and END in card:
        start, stop = card.index(BEGIN), card.index(END) + len(END)
        card = card[:start] + section.rstrip("\n") + card[stop:]
    else:
        card = card.rstrip("\n") + "\n\n" + section
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        handle.write(card)
    os.replace(f"{path}.tmp", path)
    return path
