"""The behaviour the generation speed-ups rely on, for run_summarization.py and run_translation.py: longest-first
batches with one encoder pass per batch give the same predictions, each once, in input order, as the stock
Seq2SeqTrainer path (one process and two); the two-tier evaluation of training runs; the warning for --bf16 on a
CPU without native bf16."""

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

import trainer_speedups  # the summarization folder's sibling module (pytest puts that folder on sys.path)
from helpers import FIXTURES, assert_usage_error, read_json, read_jsonl, read_lines, run_example

SUMMARIZATION = "examples/pytorch/summarization/run_summarization.py"
TRANSLATION = "examples/pytorch/translation/run_translation.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
WMT16 = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"
TORCHRUN = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", 2]
SORTED_LOG = "longest input first"
BF16_WARNING = "without native bf16"


def eval_predict_args(task: str, tiny_models: Path) -> tuple[list, list[int], list[int]]:
    """Eval + predict (no training) on 10 examples of varied length, batches of 3 (the last batch is uneven);
    the longest-first order of the examples and their source lengths in tokens."""
    if task == "summarization":
        model, max_length = tiny_models / "t5", 256
        data = ["--source_prefix", "summarize: ", "--validation_file", XSUM, "--test_file", XSUM]
        sources = ["summarize: " + row["document"] for row in read_jsonl(XSUM)]
        script = SUMMARIZATION
    else:
        model, max_length = tiny_models / "marian", 128
        data = ["--source_lang", "en", "--target_lang", "ro", "--validation_file", WMT16, "--test_file", WMT16]
        sources = [row["translation"]["en"] for row in read_jsonl(WMT16)]
        data += ["--num_beams", 2]  # beam search too (the tiny T5 repeats one text with beams)
        script = TRANSLATION
    lengths = [
        len(ids)
        for ids in AutoTokenizer.from_pretrained(model)(sources, max_length=max_length, truncation=True)["input_ids"]
    ]
    flags = ["--do_eval", "--do_predict", "--predict_with_generate", "--per_device_eval_batch_size", 3]
    args = [script, "--model_name_or_path", model, "--max_source_length", max_length, *data, *flags]
    return [*args, "--generation_max_length", 16], np.argsort(-np.asarray(lengths), kind="stable").tolist(), lengths


def scores(output_dir: Path) -> dict:
    """The saved results that depend on the predictions only (not timings, nor the batch-averaged loss)."""
    results = read_json(output_dir / "all_results.json")
    return {
        key: value
        for key, value in results.items()
        if not key.endswith(("_runtime", "_per_second", "_loss", "_preparation_time"))
    }


@pytest.mark.slow
@pytest.mark.parametrize("task", ["summarization", "translation"])
def test_longest_first_batches_give_the_input_order_predictions_each_once(task, tiny_models, tmp_path):
    args, longest_first, _ = eval_predict_args(task, tiny_models)
    # The plain Seq2SeqTrainer path (translation runs beam search: the beams' shared cross-attention is pinned too).
    stock = [
        "--eval_sort_by_length",
        "False",
        "--eval_encode_once",
        "False",
        "--eval_beams_share_cross_attention",
        "False",
    ]
    baseline = run_example([*args, *stock, "--output_dir", tmp_path / "input-order"])
    one = run_example([*args, "--output_dir", tmp_path / "sorted"])
    two = run_example([*args, "--use_cpu", "--output_dir", tmp_path / "sorted-two"], launcher=TORCHRUN)
    assert SORTED_LOG not in baseline.stdout + baseline.stderr and SORTED_LOG in one.stdout + one.stderr
    assert "world size: 2" in two.stdout + two.stderr  # the ranks are connected

    expected = read_lines(tmp_path / "input-order" / "generated_predictions.txt")
    # The tiny random models repeat themselves, but not so much that rows left in generation order would pass.
    assert len(expected) == 10 and [expected[i] for i in longest_first] != expected
    expected_scores = scores(tmp_path / "input-order")
    assert expected_scores["eval_samples"] == expected_scores["predict_samples"] == 10
    for name in ("sorted", "sorted-two"):
        assert read_lines(tmp_path / name / "generated_predictions.txt") == expected, name
        assert scores(tmp_path / name) == expected_scores, name  # eval scores too: same order, same sums

    # One encoder pass per batch, in input order (the stock batches): the losses too equal the stock path's.
    run_example([*args, "--eval_sort_by_length", "False", "--output_dir", tmp_path / "encode-once"])
    assert read_lines(tmp_path / "encode-once" / "generated_predictions.txt") == expected
    stock_results, results = (
        read_json(tmp_path / name / "all_results.json") for name in ("input-order", "encode-once")
    )
    for key in ("eval_loss", "predict_loss"):
        assert results[key] == pytest.approx(stock_results[key], abs=1e-5), key


@pytest.mark.slow
@pytest.mark.parametrize("task", ["summarization", "translation"])
def test_token_budget_batches_give_the_same_predictions_each_once(task, tiny_models, tmp_path):
    args, _, lengths = eval_predict_args(task, tiny_models)
    # A batch's tokens: examples x (longest source + 16, the generation max length). Just under two of the longest
    # inputs: those go alone, shorter ones share batches of 2 or 3.
    budget = 2 * (max(lengths) + 16) - 1
    run_example([*args, "--output_dir", tmp_path / "fixed"])
    budgeted = [*args, "--eval_max_tokens_per_batch", budget]
    one = run_example([*budgeted, "--output_dir", tmp_path / "budget"])
    two = run_example([*budgeted, "--use_cpu", "--output_dir", tmp_path / "budget-two"], launcher=TORCHRUN)
    batch_sizes = re.findall(
        rf"Test batches by --eval_max_tokens_per_batch {budget} \({budget} tokens\): (\d+) batches of (\d+) to (\d+)",
        one.stdout + one.stderr,
    )
    assert len(batch_sizes) == 1 and int(batch_sizes[0][1]) == 1 < int(batch_sizes[0][2]), batch_sizes
    assert "Test batches by" in two.stdout + two.stderr

    expected = read_lines(tmp_path / "fixed" / "generated_predictions.txt")
    assert len(expected) == 10
    for name in ("budget", "budget-two"):
        assert read_lines(tmp_path / name / "generated_predictions.txt") == expected, name
        assert scores(tmp_path / name) == scores(tmp_path / "fixed"), name

    refused = run_example(
        [*args, "--eval_max_tokens_per_batch", "lots", "--output_dir", tmp_path / "zero"], expect_success=False
    )
    assert_usage_error(
        refused, "--eval_max_tokens_per_batch must be 'auto' or a positive number of tokens", tmp_path / "zero"
    )


@pytest.mark.slow
def test_two_tier_evaluation_is_cheap_during_training_and_full_at_the_end(tiny_models, tmp_path):
    common = [
        SUMMARIZATION, "--model_name_or_path", tiny_models / "t5", "--source_prefix", "summarize: ",
        "--train_file", XSUM, "--validation_file", XSUM, "--test_file", XSUM, "--max_source_length", 64,
        "--per_device_train_batch_size", 2, "--per_device_eval_batch_size", 4, "--generation_max_length", 8,
        "--predict_with_generate", "--num_beams", 2,
    ]  # fmt: skip
    # --log_level info: the Trainer's own "Num examples" lines, counted below.
    flags = [
        "--do_train",
        "--do_eval",
        "--do_predict",
        "--max_steps",
        4,
        "--save_strategy",
        "no",
        "--log_level",
        "info",
    ]
    flags += ["--eval_strategy", "steps", "--eval_steps", 2, "--eval_subset_size", 4, "--eval_num_beams", 1]
    result = run_example([*common, *flags, "--output_dir", tmp_path / "out"])
    log = result.stdout + result.stderr
    assert "Evaluations during training: 4 of 10 examples, 1 beams (final evaluation: all examples, 2 beams)" in log
    assert log.count("Num examples = 4") == 2  # the two evaluations during training
    assert log.count("Num examples = 10") == 3  # training, the final evaluation and predict
    history = read_json(tmp_path / "out" / "trainer_state.json")["log_history"]
    assert [entry["step"] for entry in history if "eval_rouge1" in entry] == [2, 4]
    # The final evaluation saw every example with --num_beams: it scores like predict on the same file.
    results = read_json(tmp_path / "out" / "all_results.json")
    assert results["eval_samples"] == 10
    assert {key: results[f"eval_{key}"] for key in ("rouge1", "rougeLsum", "gen_len")} == {
        key: results[f"predict_{key}"] for key in ("rouge1", "rougeLsum", "gen_len")
    }

    # Without evaluations during training the flags have nothing to apply to: one clear line.
    refused = run_example(
        [*common, "--do_predict", "--eval_subset_size", 4, "--output_dir", tmp_path / "refused"],
        expect_success=False,
    )
    assert_usage_error(refused, "--eval_subset_size only applies to evaluations during training", tmp_path / "refused")


def test_bf16_on_a_cpu_without_native_bf16_warns_once(tiny_models, tmp_path):
    # No --do_* flag: the arguments are validated (where the warning is), then there is nothing to do.
    args = [SUMMARIZATION, "--model_name_or_path", tiny_models / "t5", "--test_file", XSUM, "--bf16", "--use_cpu"]
    # oneDNN limited to AVX2 has no bf16 instructions: bf16 matmuls are emulated (~1 GFLOP/s here).
    emulated = run_example([*args, "--output_dir", tmp_path / "a"], env={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert (emulated.stdout + emulated.stderr).count(BF16_WARNING) == 1
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        native = bool({"avx512_bf16", "amx_bf16"} & set(handle.read().split()))
    plain = run_example([*args, "--output_dir", tmp_path / "b"])
    assert (BF16_WARNING in plain.stdout + plain.stderr) is not native


def test_token_budget_batches_cover_every_example_once_within_the_budget():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, processes, budget = int(rng.integers(1, 40)), int(rng.integers(1, 4)), int(rng.integers(1, 200))
        sources, targets = rng.integers(1, 60, n).tolist(), rng.integers(1, 30, n).tolist()
        # Eval/predict: consecutive, in order, equal sizes per step, filler copies only after the last example.
        batches = trainer_speedups.token_budget_batches(sources, budget, processes)
        flat = [index for batch in batches for index in batch]
        assert flat[:n] == list(range(n)) and set(flat[n:]) <= {n - 1}
        assert len(batches) % processes == 0
        assert all(
            len({len(batch) for batch in batches[i : i + processes]}) == 1 for i in range(0, len(batches), processes)
        )
        assert all(len(set(batch)) == 1 or len(batch) * max(sources[i] for i in batch) <= budget for batch in batches)
        # Training: every example once per epoch, within the budget, the largest batch first, a new order per epoch.
        sampler = trainer_speedups.TokenBudgetBatchSampler(sources, targets, budget, seed=0)
        epochs = []
        for epoch in (0, 1, 0):
            sampler.set_epoch(epoch)
            epochs.append(list(sampler))
            assert sorted(index for batch in epochs[-1] for index in batch) == list(range(n))
            padded = [
                len(batch) * (max(sources[i] for i in batch) + max(targets[i] for i in batch)) for batch in epochs[-1]
            ]
            assert all(size <= budget for size, batch in zip(padded, epochs[-1], strict=True) if len(batch) > 1)
            assert padded[0] == max(padded)
        assert epochs[0] == epochs[2] and len(epochs[0]) == len(sampler)


@pytest.mark.slow
def test_token_budget_training_trains_on_one_and_two_processes_and_resumes_in_the_same_order(tiny_models, tmp_path):
    args = [
        TRANSLATION, "--model_name_or_path", tiny_models / "marian", "--source_lang", "en", "--target_lang", "ro",
        "--train_file", WMT16, "--do_train", "--num_train_epochs", 2, "--learning_rate", 1e-3, "--logging_steps", 1,
        "--train_max_tokens_per_batch", 100, "--save_strategy", "epoch", "--report_to", "none", "--seed", 0,
    ]  # fmt: skip
    whole = run_example([*args, "--output_dir", tmp_path / "whole"])
    found = re.findall(
        r"Training batches by --train_max_tokens_per_batch 100: (\d+) batches of (\d+) to (\d+)", whole.stdout
    )
    assert len(found) == 1 and int(found[0][1]) < int(found[0][2]), found
    batches = int(found[0][0])
    assert batches < 10  # fewer steps than examples: short sentences share batches
    state = read_json(tmp_path / "whole" / "trainer_state.json")
    assert state["global_step"] == 2 * batches
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert np.mean(losses[-batches:]) < np.mean(losses[:batches])

    # Resumed at the end of epoch 1, epoch 2 replays the same batch order: the same final weights.
    shutil.copytree(tmp_path / "whole" / f"checkpoint-{batches}", tmp_path / "resumed" / f"checkpoint-{batches}")
    run_example([*args, "--output_dir", tmp_path / "resumed"])
    whole_weights = load_file(tmp_path / "whole" / "model.safetensors")
    resumed_weights = load_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.allclose(whole_weights[name], resumed_weights[name], atol=1e-5) for name in whole_weights)

    two = run_example([*args, "--use_cpu", "--output_dir", tmp_path / "two"], launcher=TORCHRUN)
    assert "world size: 2" in two.stdout + two.stderr
    assert read_json(tmp_path / "two" / "trainer_state.json")["global_step"] == 2 * ((batches + 1) // 2)

    refused = run_example(
        [*args, "--train_sampling_strategy", "group_by_length", "--output_dir", tmp_path / "both"],
        expect_success=False,
    )
    assert_usage_error(refused, "drop --train_sampling_strategy group_by_length", tmp_path / "both")


@pytest.mark.slow
def test_the_no_trainer_twin_keeps_its_predictions_with_a_token_budget_and_shared_beam_cache(tiny_models, tmp_path):
    _, _, lengths = eval_predict_args("translation", tiny_models)
    args = [
        "examples/pytorch/translation/run_translation_no_trainer.py", "--model_name_or_path", tiny_models / "marian",
        "--source_lang", "en", "--target_lang", "ro", "--train_file", WMT16, "--validation_file", WMT16,
        "--max_train_steps", 1, "--per_device_eval_batch_size", 3, "--num_beams", 2, "--max_source_length", 128,
        "--val_max_target_length", 16, "--seed", 0, "--learning_rate", 1e-12,  # below fp32 resolution: the weights do not move
    ]  # fmt: skip
    stock = ["--eval_sort_by_length", "false", "--eval_beams_share_cross_attention", "false"]
    run_example([*args, *stock, "--output_dir", tmp_path / "stock"])
    # 'auto': batches of 3 of the longest inputs' size, so up to 3 x (24 + 16) / (12 + 16) = 4 of the shortest.
    budget = ["--eval_max_tokens_per_batch", "auto"]
    one = run_example([*args, *budget, "--output_dir", tmp_path / "budget"])
    expected_log = f"--eval_max_tokens_per_batch auto ({3 * (max(lengths) + 16)} tokens): 3 batches of 3 to 4 examples"
    assert expected_log in one.stdout + one.stderr
    launcher = [
        Path(sys.executable).parent / "accelerate", "launch", "--multi_gpu", "--num_processes", 2,
        "--num_machines", 1, "--mixed_precision", "no", "--dynamo_backend", "no",
    ]  # fmt: skip
    run_example([*args, *budget, "--output_dir", tmp_path / "two"], launcher=launcher, env={"ACCELERATE_USE_CPU": "1"})

    expected = read_lines(tmp_path / "stock" / "eval_predictions.txt")
    expected_scores = {
        key: value
        for key, value in read_json(tmp_path / "stock" / "all_results.json").items()
        if key.startswith("eval_")
    }
    assert len(expected) == 10
    for name in ("budget", "two"):
        assert read_lines(tmp_path / name / "eval_predictions.txt") == expected, name
        results = read_json(tmp_path / name / "all_results.json")
        assert {key: results[key] for key in expected_scores} == expected_scores, name
