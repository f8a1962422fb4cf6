"""Early stopping on the evaluation metric, the best model, and averaged checkpoints: the flags both scripts of the
folder share and their checks, made before anything loads.

--early_stopping_patience N ends training once N evaluations in a row have not improved --metric_for_best_model by
more than --early_stopping_threshold; --load_best_model_at_end then saves, evaluates and predicts with the model of
the best evaluation. The Trainer scripts get both from transformers (`EarlyStoppingCallback`, the Trainer's best
checkpoint); the Accelerate twins from `record_evaluation` and `TrainingProgress`, with the same rules: an
evaluation resets the patience only when it beats the best so far by more than the threshold, and is the new best
when it beats it at all. --average_last_checkpoints N instead averages the last N saved checkpoints after training
(`average_checkpoints.py`) and uses that model.
"""

import json
import logging
import math
import os

from transformers import EarlyStoppingCallback

from average_checkpoints import check_average_last_checkpoints, complete_checkpoints, load_averaged_weights
from seq2seq_checks import UsageError
from seq2seq_data import check_num_return_sequences

logger = logging.getLogger(__name__)
EVALUATIONS_FIX = "add --do_train, --validation_file and --eval_strategy steps (or epoch)"

PATIENCE_HELP = (
    "Stop training once this many evaluations in a row have not improved --metric_for_best_model (by more than "
    "--early_stopping_threshold). Needs evaluations during training and --load_best_model_at_end. Default: off."
)
THRESHOLD_HELP = "How much --metric_for_best_model must improve to count as better for early stopping (default 0)."
METRIC_HELP = (
    "The evaluation metric that picks the best model and drives early stopping, e.g. rougeLsum, rouge2, bleu, chrf "
    "or loss (with or without the eval_ prefix). Higher is better unless the name ends in 'loss'."
)
LOAD_BEST_HELP = (
    "After training, save, evaluate and predict with the model of the best evaluation (by --metric_for_best_model) "
    "instead of the last one."
)
AVERAGE_HELP = (
    "After training, average the weights of the last N saved checkpoints (as fairseq's average_checkpoints.py and "
    "the Transformer paper do) and save, evaluate and predict with that model. Default: off."
)


def metric_key(name: str) -> str:
    """The key a metric has in evaluation results: `rouge2` -> `eval_rouge2` (names with the prefix stay)."""
    return name if name.startswith("eval_") else f"eval_{name}"


def greater_is_better(name: str) -> bool:
    """Higher is better, except for losses (the Trainer's default rule)."""
    return not name.endswith("loss")


def check_best_model_flags(
    patience: int | None,
    threshold: float,
    load_best: bool,
    metric: str | None,
    computed: list[str],
    evaluates: str | None,
    average_last: int | None = None,
    hint: str = "pick one of those",
) -> None:
    """Refuse flag values that cannot work, naming the fix; raises UsageError.

    `computed`: the metric names the run's evaluations produce (without the eval_ prefix); `evaluates`: None when
    training evaluates, else the fix that turns evaluations on (e.g. "add --eval_strategy steps"); `hint`: the fix
    for a metric that is not computed.
    """
    if patience is not None and patience < 1:
        raise UsageError(f"--early_stopping_patience must be at least 1 evaluation, got {patience}")
    if threshold < 0 or math.isnan(threshold):
        raise UsageError(f"--early_stopping_threshold must be 0 or more, got {threshold}")
    if threshold and patience is None:
        raise UsageError("--early_stopping_threshold needs --early_stopping_patience N; add it or drop the threshold")
    if patience is not None and not load_best:
        raise UsageError(
            "--early_stopping_patience keeps the best model, which needs --load_best_model_at_end: add "
            "--load_best_model_at_end True"
        )
    if average_last is not None and load_best:
        raise UsageError(
            "--average_last_checkpoints and --load_best_model_at_end each pick the final model; drop one of them"
        )
    if metric and metric.removeprefix("eval_") not in computed:
        raise UsageError(
            f"--metric_for_best_model {metric}: this run does not compute it (computed: {', '.join(computed)}); {hint}"
        )
    if not (load_best or patience is not None):
        return
    if evaluates is not None:
        raise UsageError(
            f"--load_best_model_at_end compares evaluations during training, but there are none: {evaluates}"
        )
    if not metric:
        raise UsageError(
            f"--load_best_model_at_end needs --metric_for_best_model (computed here: {', '.join(computed)})"
        )


def record_evaluation(
    progress, metrics: dict, metric: str, patience: int | None, threshold: float, checkpoint: str | None
) -> bool:
    """Note an evaluation of the twins in `progress` (their `TrainingProgress`, saved in every checkpoint so a
    resumed run keeps counting); return True when training should stop.

    Patience resets only when the metric beats the best so far by more than `threshold`; the evaluation becomes the
    best (with `checkpoint`, the folder saved right after it) whenever it beats it at all, as in the Trainer.
    """
    value = metrics[metric_key(metric)]
    better = (lambda a, b: a > b) if greater_is_better(metric) else (lambda a, b: a < b)
    best = progress.best_metric
    if best is None or (better(value, best) and abs(value - best) > threshold):
        progress.evaluations_without_improvement = 0
    else:
        progress.evaluations_without_improvement += 1
    if best is None or better(value, best):
        progress.best_metric, progress.best_checkpoint, progress.best_step = (
            value,
            checkpoint,
            progress.completed_steps,
        )
    progress.stopped_early = patience is not None and progress.evaluations_without_improvement >= patience
    return progress.stopped_early


def check_trainer_final_model_args(args, num_beams: int | None, generated_metrics: list[str], hint: str) -> None:
    """The Trainer scripts' checks of the flags that pick the final model and of the n-best lists, before anything
    loads: `generated_metrics` are what --predict_with_generate adds to the loss (e.g. ROUGE), `hint` the fix for
    asking one of them without it; `num_beams` the script's --num_beams. Raises UsageError."""
    generates = args.predict_with_generate
    check_best_model_flags(
        args.early_stopping_patience,
        args.early_stopping_threshold,
        args.load_best_model_at_end,
        args.metric_for_best_model,
        ["loss", *generated_metrics, "gen_len"] if generates else ["loss"],
        None if args.do_train and args.eval_strategy != "no" else EVALUATIONS_FIX,
        args.average_last_checkpoints,
        "pick one of those" if generates else hint,
    )
    check_trainer_averaging(args)
    check_num_return_sequences(
        args.num_return_sequences,
        num_beams or args.generation_num_beams,
        args.do_predict and generates,
        args.generation_backend,
    )


def check_trainer_averaging(args) -> None:
    """--average_last_checkpoints N in the Trainer scripts needs training that saves at least N checkpoints and
    keeps them; raises UsageError."""
    check_average_last_checkpoints(
        args.average_last_checkpoints,
        args.do_train and args.save_strategy != "no",
        "--do_train and --save_strategy steps (or epoch)",
        args.save_total_limit,
    )


def early_stopping_callbacks(args) -> list:
    """transformers' `EarlyStoppingCallback` for --early_stopping_patience (none without it). Its count of
    evaluations without improvement is saved in every checkpoint; `restore_callback_states_from_checkpoint` makes a
    resumed run keep counting instead of starting over."""
    if args.early_stopping_patience is None:
        return []
    args.restore_callback_states_from_checkpoint = True
    return [EarlyStoppingCallback(args.early_stopping_patience, args.early_stopping_threshold)]


def average_last_checkpoints_into(model, output_dir: str, count: int) -> list[str]:
    """Load the average of the last `count` complete checkpoints in `output_dir` into `model` (fewer, with a
    warning, when training saved fewer); return the model card's note naming them."""
    checkpoints = complete_checkpoints(output_dir)[-count:]
    if len(checkpoints) < count:
        logger.warning(
            f"--average_last_checkpoints {count}: training saved only {len(checkpoints)} checkpoint(s); averaging those"
        )
    if not checkpoints:
        return []
    load_averaged_weights(model, checkpoints)
    names = ", ".join(os.path.basename(path) for path in checkpoints)
    logger.info(f"Final model: the average of {names}")
    return [f"Final weights: the average of the last {len(checkpoints)} checkpoints ({names})."]


def finish_trainer_training(trainer) -> list[str]:
    """After `trainer.train()`: put the average of the last --average_last_checkpoints checkpoints into the model
    (every process), and return notes for the model card on how the final weights were chosen."""
    args, state, notes = trainer.args, trainer.state, []
    if args.early_stopping_patience is not None and state.global_step < state.max_steps:
        notes.append(
            f"Training stopped early at step {state.global_step} of {state.max_steps}: "
            f"{args.early_stopping_patience} evaluation(s) in a row without improving {args.metric_for_best_model}."
        )
    if args.load_best_model_at_end and state.best_model_checkpoint:
        notes.append(
            f"Final weights: the best evaluation's ({metric_key(args.metric_for_best_model)} {state.best_metric} at "
            f"{os.path.basename(state.best_model_checkpoint)}), loaded at the end of training."
        )
    if args.average_last_checkpoints:
        notes += average_last_checkpoints_into(trainer.model, args.output_dir, args.average_last_checkpoints)
    return notes


def add_best_model_arguments(parser) -> None:
    """The twins' flags for early stopping, the best model and averaged checkpoints (the Trainer's names)."""
    group = parser.add_argument_group("best model")
    group.add_argument("--early_stopping_patience", type=int, help=PATIENCE_HELP)
    group.add_argument("--early_stopping_threshold", type=float, default=0.0, help=THRESHOLD_HELP)
    group.add_argument("--metric_for_best_model", help=METRIC_HELP)
    group.add_argument("--load_best_model_at_end", action="store_true", help=LOAD_BEST_HELP)
    group.add_argument("--average_last_checkpoints", type=int, help=AVERAGE_HELP)


def check_accelerate_best_model_flags(args, computed: list[str], evaluates: str | None) -> None:
    """The twins' checks of those flags: they evaluate after every epoch, so the best model is an epoch_N
    checkpoint (--checkpointing_steps epoch), and averaging needs checkpoints; raises UsageError."""
    check_best_model_flags(
        args.early_stopping_patience,
        args.early_stopping_threshold,
        args.load_best_model_at_end,
        args.metric_for_best_model,
        computed,
        evaluates,
        args.average_last_checkpoints,
    )
    if args.load_best_model_at_end and args.checkpointing_steps != "epoch":
        raise UsageError(
            "--load_best_model_at_end restores the checkpoint of the best evaluation, and evaluations come after "
            "each epoch: add --checkpointing_steps epoch"
        )
    check_average_last_checkpoints(
        args.average_last_checkpoints, args.checkpointing_steps is not None, "--checkpointing_steps N (or epoch)"
    )


def finish_accelerate_training(model, args, progress) -> tuple[list[str], bool]:
    """After the twins' training loop: load the best epoch's weights (--load_best_model_at_end) or the average of
    the last checkpoints into `model` (the unwrapped one, on every process). Returns the notes for the model card,
    and whether `model` now differs from the one the last evaluation saw (then it needs an evaluation of its own)."""
    notes, changed = [], False
    if args.early_stopping_patience is not None and progress.stopped_early:
        notes.append(
            f"Training stopped early at step {progress.completed_steps}: {args.early_stopping_patience} "
            f"evaluation(s) in a row without improving {args.metric_for_best_model}."
        )
    if args.load_best_model_at_end and progress.best_checkpoint is not None:
        load_averaged_weights(model, [os.path.join(args.output_dir, progress.best_checkpoint)])
        logger.info(f"Final model: {progress.best_checkpoint}, the best evaluation ({progress.best_metric})")
        notes.append(
            f"Final weights: the best evaluation's ({metric_key(args.metric_for_best_model)} {progress.best_metric} "
            f"at {progress.best_checkpoint}, step {progress.best_step}), loaded at the end of training."
        )
        changed = progress.best_step != progress.completed_steps
    if args.average_last_checkpoints:
        averaged = average_last_checkpoints_into(model, args.output_dir, args.average_last_checkpoints)
        notes, changed = notes + averaged, changed or bool(averaged)
    return notes, changed


def note_epoch_evaluation(args, progress, metrics: dict, epoch: int, eval_log) -> bool:
    """The twins' bookkeeping after an epoch's evaluation: a line in eval_log.jsonl with the step and the numeric
    metrics (training_curves.py draws it; `eval_log` is None on other processes), then the best model and early
    stopping (`record_evaluation`, against the epoch_N checkpoint saved next). Returns True to stop training."""
    if eval_log is not None:
        numbers = {key: value for key, value in metrics.items() if not isinstance(value, str)}
        eval_log.write(json.dumps({"step": progress.completed_steps, "epoch": epoch, **numbers}) + "\n")
        eval_log.flush()
    if args.metric_for_best_model is None:
        return False
    checkpoint = f"epoch_{epoch}" if args.checkpointing_steps == "epoch" else None
    stop = record_evaluation(
        progress,
        metrics,
        args.metric_for_best_model,
        args.early_stopping_patience,
        args.early_stopping_threshold,
        checkpoint,
    )
    if stop:
        logger.info(
            f"Early stopping at step {progress.completed_steps}: {args.early_stopping_patience} evaluation(s) without "
            f"improving {args.metric_for_best_model} (best {progress.best_metric} at step {progress.best_step})"
        )
    return stop
