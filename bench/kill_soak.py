#!/usr/bin/env python
"""SIGKILL soak: a short run_summarization.py training killed at random moments resumes to the same weights.

Trains the tiny T5 (`.cache/tiny-models/t5`) on the shipped XSum sample for `--max_steps` steps (checkpoint every
`--save_steps`, generating evaluation every `--eval_steps`), once without interruption, then `--kills` times in a
fresh --output_dir killed with SIGKILL (no handler runs: as an OOM killer or a pre-empted node would) at a seeded
random moment. After each kill the same command is run again until it exits 0 (it must take over the stale
run.lock and resume from the last complete checkpoint), and the final `model.safetensors` is compared tensor by
tensor with the uninterrupted run's (exact equality).

Kill moments rotate over four targets so that every phase is hit: a training step (after a random step's bar
update), a generating evaluation (after it starts), a checkpoint being written (a `checkpoint-N` folder without
its trainer_state.json, which the Trainer writes last) and a uniform moment of the whole run (start-up and the
final save/evaluation included). The phase actually hit is read from the output folder and the progress bars at
the moment of the kill.

This is a benchmark, not a test (about 15-20 minutes on 2 shared cores):

    nice python bench/kill_soak.py            # writes bench/results/kill_soak.json
    nice python bench/kill_soak.py --kills 4  # a quick look
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "pytorch" / "summarization" / "run_summarization.py"
DATA = REPO / "tests" / "fixtures" / "summarization" / "xsum" / "sample.json"
TARGETS = ("training", "evaluation", "checkpoint", "uniform")
BAR = re.compile(r"\|\s*(\d+)/(\d+) \[")
POLL_S = 0.005


def command(args, output_dir: Path) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        "--model_name_or_path",
        str(REPO / ".cache" / "tiny-models" / "t5"),
        "--train_file",
        str(DATA),
        "--validation_file",
        str(DATA),
        "--do_train",
        "--do_eval",
        "--predict_with_generate",
        "--max_steps",
        str(args.max_steps),
        "--save_steps",
        str(args.save_steps),
        "--eval_strategy",
        "steps",
        "--eval_steps",
        str(args.eval_steps),
        "--max_source_length",
        "64",
        "--max_target_length",
        "16",
        "--generation_max_length",
        "16",
        "--per_device_train_batch_size",
        "2",
        "--per_device_eval_batch_size",
        "4",
        "--seed",
        "42",
        "--report_to",
        "none",
        "--output_dir",
        str(output_dir),
    ]


def environment(hf_home: str) -> dict:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "HF_HOME": hf_home,
    }


def bars(log_path: Path) -> list[tuple[str, int, int]]:
    """Every tqdm update in the log, oldest first: (kind, done, total), kind "train" (the --max_steps bar), "save"
    (safetensors' "Writing model shards") or "eval" (the evaluation batches)."""
    try:
        text = log_path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return []
    updates = []
    for fragment in re.split(r"[\r\n]", text):
        match = BAR.search(fragment)
        if match:
            kind = "save" if "Writing model shards" in fragment else "bar"
            updates.append((kind, int(match.group(1)), int(match.group(2))))
    return updates


def classify(updates: list, max_steps: int) -> list[tuple[str, int, int]]:
    """`bars` with "bar" resolved: the one counting to --max_steps is training, any other after training started
    is evaluation, any before it start-up (weights loading, tokenization)."""
    resolved, training_started = [], False
    for kind, done, total in updates:
        if kind == "bar":
            training_started = training_started or total == max_steps
            kind = "train" if total == max_steps else "eval" if training_started else "start-up"
        resolved.append((kind, done, total))
    return resolved


def training_step(log_path: Path, max_steps: int) -> int:
    steps = [done for kind, done, _ in classify(bars(log_path), max_steps) if kind == "train"]
    return steps[-1] if steps else -1


def evaluations_started(log_path: Path, max_steps: int) -> int:
    return sum(kind == "eval" and done == 0 for kind, done, _ in classify(bars(log_path), max_steps))


def checkpoint_being_written(output_dir: Path) -> str | None:
    """A checkpoint-N folder whose trainer_state.json (the Trainer's last file) is not there yet."""
    if not output_dir.is_dir():
        return None
    for path in output_dir.glob("checkpoint-*"):
        if path.is_dir() and not (path / "trainer_state.json").exists():
            return path.name
    return None


def phase_now(output_dir: Path, log_path: Path, max_steps: int) -> str:
    """Which stage the run is in, from its files and progress bars."""
    writing = checkpoint_being_written(output_dir)
    if writing:
        return f"checkpoint writing ({writing})"
    if (output_dir / "train_results.json").exists() or (output_dir / "model.safetensors").exists():
        return "final save/evaluation"
    updates = classify(bars(log_path), max_steps)
    if not updates or updates[-1][0] == "start-up":
        return "start-up"
    kind, done, total = updates[-1]
    step = training_step(log_path, max_steps)
    if kind == "eval":
        return f"evaluation (after step {step})" if done < total else f"evaluation ending (after step {step})"
    if kind == "save":  # safetensors' bar: the weights of a checkpoint (done) or being written
        where = "weights" if done < total else "after the weights"
        return f"checkpoint writing ({where}, after step {step})"
    if done == 0:
        return "start-up"
    return f"training (step {done})" if done < total else "after training (final save)"


def wait_for(condition, process, timeout: float) -> bool:
    """Poll `condition()` until it holds (True) or the process ends / time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return True
        time.sleep(POLL_S)
    return False


def run_and_kill(args, output_dir: Path, log_path: Path, hf_home: str, target: str, rng, straight_s: float) -> dict:
    """Start the run, SIGKILL it at a moment chosen for `target`; what was hit."""
    handle = open(log_path, "wb")
    started = time.monotonic()
    process = subprocess.Popen(
        command(args, output_dir),
        cwd=REPO,
        env=environment(hf_home),
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    detail = {}
    if target == "training":
        step = rng.randint(1, args.max_steps - 1)
        detail["after_step"] = step
        wait_for(lambda: training_step(log_path, args.max_steps) >= step, process, 600)
        time.sleep(rng.uniform(0, 0.2))
    elif target == "evaluation":
        round_ = rng.randint(1, args.max_steps // args.eval_steps)
        detail["evaluation_round"] = round_
        wait_for(lambda: evaluations_started(log_path, args.max_steps) >= round_, process, 600)
        time.sleep(rng.uniform(0, 0.4))
    elif target == "checkpoint":
        step = rng.randrange(args.save_steps, args.max_steps + 1, args.save_steps)
        detail["checkpoint"] = step
        wait_for(lambda: (output_dir / f"checkpoint-{step}").is_dir(), process, 600)
        time.sleep(rng.uniform(0, 0.03))
    else:
        delay = rng.uniform(0, straight_s)
        detail["delay_s"] = round(delay, 3)
        wait_for(lambda: time.monotonic() - started >= delay, process, 600)
    phase = phase_now(output_dir, log_path, args.max_steps)
    killed_at = time.monotonic() - started
    finished_first = process.poll() is not None
    if not finished_first:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    handle.close()
    return {
        "target": target,
        **detail,
        "killed_at_s": round(killed_at, 2),
        "phase": "finished before the kill" if finished_first else phase,
        "killed": not finished_first,
        "left_checkpoints": sorted(
            (p.name for p in output_dir.glob("checkpoint-*")), key=lambda name: int(name.split("-")[1])
        )
        if output_dir.is_dir()
        else [],
        "lock_left": (output_dir / "run.lock").exists(),
    }


def rerun_until_done(args, output_dir: Path, log_dir: Path, hf_home: str, attempts: int = 4) -> dict:
    """Run the same command until it exits 0; what each attempt did."""
    tries = []
    for attempt in range(1, attempts + 1):
        log_path = log_dir / f"resume-{attempt}.log"
        started = time.monotonic()
        with open(log_path, "wb") as handle:
            code = subprocess.run(
                command(args, output_dir), cwd=REPO, env=environment(hf_home), stdout=handle, stderr=subprocess.STDOUT
            ).returncode
        text = log_path.read_text(encoding="utf-8", errors="replace")
        resumed = re.search(r"Resuming training from (\S+)", text)
        errors = [line for line in text.splitlines() if line.startswith("error: ")]
        tries.append(
            {
                "exit_code": code,
                "seconds": round(time.monotonic() - started, 2),
                "resumed_from": os.path.basename(resumed.group(1).rstrip(",")) if resumed else None,
                "took_over_lock": "taking over the lock" in text,
                "skipped_incomplete": re.findall(r"skipping \S*?(checkpoint-\d+): incomplete \(([^)]*)\)", text),
                "error": errors[-1] if errors else None,
                "traceback": "Traceback" in text,
            }
        )
        if code == 0 or errors:  # a refusal is not retried: the same command would be refused again
            break
    return {"attempts": tries, "finished": tries[-1]["exit_code"] == 0}


def outcome(kill: dict, resume: dict, output_dir: Path) -> str:
    """What rerunning the same command achieved."""
    if not kill["killed"]:
        return "not killed (the run ended before its kill moment)"
    last = resume["attempts"][-1]
    if resume["finished"]:
        return f"resumed from {last['resumed_from']}, finished" if last["resumed_from"] else "started over, finished"
    if (output_dir / "eval_results.json").exists():
        return "already complete (every result written before the kill); the rerun is refused, as it should be"
    return f"refused: {last['error']}" if last["error"] else f"failed (exit code {last['exit_code']})"


def same_weights(reference: dict, folder: Path) -> tuple[bool, str]:
    path = folder / "model.safetensors"
    if not path.exists():
        return False, "no model.safetensors"
    weights = load_file(str(path))
    if weights.keys() != reference.keys():
        return False, "different tensor names"
    different = [name for name in reference if not torch.equal(reference[name], weights[name])]
    if different:
        largest = max((reference[name] - weights[name]).abs().max().item() for name in different)
        return False, f"{len(different)} tensors differ (largest difference {largest:.3g})"
    return True, ""


def summarize(kills: list[dict], straight_s: float) -> dict:
    """The summary figures over the kills (a run that ended before its kill moment is not a kill)."""
    killed = [row for row in kills if row["killed"]]
    return {
        "kills": len(killed),
        "runs_finished_before_kill": len(kills) - len(killed),
        "resumes": sum(row["resumed_from"] is not None for row in killed),
        "finished_after_rerun": sum(row["finished"] for row in killed),
        "complete_before_kill": sum(row["outcome"].startswith("already complete") for row in killed),
        "refused": sum(row["outcome"].startswith(("refused", "failed")) for row in killed),
        "equal": sum(row["equal_weights"] for row in killed),
        "stale_locks_taken_over": sum(row["attempts"][0]["took_over_lock"] for row in killed),
        "incomplete_checkpoints_skipped": sum(bool(row["attempts"][0]["skipped_incomplete"]) for row in killed),
        "tracebacks": sum(attempt["traceback"] for row in killed for attempt in row["attempts"]),
        "mean_extra_s": round(statistics.mean(row["extra_s"] for row in killed), 2) if killed else None,
        "mean_rerun_s": round(statistics.mean(sum(a["seconds"] for a in row["attempts"]) for row in killed), 2)
        if killed
        else None,
        "uninterrupted_s": round(straight_s, 2),
        "phases": sorted({row["phase"].split(" (")[0] for row in killed}),
    }


def write_results(args, kills: list[dict], straight_s: float, complete: bool) -> dict:
    """Write --output (after every kill, so an interrupted soak keeps what it measured); return the summary."""
    summary = summarize(kills, straight_s)
    result = {
        "settings": {key: value for key, value in vars(args).items() if key not in ("output", "work_dir")},
        "complete": complete,
        "load_average_at_end": os.getloadavg(),
        "command": command(args, Path("<output_dir>"))[1:],
        "summary": summary,
        "per_kill": kills,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(f"{args.output}.tmp", "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    os.replace(f"{args.output}.tmp", args.output)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--max_steps", type=int, default=40)
    parser.add_argument("--save_steps", type=int, default=5)
    parser.add_argument("--eval_steps", type=int, default=10)
    parser.add_argument("--work_dir", help="keep the runs here (default: a temporary folder, removed)")
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "kill_soak.json"))
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="kill-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    hf_home = str(work / "hf-home")
    rng = random.Random(args.seed)

    straight_dir = work / "straight"
    shutil.rmtree(straight_dir, ignore_errors=True)
    started = time.monotonic()
    with open(work / "straight.log", "wb") as handle:
        subprocess.run(
            command(args, straight_dir),
            cwd=REPO,
            env=environment(hf_home),
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=True,
        )
    straight_s = time.monotonic() - started
    reference = load_file(str(straight_dir / "model.safetensors"))
    print(f"uninterrupted run: {straight_s:.1f} s", flush=True)

    kills = []
    for index in range(args.kills):
        target = TARGETS[index % len(TARGETS)]
        run_dir, log_dir = work / f"kill-{index:02d}" / "out", work / f"kill-{index:02d}"
        shutil.rmtree(log_dir, ignore_errors=True)
        log_dir.mkdir(parents=True)
        kill = run_and_kill(args, run_dir, log_dir / "killed.log", hf_home, target, rng, straight_s)
        # A run that ended before its kill moment has nothing to resume (a rerun would be refused: results exist).
        resume = (
            rerun_until_done(args, run_dir, log_dir, hf_home) if kill["killed"] else {"attempts": [], "finished": True}
        )
        equal, why = same_weights(reference, run_dir)
        resume["outcome"] = outcome(kill, resume, run_dir)
        total = kill["killed_at_s"] + sum(attempt["seconds"] for attempt in resume["attempts"])
        row = {
            "kill": index,
            **kill,
            **resume,
            "resumed_from": resume["attempts"][0]["resumed_from"] if resume["attempts"] else None,
            "equal_weights": equal,
            "difference": why,
            "extra_s": round(total - straight_s, 2),
        }
        kills.append(row)
        print(
            f"kill {index:2d}: {target:10s} at {kill['killed_at_s']:6.2f} s, phase {row['phase']}, "
            f"{row['outcome']}; equal weights {equal} {why}",
            flush=True,
        )
        write_results(args, kills, straight_s, complete=False)

    summary = write_results(args, kills, straight_s, complete=True)
    print(json.dumps(summary, indent=2))
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
