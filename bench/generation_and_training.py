#!/usr/bin/env python
"""Benchmark of the Trainer scripts' eval/predict and training speed options, side by side in one run.

    .venv/bin/python bench/generation_and_training.py            # ~15 minutes on 2 idle CPU cores (`make bench`)
    .venv/bin/python bench/generation_and_training.py --quick    # a smoke run (~4 minutes)

Each row runs run_summarization.py or run_translation.py as a subprocess (the real path a user takes), with the
speed options off (baseline) and on (ours, then ours with a token budget), alternating which of the first two goes
first so that load drifts hit both alike. The model is one t5-small-sized T5 (d_model 512, d_ff 2048, 6+6 layers,
8 heads; random init, seed 0) with the tiny T5 tokenizer of `.cache/tiny-models/t5` (`make tiny-models`), saved once to
`.cache/bench-t5-small`. Its generation config allows --new_tokens new tokens, which the random model nearly always
uses up (it almost never generates its end token), and stops beam search once 4 hypotheses have ended
(early_stopping, as CTranslate2 does). Data: the first examples of CNN/DM (see2017 test; sources truncated to
512 tokens), SciTLDR-A dev (variable length) and WMT16 en-ro newsdev2016, read from ../shared/data.

1. predict-with-generate, greedy and 4 beams. Baseline: the stock Seq2SeqTrainer path (`--eval_sort_by_length
   False --eval_encode_once False --eval_beams_share_cross_attention False`: input order, the encoder run twice
   per batch, generate()'s cache copies on every beam step). Ours: the defaults (longest input first, one encoder
   pass per batch, the beams' cross-attention left in place), same batch size (--eval_batch_size). Ours, token
   budget: also `--eval_max_tokens_per_batch auto` (the tokens of a fixed-size batch of the data's longest
   inputs), so shorter inputs share larger batches. The en-ro rows use --short_factor times more examples. Throughput is the scripts' own
   `predict_samples_per_second` (generation, gathering and decoding; not the start-up); the
   `generated_predictions.txt` files are compared byte for byte. Then two more sides (leave them out with
   --no_ctranslate2): ours with `--generation_backend ctranslate2` in float32 (its predictions compared line by line
   with ours) and in int8 (with its ROUGE-1/BLEU next to ours), and the whole command's wall time, which counts
   the conversion.
2. training, one epoch over the same examples (so every side sees the same useful tokens). Baseline: random
   batches (the Trainer default). Ours: `--train_sampling_strategy group_by_length` (same batch size and
   steps). Ours, token budget: `--train_max_tokens_per_batch train_batch_size x mean length` (about the same
   steps and tokens per step, without the padding). Reported: useful (non-pad) source + target tokens per second
   of `train_runtime`, steps and the final training loss.

Peak RSS is that of the script's process (`wait4`). Fraction of peak = model FLOPs of the useful tokens (the
matmuls: 2 x parameters per token for generation, 6 x for training, plus attention) per second, over the fp32
matmul GFLOP/s measured here at the start and the end (1024 x 1024, all threads; the larger is used).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, GenerationConfig, T5Config, T5ForConditionalGeneration

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT.parent / "shared" / "data"
SUMMARIZATION = REPO_ROOT / "examples" / "pytorch" / "summarization" / "run_summarization.py"
TRANSLATION = REPO_ROOT / "examples" / "pytorch" / "translation" / "run_translation.py"
ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "offline"}
D_MODEL, D_FF, LAYERS = 512, 2048, 6
SIDES = ("baseline", "ours", "ours_budget")
CTRANSLATE2_SIDES = ("ctranslate2", "ctranslate2_int8")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", default=str(REPO_ROOT / ".cache" / "tiny-models" / "t5"))
    parser.add_argument("--model_dir", default=str(REPO_ROOT / ".cache" / "bench-t5-small"))
    parser.add_argument("--new_tokens", type=int, default=32, help="most tokens generated per example")
    parser.add_argument("--n_greedy", type=int, default=40, help="examples per greedy generation row")
    parser.add_argument("--n_beams", type=int, default=12, help="examples per 4-beam generation row")
    parser.add_argument("--n_train", type=int, default=32, help="training examples (one epoch) per row")
    parser.add_argument(
        "--short_factor", type=int, default=4, help="en-ro rows (short sentences) use this many times more examples"
    )
    parser.add_argument("--eval_batch_size", type=int, default=8, help="eval/predict batch size of both sides")
    parser.add_argument("--train_batch_size", type=int, default=8)
    parser.add_argument("--max_source_length", type=int, default=512)
    parser.add_argument("--max_target_length", type=int, default=64)
    parser.add_argument("--only", help="comma-separated row names to run (default: all)")
    parser.add_argument(
        "--no_ctranslate2",
        dest="ctranslate2",
        action="store_false",
        help="leave out the --generation_backend ctranslate2 sides (float32 and int8) of the generation rows",
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.new_tokens, args.n_greedy, args.n_beams, args.n_train = 4, 8, 4, 16
        args.max_source_length = 256
    return args


def build_model(args) -> None:
    """Save the t5-small-sized random model with the tiny tokenizer once; later runs reuse the folder."""
    if (Path(args.model_dir) / "model.safetensors").is_file():
        return
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=D_MODEL, d_kv=64, d_ff=D_FF, num_layers=LAYERS, num_heads=8,
        dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    model = T5ForConditionalGeneration(config)
    model.save_pretrained(args.model_dir)
    tokenizer.save_pretrained(args.model_dir)


def set_new_tokens(args) -> None:
    """Up to --new_tokens new tokens per sequence; the random model almost never generates its end token, so
    every side does about that much work (the predictions files say exactly). Beam search stops as soon as
    `num_beams` hypotheses have ended (early_stopping: what CTranslate2 reproduces; transformers' default false
    searches on and is refused by --generation_backend ctranslate2)."""
    config = GenerationConfig(
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, max_new_tokens=args.new_tokens,
        num_beams=4, early_stopping=True,
    )  # fmt: skip
    config.save_pretrained(args.model_dir)


def write_data(work: Path, n: int) -> dict[str, Path]:
    """The first n examples of each data set as the scripts read them (.jsonl)."""
    files = {}
    with open(DATA / "cnndm_see2017_test" / "test.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(n), handle, strict=False)]
    files["cnndm"] = write_jsonl(
        work / "cnndm.jsonl", [{"text": r["article"], "summary": r["highlights"]} for r in rows]
    )
    with open(DATA / "scitldr_a" / "dev.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(n), handle, strict=False)]
    files["scitldr"] = write_jsonl(
        work / "scitldr.jsonl", [{"text": " ".join(r["source"]), "summary": r["target"][0]} for r in rows]
    )
    pairs = []
    folder = DATA / "wmt16_en_ro_newsdev2016"
    with (
        open(folder / "newsdev2016.en", encoding="utf-8") as en,
        open(folder / "newsdev2016.ro", encoding="utf-8") as ro,
    ):
        for _, source, target in zip(range(n), en, ro, strict=False):
            pairs.append({"translation": {"en": source.strip(), "ro": target.strip()}})
    files["en-ro"] = write_jsonl(work / "en-ro.jsonl", pairs)
    return files


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return path


def read_rows(path: Path, n: int) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for _, line in zip(range(n), handle, strict=False)]


def texts(data: str, rows: list[dict]) -> tuple[list[str], list[str]]:
    if data == "en-ro":
        return ["translate English to Romanian: " + r["translation"]["en"] for r in rows], [
            r["translation"]["ro"] for r in rows
        ]
    return ["summarize: " + r["text"] for r in rows], [r["summary"] for r in rows]


def matmul_gflops(seconds: float = 2.0) -> float:
    """fp32 matmul throughput of this machine (1024 x 1024 x 1024, all threads), GFLOP/s."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * 1024**3 * count / (time.perf_counter() - start) / 1e9


def generation_flops(source_lengths: list[int], new_tokens: int, beams: int, vocab: int) -> float:
    """Matmul FLOPs of generating for these (unpadded) sources: encoder, cross-attention keys/values per beam,
    and per new token and beam the decoder layers, LM head and attention over the source and the prefix."""
    encoder_params = LAYERS * (4 * D_MODEL**2 + 2 * D_MODEL * D_FF)
    decoder_params = LAYERS * (8 * D_MODEL**2 + 2 * D_MODEL * D_FF) + D_MODEL * vocab
    total = 0.0
    for length in source_lengths:
        total += 2 * encoder_params * length + 4 * LAYERS * length * length * D_MODEL
        total += beams * 4 * LAYERS * D_MODEL**2 * length  # cross-attention K/V of the encoder output
        for step in range(1, new_tokens + 1):
            total += beams * (2 * decoder_params + 4 * LAYERS * D_MODEL * (length + step))
    return total


def training_flops(source_lengths: list[int], target_lengths: list[int], vocab: int) -> float:
    """Forward + backward matmul FLOPs (3 x forward) of the useful tokens."""
    encoder_params = LAYERS * (4 * D_MODEL**2 + 2 * D_MODEL * D_FF)
    decoder_params = LAYERS * (8 * D_MODEL**2 + 2 * D_MODEL * D_FF) + D_MODEL * vocab
    forward = 0.0
    for source, target in zip(source_lengths, target_lengths, strict=True):
        forward += 2 * encoder_params * source + 4 * LAYERS * source * source * D_MODEL
        forward += 2 * decoder_params * target + 4 * LAYERS * D_MODEL * target * (source + target)
    return 3 * forward


def run_script(command: list, output_dir: Path) -> tuple[dict, float]:
    """Run one script invocation; return its all_results.json and the process's peak RSS in MiB."""
    if output_dir.exists():
        shutil.rmtree(output_dir)
    log = open(output_dir.with_suffix(".log"), "w", encoding="utf-8")  # noqa: SIM115  (closed below)
    process = subprocess.Popen(
        [sys.executable, *map(str, command), "--output_dir", str(output_dir)],
        cwd=REPO_ROOT,
        env={**os.environ, **ENV},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    log.close()
    if process.returncode != 0:
        tail = output_dir.with_suffix(".log").read_text(encoding="utf-8")[-3000:]
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({process.returncode}):\n{tail}")
    with open(output_dir / "all_results.json", encoding="utf-8") as handle:
        return json.load(handle), usage.ru_maxrss / 1024


def read_steps(output_dir: Path) -> int:
    with open(output_dir / "trainer_state.json", encoding="utf-8") as handle:
        return json.load(handle)["global_step"]


def script_args(data: str, path: Path, args) -> list:
    if data == "en-ro":
        return [TRANSLATION, "--source_lang", "en", "--target_lang", "ro", "--train_file", path, "--test_file", path,
                "--source_prefix", "translate English to Romanian: "]  # fmt: skip
    return [SUMMARIZATION, "--text_column", "text", "--summary_column", "summary", "--train_file", path,
            "--test_file", path, "--source_prefix", "summarize: "]  # fmt: skip


def bench_generation(name, data, beams, n, files, work, args, tokenizer, first: str) -> dict:
    common = [*script_args(data, files[data], args), "--model_name_or_path", args.model_dir, "--do_predict"]
    common += ["--predict_with_generate", "--max_predict_samples", n, "--num_beams", beams]
    common += ["--max_source_length", args.max_source_length, "--generation_max_length", args.new_tokens + 1]
    stock = ["--eval_sort_by_length", "False", "--eval_encode_once", "False"]
    stock += ["--eval_beams_share_cross_attention", "False"]
    # 'auto': the tokens of a fixed-size batch of the data's longest inputs, so no batch holds more.
    budget = ["--eval_max_tokens_per_batch", "auto"]
    ctranslate2 = ["--generation_backend", "ctranslate2"]
    sides = {
        "baseline": stock,
        "ours": [],
        "ours_budget": budget,
        "ctranslate2": ctranslate2,
        "ctranslate2_int8": [*ctranslate2, "--ctranslate2_compute_type", "int8"],
    }
    for flags in sides.values():
        flags += ["--per_device_eval_batch_size", args.eval_batch_size]
    order = ["baseline", "ours"] if first == "baseline" else ["ours", "baseline"]
    order += ["ours_budget", *(CTRANSLATE2_SIDES if args.ctranslate2 else ())]
    results = {}
    metric = "predict_bleu" if data == "en-ro" else "predict_rouge1"
    for side in order:
        start = time.perf_counter()
        metrics, rss = run_script([*common, *sides[side]], work / f"{name}-{side}")
        results[side] = {
            "samples_per_s": metrics["predict_samples_per_second"],
            "rss_mib": rss,
            "wall_s": time.perf_counter() - start,  # the whole command: start-up, conversion, generation
            "metric": metrics[metric],
        }
    expected = (work / f"{name}-baseline" / "generated_predictions.txt").read_bytes()
    same = all((work / f"{name}-{side}" / "generated_predictions.txt").read_bytes() == expected for side in SIDES)
    ours = (work / f"{name}-ours" / "generated_predictions.txt").read_text(encoding="utf-8").splitlines()
    for side in CTRANSLATE2_SIDES if args.ctranslate2 else ():
        theirs = (work / f"{name}-{side}" / "generated_predictions.txt").read_text(encoding="utf-8").splitlines()
        results[side]["identical"] = sum(a == b for a, b in zip(ours, theirs, strict=True))
    sources, _ = texts(data, read_rows(files[data], n))
    lengths = [len(ids) for ids in tokenizer(sources, max_length=args.max_source_length, truncation=True)["input_ids"]]
    flops_per_sample = generation_flops(lengths, args.new_tokens, beams, len(tokenizer)) / n
    return {"name": name, "samples": n, "identical": same, "flops_per_sample": flops_per_sample, **results}


def bench_training(name, data, max_source_length, files, work, args, tokenizer, first: str) -> dict:
    common = [*script_args(data, files[data], args), "--model_name_or_path", args.model_dir, "--do_train"]
    n_train = args.n_train * (args.short_factor if data == "en-ro" else 1)
    common += ["--max_train_samples", n_train, "--num_train_epochs", 1, "--save_strategy", "no"]
    common += ["--per_device_train_batch_size", args.train_batch_size, "--learning_rate", 1e-4, "--seed", 0]
    common += ["--max_source_length", max_source_length, "--max_target_length", args.max_target_length]
    common += ["--logging_steps", 1, "--report_to", "none"]
    sources, targets = texts(data, read_rows(files[data], n_train))
    src = [len(i) for i in tokenizer(sources, max_length=max_source_length, truncation=True)["input_ids"]]
    tgt = [
        len(i) for i in tokenizer(text_target=targets, max_length=args.max_target_length, truncation=True)["input_ids"]
    ]
    useful = sum(src) + sum(tgt)
    # A token budget of the batch size times the mean length: about as many steps (and tokens per step) as the
    # baseline, with the padding gone.
    budget = round(args.train_batch_size * useful / len(src))
    sides = {
        "baseline": [],
        "ours": ["--train_sampling_strategy", "group_by_length"],
        "ours_budget": ["--train_max_tokens_per_batch", budget],
    }
    order = ["baseline", "ours"] if first == "baseline" else ["ours", "baseline"]
    order += ["ours_budget"]
    results = {}
    for side in order:
        metrics, rss = run_script([*common, *sides[side]], work / f"{name}-{side}")
        results[side] = {
            "tokens_per_s": useful / metrics["train_runtime"],
            "rss_mib": rss,
            "train_loss": metrics["train_loss"],
            "steps": read_steps(work / f"{name}-{side}"),
        }
    flops = training_flops(src, tgt, len(tokenizer))
    return {"name": name, "useful_tokens": useful, "flops_per_token": flops / useful, **results}


def main() -> None:
    args = parse_args()
    build_model(args)
    set_new_tokens(args)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    peak_start = matmul_gflops()
    print(f"fp32 matmul peak (1024^3, {torch.get_num_threads()} threads): {peak_start:.1f} GFLOP/s", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-gen-train-"))
    files = write_data(work, args.short_factor * max(args.n_greedy, args.n_beams, args.n_train))
    short = args.short_factor
    generation_rows = [
        ("cnndm greedy", "cnndm", 1, args.n_greedy),
        ("cnndm beam4", "cnndm", 4, args.n_beams),
        ("scitldr greedy", "scitldr", 1, args.n_greedy),
        ("scitldr beam4", "scitldr", 4, args.n_beams),
        ("en-ro greedy", "en-ro", 1, short * args.n_greedy),
        ("en-ro beam4", "en-ro", 4, short * args.n_beams),
    ]
    training_rows = [
        ("train scitldr", "scitldr", args.max_source_length),
        ("train en-ro", "en-ro", args.max_source_length),
        ("train cnndm (512)", "cnndm", args.max_source_length),
    ]
    only = set(args.only.split(",")) if args.only else None
    generation, training = [], []
    for i, (name, data, beams, n) in enumerate(generation_rows):
        if only is None or name in only:
            first = "baseline" if i % 2 == 0 else "ours"
            generation.append(bench_generation(name, data, beams, n, files, work, args, tokenizer, first))
            print(json.dumps(generation[-1]), flush=True)
    for i, (name, data, max_source_length) in enumerate(training_rows):
        if only is None or name in only:
            first = "baseline" if i % 2 == 0 else "ours"
            training.append(bench_training(name, data, max_source_length, files, work, args, tokenizer, first))
            print(json.dumps(training[-1]), flush=True)
    peak_end = matmul_gflops()
    peak = max(peak_start, peak_end)
    print(f"fp32 matmul peak at the end: {peak_end:.1f} GFLOP/s; fractions below use {peak:.1f}")

    print(
        f"\nt5-small-sized T5 (random init), {args.new_tokens} new tokens, sources <= {args.max_source_length} "
        f"tokens; eval batch {args.eval_batch_size}; training batch {args.train_batch_size}, one epoch of "
        f"{args.n_train} examples (en-ro: {args.short_factor * args.n_train}); fp32 matmul peak {peak:.1f} GFLOP/s"
    )
    print("\n| row | baseline | ours | ratio | ours, token budget | ratio | identical predictions | peak RSS MiB (base / ours / budget) | fraction of peak (base / ours / budget) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for row in generation:
        speeds = [row[side]["samples_per_s"] for side in SIDES]
        fractions = " / ".join(f"{row['flops_per_sample'] * speed / 1e9 / peak:.1%}" for speed in speeds)
        rss = " / ".join(f"{row[side]['rss_mib']:.0f}" for side in SIDES)
        print(
            f"| {row['name']} | {speeds[0]:.3f} samples/s | {speeds[1]:.3f} samples/s | {speeds[1] / speeds[0]:.2f}x | "
            f"{speeds[2]:.3f} samples/s | {speeds[2] / speeds[0]:.2f}x | {'yes' if row['identical'] else 'NO'} | "
            f"{rss} | {fractions} |"
        )
    if args.ctranslate2 and generation:
        print(
            "\n--generation_backend ctranslate2 against ours (the transformers default above): samples/s, predictions "
            "equal to ours, peak RSS, fraction of peak; the whole command's wall time (start-up and conversion "
            "included); int8 with its metric (ROUGE-1 or BLEU) next to ours"
        )
        print("\n| row | ours | ctranslate2 float32 | ratio | identical | peak RSS MiB (ours / ct2) | fraction of peak (ours / ct2) | wall s (ours / ct2) | int8 | ratio | identical | metric (ours / int8) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row in generation:
            ours, fp32, int8 = row["ours"], row["ctranslate2"], row["ctranslate2_int8"]
            n = row["samples"]
            fractions = " / ".join(
                f"{row['flops_per_sample'] * side['samples_per_s'] / 1e9 / peak:.1%}" for side in (ours, fp32)
            )
            print(
                f"| {row['name']} | {ours['samples_per_s']:.3f} | {fp32['samples_per_s']:.3f} | "
                f"{fp32['samples_per_s'] / ours['samples_per_s']:.2f}x | {fp32['identical']} of {n} | "
                f"{ours['rss_mib']:.0f} / {fp32['rss_mib']:.0f} | {fractions} | {ours['wall_s']:.1f} / {fp32['wall_s']:.1f} | "
                f"{int8['samples_per_s']:.3f} | {int8['samples_per_s'] / ours['samples_per_s']:.2f}x | "
                f"{int8['identical']} of {n} | {ours['metric']:.4f} / {int8['metric']:.4f} |"
            )
    for row in training:
        speeds = [row[side]["tokens_per_s"] for side in SIDES]
        fractions = " / ".join(f"{row['flops_per_token'] * speed / 1e9 / peak:.1%}" for speed in speeds)
        rss = " / ".join(f"{row[side]['rss_mib']:.0f}" for side in SIDES)
        losses = "train loss " + " / ".join(f"{row[side]['train_loss']:.3f}" for side in SIDES)
        steps = "steps " + " / ".join(str(row[side]["steps"]) for side in SIDES)
        print(
            f"| {row['name']} | {speeds[0]:.0f} tok/s | {speeds[1]:.0f} tok/s | {speeds[1] / speeds[0]:.2f}x | "
            f"{speeds[2]:.0f} tok/s | {speeds[2] / speeds[0]:.2f}x | n/a ({losses}; {steps}) | {rss} | {fractions} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"args": vars(args), "peak_gflops": peak, "generation": generation, "training": training}, handle
            )
    shutil.rmtree(work)
    if not all(row["identical"] for row in generation):
        sys.exit("predictions differ between baseline and ours (see the table)")
    if args.ctranslate2 and not all(row["ctranslate2"]["identical"] == row["samples"] for row in generation):
        sys.exit("--generation_backend ctranslate2 (float32) predictions differ from ours (see the table)")


if __name__ == "__main__":
    main()
