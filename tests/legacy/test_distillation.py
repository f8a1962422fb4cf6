"""make_student.py and distillation.py: layer copying, the loss terms, and end-to-end runs on tiny models."""

import json
import sys
import warnings

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

from helpers import (
    FIXTURES,
    assert_usage_error,
    import_legacy,
    read_json,
    read_lines,
    run_example,
    train_losses,
)

make_student = import_legacy("make_student")
distillation = import_legacy("distillation")
legacy_utils = import_legacy("utils")

EN_RO = FIXTURES / "legacy" / "wmt_en_ro"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
SCRIPT = "examples/legacy/seq2seq/distillation.py"


def tiny_teacher(tiny_models, kind: str, layers: int, init_std: float | None = None, d_model: int = 16):
    """A random `layers`-deep teacher with the tiny model's config and vocabulary (d_model shrunk for speed)."""
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(tiny_models / kind)
    if kind == "t5":
        config.update({"num_layers": layers, "num_decoder_layers": layers, "d_model": d_model, "d_kv": 8, "d_ff": 32})
    else:
        config.update(
            {"encoder_layers": layers, "decoder_layers": layers, "d_model": d_model,
             "encoder_ffn_dim": 32, "decoder_ffn_dim": 32}
        )  # fmt: skip
    if init_std is not None:
        config.init_std = init_std
    return AutoModelForSeq2SeqLM.from_config(config).eval()


def stacks(model):
    return make_student.layer_stacks(model)


def assert_same_tensors(a: torch.nn.Module, b: torch.nn.Module):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


# ----------------------------------------------------------------------------- make_student
@pytest.mark.parametrize(("kind", "n_teacher"), [("bart", 12), ("pegasus", 16), ("marian", 6), ("t5", 6)])
def test_every_table_entry_copies_the_listed_teacher_layers(tiny_models, kind, n_teacher):
    teacher = tiny_teacher(tiny_models, kind, n_teacher)
    teacher_enc, teacher_dec = stacks(teacher)
    for n_student, expected in make_student.LAYERS_TO_COPY[n_teacher].items():
        student, e_layers, d_layers = make_student.create_student_by_copying_alternating_layers(
            teacher, save_path=None, e=n_student, d=n_student
        )
        assert e_layers == d_layers == expected
        student_enc, student_dec = stacks(student)
        assert len(student_enc) == len(student_dec) == n_student
        for k, teacher_layer in enumerate(expected):
            assert_same_tensors(student_enc[k], teacher_enc[teacher_layer])
            assert_same_tensors(student_dec[k], teacher_dec[teacher_layer])
        # Everything outside the layer stacks (embeddings, positions, norms, LM head, final_logits_bias).
        teacher_state = teacher.state_dict()
        for key, value in student.state_dict().items():
            if ".layers." not in key and ".block." not in key:
                assert torch.equal(value, teacher_state[key]), key
        assert torch.equal(student.get_output_embeddings().weight, teacher.get_output_embeddings().weight)
        assert student.config.init_metadata == {
            "teacher_type": kind,
            "copied_encoder_layers": expected,
            "copied_decoder_layers": expected,
        }


@pytest.mark.parametrize("kind", ["bart", "t5"])
def test_full_depth_student_gives_the_teachers_logits(tiny_models, kind):
    teacher = tiny_teacher(tiny_models, kind, 12 if kind == "bart" else 6, init_std=0.2)
    student, _, _ = make_student.create_student_by_copying_alternating_layers(
        teacher, save_path=None, e=None, d=12 if kind == "bart" else 6
    )
    student.eval()
    inputs = torch.randint(4, 200, (3, 11))
    decoder_inputs = torch.randint(4, 200, (3, 7))
    with torch.no_grad():
        expected = teacher(input_ids=inputs, decoder_input_ids=decoder_inputs).logits
        actual = student(input_ids=inputs, decoder_input_ids=decoder_inputs).logits
    assert torch.equal(actual, expected)


def test_asymmetric_student_and_cli_saves_tokenizer(tiny_models, tmp_path):
    teacher_dir = tmp_path / "teacher"
    tiny_teacher(tiny_models, "bart", 12).save_pretrained(teacher_dir)
    AutoTokenizer.from_pretrained(tiny_models / "bart").save_pretrained(teacher_dir)
    result = run_example(
        ["examples/legacy/seq2seq/make_student.py", teacher_dir, "--save_path", tmp_path / "student", "-d", "3",
         "--dropout=0.0"]
    )  # fmt: skip
    assert "decoder layers copied [0, 6, 11]" in result.stdout
    student = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "student")
    assert student.config.encoder_layers == 12 and student.config.decoder_layers == 3
    assert student.config.init_metadata["copied_decoder_layers"] == [0, 6, 11]
    assert AutoTokenizer.from_pretrained(tmp_path / "student").vocab_size > 0
    deeper = run_example(
        ["examples/legacy/seq2seq/make_student.py", teacher_dir, "--save_path", tmp_path / "deep", "-e", "13"],
        expect_success=False,
    )
    assert_usage_error(deeper, "-e 13: the student needs 1..12 layers", output_dir=tmp_path / "deep")


def test_student_errors_and_fallback(tiny_models):
    teacher = tiny_teacher(tiny_models, "bart", 12)
    create = make_student.create_student_by_copying_alternating_layers
    with pytest.raises(make_student.UsageError, match="both were left out"):
        create(teacher, save_path=None)
    with pytest.raises(make_student.UsageError, match="lists 2 layers but the student stack has 3"):
        create(teacher, save_path=None, e=3, e_layers_to_copy=[0, 1])
    with pytest.raises(make_student.UsageError, match="numbered 0..11"):
        create(teacher, save_path=None, d=2, d_layers_to_copy=[0, 12])
    with pytest.raises(make_student.UsageError, match="listed twice"):
        create(teacher, save_path=None, d=2, d_layers_to_copy=[3, 3])
    encoder_only = AutoModel.from_pretrained(tiny_models / "bert")
    with pytest.raises(make_student.UsageError, match="not an encoder-decoder"):
        create(encoder_only, save_path=None, e=1)
    with pytest.warns(UserWarning, match="copying the first 5 layers"):
        _, e_layers, _ = create(teacher, save_path=None, e=5)
    assert e_layers == [0, 1, 2, 3, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # equal depth: the identity, no warning
        assert make_student.pick_layers_to_copy(7, 7) == list(range(7))
    assert make_student.get_layers_to_supervise(3, 12) == [3, 7, 11]
    assert make_student.get_layers_to_supervise(1, 6) == [5]
    assert make_student.get_layers_to_supervise(6, 6) == list(range(6))
    with pytest.raises(make_student.UsageError, match="cannot be supervised"):
        make_student.get_layers_to_supervise(7, 6)
    with pytest.raises(make_student.UsageError, match="no layer map for a 12-layer teacher and a 5-layer"):
        make_student.get_layers_to_supervise(5, 12)


# ----------------------------------------------------------------------------- loss terms
def test_kd_loss_closed_form_zero_for_equal_logits_and_blind_to_padding():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 30), torch.randn(2, 5, 30)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    T = 2.0
    loss = distillation.kd_loss(student, teacher, mask, T)
    p_t = torch.softmax(teacher[mask] / T, -1)
    by_hand = T**2 * (p_t * (p_t.log() - torch.log_softmax(student[mask] / T, -1))).sum(-1).mean()
    assert torch.allclose(loss, by_hand, atol=1e-6) and loss > 0
    assert distillation.kd_loss(teacher, teacher, mask, T).abs() < 1e-6
    # The mean is over real positions of the batch (8 rows here), not over sequences.
    noisy = student.clone()
    noisy[0, 3:] += 100 * torch.randn(2, 30)  # change only the padded positions
    assert torch.equal(distillation.kd_loss(noisy, teacher, mask, T), loss)


def test_label_loss_matches_cross_entropy_and_smoothing_formula():
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 4, 10), torch.tensor([[1, 2, 3, -100], [4, 5, -100, -100]])
    ce = torch.nn.functional.cross_entropy(logits.view(-1, 10), labels.view(-1), ignore_index=-100)
    assert torch.allclose(distillation.label_loss(logits, labels), ce)
    eps, lprobs, mask = 0.1, torch.log_softmax(logits, -1), labels != -100
    nll = -lprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected = ((1 - eps) * nll - eps / 10 * lprobs.sum(-1))[mask].mean()
    assert torch.allclose(distillation.label_loss(logits, labels, eps), expected)


def test_hidden_mse_convention_padding_and_normalization():
    torch.manual_seed(0)
    student = [torch.randn(2, 4, 8) for _ in range(3)]  # embeddings + 2 layers
    teacher = [torch.randn(2, 4, 8) for _ in range(7)]
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert distillation.hidden_mse(teacher, teacher, [0, 1, 2], mask) == 0
    # Upstream's pairing: student state i (i = 0 is the embedding output) with teacher state matches[i].
    loss = distillation.hidden_mse(student, teacher, [3, 6], mask)
    keep = mask.bool()
    by_hand = sum(((student[i] - teacher[m])[keep] ** 2).mean() for i, m in enumerate([3, 6]))
    assert torch.allclose(loss, by_hand)
    padded = [s.clone() for s in student]
    padded[1][0, 2:] = 1e3
    assert torch.equal(distillation.hidden_mse(padded, teacher, [3, 6], mask), loss)
    scaled = [5 * t for t in teacher]
    normalized = distillation.hidden_mse(student, teacher, [3, 6], mask, normalize=True)
    assert torch.allclose(distillation.hidden_mse(student, scaled, [3, 6], mask, normalize=True), normalized)


def distillation_trainer(tiny_models, tmp_path, teacher, student, **alphas):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models / "bart")
    args = distillation.LegacySeq2SeqTrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    distill_args = distillation.DistillationArguments(**alphas)
    trainer = distillation.DistillationTrainer(
        model=student,
        args=args,
        processing_class=tokenizer,
        teacher=teacher,
        distill_args=distill_args,
        hidden_matches=distillation.hidden_state_matches(student, teacher, False),
    )
    dataset = legacy_utils.Seq2SeqDataset(tokenizer, EN_RO, 32, 16, type_path="val")
    collator = legacy_utils.Seq2SeqDataCollator(tokenizer, 32, 16, model=student, return_ids=False)
    return trainer, collator, [dataset[i] for i in range(4)]


def test_blend_each_alpha_switches_its_term_and_padding_changes_nothing(tiny_models, tmp_path):
    teacher = tiny_teacher(tiny_models, "bart", 12, init_std=0.2)
    student, _, _ = make_student.create_student_by_copying_alternating_layers(teacher, save_path=None, e=3, d=3)
    student.train()
    trainer, collator, items = distillation_trainer(tiny_models, tmp_path, teacher, student)
    batch = collator(items)
    with torch.no_grad():
        terms, _ = trainer.distillation_losses(student, batch)
    assert all(terms[name] > 0 for name in ("ce_loss", "mlm_loss"))
    weights = {"alpha_ce": 0.0, "alpha_mlm": 0.0, "alpha_hid": 0.0, "alpha_encoder_loss": 0.0}
    term_of = {"alpha_ce": "ce_loss", "alpha_mlm": "mlm_loss", "alpha_encoder_loss": "enc_mse_loss"}
    for alpha, term in term_of.items():
        trainer.distill_args = distillation.DistillationArguments(**{**weights, alpha: 1.5})
        with torch.no_grad():
            assert torch.allclose(trainer.compute_loss(student, batch), 1.5 * terms[term], atol=1e-6), alpha
    trainer.distill_args = distillation.DistillationArguments(**{**weights, "alpha_hid": 2.0})
    with torch.no_grad():
        hidden_terms, _ = trainer.distillation_losses(student, batch)
        total = trainer.compute_loss(student, batch)
    assert hidden_terms["hid_loss_enc"] > 0 and hidden_terms["hid_loss_dec"] > 0
    assert torch.allclose(total, 2.0 * (hidden_terms["hid_loss_enc"] + hidden_terms["hid_loss_dec"]), atol=1e-6)
    # More padding on both sides of the same examples: every term stays the same.
    trainer.distill_args = distillation.DistillationArguments(alpha_hid=1.0)
    student.eval()  # no dropout, so the two forwards are comparable (the tiny configs have none anyway)
    with torch.no_grad():
        short, _ = trainer.distillation_losses(student, collator(items))
        fill = {"input_ids": 1, "attention_mask": 0, "labels": -100, "decoder_input_ids": 1}  # 1 = BART's pad
        long_batch = {
            key: torch.cat([value, torch.full((value.shape[0], 7), fill[key], dtype=value.dtype)], dim=1)
            for key, value in batch.items()
        }
        long, _ = trainer.distillation_losses(student, long_batch)
    for name in ("ce_loss", "mlm_loss", "hid_loss_dec"):
        assert torch.allclose(short[name], long[name], atol=1e-5), name


def test_teacher_gets_no_gradient_and_stays_in_eval(tiny_models, tmp_path):
    teacher = tiny_teacher(tiny_models, "bart", 6, init_std=0.2)
    student, _, _ = make_student.create_student_by_copying_alternating_layers(teacher, save_path=None, e=6, d=2)
    student.train()
    trainer, collator, items = distillation_trainer(tiny_models, tmp_path, teacher, student, alpha_hid=1.0)
    trainer.compute_loss(student, collator(items)).backward()
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert any(p.grad is not None for p in student.parameters())


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def teacher_dir(tiny_models, tmp_path_factory):
    """A 12-layer tiny BART teacher with large initial weights (so its outputs are far from uniform)."""
    folder = tmp_path_factory.mktemp("teacher12")
    tiny_teacher(tiny_models, "bart", 12, init_std=0.3, d_model=32).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_models / "bart").save_pretrained(folder)
    return folder


def mean_kl_to_teacher(student_dir, teacher_dir, data_dir) -> float:
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    teacher = AutoModelForSeq2SeqLM.from_pretrained(teacher_dir).eval()
    student = AutoModelForSeq2SeqLM.from_pretrained(student_dir).eval()
    dataset = legacy_utils.Seq2SeqDataset(tokenizer, data_dir, 48, 32, type_path="val")
    batch = legacy_utils.Seq2SeqDataCollator(tokenizer, 48, 32, model=student, return_ids=False)(
        [dataset[i] for i in range(len(dataset))]
    )
    with torch.no_grad():
        s = student(**{k: v for k, v in batch.items() if k != "labels"}).logits
        t = teacher(**{k: v for k, v in batch.items() if k != "labels"}).logits
    return float(distillation.kd_loss(s, t, batch["labels"] != -100, 2.0))


def test_kd_trains_student_closer_to_teacher(teacher_dir, tmp_path):
    out = tmp_path / "kd"
    result = run_example(
        [SCRIPT, "--teacher", teacher_dir, "--student_encoder_layers", "12", "--student_decoder_layers", "3",
         "--alpha_hid", "3.0", "--freeze_encoder", "--freeze_embeds", "--data_dir", EN_RO, "--output_dir", out,
         "--task", "translation", "--do_train", "--do_eval", "--do_predict", "--predict_with_generate",
         "--num_train_epochs", "8", "--learning_rate", "3e-3", "--per_device_train_batch_size", "4",
         "--eval_strategy", "epoch", "--save_strategy", "no", "--logging_steps", "3", "--max_source_length", "48",
         "--max_target_length", "32", "--val_max_target_length", "12", "--test_max_target_length", "12",
         "--report_to", "none"]
    )  # fmt: skip
    for name in ("student/config.json", "best_tfmr/config.json", "metrics.json", "test_generations.txt",
                 "test_results.txt", "teacher_vs_student.json", "all_results.json", "git_log.json"):  # fmt: skip
        assert (out / name).is_file(), name
    losses = train_losses(out)
    assert losses[-1] < losses[0], losses
    history = read_json(out / "trainer_state.json")["log_history"]
    assert all({"ce_loss", "mlm_loss", "hid_loss_dec"} <= set(row) for row in history if "loss" in row)
    assert len(read_json(out / "metrics.json")["val"]) == 8 + 1
    assert len(read_lines(out / "test_generations.txt")) == 20
    before = mean_kl_to_teacher(out / "student", teacher_dir, EN_RO)
    after = mean_kl_to_teacher(out, teacher_dir, EN_RO)
    assert after < 0.8 * before, (before, after)
    rows = read_json(out / "teacher_vs_student.json")
    assert [row["model"] for row in rows] == ["teacher", "student"]
    assert rows[1]["params"] < rows[0]["params"] and all(row["samples_per_second"] > 0 for row in rows)
    assert "| teacher |" in result.stdout and "| student |" in result.stdout


def test_no_teacher_shrink_and_fine_tune_on_json_files(teacher_dir, tmp_path):
    out = tmp_path / "sft"
    run_example(
        [SCRIPT, "--teacher", teacher_dir, "--no_teacher", "--student_encoder_layers", "3",
         "--student_decoder_layers", "1", "--train_file", XSUM, "--validation_file", XSUM, "--test_file", XSUM,
         "--source_column", "document", "--target_column", "summary", "--output_dir", out,
         "--do_train", "--do_predict", "--predict_with_generate", "--num_train_epochs", "6",
         "--learning_rate", "3e-3", "--per_device_train_batch_size", "5", "--logging_steps", "2",
         "--save_strategy", "no", "--max_source_length", "64", "--max_target_length", "32",
         "--test_max_target_length", "12", "--no_compare_with_teacher", "--rouge_backend", "official",
         "--report_to", "none"]
    )  # fmt: skip
    losses = train_losses(out)
    assert losses[-1] < losses[0], losses
    student = AutoModelForSeq2SeqLM.from_pretrained(out / "student")
    assert (student.config.encoder_layers, student.config.decoder_layers) == (3, 1)
    assert student.config.init_metadata["copied_encoder_layers"] == [0, 6, 11]
    n_records = len([line for line in read_lines(XSUM) if line.strip()])
    assert len(read_lines(out / "data" / "train.source")) == n_records
    assert json.loads(read_lines(XSUM)[0])["summary"] == read_lines(out / "data" / "train.target")[0]
    results = read_json(out / "all_results.json")
    assert results["train_n_objs"] == results["test_n_objs"] == n_records and "test_rouge2" in results
    # --rouge_backend reaches distillation's scoring: ROUGE-1.5.5 with its interval and signature.
    assert results["test_rouge2_low"] <= results["test_rouge2"] <= results["test_rouge2_high"]
    assert results["test_rouge_signature"].startswith("rouge:official-1.5.5|")
    assert not (out / "teacher_vs_student.json").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--alpha_ce", "0", "--alpha_mlm", "0"], "every loss weight is 0"),
        (["--train_file", "missing.jsonl"], "pass either --data_dir or --train_file"),
        (["--temperature", "0"], "--temperature must be > 0"),
    ],
)
def test_distillation_usage_errors(teacher_dir, tmp_path, extra, expected):
    args = [SCRIPT, "--teacher", teacher_dir, "--data_dir", EN_RO, "--output_dir", tmp_path / "out", "--do_train",
            "--report_to", "none", *extra]  # fmt: skip
    assert_usage_error(run_example(args, expect_success=False), expected, output_dir=tmp_path / "out")


def test_pseudo_labels_replace_train_and_val_targets_only(teacher_dir, tmp_path):
    save_dir = tmp_path / "pl"
    run_example(
        ["examples/legacy/seq2seq/pseudo_label.py", teacher_dir, EN_RO, save_dir, "--bs", "4", "--max_length=12"]
    )
    for split in ("train", "val", "test"):
        assert read_lines(save_dir / f"{split}.source") == read_lines(EN_RO / f"{split}.source")
    assert read_lines(save_dir / "test.target") == read_lines(EN_RO / "test.target")
    for split in ("train", "val"):
        labels = read_lines(save_dir / f"{split}.target")
        assert len(labels) == len(read_lines(EN_RO / f"{split}.source")) and labels != read_lines(
            EN_RO / f"{split}.target"
        )
    info = read_json(save_dir / "pseudo_labels.json")
    assert info["splits"] == {"test": "copied", "train": "pseudo-labelled", "val": "pseudo-labelled"}
    assert info["finished"] is True

    # A finished SAVE_DIR is refused without --overwrite; an interrupted one (same command) is resumed.
    command = ["examples/legacy/seq2seq/pseudo_label.py", teacher_dir, EN_RO, save_dir, "--bs", "4", "--max_length=12"]
    train_labels = (save_dir / "train.target").read_bytes()
    refused = run_example(command, expect_success=False)
    assert_usage_error(refused, "already holds a finished pseudo-labelling")
    (save_dir / "pseudo_labels.json").write_text(json.dumps({**info, "finished": False}), encoding="utf-8")
    val_labels = (save_dir / "val.target").read_bytes()
    (save_dir / "val.target").unlink()
    run_example(command)
    assert (save_dir / "val.target").read_bytes() == val_labels
    assert (save_dir / "train.target").read_bytes() == train_labels and read_json(save_dir / "pseudo_labels.json")[
        "finished"
    ]


@pytest.mark.slow
def test_one_command_recipe_runs_offline(tmp_path):
    """distil_recipe.sh as the README gives it (shorter): teacher -> 12-3 student -> KD -> table."""
    result = run_example(
        ["examples/legacy/seq2seq/distil_recipe.sh", EN_RO, tmp_path / "recipe"],
        launcher=["bash"],
        env={"PYTHON": sys.executable, "TEACHER_EPOCHS": "2", "EPOCHS": "1", "STUDENT_LAYERS": "3"},
    )
    rows = read_json(tmp_path / "recipe" / "student_12_3" / "teacher_vs_student.json")
    assert [row["model"] for row in rows] == ["teacher", "student"] and "bleu" in rows[1]
    assert AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "recipe" / "teacher").config.decoder_layers == 12
    assert "| student |" in result.stdout
