#!/usr/bin/env python
"""Benchmark: s2s-ft decoding with the key/value cache vs full recomputation, and vs an encoder-decoder.

Claim checked: the cached decoder (each step runs only the new token and its [MASK]) is much faster than
recomputing the whole sequence at every step (upstream's ~100x-slower complaint), and s2s-ft decoding runs at
the speed of an encoder-decoder of comparable size under `generate()`.

Both sides of each ratio decode the same inputs (real WMT16 sentences, tokenised by the tiny BERT tokenizer)
with randomly initialised models (weights do not change the cost: every run is forced to generate exactly
--max_tgt_length tokens, no early end). Offline; about 1-3 minutes on 2 CPU cores.

    python bench/s2s_ft_decoding.py                      # CPU, default sizes
    python bench/s2s_ft_decoding.py --device cuda --batch_size 32

Read the table: samples/s per row, and the ratio column (cached / recompute, s2s-ft / encoder-decoder).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "examples" / "pytorch" / "s2s-ft"))

from s2s_ft.data import special_ids, tokenize_texts  # noqa: E402
from s2s_ft.decoding import DecodeOptions, decode  # noqa: E402
from s2s_ft.modeling import S2SFTForSeq2Seq  # noqa: E402
from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration, BertConfig  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", default=str(REPO_ROOT / ".cache" / "tiny-models" / "bert"))
    parser.add_argument(
        "--data", default=str(REPO_ROOT / "tests" / "fixtures" / "translation" / "wmt_en_ro" / "test.json")
    )
    parser.add_argument("--num_samples", type=int, default=8, help="inputs decoded per measurement")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_source_tokens", type=int, default=64, help="sources are cut to this many tokens")
    parser.add_argument("--max_tgt_length", type=int, default=32, help="tokens generated per input")
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--num_layers", type=int, default=6, help="s2s-ft layers; the encoder-decoder gets half each")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1 keeps small-op timings stable on a shared machine)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args()


def timed(function, repeats: int = 1, warm_up: bool = True) -> float:
    """Best wall-clock seconds of `repeats` calls (after one warm-up call)."""
    if warm_up:
        function()
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    ids = special_ids(tokenizer)
    with open(args.data, encoding="utf-8") as handle:
        texts = [json.loads(line)["translation"]["en"] for line in handle if line.strip()]
    texts = (texts * (args.num_samples // len(texts) + 1))[: args.num_samples]
    sources = [source[: args.max_source_tokens] for source in tokenize_texts(tokenizer, texts)]
    vocab = len(tokenizer)

    size = dict(
        hidden_size=args.hidden_size,
        num_attention_heads=args.hidden_size // 64,
        intermediate_size=4 * args.hidden_size,
    )
    s2s = S2SFTForSeq2Seq(
        BertConfig(vocab_size=vocab, num_hidden_layers=args.num_layers, pad_token_id=ids.pad, **size)
    )
    s2s.config.update({"source_type_id": 0, "target_type_id": 1})
    s2s = s2s.to(args.device).eval()
    half = max(1, args.num_layers // 2)
    bart = (
        BartForConditionalGeneration(
            BartConfig(
                vocab_size=vocab,
                d_model=args.hidden_size,
                encoder_layers=half,
                decoder_layers=half,
                encoder_attention_heads=size["num_attention_heads"],
                decoder_attention_heads=size["num_attention_heads"],
                encoder_ffn_dim=size["intermediate_size"],
                decoder_ffn_dim=size["intermediate_size"],
                max_position_embeddings=512,
                pad_token_id=ids.pad,
                bos_token_id=ids.cls,
                eos_token_id=ids.sep,
                decoder_start_token_id=ids.sep,
                forced_eos_token_id=None,
            )
        )
        .to(args.device)
        .eval()
    )

    def run_s2s(beam_size: int, use_cache: bool):
        # min_len = max_tgt_length bans the end token throughout: every input gets exactly max_tgt_length tokens.
        options = DecodeOptions(
            max_tgt_length=args.max_tgt_length, beam_size=beam_size, min_len=args.max_tgt_length, use_cache=use_cache
        )
        return lambda: decode(s2s, sources, ids, options, args.batch_size)

    def run_bart(beam_size: int):
        order = sorted(range(len(sources)), key=lambda index: -len(sources[index]))

        @torch.no_grad()
        def generate():
            for start in range(0, len(order), args.batch_size):
                chunk = [[ids.cls] + sources[index] + [ids.sep] for index in order[start : start + args.batch_size]]
                width = max(len(row) for row in chunk)
                input_ids = torch.tensor([row + [ids.pad] * (width - len(row)) for row in chunk], device=args.device)
                bart.generate(
                    input_ids=input_ids,
                    attention_mask=(input_ids != ids.pad).long(),
                    max_new_tokens=args.max_tgt_length,
                    min_new_tokens=args.max_tgt_length,
                    num_beams=beam_size,
                    do_sample=False,
                    early_stopping=False,
                )

        return generate

    rows = []
    for beam_size in (1, 4):
        cached = args.num_samples / timed(run_s2s(beam_size, True), repeats=2)
        full = args.num_samples / timed(run_s2s(beam_size, False), warm_up=False)
        encoder_decoder = args.num_samples / timed(run_bart(beam_size), repeats=2)
        rows.append((beam_size, cached, full, encoder_decoder))

    count = lambda model: sum(p.numel() for p in model.parameters()) / 1e6  # noqa: E731
    mean_source = sum(len(source) for source in sources) / len(sources)
    print(
        f"device {args.device}, {torch.get_num_threads()} threads; {args.num_samples} inputs (mean {mean_source:.0f} "
        f"source tokens), batch {args.batch_size}, {args.max_tgt_length} generated tokens each"
    )
    print(
        f"s2s-ft BERT layout: {args.num_layers} layers, hidden {args.hidden_size}, {count(s2s):.1f}M parameters; "
        f"BART (generate): {half}+{half} layers, hidden {args.hidden_size}, {count(bart):.1f}M parameters"
    )
    print("| beam | s2s-ft cached | s2s-ft recompute | cached/recompute | BART generate | s2s-ft cached/BART |")
    print("|---|---|---|---|---|---|")
    for beam_size, cached, full, encoder_decoder in rows:
        print(
            f"| {beam_size} | {cached:.1f} samples/s | {full:.1f} samples/s | {cached / full:.2f}x "
            f"| {encoder_decoder:.1f} samples/s | {cached / encoder_decoder:.2f}x |"
        )


if __name__ == "__main__":
    main()
