"""Bad inputs for the Accelerate twins (run_summarization_no_trainer.py, run_translation_no_trainer.py): each case
runs the real script and expects one `error:` line naming the flag or input and the fix, exit code 2, no
traceback, and nothing written (see tests/bad_inputs.py). Most cases fail before a model or dataset loads."""

import json
import os
import socket

import pytest
from bad_inputs import BadInput, check_bad_input, model_without_tokenizer

SUMMARIZATION = "examples/pytorch/summarization/run_summarization_no_trainer.py"
TRANSLATION = "examples/pytorch/translation/run_translation_no_trainer.py"
XSUM = "{fixtures}/summarization/xsum/sample.json"
WMT16 = "{fixtures}/translation/wmt16_en_ro/sample.json"

SUMMARIZATION_ARGS = {
    "--model_name_or_path": "{models}/t5",
    "--source_prefix": "summarize: ",
    "--train_file": XSUM,
    "--validation_file": XSUM,
    "--output_dir": "{tmp}/out",
    "--max_train_steps": 1,
    "--per_device_train_batch_size": 2,
    "--max_source_length": 64,
    "--max_target_length": 16,
}
TRANSLATION_ARGS = {
    "--model_name_or_path": "{models}/marian",
    "--source_lang": "en",
    "--target_lang": "ro",
    "--train_file": WMT16,
    "--validation_file": WMT16,
    "--output_dir": "{tmp}/out",
    "--max_train_steps": 1,
    "--per_device_train_batch_size": 2,
    "--max_source_length": 64,
    "--max_target_length": 16,
}

SUMMARIZATION_CASES = {
    # Numeric flags and generation lengths, refused before anything loads.
    "batch size 0": BadInput({"--per_device_train_batch_size": 0}, "--per_device_train_batch_size must be at least 1"),
    "eval batch size -1": BadInput({"--per_device_eval_batch_size": -1}, "--per_device_eval_batch_size must be at"),
    "accumulation 0": BadInput({"--gradient_accumulation_steps": 0}, "--gradient_accumulation_steps must be at least"),
    "learning rate 0": BadInput({"--learning_rate": 0}, ("--learning_rate must be positive", "--learning_rate 5e-5")),
    "max_train_steps 0": BadInput(
        {"--max_train_steps": 0}, "--max_train_steps must be at least 1 (or -1: use epochs)"
    ),
    "epochs 0": BadInput({"--max_train_steps": None, "--num_train_epochs": 0}, "--num_train_epochs must be positive"),
    "negative warmup": BadInput({"--num_warmup_steps": -5}, "--num_warmup_steps must be 0 or more"),
    "negative weight decay": BadInput({"--weight_decay": -0.1}, "--weight_decay must be 0 or more"),
    "no beams": BadInput({"--num_beams": 0}, "--num_beams must be at least 1"),
    "source length 0": BadInput({"--max_source_length": 0}, "--max_source_length must be at least 1"),
    "generation length 1": BadInput(
        {"--val_max_target_length": 1}, ("--val_max_target_length must be at least 2", "decoder start token")
    ),
    "target length 1 is the generation length": BadInput(
        {"--max_target_length": 1}, ("--max_target_length (also the generation length", "--val_max_target_length")
    ),
    "logging steps 0": BadInput({"--logging_steps": 0}, "--logging_steps must be positive"),
    "max_train_samples 0": BadInput({"--max_train_samples": 0}, "--max_train_samples must be at least 1"),
    "negative seed": BadInput({"--seed": -1}, "--seed must be 0 or more"),
    "not a number": BadInput({"--learning_rate": "fast"}, ("--learning_rate", "invalid float value: 'fast'")),
    "bad checkpointing steps": BadInput({"--checkpointing_steps": "weekly"}, "neither a positive number of steps"),
    "bad boolean": BadInput({"--ignore_pad_token_for_loss": "maybe"}, "'maybe' is not a boolean; use true or false"),
    "bad eval token budget": BadInput({"--eval_max_tokens_per_batch": "lots"}, "--eval_max_tokens_per_batch"),
    # Flags argparse knows nothing of, or values outside the choices: one line, not the usage block.
    "misspelt flag": BadInput(
        {"--leaning_rate": "1e-4"}, ("unknown argument --leaning_rate", "did you mean --learning_rate?")
    ),
    "bad choice": BadInput({"--lr_scheduler_type": "cosin"}, ("--lr_scheduler_type", "invalid choice: 'cosin'")),
    "no output dir": BadInput({"--output_dir": None}, "the following arguments are required: --output_dir"),
    # Combinations.
    "same text and summary column": BadInput(
        {"--text_column": "document", "--summary_column": "document"},
        "--text_column and --summary_column are both 'document'",
    ),
    "test file without do_predict": BadInput({"--test_file": XSUM}, "add --do_predict or drop --test_file"),
    "do_predict without test file": BadInput({"--do_predict": ""}, "--do_predict needs data: pass --test_file"),
    "no model": BadInput({"--model_name_or_path": None}, "no model: pass --model_name_or_path"),
    "overwrite and resume": BadInput(
        {"--overwrite_output_dir": "", "--resume_from_checkpoint": "last"}, "--overwrite_output_dir deletes the"
    ),
    # Trackers.
    "tracker not installed": BadInput(
        {"--with_tracking": "", "--report_to": "wandb"}, ("--report_to wandb", "pip install wandb")
    ),
    "misspelt tracker": BadInput(
        {"--with_tracking": "", "--report_to": "tensorboad"}, ("--report_to tensorboad", "did you mean tensorboard?")
    ),
    # Input files.
    "train file is a folder": BadInput(
        {"--train_file": "{tmp}/a_folder"}, "--train_file {tmp}/a_folder is a directory"
    ),
    "unknown extension": BadInput({"--train_file": "{tmp}/notes.txt"}, "unknown extension '.txt'"),
    "missing file": BadInput({"--validation_file": "{tmp}/nope.json"}, "--validation_file {tmp}/nope.json: no such"),
    "empty file": BadInput({"--train_file": "{tmp}/empty.jsonl"}, "the file is empty"),
    "latin-1 file": BadInput(
        {"--train_file": "{tmp}/latin1.jsonl"}, ("--train_file {tmp}/latin1.jsonl: not UTF-8 text (line 2", "UTF-8")
    ),
    "broken json": BadInput({"--train_file": "{tmp}/broken.json"}, "--train_file {tmp}/broken.json could not be read"),
    "null summary": BadInput(
        {"--train_file": "{tmp}/null_summary.jsonl"}, ("null_summary.jsonl: example 2 has no 'summary'", "fill it in")
    ),
    "summary column only": BadInput({"--train_file": "{tmp}/summary_only.jsonl"}, "has only the column 'summary'"),
    "unknown column": BadInput({"--text_column": "body"}, "--text_column 'body' not in"),
    "header only": BadInput({"--train_file": "{tmp}/header_only.csv"}, "header_only.csv has no examples"),
    # Models.
    "model without tokenizer": BadInput(
        {"--model_name_or_path": "{tmp}/t5-no-tokenizer"}, ("has no tokenizer files", "--tokenizer_name")
    ),
    "hub model offline": BadInput({"--model_name_or_path": "google-t5/t5-small"}, "HF_HUB_OFFLINE=1"),
    "hub push offline": BadInput(
        {"--push_to_hub": "", "--hub_model_id": "me/tiny"}, "--push_to_hub needs the network"
    ),
    # Outputs and checkpoints: nothing of an earlier or running run is touched.
    "output dir with results": BadInput(
        {"--output_dir": "{tmp}/finished"},
        ("already holds an earlier run (all_results.json)", "--overwrite_output_dir"),
    ),
    "output dir in use": BadInput(
        {"--output_dir": "{tmp}/locked"}, ("--output_dir {tmp}/locked is in use by another run", f"{os.getpid()}")
    ),
    "output dir is a file": BadInput({"--output_dir": "{tmp}/notes.txt"}, "--output_dir {tmp}/notes.txt is a file"),
    "not a checkpoint": BadInput({"--resume_from_checkpoint": "{tmp}"}, "not a checkpoint folder of this script"),
    "no checkpoint to resume": BadInput(
        {"--resume_from_checkpoint": "last"}, "no complete step_*/epoch_* folder in {tmp}/out"
    ),
    "incomplete checkpoint": BadInput(
        {"--output_dir": "{tmp}/killed", "--resume_from_checkpoint": "{tmp}/killed/step_3"},
        ("--resume_from_checkpoint {tmp}/killed/step_3: incomplete checkpoint (no model.safetensors", "scratch"),
    ),
    "best model without a metric": BadInput(
        {"--load_best_model_at_end": "", "--checkpointing_steps": "epoch"},
        "needs --metric_for_best_model (computed here: rouge1, rouge2, rougeL, rougeLsum, gen_len)",
    ),
    "patience without validation data": BadInput(
        {
            "--validation_file": None,
            "--early_stopping_patience": "1",
            "--load_best_model_at_end": "",
            "--metric_for_best_model": "rouge2",
            "--checkpointing_steps": "epoch",
        },
        "there are none: add --validation_file",
    ),
    "average without checkpoints": BadInput(
        {"--average_last_checkpoints": "2"}, "saves none; add --checkpointing_steps N"
    ),
    "metric of the other task": BadInput(
        {"--metric_for_best_model": "bleu"}, "--metric_for_best_model bleu: this run does not compute it"
    ),
    "n-best without predict": BadInput({"--num_return_sequences": "2", "--num_beams": "2"}, "add --do_predict"),
}

TRANSLATION_CASES = {
    "same languages": BadInput({"--target_lang": "en"}, "--source_lang and --target_lang are both 'en'"),
    "same data keys": BadInput(
        {"--source_lang": "en_XX", "--target_lang": "en_US"}, "--source_column and --target_column are both 'en'"
    ),
    "no languages": BadInput({"--source_lang": None}, "pass --source_lang and --target_lang"),
    "language not in the data": BadInput({"--target_lang": "de"}, "no 'de' texts in"),
    "unknown language code": BadInput(
        {"--model_name_or_path": "{models}/mbart50", "--source_lang": "en_XX", "--target_lang": "ro"},
        "--target_lang 'ro' is not a language code of this tokenizer; did you mean ro_RO?",
    ),
    "bad boolean": BadInput({"--pad_to_max_length": "maybe"}, "'maybe' is not a boolean; use true or false"),
    "generation length 1": BadInput({"--val_max_target_length": 1}, "--val_max_target_length must be at least 2"),
    "learning rate negative": BadInput({"--learning_rate": -1}, "--learning_rate must be positive"),
    "tracker not installed": BadInput(
        {"--with_tracking": "", "--report_to": "mlflow"}, ("--report_to mlflow", "pip install mlflow")
    ),
    "bad sacrebleu tokenizer": BadInput({"--bleu_tokenize": "13b"}, "--bleu_tokenize 13b: not a sacrebleu tokenizer"),
    "romanian postprocessing for german": BadInput(
        {"--target_lang": "de", "--romanian_postprocessing": ""}, "--romanian_postprocessing is for Romanian targets"
    ),
    "latin-1 file": BadInput({"--validation_file": "{tmp}/latin1.jsonl"}, "not UTF-8 text (line 2"),
    "output dir with results": BadInput({"--output_dir": "{tmp}/finished"}, "--overwrite_output_dir"),
    "misspelt flag": BadInput({"--source_langs": "en"}, "did you mean --source_lang?"),
    "best model without epoch checkpoints": BadInput(
        {"--load_best_model_at_end": "", "--metric_for_best_model": "bleu"}, "add --checkpointing_steps epoch"
    ),
    "n-best over beams": BadInput(
        {"--num_beams": "2", "--num_return_sequences": "4", "--do_predict": None, "--test_file": WMT16},
        ("--num_return_sequences 4 exceeds --num_beams 2", "pass --num_beams 4"),
    ),
}


def prepare(tmp_path, models) -> None:
    """The case-specific inputs beyond `make_bad_files`: a finished run, a folder another (live) run holds, a
    checkpoint left without weights or optimizer, a model without tokenizer."""
    (tmp_path / "finished").mkdir()
    (tmp_path / "finished" / "all_results.json").write_text('{"eval_rouge1": 42.0}')
    (tmp_path / "locked").mkdir()
    lock = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-12-03 10:00:00"}
    (tmp_path / "locked" / "run.lock").write_text(json.dumps(lock))
    (tmp_path / "killed" / "step_3").mkdir(parents=True)
    (tmp_path / "killed" / "step_3" / "custom_checkpoint_0.pkl").write_bytes(b"progress")
    model_without_tokenizer(models, tmp_path)


CASES = [(SUMMARIZATION, SUMMARIZATION_ARGS, name, case) for name, case in SUMMARIZATION_CASES.items()]
CASES += [(TRANSLATION, TRANSLATION_ARGS, name, case) for name, case in TRANSLATION_CASES.items()]


@pytest.mark.parametrize(
    "script, base_args, name, case", CASES, ids=[f"{os.path.basename(c[0]).split('_')[1]}: {c[2]}" for c in CASES]
)
def test_bad_input_fails_with_one_clear_line(script, base_args, name, case, tiny_models, tmp_path):
    prepare(tmp_path, tiny_models)
    check_bad_input(script, base_args, case, tmp_path, tiny_models)
