#!/usr/bin/env python
"""Benchmark of the legacy toolkit's batching, side by side in one run on the same model and data.

    .venv/bin/python bench/legacy_batching.py            # ~5 minutes on 2 idle CPU cores
    .venv/bin/python bench/legacy_batching.py --quick    # a smoke run (~2 minutes)

Model: a t5-small-sized T5 (d_model 512, d_ff 2048, 6+6 layers, 8 heads; random init, seed 0) with the tiny
T5 tokenizer of `.cache/tiny-models/t5` (built by `make tiny-models`). Data: SciTLDR-A dev abstracts (real,
variable length; `../shared/data/scitldr_a`), truncated to --max_source_length tokens.

1. Training throughput with the three batch orders of `finetune_trainer.py` (the real sampler classes and
   collator of examples/legacy/seq2seq/utils.py): random batches of --batch_size (the default Trainer
   order), sortish batches of --batch_size (`--sortish_sampler`), and token-budget batches
   (`--max_tokens_per_batch`, budget = batch_size x the mean source length, so steps hold as many real
   tokens on average as a random batch). Reported: real (non-pad) source+target tokens per second, the
   padding fraction of the sources, examples per step.
2. Generation throughput as in `run_eval.py`: input order vs longest-first batches, greedy, every sequence
   forced to exactly --new_tokens new tokens (min = max) so both sides do the same work; predictions are
   compared after restoring input order.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "examples" / "legacy" / "seq2seq"))
from utils import SortishSampler, make_token_budget_batches  # noqa: E402  (the legacy toolkit's library)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "scitldr_a" / "dev.jsonl"))
    parser.add_argument("--tokenizer", default=str(REPO_ROOT / ".cache" / "tiny-models" / "t5"))
    parser.add_argument("--max_source_length", type=int, default=512)
    parser.add_argument("--max_target_length", type=int, default=48)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--train_steps", type=int, default=6, help="timed training steps per batch order")
    parser.add_argument("--n_generate", type=int, default=24, help="examples generated per order")
    parser.add_argument("--new_tokens", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.train_steps, args.n_generate, args.new_tokens = 2, 16, 4
    return args


def load_examples(path: str) -> tuple[list[str], list[str]]:
    sources, targets = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            sources.append(" ".join(record["source"]))
            targets.append(record["target"][0])
    return sources, targets


def t5_small(vocab_size: int) -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=vocab_size,
        d_model=512,
        d_kv=64,
        d_ff=2048,
        num_layers=6,
        num_heads=8,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5ForConditionalGeneration(config)


def collate(tokenizer, sources, targets, args):
    batch = tokenizer(
        sources, max_length=args.max_source_length, truncation=True, padding="longest", return_tensors="pt"
    )
    labels = tokenizer(
        text_target=targets, max_length=args.max_target_length, truncation=True, padding="longest", return_tensors="pt"
    )["input_ids"]
    labels[labels == tokenizer.pad_token_id] = -100
    batch["labels"] = labels
    return batch


def train_orders(lengths: list[int], args) -> dict[str, list[list[int]]]:
    """The first --train_steps batches of one epoch in each order."""
    n, bs = len(lengths), args.batch_size
    rng = np.random.default_rng(0)
    random_order = rng.permutation(n).tolist()
    sortish_order = list(iter(SortishSampler(lengths, bs, shuffle=True, seed=0)))
    budget = int(bs * np.mean(lengths))
    return {
        "random": [random_order[i : i + bs] for i in range(0, n, bs)][: args.train_steps],
        "sortish": [sortish_order[i : i + bs] for i in range(0, n, bs)][: args.train_steps],
        f"token_budget({budget})": make_token_budget_batches(lengths, budget, shuffle=True, seed=0)[
            : args.train_steps
        ],
    }


def bench_training(model, tokenizer, sources, targets, lengths, args) -> list[dict]:
    """Time one optimizer step per batch, the orders interleaved step by step (A B C A B C ...) so that
    machine load drifts hit all of them alike. One model and optimizer serve all orders: the step cost does
    not depend on the weights, and the loss trajectory is not what is measured here."""
    orders = train_orders(lengths, args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step(batch_ids):
        batch = collate(tokenizer, [sources[i] for i in batch_ids], [targets[i] for i in batch_ids], args)
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return batch

    step(next(iter(orders.values()))[0])  # warm-up (allocations), not timed
    totals = {name: {"real": 0, "padded": 0, "real_tgt": 0, "examples": 0, "seconds": 0.0} for name in orders}
    for i in range(args.train_steps):
        for name, batches in orders.items():
            if i >= len(batches):
                continue
            start = time.perf_counter()
            batch = step(batches[i])
            total = totals[name]
            total["seconds"] += time.perf_counter() - start
            total["real"] += int(batch["attention_mask"].sum())
            total["padded"] += batch["attention_mask"].numel()
            total["real_tgt"] += int((batch["labels"] != -100).sum())
            total["examples"] += len(batches[i])
    results = []
    for name, total in totals.items():
        steps = min(args.train_steps, len(orders[name]))
        results.append(
            {
                "order": name,
                "steps": steps,
                "examples_per_step": round(total["examples"] / steps, 1),
                "src_pad_fraction": round(1 - total["real"] / total["padded"], 4),
                "real_tokens_per_s": round((total["real"] + total["real_tgt"]) / total["seconds"], 1),
                "seconds": round(total["seconds"], 2),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def generate(model, tokenizer, sources, order, args) -> tuple[list[str], float]:
    """Greedy generation in `order`, batches of --batch_size; texts back in input order, and seconds taken."""
    model.eval()
    texts: dict[int, str] = {}
    start = time.perf_counter()
    for i in range(0, len(order), args.batch_size):
        ids = order[i : i + args.batch_size]
        batch = tokenizer(
            [sources[j] for j in ids], max_length=args.max_source_length, truncation=True, padding="longest",
            return_tensors="pt",
        )  # fmt: skip
        with torch.no_grad():
            output = model.generate(
                **batch, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, num_beams=1, do_sample=False
            )
        for j, text in zip(ids, tokenizer.batch_decode(output, skip_special_tokens=True), strict=True):
            texts[j] = text
    return [texts[j] for j in range(len(order))], time.perf_counter() - start


def bench_generation(model, tokenizer, sources, lengths, args) -> list[dict]:
    n = args.n_generate
    sources, lengths = sources[:n], lengths[:n]
    orders = {"input order": list(range(n)), "length-sorted": np.argsort(-np.asarray(lengths), kind="stable").tolist()}
    generate(model, tokenizer, sources, list(range(args.batch_size)), args)  # warm-up, not timed
    results, reference = [], None
    for name, order in orders.items():
        texts, seconds = generate(model, tokenizer, sources, order, args)
        reference = reference or texts
        results.append(
            {
                "order": name,
                "samples_per_s": round(n / seconds, 3),
                "seconds": round(seconds, 2),
                "same_predictions_as_input_order": texts == reference,
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    args = parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    sources, targets = load_examples(args.data)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    lengths = [len(ids) for ids in tokenizer(sources, max_length=args.max_source_length, truncation=True)["input_ids"]]
    model = t5_small(len(tokenizer))
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model: t5-small-sized ({n_params / 1e6:.1f}M params, random init); data: {args.data} "
        f"({len(sources)} examples, source tokens mean {np.mean(lengths):.0f}, max {max(lengths)}); "
        f"threads {torch.get_num_threads()}",
        flush=True,
    )
    training = bench_training(model, tokenizer, sources, targets, lengths, args)
    generation = bench_generation(model, tokenizer, sources, lengths, args)

    base_train, base_gen = training[0]["real_tokens_per_s"], generation[0]["samples_per_s"]
    print("\n| training order | examples/step | src padding | real tokens/s | ratio vs random |")
    print("|---|---|---|---|---|")
    for row in training:
        print(
            f"| {row['order']} | {row['examples_per_step']} | {row['src_pad_fraction']:.1%} | "
            f"{row['real_tokens_per_s']:.0f} | {row['real_tokens_per_s'] / base_train:.2f}x |"
        )
    print("\n| generation order | samples/s | ratio vs input order | same predictions |")
    print("|---|---|---|---|")
    for row in generation:
        print(
            f"| {row['order']} | {row['samples_per_s']:.3f} | {row['samples_per_s'] / base_gen:.2f}x | "
            f"{'yes' if row['same_predictions_as_input_order'] else 'NO'} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "training": training, "generation": generation}, handle, indent=2)


if __name__ == "__main__":
    main()
