"""Input layout, attention masks and target corruption of the three s2s-ft fine-tuning modes.

Every slot of a packed sequence gets a *rank* (spec §5.1): source slots 0, real target slot t `1 + t`, and the
pseudo (or `[MASK]`) slot standing for target t `-(1 + t)`. Only the order of the ranks matters, so the real
source length is not needed. Padding is marked separately. One rule on ranks then gives every mask we use,
in training (all modes) and in incremental decoding, which is what makes the two provably the same.
"""

from dataclasses import dataclass

import numpy as np
import torch

MODES = ("causal", "masked", "pseudo_masked")
# Upstream `--mask_way` names (v0 "position shift", v1 "masked LM", v2 "pseudo-masking").
MASK_WAY_TO_MODE = {"v0": "causal", "v1": "masked", "v2": "pseudo_masked"}


@dataclass
class SpecialIds:
    """The tokenizer's special-token ids and the vocabulary size (random replacements draw from all of it)."""

    cls: int
    sep: int
    mask: int
    pad: int
    vocab_size: int


@dataclass
class Corruption:
    """Target/source noise (spec §6). A chosen token becomes itself with `keep_prob`, a uniformly random
    vocabulary id with `random_prob`, else `[MASK]`."""

    target_mask_prob: float = 0.0
    source_mask_prob: float = 0.0
    keep_prob: float = 0.1
    random_prob: float = 0.1
    num_max_mask_token: int = 1


def attention_allowed(
    query_ranks: torch.Tensor, key_ranks: torch.Tensor, key_is_pad: torch.Tensor, query_key_index: torch.Tensor
) -> torch.Tensor:
    """Boolean mask [B, Lq, Lk]: True where query q may attend key k (spec §5.1).

    query_ranks [B, Lq], key_ranks/key_is_pad [B, Lk]; query_key_index [Lq] is each query's own index among the
    keys (queries are always some of the keys). A key is visible when it is not padding and its rank is >= 0.
    A query of rank r >= 0 sees visible keys of rank <= r; a pseudo query of rank -r sees visible keys of rank < r
    and itself. A padding query (rank 0) sees the real source: its output is never used.
    """
    q = query_ranks.unsqueeze(-1)
    k = key_ranks.unsqueeze(-2)
    visible = (~key_is_pad & (key_ranks >= 0)).unsqueeze(-2)
    allowed = visible & torch.where(q >= 0, k <= q, k < -q)
    itself = query_key_index.unsqueeze(-1) == torch.arange(key_ranks.shape[-1], device=key_ranks.device)
    return allowed | itself.unsqueeze(0)


def replace_token(token: int, rng: np.random.Generator, ids: SpecialIds, corruption: Corruption) -> int:
    """The BERT-style replacement of one chosen token: kept, random, or `[MASK]`."""
    draw = rng.random()
    if draw < corruption.keep_prob:
        return token
    if draw < corruption.keep_prob + corruption.random_prob:
        return int(rng.integers(ids.vocab_size))
    return ids.mask


def truncate_pair(
    source: list[int], target: list[int], mode: str, ids: SpecialIds, max_source: int, max_target: int
) -> tuple[list[int], list[int], list[int]]:
    """Source block, target input block and per-target-slot labels before corruption (spec §3, §4).

    masked/pseudo_masked: `[CLS] src` cut to max_source-1, then `[SEP]`; target `tgt` cut to max_target-1, then
    `[SEP]`; the label of target slot t is its own token. causal: `[CLS] src` cut to max_source (no `[SEP]`);
    target input `[SEP] tgt` cut to max_target; the label of slot t is the next token, `[SEP]` for the last.
    """
    if mode == "causal":
        source_block = ([ids.cls] + source)[:max_source]
        target_block = ([ids.sep] + target)[:max_target]
        labels = target[: len(target_block) - 1] + [ids.sep]
        return source_block, target_block, labels
    source_block = ([ids.cls] + source)[: max_source - 1] + [ids.sep]
    target_block = target[: max_target - 1] + [ids.sep]
    return source_block, target_block, list(target_block)


def build_example(
    source: list[int],
    target: list[int],
    mode: str,
    ids: SpecialIds,
    max_source: int,
    max_target: int,
    corruption: Corruption,
    rng: np.random.Generator,
) -> dict[str, list[int]]:
    """One training example, unpadded: `source`, `target` (real target inputs), `pseudo` (pseudo_masked only)
    and `labels` with one label per target slot (causal, masked) or per pseudo slot (pseudo_masked); the pad id
    marks a slot without loss. Corruption is drawn from `rng` (spec §6)."""
    source_block, target_block, labels = truncate_pair(source, target, mode, ids, max_source, max_target)
    if corruption.source_mask_prob > 0:
        source_block = [
            replace_token(token, rng, ids, corruption)
            if token not in (ids.cls, ids.sep) and rng.random() < corruption.source_mask_prob
            else token
            for token in source_block
        ]
    length = len(target_block)
    pseudo = []
    if mode == "causal":
        # Word dropout on the decoder input; slot 0 (the start `[SEP]`) is never corrupted.
        target_input = [
            replace_token(token, rng, ids, corruption)
            if t > 0 and rng.random() < corruption.target_mask_prob
            else token
            for t, token in enumerate(target_block)
        ]
    elif mode == "masked":
        count = max(1, min(corruption.num_max_mask_token, int(corruption.target_mask_prob * length)))
        chosen = set(rng.choice(length, size=min(count, length), replace=False).tolist())
        target_input = [
            replace_token(token, rng, ids, corruption) if t in chosen else token
            for t, token in enumerate(target_block)
        ]
        labels = [token if t in chosen else ids.pad for t, token in enumerate(target_block)]
    else:
        pseudo = [replace_token(token, rng, ids, corruption) for token in target_block]
        drop = rng.random(length) < corruption.target_mask_prob
        target_input = [pseudo[t] if drop[t] else token for t, token in enumerate(target_block)]
    return {"source": source_block, "target": target_input, "pseudo": pseudo, "labels": labels}


def collate(
    examples: list[dict[str, list[int]]], mode: str, ids: SpecialIds, source_type_id: int, target_type_id: int
) -> dict[str, torch.Tensor]:
    """Pad and pack a batch: `[source | target (| pseudo)]`, each block padded to its longest member.

    Returns input_ids, position_ids, token_type_ids, ranks, is_pad (all [B, L]) and labels [B, L] holding the
    label of every scored slot and the pad id elsewhere. Position ids continue from the *real* source length;
    pseudo slot t shares the position and type id of real target slot t (spec §4).
    """
    width_source = max(len(example["source"]) for example in examples)
    width_target = max(len(example["target"]) for example in examples)
    blocks = 3 if mode == "pseudo_masked" else 2
    width = width_source + (blocks - 1) * width_target
    batch = {
        "input_ids": torch.full((len(examples), width), ids.pad, dtype=torch.long),
        "position_ids": torch.zeros((len(examples), width), dtype=torch.long),
        "token_type_ids": torch.full((len(examples), width), source_type_id, dtype=torch.long),
        "ranks": torch.zeros((len(examples), width), dtype=torch.long),
        "is_pad": torch.ones((len(examples), width), dtype=torch.bool),
        "labels": torch.full((len(examples), width), ids.pad, dtype=torch.long),
    }
    for row, example in enumerate(examples):
        source_length, target_length = len(example["source"]), len(example["target"])
        batch["input_ids"][row, :source_length] = torch.tensor(example["source"])
        batch["position_ids"][row, :source_length] = torch.arange(source_length)
        batch["is_pad"][row, :source_length] = False
        steps = torch.arange(target_length)
        starts = [width_source, width_source + width_target][: blocks - 1]
        for block, start in enumerate(starts):
            span = slice(start, start + target_length)
            batch["input_ids"][row, span] = torch.tensor(example["target"] if block == 0 else example["pseudo"])
            batch["position_ids"][row, span] = source_length + steps
            batch["token_type_ids"][row, start : start + width_target] = target_type_id
            batch["ranks"][row, span] = (1 + steps) * (1 if block == 0 else -1)
            batch["is_pad"][row, span] = False
        label_start = starts[-1]
        batch["labels"][row, label_start : label_start + target_length] = torch.tensor(example["labels"])
    return batch
