"""Each Keras twin on one fixed tiny run writes exactly the golden predictions, metrics and losses
(tests/fixtures/golden/, see tests/golden.py): the copy task of tests/pytorch/test_golden_outputs.py, two epochs,
ROUGE/BLEU after each, XLA generation for one input shape."""

import pytest

from golden import record_or_compare
from helpers import FIXTURES, run_example

TF_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}
TRAIN = FIXTURES / "golden" / "copy_task_train.jsonl"
TEST = FIXTURES / "golden" / "copy_task_test.jsonl"
COMMON = [
    "--do_train", "--do_eval", "--do_predict", "--train_file", TRAIN, "--validation_file", TEST, "--test_file", TEST,
    "--num_train_epochs", "2", "--learning_rate", "3e-3", "--per_device_train_batch_size", "16",
    "--per_device_eval_batch_size", "20", "--max_source_length", "32", "--max_target_length", "12", "--seed", "11",
]  # fmt: skip

RUNS = {
    "tf_run_summarization-t5": [
        "examples/tensorflow/summarization/run_summarization.py", *COMMON, "--model_name_or_path", "{models}/t5",
        "--source_prefix", "summarize: ", "--text_column", "text", "--summary_column", "summary",
    ],
    "tf_run_translation-marian": [
        "examples/tensorflow/translation/run_translation.py", *COMMON, "--model_name_or_path", "{models}/marian",
        "--source_lang", "en", "--target_lang", "ro",
    ],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_fixed_run_writes_the_golden_outputs(name, tiny_tf_models, tmp_path):
    output_dir = tmp_path / name
    command = [str(arg).replace("{models}", str(tiny_tf_models)) for arg in RUNS[name]]
    run_example([*command, "--output_dir", output_dir], env=TF_ENV)
    record_or_compare(name, output_dir)
