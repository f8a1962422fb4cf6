#!/usr/bin/env python
"""Generate with a model fine-tuned by run_seq2seq.py (greedy or beam search, key/value cache) and score it.

Inputs are the training format (`src` read, `tgt` ignored), decoded longest first in batches and written one
output per line in input order. With `--reference_file` (text lines, or JSON lines with `tgt`) the outputs are
scored with ROUGE-1/2/L/Lsum (rouge_score, as the project's other scripts) and corpus BLEU (sacrebleu).

    python examples/pytorch/s2s-ft/decode_seq2seq.py --model_path outputs/s2s-ft-copy \
        --input_file tests/fixtures/s2s_ft/copy/test.jsonl --output_file outputs/s2s-ft-copy/test.pred \
        --reference_file tests/fixtures/s2s_ft/copy/test.jsonl --max_seq_length 64 --max_tgt_length 24 \
        --beam_size 4 --length_penalty 0.6 --forbid_duplicate_ngrams --forbid_ignore_word "."

Single process, on CPU or one GPU (`--device`); run one per GPU over shards of the input for more.
"""

import argparse
import json
import logging
import os
import sys
import time

import torch
from s2s_ft.data import check_data_file, detokenize, read_records, special_ids, tokenize_texts
from s2s_ft.decoding import DecodeOptions, decode
from s2s_ft.metrics import check_sentence_splitter, compute_bleu, compute_rouge
from s2s_ft.modeling import MODEL_TYPES, S2SFTForSeq2Seq, check_tokenizer_folder
from s2s_ft.utils import UsageError, run_cli
from safetensors import SafetensorError
from transformers import AutoTokenizer, set_seed

from seq2seq_checks import atomic_write, check_flag_values, check_output_file, check_text_file, one_line_errors

logger = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("--model_path", required=True, help="folder written by run_seq2seq.py (or a checkpoint-N)")
    parser.add_argument(
        "--model_type",
        choices=MODEL_TYPES,
        help="accepted for upstream recipes; the saved model is always BERT layout",
    )
    parser.add_argument("--tokenizer_name", help="tokenizer folder (default: --model_path)")
    parser.add_argument("--input_file", required=True, help="JSON lines (or CSV/TSV) with a 'src' key")
    parser.add_argument("--source_column", default="src", help="key/column of the source")
    parser.add_argument("--output_file", help="one output per input line (default: <model_path>.<split>)")
    parser.add_argument("--split", default="test", help="suffix of the default output file name")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output_file (and scores file); without it an existing one is refused",
    )
    parser.add_argument("--subset", type=int, default=0, help="decode only the first N inputs (0 = all)")
    parser.add_argument("--batch_size", type=int, default=4, help="inputs per batch (sorted by length first)")
    parser.add_argument("--max_seq_length", type=int, default=512, help="source + target budget; sources are cut")
    parser.add_argument("--max_tgt_length", type=int, default=128, help="maximum number of generated tokens")
    parser.add_argument("--beam_size", type=int, default=1, help="1 = greedy search")
    parser.add_argument("--length_penalty", type=float, default=0.0, help="GNMT alpha for choosing the best beam")
    parser.add_argument("--min_len", type=int, default=1, help="no end token among the first N generated tokens")
    parser.add_argument("--forbid_duplicate_ngrams", action="store_true", help="never repeat an n-gram")
    parser.add_argument("--ngram_size", type=int, default=3, help="n of --forbid_duplicate_ngrams")
    parser.add_argument(
        "--forbid_ignore_word", help="'|'-separated tokens that n-gram blocking ignores, e.g. '.' or '.|[X_SEP]'"
    )
    parser.add_argument("--mode", default="s2s", choices=["s2s"], help="only s2s (upstream's l2r had no effect)")
    parser.add_argument(
        "--pos_shift", action="store_true", help="causal decoding (default: on for models trained in causal mode)"
    )
    parser.add_argument("--no_cache", action="store_true", help="recompute every step in full (slow; for checks)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--fp16", action="store_true", help="decode in float16 (GPU)")
    parser.add_argument("--bf16", action="store_true", help="decode in bfloat16")
    parser.add_argument("--seed", type=int, default=123, help="random seed (decoding itself is deterministic)")
    parser.add_argument("--reference_file", help="references: text, one per line, or JSON lines with 'tgt'")
    parser.add_argument("--target_column", default="tgt", help="key of the reference in a JSON-lines reference file")
    parser.add_argument("--score_path", help="where the scores JSON goes (default: <output_file>.scores.json)")
    return parser.parse_args(argv)


def validate_args(args: argparse.Namespace) -> None:
    """Check flags and files before loading the model (fills in the default --output_file and --score_path);
    raise UsageError naming the fix."""
    check_flag_values(args)
    for name in ("batch_size", "beam_size", "max_tgt_length", "ngram_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}; pass e.g. --{name} 4")
    if args.min_len < 0 or args.subset < 0:
        raise UsageError("--min_len and --subset must be >= 0")
    if args.min_len >= args.max_tgt_length:
        raise UsageError(
            f"--min_len {args.min_len} leaves no room to end within --max_tgt_length {args.max_tgt_length}"
        )
    if args.max_tgt_length >= args.max_seq_length - 2:
        raise UsageError(
            f"--max_tgt_length {args.max_tgt_length} leaves no room for the source in --max_seq_length "
            f"{args.max_seq_length}; raise --max_seq_length or lower --max_tgt_length"
        )
    if args.fp16 and args.bf16:
        raise UsageError("pass only one of --fp16 and --bf16")
    if args.fp16 and args.device == "cpu":
        raise UsageError("--fp16 needs a GPU (--device cuda); on CPU use --bf16 or neither")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: no GPU is visible; pass --device cpu")
    check_model_folder(args)
    check_data_file("--input_file", args.input_file)
    if args.reference_file is not None:
        check_text_file("--reference_file", args.reference_file)
    check_output_files(args)


def check_model_folder(args: argparse.Namespace) -> None:
    """Raise UsageError unless --model_path is a folder fine-tuned by run_seq2seq.py, with a tokenizer (its own or
    --tokenizer_name's). Reads config.json only."""
    config_path = os.path.join(args.model_path, "config.json")
    if not os.path.isdir(args.model_path):
        problem = "is a file" if os.path.exists(args.model_path) else "does not exist"
        raise UsageError(f"--model_path {args.model_path} {problem}; pass the --output_dir of run_seq2seq.py")
    if not os.path.isfile(config_path):
        raise UsageError(f"--model_path {args.model_path}: no config.json; pass the --output_dir of run_seq2seq.py")
    try:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        raise UsageError(
            f"--model_path {args.model_path}: config.json does not parse ({error}); restore it"
        ) from error
    if not isinstance(config, dict) or "s2s_ft_mode" not in config:
        found = config.get("model_type", "unknown") if isinstance(config, dict) else "unknown"
        raise UsageError(
            f"--model_path {args.model_path} (a {found} model) was not fine-tuned by run_seq2seq.py (no s2s_ft_mode "
            "in config.json); fine-tune it with run_seq2seq.py first and pass that --output_dir"
        )
    if args.tokenizer_name is None:
        check_tokenizer_folder("--model_path", args.model_path)
    elif not os.path.isdir(args.tokenizer_name):
        raise UsageError(f"--tokenizer_name {args.tokenizer_name}: no such folder; pass a folder with the tokenizer")
    else:
        check_tokenizer_folder("--tokenizer_name", args.tokenizer_name, "another --tokenizer_name")


def check_output_files(args: argparse.Namespace) -> None:
    """Refuse an --output_file or --score_path that is one of the inputs (the model's files included), a folder,
    or an existing file without --overwrite; fills in their defaults."""
    args.output_file = args.output_file or f"{args.model_path.rstrip('/')}.{args.split}"
    inputs = {"--input_file": args.input_file, "--reference_file": args.reference_file}
    for name in sorted(os.listdir(args.model_path)):
        inputs[f"a file of --model_path ({name})"] = os.path.join(args.model_path, name)
    check_output_file("--output_file", args.output_file, inputs, overwrite=args.overwrite)
    if args.reference_file is not None:
        args.score_path = args.score_path or f"{args.output_file}.scores.json"
        inputs["--output_file"] = args.output_file
        check_output_file("--score_path", args.score_path, inputs, overwrite=args.overwrite)


def load_model(args: argparse.Namespace):
    """The fine-tuned model (eval mode, on --device, in the requested precision) and its tokenizer."""
    dtype = torch.float16 if args.fp16 else torch.bfloat16 if args.bf16 else torch.float32
    try:
        model = S2SFTForSeq2Seq.from_pretrained(args.model_path, dtype=dtype).to(args.device).eval()
    except SafetensorError as error:
        raise UsageError(
            f"--model_path {args.model_path}: its weights file cannot be read ({error}); save the model again"
        ) from error
    except OSError as error:
        raise UsageError(f"--model_path {args.model_path}: {str(error).splitlines()[0]}") from error
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_name or args.model_path)
    if args.max_seq_length > model.config.max_position_embeddings:
        raise UsageError(
            f"--max_seq_length {args.max_seq_length} exceeds the model's {model.config.max_position_embeddings} "
            "positions; lower it, or train with a larger --max_source_seq_length + --max_target_seq_length"
        )
    return model, tokenizer


def read_references(path: str, target_column: str) -> list[str]:
    """References from a text file (one per line) or a JSON-lines file (`target_column`); UsageError naming the
    line of a missing or null reference."""
    if path.endswith((".jsonl", ".json")):
        records = read_records("--reference_file", path, target_column, None, source_option="--target_column")
        return [reference if isinstance(reference, str) else " ".join(reference) for reference, _ in records]
    with open(path, encoding="utf-8") as handle:
        return handle.read().splitlines()


def ignore_ids(tokenizer, words: str | None) -> set[int]:
    """Ids of the `|`-separated --forbid_ignore_word tokens; a bracketed one is upper-cased ([x_sep] -> [X_SEP])."""
    result = set()
    for word in (words or "").split("|"):
        if not word:
            continue
        word = word.upper() if word.startswith("[") and word.endswith("]") else word
        token_id = tokenizer.convert_tokens_to_ids(word)
        if token_id is None or token_id == tokenizer.unk_token_id:
            logger.warning(f"--forbid_ignore_word '{word}' is not in the vocabulary; ignored")
        else:
            result.add(token_id)
    return result


def main(argv: list[str]) -> None:
    # Parse and validate every argument, and read the inputs and references, before loading the model.
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    validate_args(args)
    records = read_records("--input_file", args.input_file, args.source_column, None)
    if args.subset:
        records = records[: args.subset]
    references = None
    if args.reference_file is not None:
        check_sentence_splitter()
        references = read_references(args.reference_file, args.target_column)[: len(records)]
        if len(references) != len(records):
            raise UsageError(
                f"--reference_file {args.reference_file} has {len(references)} references for {len(records)} "
                "inputs; pass the references of --input_file (one per input, in order)"
            )
    set_seed(args.seed)

    # Load the model; causal models decode with pos_shift.
    model, tokenizer = load_model(args)
    ids = special_ids(tokenizer)
    mode = model.config.s2s_ft_mode
    pos_shift = args.pos_shift or mode == "causal"
    if args.pos_shift and mode != "causal":
        logger.warning(f"--pos_shift with a model trained in {mode} mode: outputs will be poor")

    # Tokenize the inputs; sources are cut to fit the budget with the special tokens.
    max_source = args.max_seq_length - args.max_tgt_length - (1 if pos_shift else 2)
    sources = [ids_[:max_source] for ids_ in tokenize_texts(tokenizer, [source for source, _ in records])]
    cut = sum(len(ids_) == max_source for ids_ in sources)
    if cut:
        logger.warning(f"{cut} of {len(sources)} sources may have been cut to {max_source} tokens")

    # Decode; the outputs go through a temporary file and a rename (a killed run leaves no half-written file).
    options = DecodeOptions(
        max_tgt_length=args.max_tgt_length,
        beam_size=args.beam_size,
        length_penalty=args.length_penalty,
        min_len=args.min_len,
        forbid_duplicate_ngrams=args.forbid_duplicate_ngrams,
        ngram_size=args.ngram_size,
        forbid_ignore_ids=ignore_ids(tokenizer, args.forbid_ignore_word),
        pos_shift=pos_shift,
        use_cache=not args.no_cache,
    )
    logger.info(f"decoding {len(sources)} inputs: mode {mode}, pos_shift {pos_shift}, {options}")
    started = time.perf_counter()
    results = decode(model, sources, ids, options, args.batch_size)
    seconds = time.perf_counter() - started
    outputs = [detokenize(tokenizer, result["tokens"]) for result in results]
    os.makedirs(os.path.dirname(os.path.abspath(args.output_file)), exist_ok=True)
    with atomic_write(args.output_file) as handle:
        handle.writelines(f"{output}\n" for output in outputs)
    logger.info(f"wrote {len(outputs)} outputs to {args.output_file} ({len(outputs) / seconds:.1f} samples/s)")

    # Score.
    if references is not None:
        scores = {
            **compute_rouge(outputs, references),
            **compute_bleu(outputs, references),
            "gen_len": round(sum(len(result["tokens"]) for result in results) / max(len(results), 1), 4),
            "samples": len(outputs),
            "samples_per_second": round(len(outputs) / seconds, 3),
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.score_path)), exist_ok=True)
        with atomic_write(args.score_path) as handle:
            json.dump(scores, handle, indent=4, sort_keys=True)
        logger.info(f"scores: {scores} -> {args.score_path}")


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
