#!/usr/bin/env python
"""Distil a seq2seq teacher into a smaller student (DistilBART recipe), on the Trainer.

    # shrink and fine-tune (SFT): build a 12-6 student from the teacher, train it on the labels only
    python examples/legacy/seq2seq/distillation.py --teacher facebook/bart-large-xsum --no_teacher \\
        --student_encoder_layers 12 --student_decoder_layers 6 --data_dir xsum --output_dir dbart_sft \\
        --do_train --do_eval --do_predict --predict_with_generate --freeze_encoder --freeze_embeds

    # knowledge distillation (KD): the same, plus KL to the teacher's logits and hidden-state MSE
    python examples/legacy/seq2seq/distillation.py --teacher facebook/bart-large-xsum \\
        --student_encoder_layers 12 --student_decoder_layers 6 --alpha_hid 3.0 --data_dir xsum ...

The student is made by `make_student.py` (saved to OUTPUT_DIR/student/ before training) unless --student
names an existing one. Loss with a teacher: alpha_ce * T^2 * KL(teacher || student at temperature T) +
alpha_mlm * label cross-entropy (optionally label-smoothed) + alpha_hid * (encoder + decoder hidden-state MSE)
+ alpha_encoder_loss * encoder-output MSE; every term is a mean over real (non-pad) tokens. The teacher is
frozen, in eval mode, and runs without autograd. Data: a `.source/.target` folder (--data_dir), or JSON/CSV
files (--train_file/--validation_file/--test_file with --source_column/--target_column) that are written
into that layout first. Outputs: those of `finetune_trainer.py`, plus `student/`, and with --do_predict and
a teacher, `teacher_vs_student.json` and a printed table (parameters, generation samples/s measured side by
side, ROUGE/BLEU of both; ROUGE from --rouge_backend, its signature in the JSON).
"""

import json
import logging
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import datasets
import torch
import torch.nn.functional as F
from transformers import AutoModelForSeq2SeqLM
from transformers.modeling_outputs import BaseModelOutput

import run_eval
from finetune_trainer import (
    DataTrainingArguments,
    check_common_args,
    load_splits,
    needed_splits,
    parse_args,
    prepare_model,
    prepare_run,
    run_stages,
    setup_logging,
    trainer_kwargs,
)
from make_student import create_student_by_copying_alternating_layers, get_layers_to_supervise, pick_layers_to_copy
from seq2seq_checks import atomic_write, check_data_file, check_different, write_json_atomically
from seq2seq_trainer import (
    LegacySeq2SeqTrainer,
    LegacySeq2SeqTrainingArguments,
    check_data_dir,
    check_output_dir,
    count_parameters,
    write_run_info,
)
from utils import UsageError, check_seq2seq_model, load_seq2seq_model, load_tokenizer, run_cli

logger = logging.getLogger(__name__)


@dataclass
class DistillationModelArguments:
    teacher: str = field(metadata={"help": "Teacher model folder or Hub id (also the tokenizer)."})
    student: str | None = field(
        default=None, metadata={"help": "An existing student to train; default: make one from the teacher."}
    )
    student_encoder_layers: int | None = field(
        default=None, metadata={"help": "Encoder depth of the student made from the teacher (default: the teacher's)."}
    )
    student_decoder_layers: int | None = field(
        default=None, metadata={"help": "Decoder depth of the student made from the teacher (default: the teacher's)."}
    )
    copy_first_teacher_layers: bool = field(
        default=False, metadata={"help": "Make the student from the first N teacher layers, not the spread ones."}
    )
    no_teacher: bool = field(
        default=False,
        metadata={"help": "Shrink and fine-tune: train on the labels only (the teacher only seeds the student)."},
    )
    freeze_encoder: bool = field(default=False, metadata={"help": "Train the student's decoder only."})
    freeze_embeds: bool = field(default=False, metadata={"help": "Keep token and position embeddings fixed."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})


@dataclass
class DistillationArguments:
    alpha_ce: float = field(default=0.8, metadata={"help": "Weight of the KL term to the teacher's logits."})
    alpha_mlm: float = field(default=0.2, metadata={"help": "Weight of the label cross-entropy."})
    alpha_hid: float = field(default=0.0, metadata={"help": "Weight of the hidden-state MSE (encoder + decoder)."})
    alpha_encoder_loss: float = field(
        default=0.0, metadata={"help": "Weight of the encoder-output MSE (2020 recipe; only with a shrunk encoder)."}
    )
    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature T of the KL term (x T^2)."})
    normalize_hidden: bool = field(
        default=False, metadata={"help": "Standardise each hidden-state block before the MSE (Pegasus advice)."}
    )
    supervise_forward: bool = field(
        default=False,
        metadata={"help": "Match student layers to LAYERS_TO_SUPERVISE teacher layers, not to the copied ones."},
    )
    length_penalty: float = field(default=-1, metadata={"help": "Student generation length penalty; -1 = keep."})
    compare_with_teacher: bool = field(
        default=True,
        metadata={"help": "With --do_predict: generate the test set with teacher and student, print a table."},
    )


@dataclass
class DistillationDataArguments(DataTrainingArguments):
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder with {train,val,test}.{source,target}; or use --train_file etc."}
    )
    train_file: str | None = field(default=None, metadata={"help": "Training data, .json/.jsonl/.csv."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation data, .json/.jsonl/.csv."})
    test_file: str | None = field(default=None, metadata={"help": "Test data, .json/.jsonl/.csv."})
    source_column: str = field(
        default="document", metadata={"help": "Source column of the files; `translation.en` reads a nested key."}
    )
    target_column: str = field(
        default="summary", metadata={"help": "Target column of the files; `translation.ro` reads a nested key."}
    )


# ----------------------------------------------------------------------------- losses
def label_loss(logits: torch.Tensor, labels: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
    """Cross-entropy over real labels (-100 = padding), averaged per token; with `epsilon`, fairseq-style label
    smoothing `(1 - eps) * NLL + eps/V * sum_v(-log p_v)`, also averaged per token (upstream summed it, so its
    weight grew with batch length)."""
    lprobs = F.log_softmax(logits.float(), dim=-1)
    mask = labels != -100
    nll = -lprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    if epsilon:
        nll = (1 - epsilon) * nll + epsilon * -lprobs.mean(dim=-1)
    return nll[mask].mean()


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, temperature: float):
    """T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the positions where `mask` is true (real target
    tokens of the whole batch; padding never enters the softmax)."""
    student = F.log_softmax(student_logits[mask].float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits[mask].float() / temperature, dim=-1)
    return temperature**2 * F.kl_div(student, teacher, reduction="batchmean", log_target=True)


def standardize(states: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the whole (batch, length, dim) block (padding included, as upstream)."""
    return (states - states.mean()) / states.std(unbiased=False).clamp(min=1e-6)


def hidden_mse(student_states, teacher_states, matches: list[int], mask: torch.Tensor, normalize: bool = False):
    """Sum over i of the masked MSE between student hidden state i and teacher hidden state matches[i].

    Hidden-state tuples are as transformers returns them (index 0 = embeddings, k = input of layer k), and
    the pairing is upstream's `H_s[i] <-> H_t[m[i]]` (student index i, not i + 1; see the README).
    """
    mask = mask.unsqueeze(-1).to(student_states[0].dtype)
    denominator = mask.sum() * student_states[0].shape[-1]
    total = student_states[0].new_zeros(())
    for i, m in enumerate(matches):
        s, t = student_states[i].float(), teacher_states[m].float()
        if normalize:
            s, t = standardize(s), standardize(t)
        total = total + (((s - t) ** 2) * mask).sum() / denominator
    return total


def encoder_output_mse(student_out: torch.Tensor, teacher_out: torch.Tensor, attention_mask: torch.Tensor):
    """MSE of the final encoder outputs over all hidden units of real source tokens."""
    keep = attention_mask.bool()
    return F.mse_loss(student_out[keep].float(), teacher_out[keep].float())


class DistillationTrainer(LegacySeq2SeqTrainer):
    """LegacySeq2SeqTrainer whose training loss blends label CE, KD and hidden-state terms (teacher given).

    Evaluation reports the student's label loss, so val_loss is comparable with finetune_trainer.py runs.
    The components are logged beside `loss` as ce_loss (KD), mlm_loss (labels), hid_loss_enc, hid_loss_dec
    and enc_mse_loss, averaged over the logging interval (this process).
    """

    def __init__(self, *args, teacher=None, distill_args: DistillationArguments, hidden_matches=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.distill_args, self.hidden_matches = distill_args, hidden_matches or {}
        self.teacher = teacher
        if teacher is not None:
            teacher.to(self.args.device).eval()
            teacher.requires_grad_(False)
            # Our loss is a per-batch token mean: let the Trainer scale it for gradient accumulation.
            self.model_accepts_loss_kwargs = False
        self.loss_sums: dict[str, float] = defaultdict(float)
        self.loss_steps = 0
        self._reuse_encoder: bool | None = None

    def reuse_student_encoder(self, model) -> bool:
        """The teacher's decoder can read the student's encoder output when that encoder is the teacher's whole
        encoder (copied layer for layer, per config.init_metadata) and frozen: the two are then identical, and
        the teacher's encoder is not run. Otherwise the teacher runs its own encoder (upstream always fed it
        the student's, an approximation once the encoders differ)."""
        if self._reuse_encoder is None:
            n_teacher = len(self.teacher_encoder_layers())
            copied = (getattr(model.config, "init_metadata", None) or {}).get("copied_encoder_layers")
            frozen = not any(p.requires_grad for p in model.get_encoder().parameters())
            self._reuse_encoder = copied == list(range(n_teacher)) and frozen
        return self._reuse_encoder

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.teacher is None or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        losses, student_out = self.distillation_losses(model, inputs)
        a = self.distill_args
        loss = (
            a.alpha_ce * losses["ce_loss"]
            + a.alpha_mlm * losses["mlm_loss"]
            + a.alpha_hid * (losses["hid_loss_enc"] + losses["hid_loss_dec"])
            + a.alpha_encoder_loss * losses["enc_mse_loss"]
        )
        for name, value in losses.items():
            self.loss_sums[name] += float(value.detach())
        self.loss_steps += 1
        return (loss, student_out) if return_outputs else loss

    def distillation_losses(self, model, inputs) -> tuple[dict[str, torch.Tensor], object]:
        a = self.distill_args
        labels, attention_mask = inputs["labels"], inputs["attention_mask"]
        target_mask = labels != -100  # positions with a real label: the KD and decoder-hidden positions
        want_hidden = a.alpha_hid > 0
        student_out = model(
            input_ids=inputs["input_ids"],
            attention_mask=attention_mask,
            decoder_input_ids=inputs["decoder_input_ids"],
            output_hidden_states=want_hidden,
            use_cache=False,
        )
        zero = student_out.logits.new_zeros(())
        losses = {"mlm_loss": label_loss(student_out.logits, labels, self.args.label_smoothing_factor)}
        encoder_shrunk = len(self.hidden_matches["encoder"]) < len(self.teacher_encoder_layers())
        with torch.no_grad():
            if self.reuse_student_encoder(model):
                teacher_encoder_states, teacher_encoder_out = None, student_out.encoder_last_hidden_state
            else:
                teacher_encoder = self.teacher.get_encoder()(
                    input_ids=inputs["input_ids"], attention_mask=attention_mask, output_hidden_states=want_hidden
                )
                teacher_encoder_states, teacher_encoder_out = teacher_encoder.hidden_states, teacher_encoder[0]
            teacher_out = self.teacher(
                attention_mask=attention_mask,
                encoder_outputs=BaseModelOutput(last_hidden_state=teacher_encoder_out),
                decoder_input_ids=inputs["decoder_input_ids"],
                output_hidden_states=want_hidden,
                use_cache=False,
            )
        losses["ce_loss"] = kd_loss(student_out.logits, teacher_out.logits, target_mask, a.temperature)
        losses["hid_loss_dec"] = losses["hid_loss_enc"] = losses["enc_mse_loss"] = zero
        if want_hidden:
            losses["hid_loss_dec"] = hidden_mse(
                student_out.decoder_hidden_states,
                teacher_out.decoder_hidden_states,
                self.hidden_matches["decoder"],
                target_mask,
                a.normalize_hidden,
            )
            if encoder_shrunk and teacher_encoder_states is not None:
                losses["hid_loss_enc"] = hidden_mse(
                    student_out.encoder_hidden_states,
                    teacher_encoder_states,
                    self.hidden_matches["encoder"],
                    attention_mask,
                    a.normalize_hidden,
                )
        if encoder_shrunk:  # cheap, so logged even when alpha_encoder_loss is 0
            losses["enc_mse_loss"] = encoder_output_mse(
                student_out.encoder_last_hidden_state, teacher_encoder_out, attention_mask
            )
        return losses, student_out

    def teacher_encoder_layers(self):
        encoder = self.teacher.get_encoder()
        return getattr(encoder, "layers", None) or encoder.block

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self.loss_steps:
            logs.update({name: round(total / self.loss_steps, 4) for name, total in self.loss_sums.items()})
            self.loss_sums, self.loss_steps = defaultdict(float), 0
        super().log(logs, *args, **kwargs)


# ----------------------------------------------------------------------------- set-up
def column_value(record: dict, column: str):
    value = record
    for key in column.split("."):
        value = value[key]
    return value


def read_pairs(path: str, data_args: DistillationDataArguments) -> list[tuple[str, str]]:
    """The (source, target) texts of a .json/.jsonl/.csv file; raise UsageError naming the file and row of a
    missing or null field."""
    try:
        dataset = datasets.load_dataset(
            "csv" if path.lower().endswith(".csv") else "json", data_files=path, split="train"
        )
    except Exception as error:  # datasets raises many types (DatasetGenerationError, ArrowInvalid, ...)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"{path} cannot be read as a dataset ({reason}); fix the file (one record per row)") from None
    pairs = []
    for row, record in enumerate(dataset):
        try:
            pair = (column_value(record, data_args.source_column), column_value(record, data_args.target_column))
        except (KeyError, TypeError):
            raise UsageError(
                f"{path} row {row + 1} has no '{data_args.source_column}' / '{data_args.target_column}' "
                f"(columns: {', '.join(dataset.column_names)}); pass --source_column/--target_column"
            ) from None
        for column, value in zip((data_args.source_column, data_args.target_column), pair, strict=True):
            if value is None or isinstance(value, dict | list) or not str(value).strip():
                raise UsageError(f"{path} row {row + 1}: '{column}' is {value!r}, not a text; fix or drop that row")
        pairs.append(pair)
    return pairs


def write_files_as_folder(data_args: DistillationDataArguments, folder: str) -> None:
    """Write --train_file/--validation_file/--test_file as `{train,val,test}.{source,target}` in `folder`
    (newlines inside a text become spaces: one example per line). Every file is checked (and read) first."""
    files = {"train": data_args.train_file, "val": data_args.validation_file, "test": data_args.test_file}
    flags = {"train": "--train_file", "val": "--validation_file", "test": "--test_file"}
    for split, path in files.items():
        if path is not None:
            check_data_file(flags[split], path)
            if path.lower().endswith(".tsv"):
                raise UsageError(f"{flags[split]} {path}: use a .json, .jsonl or .csv file (or a --data_dir)")
    pairs = {split: read_pairs(path, data_args) for split, path in files.items() if path is not None}
    os.makedirs(folder, exist_ok=True)
    for split, split_pairs in pairs.items():
        for side, texts in (("source", [p[0] for p in split_pairs]), ("target", [p[1] for p in split_pairs])):
            with atomic_write(os.path.join(folder, f"{split}.{side}")) as handle:
                handle.writelines(" ".join(str(text).split()) + "\n" for text in texts)


def check_models(model_args: DistillationModelArguments) -> None:
    """Raise UsageError, before any weights load, for a teacher that is no encoder-decoder, or a --student of
    another family than the teacher (KD compares their logits token by token, so they need one tokenizer, and
    the hidden-state terms need the same layer layout)."""
    teacher = check_seq2seq_model("--teacher", model_args.teacher)
    if model_args.student is not None:
        check_different(
            "--teacher",
            os.path.abspath(model_args.teacher),
            "--student",
            os.path.abspath(model_args.student),
            "distilling a model into itself trains nothing smaller",
        )
        student = check_seq2seq_model("--student", model_args.student)
        if student.model_type != teacher.model_type or student.vocab_size != teacher.vocab_size:
            raise UsageError(
                f"--student {model_args.student} is a {student.model_type} model (vocabulary {student.vocab_size}) "
                f"but --teacher {model_args.teacher} is a {teacher.model_type} model (vocabulary {teacher.vocab_size}); "
                "distillation needs a student of the teacher's family: make one with make_student.py, or drop --student"
            )
    for flag, value in (
        ("--student_encoder_layers", model_args.student_encoder_layers),
        ("--student_decoder_layers", model_args.student_decoder_layers),
    ):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: a student stack needs at least 1 layer")


def validate_args(model_args, distill_args, data_args, training_args) -> str | None:
    """Check the flags and data before anything is loaded; return a checkpoint to resume from, or None."""
    for name in ("alpha_ce", "alpha_mlm", "alpha_hid", "alpha_encoder_loss"):
        if getattr(distill_args, name) < 0:
            raise UsageError(f"--{name} must be >= 0, got {getattr(distill_args, name)}")
    if distill_args.temperature <= 0:
        raise UsageError(f"--temperature must be > 0, got {distill_args.temperature}")
    if not model_args.no_teacher and distill_args.alpha_ce == distill_args.alpha_mlm == distill_args.alpha_hid == 0:
        raise UsageError("every loss weight is 0: set --alpha_ce/--alpha_mlm/--alpha_hid (or use --no_teacher)")
    check_common_args(data_args, training_args)
    check_models(model_args)
    files = (data_args.train_file, data_args.validation_file, data_args.test_file)
    if data_args.data_dir is None and not any(files):
        raise UsageError(
            "no data: pass --data_dir (a .source/.target folder) or --train_file/--validation_file/--test_file"
        )
    if data_args.data_dir is not None and any(files):
        raise UsageError("pass either --data_dir or --train_file/--validation_file/--test_file, not both")
    last_checkpoint = check_output_dir(training_args)
    if data_args.data_dir is None:
        data_args.data_dir = os.path.join(training_args.output_dir, "data")
        write_files_as_folder(data_args, data_args.data_dir)
    check_data_dir(data_args.data_dir, needed_splits(training_args))
    return last_checkpoint


def load_teacher_and_student(model_args, distill_args, training_args):
    """The teacher (frozen, eval), the student (made from it unless --student; saved to OUTPUT_DIR/student) and
    the tokenizer (the teacher's)."""
    tokenizer = load_tokenizer("--teacher", model_args.teacher, cache_dir=model_args.cache_dir)
    teacher = load_seq2seq_model("--teacher", model_args.teacher, cache_dir=model_args.cache_dir)
    student_dir = os.path.join(training_args.output_dir, "student")
    if model_args.student is not None:
        student = load_seq2seq_model("--student", model_args.student, cache_dir=model_args.cache_dir)
    elif os.path.isfile(os.path.join(student_dir, "config.json")):  # a resumed run: the same student
        student = load_seq2seq_model("--output_dir", student_dir)
    else:
        student = None
    if student is None:
        student, _, _ = create_student_by_copying_alternating_layers(
            teacher,
            save_path=None,
            e=model_args.student_encoder_layers or None,
            d=model_args.student_decoder_layers or None,
            copy_first_teacher_layers=model_args.copy_first_teacher_layers,
        )
        if training_args.should_save:
            student.save_pretrained(student_dir)
            tokenizer.save_pretrained(student_dir)
    if student.config.vocab_size != teacher.config.vocab_size:
        raise UsageError(
            f"the student's vocabulary ({student.config.vocab_size}) differs from the teacher's "
            f"({teacher.config.vocab_size}); KD needs the same tokenizer"
        )
    if distill_args.length_penalty != -1:
        student.generation_config.length_penalty = distill_args.length_penalty
    return teacher, student, tokenizer


def hidden_state_matches(student, teacher, supervise_forward: bool) -> dict[str, list[int]]:
    """Teacher hidden-state index for each student layer, per stack: the layers the student was copied from
    (config.init_metadata; else the LAYERS_TO_COPY pick), or LAYERS_TO_SUPERVISE with --supervise_forward."""
    metadata = getattr(student.config, "init_metadata", None) or {}
    matches = {}
    for stack, key in (("encoder", "copied_encoder_layers"), ("decoder", "copied_decoder_layers")):
        student_stack = getattr(student, f"get_{stack}")()
        teacher_stack = getattr(teacher, f"get_{stack}")()
        n_student = len(getattr(student_stack, "layers", None) or student_stack.block)
        n_teacher = len(getattr(teacher_stack, "layers", None) or teacher_stack.block)
        if supervise_forward:
            matches[stack] = get_layers_to_supervise(n_student, n_teacher)
        else:
            matches[stack] = list(metadata.get(key) or pick_layers_to_copy(n_student, n_teacher))
    return matches


def compare_teacher_and_student(teacher_path: str, student_path: str, data_args, training_args) -> list[dict]:
    """Generate the test set with the teacher and the trained student through run_eval.py (same settings, one
    after the other in this process, after a warm-up), and return one row per model: params, samples/s,
    generated tokens/s, mean generated length, scores. The speed-up is samples/s relative to the teacher: a
    student that stops earlier (or later) than the teacher gains (or loses) for that reason too, which gen_len
    shows."""
    folder = os.path.join(training_args.output_dir, "compare")
    os.makedirs(folder, exist_ok=True)
    rows = []
    # Warm-up (first-call allocations and kernel choices), so neither model pays them inside its timing.
    warm = os.path.join(folder, "warmup.txt")
    # --overwrite: compare/ belongs to this run (its --output_dir is locked); a rerun there replaces its tables.
    run_eval.main(
        [teacher_path, os.path.join(data_args.data_dir, "test.source"), warm, "--n_obs", "2", "--max_length", "4"]
        + ["--overwrite"]
    )
    os.remove(warm)
    os.remove(run_eval.records_path(warm))
    for name, path in (("teacher", teacher_path), ("student", student_path)):
        argv = [
            path,
            os.path.join(data_args.data_dir, "test.source"),
            os.path.join(folder, f"{name}_generations.txt"),
            "--reference_path",
            os.path.join(data_args.data_dir, "test.target"),
            "--score_path",
            os.path.join(folder, f"{name}_scores.json"),
            "--task",
            data_args.task,
            "--bs",
            str(training_args.per_device_eval_batch_size),
            "--n_obs",
            str(data_args.n_test),
            "--num_beams",
            str(data_args.eval_beams),
            "--max_length",
            str(data_args.test_max_target_length),
            "--device",
            str(training_args.device),
            "--rouge_backend",
            data_args.rouge_backend,
            "--overwrite",
        ]
        if data_args.prefix is not None:
            argv += ["--prefix", data_args.prefix]
        scores = run_eval.main(argv)
        model = AutoModelForSeq2SeqLM.from_pretrained(path)
        metric_keys = [key for key in ("bleu", "rouge1", "rouge2", "rougeL", "rougeLsum") if key in scores]
        rows.append(
            {
                "model": name,
                "path": path,
                "params": count_parameters(model)[1],
                "samples_per_second": scores["samples_per_second"],
                "tokens_per_second": scores["generated_tokens_per_second"],
                "gen_len": round(scores["generated_tokens_per_second"] / max(scores["samples_per_second"], 1e-9), 1),
                **{key: scores[key] for key in metric_keys},
                **({"rouge_signature": scores["rouge_signature"]} if "rouge_signature" in scores else {}),
            }
        )
    teacher_speed = rows[0]["samples_per_second"] or 1.0
    for row in rows:
        row["speedup"] = round(row["samples_per_second"] / teacher_speed, 2)
    return rows


def print_table(rows: list[dict]) -> None:
    metric_keys = [key for key in ("bleu", "rouge1", "rouge2", "rougeL", "rougeLsum") if key in rows[0]]
    print("\n| model | params | samples/s | tokens/s | gen len | speed-up | " + " | ".join(metric_keys) + " |")
    print("|---" * (6 + len(metric_keys)) + "|")
    for row in rows:
        metrics = " | ".join(f"{row[key]:.2f}" for key in metric_keys)
        print(
            f"| {row['model']} | {row['params'] / 1e6:.2f}M | {row['samples_per_second']:.2f} | "
            f"{row['tokens_per_second']:.1f} | {row['gen_len']} | {row['speedup']:.2f}x | {metrics} |"
        )


def main(argv: list[str]) -> None:
    model_args, distill_args, data_args, training_args = parse_args(
        argv,
        (DistillationModelArguments, DistillationArguments, DistillationDataArguments, LegacySeq2SeqTrainingArguments),
    )
    setup_logging(training_args)
    last_checkpoint = validate_args(model_args, distill_args, data_args, training_args)
    prepare_run(training_args, last_checkpoint)

    teacher, student, tokenizer = load_teacher_and_student(model_args, distill_args, training_args)
    prefix = prepare_model(student, tokenizer, data_args, model_args.freeze_embeds, model_args.freeze_encoder)
    splits = load_splits(tokenizer, data_args, training_args, prefix)
    use_teacher = not model_args.no_teacher
    trainer_class = DistillationTrainer if use_teacher else LegacySeq2SeqTrainer
    extra = {}
    if use_teacher:
        extra = {
            "teacher": teacher,
            "distill_args": distill_args,
            "hidden_matches": hidden_state_matches(student, teacher, distill_args.supervise_forward),
        }
        logger.info(f"distilling from {model_args.teacher}; hidden-state matches {extra['hidden_matches']}")
    trainer = trainer_class(**trainer_kwargs(student, tokenizer, data_args, training_args, splits), **extra)
    if trainer.is_world_process_zero():
        write_run_info(
            training_args.output_dir,
            {
                "model": asdict(model_args),
                "distillation": asdict(distill_args),
                "data": asdict(data_args),
                "training": training_args.to_dict(),
            },
        )
    run_stages(trainer, tokenizer, data_args, splits, last_checkpoint)

    # Teacher vs trained student, generated side by side.
    if (
        training_args.do_predict
        and training_args.do_train
        and distill_args.compare_with_teacher
        and trainer.is_world_process_zero()
    ):
        rows = compare_teacher_and_student(model_args.teacher, training_args.output_dir, data_args, training_args)
        write_json_atomically(os.path.join(training_args.output_dir, "teacher_vs_student.json"), rows)
        print_table(rows)
        logger.info(json.dumps(rows))
    # Every process waits for the others, then closes the process group of a multi-process launch: a process that
    # exits while another one still runs can abort in gloo's threads ("terminate called without an active
    # exception") after all work is done.
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    run_cli(main)
