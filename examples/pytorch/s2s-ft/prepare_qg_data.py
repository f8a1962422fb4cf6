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

from seq2seq_checks import atomic_write, check_output_file, check_text_file, one_line_errors


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    one_line_errors(parser)
    parser.add_argument("input_file", help="SQuAD JSON, or JSON lines with context/answer/question")
    parser.add_argument("output_file", help="JSON lines {'src', 'tgt'} for run_seq2seq.py / decode_seq2seq.py")
    parser.add_argument(
        "--sep_token", default="[SEP]", help="separator between answer and context: the tokenizer's ([SEP], </s>)"
    )
    parser.add_argument("--lowercase", action="store_true", help="lower-case source and target")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output_file (without it, it is refused)"
    )
    return parser.parse_args(argv)


def first_answer(record: dict):
    """The answer of a record: `answer` (text, or `{"text": ...}`), or the first of SQuAD's `answers` list."""
    answer = record.get("answer")
    if isinstance(answer, dict):
        return answer.get("text")
    if answer is None and isinstance(record.get("answers"), list) and record["answers"]:
        first = record["answers"][0]
        return first.get("text") if isinstance(first, dict) else first
    return answer


def read_squad(path: str, whole: dict) -> list[dict]:
    """Flat `{context, question, answers}` records of the answerable questions of SQuAD JSON."""
    records = []
    try:
        for article in whole["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    if qa.get("is_impossible") or not qa.get("answers"):
                        continue  # SQuAD 2.0 questions without an answer have nothing to generate from
                    records.append({"context": paragraph["context"], **qa})
    except (KeyError, TypeError, AttributeError) as error:
        raise UsageError(
            f"input_file {path}: not SQuAD JSON ({{'data': [{{'paragraphs': [{{'context', 'qas'}}]}}]}}; missing or "
            f"mistyped {error}); fix the file, or give JSON lines with context/answer/question"
        ) from error
    return records


def read_qg_records(path: str) -> list[tuple[str, dict]]:
    """(where, record) pairs from SQuAD JSON or JSON lines, `where` naming the file and record or line for
    messages; raises UsageError."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None  # JSON lines
    if isinstance(whole, dict) and "data" in whole:
        return [(f"input_file {path} question {n}", record) for n, record in enumerate(read_squad(path, whole), 1)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"input_file {path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(
                f"{where}: not JSON ({error.msg}); give SQuAD JSON, or one JSON object per line with "
                "context/answer/question"
            ) from error
        records.append((where, record))
    return records


def qg_pair(where: str, record, sep_token: str, lowercase: bool) -> dict:
    """The `{"src", "tgt"}` pair of one record; UsageError naming the record when a field is missing or not text."""
    if not isinstance(record, dict):
        raise UsageError(f"{where}: a {type(record).__name__}, not an object with context, answer and question")
    answer = first_answer(record)
    for name, value in (("context", record.get("context")), ("answer", answer), ("question", record.get("question"))):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise UsageError(f"{where}: needs non-empty context, answer and question ({name} is missing or empty)")
        if not isinstance(value, str):
            raise UsageError(f"{where}: {name} is a {type(value).__name__}, not text; fix the record")
    source = f"{answer.strip()} {sep_token} {' '.join(record['context'].split())}"
    target = " ".join(record["question"].split())
    if lowercase:
        source, target = source.lower().replace(sep_token.lower(), sep_token), target.lower()
    return {"src": source, "tgt": target}


def main(argv: list[str]) -> None:
    # Check the files before reading: the output must not be the input, nor an earlier output (without --overwrite).
    args = parse_args(argv)
    check_text_file("input_file", args.input_file)
    check_output_file("output_file", args.output_file, {"input_file": args.input_file}, overwrite=args.overwrite)
    pairs = [
        qg_pair(where, record, args.sep_token, args.lowercase) for where, record in read_qg_records(args.input_file)
    ]
    if not pairs:
        raise UsageError(f"input_file {args.input_file}: no answerable questions")
    os.makedirs(os.path.dirname(os.path.abspath(args.output_file)), exist_ok=True)
    with atomic_write(args.output_file) as handle:
        handle.writelines(json.dumps(pair, ensure_ascii=False) + "\n" for pair in pairs)
    print(f"wrote {len(pairs)} pairs to {args.output_file}")


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
