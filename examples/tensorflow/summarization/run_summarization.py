#!/usr/bin/env python
"""Fine-tune and evaluate a sequence-to-sequence model for summarization with Keras (TensorFlow).

The Keras twin of `examples/pytorch/summarization/run_summarization.py`: the same data flags, output files
(`all_results.json`, `generated_predictions.txt` and `.jsonl`, ...), output-dir protection, one-line errors and
ROUGE code (`rouge_score`, or ROUGE-1.5.5 with `--rouge_backend official`; F1 x 100, with its signature), on `TFAutoModelForSeq2SeqLM` checkpoints (T5, BART,
mBART, Pegasus, Marian, ...), trained with `model.fit` and scored with XLA-compiled generation.

It needs its own environment: later transformers releases have no TensorFlow models, so this script runs on
transformers 4.57.6 + tensorflow-cpu 2.21 + tf-keras 2.21 (`examples/tensorflow/requirements.txt`;
`make .venv-tf/.setup-done`). On the tiny offline model
(`.venv-tf/bin/python utils/create_tiny_tf_models.py --output_dir .cache/tiny-models-tf`) and the shipped sample data:

    .venv-tf/bin/python examples/tensorflow/summarization/run_summarization.py \
        --model_name_or_path .cache/tiny-models-tf/t5 --source_prefix "summarize: " \
        --train_file tests/fixtures/summarization/xsum/sample.json \
        --validation_file tests/fixtures/summarization/xsum/sample.json \
        --test_file tests/fixtures/summarization/xsum/sample.json \
        --do_train --do_eval --do_predict --num_train_epochs 3 --per_device_train_batch_size 2 \
        --output_dir outputs/xsum-t5-tf

Several GPUs are used through `tf.distribute.MirroredStrategy` automatically, a TPU with `--tpu_name`. All
arguments can also come from one `.json`/`.yaml` file. A killed training run resumes from its last epoch
checkpoint (`checkpoint-N`) when the same command is run again.

To adapt it to your data, look at three places: the columns (`--text_column` / `--summary_column`, or
`summarization_name_mapping` in summarization_data.py for a Hub dataset), `preprocess_function` in `main()` (what
the model reads and learns to write) and `make_metric_fn` / `run_stage` with `score_rouge` (the score). The Keras
training loop and XLA generation live in keras_training.py; data loading, checks and output files in the
seq2seq_*.py modules of this folder.
"""

import logging
import os
import time
from dataclasses import dataclass, field

# keras_training first: TensorFlow is imported there, its start-up notices hidden.
from keras_training import (
    check_keras_output_dir,
    check_keras_run_args,
    describe_keras_run,
    fit_position_embeddings,
    load_model_and_tokenizer,
    log_metrics,
    loss_and_generated_ids,
    make_generate_function,
    save_results,
    setup_logging,
    setup_strategy,
    to_tf_dataset,
    train_model,
)

# isort: split
from transformers import (
    DefaultDataCollator,
    HfArgumentParser,
    KerasMetricCallback,
    PushToHubCallback,
    TFTrainingArguments,
    set_seed,
)

from rouge_scoring import ROUGE_BACKENDS, check_rouge_backend, check_sentence_splitter, score_rouge
from seq2seq_checks import (
    BOOKKEEPING_FILES,
    DATA_FILE_FLAGS,
    UsageError,
    check_data_file,
    check_different,
    parse_args_or_file,
    remove_previous_run,
    run_cli,
    save_run_arguments,
)
from seq2seq_data import (
    DataCollatorForSeq2SeqAllowingNoLabels,
    decode_predictions,
    first_reference,
    generation_lengths,
    load_raw_datasets,
    write_prediction_records,
    write_predictions,
)
from summarization_data import drop_empty_examples, resolve_columns, set_up_language_codes

logger = logging.getLogger(__name__)

# Inputs padded to a multiple of this many tokens: few distinct shapes, so XLA compiles generation few times.
PAD_TO_MULTIPLE_OF = 128


@dataclass
class ModelArguments:
    """Which model, config and tokenizer to fine-tune."""

    model_name_or_path: str = field(
        metadata={"help": "Local folder saved with `save_pretrained`, or a Hub model id (needs network)."}
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Config name or path, if not the same as --model_name_or_path."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer name or path, if not the same as --model_name_or_path."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where to store models and datasets downloaded from the Hub."}
    )
    use_fast_tokenizer: bool = field(
        default=True, metadata={"help": "Use a fast (Rust `tokenizers`) tokenizer when the model has one."}
    )
    model_revision: str = field(default="main", metadata={"help": "Hub branch, tag or commit of the model to use."})
    token: str | None = field(
        default=None,
        metadata={"help": "Hub token for private models and datasets (default: the one from `hf auth login`)."},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Allow model and dataset code from the Hub to run on your machine. Only for repos you trust."
        },
    )


# Copied from examples.pytorch.summarization.run_summarization.DataTrainingArguments
@dataclass
class DataTrainingArguments:
    """What data to train and evaluate on, and how to tokenize and score it."""

    lang: str | None = field(
        default=None,
        metadata={"help": "Language code of the text, required by mBART tokenizers (e.g. en_XX)."},
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id (needs network), e.g. xsum or cnn_dailymail."}
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Hub dataset configuration, e.g. 3.0.0 for cnn_dailymail."}
    )
    text_column: str | None = field(
        default=None,
        metadata={"help": "Column with the full text (default: known for Hub datasets, else the first column)."},
    )
    summary_column: str | None = field(
        default=None,
        metadata={
            "help": (
                "Column with the summary (default: known for Hub datasets, else the second column). A list of "
                "strings means several references: training uses the first, ROUGE takes the best per example."
            )
        },
    )
    train_file: str | None = field(default=None, metadata={"help": "Training data: a .csv, .json or .jsonl file."})
    validation_file: str | None = field(
        default=None, metadata={"help": "Evaluation data for --do_eval: a .csv, .json or .jsonl file."}
    )
    test_file: str | None = field(
        default=None,
        metadata={
            "help": "Data for --do_predict: a .csv, .json or .jsonl file. Without the summary column, ROUGE is skipped."
        },
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Tokenize again instead of using the cache."})
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Number of processes for tokenization (default: this one only)."}
    )
    max_source_length: int = field(
        default=1024, metadata={"help": "Maximum input length in tokens after tokenization; longer inputs are cut."}
    )
    max_target_length: int = field(
        default=128, metadata={"help": "Maximum summary length in tokens for training; longer labels are cut."}
    )
    val_max_target_length: int | None = field(
        default=None,
        metadata={
            "help": (
                "Maximum summary length in tokens for eval/predict labels, and the default "
                "--generation_max_length (default: --max_target_length)."
            )
        },
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={
            "help": "Pad every example to the maximum length (static shapes, e.g. for TPU) instead of per batch."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N training examples (debugging, quick runs)."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only the first N evaluation examples."})
    max_predict_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N prediction examples."}
    )
    num_beams: int | None = field(
        default=None,
        metadata={
            "help": (
                "Beams for generation in eval/predict (default: --generation_num_beams, else the model's "
                "generation config). 1 = greedy."
            )
        },
    )
    ignore_pad_token_for_loss: bool = field(
        default=True, metadata={"help": "Leave padded label positions out of the loss."}
    )
    source_prefix: str = field(
        default="", metadata={"help": "Text added before every input, e.g. 'summarize: ' for T5 models."}
    )
    forced_bos_token: str | None = field(
        default=None,
        metadata={"help": "For mBART-50: language code forced as the first generated token (e.g. en_XX)."},
    )
    rouge_backend: str = field(
        default="rouge_score",
        metadata={
            "help": (
                "How ROUGE is computed: rouge_score (Google's package, as other Hugging Face scripts report it) or "
                "official (ROUGE-1.5.5 as papers report it through pyrouge, in pure Python, with 95%% intervals)."
            ),
            "choices": list(ROUGE_BACKENDS),
        },
    )

    def __post_init__(self):
        if self.val_max_target_length is None:
            self.val_max_target_length = self.max_target_length


@dataclass
class SummarizationTrainingArguments(TFTrainingArguments):
    """`TFTrainingArguments` plus the generation settings of `Seq2SeqTrainingArguments` and the XLA switch."""

    predict_with_generate: bool = field(
        default=True,
        metadata={
            "help": (
                "Generate summaries in eval/predict and score them with ROUGE (on by default, as the upstream "
                "Keras script always did; --predict_with_generate False reports only the loss)."
            )
        },
    )
    generation_max_length: int | None = field(
        default=None,
        metadata={"help": "Maximum generated length in tokens (default: --val_max_target_length)."},
    )
    generation_num_beams: int | None = field(
        default=None, metadata={"help": "Beams for generation (default: the model's generation config)."}
    )
    use_xla_generation: bool = field(
        default=True,
        metadata={
            "help": (
                "Compile generation with XLA (`tf.function(jit_compile=True)`): much faster after the first batch "
                "of each input shape. --use_xla_generation False generates eagerly (same greedy output)."
            )
        },
    )


# Copied from examples.pytorch.summarization.run_summarization.validate_args with check_trainer_run_args->check_keras_run_args, check_output_dir->check_keras_output_dir
def validate_args(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: SummarizationTrainingArguments
) -> str | None:
    """Check every flag and input file before anything is loaded; return a checkpoint to resume from, or None.

    The data checks are here (the task's own inputs: edit them with the data flags); the run settings (lengths,
    sample caps, launch, Hub, resume) are checked by `check_keras_run_args`, and the --output_dir guard is
    `check_keras_output_dir`. Raises UsageError with the flag, the problem and the fix.
    """
    if data_args.dataset_name is None and not (
        data_args.train_file or data_args.validation_file or data_args.test_file
    ):
        raise UsageError("no data: pass --dataset_name, or --train_file/--validation_file/--test_file")
    for split, flag in DATA_FILE_FLAGS.items():
        path = getattr(data_args, f"{split}_file")
        if path is not None:
            check_data_file(flag, path)
    for action, split in (("do_train", "train"), ("do_eval", "validation"), ("do_predict", "test")):
        if (
            getattr(training_args, action)
            and data_args.dataset_name is None
            and not getattr(data_args, f"{split}_file")
        ):
            raise UsageError(f"--{action} needs data: pass {DATA_FILE_FLAGS[split]} (or --dataset_name)")
    check_different(
        "--text_column",
        data_args.text_column,
        "--summary_column",
        data_args.summary_column,
        "the model would learn to copy its input",
    )
    check_rouge_backend(data_args.rouge_backend)
    check_keras_run_args(model_args, data_args, training_args)
    return check_keras_output_dir(training_args)


def make_metric_fn(tokenizer, references: list[str | list[str]], max_length: int, rouge_backend: str = "rouge_score"):
    """`metric_fn` for KerasMetricCallback: ROUGE of the generated texts against the untruncated references.

    Upstream's callback read `result.mid.fmeasure` from the `evaluate` rouge metric, an attribute that no
    longer exists (it returns plain floats); this one calls the same `score_rouge` as the eval stage.
    """

    def metric_fn(eval_predictions) -> dict[str, float]:
        generated, _labels = eval_predictions
        predictions, gen_len = decode_predictions(tokenizer, generated, len(references), max_length)
        scores = score_rouge(predictions, references, rouge_backend).corpus
        return {**{f"eval_{key}": value for key, value in scores.items()}, "eval_gen_len": gen_len}

    return metric_fn


def main() -> None:
    # Parse and validate every argument before loading anything.
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, SummarizationTrainingArguments))
    model_args, data_args, training_args = parse_args_or_file(parser)
    setup_logging(training_args)
    last_checkpoint = validate_args(model_args, data_args, training_args)
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        logger.info("There is nothing to do: pass --do_train, --do_eval and/or --do_predict.")
        return
    if training_args.predict_with_generate and (training_args.do_eval or training_args.do_predict):
        check_sentence_splitter()
    strategy = setup_strategy(training_args)
    logger.debug(f"Training/evaluation parameters {training_args}")  # all of them: run_arguments.json
    if training_args.overwrite_output_dir:
        remove_previous_run(training_args.output_dir)
    checkpoint_dir = training_args.resume_from_checkpoint or last_checkpoint
    if last_checkpoint is not None:
        logger.info(f"Resuming training from {last_checkpoint}, found in --output_dir (a run that was interrupted)")

    # Seed before the model is created so its initialisation (and the data order) is reproducible.
    set_seed(training_args.seed)

    # Load the data and check its columns.
    raw_datasets = load_raw_datasets(model_args, data_args)
    splits = [
        split
        for split, requested in (
            ("train", training_args.do_train),
            ("validation", training_args.do_eval),
            ("test", training_args.do_predict),
        )
        if requested
    ]
    for split in splits:
        if split not in raw_datasets:
            raise UsageError(
                f"--dataset_name {data_args.dataset_name} has no '{split}' split (splits: "
                f"{', '.join(raw_datasets)}); pass {DATA_FILE_FLAGS[split]} instead"
            )
        if len(raw_datasets[split]) == 0:
            raise UsageError(f"the {split} split ({DATA_FILE_FLAGS[split]}) has no examples")
    text_column, summary_column = resolve_columns(raw_datasets, splits, data_args)

    # Load the model and tokenizer (inside the strategy scope, so the weights live on every replica).
    with strategy.scope():
        config, tokenizer, model = load_model_and_tokenizer(model_args)
    set_up_language_codes(model, tokenizer, data_args)
    if model.config.decoder_start_token_id is None:
        raise UsageError(
            f"the model config has no decoder_start_token_id; set it in {model_args.model_name_or_path}/config.json"
        )
    fit_position_embeddings(model, data_args)
    if config.model_type == "t5" and not data_args.source_prefix:
        logger.warning("T5 models were trained with task prefixes: pass --source_prefix 'summarize: '")

    # Tokenize.
    prefix = data_args.source_prefix
    padding = "max_length" if data_args.pad_to_max_length else False

    def preprocess_function(examples, max_target_length: int):
        inputs = [prefix + (text or "") for text in examples[text_column]]
        model_inputs = tokenizer(inputs, max_length=data_args.max_source_length, padding=padding, truncation=True)
        model_inputs.pop("token_type_ids", None)  # TF generate() rejects them; seq2seq models do not use them
        if summary_column not in examples:
            return model_inputs
        targets = [first_reference(summary) for summary in examples[summary_column]]
        labels = tokenizer(text_target=targets, max_length=max_target_length, padding=padding, truncation=True)
        if padding == "max_length" and data_args.ignore_pad_token_for_loss:
            labels["input_ids"] = [
                [(token if token != tokenizer.pad_token_id else -100) for token in label]
                for label in labels["input_ids"]
            ]
        model_inputs["labels"] = labels["input_ids"]
        # Targets are short, so tokenizing them a second time untruncated is cheap; it counts cut references.
        full_lengths = [len(ids) for ids in tokenizer(text_target=targets)["input_ids"]]
        model_inputs["label_truncated"] = [length > max_target_length for length in full_lengths]
        return model_inputs

    def tokenize(split: str, max_samples: int | None, max_target_length: int):
        dataset = raw_datasets[split]
        if split != "test":
            dataset = drop_empty_examples(dataset, text_column, summary_column, split)
            if len(dataset) == 0:
                raise UsageError(f"the {split} split ({DATA_FILE_FLAGS[split]}) has no non-empty examples")
        if max_samples is not None:
            dataset = dataset.select(range(min(max_samples, len(dataset))))
        # Metrics need the untruncated references of eval/test sets (small); training needs none.
        has_references = split != "train" and summary_column in dataset.column_names
        references = dataset[summary_column] if has_references else None
        tokenized = dataset.map(
            preprocess_function,
            fn_kwargs={"max_target_length": max_target_length},
            batched=True,
            num_proc=data_args.preprocessing_num_workers,
            remove_columns=dataset.column_names,
            load_from_cache_file=not data_args.overwrite_cache,
            desc=f"Running tokenizer on {split} dataset",
        )
        if "label_truncated" in tokenized.column_names:
            truncated = sum(tokenized["label_truncated"])
            tokenized = tokenized.remove_columns("label_truncated")
            if truncated:
                logger.warning(
                    f"{truncated} of {len(tokenized)} {split} summaries are longer than {max_target_length} tokens "
                    "and were truncated for the loss; ROUGE is scored against the full reference text"
                )
        return tokenized, references

    train_dataset = eval_dataset = predict_dataset = None
    eval_references = predict_references = None
    if training_args.do_train:
        train_dataset, _ = tokenize("train", data_args.max_train_samples, data_args.max_target_length)
    if training_args.do_eval:
        eval_dataset, eval_references = tokenize(
            "validation", data_args.max_eval_samples, data_args.val_max_target_length
        )
    if training_args.do_predict:
        predict_dataset, predict_references = tokenize(
            "test", data_args.max_predict_samples, data_args.val_max_target_length
        )
        if predict_references is None:
            logger.warning(f"no '{summary_column}' column in the test data: predictions are written but not scored")

    # Data collator: pads each batch to a multiple of 128 tokens (few shapes for XLA), labels with -100 so that
    # padding adds no loss; the model builds decoder inputs from the labels.
    label_pad_token_id = -100 if data_args.ignore_pad_token_for_loss else tokenizer.pad_token_id
    if data_args.pad_to_max_length:
        data_collator = DefaultDataCollator(return_tensors="np")
    else:
        data_collator = DataCollatorForSeq2SeqAllowingNoLabels(
            tokenizer,
            model=model,
            label_pad_token_id=label_pad_token_id,
            pad_to_multiple_of=PAD_TO_MULTIPLE_OF,
            return_tensors="np",
        )
    eval_batch_size = training_args.per_device_eval_batch_size * strategy.num_replicas_in_sync
    tf_eval_dataset = None
    if eval_dataset is not None:
        tf_eval_dataset = to_tf_dataset(model, eval_dataset, data_collator, eval_batch_size)

    # Generation settings for eval/predict: lengths and beams from our flags unless given explicitly.
    if training_args.generation_max_length is None:
        training_args.generation_max_length = data_args.val_max_target_length
    num_beams = data_args.num_beams or training_args.generation_num_beams
    generate_kwargs = {"max_length": training_args.generation_max_length}
    if num_beams is not None:
        generate_kwargs["num_beams"] = num_beams
    generate = make_generate_function(model, generate_kwargs, training_args.use_xla_generation)

    # The run's settings: one line here, every argument in run_arguments.json (written once nothing can fail a check).
    run_line = describe_keras_run(training_args, train_dataset, eval_dataset, predict_dataset)
    save_run_arguments(training_args.output_dir, model_args, data_args, training_args)
    logger.info(run_line)

    # Train: one fit() over whole epochs; each epoch ends with eval metrics (when --do_eval) and a checkpoint.
    if training_args.do_train:
        callbacks = []
        if tf_eval_dataset is not None and training_args.predict_with_generate:
            metric_callback = KerasMetricCallback(
                metric_fn=make_metric_fn(
                    tokenizer, eval_references, training_args.generation_max_length, data_args.rouge_backend
                ),
                eval_dataset=tf_eval_dataset,
                predict_with_generate=True,
                use_xla_generation=training_args.use_xla_generation,
                generate_kwargs=generate_kwargs,
            )
            # The callback compiles its own XLA function only while this is None: share ours, compile once.
            metric_callback.generation_function = generate if training_args.use_xla_generation else None
            callbacks.append(metric_callback)
        if training_args.push_to_hub:
            callbacks.append(
                PushToHubCallback(
                    output_dir=training_args.output_dir,
                    hub_model_id=training_args.hub_model_id,
                    hub_token=training_args.hub_token or model_args.token,
                    tokenizer=tokenizer,
                    model_name=os.path.basename(training_args.output_dir.rstrip("/")),
                    tasks="summarization",
                    finetuned_from=model_args.model_name_or_path,
                )
            )
        metrics = train_model(
            model, train_dataset, data_collator, tf_eval_dataset, callbacks, training_args, checkpoint_dir
        )
        model.save_pretrained(training_args.output_dir)
        tokenizer.save_pretrained(training_args.output_dir)
        log_metrics("train", metrics)
        save_results(training_args.output_dir, "train", metrics)
    else:
        with strategy.scope():
            model.compile(optimizer="sgd", jit_compile=training_args.xla)  # only evaluate() and generate() follow

    # Evaluate and predict: the loss (when there are labels), then generated texts scored with ROUGE. Predict also
    # writes one JSON record per example (its references, its own ROUGE, its generated length).
    def run_stage(split: str, dataset, tf_dataset, references) -> list[str] | None:
        logger.info(f"*** {split.capitalize()} ***")
        start = time.perf_counter()
        use_generate = generate if training_args.predict_with_generate else None
        metrics, token_ids = loss_and_generated_ids(
            model, tf_dataset, use_generate, references is not None, tokenizer.pad_token_id
        )
        metrics = {f"{split}_{key}": value for key, value in metrics.items()}
        predictions = None
        if token_ids is not None:
            predictions, gen_len = decode_predictions(
                tokenizer, token_ids, len(dataset), training_args.generation_max_length
            )
            rouge = None
            if references is not None:
                rouge = score_rouge(predictions, references, data_args.rouge_backend)
                metrics.update({f"{split}_{key}": value for key, value in rouge.corpus.items()})
                metrics[f"{split}_rouge_signature"] = rouge.signature
            metrics[f"{split}_gen_len"] = gen_len
            if split == "predict":
                write_predictions(os.path.join(training_args.output_dir, "generated_predictions.txt"), predictions)
                lengths = generation_lengths(
                    token_ids,
                    len(dataset),
                    tokenizer.pad_token_id,
                    tokenizer.eos_token_id,
                    training_args.generation_max_length,
                )
                write_prediction_records(
                    os.path.join(training_args.output_dir, "generated_predictions.jsonl"),
                    predictions,
                    references,
                    rouge.per_example if rouge else None,
                    *lengths,
                )
        metrics[f"{split}_runtime"] = round(time.perf_counter() - start, 4)
        metrics[f"{split}_samples"] = len(dataset)
        log_metrics(split, metrics)
        save_results(training_args.output_dir, split, metrics)
        return predictions

    os.makedirs(training_args.output_dir, exist_ok=True)
    if training_args.do_eval:
        run_stage("eval", eval_dataset, tf_eval_dataset, eval_references)
    if training_args.do_predict:
        tf_predict_dataset = to_tf_dataset(model, predict_dataset, data_collator, eval_batch_size)
        run_stage("predict", predict_dataset, tf_predict_dataset, predict_references)

    written = sorted(set(os.listdir(training_args.output_dir)) - set(BOOKKEEPING_FILES))
    logger.info(f"Outputs in {os.path.abspath(training_args.output_dir)}: {', '.join(written)}")


if __name__ == "__main__":
    run_cli(main)
