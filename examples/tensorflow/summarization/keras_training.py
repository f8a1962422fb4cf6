"""The Keras machinery of the TensorFlow seq2seq scripts: quiet TensorFlow start-up, log set-up, the Keras-specific
argument checks, loading a TF model, XLA generation, and training with `model.fit` over whole epochs with resumable
epoch checkpoints.

Shared by the Keras summarization and translation scripts, kept identical by `utils/check_copies.py` (edit the
summarization copy, then `make fix-copies`). Only the Keras folders use it, so it imports TensorFlow; the scripts
import it before anything else, so that TensorFlow is first imported here, with its start-up notices hidden.
"""

import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager

# TensorFlow's C++ notices (oneDNN, CUDA probing, CPU instructions, XLA service): hidden unless the user set
# TF_CPP_MIN_LOG_LEVEL (0 shows them all). The level only reaches the notices printed after start-up; those printed
# while TensorFlow is imported (before its log set-up) are filtered out of stderr by `tensorflow_notices_hidden`.
TENSORFLOW_NOTICES_ASKED_FOR = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# absl/TensorFlow C++ log lines (I1203 14:10:00.123 or I0000 00:00:1796307090.939790, then the pid and the source
# file), the absl banner before them, the CPU-instructions notice's second line, and "no CUDA driver" on a CPU machine.
NATIVE_NOTICE = re.compile(
    r"[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ |WARNING: All log messages before absl::InitializeLog|To enable the following "
    r"instructions:|E\d{4} \d\d:\d\d:[\d.]+ +\d+ cuda_\w+\.cc:\d+\] failed call to cuInit"
)


@contextmanager
def tensorflow_notices_hidden():
    """Send what is written to the stderr file descriptor (by C++ code too) to a temporary file while the block runs;
    afterwards write back every line that is not one of TensorFlow's start-up notices (`NATIVE_NOTICE`). Does
    nothing when the user set TF_CPP_MIN_LOG_LEVEL."""
    try:
        saved = None if TENSORFLOW_NOTICES_ASKED_FOR or sys.stderr is None else os.dup(2)
    except OSError:  # no stderr descriptor to redirect (a closed one)
        saved = None
    if saved is None:
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not NATIVE_NOTICE.match(line)
            ]  # fmt: skip
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


with tensorflow_notices_hidden():
    import tensorflow as tf

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import tf_keras  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoConfig, AutoTokenizer, TFAutoModelForSeq2SeqLM, create_optimizer  # noqa: E402

from seq2seq_checks import (  # noqa: E402
    UsageError,
    check_flag_values,
    check_integrations,
    check_model_reachable,
    check_output_dir,
    check_tokenizer_files,
    checkpoint_problem,
    is_offline_mode,
    last_complete_checkpoint,
    set_sibling_log_level,
    write_json_atomically,
)

logger = logging.getLogger(__name__)


# Keras checkpoints: the weights and optimizer state of `checkpoint-N/`, written before its trainer_state.json.
CHECKPOINT_PREFIX = "tf_checkpoint"
# What a resume reads from checkpoint-N (see `checkpoint_problem`): the checkpoint's index and its data (one shard, as
# `tf.train.Checkpoint.write` saves from one process), and the trainer_state.json written after them.
KERAS_CHECKPOINT_FILES = (
    (f"{CHECKPOINT_PREFIX}.index",),
    (f"{CHECKPOINT_PREFIX}.data-00000-of-00001",),
    ("trainer_state.json",),
)
LR_SCHEDULES = ("linear", "constant")
# Library messages that say nothing to a user of these scripts: the deprecation of TF classes (these scripts exist
# for that stack, see their docstrings) and the good news that every weight was loaded. Shown with --log_level info.
QUIET_TRANSFORMERS_MESSAGES = (
    "TensorFlow and JAX classes are deprecated",
    "All model checkpoint layers were used",
    "All the layers of ",
)


def setup_logging(training_args) -> None:
    """HF's log format on stdout: our messages (the script and this folder's modules) at info and the libraries' at
    warning, with their routine notices left out (`QUIET_TRANSFORMERS_MESSAGES`); --log_level info/debug makes
    everything speak at that level."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    requested = transformers.utils.logging.log_levels.get(training_args.log_level)  # None for "passive"
    ours, libraries = (requested, requested) if requested is not None else (logging.INFO, logging.WARNING)
    set_sibling_log_level(ours)
    datasets.utils.logging.set_verbosity(libraries)
    transformers.utils.logging.set_verbosity(libraries)
    tf.get_logger().setLevel(max(libraries, logging.WARNING))
    if libraries >= logging.WARNING:
        logging.getLogger("transformers.modeling_tf_utils").addFilter(
            lambda record: not record.getMessage().startswith(QUIET_TRANSFORMERS_MESSAGES)
        )
    # With CI=true in the environment transformers also passes its records to the root handler: each line twice.
    transformers.utils.logging.disable_propagation()


def save_results(output_dir: str, split: str, metrics: dict) -> None:
    """Write `{split}_results.json` and merge the metrics into `all_results.json` (both atomically)."""
    write_json_atomically(os.path.join(output_dir, f"{split}_results.json"), metrics)
    all_results_path = os.path.join(output_dir, "all_results.json")
    all_results = {}
    if os.path.isfile(all_results_path):
        with open(all_results_path, encoding="utf-8") as handle:
            all_results = json.load(handle)
    write_json_atomically(all_results_path, {**all_results, **metrics})


def log_metrics(split: str, metrics: dict) -> None:
    """Log one stage's metrics, one per line, like `Trainer.log_metrics`."""
    logger.info(f"***** {split} metrics *****")
    for key in sorted(metrics):
        logger.info(f"  {key} = {metrics[key]}")


def check_keras_run_args(model_args, data_args, training_args) -> None:
    """Check what the Keras scripts need of their arguments: flag values, whole epochs, a learning-rate schedule the
    Keras optimizer has, --fp16 only on a GPU, --report_to packages, Hub access and --resume_from_checkpoint; raise
    UsageError naming the fix."""
    check_flag_values(model_args, data_args, training_args)
    if training_args.do_train and training_args.max_steps <= 0 and int(training_args.num_train_epochs) < 1:
        raise UsageError(
            f"--num_train_epochs {training_args.num_train_epochs}: Keras trains whole epochs; pass 1 or more "
            "(or --max_steps)"
        )
    schedule = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)  # an enum
    if schedule not in LR_SCHEDULES:
        raise UsageError(
            f"--lr_scheduler_type {schedule}: the Keras optimizer supports "
            f"{' and '.join(LR_SCHEDULES)} (with warmup); pass one of them"
        )
    if training_args.fp16 and not training_args.tpu_name:
        check_fp16_device(training_args)
    check_integrations("--report_to", training_args.report_to)
    if (training_args.do_eval or training_args.do_predict) and not training_args.predict_with_generate:
        logger.warning("with --predict_with_generate False, eval/predict report only the loss, no generation metrics")
    if training_args.push_to_hub and is_offline_mode():
        raise UsageError(
            "--push_to_hub needs the network, but HF_HUB_OFFLINE=1 is set; unset it or drop --push_to_hub"
        )
    check_model_reachable("--model_name_or_path", model_args.model_name_or_path)
    check_model_reachable("--config_name", model_args.config_name)
    check_model_reachable("--tokenizer_name", model_args.tokenizer_name)
    check_model_folder(model_args)
    check_resume_checkpoint(training_args)


def safetensors_format(path: str) -> str | None:
    """The framework that wrote a .safetensors file ("tf", "pt", ...), from the metadata in its header; None if
    the header does not say or cannot be read."""
    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if length > os.path.getsize(path) - 8:
                return None
            header = json.loads(handle.read(length))
        return header.get("__metadata__", {}).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def check_model_folder(model_args) -> None:
    """For a local --model_name_or_path: raise UsageError unless it has a config.json, TensorFlow weights (tf_model.h5,
    or a model.safetensors written by TensorFlow: transformers 4.57 cannot read PyTorch's into a TF model) and, unless
    --tokenizer_name is given, tokenizer files."""
    folder = model_args.model_name_or_path
    if not os.path.isdir(folder):
        return
    present = set(os.listdir(folder))
    if "config.json" not in present and model_args.config_name is None:
        raise UsageError(
            f"--model_name_or_path {folder} has no config.json, so it is no saved model; pass a folder saved with "
            "save_pretrained (or --config_name)"
        )
    safetensors = os.path.join(folder, "model.safetensors")
    written_by = safetensors_format(safetensors) if "model.safetensors" in present else "absent"
    if written_by is None:
        raise UsageError(
            f"--model_name_or_path {folder}: {safetensors} is not a readable safetensors file (a broken copy or an "
            "unfinished download?); save or download the model again"
        )
    tf_weights = written_by == "tf" or bool(present & {"tf_model.h5", "tf_model.h5.index.json"})
    torch_weights = sorted(present & {"pytorch_model.bin", "pytorch_model.bin.index.json"})
    torch_weights += ["model.safetensors"] if written_by == "pt" else []
    if not tf_weights and torch_weights:
        raise UsageError(
            f"--model_name_or_path {folder} holds PyTorch weights ({', '.join(torch_weights)}), and the Keras scripts "
            "load TensorFlow ones; use the PyTorch script of this task on it, or convert it where torch is installed: "
            "TFAutoModelForSeq2SeqLM.from_pretrained(folder, from_pt=True).save_pretrained(new_folder)"
        )
    if model_args.tokenizer_name is None:
        check_tokenizer_files("--model_name_or_path", folder)


def check_fp16_device(training_args) -> None:
    """Refuse --fp16 without a GPU: Keras' mixed_float16 on the CPU emulates float16 (slower than float32) and trains
    these models to NaN from the first step (float16 overflows in attention and layer norms). Raises UsageError."""
    with tensorflow_notices_hidden():  # the device probe prints "failed call to cuInit" on a machine without GPUs
        gpus = [] if training_args.no_cuda else tf.config.list_physical_devices("GPU")
    if not gpus:
        raise UsageError(
            "--fp16 without a GPU: TensorFlow's mixed_float16 on the CPU is slower than float32 and trains these "
            "models to NaN losses; drop --fp16 (use it on a GPU)"
        )


def check_resume_checkpoint(training_args) -> None:
    """Resolve --resume_from_checkpoint true/last to the newest complete checkpoint-N of --output_dir, and check
    that a given folder holds everything a resume reads (`KERAS_CHECKPOINT_FILES`). Raises UsageError."""
    resume = training_args.resume_from_checkpoint
    if resume is None:
        return
    if resume.lower() in ("true", "last"):
        output_dir = training_args.output_dir
        resume = last_complete_checkpoint(output_dir, KERAS_CHECKPOINT_FILES) if os.path.isdir(output_dir) else None
        if resume is None:
            raise UsageError(
                f"--resume_from_checkpoint {training_args.resume_from_checkpoint}: no complete "
                f"checkpoint-* folder in {output_dir}; drop the flag to start from the beginning"
            )
        training_args.resume_from_checkpoint = resume
        return
    if not os.path.isdir(resume):
        raise UsageError(f"--resume_from_checkpoint {resume}: no such folder; pass a checkpoint-N folder of a run")
    match = re.fullmatch(r"checkpoint-(\d+)", os.path.basename(os.path.normpath(resume)))
    problem = checkpoint_problem(resume, int(match.group(1)) if match else None, KERAS_CHECKPOINT_FILES)
    if problem is not None:
        raise UsageError(
            f"--resume_from_checkpoint {resume}: not a complete Keras checkpoint ({problem}); pass another "
            "checkpoint-N folder"
        )


def setup_strategy(training_args):
    """`training_args.strategy` (devices found, TPU connected, mixed precision set), with the device probe's notices
    hidden: TensorFlow prints "failed call to cuInit" on every machine without a GPU."""
    with tensorflow_notices_hidden():
        return training_args.strategy


def check_keras_output_dir(training_args) -> str | None:
    """`check_output_dir` for the Keras checkpoints: take the --output_dir lock and return the last complete
    checkpoint-N to resume from (or None); raise UsageError for a folder holding an earlier run's results."""
    return check_output_dir(training_args, checkpoint_files=KERAS_CHECKPOINT_FILES)


def fit_position_embeddings(model, data_args) -> None:
    """Lower --max_source_length to the model's number of position embeddings (TF models cannot resize them)."""
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions is not None and max_positions < data_args.max_source_length:
        logger.warning(
            f"--max_source_length {data_args.max_source_length} lowered to {max_positions}, the number of position "
            f"embeddings of this {model.config.model_type} model (TensorFlow models cannot resize them)"
        )
        data_args.max_source_length = max_positions


def load_model_and_tokenizer(model_args):
    """Load config, tokenizer and TF model; a folder or Hub id that cannot be loaded raises UsageError."""
    common = {
        "cache_dir": model_args.cache_dir,
        "revision": model_args.model_revision,
        "token": model_args.token,
        "trust_remote_code": model_args.trust_remote_code,
    }
    source = model_args.model_name_or_path
    try:
        config = AutoConfig.from_pretrained(model_args.config_name or source, **common)
        tokenizer = AutoTokenizer.from_pretrained(
            model_args.tokenizer_name or source, use_fast=model_args.use_fast_tokenizer, **common
        )
        model = TFAutoModelForSeq2SeqLM.from_pretrained(source, config=config, **common)
    except OSError as error:
        raise UsageError(
            f"--model_name_or_path '{source}' could not be loaded: {str(error).splitlines()[0]} "
            "(pass a folder saved with save_pretrained, or a Hub model id while online)"
        ) from error
    except ValueError as error:
        if "Unrecognized configuration class" not in str(error):
            raise
        raise UsageError(
            f"--model_name_or_path '{source}' is a {config.model_type} model, not a sequence-to-sequence "
            "(encoder-decoder) model with TensorFlow weights; use e.g. a T5, BART, mBART, Pegasus or Marian checkpoint"
        ) from error
    # A tokenizer with added tokens needs matching embedding rows (the embedding layer names its matrix
    # `embeddings` in Keras and `weight` in transformers' shared embeddings).
    embedding = model.get_input_embeddings()
    rows = (embedding.embeddings if hasattr(embedding, "embeddings") else embedding.weight).shape[0]
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer))
    return config, tokenizer, model


def make_generate_function(model, generate_kwargs: dict, use_xla: bool):
    """Return `generate(input_ids, attention_mask)`: XLA-compiled (one compilation per input shape) or eager.

    XLA generation cannot ban repeated n-grams, so a model whose generation config sets `no_repeat_ngram_size`
    (BART-large-CNN: 3) generates without it under XLA, with a warning; `generate_kwargs` is updated to match.
    """
    banned_ngrams = generate_kwargs.get("no_repeat_ngram_size", model.generation_config.no_repeat_ngram_size)
    if use_xla and banned_ngrams:
        logger.warning(
            f"no_repeat_ngram_size={banned_ngrams} (from the model's generation config) does not work with XLA "
            "generation and is turned off; pass --use_xla_generation False to keep it"
        )
        generate_kwargs["no_repeat_ngram_size"] = 0

    def generate(input_ids, attention_mask):
        return model.generate(input_ids, attention_mask=attention_mask, **generate_kwargs)

    return tf.function(generate, jit_compile=True) if use_xla else generate


def generate_token_ids(generate, tf_dataset: tf.data.Dataset, pad_token_id: int) -> np.ndarray:
    """Run `generate` over every batch of `tf_dataset` (in order); return the ids, right-padded to one length."""
    batches = []
    for batch in tf_dataset:
        inputs = batch[0] if isinstance(batch, tuple) else batch
        batches.append(np.asarray(generate(inputs["input_ids"], attention_mask=inputs["attention_mask"])))
    if not batches:
        return np.zeros((0, 1), dtype=np.int64)
    width = max(ids.shape[1] for ids in batches)
    return np.concatenate(
        [np.pad(ids, ((0, 0), (0, width - ids.shape[1])), constant_values=pad_token_id) for ids in batches]
    )


def to_tf_dataset(model, dataset, collate_fn, batch_size: int) -> tf.data.Dataset:
    """`dataset` as batches for evaluate()/generation: in order, every example kept; auto-sharding off, as the
    batches are already per step."""
    tf_dataset = model.prepare_tf_dataset(
        dataset, collate_fn=collate_fn, batch_size=batch_size, shuffle=False, drop_remainder=False
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return tf_dataset.with_options(options)


def epoch_order(num_examples: int, batch_size: int, seed: int, first_epoch: int, num_epochs: int) -> list[int]:
    """Example indices for epochs first_epoch..num_epochs-1, each a permutation drawn from `seed + epoch`, cut to
    whole batches. Seeding by epoch number makes a resumed run see exactly the order the uninterrupted one saw."""
    per_epoch = (num_examples // batch_size) * batch_size
    order = []
    for epoch in range(first_epoch, num_epochs):
        order.extend(np.random.default_rng(seed + epoch).permutation(num_examples)[:per_epoch].tolist())
    return order


def mean_train_loss(log_history: list[dict]) -> float:
    """The mean loss over all optimization steps (each epoch's mean weighted by its steps), as the Trainer logs."""
    total, previous_step = 0.0, 0
    for entry in log_history:
        total += entry["loss"] * (entry["step"] - previous_step)
        previous_step = entry["step"]
    return round(total / max(previous_step, 1), 6)


class EpochCheckpoint(tf_keras.callbacks.Callback):
    """At the end of each epoch: append the epoch's losses and metrics to `log_history`, and (when `save`) write
    `checkpoint-<step>/` with the Keras weights and optimizer state, then `trainer_state.json` last, so a folder
    with a readable trainer_state.json is complete. `--save_total_limit` keeps only the newest folders."""

    def __init__(self, output_dir: str, checkpoint: tf.train.Checkpoint, log_history: list, save: bool, limit):
        super().__init__()
        self.output_dir, self.checkpoint, self.log_history = output_dir, checkpoint, log_history
        self.save, self.limit = save, limit

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        entry = {"epoch": epoch + 1, "step": step}
        for key, value in (logs or {}).items():
            name = "eval_loss" if key == "val_loss" else key
            entry[name] = round(float(value), 6) if name.endswith("loss") else value
        self.log_history.append(entry)
        logger.info(f"epoch {epoch + 1}: {entry}")
        if not self.save:
            return
        folder = os.path.join(self.output_dir, f"checkpoint-{step}")
        os.makedirs(folder, exist_ok=True)
        self.checkpoint.write(os.path.join(folder, CHECKPOINT_PREFIX))
        state = {"global_step": step, "epoch": epoch + 1, "log_history": self.log_history}
        write_json_atomically(os.path.join(folder, "trainer_state.json"), state)
        if self.limit:
            steps = sorted(
                int(match.group(1))
                for name in os.listdir(self.output_dir)
                if (match := re.fullmatch(r"checkpoint-(\d+)", name))
            )
            for old in steps[: -self.limit]:
                shutil.rmtree(os.path.join(self.output_dir, f"checkpoint-{old}"))


class StopAtStep(tf_keras.callbacks.Callback):
    """Stop training after `max_steps` optimizer steps (--max_steps), mid-epoch if need be."""

    def __init__(self, max_steps: int):
        super().__init__()
        self.max_steps = max_steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.max_steps:
            self.model.stop_training = True


class StopOnNonFiniteLoss(tf_keras.callbacks.Callback):
    """Stop training with a UsageError at the first step whose loss is NaN or infinite (Keras' running mean of the
    epoch, so it stays so once a step diverged): the weights are broken from there on, and no checkpoint or result
    of them is written."""

    def __init__(self, training_args):
        super().__init__()
        self.training_args = training_args

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if math.isfinite(loss):
            return
        args = self.training_args
        step = int(self.model.optimizer.iterations.numpy())
        kept = (
            last_complete_checkpoint(args.output_dir, KERAS_CHECKPOINT_FILES)
            if os.path.isdir(args.output_dir)
            else None
        )
        raise UsageError(
            f"the training loss became {loss} at step {step} (--learning_rate {args.learning_rate}"
            f"{', --fp16' if args.fp16 else ''}): training diverged; lower --learning_rate"
            f"{' or drop --fp16' if args.fp16 else ''} and start again"
            f"{f' (the last finite checkpoint is {kept})' if kept else ''}"
        )


def plan_training(training_args, num_examples: int) -> dict:
    """The shape of the training run: batch size (per device x replicas), steps per epoch, epochs, optimization
    steps and warmup steps (from --max_steps or --num_train_epochs). Raises UsageError when the batch is larger
    than the training set."""
    replicas = training_args.strategy.num_replicas_in_sync
    batch_size = training_args.per_device_train_batch_size * replicas
    steps_per_epoch = num_examples // batch_size
    if steps_per_epoch == 0:
        raise UsageError(
            f"--per_device_train_batch_size {training_args.per_device_train_batch_size} x {replicas} replicas is "
            f"more than the {num_examples} training examples; pass a smaller batch size"
        )
    if training_args.max_steps > 0:
        total_steps = training_args.max_steps
        num_epochs = math.ceil(total_steps / steps_per_epoch)
    else:
        num_epochs = int(training_args.num_train_epochs)
        total_steps = steps_per_epoch * num_epochs
    warmup_steps = training_args.warmup_steps or math.ceil(total_steps * training_args.warmup_ratio)
    return {
        "batch_size": batch_size,
        "steps_per_epoch": steps_per_epoch,
        "num_epochs": num_epochs,
        "total_steps": total_steps,
        "warmup_steps": warmup_steps,
    }


def describe_keras_run(training_args, train_dataset=None, eval_dataset=None, predict_dataset=None) -> str:
    """One line with the settings users most often get wrong: examples per split, the batch each optimizer step
    sees (per device x replicas), the number of steps, precision, device, strategy and XLA. Raises UsageError
    like `plan_training`."""
    strategy = training_args.strategy
    parts = []
    if train_dataset is not None:
        plan = plan_training(training_args, len(train_dataset))
        parts.append(
            f"training on {len(train_dataset)} examples: {plan['total_steps']} steps ({plan['num_epochs']} epoch(s) of "
            f"{plan['steps_per_epoch']}, {plan['warmup_steps']} warmup) of {plan['batch_size']} examples "
            f"({training_args.per_device_train_batch_size} per device x {strategy.num_replicas_in_sync} replicas)"
        )
    if eval_dataset is not None:
        parts.append(f"evaluating on {len(eval_dataset)}")
    if predict_dataset is not None:
        parts.append(f"predicting {len(predict_dataset)}")
    device = (
        "tpu"
        if isinstance(strategy, tf.distribute.TPUStrategy)
        else "gpu"
        if tf.config.list_logical_devices("GPU")
        else "cpu"
    )
    parts.append(
        f"{tf_keras.mixed_precision.global_policy().name} on {device} ({type(strategy).__name__}, "
        f"{strategy.num_replicas_in_sync} replicas), TensorFlow {tf.__version__}, XLA training: {training_args.xla}, "
        f"XLA generation: {training_args.use_xla_generation}"
    )
    return "Run: " + "; ".join(parts)


def build_optimizer(training_args, total_steps: int, warmup_steps: int):
    """transformers' AdamW-style Keras optimizer with linear warmup, then linear (or, for
    --lr_scheduler_type constant, no) decay to 0 over `total_steps`; clipped by --max_grad_norm."""
    optimizer, _ = create_optimizer(
        init_lr=training_args.learning_rate,
        num_train_steps=total_steps,
        num_warmup_steps=warmup_steps,
        adam_beta1=training_args.adam_beta1,
        adam_beta2=training_args.adam_beta2,
        adam_epsilon=training_args.adam_epsilon,
        weight_decay_rate=training_args.weight_decay,
        adam_global_clipnorm=training_args.max_grad_norm,
        # A polynomial decay of power 0 keeps the rate constant after the warmup.
        power=0.0 if training_args.lr_scheduler_type == "constant" else training_args.poly_power,
    )
    return optimizer


def train_model(
    model, train_dataset, data_collator, tf_eval_dataset, callbacks: list, training_args, checkpoint_dir
) -> dict:
    """Compile and `fit` the model over whole epochs (resuming from `checkpoint_dir`, if given), with a checkpoint
    and a log_history entry per epoch; write trainer_state.json and return the train metrics.

    Raises UsageError when the batch is larger than the training set, or when the loss stops being finite.
    """
    plan = plan_training(training_args, len(train_dataset))
    batch_size, steps_per_epoch, num_epochs = plan["batch_size"], plan["steps_per_epoch"], plan["num_epochs"]
    callbacks = [StopOnNonFiniteLoss(training_args), *callbacks]
    if training_args.max_steps > 0:
        callbacks.append(StopAtStep(plan["total_steps"]))
    with training_args.strategy.scope():
        optimizer = build_optimizer(training_args, plan["total_steps"], plan["warmup_steps"])
        # No loss argument: the model computes its own (masked) loss from the labels in the batch.
        model.compile(optimizer=optimizer, jit_compile=training_args.xla)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    first_epoch, log_history = 0, []
    if checkpoint_dir is not None:
        # Slot variables that Adam creates on its first step are restored then (deferred restoration).
        checkpoint.read(os.path.join(checkpoint_dir, CHECKPOINT_PREFIX)).expect_partial()
        with open(os.path.join(checkpoint_dir, "trainer_state.json"), encoding="utf-8") as handle:
            state = json.load(handle)
        first_epoch, log_history = state["epoch"], state["log_history"]
        logger.info(f"restored {checkpoint_dir}: epoch {first_epoch}, step {int(optimizer.iterations.numpy())}")
    order = epoch_order(len(train_dataset), batch_size, training_args.seed, first_epoch, num_epochs)
    tf_train_dataset = model.prepare_tf_dataset(
        train_dataset.select(order),
        collate_fn=data_collator,
        batch_size=batch_size,
        shuffle=False,  # shuffled per epoch by epoch_order, reproducibly across a resume
        drop_remainder=True,
    )
    save, limit = training_args.save_strategy != "no", training_args.save_total_limit
    callbacks.append(EpochCheckpoint(training_args.output_dir, checkpoint, log_history, save, limit))
    start = time.perf_counter()
    if first_epoch < num_epochs:
        model.fit(
            tf_train_dataset,
            validation_data=tf_eval_dataset,
            epochs=num_epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=2,
        )
    step = int(optimizer.iterations.numpy())
    epoch = log_history[-1]["epoch"] if log_history else 0
    os.makedirs(training_args.output_dir, exist_ok=True)
    state = {"global_step": step, "epoch": epoch, "log_history": log_history}
    write_json_atomically(os.path.join(training_args.output_dir, "trainer_state.json"), state)
    return {
        "train_loss": mean_train_loss(log_history),
        "train_runtime": round(time.perf_counter() - start, 4),
        "train_samples": len(train_dataset),
        "train_steps": step,
        "epoch": round(step / steps_per_epoch, 4),  # fractional after a --max_steps stop, as the Trainer reports
    }


def loss_and_generated_ids(
    model, tf_dataset, generate, with_loss: bool, pad_token_id: int
) -> tuple[dict, np.ndarray | None]:
    """The mean loss over `tf_dataset` (`{"loss": ...}`, when it has labels) and the ids `generate` produces for it
    (None without `generate`), in input order."""
    metrics, token_ids = {}, None
    if with_loss:
        metrics["loss"] = round(float(model.evaluate(tf_dataset, verbose=0, return_dict=True)["loss"]), 6)
    if generate is not None:
        start = time.perf_counter()
        # Under the strategy scope, as fit() runs the metric callback: the same tracing context, so the XLA
        # function compiled during training is reused instead of compiled again.
        with model.distribute_strategy.scope():
            token_ids = generate_token_ids(generate, tf_dataset, pad_token_id)
        # The first batch of each input shape pays for an XLA compilation; say so, as it can take a while.
        logger.info(f"generated {len(token_ids)} sequences in {time.perf_counter() - start:.1f}s")
    return metrics, token_ids
