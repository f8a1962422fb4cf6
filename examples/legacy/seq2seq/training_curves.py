"""Training curves: one PNG with a run's training loss, learning rate and evaluation metrics against the step.

The scripts call `write_training_curves(output_dir)` after training (main process only); it writes
`training_curves.png` beside `trainer_state.json` and never raises for a run with nothing to plot. The file is also a
small command line tool for any run folder, also one still training (it reads the newest checkpoint then):

    python examples/pytorch/summarization/training_curves.py RUN_DIR [--output FILE]

Where the numbers come from: `trainer_state.json` ("log_history") for Trainer runs, the one in RUN_DIR or in its newest
`checkpoint-N/`, whichever has more steps; `train_log.jsonl` (one JSON object per step) and `eval_log.jsonl` (one per
evaluation) for the `_no_trainer` twins.
The series drawn are stored as JSON in the PNG itself (compressed text chunk "training_curves"):
`read_plotted_series(png_path)` gives them back, so what a picture shows can be checked from the file alone.

Edit this copy (examples/pytorch/summarization/), then `make fix-copies`: utils/check_copies.py keeps the translation
and legacy/seq2seq copies identical. Imports only the standard library and seq2seq_checks; matplotlib is imported
when a picture is drawn, so importing this module costs nothing.
"""

import argparse
import json
import logging
import math
import os
import re
import struct
import zlib

from seq2seq_checks import UsageError, atomic_write, one_line_errors, run_cli

logger = logging.getLogger(__name__)

FILE_NAME = "training_curves.png"
METADATA_KEY = "training_curves"  # the PNG text chunk holding the plotted series as JSON
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRAINING_KEYS = ("loss", "learning_rate")
# Eval keys that measure the machine or count examples, not the model: not drawn.
NOT_METRIC_SUFFIXES = ("_runtime", "_per_second", "_samples", "_time")
PANEL_TITLES = {"loss": "training loss", "learning_rate": "learning rate"}
MARKER_LIMIT = 50  # series with at most this many points get a marker per point (eval points are sparse)
SMOOTH_FROM = 200  # a loss logged this often (the twins log every step) also gets a running mean: raw is noise
MAX_STORED_POINTS = 24_000  # all series together, in the PNG's text chunk (see plot_training_curves)


def _checkpoint_folders(run_dir: str) -> list[str]:
    """RUN_DIR's `checkpoint-N` folders, highest N first."""
    found = [(int(m.group(1)), name) for name in os.listdir(run_dir) if (m := re.fullmatch(r"checkpoint-(\d+)", name))]
    return [os.path.join(run_dir, name) for _, name in sorted(found, reverse=True)]


def _read_trainer_state(path: str) -> dict | None:
    """The trainer_state.json at `path`, or None when it is missing or unreadable (a checkpoint being written or
    rotated away while we read: the caller falls back to an older one)."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("log_history"), list) else None


def _newest_trainer_state(run_dir: str) -> tuple[list[dict], str] | None:
    """(log_history, path) of RUN_DIR/trainer_state.json or of the newest readable checkpoint's, whichever has more
    steps (RUN_DIR's on a tie: it also has the final summary entry); None when neither exists."""
    candidates = [os.path.join(run_dir, "trainer_state.json")]
    candidates += [os.path.join(folder, "trainer_state.json") for folder in _checkpoint_folders(run_dir)]
    best = None
    for path in candidates:
        state = _read_trainer_state(path)
        if state is None:
            continue
        if best is None or state.get("global_step", 0) > best[0].get("global_step", 0):
            best = (state, path)
        if path != candidates[0]:
            break  # only the newest readable checkpoint competes with RUN_DIR's file
    return None if best is None else (best[0]["log_history"], best[1])


def _read_train_log(path: str) -> list[dict]:
    """The entries of a `_no_trainer` train_log.jsonl, with "lr" renamed "learning_rate" as in trainer_state.json.
    A last line without its newline (the run is still writing it) is left out. Raises UsageError for a line that
    is not a JSON object."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    entries = []
    for number, line in enumerate(lines[:-1], start=1):  # lines[-1]: "" or the half-written last line
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            raise UsageError(f"{path} line {number} is not a JSON object; fix or remove that line")
        if "lr" in entry:
            entry["learning_rate"] = entry.pop("lr")
        entries.append(entry)
    return entries


def find_log_history(run_dir: str) -> tuple[list[dict], str]:
    """(log history, the file it came from) of a run folder: trainer_state.json (see `_newest_trainer_state`), else
    train_log.jsonl. Raises UsageError when the folder does not exist or holds neither."""
    if not os.path.isdir(run_dir):
        problem = "is a file" if os.path.exists(run_dir) else "does not exist"
        raise UsageError(f"RUN_DIR {run_dir} {problem}; pass the --output_dir of a training run")
    found = _newest_trainer_state(run_dir)
    if found is not None:
        return found
    train_log = os.path.join(run_dir, "train_log.jsonl")
    if os.path.isfile(train_log):
        entries = _read_train_log(train_log)
        eval_log = os.path.join(run_dir, "eval_log.jsonl")  # the twins' evaluations, one line each
        if os.path.isfile(eval_log):
            entries = sorted(entries + _read_train_log(eval_log), key=lambda entry: entry.get("step", 0))
        return entries, train_log
    raise UsageError(
        f"RUN_DIR {run_dir} has no log history (no trainer_state.json, in it or in a checkpoint-N folder, and no "
        "train_log.jsonl); pass the --output_dir of a run that has logged a training step"
    )


def read_log_history(run_dir: str) -> list[dict]:
    """The run's log history as one list of dicts (trainer_state.json's "log_history" entries, or train_log.jsonl's
    lines with "lr" renamed "learning_rate"). Raises UsageError when the folder has no log history."""
    return find_log_history(run_dir)[0]


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plotted_keys(log_history: list[dict]) -> list[str]:
    """The quantities to draw: training loss, learning rate, then eval_loss and every other numeric eval_* metric in
    the order first logged (generation length last), without timing/throughput keys and example counts."""
    keys = [key for key in TRAINING_KEYS if any(_is_number(entry.get(key)) for entry in log_history)]
    metrics = []
    for entry in log_history:
        for key, value in entry.items():
            wanted = key.startswith("eval_") and not key.endswith(NOT_METRIC_SUFFIXES) and _is_number(value)
            if wanted and key not in metrics:
                metrics.append(key)
    return keys + sorted(metrics, key=lambda key: (key != "eval_loss", key.endswith("_gen_len")))


def collect_series(log_history: list[dict]) -> tuple[dict[str, dict[str, list]], dict[str, int]]:
    """({quantity: {"step": [...], "value": [...]}}, {quantity: non-finite values left out}) from a log history, in
    logged order. Entries without a numeric "step" are skipped; NaN and inf values are counted, not drawn."""
    series, skipped = {}, {}
    for key in _plotted_keys(log_history):
        steps, values = [], []
        for entry in log_history:
            value, step = entry.get(key), entry.get("step")
            if not (_is_number(value) and _is_number(step)):
                continue
            if math.isfinite(value):
                steps.append(step)
                values.append(value)
            else:
                skipped[key] = skipped.get(key, 0) + 1
        if steps or skipped.get(key):
            series[key] = {"step": steps, "value": values}
    return series, skipped


def _running_mean(values: list[float], window: int) -> list[float]:
    """Mean of each value and the `window - 1` before it (fewer at the start)."""
    total, means = 0.0, []
    for index, value in enumerate(values):
        total += value - (values[index - window] if index >= window else 0.0)
        means.append(total / min(index + 1, window))
    return means


def _keep_extremes(points: dict[str, list], max_points: int) -> dict[str, list]:
    """`points` thinned to about `max_points`: of each run of consecutive points, the lowest and the highest (in step
    order), plus the first and last point. Every kept point is a logged one and spikes stay; at screen resolution a
    line through them looks like the line through all points."""
    steps, values = points["step"], points["value"]
    if len(values) <= max_points:
        return points
    size = math.ceil(len(values) / (max_points // 2))
    kept = {0, len(values) - 1}
    for start in range(0, len(values), size):
        bucket = range(start, min(start + size, len(values)))
        kept |= {min(bucket, key=values.__getitem__), max(bucket, key=values.__getitem__)}
    return {"step": [steps[i] for i in sorted(kept)], "value": [values[i] for i in sorted(kept)]}


def _draw_panel(ax, key: str, points: dict, drawn: dict, skipped: int, x_limits: tuple[float, float]) -> None:
    """One quantity against the step (`drawn`: `points` thinned): labelled axes, a title with the last value and the
    count of values that could not be drawn, and for a loss logged at every step its running mean."""
    from matplotlib.ticker import MaxNLocator

    is_eval = key.startswith("eval_")
    marker = "o" if is_eval or len(drawn["value"]) <= MARKER_LIMIT else None
    smooth = key == "loss" and len(points["value"]) >= SMOOTH_FROM
    color = "C1" if is_eval else "C0"  # evaluation panels stand apart from training ones
    thin = {"linewidth": 0.8, "alpha": 0.4} if smooth else {"linewidth": 1.5}
    ax.plot(drawn["step"], drawn["value"], marker=marker, markersize=4, color=color, **thin)
    if smooth:  # on all points, then every n-th drawn: the mean is smooth, so that loses nothing
        window, every = len(points["value"]) // 50, math.ceil(len(points["value"]) / len(drawn["value"]))
        mean = _running_mean(points["value"], window)
        ax.plot(points["step"][::every], mean[::every], linewidth=1.8, color=color, label=f"mean of last {window}")
        ax.legend(loc="upper right", fontsize="small")
    title = PANEL_TITLES.get(key, key.replace("_", " ", 1))
    title += f" (last {points['value'][-1]:.4g})" if points["value"] else ""
    if skipped:  # a diverged run: say so where the reader looks
        title += f"\n{skipped} non-finite value{'s' if skipped > 1 else ''} (NaN/inf) not drawn"
    ax.set_title(title, fontsize="medium", color="C3" if skipped else "black")
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_xlim(*x_limits)
    ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True))
    ax.grid(True, alpha=0.3)


def plot_training_curves(log_history: list[dict], path: str, title: str | None = None) -> dict[str, dict[str, list]]:
    """Draw one panel per quantity against the optimizer step: the training loss ("loss"), the learning rate
    ("learning_rate") and every numeric eval_* metric (eval_loss, ROUGE, BLEU, generation length...). Left out: the
    timing and throughput keys (eval_runtime, eval_samples_per_second, eval_steps_per_second, *_time), example
    counts (eval_samples), strings (eval_*_signature) and non-finite values (counted in the panel's title). A series
    of more than a few thousand points (a long run logged at every step) is drawn through each stretch's lowest and
    highest point (see `_keep_extremes`).

    Writes the PNG at `path` through a temporary file and a rename, with the series drawn stored as JSON in its
    "training_curves" text chunk. Returns those series: {quantity: {"step": [...], "value": [...]}}.
    Raises UsageError when there is nothing to draw (no entry with a step and a quantity), and ImportError when
    matplotlib is not installed.
    """
    series, skipped = collect_series(log_history)
    if not series:
        raise UsageError("the log history has no training step or evaluation logged yet; nothing to plot")
    # The Figure API, not pyplot: no backend switch, no GUI and no global figure list in the training process.
    from matplotlib.figure import Figure
    from PIL.PngImagePlugin import PngInfo  # matplotlib's own image dependency

    # PIL refuses to open a PNG with more than 1 MB in one text chunk: at most ~34 bytes of JSON a point keeps under.
    drawn = {key: _keep_extremes(points, MAX_STORED_POINTS // len(series)) for key, points in series.items()}
    all_steps = [step for points in series.values() for step in points["step"]] or [0]
    low, high = min(all_steps), max(all_steps)
    x_limits = (low - 0.5, high + 0.5) if low == high else (low - 0.02 * (high - low), high + 0.02 * (high - low))
    columns = 1 if len(series) == 1 else 2 if len(series) in (2, 4) else 3
    rows = math.ceil(len(series) / columns)
    figure = Figure(figsize=(max(6.4, 4.8 * columns), 1.0 + 3.4 * rows), dpi=100, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for ax, key in zip(axes, series, strict=False):
        _draw_panel(ax, key, series[key], drawn[key], skipped.get(key, 0), x_limits)
    for ax in axes[len(series) :]:
        ax.set_visible(False)
    figure.suptitle(title or "training curves", fontsize="large")
    info = PngInfo()
    info.add_text(METADATA_KEY, json.dumps(drawn, separators=(",", ":")), zip=True)  # zTXt: compressed
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100, pil_kwargs={"pnginfo": info})
    return drawn


def read_plotted_series(png_path: str) -> dict | None:
    """The series a training-curves PNG was drawn from (its "training_curves" text chunk), or None when the file is
    not a PNG written by `plot_training_curves`. Reads the chunks with the standard library, without PIL."""
    try:
        with open(png_path, "rb") as handle:
            if handle.read(8) != PNG_SIGNATURE:
                return None
            while len(header := handle.read(8)) == 8:
                length, kind = struct.unpack(">I4s", header)
                if kind not in (b"tEXt", b"zTXt"):
                    if kind == b"IEND":
                        return None
                    handle.seek(length + 4, os.SEEK_CUR)  # data and CRC
                    continue
                keyword, _, text = handle.read(length).partition(b"\0")
                handle.seek(4, os.SEEK_CUR)
                if keyword == METADATA_KEY.encode():
                    # zTXt: one compression-method byte (0 = zlib), then the zlib stream.
                    return json.loads(zlib.decompress(text[1:]) if kind == b"zTXt" else text.decode("latin-1"))
    except (OSError, ValueError, zlib.error):
        return None
    return None


def check_curves_path(flag: str, path: str) -> None:
    """Raise UsageError when `path` cannot take a training-curves PNG: not a .png name, a folder that does not exist,
    or an existing file that is not a training-curves PNG (those we refresh; anything else is the user's)."""
    if not path.lower().endswith(".png"):
        raise UsageError(f"{flag} {path}: the curves are a PNG; pass a path ending in .png")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{flag} {path}: the folder {parent} does not exist; create it or choose another path")
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a directory; pass a file path")
    if os.path.exists(path) and read_plotted_series(path) is None:
        raise UsageError(
            f"{flag} {path} exists and is not a training-curves PNG written by this tool; move it away or choose "
            "another path"
        )


def _title(run_dir: str, source: str, log_history: list[dict]) -> str:
    steps = [entry["step"] for entry in log_history if _is_number(entry.get("step"))]
    last = f", up to step {max(steps)}" if steps else ""
    name = os.path.basename(os.path.normpath(os.path.abspath(run_dir)))
    return f"{name}: {os.path.relpath(source, run_dir)}{last}"


def write_training_curves(run_dir: str, path: str | None = None) -> str | None:
    """Draw RUN_DIR's log history to `path` (default RUN_DIR/training_curves.png) and return that path. Returns None,
    with a warning, when there is nothing to draw, when `path` holds a file that is not ours, when matplotlib is not
    installed or when the picture fails: a finished training never fails because of its plot."""
    path = path or os.path.join(run_dir, FILE_NAME)
    try:
        log_history, source = find_log_history(run_dir)
        check_curves_path("training curves", path)
        plot_training_curves(log_history, path, _title(run_dir, source, log_history))
    except UsageError as error:
        logger.warning(f"no training curves: {error}")
        return None
    except ImportError:
        logger.warning(f"no training curves: matplotlib is not installed; `pip install matplotlib` to get {path}")
        return None
    except Exception:  # a bug of ours: keep its traceback in the log, but let the run finish
        logger.warning(f"no training curves: drawing {path} failed", exc_info=True)
        return None
    logger.info(f"Training curves in {path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Draw training_curves.png for a run folder (also one still training)."
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="The run's --output_dir.")
    parser.add_argument(
        "--output",
        help=f"Where to write the PNG (default: RUN_DIR/{FILE_NAME}). An existing file must be one of ours.",
    )
    one_line_errors(parser)
    args = parser.parse_args()
    log_history, source = find_log_history(args.run_dir)
    output = args.output or os.path.join(args.run_dir, FILE_NAME)
    check_curves_path("--output", output)
    if not collect_series(log_history)[0]:
        raise UsageError(f"RUN_DIR {args.run_dir}: {source} has no step logged yet; run this again later")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("matplotlib is not installed; `pip install matplotlib` and run this again") from None
    series = plot_training_curves(log_history, output, _title(args.run_dir, source, log_history))
    print(f"wrote {output}: {', '.join(series)} (from {source})")


if __name__ == "__main__":
    run_cli(main)
