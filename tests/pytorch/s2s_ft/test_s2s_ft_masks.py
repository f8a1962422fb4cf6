"""s2s-ft layout, masks, corruption, truncation and losses (spec §14 invariants 1, 2, 16-19), in-process."""

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "examples" / "pytorch" / "s2s-ft"))

from s2s_ft.masks import (  # noqa: E402
    MODES,
    Corruption,
    SpecialIds,
    attention_allowed,
    build_example,
    collate,
    replace_token,
    truncate_pair,
)
from s2s_ft.modeling import label_smoothed_loss  # noqa: E402

IDS = SpecialIds(cls=2, sep=3, mask=4, pad=0, vocab_size=50)
NO_NOISE = Corruption(target_mask_prob=0.0, keep_prob=0.0, random_prob=0.0, num_max_mask_token=100)


def batch_mask(batch: dict) -> torch.Tensor:
    length = batch["ranks"].shape[1]
    return attention_allowed(batch["ranks"], batch["ranks"], batch["is_pad"], torch.arange(length))


def random_batch(mode: str, rng: np.random.Generator, size: int = 4) -> tuple[dict, list[dict]]:
    examples = []
    for _ in range(size):
        source = rng.integers(10, 50, rng.integers(0, 7)).tolist()
        target = rng.integers(10, 50, rng.integers(0, 6)).tolist()
        examples.append(build_example(source, target, mode, IDS, 8, 6, NO_NOISE, rng))
    return collate(examples, mode, IDS, 0, 1), examples


def slot_kinds(example: dict, width_source: int, width_target: int, mode: str) -> list[tuple[str, int]]:
    """(kind, index) of every slot, from the layout alone: source/target/pseudo with their index, or pad."""
    kinds = [("source", i) if i < len(example["source"]) else ("pad", i) for i in range(width_source)]
    blocks = ["target", "pseudo"] if mode == "pseudo_masked" else ["target"]
    for block in blocks:
        kinds += [(block, t) if t < len(example["target"]) else ("pad", t) for t in range(width_target)]
    return kinds


def rule(query: tuple[str, int], key: tuple[str, int], same_slot: bool) -> bool:
    """Spec §5.1 stated as slot kinds, not ranks."""
    (query_kind, t_query), (key_kind, t_key) = query, key
    if same_slot:
        return True
    if key_kind == "pad":
        return False
    if key_kind == "source":
        return True
    if query_kind in ("source", "pad"):
        return False
    if key_kind == "pseudo":
        return False
    return t_key <= t_query if query_kind == "target" else t_key < t_query


@pytest.mark.parametrize("mode", MODES)
def test_mask_follows_the_rules_for_random_lengths_and_padding(mode):
    rng = np.random.default_rng(1)
    for _ in range(25):
        batch, examples = random_batch(mode, rng)
        mask = batch_mask(batch)
        width_source = max(len(example["source"]) for example in examples)
        width_target = max(len(example["target"]) for example in examples)
        for row, example in enumerate(examples):
            kinds = slot_kinds(example, width_source, width_target, mode)
            expected = torch.tensor([[rule(q, k, i == j) for j, k in enumerate(kinds)] for i, q in enumerate(kinds)])
            real = torch.tensor([kind != "pad" for kind, _ in kinds])
            # Padding queries may see anything legal (their outputs are discarded); real queries exactly the rule.
            assert torch.equal(mask[row][real], expected[real]), (mode, example)
            assert not mask[row][real][:, ~real].any(), "a real query sees padding"
            source = torch.tensor([kind == "source" for kind, _ in kinds])
            assert mask[row][real][:, source].all(), "a query misses a real source key"


def test_mask_reproduces_the_spec_worked_matrices():
    v2 = """
        1 1 1 0 0 0 0 0 0
        1 1 1 0 0 0 0 0 0
        1 1 1 0 0 0 0 0 0
        1 1 1 1 0 0 0 0 0
        1 1 1 1 1 0 0 0 0
        1 1 1 1 1 1 0 0 0
        1 1 1 0 0 0 1 0 0
        1 1 1 1 0 0 0 1 0
        1 1 1 1 1 0 0 0 1"""
    expected = torch.tensor([[int(x) for x in line.split()] for line in v2.strip().splitlines()], dtype=torch.bool)
    example = build_example([11], [21, 22], "pseudo_masked", IDS, 8, 8, NO_NOISE, np.random.default_rng(0))
    assert torch.equal(batch_mask(collate([example], "pseudo_masked", IDS, 0, 1))[0], expected)
    for mode, source in (("masked", [11]), ("causal", [11, 12])):
        example = build_example(source, [21, 22], mode, IDS, 8, 8, NO_NOISE, np.random.default_rng(0))
        assert torch.equal(batch_mask(collate([example], mode, IDS, 0, 1))[0], expected[:6, :6])


def test_layout_positions_and_types():
    rng = np.random.default_rng(2)
    examples = [build_example([11, 12, 13], [21, 22], "pseudo_masked", IDS, 8, 6, NO_NOISE, rng)]
    examples.append(build_example([11], [21, 22, 23, 24], "pseudo_masked", IDS, 8, 6, NO_NOISE, rng))
    batch = collate(examples, "pseudo_masked", IDS, 0, 1)
    width_source, width_target = 5, 5
    for row, (source_length, target_length) in enumerate(((5, 3), (3, 5))):
        target = slice(width_source, width_source + target_length)
        pseudo = slice(width_source + width_target, width_source + width_target + target_length)
        # Target positions start at the real source length, not the padded width.
        assert batch["position_ids"][row, target].tolist() == list(range(source_length, source_length + target_length))
        assert torch.equal(batch["position_ids"][row, target], batch["position_ids"][row, pseudo])
        assert torch.equal(batch["token_type_ids"][row, target], batch["token_type_ids"][row, pseudo])
        assert batch["token_type_ids"][row, target].tolist() == [1] * target_length
        assert batch["token_type_ids"][row, :width_source].tolist() == [0] * width_source
        assert batch["position_ids"][row, :source_length].tolist() == list(range(source_length))
    # The worked example of spec §4: labels on the pseudo slots only.
    assert batch["input_ids"][0, :5].tolist() == [IDS.cls, 11, 12, 13, IDS.sep]
    assert batch["labels"][0].tolist() == [0] * 10 + [21, 22, IDS.sep, 0, 0]
    causal = build_example([11, 12], [21, 22], "causal", IDS, 8, 6, NO_NOISE, rng)
    assert causal["source"] == [IDS.cls, 11, 12] and causal["target"] == [IDS.sep, 21, 22]
    assert causal["labels"] == [21, 22, IDS.sep]


def test_truncation_keeps_the_beginning_and_the_end_tokens():
    long_source, long_target = list(range(10, 40)), list(range(50, 70))
    for mode in ("masked", "pseudo_masked"):
        source, target, labels = truncate_pair(long_source, long_target, mode, IDS, 8, 5)
        assert source == [IDS.cls] + long_source[:6] + [IDS.sep] and len(source) == 8
        assert target == long_target[:4] + [IDS.sep] and labels == target
    source, target, labels = truncate_pair(long_source, long_target, "causal", IDS, 8, 5)
    assert source == [IDS.cls] + long_source[:7] and IDS.sep not in source
    assert target == [IDS.sep] + long_target[:4]
    assert labels == long_target[:4] + [IDS.sep], "the last label of a cut causal target is still [SEP]"
    assert truncate_pair([10], [20], "causal", IDS, 8, 5)[2] == [20, IDS.sep]


def test_corruption_statistics():
    rng = np.random.default_rng(3)
    corruption = Corruption(keep_prob=0.1, random_prob=0.1)
    draws = [replace_token(7, rng, IDS, corruption) for _ in range(20000)]
    mask_share = draws.count(IDS.mask) / len(draws)
    kept_share = draws.count(7) / len(draws)  # kept, plus random draws that happen to hit 7 (1 in 50)
    assert abs(mask_share - 0.8) < 0.015 and abs(kept_share - (0.1 + 0.1 / 50)) < 0.01
    assert len({token for token in draws if token not in (7, IDS.mask)}) > 40, "random draws span the vocabulary"

    target = list(range(10, 19))  # T = 10 with [SEP]
    for prob, cap, expected in ((0.5, 100, 5), (0.5, 3, 3), (0.05, 100, 1), (0.0, 100, 1)):
        noise = Corruption(target_mask_prob=prob, keep_prob=0.0, random_prob=0.0, num_max_mask_token=cap)
        for _ in range(20):
            example = build_example([11], target, "masked", IDS, 8, 12, noise, rng)
            assert example["target"].count(IDS.mask) == expected
            assert sum(label != IDS.pad for label in example["labels"]) == expected
            assert all(
                label == IDS.pad or token == IDS.mask
                for token, label in zip(example["target"], example["labels"], strict=True)
            )

    noise = Corruption(target_mask_prob=1.0, keep_prob=0.0, random_prob=0.0)
    for _ in range(20):
        causal = build_example([11], target, "causal", IDS, 8, 12, noise, rng)
        assert causal["target"][0] == IDS.sep and set(causal["target"][1:]) == {IDS.mask}
    pseudo = build_example([11], target, "pseudo_masked", IDS, 8, 12, Corruption(keep_prob=0.0, random_prob=0.0), rng)
    assert set(pseudo["pseudo"]) == {IDS.mask} and pseudo["target"] == target + [IDS.sep]
    dropped = [
        build_example([11], target, "pseudo_masked", IDS, 8, 12, Corruption(target_mask_prob=0.4), rng)
        for _ in range(300)
    ]
    share = np.mean(
        [
            token == pseudo_token
            for example in dropped
            for token, pseudo_token in zip(example["target"], example["pseudo"], strict=True)
        ]
    )
    assert 0.4 < share < 0.5, "about p real tokens replaced by their pseudo twin (plus the 10% kept twins)"


def test_label_smoothing_closed_form():
    torch.manual_seed(0)
    vocab, eps, pad = 11, 0.1, 1
    logits, labels = torch.randn(6, vocab), torch.tensor([3, 5, 1, 0, 10, 7])
    q = torch.full((6, vocab), eps / (vocab - 2))
    q[:, pad] = 0
    q.scatter_(1, labels.unsqueeze(1), 1 - eps)
    q[labels == pad] = 0
    assert torch.allclose(q[labels != pad].sum(-1), torch.ones(5))
    log_p = F.log_softmax(logits, -1)
    kl = torch.where(q > 0, q * (q.clamp_min(1e-30).log() - log_p), torch.zeros(())).sum(-1)
    assert torch.allclose(label_smoothed_loss(logits, labels, pad, eps), kl, atol=1e-5)
    assert label_smoothed_loss(logits, labels, pad, eps)[2] == 0
    plain = F.cross_entropy(logits, labels, reduction="none") * (labels != pad)
    assert torch.allclose(label_smoothed_loss(logits, labels, pad, 0.0), plain, atol=1e-6)
    assert math.isclose(float(label_smoothed_loss(logits, labels, pad, eps).sum()), float(kl.sum()), rel_tol=1e-5)
