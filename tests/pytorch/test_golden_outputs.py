"""Each PyTorch script on one fixed tiny run writes exactly the golden predictions, metrics and losses
(tests/fixtures/golden/, see tests/golden.py). The runs use beam search, longest-first generation, the encoder run
once per eval batch, token-budget batches and mBART language codes, so the machinery a refactor moves is covered."""

import pytest

from golden import record_or_compare
from helpers import FIXTURES, run_example

# A copy task from real sentences (target: the first 5 words), learnt in a few seconds, so predictions differ per input.
TRAIN = FIXTURES / "golden" / "copy_task_train.jsonl"
TEST = FIXTURES / "golden" / "copy_task_test.jsonl"
DATA = ["--train_file", TRAIN, "--validation_file", TEST, "--test_file", TEST]

COMMON = [
    "--do_predict", "--learning_rate", "3e-3", "--lr_scheduler_type", "constant",
    "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "4",
    "--seed", "11",
]  # fmt: skip
TRAINER = [
    "--do_train", "--do_eval", "--predict_with_generate", "--max_steps", "400", "--logging_steps", "25",
    "--save_strategy", "no",
    "--num_beams", "2", *COMMON,
]  # fmt: skip
NO_TRAINER = ["--max_train_steps", "400", "--logging_steps", "25", "--num_beams", "2", *COMMON]

RUNS = {
    "run_summarization-t5": [
        "examples/pytorch/summarization/run_summarization.py", *TRAINER, "--model_name_or_path", "{models}/t5",
        "--source_prefix", "summarize: ", *DATA, "--text_column", "text", "--summary_column", "summary",
        "--max_source_length", "32", "--max_target_length", "12",
    ],
    "run_summarization_no_trainer-t5": [
        "examples/pytorch/summarization/run_summarization_no_trainer.py", *NO_TRAINER,
        "--model_name_or_path", "{models}/t5", "--source_prefix", "summarize: ",
        *DATA, "--text_column", "text", "--summary_column", "summary",
        "--max_source_length", "32", "--max_target_length", "12", "--eval_max_tokens_per_batch", "auto",
    ],
    "run_translation-marian": [
        "examples/pytorch/translation/run_translation.py", *TRAINER, "--model_name_or_path", "{models}/marian",
        "--source_lang", "en", "--target_lang", "ro",
        *DATA,
        "--max_source_length", "32", "--max_target_length", "12", "--generation_max_length", "12",
        "--train_max_tokens_per_batch", "500", "--eval_max_tokens_per_batch", "auto",
    ],
    "run_translation_no_trainer-mbart": [
        "examples/pytorch/translation/run_translation_no_trainer.py", *NO_TRAINER,
        "--model_name_or_path", "{models}/mbart", "--source_lang", "en_XX", "--target_lang", "ro_RO",
        *DATA,
        "--max_source_length", "32", "--max_target_length", "12", "--val_max_target_length", "12",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", list(RUNS))
def test_fixed_run_writes_the_golden_outputs(name, tiny_models, tmp_path):
    output_dir = tmp_path / name
    command = [str(arg).replace("{models}", str(tiny_models)) for arg in RUNS[name]]
    run_example([*command, "--output_dir", output_dir])
    record_or_compare(name, output_dir)
