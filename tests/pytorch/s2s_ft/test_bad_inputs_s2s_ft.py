"""s2s-ft's scripts (run_seq2seq.py, decode_seq2seq.py, prepare_qg_data.py) refuse bad flags, files, rows and
models with one line, and change nothing: no input overwritten, no earlier output replaced, no folder created.

Each case edits a valid command (`TRAIN`, `DECODE`, `QG`); see tests/bad_inputs.py for what is asserted. All but
two cases fail before a model loads.
"""

import json
import shutil
from pathlib import Path

import pytest
from bad_inputs import BadInput, check_bad_input, model_with_garbage_weights, model_without_tokenizer

from helpers import FIXTURES

SCRIPTS = Path("examples/pytorch/s2s-ft")
COPY = FIXTURES / "s2s_ft" / "copy"
SQUAD = FIXTURES / "s2s_ft" / "qg" / "squad_sample.json"
DOC = {"--source_column": "document", "--target_column": "summary"}  # for make_bad_files' document/summary rows

TRAIN = {
    "--model_type": "bert",
    "--model_name_or_path": "{models}/bert",
    "--train_file": str(COPY / "train.jsonl"),
    "--max_source_seq_length": "16",
    "--max_target_seq_length": "12",
    "--max_steps": "1",
    "--report_to": "none",
    "--output_dir": "{tmp}/out",
}
DECODE = {
    "--model_path": "{tmp}/finetuned",
    "--input_file": str(COPY / "test.jsonl"),
    "--output_file": "{tmp}/test.pred",
    "--max_seq_length": "28",
    "--max_tgt_length": "12",
}

TRAIN_CASES = {
    # Models of the wrong family, or without what loading needs.
    "bart given as bert": BadInput(
        {"--model_name_or_path": "{models}/bart"},
        ("{models}/bart is a bart model", "not a BERT-like encoder", "--model_type bert", "run_summarization.py"),
    ),
    "t5 given as roberta": BadInput(
        {"--model_type": "roberta", "--model_name_or_path": "{models}/t5"}, ("is a t5 model", "--model_type roberta")
    ),
    "roberta given as bert": BadInput(
        {"--model_name_or_path": "{models}/roberta"},
        ("is a roberta checkpoint", "--model_type is bert", "pass --model_type roberta"),
    ),
    "bert given as electra": BadInput({"--model_type": "electra"}, "pass --model_type bert"),
    "model without tokenizer": BadInput(
        {"--model_name_or_path": "{tmp}/bert-no-tokenizer"}, ("has no tokenizer files", "pass --tokenizer_name")
    ),
    "tokenizer folder without tokenizer": BadInput(
        {"--tokenizer_name": "{tmp}/not_a_model"}, ("--tokenizer_name {tmp}/not_a_model has no tokenizer files",)
    ),
    "folder without config": BadInput({"--model_name_or_path": "{tmp}/not_a_model"}, "no config.json"),
    "model path is a file": BadInput({"--model_name_or_path": "{tmp}/notes.txt"}, "is a file; pass the folder"),
    "garbage weights": BadInput(
        {"--model_name_or_path": "{tmp}/bert-garbage-weights"},
        ("its weights file cannot be read", "save the model again"),
    ),
    # Data files and rows.
    "latin-1 data": BadInput(
        {"--train_file": "{tmp}/latin1.jsonl"}, ("latin1.jsonl: not UTF-8 text (line 2, byte 0xe9", "re-encode")
    ),
    "directory as data": BadInput({"--train_file": "{tmp}/a_folder"}, "--train_file {tmp}/a_folder is a directory"),
    "empty data": BadInput({"--train_file": "{tmp}/empty.jsonl"}, "the file is empty"),
    "unknown extension": BadInput({"--train_file": "{tmp}/notes.txt"}, "use a .jsonl, .json, .csv or .tsv file"),
    "null target": BadInput(
        {**DOC, "--train_file": "{tmp}/null_summary.jsonl"},
        ("null_summary.jsonl line 2: 'summary' is null", "fill it in"),
    ),
    "missing target": BadInput(
        {**DOC, "--train_file": "{tmp}/missing_summary.jsonl"},
        ("missing_summary.jsonl line 2: no 'summary'", "pass --target_column"),
    ),
    "missing source": BadInput(
        {**DOC, "--train_file": "{tmp}/summary_only.jsonl"}, ("line 1: no 'document'", "pass --source_column")
    ),
    "empty source": BadInput({**DOC, "--train_file": "{tmp}/blank.jsonl"}, "line 1: 'document' is empty"),
    "rows that are not objects": BadInput(
        {"--train_file": "{tmp}/list_of_strings.json"}, ("line 1: a str, not an object", "one JSON object per line")
    ),
    "broken json line": BadInput({"--train_file": "{tmp}/broken.json"}, ("broken.json line 1: not valid JSON",)),
    "mistyped field": BadInput({"--train_file": "{tmp}/number_target.jsonl"}, "line 2: 'tgt' is a int"),
    "same columns": BadInput(
        {"--target_column": "src"}, ("--source_column and --target_column are both 'src'", "different values")
    ),
    # Flags and argument files.
    "max_steps 0": BadInput({"--max_steps": "0"}, "--max_steps must be at least 1 (or -1: use epochs), got 0"),
    "batch size 0": BadInput(
        {"--per_device_train_batch_size": "0"}, "--per_device_train_batch_size must be at least 1"
    ),
    "negative learning rate": BadInput({"--learning_rate": "-0.001"}, "--learning_rate must be positive"),
    "mask probability above 1": BadInput({"--target_mask_prob": "1.5"}, "--target_mask_prob must be in [0, 1]"),
    "misspelt flag": BadInput(
        {"--finetunning_mode": "causal"}, ("unknown argument --finetunning_mode", "did you mean --finetuning_mode?")
    ),
    "bad mask way": BadInput({"--mask_way": "v3"}, "--mask_way must be one of v0, v1, v2"),
    "bad model type": BadInput({"--model_type": "gpt2"}, "--model_type must be one of"),
    "report to a missing package": BadInput({"--report_to": "wandb"}, ("--report_to wandb", "pip install wandb")),
    "file: quoted boolean": BadInput(["{tmp}/quoted_bool.yaml"], ("do_eval is the string 'False'", "without quotes")),
    "file: unknown key": BadInput(["{tmp}/unknown_key.yaml"], ("unknown key 'learning_rat'", "did you mean")),
    "file: wrongly typed value": BadInput(["{tmp}/s2s_ft_args.yaml"], ("max_steps must be an integer", "'ten'")),
    # Output folder and checkpoints.
    "output dir in use": BadInput({"--output_dir": "{tmp}/busy_out"}, ("is in use by another run", "wait for it")),
    "output dir holds results": BadInput(
        {"--output_dir": "{tmp}/earlier_run"}, ("already holds an earlier run (train_results.json)", "--overwrite")
    ),
    "incomplete checkpoint": BadInput(
        {"--resume_from_checkpoint": "{tmp}/incomplete_run/checkpoint-2"},
        ("not a complete checkpoint (no model.safetensors", "earlier checkpoint-N"),
    ),
    "no checkpoint to resume": BadInput({"--resume_from_checkpoint": "true"}, "no complete checkpoint-* folder"),
}

DECODE_CASES = {
    "output is the input": BadInput(
        {"--output_file": str(COPY / "test.jsonl")}, ("--output_file", "is also --input_file", "destroy that input")
    ),
    "output is the input, even with --overwrite": BadInput(
        {"--output_file": str(COPY / "test.jsonl"), "--overwrite": ""}, "is also --input_file"
    ),
    "output exists": BadInput(
        {"--output_file": "{tmp}/earlier.pred"}, ("{tmp}/earlier.pred already exists", "pass --overwrite")
    ),
    "output is a model file": BadInput(
        {"--output_file": "{tmp}/finetuned/config.json", "--overwrite": ""}, "is also a file of --model_path"
    ),
    "output is the model folder": BadInput({"--output_file": "{tmp}/finetuned"}, "{tmp}/finetuned is a directory"),
    "scores over the references": BadInput(
        {"--reference_file": "{tmp}/refs.txt", "--score_path": "{tmp}/refs.txt", "--overwrite": ""},
        "--score_path {tmp}/refs.txt is also --reference_file",
    ),
    "scores exist": BadInput(
        {"--reference_file": str(COPY / "test.jsonl"), "--score_path": "{tmp}/earlier.pred"},
        "--score_path {tmp}/earlier.pred already exists",
    ),
    "not fine-tuned": BadInput(
        {"--model_path": "{models}/bart"}, ("(a bart model) was not fine-tuned by run_seq2seq.py", "fine-tune it")
    ),
    "model folder without tokenizer": BadInput(
        {"--model_path": "{tmp}/finetuned-no-tokenizer"}, ("has no tokenizer files", "--tokenizer_name")
    ),
    "model folder missing": BadInput({"--model_path": "{tmp}/nope"}, "--model_path {tmp}/nope does not exist"),
    "latin-1 input": BadInput(
        {"--input_file": "{tmp}/latin1.jsonl", "--source_column": "document"}, "not UTF-8 text (line 2"
    ),
    "latin-1 references": BadInput(
        {"--reference_file": "{tmp}/latin1.txt"}, ("--reference_file {tmp}/latin1.txt: not UTF-8 text (line 2",)
    ),
    "directory as input": BadInput({"--input_file": "{tmp}/a_folder"}, "is a directory"),
    "null source": BadInput(
        {"--input_file": "{tmp}/null_summary.jsonl", "--source_column": "summary"}, "line 2: 'summary' is null"
    ),
    "reference key missing": BadInput(
        {"--reference_file": "{tmp}/missing_summary.jsonl", "--target_column": "summary", "--subset": "2"},
        ("--reference_file {tmp}/missing_summary.jsonl line 2: no 'summary'", "pass --target_column"),
    ),
    "too few references": BadInput(
        {"--reference_file": "{tmp}/refs.txt"}, ("has 2 references for 40 inputs", "one per input")
    ),
    "misspelt flag": BadInput({"--beam_sise": "3"}, "did you mean --beam_size?"),
    "beam size 0": BadInput({"--beam_size": "0"}, "--beam_size must be at least 1"),
    "fp16 on cpu": BadInput({"--fp16": "", "--device": "cpu"}, "--fp16 needs a GPU"),
}

QG_CASES = {
    "output is the input": BadInput(
        [str(SQUAD), str(SQUAD)], "output_file {fixtures}/s2s_ft/qg/squad_sample.json is also input_file"
    ),
    "output exists": BadInput([str(SQUAD), "{tmp}/earlier.pred"], ("already exists", "pass --overwrite")),
    "latin-1 input": BadInput(["{tmp}/latin1.txt", "{tmp}/qg.jsonl"], "not UTF-8 text (line 2"),
    "directory as input": BadInput(["{tmp}/a_folder", "{tmp}/qg.jsonl"], "is a directory"),
    "missing input": BadInput(["{tmp}/nope.json", "{tmp}/qg.jsonl"], "no such file"),
    "answer missing": BadInput(
        ["{tmp}/qg_rows.jsonl", "{tmp}/qg.jsonl"], ("qg_rows.jsonl line 2: needs non-empty", "answer is missing")
    ),
    "question not text": BadInput(["{tmp}/qg_number.jsonl", "{tmp}/qg.jsonl"], "line 1: question is a int"),
    "not json": BadInput(["{tmp}/broken.json", "{tmp}/qg.jsonl"], "broken.json line 1: not JSON"),
    "not squad": BadInput(["{tmp}/not_squad.json", "{tmp}/qg.jsonl"], ("not SQuAD JSON", "'paragraphs'")),
    "misspelt flag": BadInput([str(SQUAD), "{tmp}/qg.jsonl", "--lowercse"], "did you mean --lowercase?"),
    "output missing": BadInput([str(SQUAD)], "the following arguments are required: output_file"),
}


def write_s2s_ft_files(models: Path, tmp_path: Path) -> None:
    """The s2s-ft specific inputs, besides make_bad_files' common ones."""
    model_without_tokenizer(models, tmp_path, "bert")
    model_with_garbage_weights(models, tmp_path, "bert")
    # A "fine-tuned" model for decoding: the tiny BERT with the fields run_seq2seq.py adds (untrained, but valid).
    finetuned = tmp_path / "finetuned"
    if not finetuned.exists():
        shutil.copytree(models / "bert", finetuned)
        config = json.loads((finetuned / "config.json").read_text())
        config.update({"s2s_ft_mode": "pseudo_masked", "source_type_id": 0, "target_type_id": 1})
        (finetuned / "config.json").write_text(json.dumps(config))
        shutil.copytree(finetuned, tmp_path / "finetuned-no-tokenizer")
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (tmp_path / "finetuned-no-tokenizer" / name).unlink()
    (tmp_path / "earlier.pred").write_text("an earlier run's output\n")
    (tmp_path / "refs.txt").write_text("one\ntwo\n")
    (tmp_path / "number_target.jsonl").write_text('{"src": "a b", "tgt": "a b"}\n{"src": "c d", "tgt": 7}\n')
    (tmp_path / "earlier_run").mkdir(exist_ok=True)
    (tmp_path / "earlier_run" / "train_results.json").write_text('{"train_loss": 1.0}')
    (tmp_path / "s2s_ft_args.yaml").write_text(
        f"model_type: bert\nmodel_name_or_path: {models / 'bert'}\ntrain_file: {COPY / 'train.jsonl'}\n"
        f"max_steps: ten\noutput_dir: {tmp_path / 'out'}\n"
    )
    (tmp_path / "qg_rows.jsonl").write_text(
        json.dumps({"context": "The sky is blue.", "answer": "blue", "question": "What colour is the sky?"})
        + "\n"
        + json.dumps({"context": "Grass is green.", "answer": None, "question": "What colour is grass?"})
        + "\n"
    )
    (tmp_path / "qg_number.jsonl").write_text(json.dumps({"context": "c", "answer": "a", "question": 3}) + "\n")
    (tmp_path / "not_squad.json").write_text(json.dumps({"data": [{"title": "no paragraphs"}]}))


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_run_seq2seq_refuses_bad_input(case, tiny_models, tmp_path):
    write_s2s_ft_files(tiny_models, tmp_path)
    check_bad_input(SCRIPTS / "run_seq2seq.py", TRAIN, TRAIN_CASES[case], tmp_path, tiny_models)


@pytest.mark.parametrize("case", list(DECODE_CASES))
def test_decode_seq2seq_refuses_bad_input(case, tiny_models, tmp_path):
    write_s2s_ft_files(tiny_models, tmp_path)
    check_bad_input(SCRIPTS / "decode_seq2seq.py", DECODE, DECODE_CASES[case], tmp_path, tiny_models)


@pytest.mark.parametrize("case", list(QG_CASES))
def test_prepare_qg_data_refuses_bad_input(case, tiny_models, tmp_path):
    write_s2s_ft_files(tiny_models, tmp_path)
    check_bad_input(SCRIPTS / "prepare_qg_data.py", [], QG_CASES[case], tmp_path, tiny_models)
