#!/usr/bin/env python
"""Fine-tune and evaluate a sequence-to-sequence model for summarization with `Seq2SeqTrainer`.

Works with any `AutoModelForSeq2SeqLM` checkpoint (T5, BART, mBART, Pegasus, Marian, ...), on a Hub
dataset (`--dataset_name`) or local `.csv` / `.json` / `.jsonl` files, and scores generated summaries
with ROUGE-1/2/L/Lsum, F1 x 100: by default from `rouge_score` (stemmer on, mean over examples, as other Hugging
Face scripts report it), with `--rouge_backend official` as the ROUGE-1.5.5 script papers use (pure Python, with
95% intervals). Each result file holds the ROUGE signature; `generated_predictions.jsonl` has per-example scores.

One process (CPU or one GPU), on the tiny offline demo model and the shipped sample data:

    python examples/pytorch/summarization/run_summarization.py \
        --model_name_or_path .cache/tiny-models/t5 --source_prefix "summarize: " \
        --train_file tests/fixtures/summarization/xsum/sample.json \
        --validation_file tests/fixtures/summarization/xsum/sample.json \
        --test_file tests/fixtures/summarization/xsum/sample.json \
        --do_train --do_eval --do_predict --predict_with_generate \
        --max_steps 50 --per_device_train_batch_size 2 --output_dir outputs/xsum-t5

Several GPUs (or two CPU processes): the same arguments after `torchrun --nproc_per_node 2` or
`accelerate launch --num_processes 2`. All arguments can also come from one `.json`/`.yaml` file:

    python examples/pytorch/summarization/run_summarization.py examples/pytorch/summarization/demo.yaml

To adapt it, copy this folder and edit this file: the data flags and column defaults (`DataTrainingArguments`;
known Hub datasets' columns are in `summarization_data.py`), `preprocess_function` in `main()` (what goes in and
what the model learns to write) and the metric (`make_compute_metrics` and the predict stage call
`score_rouge` from `rouge_scoring.py`). The sibling modules hold the machinery: `seq2seq_checks.py` (errors,
output-dir safety), `seq2seq_data.py` (loading, predictions), `seq2seq_setup.py` (model, logging, run checks),
`trainer_speedups.py` (the Trainer subclass and its speed options).
"""

import logging
import os
from dataclasses import dataclass, field

import numpy as np
from best_model import (
    AVERAGE_HELP,
    PATIENCE_HELP,
    THRESHOLD_HELP,
    check_trainer_final_model_args,
    early_stopping_callbacks,
    finish_trainer_training,
)
from transformers import (
    HfArgumentParser,
    Seq2SeqTrainingArguments,
    default_data_collator,
    set_seed,
)

from ctranslate2_generation import (
    BACKEND_HELP,
    COMPUTE_TYPE_HELP,
    COMPUTE_TYPES,
    GENERATION_BACKENDS,
    check_backend_flags,
    check_model_and_generation,
)
from model_card import write_model_card
from rouge_scoring import ROUGE_BACKENDS, ROUGE_KEYS, check_rouge_backend, check_sentence_splitter, score_rouge
from seq2seq_checks import (
    BOOKKEEPING_FILES,
    DATA_FILE_FLAGS,
    UsageError,
    check_data_file,
    check_different,
    check_output_dir,
    parse_args_or_file,
    remove_previous_run,
    run_cli,
    save_results,
    save_run_arguments,
    save_trainer_state,
)
from seq2seq_data import (
    NBEST_HELP,
    DataCollatorForSeq2SeqAllowingNoLabels,
    check_num_return_sequences,
    decode_predictions,
    first_reference,
    generation_lengths,
    load_raw_datasets,
    write_nbest_predictions,
    write_prediction_records,
    write_predictions,
)
from seq2seq_setup import (
    check_generation_config_saves,
    check_trainer_run_args,
    describe_trainer_run,
    fit_position_embeddings,
    load_model_and_tokenizer,
    log_metrics,
    setup_logging,
)
from summarization_data import drop_empty_examples, resolve_columns, set_up_language_codes
from trainer_speedups import (
    Seq2SeqTrainerWithSpeedups,
    order_for_generation,
    restore_input_order,
    restore_nbest_order,
)
from training_curves import write_training_curves

logger = logging.getLogger(__name__)


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
    resize_position_embeddings: bool | None = field(
        default=None,
        metadata={
            "help": (
                "What to do when the model has fewer position embeddings than --max_source_length: "
                "unset = warn and resize, True = resize, False = stop with an error."
            )
        },
    )


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
class SummarizationTrainingArguments(Seq2SeqTrainingArguments):
    """`Seq2SeqTrainingArguments` plus the output-directory guard that transformers 5 dropped, and a default
    that keeps the logged training loss true under multi-process training."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": (
                "Allow --output_dir to hold an earlier run: its result files and checkpoints are deleted first. "
                "Without it a non-empty --output_dir is refused (or resumed, if it holds only checkpoints)."
            )
        },
    )
    average_tokens_across_devices: bool = field(
        default=False,
        metadata={
            "help": (
                "Normalise the loss by the token count summed over all processes. Off by default here: with it, "
                "transformers 5.23 logs a training loss about world-size times the true one under DDP."
            )
        },
    )
    eval_sort_by_length: bool = field(
        default=True,
        metadata={
            "help": (
                "With --predict_with_generate, generate eval/predict batches longest input first (less padding "
                "per batch) and put the predictions back in input order, so outputs and scores do not change. "
                "--eval_sort_by_length False generates in input order (for comparisons)."
            )
        },
    )
    eval_encode_once: bool = field(
        default=True,
        metadata={
            "help": (
                "With --predict_with_generate, run the encoder once per eval/predict batch and share its output "
                "between generation and the loss (Seq2SeqTrainer runs it twice). Same predictions and loss; "
                "--eval_encode_once False takes the stock Seq2SeqTrainer step."
            )
        },
    )
    eval_beams_share_cross_attention: bool = field(
        default=True,
        metadata={
            "help": (
                "With beam search in eval/predict, leave the cross-attention keys/values in place when beams are "
                "reordered: all beams of an example share them, yet generate() copies them at every step. Same "
                "predictions; --eval_beams_share_cross_attention False keeps generate()'s own cache."
            )
        },
    )
    train_max_tokens_per_batch: int | None = field(
        default=None,
        metadata={
            "help": (
                "Size training batches by a token budget instead of --per_device_train_batch_size: examples of "
                "similar length share a batch of at most N padded tokens, examples x (longest source + longest "
                "target), and the batches come in a new random order each epoch (the largest first, so a budget "
                "that does not fit in memory fails on step one). Less padding and fewer, fuller steps on "
                "variable-length data; the number of steps per epoch changes, so tune the learning rate as for a "
                "larger batch. Suggested: per_device_train_batch_size x (max_source_length + max_target_length)."
            )
        },
    )
    eval_max_tokens_per_batch: str | None = field(
        default=None,
        metadata={
            "help": (
                "With --predict_with_generate, size eval/predict batches by a token budget instead of "
                "--per_device_eval_batch_size: each batch takes as many examples as fit in N tokens, examples x "
                "(longest source + generation max length), what its encoder output and keys/values cache hold. With "
                "the longest-first order, short inputs then share large batches (far fewer generation steps). "
                "'auto' = per_device_eval_batch_size x (longest source in the data + generation max length): no "
                "batch is bigger than the fixed-size batch of the longest inputs. Same predictions; eval_loss stays "
                "the Trainer's mean of batch means, so it can move slightly."
            )
        },
    )
    generation_backend: str = field(
        default="transformers", metadata={"help": BACKEND_HELP, "choices": list(GENERATION_BACKENDS)}
    )
    ctranslate2_compute_type: str = field(
        default="float32", metadata={"help": COMPUTE_TYPE_HELP, "choices": list(COMPUTE_TYPES)}
    )
    eval_subset_size: int | None = field(
        default=None,
        metadata={
            "help": (
                "Evaluations during training (--eval_strategy steps/epoch) use only the first N validation "
                "examples; the final --do_eval still uses all of them. Default: all, every time."
            )
        },
    )
    eval_num_beams: int | None = field(
        default=None,
        metadata={
            "help": (
                "Beams for evaluations during training (1 = greedy, the cheapest); the final --do_eval and "
                "--do_predict keep --num_beams. Default: the same beams as the final evaluation."
            )
        },
    )
    early_stopping_patience: int | None = field(default=None, metadata={"help": PATIENCE_HELP})
    early_stopping_threshold: float = field(default=0.0, metadata={"help": THRESHOLD_HELP})
    average_last_checkpoints: int | None = field(default=None, metadata={"help": AVERAGE_HELP})
    num_return_sequences: int = field(default=1, metadata={"help": NBEST_HELP})


def validate_args(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: SummarizationTrainingArguments
) -> str | None:
    """Check every flag and input file before anything is loaded; return a checkpoint to resume from, or None.

    The data checks are here (the task's own inputs: edit them with the data flags); the run settings (lengths,
    sample caps, launch, Hub, resume) are checked by `check_trainer_run_args`, and the --output_dir guard is
    `check_output_dir`. Raises UsageError with the flag, the problem and the fix.
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
    check_trainer_run_args(model_args, data_args, training_args)
    return check_output_dir(training_args)


def make_compute_metrics(
    tokenizer,
    references: list[str | list[str]],
    max_length: int,
    order: np.ndarray | None = None,
    rouge_backend: str = "rouge_score",
):
    """`compute_metrics` for the Trainer: ROUGE of the generated texts against the untruncated references, with its
    signature (`order`: how the eval dataset was reordered, see `order_for_generation`)."""

    def compute_metrics(eval_preds) -> dict[str, float | str]:
        token_ids = restore_input_order(eval_preds.predictions, len(references), order)
        predictions, gen_len = decode_predictions(tokenizer, token_ids, len(references), max_length)
        rouge = score_rouge(predictions, references, rouge_backend)
        return {**rouge.corpus, "rouge_signature": rouge.signature, "gen_len": gen_len}

    return compute_metrics


def main() -> None:
    # Parse and validate every argument before loading anything.
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, SummarizationTrainingArguments))
    model_args, data_args, training_args = parse_args_or_file(parser)
    setup_logging(training_args)
    check_backend_flags(
        training_args.generation_backend,
        training_args.ctranslate2_compute_type,
        training_args.predict_with_generate and (training_args.do_eval or training_args.do_predict),
    )
    check_trainer_final_model_args(
        training_args, data_args.num_beams, list(ROUGE_KEYS), "ROUGE needs --predict_with_generate"
    )
    last_checkpoint = validate_args(model_args, data_args, training_args)
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        logger.info("There is nothing to do: pass --do_train, --do_eval and/or --do_predict.")
        return
    if training_args.predict_with_generate and (training_args.do_eval or training_args.do_predict):
        check_sentence_splitter()
    logger.debug(f"Training/evaluation parameters {training_args}")  # all of them: run_arguments.json
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # pinning only helps copies to an accelerator
    if training_args.overwrite_output_dir and training_args.should_save:
        remove_previous_run(training_args.output_dir)
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

    # Load the model and tokenizer.
    config, tokenizer, model = load_model_and_tokenizer(model_args)
    set_up_language_codes(model, tokenizer, data_args)
    check_generation_config_saves(model, model_args.model_name_or_path)
    if model.config.decoder_start_token_id is None:
        raise UsageError(
            f"the model config has no decoder_start_token_id; set it in {model_args.model_name_or_path}/config.json"
        )
    data_args.max_source_length = fit_position_embeddings(
        model, data_args.max_source_length, model_args.resize_position_embeddings
    )
    if config.model_type == "t5" and not data_args.source_prefix:
        logger.warning("T5 models were trained with task prefixes: pass --source_prefix 'summarize: '")
    if training_args.label_smoothing_factor > 0 and not hasattr(model, "prepare_decoder_input_ids_from_labels"):
        logger.warning(
            f"label smoothing with {model.__class__.__name__}, which cannot build decoder inputs from labels: "
            "the loss is computed twice per step"
        )

    # Tokenize.
    prefix = data_args.source_prefix
    padding = "max_length" if data_args.pad_to_max_length else False

    def preprocess_function(examples, max_target_length: int):
        inputs = [prefix + (text or "") for text in examples[text_column]]
        model_inputs = tokenizer(inputs, max_length=data_args.max_source_length, padding=padding, truncation=True)
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
        with training_args.main_process_first(desc=f"{split} dataset tokenization"):
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
    card_notes = []
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

    # Data collator: pads each batch to its longest example (labels with -100, so padding adds no loss).
    label_pad_token_id = -100 if data_args.ignore_pad_token_for_loss else tokenizer.pad_token_id
    if data_args.pad_to_max_length:
        data_collator = default_data_collator
    else:
        data_collator = DataCollatorForSeq2SeqAllowingNoLabels(
            tokenizer,
            model=model,
            label_pad_token_id=label_pad_token_id,
            # Multiples of 8 let fp16/bf16 matmuls use tensor cores.
            pad_to_multiple_of=8 if (training_args.fp16 or training_args.bf16) else None,
        )

    # Generation settings for eval/predict: lengths and beams from our flags unless given explicitly.
    if training_args.generation_max_length is None:
        training_args.generation_max_length = data_args.val_max_target_length
    if data_args.num_beams is not None:
        training_args.generation_num_beams = data_args.num_beams
    final_num_beams = training_args.generation_num_beams
    if training_args.eval_num_beams is not None:
        training_args.generation_num_beams = training_args.eval_num_beams  # until training ends
    check_num_return_sequences(
        training_args.num_return_sequences,
        final_num_beams or model.generation_config.num_beams,
        training_args.do_predict,
    )
    if training_args.generation_backend == "ctranslate2":  # refuse settings it cannot reproduce before training
        for beams in {final_num_beams, training_args.generation_num_beams}:
            check_model_and_generation(model, {"max_length": training_args.generation_max_length, "num_beams": beams})

    # Generate longest inputs first (less padding per batch); predictions go back to input order when decoded.
    # Evaluations during training may use a subset (--eval_subset_size); the final one uses every example.
    sort = training_args.predict_with_generate and training_args.eval_sort_by_length
    if sort and (eval_dataset is not None or predict_dataset is not None):
        logger.info("Generating eval/predict batches longest input first (--eval_sort_by_length), in input order out")
    eval_order = predict_order = None
    training_eval = (None, None, None)
    if eval_dataset is not None:
        training_eval = order_for_generation(eval_dataset, eval_references, sort, training_args.eval_subset_size)
        eval_dataset, eval_references, eval_order = order_for_generation(eval_dataset, eval_references, sort)
        if training_args.do_train and training_args.eval_strategy != "no":
            logger.info(
                f"Evaluations during training: {len(training_eval[0])} of {len(eval_dataset)} examples, "
                f"{training_args.generation_num_beams or 'default'} beams (final evaluation: all examples, "
                f"{final_num_beams or 'default'} beams)"
            )
    if predict_dataset is not None:
        predict_dataset, _, predict_order = order_for_generation(predict_dataset, None, sort)

    def metrics_for(references, order):
        if not (training_args.predict_with_generate and references is not None):
            return None
        return make_compute_metrics(
            tokenizer, references, training_args.generation_max_length, order, data_args.rouge_backend
        )

    trainer = Seq2SeqTrainerWithSpeedups(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=training_eval[0],
        processing_class=tokenizer,
        data_collator=data_collator,
        compute_metrics=metrics_for(training_eval[1], training_eval[2]),
        callbacks=early_stopping_callbacks(training_args),
    )
    save_run_arguments(training_args.output_dir, model_args, data_args, training_args)
    logger.info(describe_trainer_run(trainer, train_dataset, eval_dataset, predict_dataset))

    # Train.
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint or last_checkpoint
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        card_notes = finish_trainer_training(trainer)  # best model, averaged checkpoints: what the card says
        trainer.save_model()  # saves the tokenizer too
        metrics = train_result.metrics
        metrics["train_samples"] = len(train_dataset)
        trainer.log_metrics("train", metrics)
        save_results(trainer, "train", metrics)
        save_trainer_state(trainer)
        if trainer.is_world_process_zero():
            write_training_curves(training_args.output_dir)
    training_args.generation_num_beams = final_num_beams

    # Evaluate.
    if training_args.do_eval:
        logger.info("*** Evaluate ***")
        trainer.compute_metrics = metrics_for(eval_references, eval_order)
        metrics = trainer.evaluate(eval_dataset=eval_dataset, metric_key_prefix="eval")
        metrics["eval_samples"] = len(eval_dataset)
        log_metrics(trainer, "eval", metrics)
        save_results(trainer, "eval", metrics)

    # Predict: generate for the test set, score against its references, write one prediction per line, and one JSON
    # record per example (its references, its own ROUGE, its generated length) to find the worst ones.
    if training_args.do_predict:
        logger.info("*** Predict ***")
        trainer.compute_metrics = None  # the eval references do not apply; predictions are scored below
        trainer.num_return_sequences = training_args.num_return_sequences  # > 1: n-best lists
        predict_results = trainer.predict(predict_dataset, metric_key_prefix="predict")
        metrics = predict_results.metrics
        metrics["predict_samples"] = len(predict_dataset)
        if training_args.predict_with_generate and training_args.num_return_sequences > 1:
            nbest_ids, nbest_scores = restore_nbest_order(
                predict_results.predictions, len(predict_dataset), predict_order
            )
            token_ids = nbest_ids[:, 0]  # the best hypothesis: what the .txt, the scores and the records hold
            if trainer.is_world_process_zero():
                path = os.path.join(training_args.output_dir, "generated_predictions.nbest.jsonl")
                write_nbest_predictions(path, tokenizer, nbest_ids, nbest_scores)
        elif training_args.predict_with_generate:
            token_ids = restore_input_order(predict_results.predictions, len(predict_dataset), predict_order)
        if training_args.predict_with_generate:
            predictions, gen_len = decode_predictions(
                tokenizer, token_ids, len(predict_dataset), training_args.generation_max_length
            )
            rouge = None
            if predict_references is not None:
                rouge = score_rouge(predictions, predict_references, data_args.rouge_backend)
                metrics.update({f"predict_{key}": value for key, value in rouge.corpus.items()})
                metrics["predict_rouge_signature"] = rouge.signature
            metrics["predict_gen_len"] = gen_len
            if trainer.is_world_process_zero():
                write_predictions(os.path.join(training_args.output_dir, "generated_predictions.txt"), predictions)
                lengths = generation_lengths(
                    token_ids,
                    len(predict_dataset),
                    tokenizer.pad_token_id,
                    tokenizer.eos_token_id,
                    training_args.generation_max_length,
                )
                write_prediction_records(
                    os.path.join(training_args.output_dir, "generated_predictions.jsonl"),
                    predictions,
                    predict_references,
                    rouge.per_example if rouge else None,
                    *lengths,
                )
        log_metrics(trainer, "predict", metrics)
        save_results(trainer, "predict", metrics)

    # Model card, or push to the Hub.
    card = {"finetuned_from": model_args.model_name_or_path, "tasks": "summarization"}
    if data_args.dataset_name is not None:
        card["dataset_tags"] = data_args.dataset_name
        card["dataset"] = f"{data_args.dataset_name} {data_args.dataset_config_name or ''}".strip()
    if data_args.lang is not None:
        card["language"] = data_args.lang
    if training_args.push_to_hub:
        trainer.push_to_hub(**card)
    elif training_args.do_train:
        trainer.create_model_card(**card)
    if trainer.is_world_process_zero():  # our section: results with signatures, data, notes, the command line
        data = {"Dataset": card.get("dataset")}
        data |= {flag: getattr(data_args, flag.lstrip("-")) for flag in DATA_FILE_FLAGS.values()}
        write_model_card(
            training_args.output_dir,
            base_model=model_args.model_name_or_path,
            task="summarization",
            data=data,
            notes=card_notes,
        )
        written = sorted(set(os.listdir(training_args.output_dir)) - set(BOOKKEEPING_FILES))
        logger.info(f"Outputs in {os.path.abspath(training_args.output_dir)}: {', '.join(written)}")
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
