"""s2s-ft scripts end to end, as a user runs them: train each mode on a copy task and check it learned, decode
and score through decode_seq2seq.py, resume after a kill, QG data preparation, and one-line errors."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import (
    FIXTURES,
    REPO_ROOT,
    TEST_ENV,
    assert_usage_error,
    read_json,
    read_lines,
    run_example,
    train_losses,
)

sys.path.insert(0, str(REPO_ROOT / "examples" / "pytorch" / "s2s-ft"))

from s2s_ft.data import detokenize, read_records, special_ids, tokenize_texts  # noqa: E402
from s2s_ft.decoding import DecodeOptions, decode  # noqa: E402
from s2s_ft.modeling import S2SFTForSeq2Seq, load_s2s_model  # noqa: E402

SCRIPTS = REPO_ROOT / "examples" / "pytorch" / "s2s-ft"
COPY = FIXTURES / "s2s_ft" / "copy"


def train_args(tiny_models, output_dir, mode: str, **overrides) -> list:
    options = {
        "--model_type": "bert",
        "--model_name_or_path": tiny_models / "bert",
        "--train_file": COPY / "train.jsonl",
        "--finetuning_mode": mode,
        "--max_source_seq_length": 16,
        "--max_target_seq_length": 12,
        "--per_device_train_batch_size": 32,
        "--learning_rate": 5e-3,
        "--warmup_steps": 30,
        "--max_steps": 300,
        "--logging_steps": 50,
        "--save_steps": 1000,
        "--hidden_dropout_prob": 0,
        "--attention_probs_dropout_prob": 0,
        "--report_to": "none",
        "--disable_tqdm": "true",
        "--output_dir": output_dir,
        **overrides,
    }
    if mode == "masked":
        options.setdefault("--target_mask_prob", 0.7)  # masked mode learns only from the corrupted slots
    args = [SCRIPTS / "run_seq2seq.py"]
    for flag, value in options.items():
        if value is not None:
            args += [flag, value]
    return args


def copy_exact_match(model, tokenizer) -> float:
    """Share of held-out sentences copied exactly (compared as word pieces: the tokenizer lower-cases)."""
    records = read_records("test", str(COPY / "test.jsonl"), "src", "tgt")
    sources = tokenize_texts(tokenizer, [source for source, _ in records])
    results = decode(
        model,
        sources,
        special_ids(tokenizer),
        DecodeOptions(max_tgt_length=12, pos_shift=model.config.s2s_ft_mode == "causal"),
        batch_size=20,
    )
    outputs = [detokenize(tokenizer, result["tokens"]) for result in results]
    hits = [
        tokenizer.tokenize(output) == tokenizer.tokenize(target)
        for output, (_, target) in zip(outputs, records, strict=True)
    ]
    return sum(hits) / len(hits)


def train_and_check_learning(tiny_models, output_dir, mode: str, threshold: float) -> None:
    """Train `mode` for 300 steps; the held-out copy exact match must reach `threshold`, and be 0 untrained."""
    from transformers import AutoTokenizer

    run_example(train_args(tiny_models, output_dir, mode))
    losses = train_losses(output_dir)
    assert len(losses) == 6 and losses[-1] < losses[0] / 4, losses
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model = S2SFTForSeq2Seq.from_pretrained(output_dir).eval()
    assert model.config.s2s_ft_mode == mode and model.config.max_position_embeddings == 512
    trained_match = copy_exact_match(model, tokenizer)

    torch.manual_seed(0)
    untrained, _ = load_s2s_model("bert", str(tiny_models / "bert"))
    untrained.config.update({"source_type_id": 0, "target_type_id": 1, "s2s_ft_mode": mode})
    assert copy_exact_match(untrained.eval(), tokenizer) == 0.0
    assert trained_match >= threshold, (mode, trained_match)


@pytest.mark.slow
def test_causal_mode_learns_to_copy_held_out_sentences(tiny_models, tmp_path):
    train_and_check_learning(tiny_models, tmp_path, "causal", 0.5)


@pytest.mark.slow
def test_masked_mode_learns_to_copy_held_out_sentences(tiny_models, tmp_path):
    train_and_check_learning(tiny_models, tmp_path, "masked", 0.25)


@pytest.mark.slow
def test_pseudo_masked_mode_learns_then_decodes_and_scores_through_the_script(tiny_models, tmp_path):
    output_dir = tmp_path / "model"
    train_and_check_learning(tiny_models, output_dir, "pseudo_masked", 0.4)
    prediction_file = tmp_path / "test.pred"
    args = [
        SCRIPTS / "decode_seq2seq.py",
        "--model_path",
        output_dir,
        "--input_file",
        COPY / "test.jsonl",
        "--output_file",
        prediction_file,
        "--reference_file",
        COPY / "test.jsonl",
        "--max_seq_length",
        28,
        "--max_tgt_length",
        12,
        "--beam_size",
        3,
        "--length_penalty",
        0.6,
        "--forbid_duplicate_ngrams",
        "--forbid_ignore_word",
        ".",
        "--batch_size",
        7,
    ]
    run_example(args)
    predictions = read_lines(prediction_file)
    references = [json.loads(line)["tgt"] for line in read_lines(COPY / "test.jsonl")]
    assert len(predictions) == len(references) == 40
    scores = read_json(f"{prediction_file}.scores.json")
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for key in ("rouge1", "rouge2", "rougeL"):
        expected = sum(scorer.score(r, p)[key].fmeasure for p, r in zip(predictions, references, strict=True))
        assert scores[key] == pytest.approx(round(100 * expected / len(predictions), 4), abs=1e-4)
    assert scores["bleu"] == pytest.approx(round(BLEU().corpus_score(predictions, [references]).score, 4), abs=1e-4)
    assert scores["rouge1"] > 50, "the copy model decodes well through the script too"
    # Outputs are in input order despite length sorting: most copy their own input line.
    hits = sum(p.replace(" ", "") == r.lower().replace(" ", "") for p, r in zip(predictions, references, strict=True))
    assert hits >= 10


def model_weights(folder) -> dict:
    return load_file(os.path.join(folder, "model.safetensors"))


def test_resume_after_a_kill_gives_the_same_weights(tiny_models, tmp_path):
    """Noise (target_mask_prob 0.5) and dropout on: the resumed run matches the uninterrupted one exactly."""
    args = train_args(
        tiny_models,
        tmp_path / "run",
        "pseudo_masked",
        **{"--max_steps": 12, "--save_steps": 6, "--logging_steps": 3, "--per_device_train_batch_size": 8},
        # 520 + 12 positions: the 512-row table is extended by tiling, and the resume must load the bigger one.
        **{"--max_source_seq_length": 520},
        **{"--hidden_dropout_prob": None, "--attention_probs_dropout_prob": None, "--target_mask_prob": 0.5},
    )
    run_example(args)
    straight, straight_losses = model_weights(tmp_path / "run"), train_losses(tmp_path / "run")
    assert read_json(tmp_path / "run" / "config.json")["max_position_embeddings"] == 532
    assert len(straight_losses) == 4
    # Leave the folder as a job killed (SIGKILL) while writing checkpoint-12 would have: checkpoint-6, a
    # checkpoint-12 without its optimizer state, and the dead job's run.lock.
    for path in (tmp_path / "run").iterdir():
        if path.name not in ("checkpoint-6", "checkpoint-12"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (tmp_path / "run" / "checkpoint-12" / "optimizer.pt").unlink()
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    lock = {"pid": finished.pid, "host": socket.gethostname(), "started": "2026-12-03 10:00:00"}
    (tmp_path / "run" / "run.lock").write_text(json.dumps(lock))
    result = run_example(args)  # the same command again
    logged = result.stdout + result.stderr
    assert "taking over the lock of process" in logged
    assert "checkpoint-12: incomplete (no optimizer.pt)" in logged
    assert "Resuming training from" in logged and "checkpoint-6" in logged
    assert not (tmp_path / "run" / "run.lock").exists()
    resumed = model_weights(tmp_path / "run")
    for name, tensor in straight.items():
        assert torch.allclose(tensor, resumed[name], atol=1e-6), name
    assert train_losses(tmp_path / "run")[-2:] == pytest.approx(straight_losses[-2:], abs=1e-5)


def test_roberta_on_two_processes(tiny_models, tmp_path):
    """A converted RoBERTa (one token type for both segments) trains under torchrun on two CPU processes."""
    torchrun = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", 2]
    args = train_args(
        tiny_models,
        tmp_path / "out",
        "masked",
        **{"--model_type": "roberta", "--model_name_or_path": tiny_models / "roberta"},
        **{"--max_steps": 4, "--logging_steps": 2, "--per_device_train_batch_size": 4, "--use_cpu": "true"},
    )
    result = run_example(args, launcher=torchrun)
    logged = result.stdout + result.stderr
    assert "Process rank: 0" in logged and "Process rank: 1" in logged and logged.count("world size: 2") == 2
    config = read_json(tmp_path / "out" / "config.json")
    assert config["s2s_ft_mode"] == "masked" and config["type_vocab_size"] == 1 and config["target_type_id"] == 0
    assert config["pad_token_id"] == 1 and config["max_position_embeddings"] == 512
    assert len(train_losses(tmp_path / "out")) == 2


def test_prepare_qg_data(tmp_path):
    output = tmp_path / "qg.jsonl"
    run_example(
        [SCRIPTS / "prepare_qg_data.py", FIXTURES / "s2s_ft" / "qg" / "squad_sample.json", output, "--lowercase"]
    )
    records = [json.loads(line) for line in read_lines(output)]
    assert len(records) == 6
    assert records[0] == {
        "src": "ten [SEP] the river danube flows through ten countries before it reaches the black sea. "
        "its delta is a large wetland.",
        "tgt": "how many countries does the danube flow through?",
    }
    # Running it again does not replace the output silently; --overwrite does.
    output.write_text("earlier\n")
    result = run_example(
        [SCRIPTS / "prepare_qg_data.py", FIXTURES / "s2s_ft" / "qg" / "squad_sample.json", output],
        expect_success=False,
    )
    assert_usage_error(result, "already exists; choose another path, or pass --overwrite")
    assert output.read_text() == "earlier\n"
    run_example(
        [SCRIPTS / "prepare_qg_data.py", FIXTURES / "s2s_ft" / "qg" / "squad_sample.json", output, "--overwrite"]
    )
    assert len(read_lines(output)) == 6 and os.listdir(tmp_path) == ["qg.jsonl"]  # no temporary file left
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "some text", "question": "what?"}\n')
    result = run_example([SCRIPTS / "prepare_qg_data.py", bad, tmp_path / "out.jsonl"], expect_success=False)
    assert_usage_error(result, "line 1: needs non-empty context, answer and question")


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"--finetuning_mode": "masked", "--num_max_mask_token": 0}, "--num_max_mask_token must be at least 1"),
    ],
)
def test_training_usage_errors(tiny_models, tmp_path, overrides, expected):
    args = train_args(tiny_models, tmp_path / "out", "pseudo_masked", **overrides)
    assert_usage_error(run_example(args, expect_success=False), expected, tmp_path / "out")


def test_decoding_usage_errors(tiny_models):
    args = [SCRIPTS / "decode_seq2seq.py", "--model_path", tiny_models / "bert", "--input_file", COPY / "test.jsonl"]
    result = run_example([*args, "--max_seq_length", 20, "--max_tgt_length", 18], expect_success=False)
    assert_usage_error(result, "--max_tgt_length 18 leaves no room for the source")


def test_decoding_replaces_an_earlier_output_only_with_overwrite(tiny_models, tmp_path):
    """--overwrite replaces an existing --output_file (through a temporary file: none is left behind); the refusal
    without it is in test_bad_inputs_s2s_ft.py."""
    model = tmp_path / "model"
    shutil.copytree(tiny_models / "bert", model)
    config = read_json(model / "config.json")
    config.update({"s2s_ft_mode": "pseudo_masked", "source_type_id": 0, "target_type_id": 1})
    (model / "config.json").write_text(json.dumps(config))
    output = tmp_path / "out" / "test.pred"
    output.parent.mkdir()
    output.write_text("an earlier output\n")
    args = [SCRIPTS / "decode_seq2seq.py", "--model_path", model, "--input_file", COPY / "test.jsonl"]
    run_example([*args, "--output_file", output, "--max_seq_length", 28, "--max_tgt_length", 4, "--overwrite"])
    assert len(read_lines(output)) == 40 and os.listdir(output.parent) == ["test.pred"]


def test_sigterm_stops_training_with_one_line_and_the_resume_command(tiny_models, tmp_path):
    """SIGTERM (a scheduler's pre-emption) mid-training: exit 143, no traceback, one line naming the last complete
    checkpoint and the command that resumes; the --output_dir lock is released."""
    output_dir = tmp_path / "run"
    args = train_args(tiny_models, output_dir, "pseudo_masked", **{"--max_steps": 100000, "--save_steps": 3})
    process = subprocess.Popen(
        [sys.executable, *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, **TEST_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not (output_dir / "checkpoint-3" / "trainer_state.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint-3 appeared"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("interrupted (SIGTERM); last complete checkpoint: "), last_line
    assert "checkpoint-" in last_line and "rerun the same command to resume: " in last_line
    assert "run_seq2seq.py" in last_line and str(output_dir) in last_line
    assert not (output_dir / "run.lock").exists()
