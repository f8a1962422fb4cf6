#!/usr/bin/env python
"""Generate one prediction per line of a `.source` file and, given references, score it (ROUGE or BLEU).

    python examples/legacy/seq2seq/run_eval.py .cache/tiny-models/t5 data/test.source out/test.hypo \
        --reference_path data/test.target --score_path out/metrics.json --task summarization \
        --prefix "summarize: " --bs 8 --num_beams 2 --length_penalty=2.0

Beyond upstream: inputs are generated longest first (outputs stay in input order; `--no_sort` turns it
off), every finished batch is appended to `SAVE_PATH.partial.jsonl`, so a killed run started again with the
same command resumes without regenerating finished lines, and SAVE_PATH is written atomically at the end.
Beside SAVE_PATH, `<SAVE_PATH without its extension>.jsonl` (`out/test.hypo` -> `out/test.jsonl`) holds one
record per line, in the same order: index, prediction, references, its own scores (ROUGE F1 x 100 from
--rouge_backend for summarization, sentence BLEU and chrF for translation), generated_tokens and
hit_length_limit; sort it by a score to find the worst examples. `--num_return_sequences K` (K > 1, at most the
beams) also writes `<SAVE_PATH without its extension>.nbest.jsonl`: per input line, in order, `{"index", "hypotheses":
[{"text", "score"}, ...]}`, the K best beams, best first, scored by beam search's own length-penalised
log-probability (transformers' `sequences_scores`); SAVE_PATH and the scores keep the best one.
`--rouge_backend official` scores ROUGE as ROUGE-1.5.5 (papers' pyrouge numbers, with 95% intervals); the scores
JSON holds `rouge_signature`. The scores add throughput keys. Any other `--key value` / `--key=value` (int, float,
true/false) is passed to `model.generate`. Single process; run one per GPU for data parallelism.
"""

import argparse
import datetime
import json
import logging
import os
import time
from pathlib import Path

import torch
from transformers import GenerationConfig

from ctranslate2_generation import (
    CTranslate2Generator,
    add_backend_arguments,
    check_backend_flags,
    check_model_and_generation,
)
from seq2seq_checks import atomic_write, check_flag_values, check_output_file, check_text_file, one_line_errors
from utils import (
    ROUGE_BACKENDS,
    UsageError,
    calculate_bleu,
    check_rouge_backend,
    check_seq2seq_model,
    chunks,
    generate_ids,
    generate_kwargs_from,
    generate_nbest,
    generation_lengths,
    line_offsets,
    load_seq2seq_model,
    load_tokenizer,
    note_on_interrupt,
    romanian_postprocess,
    run_cli,
    save_json,
    score_rouge,
    sentence_bleu_chrf,
    use_task_specific_params,
    write_prediction_records,
)

logger = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("model_name", help="model folder or Hub id, e.g. .cache/tiny-models/t5")
    parser.add_argument("input_path", help="one input per line, e.g. cnn_dm/test.source")
    parser.add_argument("save_path", help="where the predictions go, one per input line")
    parser.add_argument("--reference_path", help="one reference per input line; without it nothing is scored")
    parser.add_argument("--score_path", default="metrics.json", help="where the scores JSON goes")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing SAVE_PATH / --score_path (without it an existing one is refused, never replaced)",
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda if available, else cpu"
    )
    parser.add_argument(
        "--prefix", default=None, help="prepended to each input; default: the model config's prefix, else ''"
    )
    parser.add_argument(
        "--task",
        default="summarization",
        help="summarization* (ROUGE) or translation* (BLEU); also picks task_specific_params",
    )
    parser.add_argument(
        "--rouge_backend",
        default="rouge_score",
        help=f"summarization: how ROUGE is computed, {' or '.join(ROUGE_BACKENDS)}. rouge_score (default; "
        "comparable with the Hugging Face scripts) or official: ROUGE-1.5.5 in pure Python, to compare with papers' "
        "ROUGE-1.5.5 / pyrouge numbers, with 95%% intervals (<key>_low, <key>_high)",
    )
    parser.add_argument("--bs", type=int, default=8, help="batch size")
    parser.add_argument("--n_obs", type=int, default=-1, help="use only the first N inputs (-1: all)")
    parser.add_argument("--fp16", action="store_true", help="half precision (GPU only)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 weights")
    parser.add_argument("--num_beams", type=int, default=None, help="beam size; default: the generation config's")
    parser.add_argument(
        "--max_length", type=int, default=None, help="max generated length; default: the generation config's"
    )
    parser.add_argument("--src_lang", default=None, help="source language code (mBART-style tokenizers)")
    parser.add_argument(
        "--tgt_lang",
        default=None,
        help="target language code; forced as first generated token when the tokenizer knows it",
    )
    parser.add_argument(
        "--romanian_postprocessing",
        action="store_true",
        help="score with WMT16 Romanian diacritics removed from both sides",
    )
    parser.add_argument(
        "--no_sort", action="store_true", help="generate in input order instead of longest first (for comparisons)"
    )
    parser.add_argument(
        "--no_share_cross_attention",
        action="store_true",
        help="beam search: keep generate()'s own cache, which copies the cross-attention keys/values at every step "
        "(for comparisons; by default the beams of an input share them, same predictions)",
    )
    parser.add_argument(
        "--dump-args",
        "--dump_args",
        dest="dump_args",
        action="store_true",
        help="add the generate kwargs to the scores",
    )
    parser.add_argument(
        "--num_return_sequences",
        type=int,
        default=1,
        help="K > 1: also write the K best beam hypotheses per input, with their scores, to "
        "<SAVE_PATH stem>.nbest.jsonl (K at most the beams; SAVE_PATH and the scores keep the best). Beam search then "
        "keeps every step's "
        "log-probabilities (batch x beams x vocabulary floats per step) until the batch ends: lower --bs if memory "
        "runs out",
    )
    add_backend_arguments(parser)
    parser.add_argument(
        "--info",
        nargs="?",
        const=str(datetime.datetime.now()),
        default=None,
        help="free text stored in the scores; bare: now",
    )
    args, rest = parser.parse_known_args(argv)
    generate_kwargs = generate_kwargs_from(parser, rest)
    check_flag_values(args)
    for name in ("num_beams", "max_length"):
        if getattr(args, name) is not None:
            generate_kwargs[name] = getattr(args, name)
    return args, generate_kwargs


def count_lines(path: str) -> int:
    return len(line_offsets(path)) - 1


def records_path(save_path: str) -> str:
    """Where the per-example records of SAVE_PATH go: its path with the extension replaced by .jsonl."""
    return os.path.splitext(save_path)[0] + ".jsonl"


def nbest_path(save_path: str) -> str:
    """Where the n-best lists of SAVE_PATH go (--num_return_sequences > 1): its path with the extension replaced by
    .nbest.jsonl, beside the records file."""
    return os.path.splitext(save_path)[0] + ".nbest.jsonl"


def check_input_file(flag: str, path: str, what: str) -> None:
    """Raise UsageError unless `path` is an existing file of UTF-8 text (`what`: the fix for a missing one)."""
    if not os.path.exists(path):
        raise UsageError(f"{flag} {path} does not exist; {what}")
    check_text_file(flag, path)


def validate_args(args: argparse.Namespace) -> None:
    """Check paths and flag combinations before any model is loaded. Nothing an input names is ever written:
    SAVE_PATH and --score_path may be no input, and an existing one needs --overwrite."""
    check_input_file("INPUT_PATH", args.input_path, "pass a .source file with one input per line")
    if not (args.task.startswith("summarization") or args.task.startswith("translation")):
        raise UsageError(
            f"--task {args.task!r} is unknown; use summarization or translation (e.g. translation_en_to_ro)"
        )
    if args.fp16 and args.bf16:
        raise UsageError("--fp16 and --bf16 are exclusive; pass one")
    if args.fp16 and args.device == "cpu":
        raise UsageError("--fp16 needs a GPU; drop it or pass --device cuda")
    if args.bs < 1:
        raise UsageError(f"--bs {args.bs} must be >= 1")
    check_rouge_backend(args.rouge_backend)
    check_backend_flags(args.generation_backend, args.ctranslate2_compute_type)
    if args.num_return_sequences > 1 and args.generation_backend == "ctranslate2":
        raise UsageError(
            f"--num_return_sequences {args.num_return_sequences}: n-best scores come from the transformers backend; "
            "drop --generation_backend ctranslate2 or --num_return_sequences"
        )
    inputs = {"INPUT_PATH": args.input_path, "--reference_path": args.reference_path}
    # The usual slip: `run_eval.py MODEL test.source test.target` (SAVE_PATH is the references).
    check_output_file("SAVE_PATH", args.save_path, inputs, overwrite=args.overwrite, overwrite_flag="--overwrite")
    records = records_path(args.save_path)
    if os.path.abspath(records) == os.path.abspath(args.save_path):
        raise UsageError(
            f"SAVE_PATH {args.save_path} ends in .jsonl, the name its per-example records take (SAVE_PATH's extension "
            "replaced by .jsonl); give the predictions file another extension, e.g. .txt"
        )
    check_output_file("SAVE_PATH's records", records, inputs, overwrite=args.overwrite, overwrite_flag="--overwrite")
    outputs = {"SAVE_PATH": args.save_path, "SAVE_PATH's records": records}
    if args.num_return_sequences > 1:
        outputs["SAVE_PATH's n-best lists"] = nbest_path(args.save_path)
        check_output_file(
            "SAVE_PATH's n-best lists",
            nbest_path(args.save_path),
            inputs,
            overwrite=args.overwrite,
            overwrite_flag="--overwrite",
        )
    if args.reference_path is not None:
        check_input_file("--reference_path", args.reference_path, "fix --reference_path")
        n_in, n_ref = count_lines(args.input_path), count_lines(args.reference_path)
        if n_in != n_ref:
            raise UsageError(
                f"{args.reference_path} has {n_ref} lines but {args.input_path} has {n_in}; they must align"
            )
        check_output_file(
            "--score_path",
            args.score_path,
            {**inputs, **outputs},
            overwrite=args.overwrite,
            overwrite_flag="--overwrite",
        )


def check_beams_for_nbest(args: argparse.Namespace, generate_kwargs: dict, config) -> None:
    """Raise UsageError when --num_return_sequences K > 1 exceeds the beams generation will use (--num_beams or a
    generate kwarg, else the task's task_specific_params, else the model's generation config), read from the config
    files before any weights load. (--num_beams given with K is checked while parsing.)"""
    k = args.num_return_sequences
    if k == 1:
        return
    task_params = (getattr(config, "task_specific_params", None) or {}).get(args.task, {})
    if "num_beams" in generate_kwargs:
        beams, source = generate_kwargs["num_beams"], "--num_beams"
    elif "num_beams" in task_params:
        beams, source = task_params["num_beams"], f"task_specific_params[{args.task!r}] of the model config"
    else:
        try:
            generation_config = GenerationConfig.from_pretrained(args.model_name)
        except OSError:  # no generation_config.json: generate() derives it from the model config
            generation_config = GenerationConfig.from_model_config(config)
        beams, source = generation_config.num_beams or 1, "the model's generation config"
    if beams < k:
        search = "greedy search (1 beam)" if beams == 1 else f"beam search with {beams} beams"
        raise UsageError(
            f"--num_return_sequences {k} needs beam search with at least {k} beams (one hypothesis per beam), but "
            f"{source} gives {search}; pass --num_beams {k} or more"
        )


def read_lines(path: str, n_obs: int) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        lines = [line.rstrip() for line in handle]
    return lines[:n_obs] if n_obs > 0 else lines


def load_partial(partial_path: Path, run_key: dict) -> dict[int, dict]:
    """Predictions already written by an earlier run with the same settings, by input index: `{"text",
    "generated_tokens", "hit_length_limit"}`.

    The first line of the partial file records the settings; a file from other settings is discarded.
    A torn last line (the process was killed mid-write) is ignored, and the file is rewritten clean.
    """
    done: dict[int, dict] = {}
    if partial_path.exists():
        with open(partial_path, encoding="utf-8") as handle:
            records = []
            for line in handle:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        if records and records[0].get("run") == run_key:
            done = {r.pop("index"): r for r in records[1:]}
        elif records:
            logger.warning(f"{partial_path} comes from a run with other settings; starting over")
    with open(partial_path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"run": run_key}) + "\n")
        handle.writelines(json.dumps({"index": i, **record}) + "\n" for i, record in sorted(done.items()))
    return done


def generation_limit(model, generate_kwargs: dict) -> int:
    """The longest sequence generate() returns here, decoder start token included (max_new_tokens wins)."""
    max_new_tokens = generate_kwargs.get("max_new_tokens", model.generation_config.max_new_tokens)
    if max_new_tokens is not None:
        return max_new_tokens + 1
    return generate_kwargs.get("max_length") or model.generation_config.max_length


def converted_model_path(save_path: str) -> str:
    """Where --generation_backend ctranslate2 keeps the converted model: beside SAVE_PATH, named after it."""
    return os.path.splitext(save_path)[0] + ".ctranslate2"


def decode_lines(tokenizer, token_ids) -> list[str]:
    """The texts of generated token ids, one line each (newlines become spaces), as finetune_trainer.py decodes."""
    texts = tokenizer.batch_decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return [" ".join(text.split("\n")).strip() for text in texts]


def generate_batch(
    model, tokenizer, batch, args, generate_kwargs, ctranslate2=None
) -> tuple[torch.Tensor, list[list[dict]] | None]:
    """Token ids of each input's best hypothesis, and with --num_return_sequences K > 1 each input's K hypotheses
    (`{"text", "score"}`, best first by `sequences_scores`; None for K = 1). Returns (ids, n-best lists or None)."""
    share = not args.no_share_cross_attention
    k = args.num_return_sequences
    if k == 1:
        return generate_ids(model, batch, generate_kwargs, share, ctranslate2), None
    sequences, scores = generate_nbest(model, batch, generate_kwargs, k, share)
    texts, scores = decode_lines(tokenizer, sequences), scores.float().cpu().tolist()
    best_rows, nbest = [], []
    for start in range(0, len(texts), k):
        # generate() already returns each input's hypotheses best first; the stable sort only makes sure of it.
        rows = sorted(range(start, start + k), key=lambda row: -scores[row])
        best_rows.append(rows[0])
        nbest.append([{"text": texts[row], "score": round(scores[row], 6)} for row in rows])
    return sequences[best_rows], nbest


def generate_missing(
    model, tokenizer, lines, order, done, partial_path, args, generate_kwargs, ctranslate2=None
) -> tuple[int, int]:
    """Generate the inputs of `order` not in `done`, batch by batch, appending each batch to the partial
    file (one write + flush, so a kill loses at most the batch in flight). Each record holds the text, its
    generated token count and whether generation stopped at the length limit. With `ctranslate2` (a
    `CTranslate2Generator`) the tokens come from it. Returns (samples, generated tokens)."""
    todo = [i for i in order if i not in done]
    n_tokens, limit = 0, generation_limit(model, generate_kwargs)
    with open(partial_path, "a", encoding="utf-8") as partial:
        for batch_ids in chunks(todo, args.bs):
            batch = tokenizer(
                [args.prefix + lines[i] for i in batch_ids], return_tensors="pt", truncation=True, padding="longest"
            ).to(args.device)
            output, nbest = generate_batch(model, tokenizer, batch, args, generate_kwargs, ctranslate2)
            counts, at_limit = generation_lengths(
                output.cpu().numpy(), len(batch_ids), tokenizer.pad_token_id, tokenizer.eos_token_id, limit
            )
            n_tokens += sum(counts)
            records = []
            for j, (i, text, count, stopped) in enumerate(
                zip(batch_ids, decode_lines(tokenizer, output), counts, at_limit, strict=True)
            ):
                done[i] = {"text": text, "generated_tokens": count, "hit_length_limit": stopped}
                if nbest is not None:
                    done[i]["hypotheses"] = nbest[j]
                records.append(json.dumps({"index": i, **done[i]}) + "\n")
            partial.write("".join(records))
            partial.flush()
    return len(todo), n_tokens


def score(args: argparse.Namespace, predictions: list[str], references: list[str]) -> tuple[dict, list[dict]]:
    """Corpus scores (summarization: ROUGE with its `rouge_signature`; translation: BLEU) and per-example scores
    (ROUGE F1 x 100 from the same backend; sentence BLEU and chrF)."""
    if args.romanian_postprocessing:
        predictions, references = (
            [romanian_postprocess(x) for x in predictions],
            [romanian_postprocess(x) for x in references],
        )
    if args.task.startswith("translation"):
        return calculate_bleu(predictions, references), sentence_bleu_chrf(predictions, references)
    rouge = score_rouge(predictions, references, args.rouge_backend)
    logger.info(f"ROUGE signature: {rouge.signature}")
    return {**rouge.corpus, "rouge_signature": rouge.signature}, rouge.per_example


def main(argv: list[str]) -> dict:
    # parse and validate
    args, generate_kwargs = parse_args(argv)
    validate_args(args)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    lines = read_lines(args.input_path, args.n_obs)

    # load model and tokenizer
    dtype = torch.float16 if args.fp16 else torch.bfloat16 if args.bf16 else None
    config = check_seq2seq_model("MODEL_NAME", args.model_name)
    check_beams_for_nbest(args, generate_kwargs, config)
    tokenizer = load_tokenizer("MODEL_NAME", args.model_name)
    model = load_seq2seq_model("MODEL_NAME", args.model_name, dtype=dtype).to(args.device).eval()
    if args.src_lang:
        tokenizer.src_lang = args.src_lang
    if args.tgt_lang and args.tgt_lang in tokenizer.get_vocab() and "forced_bos_token_id" not in generate_kwargs:
        generate_kwargs["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(args.tgt_lang)
    use_task_specific_params(model, args.task)
    if args.prefix is None:
        args.prefix = getattr(model.config, "prefix", None) or ""
    ctranslate2 = None
    if args.generation_backend == "ctranslate2":
        check_model_and_generation(model, generate_kwargs)
        ctranslate2 = CTranslate2Generator.for_model(
            model, tokenizer, converted_model_path(args.save_path), args.ctranslate2_compute_type
        )
    logger.info(
        f"{len(lines)} inputs, device {args.device}, dtype {model.dtype}, bs {args.bs}, generate kwargs {generate_kwargs}"
        + (f", {args.num_return_sequences} hypotheses each" if args.num_return_sequences > 1 else "")
    )

    # resume from the partial file, then generate the rest, longest input first
    save_path = Path(args.save_path)
    save_path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = save_path.with_name(save_path.name + ".partial.jsonl")
    run_key = {
        k: str(v)
        for k, v in {
            "model": args.model_name,
            "input": os.path.abspath(args.input_path),
            "n_obs": len(lines),
            "prefix": args.prefix,
            "generate": sorted(generate_kwargs.items()),
            "dtype": dtype,
            "records": "text+generated_tokens+hit_length_limit",  # partial files of older versions lack the lengths
        }.items()
    }
    if args.num_return_sequences > 1:
        run_key["num_return_sequences"] = str(args.num_return_sequences)  # records then hold the hypotheses
    if args.generation_backend == "ctranslate2" and args.ctranslate2_compute_type != "float32":
        run_key["quantized"] = args.ctranslate2_compute_type  # other predictions; float32 gives transformers' own
    done = load_partial(partial_path, run_key)
    note_on_interrupt(lambda: f"{len(done)} of {len(lines)} predictions saved in {partial_path}")
    order = list(range(len(lines))) if args.no_sort else sorted(range(len(lines)), key=lambda i: -len(lines[i]))
    start = time.time()
    n_generated, n_tokens = generate_missing(
        model, tokenizer, lines, order, done, partial_path, args, generate_kwargs, ctranslate2
    )
    runtime = time.time() - start
    logger.info(f"generated {n_generated} predictions, {len(done) - n_generated} resumed from {partial_path}")
    cut = sum(record["hit_length_limit"] for record in done.values())
    if cut:
        logger.warning(
            f"{cut} of {len(done)} predictions stopped at the length limit, not at end-of-sequence, and may be cut; "
            "raise --max_length if they should be longer (hit_length_limit in the .jsonl says which)"
        )

    # score (before anything is written: a crash here leaves the partial file, and a rerun only scores)
    predictions = [done[i]["text"] for i in range(len(lines))]
    references, scores, per_example = None, {}, None
    if args.reference_path is not None:
        references = read_lines(args.reference_path, args.n_obs)[: len(predictions)]
        scores, per_example = score(args, predictions, references)

    # write the predictions and their records atomically, in input order, then drop the partial file
    with atomic_write(str(save_path)) as handle:
        handle.writelines(p + "\n" for p in predictions)
    write_prediction_records(
        records_path(str(save_path)),
        predictions,
        references,
        per_example,
        [done[i]["generated_tokens"] for i in range(len(lines))],
        [done[i]["hit_length_limit"] for i in range(len(lines))],
    )
    if args.num_return_sequences > 1:
        with atomic_write(nbest_path(str(save_path))) as handle:
            handle.writelines(
                json.dumps({"index": i, "hypotheses": done[i]["hypotheses"]}, ensure_ascii=False) + "\n"
                for i in range(len(lines))
            )
    partial_path.unlink()
    note_on_interrupt(None)
    if args.reference_path is None:
        if os.path.exists(args.score_path):
            logger.warning(f"no --reference_path: {args.score_path} is left as it is")
        return {}
    scores.update(
        n_obs=len(lines),
        n_generated=n_generated,
        n_resumed=len(lines) - n_generated,
        runtime=int(runtime),
        seconds_per_sample=round(runtime / max(n_generated, 1), 4),
        samples_per_second=round(n_generated / runtime, 4) if runtime else 0.0,
        generated_tokens_per_second=round(n_tokens / runtime, 4) if runtime else 0.0,
    )
    if args.dump_args:
        scores.update(generate_kwargs)
    if args.info:
        scores["info"] = args.info
    print(json.dumps(scores))
    save_json(scores, args.score_path)
    return scores


if __name__ == "__main__":
    run_cli(main)
