"""run_translation.py refuses bad flags, argument files, data and models with one line, and changes nothing.

Each case starts from a valid marian en->ro train+eval command (`BASE`, after --do_train --do_eval); a case given
as a list is the whole command (an argument file). See tests/bad_inputs.py for what is asserted. Most cases fail
before a model or dataset loads; the data cases load the data but no model.
"""

import json

import pytest
from bad_inputs import BadInput, check_bad_input, model_without_tokenizer

from helpers import FIXTURES

SCRIPT = "examples/pytorch/translation/run_translation.py"
WMT16 = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"
BASE = {
    "--model_name_or_path": "{models}/marian",
    "--source_lang": "en",
    "--target_lang": "ro",
    "--train_file": str(WMT16),
    "--validation_file": str(WMT16),
    "--max_steps": "1",
    "--max_source_length": "64",
    "--output_dir": "{tmp}/out",
}
GENERATE = {"--predict_with_generate": ""}
GOOD = [{"translation": {"en": "Hello there.", "ro": "Salut."}}, {"translation": {"en": "Thanks.", "ro": "Mersi."}}]

CASES = {
    # Numeric flags: types and ranges, before anything loads.
    "train batch size 0": BadInput(
        {"--per_device_train_batch_size": "0"}, "--per_device_train_batch_size must be at least 1"
    ),
    "eval batch size -1": BadInput(
        {"--per_device_eval_batch_size": "-1"}, "--per_device_eval_batch_size must be at least 1"
    ),
    "learning rate 0": BadInput({"--learning_rate": "0"}, ("--learning_rate must be positive", "pass e.g.")),
    "max_steps 0": BadInput({"--max_steps": "0"}, "--max_steps must be at least 1 (or -1: use epochs), got 0"),
    "zero epochs": BadInput({"--max_steps": None, "--num_train_epochs": "0"}, "--num_train_epochs must be positive"),
    "accumulation 0": BadInput(
        {"--gradient_accumulation_steps": "0"}, "--gradient_accumulation_steps must be at least 1"
    ),
    "generation length 1": BadInput(
        {**GENERATE, "--generation_max_length": "1"}, ("--generation_max_length must be at least 2", "decoder start")
    ),
    "target length 1 is the generation length": BadInput(
        {"--max_target_length": "1"},
        ("--max_target_length 1 is also the generation length", "--val_max_target_length 128"),
    ),
    "beams 0": BadInput({**GENERATE, "--num_beams": "0"}, "--num_beams must be at least 1"),
    "label smoothing 1.5": BadInput(
        {"--label_smoothing_factor": "1.5"}, "--label_smoothing_factor must be at least 0 and below 1"
    ),
    "source length 0": BadInput({"--max_source_length": "0"}, "--max_source_length must be at least 1"),
    "not a number": BadInput({"--max_steps": "ten"}, ("--max_steps", "invalid int value: 'ten'")),
    "not a boolean": BadInput({"--pad_to_max_length": "maybe"}, ("--pad_to_max_length", "got maybe")),
    "bad choice": BadInput({"--lr_scheduler_type": "zigzag"}, "zigzag"),
    # Flag names: a "did you mean" for near misses, generation flags included.
    "misspelt language flag": BadInput(
        {"--source_langs": "en"}, ("unknown argument --source_langs", "did you mean --source_lang?")
    ),
    "misspelt beams": BadInput({"--num_beamz": "4"}, ("unknown argument --num_beamz", "did you mean --num_beams?")),
    "generate flag name": BadInput(
        {"--generate_max_length": "64"},
        ("unknown argument --generate_max_length", "did you mean --generation_max_length?"),
    ),
    # Argument files: booleans are booleans, keys are known.
    "file: misspelt boolean": BadInput(
        ["{tmp}/translate_ture.yaml"], ("translate_ture.yaml: do_train must be true or false", "'ture'")
    ),
    "file: quoted boolean": BadInput(
        ["{tmp}/translate_quoted.yaml"], ("do_eval is the string 'False', not a boolean", "without quotes")
    ),
    "file: unknown key": BadInput(
        ["{tmp}/translate_key.yaml"], ("unknown key 'source_language'", "did you mean source_lang?")
    ),
    # Languages.
    "same languages": BadInput(
        {"--target_lang": "en"}, ("--source_lang and --target_lang are both 'en'", "different values")
    ),
    "same data keys": BadInput(
        {"--source_lang": "en_XX", "--target_lang": "en_US"}, "--source_column and --target_column are both 'en'"
    ),
    "target language absent": BadInput(
        {"--target_lang": "de"}, ("no 'de' texts in", "(languages: en, ro)", "--target_lang")
    ),
    "source language absent": BadInput({"--source_lang": "fr"}, ("no 'fr' texts in", "(languages: en, ro)")),
    "romanian postprocessing for german": BadInput(
        {"--target_lang": "de", "--romanian_postprocessing": ""}, "--romanian_postprocessing is for Romanian targets"
    ),
    # Input files.
    "train file is a folder": BadInput(
        {"--train_file": "{tmp}/a_folder"}, ("--train_file {tmp}/a_folder is a directory", "inside it")
    ),
    "missing file": BadInput({"--validation_file": "{tmp}/nope.json"}, "--validation_file {tmp}/nope.json: no such"),
    "missing text pair": BadInput(
        {"--train_file": "{tmp}/corpus"}, ("--train_file {tmp}/corpus: no such file, nor a {tmp}/corpus.en", "PREFIX")
    ),
    "empty file": BadInput({"--train_file": "{tmp}/empty.jsonl"}, "the file is empty"),
    "malformed json": BadInput({"--train_file": "{tmp}/broken.json"}, "could not be read as json"),
    "latin-1 json lines": BadInput(
        {"--train_file": "{tmp}/latin1.jsonl"},
        ("latin1.jsonl: not UTF-8 text (line 2, byte 0xe9", "re-encode it as UTF-8"),
    ),
    "latin-1 text pair": BadInput(
        {"--validation_file": "{tmp}/latin"}, ("--validation_file {tmp}/latin.ro: not UTF-8 text (line 2", "UTF-8")
    ),
    # Rows: which file, which row.
    "row without the target": BadInput(
        {"--train_file": "{tmp}/no_ro_row.jsonl"},
        ("--train_file {tmp}/no_ro_row.jsonl: row 2 has no 'ro' text (its translation holds: en)", "remove"),
    ),
    "null target": BadInput(
        {"--validation_file": "{tmp}/null_ro.jsonl"},
        ("--validation_file {tmp}/null_ro.jsonl: row 3 has no 'ro' text: null or missing", "fill in"),
    ),
    "null translation": BadInput(
        {"--train_file": "{tmp}/null_translation.jsonl"}, ("null_translation.jsonl: row 2 has a null translation")
    ),
    "empty csv cell": BadInput(
        {"--train_file": "{tmp}/hole.csv"}, ("--train_file {tmp}/hole.csv: row 2 has no 'en' text", "1 of 2 rows")
    ),
    "test rows partly without references": BadInput(
        {"--do_predict": "", "--test_file": "{tmp}/no_ro_row.jsonl"}, ("--test_file", "row 2 has no 'ro' text")
    ),
    "lists of different lengths": BadInput(
        {"--train_file": "{tmp}/uneven_lists.json"}, ("lists of different lengths (en: 3, ro: 2)", "one entry per")
    ),
    # Models.
    "model without tokenizer": BadInput(
        {"--model_name_or_path": "{tmp}/marian-no-tokenizer"}, ("has no tokenizer files", "--tokenizer_name")
    ),
    "hub model offline": BadInput({"--model_name_or_path": "Helsinki-NLP/opus-mt-en-ro"}, "HF_HUB_OFFLINE=1"),
    # Integrations and the Hub.
    "report to a missing package": BadInput({"--report_to": "wandb"}, ("--report_to wandb", "pip install wandb")),
    "push offline": BadInput({"--push_to_hub": ""}, "--push_to_hub needs the network"),
    # Outputs: nothing of an earlier or running run is touched.
    "output dir in use": BadInput(
        {"--output_dir": "{tmp}/busy_out"}, ("--output_dir {tmp}/busy_out is in use by another run", "wait for it")
    ),
    "output dir with results": BadInput(
        {"--output_dir": "{tmp}/finished"},
        ("already holds an earlier run (all_results.json)", "--overwrite_output_dir"),
    ),
    "not a checkpoint": BadInput({"--resume_from_checkpoint": "{tmp}/a_folder"}, "not a checkpoint folder"),
    # The final model and n-best lists.
    "best-model metric of the other task": BadInput(
        {**GENERATE, "--load_best_model_at_end": "", "--eval_strategy": "steps", "--metric_for_best_model": "rouge2"},
        "(computed: loss, bleu, chrf, gen_len)",
    ),
    "average without checkpoints": BadInput(
        {"--average_last_checkpoints": "2", "--save_strategy": "no"},
        "saves none; add --do_train and --save_strategy steps",
    ),
    "n-best with ctranslate2": BadInput(
        {
            **GENERATE,
            "--do_predict": "",
            "--test_file": str(WMT16),
            "--num_beams": "4",
            "--num_return_sequences": "2",
            "--generation_backend": "ctranslate2",
        },
        "n-best scores come from the transformers backend",
    ),
}


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def prepare(tmp_path, models) -> None:
    """Translation inputs beyond `make_bad_files`: argument files, rows lacking a language, latin-1 text pairs, an
    earlier run's results, a model folder without tokenizer."""
    valid = f"model_name_or_path: {models}/marian\nsource_lang: en\ntarget_lang: ro\ntrain_file: {WMT16}\n"
    (tmp_path / "translate_ture.yaml").write_text(f"{valid}do_train: ture\noutput_dir: {tmp_path}/out\n")
    (tmp_path / "translate_quoted.yaml").write_text(f'{valid}do_train: true\ndo_eval: "False"\n')
    (tmp_path / "translate_key.yaml").write_text(f"{valid}source_language: en\n")
    write_jsonl(tmp_path / "no_ro_row.jsonl", [GOOD[0], {"translation": {"en": "Good night."}}, GOOD[1]])
    write_jsonl(tmp_path / "null_ro.jsonl", [*GOOD, {"translation": {"en": "Good night.", "ro": None}}])
    write_jsonl(tmp_path / "null_translation.jsonl", [GOOD[0], {"translation": None}])
    (tmp_path / "hole.csv").write_text("en,ro\nHello there.,Salut.\n,Mersi.\n")
    (tmp_path / "uneven_lists.json").write_text(json.dumps({"en": ["One.", "Two.", "Three."], "ro": ["Unu.", "Doi."]}))
    (tmp_path / "latin.en").write_text("Hello.\nCoffee.\n")
    (tmp_path / "latin.ro").write_bytes("Salut.\nCaf\xe9.\n".encode("latin-1"))
    (tmp_path / "finished").mkdir()
    (tmp_path / "finished" / "all_results.json").write_text('{"eval_bleu": 31.0}')
    model_without_tokenizer(models, tmp_path, name="marian")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_with_one_line_and_changes_nothing(case, tiny_models, tmp_path):
    prepare(tmp_path, tiny_models)
    bad_input = CASES[case]
    leading = None if isinstance(bad_input.changes, list) else ["--do_train", "--do_eval"]
    check_bad_input(SCRIPT, BASE, bad_input, tmp_path, tiny_models, leading=leading)
