"""Trainer pieces of the legacy toolkit, shared by `finetune_trainer.py` and `distillation.py`.

- `LegacySeq2SeqTrainingArguments`: `Seq2SeqTrainingArguments` plus the classic flags (`--label_smoothing`,
  `--sortish_sampler`, `--max_tokens_per_batch`, `--adafactor`, `--lr_scheduler`, dropout overrides), the early
  stopping flags (`--early_stopping_patience`, `--early_stopping_threshold`) and the output-directory guard.
- `LegacySeq2SeqTrainer`: a `Seq2SeqTrainer` whose training batches really come from the sortish sampler or
  the token budget (upstream built the sortish sampler and then threw it away).
- Model set-up (`apply_dropout_overrides`, `freeze_embeds`, `freeze_encoder`, `set_up_language_codes`),
  the run's files (`metrics.json`, `best_tfmr/`, `test_results.txt`, `git_log.json`, `hparams.json`) and
  the output-directory checks.
Complete-checkpoint detection and atomic JSON files come from `seq2seq_checks.py` (a whole-file copy of the
summarization folder's module, kept identical by `utils/check_copies.py`), as does finetune_trainer.py's `save_results`.
"""

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import (
    M2M100Tokenizer,
    MBart50Tokenizer,
    MBartTokenizer,
    NllbTokenizer,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)

from seq2seq_checks import (
    BOOKKEEPING_FILES,
    TRAINER_RESUME_FILES,
    check_utf8,
    last_complete_checkpoint,
    lock_output_dir,
    write_json_atomically,
)
from utils import (
    SortishSampler,
    TokenBudgetBatchSampler,
    UsageError,
    get_git_info,
    line_offsets,
    load_json,
    with_shared_cross_attention,
)

logger = logging.getLogger(__name__)

LR_SCHEDULERS = ("linear", "cosine", "cosine_w_restarts", "polynomial", "constant", "constant_w_warmup")
# Files that mean "this folder holds a finished run": their presence makes --output_dir refuse without
# --overwrite_output_dir. Files written while training runs (metrics.json, best_tfmr/, hparams.json,
# git_log.json, student/) do not: a folder with only those and checkpoints is a killed run, resumed.
RESULT_FILES = (
    "all_results.json",
    "train_results.json",
    "val_results.json",
    "test_results.json",
    "test_results.txt",
    "test_generations.txt",
    "trainer_state.json",
    "config.json",
)


@dataclass
class LegacySeq2SeqTrainingArguments(Seq2SeqTrainingArguments):
    """`Seq2SeqTrainingArguments` with the legacy toolkit's flags (upstream `seq2seq_training_args.py`)."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": (
                "Allow --output_dir to hold an earlier run: its results and checkpoints are deleted first. Without "
                "it a folder holding results is refused, and one holding only checkpoints is resumed."
            )
        },
    )
    average_tokens_across_devices: bool = field(
        default=False,
        metadata={
            "help": "Off by default: with it, transformers 5.23 logs ~world-size times the true loss under DDP."
        },
    )
    label_smoothing: float = field(
        default=0.0, metadata={"help": "Label smoothing epsilon (the legacy name of --label_smoothing_factor)."}
    )
    sortish_sampler: bool = field(
        default=False,
        metadata={"help": "Batch training examples of similar length (sortish order): less padding, same data."},
    )
    share_cross_attention: bool = field(
        default=True,
        metadata={
            "help": (
                "Beam search in val/test generation: the beams of an input share one copy of the cross-attention "
                "keys/values (generate() copies them at every step). Same predictions; --no_share_cross_attention "
                "keeps generate()'s own cache."
            )
        },
    )
    max_tokens_per_batch: int | None = field(
        default=None,
        metadata={
            "help": (
                "Dynamic batching: batches of similar-length examples with at most this many padded source tokens "
                "each (replaces --per_device_train_batch_size). Lengths come from train.len (save_len_file.py) "
                "when present, else the sources are tokenized once."
            )
        },
    )
    adafactor: bool = field(default=False, metadata={"help": "Use Adafactor (fixed lr) instead of AdamW."})
    lr_scheduler: str | None = field(
        default=None,
        metadata={"help": f"Legacy name of --lr_scheduler_type; one of {', '.join(LR_SCHEDULERS)}."},
    )
    encoder_layerdrop: float | None = field(default=None, metadata={"help": "Override config.encoder_layerdrop."})
    decoder_layerdrop: float | None = field(default=None, metadata={"help": "Override config.decoder_layerdrop."})
    dropout: float | None = field(default=None, metadata={"help": "Override config.dropout."})
    attention_dropout: float | None = field(default=None, metadata={"help": "Override config.attention_dropout."})
    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": (
                "Stop training once this many evaluations in a row have not improved --metric_for_best_model by more "
                "than --early_stopping_threshold (transformers' EarlyStoppingCallback). Needs evaluations during "
                "training (--eval_strategy steps or epoch), checkpoints saved at evaluation steps, and "
                "--load_best_model_at_end. --metric_for_best_model defaults to the classic best metric: rouge2 "
                "(summarization) or bleu (translation) with --predict_with_generate, else loss. Default: off."
            )
        },
    )
    early_stopping_threshold: float = field(
        default=0.0,
        metadata={
            "help": "How much --metric_for_best_model must improve to reset the patience (default 0: any improvement)."
        },
    )

    def __post_init__(self):
        # The legacy spellings map onto the Trainer's own options before it validates them.
        if self.label_smoothing:
            self.label_smoothing_factor = self.label_smoothing
        if self.adafactor:
            self.optim = "adafactor"
        if self.lr_scheduler is not None:
            if self.lr_scheduler not in LR_SCHEDULERS:
                raise ValueError(f"--lr_scheduler {self.lr_scheduler}: choose one of {', '.join(LR_SCHEDULERS)}")
            self.lr_scheduler_type = {
                "cosine_w_restarts": "cosine_with_restarts",
                "constant_w_warmup": "constant_with_warmup",
            }.get(self.lr_scheduler, self.lr_scheduler)
        if self.sortish_sampler and self.max_tokens_per_batch:
            raise ValueError("--sortish_sampler and --max_tokens_per_batch exclude each other; pick one")
        if self.max_tokens_per_batch is not None and self.max_tokens_per_batch < 1:
            raise ValueError(
                f"--max_tokens_per_batch must be a positive number of tokens, got {self.max_tokens_per_batch}"
            )
        # Our datasets yield raw text that the collator tokenizes; the Trainer must not drop those columns.
        self.remove_unused_columns = False
        # The Trainer fills in "loss" for an unset --metric_for_best_model; with early stopping the default is the
        # classic best metric instead (finetune_trainer.check_best_model_flags), so remember whether one was given.
        self.metric_for_best_model_given = self.metric_for_best_model is not None
        try:
            super().__post_init__()
        except ValueError as error:
            # transformers' own message spans several lines and names no fix.
            if "--load_best_model_at_end requires" not in str(error):
                raise
            raise ValueError(best_checkpoint_saving_message(self)) from None


def best_checkpoint_saving_message(args: Seq2SeqTrainingArguments) -> str:
    """The one-line fix when --load_best_model_at_end finds no checkpoint saved at the evaluation steps (the
    strategies are enums by the time transformers refuses them)."""
    evaluation, saving = str(args.eval_strategy.value), str(args.save_strategy.value)
    intro = (
        "--load_best_model_at_end loads the best evaluation's checkpoint, so checkpoints must be saved at evaluations"
    )
    if evaluation == "no":
        return (
            f"{intro}, but --eval_strategy is no; pass --eval_strategy steps --eval_steps N --save_steps N (or "
            "--eval_strategy epoch --save_strategy epoch)"
        )
    if evaluation != saving:
        return (
            f"{intro}: --save_strategy {saving} does not match --eval_strategy {evaluation}; pass --save_strategy "
            f"{evaluation}"
        )
    return (
        f"{intro}: --save_steps {args.save_steps} is not a multiple of --eval_steps {args.eval_steps}; pass "
        f"--save_steps {args.eval_steps} (or a multiple of it)"
    )


class LegacySeq2SeqTrainer(Seq2SeqTrainer):
    """`Seq2SeqTrainer` whose training order honours `--sortish_sampler` / `--max_tokens_per_batch`.

    `train_lengths` holds one length per training example. Under several processes Accelerate gives each
    rank every world_size-th batch of the one global order (all ranks compute the same order from seed and
    epoch), so each example is seen once per epoch.
    """

    def __init__(self, *args, train_lengths: list[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_lengths = train_lengths
        # Real and padded (source, target) token counts of the training batches this process has run.
        self.token_counts = torch.zeros(4, dtype=torch.long)

    def training_step(self, model, inputs, num_items_in_batch=None):
        if "attention_mask" in inputs and "labels" in inputs:
            mask, labels = inputs["attention_mask"], inputs["labels"]
            counts = [mask.sum(), mask.numel(), (labels != -100).sum(), labels.numel()]
            self.token_counts += torch.stack([torch.as_tensor(c).cpu() for c in counts])
        return super().training_step(model, inputs, num_items_in_batch)

    def padding_metrics(self) -> dict[str, float]:
        """`train_src_pad_frac` / `train_tgt_pad_frac`: the share of padding in the training batches (all
        processes), and the real source+target tokens seen. Call it on every process (it is a collective)."""
        counts = self.accelerator.reduce(self.token_counts.to(self.args.device), reduction="sum").cpu().tolist()
        real_src, all_src, real_tgt, all_tgt = counts
        return {
            "train_src_pad_frac": round(1 - real_src / max(all_src, 1), 4),
            "train_tgt_pad_frac": round(1 - real_tgt / max(all_tgt, 1), 4),
            "train_real_tokens": int(real_src + real_tgt),
        }

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        if self.args.predict_with_generate and not prediction_loss_only and self.args.share_cross_attention:
            # The parent's rule: this call's generate kwargs, else those evaluate()/predict() set.
            gen_kwargs = with_shared_cross_attention(self.model, dict(gen_kwargs or getattr(self, "_gen_kwargs", {})))
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys, **gen_kwargs)

    def _get_train_sampler(self, train_dataset=None):
        if self.args.sortish_sampler:
            return SortishSampler(self.train_lengths, self._train_batch_size, shuffle=True, seed=self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def get_train_dataloader(self) -> DataLoader:
        if not self.args.max_tokens_per_batch:
            return super().get_train_dataloader()
        batch_sampler = TokenBudgetBatchSampler(
            self.train_lengths, self.args.max_tokens_per_batch, shuffle=True, seed=self.args.seed
        )
        dataloader = DataLoader(
            self.train_dataset,
            batch_sampler=batch_sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(dataloader)


# ----------------------------------------------------------------------------- model set-up
def apply_dropout_overrides(config: Any, training_args: LegacySeq2SeqTrainingArguments) -> None:
    """Copy --dropout/--attention_dropout/--encoder_layerdrop/--decoder_layerdrop into the model config."""
    for name in ("encoder_layerdrop", "decoder_layerdrop", "dropout", "attention_dropout"):
        value = getattr(training_args, name)
        if value is None:
            continue
        config_name = "dropout_rate" if name == "dropout" and config.model_type in ("t5", "mt5") else name
        if not hasattr(config, config_name):
            raise UsageError(f"--{name}: a {config.model_type} config has no '{config_name}'; drop the flag")
        setattr(config, config_name, value)


def freeze_params(module: torch.nn.Module) -> None:
    for parameter in module.parameters():
        parameter.requires_grad = False


def freeze_embeds(model: Any) -> None:
    """Freeze token and position embeddings (upstream rules): T5 has the shared table and each stack's
    `embed_tokens`; the others `model.shared` (if any) plus each stack's `embed_tokens` and `embed_positions`.
    With tied weights the LM head is frozen too (it is the same tensor)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base = getattr(base, "model", base)  # BART-like: the stacks live under model.model
    shared = getattr(base, "shared", None)
    if shared is not None:
        freeze_params(shared)
    for stack in (model.get_encoder(), model.get_decoder()):
        for name in ("embed_tokens", "embed_positions"):
            if isinstance(getattr(stack, name, None), torch.nn.Module):
                freeze_params(getattr(stack, name))


def freeze_encoder(model: Any) -> None:
    """Freeze every encoder parameter, then check none is left trainable. Note: with embeddings shared
    between encoder and decoder (BART, T5), this freezes the decoder's token embeddings too, as upstream."""
    encoder = model.get_encoder()
    freeze_params(encoder)
    trainable = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    if trainable:
        raise RuntimeError(f"{trainable} encoder parameters still require grad after --freeze_encoder")


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; tied tensors are counted once."""
    unique = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in unique if p.requires_grad), sum(p.numel() for p in unique)


def language_codes(tokenizer: Any) -> list[str] | None:
    """The language codes a multilingual tokenizer (mBART, mBART-50, M2M100, NLLB) knows, else None."""
    if isinstance(tokenizer, (MBartTokenizer, MBart50Tokenizer, M2M100Tokenizer)):
        return list(tokenizer.lang_code_to_id)
    if isinstance(tokenizer, NllbTokenizer):
        return [token for token in tokenizer.all_special_tokens if re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", token)]
    return None


def set_up_language_codes(model: Any, tokenizer: Any, src_lang: str | None, tgt_lang: str | None) -> None:
    """--src_lang/--tgt_lang for multilingual tokenizers: required there, checked against the tokenizer's codes.

    mBART starts decoding from the target code; mBART-50, M2M100 and NLLB start from </s> and get the target
    code as forced BOS token (in the generation config, where transformers 5 reads it).
    """
    valid_codes = language_codes(tokenizer)
    if valid_codes is None:
        if src_lang or tgt_lang:
            logger.warning(f"--src_lang/--tgt_lang ignored: {type(tokenizer).__name__} has no language codes")
        return
    for flag, code in (("--src_lang", src_lang), ("--tgt_lang", tgt_lang)):
        if code is None:
            raise UsageError(f"{type(tokenizer).__name__} needs {flag} (one of: {', '.join(valid_codes[:8])}, ...)")
        if code not in valid_codes:
            close = [valid for valid in valid_codes if valid.split("_")[0] == code.split("_")[0]]
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise UsageError(
                f"{flag} '{code}' is not a language code of this tokenizer; {hint}(e.g. {valid_codes[0]})"
            )
    tokenizer.src_lang, tokenizer.tgt_lang = src_lang, tgt_lang
    target_id = tokenizer.get_lang_id(tgt_lang) if isinstance(tokenizer, M2M100Tokenizer) else None
    target_id = target_id if target_id is not None else tokenizer.convert_tokens_to_ids(tgt_lang)
    if isinstance(tokenizer, MBartTokenizer):
        model.config.decoder_start_token_id = target_id
        model.generation_config.decoder_start_token_id = target_id
    else:
        model.generation_config.forced_bos_token_id = target_id


# ----------------------------------------------------------------------------- data
def example_lengths(
    tokenizer: Any, data_dir: str, type_path: str, n_examples: int, max_source_length: int
) -> list[int]:
    """Source token length of the first `n_examples` examples: from `{type_path}.len` (save_len_file.py) when it
    has one entry per line, else by tokenizing the source file once (1000 lines at a time)."""
    len_file = os.path.join(data_dir, f"{type_path}.len")
    if os.path.isfile(len_file):
        lengths = load_json(len_file)
        if isinstance(lengths, list) and len(lengths) >= n_examples:
            return [min(int(length), max_source_length) for length in lengths[:n_examples]]
        logger.warning(f"ignoring {len_file}: it does not have one length per line (rewrite it with save_len_file.py)")
    lengths: list[int] = []
    with open(os.path.join(data_dir, f"{type_path}.source"), encoding="utf-8") as handle:
        chunk: list[str] = []
        for line in handle:
            if len(lengths) + len(chunk) >= n_examples:
                break
            chunk.append(line.rstrip("\r\n"))
            if len(chunk) == 1000:
                lengths += map(len, tokenizer(chunk, truncation=True, max_length=max_source_length)["input_ids"])
                chunk = []
        if chunk:
            lengths += map(len, tokenizer(chunk, truncation=True, max_length=max_source_length)["input_ids"])
    return lengths


def check_data_dir(data_dir: str, splits: list[str]) -> None:
    """Raise UsageError unless `data_dir` holds aligned, non-empty `{split}.source` / `{split}.target` files."""
    if os.path.isfile(data_dir):
        raise UsageError(f"--data_dir {data_dir} is a file; pass the folder that holds train/val/test .source/.target")
    if not os.path.isdir(data_dir):
        raise UsageError(
            f"--data_dir {data_dir}: no such folder (it should hold train/val/test .source/.target files)"
        )
    for split in splits:
        for side in ("source", "target"):
            path = os.path.join(data_dir, f"{split}.{side}")
            if not os.path.isfile(path):
                raise UsageError(f"--data_dir {data_dir} has no {split}.{side}; each split needs .source and .target")
            if os.path.getsize(path) == 0:
                raise UsageError(f"{path} is empty; give it one example per line")
            check_utf8("--data_dir", path)  # else the dataset fails mid-training, at the first bad line it reads
        n_src = len(line_offsets(os.path.join(data_dir, f"{split}.source"))) - 1
        n_tgt = len(line_offsets(os.path.join(data_dir, f"{split}.target"))) - 1
        if n_src != n_tgt:
            raise UsageError(f"{data_dir}/{split}.source has {n_src} lines but {split}.target has {n_tgt}; align them")


# ----------------------------------------------------------------------------- output folder
def check_output_dir(training_args: LegacySeq2SeqTrainingArguments) -> str | None:
    """Return a checkpoint to resume from, or None; raise UsageError for a folder that holds a finished run.

    A missing or empty folder is fine; one that holds checkpoints but no results (a killed training job) is
    resumed; anything with results needs --overwrite_output_dir (or a new folder).

    Not `seq2seq_checks.check_output_dir` (the task folders' guard), on purpose: "results" are this toolkit's own
    files (`RESULT_FILES` above: `val_results.json`, `test_generations.txt`, a saved model's `config.json`, ...),
    other files (the run files written while training, a user's notes) never make the folder refused, a folder
    without checkpoints is simply reused, and the message gives no --resume_from_checkpoint hint.

    A checkpoint counts only with every file `Trainer.train(resume_from_checkpoint=...)` reads (`TRAINER_RESUME_FILES`:
    weights, optimizer, scheduler, RNG state, trainer_state.json of the right step); an incomplete one is skipped with a
    warning. First the folder is locked (`seq2seq_checks.lock_output_dir`): one run at a time per --output_dir, and
    an interrupted run's last line names its last complete checkpoint.
    """
    output_dir = training_args.output_dir
    lock_output_dir(output_dir, find_checkpoint=lambda: last_complete_checkpoint(output_dir, TRAINER_RESUME_FILES))
    entries = [name for name in os.listdir(output_dir) if name not in BOOKKEEPING_FILES]
    if not entries or training_args.overwrite_output_dir:
        return None
    if training_args.resume_from_checkpoint:
        return None
    last_checkpoint = last_complete_checkpoint(output_dir, TRAINER_RESUME_FILES)
    results = [name for name in sorted(entries) if name in RESULT_FILES]
    if training_args.do_train and not results:
        return last_checkpoint  # None for a folder with only files of a run that never reached a checkpoint
    if not results and not training_args.do_train:
        return None
    raise UsageError(
        f"--output_dir {output_dir} already holds an earlier run ({', '.join(results[:5])}); choose a new "
        "--output_dir, or pass --overwrite_output_dir to replace it"
    )


def remove_previous_run(output_dir: str) -> None:
    """For --overwrite_output_dir: delete an earlier run's results, checkpoints and run files (nothing else).

    Unlike `seq2seq_checks.remove_previous_run`, the toolkit's own files go too: `RESULT_FILES` above,
    `metrics.json`, `hparams.json`, `git_log.json` and the `best_tfmr/` and `student/` folders.
    """
    if not os.path.isdir(output_dir):
        return
    run_files = (*RESULT_FILES, "metrics.json", "hparams.json", "git_log.json")
    for name in sorted(os.listdir(output_dir)):
        path = os.path.join(output_dir, name)
        if name in run_files and os.path.isfile(path):
            os.remove(path)
        elif (name.startswith("checkpoint-") or name in ("best_tfmr", "student")) and os.path.isdir(path):
            shutil.rmtree(path)
        else:
            continue
        logger.info(f"--overwrite_output_dir: removed {path} from the earlier run")


def write_run_info(output_dir: str, hparams: dict) -> None:
    """`git_log.json` (repo, commit, branch, host) and `hparams.json` (every argument of this run)."""
    os.makedirs(output_dir, exist_ok=True)
    write_json_atomically(os.path.join(output_dir, "git_log.json"), get_git_info())
    write_json_atomically(os.path.join(output_dir, "hparams.json"), hparams)


def write_results_txt(path: str, metrics: dict) -> None:
    """The classic `test_results.txt`: one `key: value` line per metric, sorted."""
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        handle.writelines(f"{key}: {value}\n" for key, value in sorted(metrics.items()))
    os.replace(f"{path}.tmp", path)


def log_metrics(trainer, split: str, metrics: dict) -> None:
    """The Trainer's metric table, with the signatures (the string values: how ROUGE was computed) printed in full
    under it rather than padded into its columns (as the task folders' `seq2seq_setup.log_metrics`)."""
    trainer.log_metrics(split, {key: value for key, value in metrics.items() if not isinstance(value, str)})
    if trainer.is_world_process_zero():
        for key, value in metrics.items():
            if isinstance(value, str):
                print(f"  {key}: {value}")


def append_metrics(output_dir: str, split: str, record: dict) -> None:
    """Append one evaluation's metrics to `metrics.json` (`{"val": [...], "test": [...]}`, kept across resumes)."""
    path = os.path.join(output_dir, "metrics.json")
    history = load_json(path) if os.path.isfile(path) else {}
    history.setdefault(split, []).append(record)
    write_json_atomically(path, history)


class ClassicOutputsCallback(TrainerCallback):
    """Per evaluation during training: append to `metrics.json`, and save the model to `best_tfmr/` when
    `metric` improved (`greater_is_better` says which way). `best_tfmr/selection.json` records the metric,
    its value and the step, so a resumed run keeps comparing against the right best."""

    def __init__(self, output_dir: str, metric: str, greater_is_better: bool, tokenizer: Any) -> None:
        self.output_dir, self.metric, self.greater_is_better, self.tokenizer = (
            output_dir,
            metric,
            greater_is_better,
            tokenizer,
        )
        self.best_dir = os.path.join(output_dir, "best_tfmr")
        selection_path = os.path.join(self.best_dir, "selection.json")
        self.best = load_json(selection_path)["value"] if os.path.isfile(selection_path) else None

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        record = {"step": state.global_step, "epoch": state.epoch}
        record.update({key.replace("eval_", "val_", 1): value for key, value in metrics.items()})
        append_metrics(self.output_dir, "val", record)
        value = metrics.get(f"eval_{self.metric}")
        if value is None:
            return
        improved = self.best is None or (value > self.best if self.greater_is_better else value < self.best)
        if improved:
            self.best = value
            save_best_model(
                model,
                self.tokenizer,
                self.best_dir,
                {"metric": f"val_{self.metric}", "value": value, "step": state.global_step},
            )

    def on_train_end(self, args, state, control, model=None, **kwargs):
        # No evaluation during training: the final model is the best we know of.
        if state.is_world_process_zero and not os.path.isdir(self.best_dir):
            save_best_model(
                model, self.tokenizer, self.best_dir, {"metric": None, "value": None, "step": state.global_step}
            )


def save_best_model(model: Any, tokenizer: Any, best_dir: str, selection: dict) -> None:
    """`save_pretrained` model + tokenizer into a temp folder, then swap it in for `best_dir`."""
    staging = f"{best_dir}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model = getattr(model, "module", model)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    write_json_atomically(os.path.join(staging, "selection.json"), selection)
    shutil.rmtree(best_dir, ignore_errors=True)
    os.replace(staging, best_dir)
