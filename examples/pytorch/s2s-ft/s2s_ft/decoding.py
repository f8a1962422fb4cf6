"""Greedy and beam-search decoding of s2s-ft models with a key/value cache (spec §10).

Each step runs only the new slots: the token chosen at the previous step, written into its target slot as a real
token, and a `[MASK]` at the next slot whose final state predicts the next token (`s2s`, for masked and
pseudo-masked models). With `pos_shift` (causal models) the new token itself predicts the next one. Keys and
values of committed slots are cached per layer; the `[MASK]` is never committed. `use_cache=False` recomputes
every committed slot at every step instead (same masks, same results; kept for tests and the benchmark).
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .masks import SpecialIds

BAN = -10000.0  # added to the log-probability of a token that may not be chosen (spec §10.4)


@dataclass
class DecodeOptions:
    """What `decode` does; flag names as in decode_seq2seq.py."""

    max_tgt_length: int = 128
    beam_size: int = 1
    length_penalty: float = 0.0
    min_len: int = 1
    forbid_duplicate_ngrams: bool = False
    ngram_size: int = 3
    forbid_ignore_ids: set = field(default_factory=set)
    pos_shift: bool = False
    use_cache: bool = True


def source_batch(sources: list[list[int]], ids: SpecialIds, pos_shift: bool, source_type_id: int) -> dict:
    """`[CLS] src [SEP]` (`[CLS] src` with pos_shift) per input, right-padded to the longest (spec §10.1)."""
    blocks = [[ids.cls] + source + ([] if pos_shift else [ids.sep]) for source in sources]
    width = max(len(block) for block in blocks)
    input_ids = torch.full((len(blocks), width), ids.pad, dtype=torch.long)
    is_pad = torch.ones((len(blocks), width), dtype=torch.bool)
    position_ids = torch.zeros((len(blocks), width), dtype=torch.long)
    for row, block in enumerate(blocks):
        input_ids[row, : len(block)] = torch.tensor(block)
        is_pad[row, : len(block)] = False
        position_ids[row, : len(block)] = torch.arange(len(block))
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "token_type_ids": torch.full_like(input_ids, source_type_id),
        "ranks": torch.zeros_like(input_ids),
        "is_pad": is_pad,
        "lengths": torch.tensor([len(block) for block in blocks]),
    }


class IncrementalDecoder:
    """Feeds one target slot per step (plus the predicting `[MASK]`) and returns next-token logits."""

    def __init__(self, model, batch: dict, ids: SpecialIds, target_type_id: int, pos_shift: bool, use_cache: bool):
        self.model, self.ids, self.target_type_id = model, ids, target_type_id
        self.pos_shift, self.use_cache = pos_shift, use_cache
        device = next(model.parameters()).device
        self.source = {key: value.to(device) for key, value in batch.items()}
        self.lengths = self.source.pop("lengths")
        self.committed = 0  # target slots written so far
        self.cache = None  # per-layer keys/values of committed slots (use_cache)
        self.history = None  # inputs of committed slots (no cache)

    def _target_slots(self, tokens: torch.Tensor, first_slot: int, pseudo: list[bool]) -> dict:
        """Inputs of consecutive target slots from `first_slot`; `pseudo` marks `[MASK]` slots (rank < 0)."""
        rows, count = tokens.shape
        slots = torch.arange(first_slot, first_slot + count, device=tokens.device)
        signs = torch.tensor([-1 if flag else 1 for flag in pseudo], device=tokens.device)
        return {
            "input_ids": tokens,
            "position_ids": self.lengths.unsqueeze(1) + slots,
            "token_type_ids": torch.full_like(tokens, self.target_type_id),
            "ranks": ((1 + slots) * signs).expand(rows, count),
            "is_pad": torch.zeros_like(tokens, dtype=torch.bool),
        }

    def _run(self, new: dict, keep: int) -> torch.Tensor:
        """Encode `new` after the committed slots, commit its first `keep` slots, return last-slot logits."""
        if self.use_cache:
            hidden, cache = self.model.encode(**new, past=self.cache)
            drop = new["input_ids"].shape[1] - keep
            end = cache["ranks"].shape[1] - drop
            self.cache = {
                "keys": [key[:, :, :end] for key in cache["keys"]],
                "values": [value[:, :, :end] for value in cache["values"]],
                "ranks": cache["ranks"][:, :end],
                "is_pad": cache["is_pad"][:, :end],
            }
        else:
            inputs = new if self.history is None else {k: torch.cat([self.history[k], new[k]], 1) for k in new}
            hidden, _ = self.model.encode(**inputs)
            self.history = {
                key: value[:, : value.shape[1] - (new["input_ids"].shape[1] - keep)] for key, value in inputs.items()
            }
        return self.model.cls(hidden[:, -1]).float()

    def first(self) -> torch.Tensor:
        """Logits of target token 1: the source plus `[MASK]` (or, with pos_shift, the start `[SEP]`)."""
        rows = self.lengths.shape[0]
        start = torch.full((rows, 1), self.ids.sep if self.pos_shift else self.ids.mask, device=self.lengths.device)
        target = self._target_slots(start, 0, [not self.pos_shift])
        new = {key: torch.cat([self.source[key], target[key]], 1) for key in target}
        keep = new["input_ids"].shape[1] - (0 if self.pos_shift else 1)
        self.committed = 1 if self.pos_shift else 0
        return self._run(new, keep)

    def next(self, tokens: torch.Tensor) -> torch.Tensor:
        """Commit `tokens` [N] at the next target slot; logits of the token after them."""
        tokens = tokens.view(-1, 1)
        if self.pos_shift:
            new = self._target_slots(tokens, self.committed, [False])
        else:
            masks = torch.full_like(tokens, self.ids.mask)
            new = self._target_slots(torch.cat([tokens, masks], 1), self.committed, [False, True])
        self.committed += 1
        return self._run(new, 1)

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index` (beam expansion and back-pointers)."""
        self.lengths = self.lengths.index_select(0, index)
        if self.cache is not None:
            for name in ("keys", "values"):
                self.cache[name] = [states.index_select(0, index) for states in self.cache[name]]
            for name in ("ranks", "is_pad"):
                self.cache[name] = self.cache[name].index_select(0, index)
        if self.history is not None:
            self.history = {key: value.index_select(0, index) for key, value in self.history.items()}


def ngram_bans(tokens: list[int], n: int, ignore: set) -> set[int]:
    """Tokens that would repeat an n-gram of `tokens` (spec §10.4): for each earlier occurrence of the last n-1
    tokens, the token that followed it, unless the tail or that token is an ignored word."""
    if n < 1 or len(tokens) < n:
        return set()
    tail = tokens[len(tokens) - n + 1 :]
    if any(token in ignore for token in tail):
        return set()
    return {
        tokens[start + n - 1]
        for start in range(len(tokens) - n + 1)
        if tokens[start : start + n - 1] == tail and tokens[start + n - 1] not in ignore
    }


def apply_bans(
    log_probs: torch.Tensor, histories: list[list[int]], step: int, ids: SpecialIds, options: DecodeOptions
):
    """Add BAN to EOS while step <= min_len, and to n-gram repeats when blocking is on (in place)."""
    if step <= options.min_len:
        log_probs[:, ids.sep] += BAN
    if options.forbid_duplicate_ngrams:
        for row, tokens in enumerate(histories):
            banned = ngram_bans(tokens, options.ngram_size, options.forbid_ignore_ids)
            if banned:
                log_probs[row, list(banned)] += BAN


def greedy_search(decoder: IncrementalDecoder, ids: SpecialIds, options: DecodeOptions) -> list[dict]:
    """Argmax at each step (min_len and n-gram blocking honoured); stops when every row has emitted EOS."""
    logits = decoder.first()
    rows = logits.shape[0]
    histories = [[] for _ in range(rows)]
    scores = torch.zeros(rows, device=logits.device)
    finished = torch.zeros(rows, dtype=torch.bool, device=logits.device)
    for step in range(1, options.max_tgt_length + 1):
        log_probs = F.log_softmax(logits, dim=-1)
        raw = log_probs.clone()
        apply_bans(log_probs, histories, step, ids, options)
        tokens = log_probs.argmax(-1)
        scores += torch.where(finished, 0.0, raw.gather(1, tokens.unsqueeze(1)).squeeze(1))
        for row, (token, done) in enumerate(zip(tokens.tolist(), finished.tolist(), strict=True)):
            if not done:
                histories[row].append(token)
        finished |= tokens == ids.sep
        if finished.all() or step == options.max_tgt_length:
            break
        logits = decoder.next(tokens)
    return [
        {"tokens": strip_eos(tokens, ids), "score": float(score)}
        for tokens, score in zip(histories, scores, strict=True)
    ]


def strip_eos(tokens: list[int], ids: SpecialIds) -> list[int]:
    """The tokens before the first `[SEP]`/`[PAD]`."""
    for index, token in enumerate(tokens):
        if token in (ids.sep, ids.pad):
            return tokens[:index]
    return tokens


def rank_score(score: float, length: int, alpha: float) -> float:
    """GNMT length-normalised score `score / ((5 + length) / 6) ** alpha`; the raw score when alpha is 0."""
    return score / ((5 + length) / 6) ** alpha if alpha > 0 else score


def beam_search(decoder: IncrementalDecoder, ids: SpecialIds, options: DecodeOptions) -> list[dict]:
    """Beam search (spec §10.4). Each finished hypothesis (first EOS) becomes a candidate with its score and
    length (EOS included); an ended beam is extended only by BAN-penalised EOS, so it is dropped while live
    candidates exist. Stops when all beams of all rows have ended, or after max_tgt_length steps, when the live
    beams become candidates too. Per row: the best candidate by `rank_score`, its score and length, and all
    candidates; the first row's result also carries the batch's per-step `trace` (chosen tokens, parent beams)."""
    beams = options.beam_size
    logits = decoder.first()
    rows, vocab = logits.shape
    device = logits.device
    log_probs = F.log_softmax(logits, dim=-1)
    apply_bans(log_probs, [[] for _ in range(rows)], 1, ids, options)
    scores, tokens = log_probs.topk(beams, dim=-1)  # [rows, beams]
    decoder.reorder(torch.arange(rows, device=device).repeat_interleave(beams))
    scores, tokens = scores.view(-1), tokens.view(-1)
    histories = [[token] for token in tokens.tolist()]
    finished = tokens == ids.sep
    candidates = [[] for _ in range(rows)]
    trace = [{"tokens": tokens.view(rows, beams).tolist(), "parents": [[0] * beams] * rows}]
    for beam, ended in enumerate(finished.tolist()):
        if ended:
            candidates[beam // beams].append((scores[beam].item(), 1, histories[beam]))
    step = 1
    while step < options.max_tgt_length and not finished.all():
        step += 1
        log_probs = F.log_softmax(decoder.next(tokens), dim=-1)
        apply_bans(log_probs, histories, step, ids, options)
        extended = scores.unsqueeze(1) + log_probs
        ended_rows = torch.full_like(extended, float("-inf"))
        ended_rows[:, ids.sep] = scores + BAN
        extended = torch.where(finished.unsqueeze(1), ended_rows, extended)
        best, flat = extended.view(rows, beams * vocab).topk(beams, dim=-1)
        parents = flat // vocab + torch.arange(rows, device=device).unsqueeze(1) * beams
        parents, tokens, scores = parents.view(-1), (flat % vocab).view(-1), best.view(-1)
        was_finished = finished.index_select(0, parents)
        decoder.reorder(parents)
        histories = [
            histories[parent] + [token] for parent, token in zip(parents.tolist(), tokens.tolist(), strict=True)
        ]
        finished = was_finished | (tokens == ids.sep)
        trace.append({"tokens": tokens.view(rows, beams).tolist(), "parents": (flat // vocab).tolist()})
        for beam in (finished & ~was_finished).nonzero().view(-1).tolist():
            candidates[beam // beams].append((scores[beam].item(), step, histories[beam]))
    for beam in (~finished).nonzero().view(-1).tolist():
        candidates[beam // beams].append((scores[beam].item(), step, histories[beam]))
    results = []
    for row in range(rows):
        score, length, history = max(
            candidates[row], key=lambda candidate: rank_score(candidate[0], candidate[1], options.length_penalty)
        )
        results.append(
            {"tokens": strip_eos(history, ids), "score": score, "length": length, "candidates": candidates[row]}
        )
    results[0]["trace"] = trace
    return results


@torch.no_grad()
def decode(model, sources: list[list[int]], ids: SpecialIds, options: DecodeOptions, batch_size: int) -> list[dict]:
    """Decode every source (ids without special tokens), longest first in batches; results in input order."""
    config = model.config
    order = sorted(range(len(sources)), key=lambda index: -len(sources[index]))
    results = [None] * len(sources)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = source_batch([sources[index] for index in chunk], ids, options.pos_shift, config.source_type_id)
        decoder = IncrementalDecoder(model, batch, ids, config.target_type_id, options.pos_shift, options.use_cache)
        search = beam_search if options.beam_size > 1 else greedy_search
        for index, result in zip(chunk, search(decoder, ids, options), strict=True):
            results[index] = result
    return results
