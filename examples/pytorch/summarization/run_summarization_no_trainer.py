#!/usr/bin/env python
"""Fine-tune and evaluate a sequence-to-sequence model for summarization with a plain training loop on Accelerate.

The twin of `run_summarization.py` without `Seq2SeqTrainer`: the same data handling, ROUGE and error messages, but
the loop (AdamW, schedule, gradient accumulation, checkpoints, evaluation) is written out here, so it is easy to
change. The model is evaluated with ROUGE-1/2/L/Lsum (F1 x 100; `rouge_score` or, with `--rouge_backend official`,
ROUGE-1.5.5 as papers report it) after every epoch.

One process (CPU or one GPU), on the tiny offline demo model and the shipped sample data:

    python examples/pytorch/summarization/run_summarization_no_trainer.py \
        --model_name_or_path .cache/tiny-models/t5 --source_prefix "summarize: " \
        --train_file tests/fixtures/summarization/xsum/sample.json \
        --validation_file tests/fixtures/summarization/xsum/sample.json \
        --max_train_steps 50 --per_device_train_batch_size 2 --learning_rate 3e-3 \
        --checkpointing_steps 25 --output_dir outputs/xsum-t5-no-trainer

Several GPUs: the same arguments after `torchrun --nproc_per_node 2` or `accelerate launch --num_processes 2`.
On a machine without GPUs the processes are connected on the CPU over gloo (one info line says so);
`accelerate launch` needs `--multi_gpu` there (with `--cpu` it starts only one process):

    torchrun --nproc_per_node 2 examples/pytorch/summarization/run_summarization_no_trainer.py ...
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no examples/pytorch/summarization/run_summarization_no_trainer.py ...

Resume an interrupted run with `--resume_from_checkpoint outputs/xsum-t5-no-trainer/step_25` (or `last`), or by
running the same command again: a folder that holds only checkpoints is resumed from its newest one.

To adapt it to your data, edit this file: the data flags (`add_data_arguments`), `preprocess_function` in `main()`
(what goes in and what the model learns to write) and `evaluate` in `main()` (the metric, here `score_rouge`).
The loop's machinery (checkpoints, result files, generation on all processes) is in `accelerate_training.py`.
"""

import argparse
import json
import logging
import math
import os
import time

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from best_model import (
    add_best_model_arguments,
    check_accelerate_best_model_flags,
    finish_accelerate_training,
    note_epoch_evaluation,
)
from huggingface_hub import create_repo
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from accelerate_training import (
    BOOL_FLAG,
    TrainingProgress,
    add_model_arguments,
    add_training_arguments,
    build_new_model,
    check_output_dir_for_accelerate,
    check_training_args,
    describe_accelerate_run,
    generate_texts,
    generation_dataloader,
    open_train_log,
    push_folder,
    remove_previous_accelerate_run,
    resolve_checkpoint,
    save_checkpoint,
    save_metrics,
    save_model,
    setup_accelerate_logging,
)
from ctranslate2_generation import (
    add_backend_arguments,
    check_backend_flags,
    check_model_and_generation,
    generator_for,
)
from model_card import write_model_card
from rouge_scoring import ROUGE_BACKENDS, ROUGE_KEYS, check_rouge_backend, check_sentence_splitter, score_rouge
from seq2seq_checks import (
    BOOKKEEPING_FILES,
    DATA_FILE_FLAGS,
    UsageError,
    check_data_file,
    check_different,
    connect_processes_without_gpus,
    one_line_errors,
    run_cli,
    save_run_arguments,
)
from seq2seq_data import (
    NBEST_HELP,
    DataCollatorForSeq2SeqAllowingNoLabels,
    check_num_return_sequences,
    first_reference,
    load_raw_datasets,
    write_nbest_predictions,
    write_prediction_records,
    write_predictions,
)
from seq2seq_setup import (
    check_generation_config_saves,
    cpu_has_native_bf16,
    fit_position_embeddings,
    load_model_and_tokenizer,
)
from summarization_data import drop_empty_examples, resolve_columns, set_up_language_codes
from trainer_speedups import check_eval_max_tokens, order_for_generation
from training_curves import write_training_curves

logger = logging.getLogger(__name__)

TRACKING_PROJECT = "summarization_no_trainer"  # --with_tracking writes its logs to output_dir/<this>/


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Which data to use and how to read it (help texts as in run_summarization.py's DataTrainingArguments)."""
    data = parser.add_argument_group("data")
    data.add_argument("--dataset_name", help="Hub dataset id (needs network), e.g. xsum or cnn_dailymail.")
    data.add_argument("--dataset_config_name", help="Hub dataset configuration, e.g. 3.0.0 for cnn_dailymail.")
    data.add_argument("--train_file", help="Training data: a .csv, .json or .jsonl file.")
    data.add_argument("--validation_file", help="Evaluation data (after every epoch): a .csv, .json or .jsonl file.")
    data.add_argument(
        "--test_file",
        help="Data for --do_predict: a .csv, .json or .jsonl file. Without the summary column, ROUGE is skipped.",
    )
    data.add_argument("--do_predict", action="store_true", help="After training, predict for --test_file.")
    data.add_argument(
        "--text_column", help="Column with the full text (default: known for Hub datasets, else the first column)."
    )
    data.add_argument(
        "--summary_column",
        help=(
            "Column with the summary (default: known for Hub datasets, else the second column). A list of "
            "strings means several references: training uses the first, ROUGE takes the best per example."
        ),
    )
    data.add_argument("--lang", help="Language code of the text, required by mBART tokenizers (e.g. en_XX).")
    data.add_argument(
        "--forced_bos_token", help="For mBART-50: language code forced as the first generated token (e.g. en_XX)."
    )
    data.add_argument(
        "--max_train_samples", type=int, help="Keep only the first N training examples (debugging, quick runs)."
    )
    data.add_argument("--max_eval_samples", type=int, help="Keep only the first N evaluation examples.")
    data.add_argument("--max_predict_samples", type=int, help="Keep only the first N prediction examples.")
    data.add_argument(
        "--rouge_backend",
        default="rouge_score",
        choices=ROUGE_BACKENDS,
        help=(
            "How ROUGE is computed: rouge_score (Google's package, as other Hugging Face scripts report it) or "
            "official (ROUGE-1.5.5 as papers report it through pyrouge, in pure Python, with 95%% intervals)."
        ),
    )


def add_preprocessing_arguments(parser: argparse.ArgumentParser) -> None:
    """How to tokenize and generate (help texts as in run_summarization.py's DataTrainingArguments)."""
    prep = parser.add_argument_group("tokenization and generation")
    prep.add_argument(
        "--source_prefix", default="", help="Text added before every input, e.g. 'summarize: ' for T5 models."
    )
    prep.add_argument(
        "--max_source_length",
        type=int,
        default=1024,
        help="Maximum input length in tokens after tokenization; longer inputs are cut.",
    )
    prep.add_argument(
        "--max_target_length",
        type=int,
        default=128,
        help="Maximum summary length in tokens for training; longer labels are cut.",
    )
    prep.add_argument(
        "--val_max_target_length",
        type=int,
        help="Maximum summary length in tokens for eval/predict labels and generation (default: --max_target_length).",
    )
    prep.add_argument(
        "--eval_sort_by_length",
        default=True,
        **BOOL_FLAG,
        help=(
            "Generate eval/predict batches longest input first (less padding per batch) and put the predictions "
            "back in input order, so outputs and scores do not change. --eval_sort_by_length false generates in "
            "input order (for comparisons)."
        ),
    )
    prep.add_argument(
        "--eval_beams_share_cross_attention",
        default=True,
        **BOOL_FLAG,
        help=(
            "With beam search, leave the cross-attention keys/values in place when beams are reordered: all beams "
            "of an example share them, yet generate() copies them at every step. Same predictions; false keeps "
            "generate()'s own cache."
        ),
    )
    prep.add_argument(
        "--eval_max_tokens_per_batch",
        help=(
            "Size eval/predict batches by a token budget instead of --per_device_eval_batch_size: as many examples "
            "as fit in N tokens, examples x (longest source + --val_max_target_length), so short inputs share large "
            "batches. 'auto' = per_device_eval_batch_size x (longest source in the data + --val_max_target_length): "
            "no batch bigger than the fixed-size batch of the longest inputs. Same predictions."
        ),
    )
    prep.add_argument(
        "--pad_to_max_length",
        action="store_true",
        help="Pad every example to the maximum length (static shapes, e.g. for TPU) instead of per batch.",
    )
    prep.add_argument(
        "--ignore_pad_token_for_loss", default=True, help="Leave padded label positions out of the loss.", **BOOL_FLAG
    )
    prep.add_argument(
        "--num_beams",
        type=int,
        help="Beams for generation in eval/predict (default: the model's generation config). 1 = greedy.",
    )
    prep.add_argument("--num_return_sequences", type=int, default=1, help=NBEST_HELP)
    add_backend_arguments(prep)
    prep.add_argument(
        "--preprocessing_num_workers", type=int, help="Number of processes for tokenization (default: this one only)."
    )
    prep.add_argument("--overwrite_cache", action="store_true", help="Tokenize again instead of using the cache.")


def parse_args() -> argparse.Namespace:
    """Parse the command line; a malformed or unknown flag raises UsageError (one line, with a "did you mean")."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for add_arguments in (
        add_data_arguments,
        add_preprocessing_arguments,
        add_model_arguments,
        add_training_arguments,
        add_best_model_arguments,
    ):
        add_arguments(parser)
    one_line_errors(parser)
    args = parser.parse_args()
    args.use_fast_tokenizer = not args.use_slow_tokenizer  # the name the shared model loaders read
    return args


def validate_args(args: argparse.Namespace) -> str | None:
    """Check every flag and input file before anything is loaded; return a checkpoint to resume from, or None.

    Raises UsageError with the flag, the problem and the fix.
    """
    check_training_args(args, generates=bool(args.validation_file or args.dataset_name or args.do_predict))
    check_eval_max_tokens(args.eval_max_tokens_per_batch)
    check_backend_flags(
        args.generation_backend,
        args.ctranslate2_compute_type,
        bool(args.validation_file or args.dataset_name or args.do_predict),
    )
    check_different(
        "--text_column",
        args.text_column,
        "--summary_column",
        args.summary_column,
        "the model would learn to copy its input",
    )
    if args.dataset_name is None and args.train_file is None:
        raise UsageError("no training data: pass --train_file (and --validation_file), or --dataset_name")
    for split, flag in DATA_FILE_FLAGS.items():
        if getattr(args, f"{split}_file") is not None:
            check_data_file(flag, getattr(args, f"{split}_file"))
    if args.do_predict and args.dataset_name is None and args.test_file is None:
        raise UsageError("--do_predict needs data: pass --test_file (or --dataset_name)")
    if args.test_file is not None and not args.do_predict:
        raise UsageError("--test_file is only used with --do_predict; add --do_predict or drop --test_file")
    if args.validation_file or args.test_file or args.dataset_name:
        check_sentence_splitter()
        check_rouge_backend(args.rouge_backend)
    evaluates = None if args.validation_file or args.dataset_name else "add --validation_file"
    check_accelerate_best_model_flags(args, [*ROUGE_KEYS, "gen_len"], evaluates)
    check_num_return_sequences(args.num_return_sequences, args.num_beams, args.do_predict, args.generation_backend)
    # Last: the --output_dir lock, then what the folder holds (an explicit --resume_from_checkpoint wins).
    found = check_output_dir_for_accelerate(args)
    return resolve_checkpoint(args) or found


def main() -> None:
    # Parse and validate every argument before loading anything.
    args = parse_args()
    resume_from = validate_args(args)

    # Accelerator, logging, seed. Under torchrun without GPUs, connect the processes on the CPU (gloo) first.
    connect_processes_without_gpus()
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=args.report_to if args.with_tracking else None,
        project_dir=args.output_dir,
        # The scheduler steps once per optimizer step (accelerate's default steps it once per process), and the
        # shuffle order depends only on (seed, epoch): a resumed run sees the batches an uninterrupted one would.
        step_scheduler_with_optimizer=False,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        # DDP fails on trainable parameters that get no gradient, such as the fixed sinusoidal position tables of
        # Pegasus and Marian (computed without grad); like the Trainer does for transformers models, let it look.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    setup_accelerate_logging(accelerator, args.log_level)  # one line per process (rank, device, world size)
    if accelerator.mixed_precision == "bf16" and accelerator.device.type == "cpu" and cpu_has_native_bf16() is False:
        logger.warning(
            "--mixed_precision bf16 on a CPU without native bf16 (no avx512_bf16/amx_bf16 in use): bf16 matmuls "
            "are emulated, far slower than fp32 here; pass --mixed_precision no"
        )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes == 1:  # only when ACCELERATE_USE_CPU=false was set by hand
        raise UsageError(
            f"launched as {launched} processes (WORLD_SIZE={launched}), but they are not connected: each would "
            "train alone and write the same --output_dir; unset ACCELERATE_USE_CPU (connects them over gloo)"
        )
    secrets = ("token", "hub_token")
    logger.debug(  # all of them, for --log_level debug; run_arguments.json keeps them too
        f"Arguments: { {key: '***' if key in secrets and value else value for key, value in vars(args).items()} }"
    )
    set_seed(args.seed)  # before the model is created, so its initialisation is reproducible

    # Load the data and check its columns (the main process first; the others then read its cache).
    with accelerator.main_process_first():
        raw_datasets = load_raw_datasets(model_args=args, data_args=args)
    for split in ["train", "test"] if args.do_predict else ["train"]:
        if split not in raw_datasets:
            raise UsageError(
                f"--dataset_name {args.dataset_name} has no '{split}' split (splits: {', '.join(raw_datasets)}); "
                f"pass {DATA_FILE_FLAGS[split]} instead"
            )
    splits = [split for split in DATA_FILE_FLAGS if split in raw_datasets and (split != "test" or args.do_predict)]
    for split in splits:
        if len(raw_datasets[split]) == 0:
            raise UsageError(f"the {split} split ({DATA_FILE_FLAGS[split]}) has no examples")
    if "validation" not in splits:
        logger.warning("no validation data (--validation_file): the model is trained but not evaluated")
    text_column, summary_column = resolve_columns(raw_datasets, splits, args)

    # Load the model and tokenizer (the model before the optimizer and the collator, which use it).
    if args.model_name_or_path is not None:
        config, tokenizer, model = load_model_and_tokenizer(args)
    else:
        config, tokenizer, model = build_new_model(args)
    set_up_language_codes(model, tokenizer, args)
    check_generation_config_saves(model, args.model_name_or_path)
    if model.config.decoder_start_token_id is None:
        raise UsageError(
            f"the model config has no decoder_start_token_id; set it in {args.model_name_or_path}/config.json"
        )
    args.max_source_length = fit_position_embeddings(model, args.max_source_length, args.resize_position_embeddings)
    check_num_return_sequences(
        args.num_return_sequences, args.num_beams or model.generation_config.num_beams, args.do_predict
    )
    if args.generation_backend == "ctranslate2":  # refuse settings it cannot reproduce before training
        check_model_and_generation(model, {"max_length": args.val_max_target_length, "num_beams": args.num_beams})
    if config.model_type == "t5" and not args.source_prefix:
        logger.warning("T5 models were trained with task prefixes: pass --source_prefix 'summarize: '")

    # Tokenize.
    prefix = args.source_prefix
    padding = "max_length" if args.pad_to_max_length else False

    def preprocess_function(examples, max_target_length: int):
        inputs = [prefix + (text or "") for text in examples[text_column]]
        model_inputs = tokenizer(inputs, max_length=args.max_source_length, padding=padding, truncation=True)
        if summary_column not in examples:
            return model_inputs
        targets = [first_reference(summary) for summary in examples[summary_column]]
        labels = tokenizer(text_target=targets, max_length=max_target_length, padding=padding, truncation=True)
        if padding == "max_length" and args.ignore_pad_token_for_loss:
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
        references = dataset[summary_column] if summary_column in dataset.column_names else None
        tokenized = dataset.map(
            preprocess_function,
            fn_kwargs={"max_target_length": max_target_length},
            batched=True,
            num_proc=args.preprocessing_num_workers,
            remove_columns=dataset.column_names,
            load_from_cache_file=not args.overwrite_cache,
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

    eval_dataset = predict_dataset = eval_references = predict_references = None
    with accelerator.main_process_first():
        train_dataset, _ = tokenize("train", args.max_train_samples, args.max_target_length)
        if "validation" in splits:
            eval_dataset, eval_references = tokenize("validation", args.max_eval_samples, args.val_max_target_length)
        if "test" in splits:
            predict_dataset, predict_references = tokenize(
                "test", args.max_predict_samples, args.val_max_target_length
            )
    if "test" in splits and predict_references is None:
        logger.warning(f"no '{summary_column}' column in the test data: predictions are written but not scored")

    # Generate longest inputs first (less padding per batch); predictions go back to input order when decoded.
    eval_order = predict_order = None
    if eval_dataset is not None:
        eval_dataset, _, eval_order = order_for_generation(eval_dataset, None, args.eval_sort_by_length)
    if predict_dataset is not None:
        predict_dataset, _, predict_order = order_for_generation(predict_dataset, None, args.eval_sort_by_length)

    # Data collator and loaders: each batch is padded to its longest example (labels with -100: no loss there).
    data_collator = DataCollatorForSeq2SeqAllowingNoLabels(
        tokenizer,
        model=model,
        label_pad_token_id=-100 if args.ignore_pad_token_for_loss else tokenizer.pad_token_id,
        # Multiples of 8 let fp16/bf16 matmuls use tensor cores.
        pad_to_multiple_of=8 if accelerator.mixed_precision in ("fp16", "bf16") else None,
    )
    train_dataloader = DataLoader(
        train_dataset,
        shuffle=True,
        collate_fn=data_collator,
        batch_size=args.per_device_train_batch_size,
        # A generator of its own: a new iterator (e.g. after resuming) then draws no seed from the global RNG,
        # which would shift every later dropout mask.
        generator=torch.Generator().manual_seed(args.seed),
    )
    eval_dataloader, predict_dataloader = (
        generation_dataloader(dataset, data_collator, args, accelerator.num_processes) if dataset else None
        for dataset in (eval_dataset, predict_dataset)
    )

    # Optimizer: AdamW, without weight decay on biases and normalisation weights (the 1-D parameters).
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": args.weight_decay},
            {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=args.learning_rate,
    )
    model, optimizer, train_dataloader, eval_dataloader, predict_dataloader = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader, predict_dataloader
    )

    # Schedule, counted after `prepare`: under DDP each process gets 1/N of the batches.
    steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_train_epochs = math.ceil(max_train_steps / steps_per_epoch)
    lr_scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer=optimizer,
        num_warmup_steps=args.num_warmup_steps,
        num_training_steps=max_train_steps,
    )
    lr_scheduler = accelerator.prepare(lr_scheduler)

    # Output folder, trackers, Hub repository: only now, so that a bad input above leaves --output_dir untouched.
    if accelerator.is_main_process:
        if args.overwrite_output_dir:
            remove_previous_accelerate_run(args.output_dir, TRACKING_PROJECT)
        os.makedirs(args.output_dir, exist_ok=True)
        save_run_arguments(args.output_dir, args)  # every argument, secrets masked (not printed: --log_level debug)
    accelerator.wait_for_everyone()
    if args.with_tracking:
        accelerator.init_trackers(
            TRACKING_PROJECT,
            {
                key: value if isinstance(value, int | float | str | bool) else str(value)
                for key, value in vars(args).items()
                if key not in secrets
            },
        )
    repo_id = None
    if args.push_to_hub and accelerator.is_main_process:
        repo_name = args.hub_model_id or os.path.basename(os.path.abspath(args.output_dir))
        repo_id = create_repo(repo_name, exist_ok=True, token=args.hub_token).repo_id

    # Resume: model, optimizer, scheduler, RNG states and our position in the data, from a checkpoint.
    progress = TrainingProgress()
    accelerator.register_for_checkpointing(progress)
    if resume_from is not None:
        accelerator.load_state(resume_from)
        logger.info(
            f"Resuming training from {resume_from}: step {progress.completed_steps}, epoch {progress.epoch}, "
            f"{progress.batches_done} batches into it"
        )
    train_log = eval_log = None
    if accelerator.is_main_process:
        train_log = open_train_log(os.path.join(args.output_dir, "train_log.jsonl"), progress.completed_steps)
        eval_log = open_train_log(os.path.join(args.output_dir, "eval_log.jsonl"), progress.completed_steps)

    # Train, evaluating after every epoch.
    examples = {"train": len(train_dataset)}
    examples |= {split: len(data) for split, data in (("validation", eval_dataset), ("test", predict_dataset)) if data}
    logger.info(describe_accelerate_run(accelerator, args, examples, max_train_steps, steps_per_epoch))
    gen_kwargs = {"max_length": args.val_max_target_length}
    if args.num_beams is not None:
        gen_kwargs["num_beams"] = args.num_beams

    def evaluate(dataloader, references, split: str, order) -> tuple[dict, list[str], tuple, tuple | None]:
        """Metrics, predictions, per example (ROUGE scores or None, generated tokens, hit the length limit), and
        the n-best lists (--num_return_sequences, predict only) or None."""
        ctranslate2 = generator_for(  # converted again only if training changed the weights
            args.generation_backend,
            accelerator.unwrap_model(model),
            tokenizer,
            args.output_dir,
            args.ctranslate2_compute_type,
            accelerator,
        )
        predictions, gen_len, lengths, nbest = generate_texts(
            accelerator,
            model,
            dataloader,
            tokenizer,
            gen_kwargs,
            split,
            order,
            args.eval_beams_share_cross_attention,
            ctranslate2,
            args.num_return_sequences if split == "predict" else 1,
        )
        metrics, per_example = {}, None
        if references is not None:
            rouge = score_rouge(predictions, references, args.rouge_backend)
            metrics = {f"{split}_{key}": value for key, value in rouge.corpus.items()}
            metrics[f"{split}_rouge_signature"], per_example = rouge.signature, rouge.per_example
        metrics |= {f"{split}_gen_len": gen_len, f"{split}_samples": len(predictions)}
        return metrics, predictions, (per_example, *lengths), nbest

    eval_metrics = eval_predictions = None
    progress_bar = tqdm(
        total=max_train_steps, initial=progress.completed_steps, disable=not accelerator.is_local_main_process
    )
    start_time = window_start = time.time()
    tokens = torch.zeros((), dtype=torch.long, device=accelerator.device)
    window_losses = []  # losses since the last log line
    for epoch in range(progress.epoch, num_train_epochs):
        model.train()
        train_dataloader.set_epoch(epoch)
        batches = train_dataloader
        if progress.batches_done:  # resumed mid-epoch: skip the batches the checkpointed run already trained on
            batches = accelerator.skip_first_batches(train_dataloader, progress.batches_done)
        step_loss, micro_batches, epoch_losses = 0.0, 0, []
        for batch in batches:
            if progress.completed_steps >= max_train_steps:
                break
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            step_loss += loss.detach().float()
            micro_batches += 1
            tokens += batch["attention_mask"].sum()
            progress.batches_done += 1
            if not accelerator.sync_gradients:
                continue
            lr = lr_scheduler.get_last_lr()[0]  # the rate this step used
            if not accelerator.optimizer_step_was_skipped:  # fp16 overflow: no step, so no schedule step either
                lr_scheduler.step()
            # The true loss: mean over the accumulated batches and over processes.
            loss_value = accelerator.reduce(step_loss / micro_batches, reduction="mean").item()
            step_loss, micro_batches = 0.0, 0
            progress.completed_steps += 1
            progress.loss_sum += loss_value
            epoch_losses.append(loss_value)
            window_losses.append(loss_value)
            progress_bar.update(1)
            progress_bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            if train_log is not None:
                record = {"step": progress.completed_steps, "epoch": epoch, "loss": loss_value, "lr": lr}
                train_log.write(json.dumps(record) + "\n")
                train_log.flush()
            if progress.completed_steps % args.logging_steps == 0:
                tokens_per_second = accelerator.reduce(tokens, reduction="sum").item() / (time.time() - window_start)
                window_loss = sum(window_losses) / len(window_losses)
                logger.info(
                    f"step {progress.completed_steps}/{max_train_steps}: loss {window_loss:.4f}, lr {lr:.3e}, "
                    f"{tokens_per_second:.0f} input tokens/s"
                )
                if args.with_tracking:
                    accelerator.log({"train_loss": window_loss, "lr": lr}, step=progress.completed_steps)
                tokens.zero_()
                window_start, window_losses = time.time(), []
            if isinstance(args.checkpointing_steps, int) and progress.completed_steps % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, args.output_dir, f"step_{progress.completed_steps}")

        progress.epoch, progress.batches_done = epoch + 1, 0
        stop = False
        if eval_dataloader is not None:
            eval_metrics, eval_predictions, _, _ = evaluate(eval_dataloader, eval_references, "eval", eval_order)
            logger.info(f"epoch {epoch}, step {progress.completed_steps}: {eval_metrics}")
            stop = note_epoch_evaluation(args, progress, eval_metrics, epoch, eval_log)
        if args.with_tracking:
            epoch_loss = sum(epoch_losses) / max(len(epoch_losses), 1)
            epoch_log = {**(eval_metrics or {}), "train_loss": epoch_loss, "epoch": epoch}
            accelerator.log(epoch_log, step=progress.completed_steps)
        if args.checkpointing_steps == "epoch":
            save_checkpoint(accelerator, args.output_dir, f"epoch_{epoch}")
        if stop or progress.completed_steps >= max_train_steps:
            break
        if args.push_to_hub:
            save_model(accelerator, model, tokenizer, args.output_dir)
            if repo_id is not None:
                push_folder(args, repo_id, f"Training in progress epoch {epoch}")
    progress_bar.close()
    train_runtime = time.time() - start_time
    card_notes, weights_changed = finish_accelerate_training(accelerator.unwrap_model(model), args, progress)
    if weights_changed:
        eval_metrics = None  # other weights than the last evaluation's: evaluate them
    if eval_dataloader is not None and eval_metrics is None:  # also when resumed from a finished run's checkpoint
        eval_metrics, eval_predictions, _, _ = evaluate(eval_dataloader, eval_references, "eval", eval_order)

    # Save the model, the training summary and the last evaluation.
    save_model(accelerator, model, tokenizer, args.output_dir)
    finished = {"epoch": progress.epoch, "step": progress.completed_steps}
    if accelerator.is_main_process:
        train_log.close()
        eval_log.close()
        train_metrics = {
            "train_loss": progress.loss_sum / max(progress.completed_steps, 1),
            "train_runtime": round(train_runtime, 4),
            "train_samples": len(train_dataset),
            **finished,
        }
        save_metrics(args.output_dir, "train", train_metrics)
        logger.info(f"train metrics: {train_metrics}")
        if eval_metrics is not None:
            save_metrics(args.output_dir, "eval", {**eval_metrics, **finished})
            write_predictions(os.path.join(args.output_dir, "eval_predictions.txt"), eval_predictions)

    # Predict: generate for the test set, score against its references, write one prediction per line, and one JSON
    # record per example (its references, its own ROUGE, its generated length) to find the worst ones.
    if predict_dataloader is not None:
        logger.info("*** Predict ***")
        predict_metrics, predictions, per_example, nbest = evaluate(
            predict_dataloader, predict_references, "predict", predict_order
        )
        logger.info(f"predict metrics: {predict_metrics}")
        if accelerator.is_main_process:
            write_predictions(os.path.join(args.output_dir, "generated_predictions.txt"), predictions)
            write_prediction_records(
                os.path.join(args.output_dir, "generated_predictions.jsonl"),
                predictions,
                predict_references,
                *per_example,
            )
            if nbest is not None:
                path = os.path.join(args.output_dir, "generated_predictions.nbest.jsonl")
                write_nbest_predictions(path, tokenizer, *nbest)
            save_metrics(args.output_dir, "predict", predict_metrics)

    # Push to the Hub.
    if repo_id is not None:
        push_folder(args, repo_id, "End of training")
    accelerator.end_training()
    if accelerator.is_main_process:
        write_training_curves(args.output_dir)
        data = {
            "Dataset": f"{args.dataset_name} {args.dataset_config_name or ''}".strip() if args.dataset_name else None
        }
        data |= {flag: getattr(args, flag.lstrip("-")) for flag in DATA_FILE_FLAGS.values()}
        base_model = args.model_name_or_path or f"new {args.model_type} model"
        write_model_card(args.output_dir, base_model=base_model, task="summarization", data=data, notes=card_notes)
        written = sorted(set(os.listdir(args.output_dir)) - set(BOOKKEEPING_FILES))
        logger.info(f"Outputs in {os.path.abspath(args.output_dir)}: {', '.join(written)}")


def _mp_fn(index: int) -> None:
    """Entry point for TPU launches through xla_spawn.py (one call per TPU core)."""
    run_cli(main)


if __name__ == "__main__":
    run_cli(main)
