#!/usr/bin/env python
"""Fine-tune a seq2seq model on a folder of `{train,val,test}.{source,target}` files (the classic workflow).

    python examples/legacy/seq2seq/finetune_trainer.py \\
        --model_name_or_path .cache/tiny-models/marian --data_dir tests/fixtures/legacy/wmt_en_ro \\
        --output_dir outputs/marian-enro --task translation --do_train --do_eval --do_predict \\
        --predict_with_generate --sortish_sampler --num_train_epochs 3

Writes to --output_dir: the model and tokenizer, `train/val/test/all_results.json`, `metrics.json` (every
evaluation, appended), `test_generations.txt` (one prediction per test line), `test_results.txt`,
`best_tfmr/` (the best evaluated model, `save_pretrained` format), `hparams.json`, `git_log.json` and
`trainer_state.json`. Summarization results hold `<split>_rouge_signature` (how ROUGE was computed; with
`--rouge_backend official`, ROUGE-1.5.5 with `<split>_<key>_low` / `_high`). A killed run started again with
the same command resumes from its last checkpoint.
"""

import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import transformers
from sacrebleu.metrics import BLEU
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForSeq2SeqLM, EarlyStoppingCallback, HfArgumentParser, set_seed

from model_card import write_model_card
from seq2seq_checks import (
    check_flag_values,
    check_integrations,
    connect_processes_without_gpus,
    one_line_errors,
    read_argument_file,
    save_results,
    save_trainer_state,
    unknown_flags_message,
)
from seq2seq_trainer import (
    ClassicOutputsCallback,
    LegacySeq2SeqTrainer,
    LegacySeq2SeqTrainingArguments,
    append_metrics,
    apply_dropout_overrides,
    check_data_dir,
    check_output_dir,
    count_parameters,
    example_lengths,
    freeze_embeds,
    freeze_encoder,
    log_metrics,
    remove_previous_run,
    set_up_language_codes,
    write_results_txt,
    write_run_info,
)
from training_curves import write_training_curves
from utils import (
    ROUGE_BACKENDS,
    ROUGE_KEYS,
    Seq2SeqDataCollator,
    Seq2SeqDataset,
    UsageError,
    check_rouge_backend,
    check_seq2seq_model,
    load_tokenizer,
    run_cli,
    score_rouge,
    use_task_specific_params,
    write_txt_file,
)

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Model folder (save_pretrained) or Hub id to fine-tune."})
    config_name: str | None = field(default=None, metadata={"help": "Config folder or id, if not the model's."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer folder or id, if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})
    freeze_encoder: bool = field(default=False, metadata={"help": "Train the decoder only."})
    freeze_embeds: bool = field(default=False, metadata={"help": "Keep token and position embeddings fixed."})


@dataclass
class DataTrainingArguments:
    data_dir: str = field(metadata={"help": "Folder with {train,val,test}.{source,target}, one example per line."})
    task: str = field(
        default="summarization",
        metadata={
            "help": (
                "summarization[_<name>] (scored with ROUGE) or translation[_xx_to_yy] (BLEU); also selects "
                "task_specific_params from the model config (e.g. T5's prefix)."
            )
        },
    )
    max_source_length: int = field(default=1024, metadata={"help": "Sources are truncated to this many tokens."})
    max_target_length: int = field(default=128, metadata={"help": "Training targets are truncated to this."})
    val_max_target_length: int = field(
        default=142, metadata={"help": "Val target truncation, and the generation length limit for val."}
    )
    test_max_target_length: int = field(
        default=142, metadata={"help": "Test target truncation, and the generation length limit for test."}
    )
    n_train: int = field(default=-1, metadata={"help": "Use the first N training lines; -1 = all."})
    n_val: int = field(default=-1, metadata={"help": "Use the first N validation lines; -1 = all."})
    n_test: int = field(default=-1, metadata={"help": "Use the first N test lines; -1 = all."})
    src_lang: str | None = field(default=None, metadata={"help": "Source language code (mBART-style models)."})
    tgt_lang: str | None = field(default=None, metadata={"help": "Target language code (mBART-style models)."})
    eval_beams: int | None = field(
        default=None, metadata={"help": "Beams for val/test generation; default: the model's num_beams."}
    )
    ignore_pad_token_for_loss: bool = field(
        default=True, metadata={"help": "Padding in the labels adds nothing to the loss."}
    )
    prefix: str | None = field(
        default=None, metadata={"help": "Prepended to every source; default: the model config's prefix (T5)."}
    )
    rouge_backend: str = field(
        default="rouge_score",
        metadata={
            "help": (
                f"Summarization: how ROUGE is computed, {' or '.join(ROUGE_BACKENDS)}. rouge_score (default) is "
                "Google's package, comparable with the Hugging Face scripts; official is ROUGE-1.5.5 in pure Python, "
                "to compare with papers' ROUGE-1.5.5 / pyrouge numbers, with 95%% intervals."
            )
        },
    )


def parse_args(
    argv: list[str], dataclass_types=(ModelArguments, DataTrainingArguments, LegacySeq2SeqTrainingArguments)
) -> tuple:
    """Parse `argv` (or one .json/.yaml file of arguments) into `dataclass_types`. Raises UsageError: one line, a
    "did you mean" for an unknown flag or key, a file's values type-checked (a quoted "false" is no boolean).

    `seq2seq_checks.parse_args_or_file` made of the same pieces, for an explicit `argv` (distillation.py parses its
    own dataclasses with it). Under torchrun without GPUs the processes connect over gloo on the CPU.
    """
    parser = HfArgumentParser(dataclass_types)
    one_line_errors(parser)
    connect_processes_without_gpus()
    try:
        if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
            return parser.parse_dict(read_argument_file(parser, argv[0]))
        *groups, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
        if remaining:
            raise UsageError(unknown_flags_message(parser, remaining))
        return tuple(groups)
    except UsageError:
        raise
    except ValueError as error:
        raise UsageError(str(error).strip().splitlines()[0]) from error


def needed_splits(training_args: LegacySeq2SeqTrainingArguments) -> list[str]:
    """The data splits this run reads: train for training, val for any evaluation, test for prediction."""
    wanted = {
        "train": training_args.do_train,
        "val": training_args.do_eval or training_args.eval_strategy != "no",
        "test": training_args.do_predict,
    }
    return [split for split, needed in wanted.items() if needed]


def check_common_args(data_args: DataTrainingArguments, training_args: LegacySeq2SeqTrainingArguments) -> None:
    """The checks finetune_trainer.py and distillation.py share: task, lengths, sample counts, beams, processes."""
    if not data_args.task.startswith(("summarization", "translation")):
        raise UsageError(f"--task {data_args.task}: use summarization[_<name>] or translation[_xx_to_yy]")
    for name in ("max_source_length", "max_target_length", "val_max_target_length", "test_max_target_length"):
        if getattr(data_args, name) < 1:
            raise UsageError(f"--{name} must be a positive number of tokens, got {getattr(data_args, name)}")
    for name in ("n_train", "n_val", "n_test"):
        if getattr(data_args, name) == 0 or getattr(data_args, name) < -1:
            raise UsageError(f"--{name} {getattr(data_args, name)}: give a number of lines, or -1 for all")
    if data_args.eval_beams is not None and data_args.eval_beams < 1:
        raise UsageError(f"--eval_beams must be at least 1, got {data_args.eval_beams}")
    if training_args.predict_with_generate and data_args.test_max_target_length < 2:
        raise UsageError(
            f"--test_max_target_length must be at least 2 (the decoder start token plus one generated token), got "
            f"{data_args.test_max_target_length}; pass e.g. --test_max_target_length 142"
        )
    check_rouge_backend(data_args.rouge_backend)
    check_flag_values(data_args, training_args)
    check_best_model_flags(data_args, training_args)
    check_integrations("--report_to", training_args.report_to)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and training_args.world_size == 1:
        raise UsageError(
            f"launched as {launched} processes, but they are not connected; without GPUs pass --use_cpu "
            "(or set ACCELERATE_USE_CPU=true)"
        )


def classic_best_metric(task: str, predict_with_generate: bool) -> str:
    """The metric `best_tfmr/` is chosen by: val ROUGE-2 (summarization) or BLEU, loss without generation."""
    if not predict_with_generate:
        return "loss"
    return "rouge2" if "summarization" in task else "bleu"


def evaluation_metric_names(data_args: DataTrainingArguments, training_args: LegacySeq2SeqTrainingArguments) -> list:
    """The metrics an evaluation during training reports (the Trainer prefixes them with eval_): the loss, and with
    --predict_with_generate the task's scores (`make_compute_metrics`) and gen_len."""
    if not training_args.predict_with_generate:
        return ["loss"]
    if "summarization" not in data_args.task:
        return ["loss", "bleu", "gen_len"]
    ends = ("", "_low", "_high") if data_args.rouge_backend == "official" else ("",)
    return ["loss", *(key + end for key in ROUGE_KEYS for end in ends), "gen_len"]


def check_best_model_flags(data_args: DataTrainingArguments, training_args: LegacySeq2SeqTrainingArguments) -> None:
    """Early stopping and the best model, before anything loads: --early_stopping_patience needs evaluations during
    training and --load_best_model_at_end (checkpoints at the evaluation steps are checked while parsing), and
    --metric_for_best_model must be a metric those evaluations compute (a `val_` prefix, as in metrics.json, is
    dropped). Without one, early stopping uses `classic_best_metric`. Raises UsageError."""
    patience, threshold = training_args.early_stopping_patience, training_args.early_stopping_threshold
    if patience is not None and patience < 1:
        raise UsageError(f"--early_stopping_patience must be at least 1 evaluation, got {patience}; pass e.g. 2")
    if not threshold >= 0:  # also NaN
        raise UsageError(f"--early_stopping_threshold must be 0 or more, got {threshold}; pass e.g. 0.0")
    if threshold and patience is None:
        raise UsageError("--early_stopping_threshold needs --early_stopping_patience N; add it or drop the threshold")
    training = training_args.do_train and training_args.eval_strategy != "no"
    if patience is not None:
        if not training:
            raise UsageError(
                "--early_stopping_patience counts evaluations during training, but there are none; pass --do_train "
                "--eval_strategy steps --eval_steps N --save_steps N --load_best_model_at_end (or epoch strategies)"
            )
        if not training_args.load_best_model_at_end:
            raise UsageError(
                "--early_stopping_patience needs --load_best_model_at_end, so the saved model is the best "
                "evaluation's rather than the last step's; add --load_best_model_at_end (with checkpoints saved at "
                "evaluations: --save_strategy and --save_steps as --eval_strategy and --eval_steps)"
            )
        if not training_args.metric_for_best_model_given:
            training_args.metric_for_best_model = classic_best_metric(
                data_args.task, training_args.predict_with_generate
            )
            training_args.greater_is_better = training_args.metric_for_best_model != "loss"
    metric = training_args.metric_for_best_model
    if metric is None or not training:
        return
    computed = evaluation_metric_names(data_args, training_args)
    name = metric.removeprefix("eval_").removeprefix("val_")
    if name not in computed:
        hint = "pass one of them"
        if not training_args.predict_with_generate:
            hint = "scores need generation: add --predict_with_generate, or pass loss"
        raise UsageError(
            f"--metric_for_best_model {metric}: the evaluations of this run do not compute it (computed: "
            f"{', '.join(computed)}); {hint}"
        )
    training_args.metric_for_best_model = name  # the Trainer adds eval_ itself; val_ would become eval_val_


def validate_args(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: LegacySeq2SeqTrainingArguments
) -> str | None:
    """Check flags and data files before anything is loaded; return a checkpoint to resume from, or None."""
    check_common_args(data_args, training_args)
    check_data_dir(data_args.data_dir, needed_splits(training_args))
    # The model's family before its weights: an encoder-only folder (BERT) cannot be fine-tuned here.
    check_seq2seq_model("--model_name_or_path", model_args.config_name or model_args.model_name_or_path)
    return check_output_dir(training_args)


def load_model_and_tokenizer(model_args: ModelArguments, training_args: LegacySeq2SeqTrainingArguments):
    """Config (with dropout overrides), tokenizer and model; anything that cannot be loaded is a UsageError."""
    source = model_args.model_name_or_path
    try:
        config = AutoConfig.from_pretrained(model_args.config_name or source, cache_dir=model_args.cache_dir)
        apply_dropout_overrides(config, training_args)
        tokenizer_flag = "--tokenizer_name" if model_args.tokenizer_name else "--model_name_or_path"
        tokenizer = load_tokenizer(tokenizer_flag, model_args.tokenizer_name or source, cache_dir=model_args.cache_dir)
        model = AutoModelForSeq2SeqLM.from_pretrained(source, config=config, cache_dir=model_args.cache_dir)
    except (OSError, SafetensorError) as error:
        raise UsageError(
            f"--model_name_or_path '{source}' could not be loaded: {str(error).splitlines()[0]} "
            "(pass a folder saved with save_pretrained, or a Hub model id while online)"
        ) from error
    except ValueError as error:
        if "Unrecognized configuration class" not in str(error):
            raise
        raise UsageError(f"--model_name_or_path '{source}' is not a sequence-to-sequence model") from error
    return config, tokenizer, model


def make_compute_metrics(tokenizer, references: list[str], task: str, rouge_backend: str = "rouge_score"):
    """`compute_metrics` for the Trainer: ROUGE or BLEU of generated texts against the raw target lines.

    Under several processes the gathered predictions end with repeats of the first examples (the padding of
    the last batch); only the first len(references) rows, which are in input order, are kept.
    """

    def compute_metrics(eval_preds) -> dict:
        predictions, gen_len = decode_predictions(tokenizer, eval_preds.predictions, len(references))
        return {**score(predictions, references, task, rouge_backend), "gen_len": gen_len}

    return compute_metrics


def decode_predictions(tokenizer, token_ids, num_examples: int) -> tuple[list[str], float]:
    """One-line texts of the first `num_examples` generated rows, and their mean non-pad length."""
    if isinstance(token_ids, tuple):
        token_ids = token_ids[0]
    token_ids = np.asarray(token_ids)[:num_examples]
    token_ids = np.where(token_ids < 0, tokenizer.pad_token_id, token_ids)
    # Decoded as run_eval.py does, so both tools write the same text for the same generated ids.
    texts = tokenizer.batch_decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    gen_len = float(np.mean(np.count_nonzero(token_ids != tokenizer.pad_token_id, axis=1))) if len(texts) else 0.0
    return [" ".join(text.split("\n")).strip() for text in texts], round(gen_len, 4)


def score(predictions: list[str], references: list[str], task: str, rouge_backend: str = "rouge_score") -> dict:
    """Summarization: ROUGE from `rouge_backend` (rouge_score: bootstrap mid, as `run_eval.py`) with its
    `rouge_signature`; otherwise sacrebleu BLEU (as `calculate_bleu`) with its `bleu_signature`."""
    if "summarization" not in task:
        bleu = BLEU()
        return {
            "bleu": round(bleu.corpus_score(predictions, [references]).score, 4),
            "bleu_signature": str(bleu.get_signature()),
        }
    rouge = score_rouge(predictions, references, rouge_backend)
    return {**rouge.corpus, "rouge_signature": rouge.signature}


def setup_logging(training_args: LegacySeq2SeqTrainingArguments) -> None:
    """HF's log format on stdout. Unlike the task folders' `seq2seq_setup.setup_logging`, only the toolkit's own
    loggers (this script's, distillation.py's) log at info on the main process; transformers gets the process log
    level and datasets keeps its default."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    # Our own messages at info level on the main process; the libraries keep their (quieter) default.
    logger.setLevel(logging.INFO if training_args.should_log else training_args.get_process_log_level())
    logging.getLogger("distillation").setLevel(logger.level)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    # With CI=true in the environment transformers also passes its records to the root handler: each line twice.
    transformers.utils.logging.disable_propagation()


def prepare_run(training_args: LegacySeq2SeqTrainingArguments, last_checkpoint: str | None) -> None:
    """Clear an earlier run for --overwrite_output_dir, seed, and skip memory pinning on CPU."""
    if training_args.overwrite_output_dir and training_args.should_save:
        remove_previous_run(training_args.output_dir)
    if last_checkpoint is not None:
        logger.info(f"Resuming training from {last_checkpoint} (a run in --output_dir that was interrupted)")
    set_seed(training_args.seed)
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # pinning only helps copies to an accelerator


def prepare_model(
    model, tokenizer, data_args: DataTrainingArguments, freeze_embeddings: bool, freeze_enc: bool
) -> str:
    """Task-specific params, language codes, eval beams and freezing; returns the source prefix."""
    applied = use_task_specific_params(model, data_args.task)
    if applied:
        logger.info(f"task_specific_params[{data_args.task}] applied: {applied}")
    set_up_language_codes(model, tokenizer, data_args.src_lang, data_args.tgt_lang)
    if data_args.eval_beams is None:
        data_args.eval_beams = model.generation_config.num_beams or 1
    if freeze_embeddings:
        freeze_embeds(model)
    if freeze_enc:
        freeze_encoder(model)
    trainable, total = count_parameters(model)
    logger.info(f"parameters: {trainable:,} trainable of {total:,}")
    return data_args.prefix if data_args.prefix is not None else (getattr(model.config, "prefix", None) or "")


@dataclass
class Splits:
    train: Any = None
    val: Any = None
    test: Any = None
    train_lengths: list[int] | None = None  # for --sortish_sampler / --max_tokens_per_batch


def load_splits(tokenizer, data_args: DataTrainingArguments, training_args, prefix: str) -> Splits:
    """Lazy line datasets of the splits this run needs; --n_* = -1 keeps every line."""

    def dataset(type_path: str, n_obs: int, max_target_length: int) -> Seq2SeqDataset:
        return Seq2SeqDataset(
            tokenizer,
            data_args.data_dir,
            data_args.max_source_length,
            max_target_length,
            type_path=type_path,
            n_obs=n_obs,
            prefix=prefix,
        )

    splits = Splits()
    needed = needed_splits(training_args)
    if "train" in needed:
        splits.train = dataset("train", data_args.n_train, data_args.max_target_length)
    if "val" in needed:
        splits.val = dataset("val", data_args.n_val, data_args.val_max_target_length)
    if "test" in needed:
        splits.test = dataset("test", data_args.n_test, data_args.test_max_target_length)
    if splits.train is not None and (training_args.sortish_sampler or training_args.max_tokens_per_batch):
        splits.train_lengths = example_lengths(
            tokenizer, data_args.data_dir, "train", len(splits.train), data_args.max_source_length
        )
    return splits


def trainer_kwargs(model, tokenizer, data_args: DataTrainingArguments, training_args, splits: Splits) -> dict:
    """Arguments of a LegacySeq2SeqTrainer (or subclass): datasets, collator, metrics, the classic-outputs callback."""
    collator = Seq2SeqDataCollator(
        tokenizer,
        data_args.max_source_length,
        data_args.max_target_length,
        label_pad_token_id=-100 if data_args.ignore_pad_token_for_loss else tokenizer.pad_token_id,
        model=model,
        return_ids=False,
    )
    # Generation during evaluation: val length limit and beams (test gets its own in run_stages).
    training_args.generation_max_length = data_args.val_max_target_length
    training_args.generation_num_beams = data_args.eval_beams
    generating = training_args.predict_with_generate
    compute_metrics = None
    if generating and splits.val is not None:
        references = [splits.val[i]["tgt_texts"] for i in range(len(splits.val))]
        compute_metrics = make_compute_metrics(tokenizer, references, data_args.task, data_args.rouge_backend)
    best_metric = classic_best_metric(data_args.task, generating)
    callbacks = [
        ClassicOutputsCallback(
            training_args.output_dir, best_metric, greater_is_better=best_metric != "loss", tokenizer=tokenizer
        )
    ]
    if training_args.early_stopping_patience is not None:
        # The callback's count of evaluations without improvement is in every checkpoint: a resumed run keeps it.
        training_args.restore_callback_states_from_checkpoint = True
        callbacks.append(
            EarlyStoppingCallback(training_args.early_stopping_patience, training_args.early_stopping_threshold)
        )
    return {
        "model": model,
        "args": training_args,
        "train_dataset": splits.train,
        "eval_dataset": splits.val,
        "processing_class": tokenizer,
        "data_collator": collator,
        "compute_metrics": compute_metrics,
        "train_lengths": splits.train_lengths,
        "callbacks": callbacks,
    }


def log_early_stop(trainer) -> None:
    """Say when --early_stopping_patience ended training before its last step, and which model is kept."""
    args, state = trainer.args, trainer.state
    if args.early_stopping_patience is None or state.global_step >= state.max_steps:
        return
    logger.info(
        f"Early stopping: training stopped early at step {state.global_step} of {state.max_steps}, after "
        f"{args.early_stopping_patience} evaluation(s) in a row without improving eval_{args.metric_for_best_model} "
        f"by more than {args.early_stopping_threshold}; the model saved is the best evaluation's "
        f"(eval_{args.metric_for_best_model} {state.best_metric}, {state.best_model_checkpoint})"
    )


def run_stages(trainer, tokenizer, data_args: DataTrainingArguments, splits: Splits, last_checkpoint) -> dict:
    """Train, evaluate on val, predict on test as the flags say, writing the classic outputs; returns all metrics."""
    training_args = trainer.args
    output_dir = training_args.output_dir
    all_metrics = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint or last_checkpoint)
        log_early_stop(trainer)
        trainer.save_model()
        metrics = {**train_result.metrics, **trainer.padding_metrics(), "train_n_objs": len(splits.train)}
        trainer.log_metrics("train", metrics)
        save_results(trainer, "train", metrics)
        save_trainer_state(trainer)  # atomically, main process
        if trainer.is_world_process_zero():
            write_training_curves(output_dir)  # training_curves.png: loss, learning rate, eval metrics by step
        all_metrics.update(metrics)

    if training_args.do_eval:
        # The callback would file this final evaluation as a training-time one: it is recorded below instead. Early
        # stopping only counts evaluations during training (and would warn that this one has no eval_ metric).
        trainer.remove_callback(ClassicOutputsCallback)
        trainer.remove_callback(EarlyStoppingCallback)
        metrics = trainer.evaluate(metric_key_prefix="val")
        metrics["val_n_objs"] = len(splits.val)
        metrics["val_loss"] = round(metrics["val_loss"], 4)
        log_metrics(trainer, "val", metrics)
        save_results(trainer, "val", metrics)
        if trainer.is_world_process_zero():
            append_metrics(output_dir, "val", {"step": trainer.state.global_step, **metrics})
        all_metrics.update(metrics)

    # Predict on test: generations in input order, one per line, scored against test.target.
    if training_args.do_predict:
        output = trainer.predict(
            splits.test,
            metric_key_prefix="test",
            max_length=data_args.test_max_target_length,
            num_beams=data_args.eval_beams,
        )
        metrics = {**output.metrics, "test_n_objs": len(splits.test)}
        metrics["test_loss"] = round(metrics["test_loss"], 4)
        if training_args.predict_with_generate:
            predictions, gen_len = decode_predictions(tokenizer, output.predictions, len(splits.test))
            references = [splits.test[i]["tgt_texts"] for i in range(len(splits.test))]
            scores = score(predictions, references, data_args.task, data_args.rouge_backend)
            metrics.update({f"test_{key}": value for key, value in scores.items()})
            metrics["test_gen_len"] = gen_len
            if trainer.is_world_process_zero():
                write_txt_file(predictions, os.path.join(output_dir, "test_generations.txt"))  # atomic
        log_metrics(trainer, "test", metrics)
        save_results(trainer, "test", metrics)
        if trainer.is_world_process_zero():
            write_results_txt(os.path.join(output_dir, "test_results.txt"), metrics)
            append_metrics(output_dir, "test", {"step": trainer.state.global_step, **metrics})
        all_metrics.update(metrics)
    return all_metrics


def final_model_notes(trainer) -> list[str]:
    """For the model card: whether training stopped early and which checkpoint the saved model is."""
    args, state, notes = trainer.args, trainer.state, []
    if args.early_stopping_patience is not None and state.global_step < state.max_steps:
        notes.append(f"Training stopped early at step {state.global_step} of {state.max_steps} (early stopping).")
    if args.load_best_model_at_end and state.best_model_checkpoint:
        notes.append(
            f"Final weights: {os.path.basename(state.best_model_checkpoint)}, the best evaluation by "
            f"{args.metric_for_best_model} ({state.best_metric})."
        )
    return notes


def main(argv: list[str]) -> None:
    # Parse and check everything before loading anything.
    model_args, data_args, training_args = parse_args(argv)
    setup_logging(training_args)
    last_checkpoint = validate_args(model_args, data_args, training_args)
    prepare_run(training_args, last_checkpoint)

    # Model and tokenizer, task settings, languages, freezing; then the data.
    config, tokenizer, model = load_model_and_tokenizer(model_args, training_args)
    prefix = prepare_model(model, tokenizer, data_args, model_args.freeze_embeds, model_args.freeze_encoder)
    splits = load_splits(tokenizer, data_args, training_args, prefix)

    trainer = LegacySeq2SeqTrainer(**trainer_kwargs(model, tokenizer, data_args, training_args, splits))
    if trainer.is_world_process_zero():
        write_run_info(
            training_args.output_dir,
            {"model": asdict(model_args), "data": asdict(data_args), "training": training_args.to_dict()},
        )
    all_metrics = run_stages(trainer, tokenizer, data_args, splits, last_checkpoint)
    if trainer.is_world_process_zero():  # README.md: the results with their signatures, data, model, command line
        write_model_card(
            training_args.output_dir,
            base_model=model_args.model_name_or_path,
            task="summarization" if "summarization" in data_args.task else "translation",
            data={"--data_dir": data_args.data_dir, "--task": data_args.task},
            results=all_metrics,
            notes=final_model_notes(trainer) if training_args.do_train else [],
        )
        written = ", ".join(sorted(os.listdir(training_args.output_dir)))
        logger.info(f"Outputs in {os.path.abspath(training_args.output_dir)}: {written}")
    # Every process waits for the others, then closes the process group of a multi-process launch: a process that
    # exits while another one still runs can abort in gloo's threads ("terminate called without an active
    # exception") after all work is done.
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


def _mp_fn(index: int) -> None:
    """Entry point for TPU launches through xla_spawn.py (one call per TPU core)."""
    run_cli(main)


if __name__ == "__main__":
    run_cli(main)
