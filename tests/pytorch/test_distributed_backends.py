"""The Trainer scripts with Trainer back-ends that shard the model (CPU-runnable checks, no GPU here).

FSDP runs for real on two CPU processes (gloo). DeepSpeed is not installed on our machines: the check is
that --deepspeed reaches the Trainer and, without the package, stops with one clear line.
"""

import json
import sys
from pathlib import Path

import pytest

from helpers import FIXTURES, assert_usage_error, read_json, run_example, train_losses

XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
WMT16 = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"
TORCHRUN = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", 2]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["summarization", "translation"])
def test_fsdp_full_shard_on_two_cpu_processes(task, tiny_models, tmp_path):
    if task == "summarization":
        script = "examples/pytorch/summarization/run_summarization.py"
        data = ["--model_name_or_path", tiny_models / "t5", "--source_prefix", "summarize: ", "--train_file", XSUM]
        data += ["--validation_file", XSUM]
        layer = "T5Block"
    else:
        script = "examples/pytorch/translation/run_translation.py"
        data = ["--model_name_or_path", tiny_models / "marian", "--source_lang", "en", "--target_lang", "ro"]
        data += ["--train_file", WMT16, "--validation_file", WMT16]
        layer = "MarianEncoderLayer"
    output_dir = tmp_path / "out"
    result = run_example(
        [
            script,
            *data,
            "--do_train",
            "--do_eval",
            "--predict_with_generate",
            "--max_steps",
            8,
            "--learning_rate",
            3e-3,
            "--logging_steps",
            2,
            "--per_device_train_batch_size",
            2,
            "--max_source_length",
            64,
            "--generation_max_length",
            16,
            "--use_cpu",
            "--save_strategy",
            "no",
            "--fsdp",
            "full_shard auto_wrap",
            "--fsdp_config",
            json.dumps({"transformer_layer_cls_to_wrap": [layer]}),
            "--output_dir",
            output_dir,
        ],  # fmt: skip
        launcher=TORCHRUN,
    )
    log = result.stdout + result.stderr
    assert "world size: 2" in log
    # The Trainer got the sharding settings (the full argument record is run_arguments.json, not the console).
    record = read_json(output_dir / "run_arguments.json")
    training_args = json.dumps(
        next(group for name, group in record.items() if "fsdp" in group or "fsdp_config" in group)
    )
    assert "full_shard" in training_args and layer in training_args
    results = read_json(output_dir / "all_results.json")
    assert results["eval_samples"] == 10 and ("eval_rouge1" in results or "eval_bleu" in results)
    losses = train_losses(output_dir)
    assert losses[-1] < losses[0], losses


def test_deepspeed_without_the_package_is_one_clear_line(tiny_models, tmp_path):
    config = tmp_path / "ds_config.json"
    config.write_text(json.dumps({"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto"}))
    result = run_example(
        [
            "examples/pytorch/summarization/run_summarization.py",
            "--model_name_or_path",
            tiny_models / "t5",
            "--train_file",
            XSUM,
            "--do_train",
            "--deepspeed",
            config,
            "--output_dir",
            tmp_path / "out",
        ],  # fmt: skip
        expect_success=False,
    )
    last_line = assert_usage_error(result, "Install it", tmp_path / "out")
    assert last_line.startswith("error: ") and "deepspeed" in last_line
