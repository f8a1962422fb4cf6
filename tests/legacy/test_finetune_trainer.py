"""examples/legacy/seq2seq/finetune_trainer.py end to end on tiny models and the shipped `.source/.target` data."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import nltk
import pytest
import sacrebleu
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM

from helpers import (
    FIXTURES,
    REPO_ROOT,
    TEST_ENV,
    assert_usage_error,
    expected_legacy_rouge,
    import_legacy,
    read_json,
    read_lines,
    run_example,
    train_losses,
)
from training_curves import read_plotted_series

SCRIPT = "examples/legacy/seq2seq/finetune_trainer.py"
EN_RO = FIXTURES / "legacy" / "wmt_en_ro"
official_rouge = import_legacy("official_rouge")
COMMON = ["--report_to", "none", "--max_source_length", "48", "--per_device_train_batch_size", "4", "--seed", "0"]


def line_count(path) -> int:
    return len(read_lines(path))


def copy_task_dir(folder, n_train=400, n_eval=40, words: int | None = 6):
    """A legacy data folder from real WMT16 news sentences: source and target are the sentence's first `words`
    words (None: the whole sentence, real varied lengths)."""
    sentences = [line.split() for line in read_lines(FIXTURES / "tokenizer_corpus" / "newsdev2016.en")]
    sentences = [" ".join(tokens[:words]) for tokens in sentences if len(tokens) >= 6]
    splits = {
        "train": sentences[:n_train],
        "val": sentences[n_train : n_train + n_eval],
        "test": sentences[n_train + n_eval : n_train + 2 * n_eval],
    }
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in splits.items():
        for side in ("source", "target"):
            (folder / f"{split}.{side}").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return folder


def test_marian_translation_writes_every_classic_output(tiny_models, tmp_path):
    out = tmp_path / "out"
    run_example(
        [SCRIPT, "--model_name_or_path", tiny_models / "marian", "--data_dir", EN_RO, "--output_dir", out,
         "--task", "translation", "--do_train", "--do_eval", "--do_predict", "--predict_with_generate",
         "--sortish_sampler", "--num_train_epochs", "2", "--eval_strategy", "steps", "--eval_steps", "2",
         "--logging_steps", "1", "--val_max_target_length", "12", "--test_max_target_length", "16",
         "--n_train", "-1", *COMMON]
    )  # fmt: skip
    for name in ("all_results.json", "train_results.json", "val_results.json", "test_results.json", "metrics.json",
                 "test_generations.txt", "test_results.txt", "git_log.json", "hparams.json", "trainer_state.json",
                 "config.json", "model.safetensors"):  # fmt: skip
        assert (out / name).is_file(), name
    results = read_json(out / "all_results.json")
    # -1 means every line (upstream dropped the last one); the last train line has no trailing newline issue.
    assert results["train_n_objs"] == line_count(EN_RO / "train.source") == 11
    assert results["val_n_objs"] == line_count(EN_RO / "val.source") == 16
    assert results["test_n_objs"] == line_count(EN_RO / "test.source") == 20
    assert 0 <= results["train_src_pad_frac"] < 1 and results["train_real_tokens"] > 0
    # One generation per test line, in order, scored with sacrebleu.
    predictions = read_lines(out / "test_generations.txt")
    references = read_lines(EN_RO / "test.target")
    assert len(predictions) == 20 and all(predictions)
    assert results["test_bleu"] == round(sacrebleu.corpus_bleu(predictions, [references]).score, 4)
    assert 0 < results["test_gen_len"] <= 16 and 0 < results["val_gen_len"] <= 12
    assert f"test_bleu: {results['test_bleu']}" in read_lines(out / "test_results.txt")
    # metrics.json: one val record per evaluation during training (every 2 of 6 steps) plus the final one.
    history = read_json(out / "metrics.json")
    assert [record["step"] for record in history["val"]] == [2, 4, 6, 6]
    assert all("val_bleu" in record and "val_loss" in record for record in history["val"])
    assert history["test"][0]["test_bleu"] == results["test_bleu"]
    # best_tfmr: a loadable save_pretrained folder of the best evaluated model.
    selection = read_json(out / "best_tfmr" / "selection.json")
    assert selection["metric"] == "val_bleu" and selection["step"] in (2, 4, 6)
    AutoModelForSeq2SeqLM.from_pretrained(out / "best_tfmr")
    assert (out / "best_tfmr" / "tokenizer_config.json").is_file()
    hparams = read_json(out / "hparams.json")
    assert hparams["data"]["n_train"] == -1 and hparams["training"]["sortish_sampler"] is True
    # training_curves.png plots the log history; the model card lists the final scores and the command.
    series = read_plotted_series(str(out / "training_curves.png"))
    log_history = read_json(out / "trainer_state.json")["log_history"]
    assert series["eval_bleu"]["value"] == [row["eval_bleu"] for row in log_history if "eval_bleu" in row]
    assert series["loss"]["value"] == [row["loss"] for row in log_history if "loss" in row]
    card = (out / "README.md").read_text()
    assert f"| bleu | {results['val_bleu']} | {results['test_bleu']} |" in card
    assert f"`test_bleu_signature`: `{results['test_bleu_signature']}`" in card
    assert f"--data_dir {EN_RO}" in card and "finetune_trainer.py" in card
    assert len(read_json(out / "git_log.json")["repo_sha"]) == 40


def test_bart_frozen_encoder_label_smoothing_token_budget(tiny_models, tmp_path):
    out = tmp_path / "out"
    run_example(
        [SCRIPT, "--model_name_or_path", tiny_models / "bart", "--data_dir", EN_RO, "--output_dir", out,
         "--task", "summarization", "--do_train", "--do_predict", "--predict_with_generate",
         "--freeze_encoder", "--freeze_embeds", "--label_smoothing", "0.1", "--max_tokens_per_batch", "96",
         "--n_train", "5", "--n_test", "6", "--num_train_epochs", "2", "--learning_rate", "1e-3",
         "--test_max_target_length", "12", *COMMON]
    )  # fmt: skip
    results = read_json(out / "all_results.json")
    assert results["train_n_objs"] == 5 and results["test_n_objs"] == 6
    assert {"test_rouge1", "test_rouge2", "test_rougeL", "test_rougeLsum"} <= set(results)
    assert len(read_lines(out / "test_generations.txt")) == 6
    assert read_json(out / "hparams.json")["training"]["label_smoothing_factor"] == 0.1
    before = AutoModelForSeq2SeqLM.from_pretrained(tiny_models / "bart").state_dict()
    after = AutoModelForSeq2SeqLM.from_pretrained(out).state_dict()
    encoder = [name for name in after if name.startswith("model.encoder.")]
    decoder_layers = [name for name in after if name.startswith("model.decoder.layers.")]
    assert encoder and all(torch.equal(before[name], after[name]) for name in encoder)
    assert torch.equal(before["model.shared.weight"], after["model.shared.weight"])
    assert any(not torch.equal(before[name], after[name]) for name in decoder_layers)


def test_trains_on_copy_task_and_scores_with_rouge_score(tiny_models, tmp_path):
    data = copy_task_dir(tmp_path / "copy")
    out = tmp_path / "out"
    run_example(
        [SCRIPT, "--model_name_or_path", tiny_models / "marian", "--data_dir", data, "--output_dir", out,
         "--task", "summarization", "--do_train", "--do_eval", "--do_predict", "--predict_with_generate",
         "--max_steps", "150", "--learning_rate", "3e-3", "--lr_scheduler", "constant", "--eval_strategy", "steps",
         "--eval_steps", "75", "--save_strategy", "no", "--logging_steps", "25", "--max_target_length", "16",
         "--val_max_target_length", "16", "--test_max_target_length", "16",
         *COMMON, "--per_device_train_batch_size", "16"]
    )  # fmt: skip
    losses = train_losses(out)
    assert losses[-1] < 0.9 * losses[0], losses
    assert [record["step"] for record in read_json(out / "metrics.json")["val"]] == [75, 150, 150]
    results = read_json(out / "all_results.json")
    predictions = read_lines(out / "test_generations.txt")
    references = read_lines(data / "test.target")
    expected = expected_legacy_rouge(predictions, references)
    assert results["test_rouge1"] > 0
    assert {key: results[f"test_{key}"] for key in expected} == expected
    assert results["test_rouge_signature"] == results["val_rouge_signature"]
    assert (
        results["test_rouge_signature"].startswith("rouge:rouge_score-")
        and "|agg:bootstrap-mid-1000|" in (results["test_rouge_signature"])
    )


def test_official_rouge_backend_saves_intervals_and_signatures(tiny_models, tmp_path):
    out = tmp_path / "out"
    result = run_example(
        [SCRIPT, "--model_name_or_path", tiny_models / "marian", "--data_dir", EN_RO, "--output_dir", out,
         "--task", "summarization", "--do_eval", "--do_predict", "--predict_with_generate", "--n_val", "6",
         "--n_test", "8", "--val_max_target_length", "12", "--test_max_target_length", "12",
         "--rouge_backend", "official", *COMMON]
    )  # fmt: skip
    results = read_json(out / "all_results.json")
    predictions, references = read_lines(out / "test_generations.txt"), read_lines(EN_RO / "test.target")[:8]
    split = official_rouge.evaluate(
        ["\n".join(nltk.sent_tokenize(p)) for p in predictions],
        [["\n".join(nltk.sent_tokenize(r))] for r in references],
        official_rouge.OfficialRougeOptions(max_ngram=2),
    )
    unsplit = official_rouge.evaluate(predictions, references, official_rouge.OfficialRougeOptions(max_ngram=0))
    metrics = {"rouge1": (split, "ROUGE-1"), "rouge2": (split, "ROUGE-2"), "rougeL": (unsplit, "ROUGE-L")}
    metrics["rougeLsum"] = (split, "ROUGE-L")
    for key, (scores, metric) in metrics.items():
        for end in ("", "_low", "_high"):
            assert results[f"test_{key}{end}"] == round(100 * scores.averages[metric][f"F{end}"], 4), key + end
            assert f"val_{key}{end}" in results
    assert results["test_rouge1"] > 0
    for split_name in ("val", "test"):
        signature = results[f"{split_name}_rouge_signature"]
        assert signature.startswith("rouge:official-1.5.5|") and "|opts:-c 95 -r 1000 -n 2 -a -m|" in signature
        # Printed in full under the metric table, not padded into it.
        assert f"  {split_name}_rouge_signature: {signature}" in result.stdout.splitlines()
    assert not any(line.rstrip().endswith("scale:f1x100") and " = " in line for line in result.stdout.splitlines())
    assert f"test_rouge_signature: {results['test_rouge_signature']}" in read_lines(out / "test_results.txt")
    assert read_json(out / "metrics.json")["val"][-1]["val_rouge_signature"] == results["val_rouge_signature"]


def test_sortish_and_token_budget_batches_have_less_padding(tiny_models, tmp_path):
    """The samplers really drive training: on real sentences of varied length, sortish and token-budget
    batches carry less source padding than the default random batches (1 epoch of 240 examples each)."""
    data = copy_task_dir(tmp_path / "copy", n_train=240, words=None)
    pad = {}
    for name, flags in {
        "random": [],
        "sortish": ["--sortish_sampler"],
        "token_budget": ["--max_tokens_per_batch", "512"],
    }.items():
        out = tmp_path / name
        run_example(
            [SCRIPT, "--model_name_or_path", tiny_models / "t5", "--data_dir", data, "--output_dir", out,
             "--task", "translation", "--do_train", "--num_train_epochs", "1", "--save_strategy", "no",
             "--max_target_length", "8", *COMMON, "--per_device_train_batch_size", "16", *flags]
        )  # fmt: skip
        pad[name] = read_json(out / "train_results.json")["train_src_pad_frac"]
    assert pad["sortish"] < 0.5 * pad["random"], pad
    assert pad["token_budget"] < 0.5 * pad["random"], pad


def test_early_stopping_on_a_plateau_stops_and_keeps_the_best_checkpoint(tiny_models, tmp_path):
    """--early_stopping_patience 2 on val BLEU (the default metric: translation with generation): the tiny random
    marian's BLEU stays 0 while training changes its weights, so training stops 2 evaluations after the first one,
    long before --max_steps, and the saved model is that first evaluation's checkpoint, not the last step's."""
    out = tmp_path / "out"
    result = run_example(
        [SCRIPT, "--model_name_or_path", tiny_models / "marian", "--data_dir", EN_RO, "--output_dir", out,
         "--task", "translation", "--do_train", "--predict_with_generate", "--max_steps", "10",
         "--learning_rate", "1e-3", "--eval_strategy", "steps", "--eval_steps", "1", "--save_steps", "1",
         "--load_best_model_at_end", "--early_stopping_patience", "2", "--n_val", "4",
         "--val_max_target_length", "8", "--logging_steps", "1", *COMMON]
    )  # fmt: skip
    state = read_json(out / "trainer_state.json")
    evaluations = [(row["step"], row["eval_bleu"]) for row in state["log_history"] if "eval_bleu" in row]
    assert state["global_step"] == 3 < state["max_steps"] == 10
    assert evaluations == [(1, 0.0), (2, 0.0), (3, 0.0)]  # the plateau: no evaluation beats the first
    assert os.path.basename(state["best_model_checkpoint"]) == "checkpoint-1" and state["best_metric"] == 0.0
    log = result.stdout + result.stderr
    assert "Early stopping: training stopped early at step 3 of 10" in log and "did not find eval_" not in log
    training = read_json(out / "hparams.json")["training"]
    assert training["metric_for_best_model"] == "bleu" and training["greater_is_better"] is True
    # The saved weights are the best checkpoint's, and that is no accident: the last checkpoint's differ.
    saved = load_file(out / "model.safetensors")
    best = load_file(out / "checkpoint-1" / "model.safetensors")
    last = load_file(out / "checkpoint-3" / "model.safetensors")
    assert saved.keys() == best.keys() == last.keys()
    assert all(torch.equal(saved[name], best[name]) for name in saved)
    assert not all(torch.equal(saved[name], last[name]) for name in saved)
    # The final evaluation (val_) is of that model, after training: recorded once, without the early stopping.
    assert read_json(out / "all_results.json")["val_bleu"] == 0.0
    assert [record["step"] for record in read_json(out / "metrics.json")["val"]] == [1, 2, 3, 3]
    assert "Training stopped early at step 3 of 10" in (out / "README.md").read_text()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_data_dir", "no such folder"),
        ("missing_split", "has no val.source"),
        ("misaligned", "has 3 lines but train.target has 2"),
        ("finished_output_dir", "already holds an earlier run"),
        ("bad_task", "--task qa"),
        ("both_samplers", "exclude each other"),
    ],
)
def test_usage_errors_are_one_line(tiny_models, tmp_path, case, expected):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for split in ("train", "val"):
        (data / f"{split}.source").write_text("a b c\nd e f\ng h i\n", encoding="utf-8")
        (data / f"{split}.target").write_text("a\nd\ng\n", encoding="utf-8")
    args = [SCRIPT, "--model_name_or_path", tiny_models / "t5", "--data_dir", data, "--output_dir", out,
            "--do_train", "--do_eval", "--report_to", "none"]  # fmt: skip
    checked_out = out
    if case == "missing_data_dir":
        args[args.index(data)] = tmp_path / "nope"
    elif case == "missing_split":
        (data / "val.source").unlink()
    elif case == "misaligned":
        (data / "train.target").write_text("a\nd\n", encoding="utf-8")
    elif case == "finished_output_dir":
        out.mkdir()
        (out / "all_results.json").write_text("{}", encoding="utf-8")
        checked_out = None
    elif case == "bad_task":
        args += ["--task", "qa"]
    elif case == "both_samplers":
        args += ["--sortish_sampler", "--max_tokens_per_batch", "100"]
    result = run_example(args, expect_success=False)
    assert_usage_error(result, expected, output_dir=checked_out)


def test_interrupted_run_resumes_from_its_last_checkpoint(tiny_models, tmp_path):
    """A folder holding only checkpoints and run files (what a killed job leaves) is resumed, not refused."""
    out = tmp_path / "out"
    args = [SCRIPT, "--model_name_or_path", tiny_models / "t5", "--data_dir", EN_RO, "--output_dir", out,
            "--task", "translation", "--do_train", "--save_steps", "2", "--logging_steps", "1", *COMMON]  # fmt: skip
    run_example([*args, "--max_steps", "2"])
    for name in os.listdir(out):  # keep what exists while a job runs: checkpoint-2, hparams.json, git_log.json
        if not name.startswith("checkpoint-") and name not in ("hparams.json", "git_log.json"):
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    # A checkpoint a killed job left half-written (no optimizer state) is skipped, not resumed from.
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-3")
    (out / "checkpoint-3" / "optimizer.pt").unlink()
    state_3 = read_json(out / "checkpoint-3" / "trainer_state.json")
    (out / "checkpoint-3" / "trainer_state.json").write_text(json.dumps({**state_3, "global_step": 3}))
    result = run_example([*args, "--max_steps", "4"])
    assert "Resuming training from" in result.stdout + result.stderr
    assert "checkpoint-3: incomplete (no optimizer.pt)" in result.stdout + result.stderr
    assert f"Resuming training from {out / 'checkpoint-2'}" in result.stdout + result.stderr
    state = read_json(out / "trainer_state.json")
    assert state["global_step"] == 4
    assert [row["step"] for row in state["log_history"] if "loss" in row] == [1, 2, 3, 4]


def test_beam_search_with_the_shared_cross_attention_cache_predicts_like_generate_alone(tiny_models, tmp_path):
    args = [SCRIPT, "--model_name_or_path", tiny_models / "marian", "--data_dir", EN_RO, "--task", "translation",
            "--do_predict", "--predict_with_generate", "--eval_beams", "3", "--n_test", "12",
            "--test_max_target_length", "16", "--per_device_eval_batch_size", "5", *COMMON]  # fmt: skip
    run_example([*args, "--output_dir", tmp_path / "shared"])
    run_example([*args, "--no_share_cross_attention", "--output_dir", tmp_path / "plain"])
    predictions = read_lines(tmp_path / "shared" / "test_generations.txt")
    assert len(predictions) == 12 and predictions == read_lines(tmp_path / "plain" / "test_generations.txt")
    assert (
        read_json(tmp_path / "shared" / "test_results.json")["test_bleu"]
        == read_json(tmp_path / "plain" / "test_results.json")["test_bleu"]
    )


@pytest.mark.slow
def test_sigterm_ends_with_one_line_naming_the_checkpoint_and_the_lock_is_released(tiny_models, tmp_path):
    out = tmp_path / "out"
    args = [SCRIPT, "--model_name_or_path", tiny_models / "t5", "--data_dir", EN_RO, "--output_dir", out,
            "--task", "translation", "--do_train", "--save_steps", "2", "--max_steps", "100000",
            "--per_device_train_batch_size", "1", *COMMON[:4]]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, **TEST_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while not (out / "checkpoint-4" / "trainer_state.json").exists() and time.time() < deadline:
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert (out / "run.lock").exists() or not (out / "checkpoint-2").exists()
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted (SIGTERM); last complete checkpoint: ") and "rerun the same command" in last
    assert "finetune_trainer.py" in last and not (out / "run.lock").exists()
