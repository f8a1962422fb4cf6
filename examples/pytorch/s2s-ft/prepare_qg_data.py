#!/usr/bin/env python
"""Turn SQuAD-style question-generation data into s2s-ft JSON lines: `src` = answer [SEP] context, `tgt` = question.

Reads the official SQuAD JSON (`{"data": [{"paragraphs": [{"context", "qas": [{"question", "answers"}]}]}]}`)
or JSON lines with `context`, `answer` (text, or SQuAD's `answers` list: the first is used) and `question`.

    python examples/pytorch/s2s-ft/prepare_qg_data.py tests/fixtures/s2s_ft/qg/squad_sample.json \
        outputs/qg/train.jsonl --sep_token "[SEP]"

Then train with run_seq2seq.py and decode with the paper's QG settings (Table 8): max input 384 tokens, max output
32, beam 8, length penalty 1.3, min output 5 (see README.md). Pass `--lowercase` for uncased vocabularies.
"""

import argparse
import json
import os
import sys

from s2s_ft.utils import UsageError, run_cli


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input_file", help="SQuAD JSON, or JSON lines with context/answer/question")
    parser.add_argument("output_file", help="JSON lines {'src', 'tgt'} for run_seq2seq.py / decode_seq2seq.py")
    parser.add_argument(
        "--sep_token", default="[SEP]", help="separator between answer and context: the tokenizer's ([SEP], </s>)"
    )
    parser.add_argument("--lowercase", action="store_true", help="lower-case source and target")
    return parser.parse_args(argv)


def first_answer(record: dict) -> str | None:
    """The answer text of a record: `answer` (text), or the first of SQuAD's `answers` list."""
    answer = record.get("answer")
    if isinstance(answer, dict):
        return answer.get("text")
    if answer is None and record.get("answers"):
        first = record["answers"][0]
        return first.get("text") if isinstance(first, dict) else first
    return answer


def read_qg_records(path: str) -> list[dict]:
    """Flat `{context, answer, question}` records from SQuAD JSON or JSON lines; raises UsageError."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None  # JSON lines
        if not isinstance(whole, dict) or "data" not in whole:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        records = []
        for article in whole["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    if qa.get("is_impossible") or not qa.get("answers"):
                        continue  # SQuAD 2.0 questions without an answer have nothing to generate from
                    records.append({"context": paragraph["context"], **qa})
        return records
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UsageError(
            f"{path}: neither SQuAD JSON nor JSON lines with context/answer/question ({error})"
        ) from error


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if not os.path.isfile(args.input_file):
        raise UsageError(f"input file {args.input_file}: no such file")
    records = read_qg_records(args.input_file)
    pairs = []
    for number, record in enumerate(records, start=1):
        answer = first_answer(record)
        if not record.get("context") or not answer or not record.get("question"):
            raise UsageError(f"{args.input_file} record {number}: needs non-empty context, answer and question")
        source = f"{answer.strip()} {args.sep_token} {' '.join(record['context'].split())}"
        target = " ".join(record["question"].split())
        if args.lowercase:
            source, target = source.lower().replace(args.sep_token.lower(), args.sep_token), target.lower()
        pairs.append({"src": source, "tgt": target})
    if not pairs:
        raise UsageError(f"{args.input_file}: no answerable questions")
    os.makedirs(os.path.dirname(os.path.abspath(args.output_file)), exist_ok=True)
    with open(args.output_file, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(pair, ensure_ascii=False) + "\n" for pair in pairs)
    print(f"wrote {len(pairs)} pairs to {args.output_file}")


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
