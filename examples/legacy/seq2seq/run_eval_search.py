#!/usr/bin/env python
"""Grid search over `model.generate` kwargs with `run_eval.py`: one generation + score per combination.

    python examples/legacy/seq2seq/run_eval_search.py MODEL data/test.source out/search \
        --reference_path data/test.target --task translation \
        --search "num_beams=1:2 length_penalty=0.9:1.0" [other run_eval.py args, e.g. --bs 16 --n_obs 100]

`--search "k1=v1:v2 k2=a:b"` is the Cartesian product of the colon-separated values. Each combination runs
`run_eval.main` in this process and writes `SAVE_DIR/<k1>=<v1>,<k2>=<a>/{generations.txt,scores.json}`
(so each keeps its own resume file). Then a markdown table sorted best first is printed and saved with
all rows to `SAVE_DIR/search_results.json`, followed by "Best score args:" and the run_eval.py command of
the winner. Best means highest bleu for translation tasks and highest rouge2 for summarization (ties broken
by the other columns).
"""

import argparse
import itertools
import json
import logging
from pathlib import Path

import run_eval
from seq2seq_checks import check_output_file, one_line_errors
from utils import ROUGE_KEYS, UsageError, run_cli, save_json


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("model_name", help="model folder or Hub id")
    parser.add_argument("input_path", help="one input per line, e.g. data/test.source")
    parser.add_argument("save_dir", help="folder for one sub-folder per combination and search_results.json")
    parser.add_argument("--reference_path", required=True, help="one reference per input line")
    parser.add_argument(
        "--search", required=True, help='generate kwargs to try, e.g. "num_beams=1:2 length_penalty=0.9:1.0"'
    )
    parser.add_argument("--task", default="summarization", help="summarization* (ROUGE) or translation* (BLEU)")
    parser.add_argument("--bs", type=int, default=8, help="batch size passed to run_eval.py")
    parser.add_argument("--info", default=None, help="free text printed before the table")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier search in SAVE_DIR (without it they are refused, never replaced)",
    )
    return parser.parse_known_args(argv)


def parse_search(search: str, other_args: list[str]) -> tuple[list[str], list[tuple[str, ...]]]:
    """`"a=1:2 b=x"` -> (["a", "b"], [("1", "x"), ("2", "x")]).

    Raises:
        UsageError: a malformed entry, a repeated key, or a key also given as a plain run_eval.py flag.
    """
    keys, values = [], []
    for entry in search.split():
        key, sep, options = entry.partition("=")
        if not sep or not key or not all(options.split(":")):
            raise UsageError(f"--search entry {entry!r} is malformed; write key=value1:value2")
        key = key.lstrip("-").replace("-", "_")
        if key in keys:
            raise UsageError(f"--search names {key} twice; list all its values once: {key}=v1:v2")
        if any(arg == f"--{key}" or arg.startswith(f"--{key}=") for arg in other_args):
            raise UsageError(f"--{key} is both searched and fixed; drop one of them")
        keys.append(key)
        values.append(options.split(":"))
    if not keys:
        raise UsageError('--search is empty; pass e.g. --search "num_beams=1:2"')
    return keys, list(itertools.product(*values))


def format_table(keys: list[str], metric_names: list[str], rows: list[dict]) -> str:
    """A padded markdown table: the searched keys, then the metric columns."""
    columns = keys + metric_names
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join(lines)


def main(argv: list[str]) -> list[dict]:
    # parse and validate
    args, run_eval_args = parse_args(argv)
    keys, combinations = parse_search(args.search, run_eval_args)
    translation = "translation" in args.task
    metric_names = ["bleu"] if translation else ["rouge2", *(k for k in ROUGE_KEYS if k != "rouge2")]
    save_dir = Path(args.save_dir)

    if save_dir.is_file():
        raise UsageError(f"SAVE_DIR {save_dir} is a file; pass a folder (one sub-folder per combination goes there)")
    check_output_file("SAVE_DIR/search_results.json", str(save_dir / "search_results.json"), {}, args.overwrite)
    commands = []
    for combination in combinations:
        name = ",".join(f"{k}={v}" for k, v in zip(keys, combination, strict=True))
        run_dir = save_dir / name
        kwargs = [f"--{k}={v}" for k, v in zip(keys, combination, strict=True)]
        command = [args.model_name, args.input_path, str(run_dir / "generations.txt")]
        command += ["--reference_path", args.reference_path, "--score_path", str(run_dir / "scores.json")]
        command += ["--task", args.task, "--bs", str(args.bs), *run_eval_args, *kwargs]
        command += ["--overwrite"] if args.overwrite else []
        # Every combination's flags and files checked before the first model loads (a bad value in the last
        # one would otherwise stop the search after the others ran).
        run_eval.validate_args(run_eval.parse_args(command)[0])
        commands.append((combination, command))

    # one run_eval per combination
    results = []
    for combination, command in commands:
        logging.getLogger(__name__).info(f"run_eval.py {' '.join(command)}")
        scores = run_eval.main(command)
        results.append({**dict(zip(keys, combination, strict=True)), **scores, "command": command})

    # sort best first, print the table and the winner
    results.sort(key=lambda r: tuple(r[m] for m in metric_names), reverse=True)
    save_json(results, save_dir / "search_results.json")
    if args.info:
        print(f"Info: {args.info}")
    print(f"searched {len(results)} settings of {args.model_name} on {args.input_path} ({args.task})\n")
    print(format_table(keys, metric_names, results))
    best = results[0]
    print(f"\nBest score args: {json.dumps({k: best[k] for k in keys + metric_names})}")
    print("python examples/legacy/seq2seq/run_eval.py " + " ".join(best["command"]))
    return results


if __name__ == "__main__":
    run_cli(main)
