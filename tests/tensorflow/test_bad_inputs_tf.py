"""Bad inputs to the Keras scripts (run_summarization.py and run_translation.py in examples/tensorflow/), table-driven
with tests/bad_inputs.py: each case runs the real script in .venv-tf and must end with exit code 2, no traceback, one
last `error:` line naming the flag or input and the fix, and nothing written. Most cases fail before TensorFlow
loads a model (a TF process still pays ~8 s of imports); the few that need the data or a model folder say so."""

import json
import os
import shutil
import socket
import sys

import pytest
from bad_inputs import BadInput, check_bad_input

from helpers import FIXTURES

SUMMARIZATION = "examples/tensorflow/summarization/run_summarization.py"
TRANSLATION = "examples/tensorflow/translation/run_translation.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
WMT16 = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"

BASE = {
    SUMMARIZATION: {
        "--model_name_or_path": "{models}/t5",
        "--source_prefix": "summarize: ",
        "--train_file": str(XSUM),
        "--output_dir": "{tmp}/out",
        "--max_train_samples": "4",
        "--per_device_train_batch_size": "2",
        "--max_steps": "2",
    },
    TRANSLATION: {
        "--model_name_or_path": "{models}/marian",
        "--source_lang": "en",
        "--target_lang": "ro",
        "--train_file": str(WMT16),
        "--output_dir": "{tmp}/out",
        "--max_train_samples": "4",
        "--per_device_train_batch_size": "2",
        "--max_steps": "2",
    },
}

S, T = SUMMARIZATION, TRANSLATION
CASES = {
    # Numeric flags and their combinations (check_flag_values and the Keras checks), before anything loads.
    "s batch size 0": (
        S,
        BadInput({"--per_device_train_batch_size": "0"}, ("--per_device_train_batch_size", "at least 1")),
    ),
    "s negative learning rate": (S, BadInput({"--learning_rate": "-1"}, ("--learning_rate must be positive", "5e-5"))),
    "s max_steps 0": (S, BadInput({"--max_steps": "0"}, ("--max_steps must be at least 1", "-1"))),
    "s generation length 1": (
        S,
        BadInput({"--generation_max_length": "1"}, "--generation_max_length must be at least 2"),
    ),
    "s negative weight decay": (S, BadInput({"--weight_decay": "-1"}, ("--weight_decay must be 0 or more", "0"))),
    "s half an epoch": (S, BadInput({"--max_steps": None, "--num_train_epochs": "0.5"}, "Keras trains whole epochs")),
    "s max_train_samples 0": (S, BadInput({"--max_train_samples": "0"}, "--max_train_samples must be at least 1")),
    "t max_source_length 0": (T, BadInput({"--max_source_length": "0"}, "--max_source_length must be at least 1")),
    "t num_beams 0": (T, BadInput({"--num_beams": "0"}, "--num_beams must be at least 1")),
    "t bleu tokenizer": (T, BadInput({"--bleu_tokenize": "nope"}, ("--bleu_tokenize nope", "13a"))),
    # --fp16 on the CPU trains to NaN (refused up front), --report_to with a package that is not installed.
    "s fp16 on the cpu": (S, BadInput({"--fp16": ""}, ("--fp16 without a GPU", "drop --fp16"))),
    "s report_to wandb": (S, BadInput({"--report_to": "wandb"}, ("--report_to wandb", "pip install wandb"))),
    "t report_to mlflow": (T, BadInput({"--report_to": "mlflow"}, ("--report_to mlflow", "pip install mlflow"))),
    # Argument files: every value type-checked, every key known.
    "s yaml quoted boolean": (
        S,
        BadInput(["{tmp}/tf_quoted_bool.yaml"], ("do_train", "not a boolean", "without quotes")),
    ),
    "s json integer as text": (
        S,
        BadInput(["{tmp}/tf_text_batch.json"], ("per_device_train_batch_size", "an integer")),
    ),
    "t json unknown key": (
        T,
        BadInput(["{tmp}/tf_unknown_key.json"], ("learning_rat", "did you mean learning_rate?")),
    ),
    # Did you mean: a mistyped flag.
    "s mistyped flag": (S, BadInput({"--learnig_rate": "1e-3"}, ("--learnig_rate", "did you mean --learning_rate?"))),
    "t mistyped flag": (
        T,
        BadInput({"--source_language": "en"}, ("--source_language", "did you mean --source_lang?")),
    ),
    # Directories where files go, files where directories go, and files that are not what they should be.
    "s train file is a folder": (S, BadInput({"--train_file": "{tmp}/a_folder"}, ("--train_file", "is a directory"))),
    "t validation file is a folder": (
        T,
        BadInput({"--do_eval": "", "--validation_file": "{tmp}/a_folder"}, ("--validation_file", "is a directory")),
    ),
    "s output dir is a file": (S, BadInput({"--output_dir": "{tmp}/notes.txt"}, ("--output_dir", "{tmp}/notes.txt"))),
    "s resume from a folder that is no checkpoint": (
        S,
        BadInput({"--resume_from_checkpoint": "{tmp}/a_folder"}, ("not a complete Keras checkpoint", "tf_checkpoint")),
    ),
    "s resume with no checkpoint": (
        S,
        BadInput({"--resume_from_checkpoint": "true"}, ("--resume_from_checkpoint true", "no complete checkpoint")),
    ),
    "s unknown extension": (S, BadInput({"--train_file": "{tmp}/notes.txt"}, ("--train_file", "unknown extension"))),
    "t empty file": (T, BadInput({"--train_file": "{tmp}/empty.jsonl"}, ("--train_file", "the file is empty"))),
    # Text that is not UTF-8: the file, the line and the fix.
    "s latin-1 json lines": (
        S,
        BadInput({"--train_file": "{tmp}/latin1.jsonl"}, ("{tmp}/latin1.jsonl", "line 2", "re-encode it as UTF-8")),
    ),
    "t latin-1 csv": (T, BadInput({"--train_file": "{tmp}/latin1.csv"}, ("latin1.csv", "not UTF-8", "re-encode"))),
    # Columns and languages that must differ.
    "s same columns": (
        S,
        BadInput({"--text_column": "document", "--summary_column": "document"}, "--text_column and --summary_column"),
    ),
    "t same language": (T, BadInput({"--target_lang": "en"}, "--source_lang and --target_lang are both 'en'")),
    "t same column": (
        T,
        BadInput({"--source_lang": "en_XX", "--target_lang": "en_GB"}, "--source_column and --target_column"),
    ),
    # The output dir: in use by a running job, or holding an earlier run's results.
    "s output dir in use": (
        S,
        BadInput({"--output_dir": "{tmp}/tf_locked"}, ("is in use by another run", "wait for it")),
    ),
    "t earlier results": (
        T,
        BadInput({"--output_dir": "{tmp}/tf_earlier"}, ("{tmp}/tf_earlier", "--overwrite_output_dir")),
    ),
    # Model folders the Keras scripts cannot use, refused before loading.
    "s no config": (S, BadInput({"--model_name_or_path": "{tmp}/not_a_model"}, ("not_a_model", "no config.json"))),
    "s no tokenizer": (
        S,
        BadInput({"--model_name_or_path": "{tmp}/t5-no-tokenizer"}, ("no tokenizer files", "--tokenizer_name")),
    ),
    "t pytorch weights only": (
        T,
        BadInput({"--model_name_or_path": "{tmp}/pytorch-only"}, ("holds PyTorch weights", "from_pt=True")),
    ),
    "s garbage weights": (
        S,
        BadInput({"--model_name_or_path": "{tmp}/t5-garbage"}, ("not a readable safetensors file",)),
    ),
    # After the data loads: a missing column, rows with null fields. After the config loads: the wrong model family.
    "s missing column": (S, BadInput({"--text_column": "body"}, "--text_column 'body' not in")),
    "s null summary": (S, BadInput({"--train_file": "{tmp}/null_summary.jsonl"}, ("null_summary.jsonl", "summary"))),
    "t encoder-only model": (T, BadInput({"--model_name_or_path": "{tmp}/bert-config"}, ("is a bert model", "T5"))),
}


def make_tf_bad_files(tmp_path, models) -> None:
    """The files of this table that tests/bad_inputs.py does not make: argument files, a locked and an earlier
    output dir, and model folders without a tokenizer, with PyTorch weights, with broken weights, of the wrong
    family."""
    (tmp_path / "tf_quoted_bool.yaml").write_text(
        f"model_name_or_path: {models}/t5\ntrain_file: {XSUM}\noutput_dir: {tmp_path}/out\ndo_train: 'False'\n"
    )
    base = {"model_name_or_path": f"{models}/t5", "train_file": str(XSUM), "output_dir": f"{tmp_path}/out"}
    (tmp_path / "tf_text_batch.json").write_text(json.dumps({**base, "per_device_train_batch_size": "two"}))
    translation = {**base, "model_name_or_path": f"{models}/marian", "source_lang": "en", "target_lang": "ro"}
    (tmp_path / "tf_unknown_key.json").write_text(json.dumps({**translation, "learning_rat": 1e-3}))
    (tmp_path / "tf_locked").mkdir()
    # A lock held by a process that runs (this test's): the script must not take it over.
    (tmp_path / "tf_locked" / "run.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    (tmp_path / "tf_earlier").mkdir()
    (tmp_path / "tf_earlier" / "all_results.json").write_text('{"eval_bleu": 12.5}')
    for name, keep in (("t5-no-tokenizer", ("config.json", "model.safetensors")), ("pytorch-only", None)):
        folder = tmp_path / name
        folder.mkdir()
        source = models / ("t5" if keep else "marian")
        for path in source.iterdir():
            if (keep and path.name in keep) or (not keep and path.name != "model.safetensors"):
                shutil.copy(path, folder / path.name)
    (tmp_path / "pytorch-only" / "pytorch_model.bin").write_bytes(b"torch weights would be here" * 10)
    shutil.copytree(models / "t5", tmp_path / "t5-garbage")
    (tmp_path / "t5-garbage" / "model.safetensors").write_bytes(b"these bytes are not model weights" * 10)
    bert = tmp_path / "bert-config"
    shutil.copytree(models / "marian", bert)
    (bert / "model.safetensors").unlink()
    (bert / "tf_model.h5").write_bytes(b"never read: the model class is refused first")
    config = {"model_type": "bert", "vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 1}
    (bert / "config.json").write_text(json.dumps({**config, "num_attention_heads": 2, "intermediate_size": 32}))


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input(case_id, tiny_tf_models, tmp_path):
    script, case = CASES[case_id]
    make_tf_bad_files(tmp_path, tiny_tf_models)
    leading = ["--do_train"] if isinstance(case.changes, dict) else []
    check_bad_input(script, BASE[script], case, tmp_path, tiny_tf_models, leading=leading, python=sys.executable)
