#!/usr/bin/env python
"""Generate over `{data_dir}/{type_path}.source` on several processes (one per GPU, or CPU processes) and score.

    torchrun --nproc_per_node 2 examples/legacy/seq2seq/run_distributed_eval.py \
        --model_name .cache/tiny-models/marian --data_dir tests/fixtures/legacy/wmt_en_ro \
        --save_dir out/dist_eval --task translation --bs 4 --num_beams 2 --max_length=32
    python examples/legacy/seq2seq/run_distributed_eval.py ...   # the same flags, one process

Each rank takes an exact share of the inputs (`DistributedSortishSampler`, no extra examples, longest
first), generates it like `run_eval.py` (same tokenization and decoding, so the same predictions), and
the shares are gathered with `torch.distributed.all_gather_object` (gloo on CPU, nccl on GPU). Rank 0
writes, in input order, `{save_dir}/{type_path}_generations.txt` and, when `{type_path}.target` exists,
`{save_dir}/{type_path}_{bleu|rouge}.json`; with `--num_return_sequences N > 1` it writes only
`{save_dir}/pseudolabel_results.json` (one list of N candidates per input). Any other `--key value` /
`--key=value` (int, float, true/false) is passed to `model.generate`.
"""

import argparse
import datetime
import json
import logging
import os
import time
import types
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from ctranslate2_generation import (
    add_backend_arguments,
    check_backend_flags,
    check_model_and_generation,
    generator_for,
)
from seq2seq_checks import check_flag_values, check_text_file, one_line_errors
from utils import (
    DistributedSortishSampler,
    UsageError,
    calculate_bleu,
    calculate_rouge,
    check_seq2seq_model,
    chunks,
    generate_ids,
    generate_kwargs_from,
    line_offsets,
    load_seq2seq_model,
    load_tokenizer,
    read_line,
    run_cli,
    save_json,
    use_task_specific_params,
    write_txt_file,
)

logger = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("--data_dir", required=True, help="folder with {type_path}.source (and .target to score)")
    parser.add_argument(
        "--model_name", default="sshleifer/distilbart-xsum-12-3", help="model folder or Hub id to generate with"
    )
    parser.add_argument("--save_dir", default="tmp_gen", help="where the results go; must not hold results already")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier run in --save_dir (else refused)"
    )
    parser.add_argument(
        "--max_source_length", type=int, default=None, help="truncate inputs to N tokens; default: the tokenizer max"
    )
    parser.add_argument("--type_path", default="test", help="which split to generate: train, val or test")
    parser.add_argument(
        "--task",
        default="summarization",
        help="summarization* (ROUGE) or translation* (BLEU); also picks task_specific_params",
    )
    parser.add_argument("--bs", type=int, default=8, help="batch size per process")
    parser.add_argument(
        "--local_rank", type=int, default=-1, help="ignored: ranks come from torchrun's RANK / LOCAL_RANK variables"
    )
    parser.add_argument("--n_obs", type=int, default=None, help="use only the first N inputs (default: all)")
    parser.add_argument(
        "--num_return_sequences",
        type=int,
        default=1,
        help="candidates per input; > 1 writes pseudolabel_results.json only (beams are raised to at least N)",
    )
    parser.add_argument(
        "--sync_timeout", type=int, default=600, help="seconds a rank waits for the others before giving up"
    )
    parser.add_argument("--src_lang", default=None, help="source language code (mBART-style tokenizers)")
    parser.add_argument(
        "--tgt_lang", default=None, help="target language code; forced as first token when the tokenizer knows it"
    )
    parser.add_argument(
        "--prefix", default=None, help="prepended to each input; default: the model config's prefix, else ''"
    )
    parser.add_argument("--fp16", action="store_true", help="half precision (GPU only)")
    parser.add_argument(
        "--no_share_cross_attention",
        action="store_true",
        help="beam search: keep generate()'s own cache, which copies the cross-attention keys/values at every step "
        "(for comparisons; by default the beams of an input share them, same predictions)",
    )
    add_backend_arguments(parser)
    parser.add_argument(
        "--debug",
        action="store_true",
        help="also write each rank's share (rank_<r>_output.json) and the references used ({type_path}.target)",
    )
    args, rest = parser.parse_known_args(argv)
    generate_kwargs = generate_kwargs_from(parser, rest)
    check_flag_values(args)
    return args, generate_kwargs


def result_paths(args: argparse.Namespace) -> list[Path]:
    """Files this run would write (any of them already present means the save dir holds results)."""
    save_dir = Path(args.save_dir)
    return [
        save_dir / f"{args.type_path}_generations.txt",
        save_dir / f"{args.type_path}_bleu.json",
        save_dir / f"{args.type_path}_rouge.json",
        save_dir / "pseudolabel_results.json",
    ]


def validate_args(args: argparse.Namespace) -> None:
    """Check paths and flag combinations before any model is loaded (every rank runs the same checks)."""
    source = Path(args.data_dir) / f"{args.type_path}.source"
    if Path(args.data_dir).is_file():
        raise UsageError(f"--data_dir {args.data_dir} is a file; pass the folder that holds {args.type_path}.source")
    if not source.is_file():
        raise UsageError(f"{source} does not exist; pass --data_dir with {args.type_path}.source (or fix --type_path)")
    if not (args.task.startswith("summarization") or args.task.startswith("translation")):
        raise UsageError(
            f"--task {args.task!r} is unknown; use summarization or translation (e.g. translation_en_to_ro)"
        )
    if args.fp16 and not torch.cuda.is_available():
        raise UsageError("--fp16 needs a GPU; drop it")
    for name in ("bs", "num_return_sequences", "sync_timeout"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} {getattr(args, name)} must be >= 1")
    check_backend_flags(args.generation_backend, args.ctranslate2_compute_type)
    check_text_file("--data_dir", str(source))
    target = source.with_suffix(".target")
    if target.is_file():
        check_text_file("--data_dir", str(target))
        n_src, n_tgt = len(line_offsets(source)) - 1, len(line_offsets(target)) - 1
        if n_src != n_tgt:
            raise UsageError(f"{target} has {n_tgt} lines but {source} has {n_src}; they must align")
    if Path(args.save_dir).is_file():
        raise UsageError(f"--save_dir {args.save_dir} is a file; pass a folder for the results")
    existing = [str(path) for path in result_paths(args) if path.exists()]
    if existing and not args.overwrite:
        raise UsageError(
            f"--save_dir {args.save_dir} already holds results ({', '.join(existing)}); "
            "pass a new --save_dir, or --overwrite to replace them"
        )


def setup_distributed(sync_timeout: int) -> tuple[int, int, torch.device]:
    """Rank, world size and device of this process. Under torchrun (RANK set) the process group is
    initialized: nccl with one GPU per local rank, else gloo on CPU. `sync_timeout` bounds every collective,
    so a rank that died or hangs makes the others fail after that long instead of waiting forever."""
    if "RANK" not in os.environ:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=sync_timeout))
    return dist.get_rank(), dist.get_world_size(), device


def generate_share(
    model, tokenizer, lines, indices, args, generate_kwargs, device, rank, ctranslate2=None
) -> dict[int, str | list]:
    """Predictions for this rank's `indices` (already ordered longest first), by input index: a string,
    or a list of `num_return_sequences` strings. Tokenization and decoding are run_eval.py's; with `ctranslate2`
    (a `CTranslate2Generator`) the tokens come from it."""
    results: dict[int, str | list] = {}
    n_return = args.num_return_sequences
    batches = list(chunks(indices, args.bs))
    for batch_ids in tqdm(batches, desc=f"rank {rank}", disable=rank != 0):
        batch = tokenizer(
            [args.prefix + lines[i] for i in batch_ids],
            return_tensors="pt",
            truncation=True,
            max_length=args.max_source_length,
            padding="longest",
        ).to(device)
        kwargs = {**generate_kwargs, "num_return_sequences": n_return}
        output = generate_ids(model, batch, kwargs, not args.no_share_cross_attention, ctranslate2)
        texts = tokenizer.batch_decode(output, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        texts = [" ".join(text.split("\n")).strip() for text in texts]  # one prediction per line
        for i, candidates in zip(batch_ids, chunks(texts, n_return), strict=True):
            results[i] = list(candidates) if n_return > 1 else candidates[0]
    return results


def gather(share: dict, world_size: int) -> dict:
    """Every rank's predictions merged (rank 0 needs them; all ranks take part in the collective)."""
    if world_size == 1:
        return share
    shares: list = [None] * world_size
    dist.all_gather_object(shares, share)
    merged: dict = {}
    for part in shares:
        merged.update(part)
    return merged


def write_results(args, predictions: list, runtime: float, world_size: int, device: torch.device) -> dict | None:
    """Rank 0: pseudolabels, or generations plus scores when references exist. Returns the scores."""
    save_dir = Path(args.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    if args.num_return_sequences > 1:
        save_json(predictions, save_dir / "pseudolabel_results.json")
        logger.info(f"saved {len(predictions)} x {args.num_return_sequences} candidates to pseudolabel_results.json")
        return None
    write_txt_file(predictions, save_dir / f"{args.type_path}_generations.txt")
    target = Path(args.data_dir) / f"{args.type_path}.target"
    if not target.is_file():
        logger.info(f"no {target}: generations saved, nothing scored")
        return None
    with open(target, encoding="utf-8") as handle:
        references = [line.rstrip() for line in handle][: len(predictions)]
    translation = args.task.startswith("translation")
    metrics = calculate_bleu(predictions, references) if translation else calculate_rouge(predictions, references)
    metrics.update(
        n_obs=len(predictions),
        seconds_per_sample=round(runtime / max(len(predictions), 1), 4),
        n_processes=world_size,
        n_gpus=world_size if device.type == "cuda" else 0,
    )
    save_json(metrics, save_dir / f"{args.type_path}_{'bleu' if translation else 'rouge'}.json", indent=None)
    if args.debug:
        write_txt_file(references, save_dir / f"{args.type_path}.target")
    print(json.dumps(metrics))
    return metrics


def main(argv: list[str]) -> dict | None:
    # parse and validate (every rank, before any process group or model exists)
    args, generate_kwargs = parse_args(argv)
    validate_args(args)
    check_seq2seq_model("--model_name", args.model_name)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    # processes: rank, world size, device
    rank, world_size, device = setup_distributed(args.sync_timeout)
    logger.info(f"rank {rank}, device {device}, world size {world_size}, fp16 {args.fp16}")
    if rank != 0:
        logger.setLevel(logging.WARNING)

    # this rank's share: an exact partition, each share longest first
    source = Path(args.data_dir) / f"{args.type_path}.source"
    offsets = line_offsets(source)
    n = len(offsets) - 1 if args.n_obs is None or args.n_obs <= 0 else min(args.n_obs, len(offsets) - 1)
    lengths = [offsets[i + 1] - offsets[i] for i in range(n)]
    sampler = DistributedSortishSampler(
        lengths, args.bs, num_replicas=world_size, rank=rank, shuffle=False, add_extra_examples=False
    )
    indices = list(sampler)
    lines = {i: read_line(source, offsets, i).rstrip() for i in indices}

    # load model and tokenizer
    tokenizer = load_tokenizer("--model_name", args.model_name)
    model = load_seq2seq_model("--model_name", args.model_name, dtype=torch.float16 if args.fp16 else None)
    model = model.to(device).eval()
    if args.src_lang:
        tokenizer.src_lang = args.src_lang
    if args.tgt_lang and args.tgt_lang in tokenizer.get_vocab() and "forced_bos_token_id" not in generate_kwargs:
        generate_kwargs["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(args.tgt_lang)
    use_task_specific_params(model, args.task)
    if args.prefix is None:
        args.prefix = getattr(model.config, "prefix", None) or ""
    if args.num_return_sequences > 1 and not generate_kwargs.get("do_sample", False):
        # beam search can only return as many sequences as it has beams
        num_beams = generate_kwargs.get("num_beams", model.generation_config.num_beams or 1)
        generate_kwargs["num_beams"] = max(num_beams, args.num_return_sequences)
    logger.info(f"{n} inputs, {len(indices)} on rank 0, bs {args.bs}, generate kwargs {generate_kwargs}")
    if args.generation_backend == "ctranslate2":
        check_model_and_generation(model, {**generate_kwargs, "num_return_sequences": args.num_return_sequences})
    # --generation_backend ctranslate2: converted by rank 0 into --save_dir/ctranslate2, loaded by every rank.
    processes = types.SimpleNamespace(is_main_process=rank == 0, wait_for_everyone=dist.barrier)
    ctranslate2 = generator_for(
        args.generation_backend,
        model,
        tokenizer,
        args.save_dir,
        args.ctranslate2_compute_type,
        processes if world_size > 1 else None,
    )

    # generate this share, then gather every share
    start = time.time()
    share = generate_share(model, tokenizer, lines, indices, args, generate_kwargs, device, rank, ctranslate2)
    if args.debug:
        Path(args.save_dir).mkdir(parents=True, exist_ok=True)
        records = [{"pred": share[i], "id": i} for i in indices]
        save_json(records, Path(args.save_dir) / f"rank_{rank}_output.json")
    merged = gather(share, world_size)
    runtime = time.time() - start

    # rank 0 writes, in input order
    metrics = None
    if rank == 0:
        if sorted(merged) != list(range(n)):
            raise RuntimeError(f"gathered {len(merged)} predictions for {n} inputs")
        metrics = write_results(args, [merged[i] for i in range(n)], runtime, world_size, device)
    if world_size > 1:
        dist.destroy_process_group()
    return metrics


if __name__ == "__main__":
    run_cli(main)
