"""Speed options of the Trainer scripts, and the machinery the Accelerate twins share with them.

- `Seq2SeqTrainerWithSpeedups`: `Seq2SeqTrainer` that encodes each eval batch once (--eval_encode_once), shares the
  beams' cross-attention keys/values (--eval_beams_share_cross_attention) and sizes batches by a token budget
  (--train_max_tokens_per_batch, --eval_max_tokens_per_batch). The only code here that uses private Trainer API.
- Token-budget batching for training and generation, the beam cache, and longest-first generation order with the
  predictions put back in input order.
All of it leaves predictions unchanged (tests/pytorch/test_eval_speed_paths.py and the golden outputs pin that).
"""

import logging

import datasets
import numpy as np
import torch
from transformers import DynamicCache, EncoderDecoderCache, Seq2SeqTrainer
from transformers.modeling_outputs import BaseModelOutput

from ctranslate2_generation import CTranslate2Generator, generation_config_for, generator_for
from seq2seq_checks import UsageError

logger = logging.getLogger(__name__)


def check_eval_max_tokens(value: str | None) -> None:
    """--eval_max_tokens_per_batch is 'auto' or a positive whole number of tokens (or not given)."""
    if value is not None and value != "auto" and not (value.isdigit() and int(value) > 0):
        raise UsageError(
            f"--eval_max_tokens_per_batch must be 'auto' or a positive number of tokens, got {value!r} (leave it "
            "out for --per_device_eval_batch_size batches)"
        )


def generation_batches(
    source_lengths: list[int], max_tokens: str, batch_size: int, generation_length: int, num_processes: int
) -> tuple[list[list[int]], int]:
    """Eval/predict batches for --eval_max_tokens_per_batch, and the budget used (see `token_budget_batches`).

    A batch's tokens are examples x (longest source + generation_length): the size of its encoder output and of
    its keys/values cache at the last step, which is what the batch's memory grows with. 'auto' takes
    batch_size x (longest source in the data + generation_length), the tokens of a fixed-size batch of the
    longest inputs.
    """
    lengths = [length + generation_length for length in source_lengths]
    budget = batch_size * max(lengths, default=1) if max_tokens == "auto" else int(max_tokens)
    return token_budget_batches(lengths, budget, num_processes), budget


def token_budget_batches(lengths: list[int], max_tokens: int, num_processes: int = 1) -> list[list[int]]:
    """Consecutive batches of example indices (0, 1, 2, ... in order) whose padded size, examples x longest,
    stays within `max_tokens` (a batch holds at least one example).

    Under multi-process evaluation each step takes one batch per process and gathers them with equal shapes, so
    the batches come in groups of `num_processes` of one size; the last group is filled up with copies of the
    last example. Gathered in order, the copies come after every real example, where the prediction decoding
    (which keeps the first N rows) drops them.
    """
    batches, start = [], 0
    while start < len(lengths):
        size, end = 1, min(start + num_processes, len(lengths))
        longest = max(lengths[start:end])
        while end < len(lengths):
            bigger_end = min(start + (size + 1) * num_processes, len(lengths))
            bigger_longest = max(longest, *lengths[end:bigger_end])
            if (size + 1) * bigger_longest > max_tokens:
                break
            size, end, longest = size + 1, bigger_end, bigger_longest
        group = list(range(start, end))
        group += [group[-1]] * (size * num_processes - len(group))
        batches += [group[rank * size : (rank + 1) * size] for rank in range(num_processes)]
        start = end
    return batches


class TokenBudgetBatchSampler:
    """Training batches of similar length within a token budget (--train_max_tokens_per_batch), for the
    DataLoader's `batch_sampler`.

    Examples are sorted by source + target length and packed greedily while examples x (longest source + longest
    target) stays within `max_tokens` (an example over the budget gets a batch of its own). The batches are made
    once; each epoch shuffles their order with seed + epoch (the Trainer calls `set_epoch`, so a resumed run
    replays the same order) and puts the one with the most padded tokens first. Under multi-process training
    accelerate hands batch i to process i % N.
    """

    def __init__(self, source_lengths: list[int], target_lengths: list[int], max_tokens: int, seed: int) -> None:
        self.seed, self.epoch, self.batches = seed, 0, []
        totals = np.asarray(source_lengths) + np.asarray(target_lengths)
        batch, longest_source, longest_target = [], 0, 0
        for index in np.argsort(-totals, kind="stable").tolist():
            source, target = max(longest_source, source_lengths[index]), max(longest_target, target_lengths[index])
            if batch and (len(batch) + 1) * (source + target) > max_tokens:
                self.batches.append(batch)
                batch, source, target = [], source_lengths[index], target_lengths[index]
            batch.append(index)
            longest_source, longest_target = source, target
        if batch:
            self.batches.append(batch)
        self.padded_tokens = [
            len(batch) * (max(source_lengths[i] for i in batch) + max(target_lengths[i] for i in batch))
            for batch in self.batches
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        order = np.random.default_rng(self.seed + self.epoch).permutation(len(self.batches)).tolist()
        largest = max(range(len(self.batches)), key=self.padded_tokens.__getitem__)
        order.remove(largest)
        return iter([self.batches[largest]] + [self.batches[i] for i in order])


class BeamSharedCrossAttentionCache(EncoderDecoderCache):
    """The encoder-decoder cache with beam reordering for the self-attention part only.

    Beam search reorders beams within each example, and the cross-attention keys/values of an example's beams are
    the same (computed from copies of one encoder output), so reordering them (a copy of batch x beams x source
    length x model size per layer at every step) leaves them as they were.
    """

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.self_attention_cache.reorder_cache(beam_idx)


def with_shared_cross_attention(model, generate_kwargs: dict) -> dict:
    """`generate_kwargs` plus a fresh `BeamSharedCrossAttentionCache` (one per `generate` call) when `model.generate`
    would run beam search on an encoder-decoder with its default cache; otherwise `generate_kwargs` unchanged."""
    beams = generate_kwargs.get("num_beams") or model.generation_config.num_beams or 1
    if (
        beams <= 1
        or not model.config.is_encoder_decoder
        or model.generation_config.cache_implementation is not None
        or "past_key_values" in generate_kwargs
    ):
        return generate_kwargs
    decoder_config = model.config.get_text_config(decoder=True)
    cache = BeamSharedCrossAttentionCache(DynamicCache(config=decoder_config), DynamicCache(config=decoder_config))
    return {**generate_kwargs, "past_key_values": cache}


class Seq2SeqTrainerWithSpeedups(Seq2SeqTrainer):
    """`Seq2SeqTrainer` whose generate-and-score step encodes each batch once (--eval_encode_once), and whose
    batches can be sized by a token budget (--train_max_tokens_per_batch, --eval_max_tokens_per_batch).

    The stock step calls `generate()`, which runs the encoder, and then the model on the labels for the loss,
    which runs it again: for long inputs and short outputs that is most of the eval time. With
    --generation_backend ctranslate2 the tokens come from CTranslate2 instead (the model converted at the start
    of each evaluate()/predict(), as its weights may have changed), the loss still from the model.
    """

    ctranslate2: CTranslate2Generator | None = None
    num_return_sequences: int = 1  # > 1: predict() returns n-best lists (set by the script before predicting)

    def evaluate(self, *args, **kwargs):
        self.prepare_generation_backend()
        return super().evaluate(*args, **kwargs)

    def predict(self, *args, **kwargs):
        self.prepare_generation_backend()
        return super().predict(*args, **kwargs)

    def prepare_generation_backend(self) -> None:
        if self.args.predict_with_generate:
            self.ctranslate2 = generator_for(
                self.args.generation_backend,
                self.accelerator.unwrap_model(self.model),
                self.processing_class,
                self.args.output_dir,
                self.args.ctranslate2_compute_type,
                self.accelerator,
            )

    def get_train_dataloader(self):
        if self.args.train_max_tokens_per_batch is None or not isinstance(self.train_dataset, datasets.Dataset):
            return super().get_train_dataloader()
        sampler = TokenBudgetBatchSampler(
            [len(ids) for ids in self.train_dataset["input_ids"]],
            [len(ids) for ids in self.train_dataset["labels"]],
            self.args.train_max_tokens_per_batch,
            self.args.seed,
        )
        sizes = [len(batch) for batch in sampler.batches]
        logger.info(
            f"Training batches by --train_max_tokens_per_batch {self.args.train_max_tokens_per_batch}: "
            f"{len(sizes)} batches of {min(sizes)} to {max(sizes)} examples per epoch"
        )
        loader = torch.utils.data.DataLoader(
            self._remove_unused_columns(self.train_dataset, description="training"),
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)

    def get_eval_dataloader(self, eval_dataset=None):
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if self.args.eval_max_tokens_per_batch is None or not isinstance(dataset, datasets.Dataset):
            return super().get_eval_dataloader(eval_dataset)
        return self.token_budget_dataloader(dataset, "evaluation")

    def get_test_dataloader(self, test_dataset):
        if self.args.eval_max_tokens_per_batch is None or not isinstance(test_dataset, datasets.Dataset):
            return super().get_test_dataloader(test_dataset)
        return self.token_budget_dataloader(test_dataset, "test")

    def token_budget_dataloader(self, dataset: datasets.Dataset, description: str) -> torch.utils.data.DataLoader:
        batches, budget = generation_batches(
            [len(ids) for ids in dataset["input_ids"]],
            self.args.eval_max_tokens_per_batch,
            self.args.per_device_eval_batch_size,
            self.args.generation_max_length or self.model.generation_config.max_length,
            self.args.world_size,
        )
        sizes = [len(batch) for batch in batches]
        logger.info(
            f"{description.capitalize()} batches by --eval_max_tokens_per_batch {self.args.eval_max_tokens_per_batch} "
            f"({budget} tokens): {len(batches)} batches of {min(sizes)} to {max(sizes)} examples"
        )
        # accelerate hands batch i to process i % N: groups of N equal batches keep the gathered shapes equal.
        loader = torch.utils.data.DataLoader(
            self._remove_unused_columns(dataset, description=description),
            batch_sampler=batches,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        if self.num_return_sequences > 1 and self.args.predict_with_generate and not prediction_loss_only:
            return self.nbest_prediction_step(model, inputs, gen_kwargs)
        if self.ctranslate2 is not None and self.args.predict_with_generate and not prediction_loss_only:
            return self.ctranslate2_prediction_step(model, inputs, gen_kwargs)
        if self.args.eval_beams_share_cross_attention and self.args.predict_with_generate and not prediction_loss_only:
            # The parent's rule for the generate kwargs: this call's, else those evaluate()/predict() set.
            gen_kwargs = with_shared_cross_attention(self.model, dict(gen_kwargs or getattr(self, "_gen_kwargs", {})))
        if not (
            self.args.eval_encode_once
            and self.args.predict_with_generate
            and not prediction_loss_only
            and "labels" in inputs
            and self.model.config.is_encoder_decoder
            and not (self.is_fsdp_enabled or self.is_deepspeed_enabled)  # sharded weights: keep the stock path
        ):
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys, **gen_kwargs)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            encoded = self.model.get_encoder()(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], return_dict=True
            )
        loss = self.labelled_loss(model, inputs, encoder_outputs=encoded)
        # Generation without the labels (so the parent computes no loss), from a copy of the encoder output:
        # beam search expands it in place.
        unlabelled = {key: value for key, value in inputs.items() if not key.startswith(("labels", "decoder_"))}
        unlabelled["encoder_outputs"] = BaseModelOutput(last_hidden_state=encoded.last_hidden_state)
        _, generated_tokens, _ = super().prediction_step(model, unlabelled, False, ignore_keys, **gen_kwargs)
        return loss, generated_tokens, self.pad_as_generated(inputs["labels"])

    def ctranslate2_prediction_step(self, model, inputs, gen_kwargs):
        """The generate-and-score step of --generation_backend ctranslate2: the loss from the model (no cache, as
        above), the tokens from CTranslate2, both padded as the parent pads them."""
        inputs = self._prepare_inputs(inputs)
        loss = self.labelled_loss(model, inputs) if "labels" in inputs else None
        gen_kwargs = gen_kwargs or getattr(self, "_gen_kwargs", {})  # the parent's rule, as above
        config = generation_config_for(
            self.model, {key: value for key, value in gen_kwargs.items() if key != "synced_gpus"}
        )
        generated = self.ctranslate2.generate(inputs["input_ids"], inputs["attention_mask"], config)
        generated = self.pad_as_generated(generated.to(inputs["input_ids"].device))
        labels = self.pad_as_generated(inputs["labels"]) if "labels" in inputs else None
        return loss, generated, labels

    def nbest_prediction_step(self, model, inputs, gen_kwargs):
        """The generate-and-score step of n-best lists: the `num_return_sequences` best hypotheses of each example,
        best first, with the scores beam search ranks them by (length-penalised log-probabilities). Returns (loss,
        (tokens, scores), labels): tokens as batch x length x K, because the Trainer pads and gathers predictions
        along dimension 1 and keeps dimension 0 as the examples; scores as batch x K."""
        inputs = self._prepare_inputs(inputs)
        loss = self.labelled_loss(model, inputs) if "labels" in inputs else None
        labels = self.pad_as_generated(inputs["labels"]) if "labels" in inputs else None
        gen_kwargs = gen_kwargs or getattr(self, "_gen_kwargs", {})  # the parent's rule, as above
        gen_kwargs = {key: value for key, value in gen_kwargs.items() if value is not None and key != "synced_gpus"}
        if self.args.eval_beams_share_cross_attention:
            gen_kwargs = with_shared_cross_attention(self.model, gen_kwargs)
        with torch.no_grad():
            output = self.model.generate(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                num_return_sequences=self.num_return_sequences,
                output_scores=True,
                return_dict_in_generate=True,
                **gen_kwargs,
            )
        batch_size = inputs["input_ids"].shape[0]
        tokens = self.pad_as_generated(output.sequences).view(batch_size, self.num_return_sequences, -1)
        scores = output.sequences_scores.view(batch_size, self.num_return_sequences)
        return loss, (tokens.transpose(1, 2).contiguous(), scores), labels

    def labelled_loss(self, model, inputs: dict, **model_kwargs) -> torch.Tensor:
        """The batch's mean loss on its labels (label smoothing included), as the parent's step computes it, but
        without a cache: the loss needs none, and a cache (cross-attention keys/values of the whole batch) may
        outlive the outputs until the garbage collector runs, raising the memory peak of the generation after it."""
        with torch.no_grad(), self.compute_loss_context_manager():
            outputs = model(**inputs, **model_kwargs, use_cache=False)
        if self.label_smoother is not None:
            return self.label_smoother(outputs, inputs["labels"]).detach().mean()
        return outputs["loss"].detach().mean()

    def pad_as_generated(self, tensor: torch.Tensor) -> torch.Tensor:
        """Pad label or token rows to the width `Seq2SeqTrainer.prediction_step` pads generated tokens to (after
        filling in transformers' defaults into the model's generation config, as the parent does first)."""
        gen_config = self.model.generation_config
        gen_config.update(**gen_config._get_default_generation_params(), defaults_only=True)
        if tensor.shape[-1] < gen_config.max_length:
            return self._pad_tensors_to_max_len(tensor, gen_config.max_length)
        if gen_config.max_new_tokens is not None and tensor.shape[-1] < gen_config.max_new_tokens + 1:
            return self._pad_tensors_to_max_len(tensor, gen_config.max_new_tokens + 1)
        return tensor


def order_for_generation(
    dataset: datasets.Dataset, references: list | None, sort: bool, size: int | None = None
) -> tuple[datasets.Dataset, list | None, np.ndarray | None]:
    """The first `size` examples (default: all) and their references, reordered longest input first when `sort`.

    Returns (dataset, references, order): references stay in input order, and row k of the dataset is example
    `order[k]` (order is None when not sorted), which `restore_input_order` uses to put predictions back in input
    order. Sorted batches carry less padding, and the longest batch comes first, so running out of memory
    shows at once. Equal lengths keep input order.
    """
    if size is not None and size < len(dataset):
        dataset = dataset.select(range(size))
        references = references[:size] if references is not None else None
    if not sort:
        return dataset, references, None
    lengths = np.fromiter((len(ids) for ids in dataset["input_ids"]), dtype=np.int64, count=len(dataset))
    order = np.argsort(-lengths, kind="stable")
    return dataset.select(order), references, order


def restore_nbest_order(
    predictions: tuple, num_examples: int, order: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The n-best predictions of `Seq2SeqTrainerWithSpeedups.predict` in input order: (token ids as examples x K x
    length, scores as examples x K), hypotheses best first."""
    tokens, scores = predictions
    tokens = restore_input_order(np.asarray(tokens), num_examples, order).transpose(0, 2, 1)
    return tokens, restore_input_order(np.asarray(scores), num_examples, order)


def restore_input_order(token_ids, num_examples: int, order: np.ndarray | None) -> np.ndarray:
    """The first `num_examples` rows of the generated ids, moved back to input order: row k was generated for
    example `order[k]` (see `order_for_generation`; None = already in input order).

    Under multi-process evaluation the Trainer shards the batches of the dataset's order and gathers them back
    in that order, with copies of the first batch's examples after the last (padding of an uneven split):
    keeping the first `num_examples` rows gives every example exactly once.
    """
    if isinstance(token_ids, tuple):
        token_ids = token_ids[0]
    token_ids = np.asarray(token_ids)[:num_examples]
    if order is None:
        return token_ids
    restored = np.empty_like(token_ids)
    restored[order] = token_ids
    return restored
