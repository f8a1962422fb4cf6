"""run_summarization.py refuses bad flags, argument files, data and models with one line, and changes nothing.

Each case starts from a valid train+eval command (`BASE`); see tests/bad_inputs.py for what is asserted.
"""

import pytest
from bad_inputs import BadInput, check_bad_input, model_with_garbage_weights, model_without_tokenizer

from helpers import FIXTURES

SCRIPT = "examples/pytorch/summarization/run_summarization.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
BASE = {
    "--model_name_or_path": "{models}/t5",
    "--train_file": str(XSUM),
    "--validation_file": str(XSUM),
    "--max_steps": "1",
    "--max_source_length": "64",
    "--output_dir": "{tmp}/out",
}
GENERATE = {"--predict_with_generate": ""}

CASES = {
    # Numeric flags: types and ranges, before anything loads.
    "train batch size 0": BadInput(
        {"--per_device_train_batch_size": "0"}, "--per_device_train_batch_size must be at least 1"
    ),
    "eval batch size 0": BadInput(
        {"--per_device_eval_batch_size": "0"}, "--per_device_eval_batch_size must be at least 1"
    ),
    "negative learning rate": BadInput(
        {"--learning_rate": "-0.001"}, ("--learning_rate must be positive", "pass e.g.")
    ),
    "max_steps 0": BadInput({"--max_steps": "0"}, "--max_steps must be at least 1 (or -1: use epochs), got 0"),
    "zero epochs": BadInput({"--max_steps": None, "--num_train_epochs": "0"}, "--num_train_epochs must be positive"),
    "accumulation 0": BadInput(
        {"--gradient_accumulation_steps": "0"}, "--gradient_accumulation_steps must be at least 1"
    ),
    "generation length 1": BadInput(
        {**GENERATE, "--generation_max_length": "1"}, "--generation_max_length must be at least 2"
    ),
    "generation length 0": BadInput(
        {**GENERATE, "--val_max_target_length": "0"}, "--val_max_target_length must be at least 2"
    ),
    "source length 0": BadInput({"--max_source_length": "0"}, "--max_source_length must be at least 1"),
    "target length 0": BadInput({"--max_target_length": "0"}, "--max_target_length must be at least 1"),
    "beams 0": BadInput({"--num_beams": "0"}, "--num_beams must be at least 1"),
    "generation beams 0": BadInput({"--generation_num_beams": "0"}, "--generation_num_beams must be at least 1"),
    "negative warmup": BadInput({"--warmup_steps": "-1"}, ("warmup_steps = -1.0", "warmup_steps >= 0")),
    "label smoothing 1.5": BadInput(
        {"--label_smoothing_factor": "1.5"}, "--label_smoothing_factor must be at least 0"
    ),
    "negative weight decay": BadInput({"--weight_decay": "-0.1"}, "--weight_decay must be 0 or more"),
    "train samples 0": BadInput({"--max_train_samples": "0"}, "--max_train_samples must be at least 1"),
    "not a number": BadInput({"--max_steps": "ten"}, ("--max_steps", "invalid int value: 'ten'")),
    "not a boolean": BadInput(
        {"--overwrite_output_dir": "ture"}, ("--overwrite_output_dir", "got ture", "true/false")
    ),
    "bad choice": BadInput({"--lr_scheduler_type": "zigzag"}, "zigzag"),
    "unknown flag": BadInput({"--num_beamz": "4"}, ("unknown argument --num_beamz", "did you mean --num_beams?")),
    "unknown flag far from any": BadInput({"--frobnicate": ""}, ("unknown argument --frobnicate", "fix or drop it")),
    "eval beams without evaluations": BadInput({"--eval_num_beams": "1"}, "--eval_num_beams only applies"),
    "token budget 0": BadInput({"--train_max_tokens_per_batch": "0"}, "--train_max_tokens_per_batch must be"),
    # Flag combinations.
    "same columns": BadInput(
        {"--text_column": "document", "--summary_column": "document"},
        ("--text_column and --summary_column are both 'document'", "different values"),
    ),
    "summary-only data": BadInput(
        {"--train_file": "{tmp}/summary_only.jsonl", "--validation_file": "{tmp}/summary_only.jsonl"},
        ("has only the column 'summary'", "pass --text_column and --summary_column"),
    ),
    "report to a missing package": BadInput({"--report_to": "wandb"}, ("--report_to wandb", "pip install wandb")),
    "bf16 without GPU": BadInput({"--bf16": ""}, ("--bf16", "add --use_cpu")),
    "push offline": BadInput({"--push_to_hub": ""}, "--push_to_hub needs the network"),
    "predict without data": BadInput({"--do_predict": ""}, "--do_predict needs data: pass --test_file"),
    # Argument files: booleans are booleans, keys are known, the file is a mapping.
    "file: misspelt boolean": BadInput(
        ["{tmp}/bad_bool.yaml"], ("bad_bool.yaml", "do_train", "must be true or false")
    ),
    "file: quoted boolean": BadInput(["{tmp}/quoted_bool.yaml"], ("do_eval is the string 'False'", "without quotes")),
    "file: unknown key": BadInput(
        ["{tmp}/unknown_key.yaml"], ("unknown key 'learning_rat'", "did you mean learning_rate?")
    ),
    "file: not a number": BadInput(["{tmp}/bad_number.yaml"], ("learning_rate must be a number", "'fast'")),
    "file: bad choice": BadInput(["{tmp}/bad_choice.yaml"], ("'zigzag' is not one of", "linear")),
    "file: a list": BadInput(["{tmp}/not_a_mapping.yaml"], "must map flag names to values"),
    "file: broken yaml": BadInput(["{tmp}/broken.yaml"], ("broken.yaml is not valid YAML", "fix the syntax")),
    "file: broken json": BadInput(
        ["{tmp}/broken_args.json"], ("broken_args.json is not valid JSON", "fix the syntax")
    ),
    "file: required key missing": BadInput(["{tmp}/no_model.yaml"], ("has no model_name_or_path (required)", "add")),
    "file: missing": BadInput(["{tmp}/nope.yaml"], "argument file {tmp}/nope.yaml does not exist"),
    # Data files.
    "unknown extension": BadInput({"--train_file": "{tmp}/notes.txt"}, "use a .csv, .tsv, .json or .jsonl file"),
    "missing file": BadInput({"--train_file": "{tmp}/nope.json"}, "--train_file {tmp}/nope.json: no such file"),
    "directory as file": BadInput(
        {"--train_file": "{tmp}/a_folder"}, ("--train_file {tmp}/a_folder is a directory", "inside it")
    ),
    "empty file": BadInput({"--validation_file": "{tmp}/empty.jsonl"}, "the file is empty"),
    "header-only csv": BadInput({"--train_file": "{tmp}/header_only.csv"}, "has no examples"),
    "only empty rows": BadInput({"--train_file": "{tmp}/blank.jsonl"}, "no non-empty examples"),
    "malformed json": BadInput({"--train_file": "{tmp}/broken.json"}, "could not be read as json"),
    "latin-1 json lines": BadInput(
        {"--train_file": "{tmp}/latin1.jsonl"},
        ("latin1.jsonl: not UTF-8 text (line 2, byte 0xe9", "re-encode it as UTF-8"),
    ),
    "latin-1 csv": BadInput(
        {"--validation_file": "{tmp}/latin1.csv"}, ("--validation_file", "not UTF-8 text (line 2")
    ),
    "null summary": BadInput(
        {"--train_file": "{tmp}/null_summary.jsonl"},
        ("--train_file {tmp}/null_summary.jsonl: example 2 has no 'summary'", "fill it in"),
    ),
    "missing summary key": BadInput(
        {"--validation_file": "{tmp}/missing_summary.jsonl"}, "example 2 has no 'summary'"
    ),
    "text column": BadInput({"--text_column": "body"}, "--text_column 'body' not in"),
    "summary column": BadInput({"--summary_column": "abstract"}, "(columns: document, summary)"),
    "hub dataset offline": BadInput({"--dataset_name": "xsum", "--train_file": None}, "pass local files"),
    # Models.
    "hub model offline": BadInput({"--model_name_or_path": "google-t5/t5-small"}, "HF_HUB_OFFLINE=1"),
    "encoder-only model": BadInput({"--model_name_or_path": "{models}/bert"}, "not a sequence-to-sequence"),
    "folder without a model": BadInput(
        {"--model_name_or_path": "{tmp}/not_a_model"}, ("{tmp}/not_a_model has no config.json", "save_pretrained")
    ),
    "model without tokenizer": BadInput(
        {"--model_name_or_path": "{tmp}/t5-no-tokenizer"}, ("has no tokenizer files", "pass --tokenizer_name")
    ),
    "garbage weights": BadInput(
        {"--model_name_or_path": "{tmp}/t5-garbage-weights"}, "its weights file cannot be read"
    ),
    # Outputs and checkpoints.
    "output dir is a file": BadInput({"--output_dir": "{tmp}/notes.txt"}, "--output_dir {tmp}/notes.txt is a file"),
    "output dir in use": BadInput(
        {"--output_dir": "{tmp}/busy_out"}, ("is in use by another run (process", "wait for it")
    ),
    "not a checkpoint": BadInput({"--resume_from_checkpoint": "{tmp}"}, "not a checkpoint folder"),
    "incomplete checkpoint": BadInput(
        {"--resume_from_checkpoint": "{tmp}/incomplete_run/checkpoint-2"},
        ("incomplete checkpoint (no model.safetensors", "earlier"),
    ),
    # The final model (early stopping, best model, averaged checkpoints) and n-best lists: before anything loads.
    "patience 0": BadInput(
        {"--early_stopping_patience": "0", "--load_best_model_at_end": "", "--eval_strategy": "steps"},
        "--early_stopping_patience must be at least 1",
    ),
    "patience without best model": BadInput(
        {"--early_stopping_patience": "2", "--eval_strategy": "steps"}, "add --load_best_model_at_end True"
    ),
    "best-model metric not computed": BadInput(
        {"--load_best_model_at_end": "", "--eval_strategy": "steps", "--metric_for_best_model": "rouge2"},
        ("--metric_for_best_model rouge2: this run does not compute it (computed: loss)", "--predict_with_generate"),
    ),
    "unknown best-model metric": BadInput(
        {**GENERATE, "--load_best_model_at_end": "", "--eval_strategy": "steps", "--metric_for_best_model": "bleu"},
        "(computed: loss, rouge1, rouge2, rougeL, rougeLsum, gen_len)",
    ),
    "threshold without patience": BadInput(
        {"--early_stopping_threshold": "0.5"}, "--early_stopping_threshold needs --early_stopping_patience"
    ),
    "average 0 checkpoints": BadInput(
        {"--average_last_checkpoints": "0"}, "--average_last_checkpoints must be at least 1, got 0"
    ),
    "average more than kept": BadInput(
        {"--average_last_checkpoints": "3", "--save_total_limit": "2"}, "--save_total_limit 2 keeps only 2 checkpoints"
    ),
    "n-best without predict": BadInput({"--num_return_sequences": "2"}, "add --do_predict"),
    "n-best over beams": BadInput(
        {**GENERATE, "--do_predict": "", "--test_file": str(XSUM), "--num_beams": "2", "--num_return_sequences": "3"},
        ("--num_return_sequences 3 is more than the 2 beam(s)", "--num_beams 3"),
    ),
    "n-best with greedy model": BadInput(
        {**GENERATE, "--do_predict": "", "--test_file": str(XSUM), "--num_return_sequences": "2"},
        "more than the 1 beam(s)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_with_one_line_and_changes_nothing(case, tiny_models, tmp_path):
    model_without_tokenizer(tiny_models, tmp_path)
    model_with_garbage_weights(tiny_models, tmp_path)
    check_bad_input(SCRIPT, BASE, CASES[case], tmp_path, tiny_models, leading=["--do_train", "--do_eval"])
