"""s2s-ft model and decoding on the tiny random BERT, in-process (spec §14 invariants 3-6 and 8-21)."""

import sys

import numpy as np
import pytest
import torch

from helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "examples" / "pytorch" / "s2s-ft"))

from s2s_ft.data import detokenize, special_ids  # noqa: E402
from s2s_ft.decoding import (  # noqa: E402
    DecodeOptions,
    IncrementalDecoder,
    beam_search,
    decode,
    ngram_bans,
    rank_score,
    source_batch,
)
from s2s_ft.masks import MODES, Corruption, build_example, collate  # noqa: E402
from s2s_ft.modeling import extend_position_embeddings, load_s2s_model  # noqa: E402

NO_NOISE = Corruption(target_mask_prob=0.0, keep_prob=0.0, random_prob=0.0, num_max_mask_token=100)
SOURCES = [[101, 102, 103, 104, 105], [201, 202], [301, 302, 303, 304, 305, 306, 307, 308], [401]]
TARGETS = [[110, 111, 112], [210, 211, 212, 213, 214], [310], [410, 411]]


@pytest.fixture(scope="module")
def bert(tiny_models):
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    model, _ = load_s2s_model(
        "bert", str(tiny_models / "bert"), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    model.config.update({"source_type_id": 0, "target_type_id": 1, "label_smoothing": 0.1})
    tokenizer = AutoTokenizer.from_pretrained(tiny_models / "bert")
    return model.eval(), special_ids(tokenizer), tokenizer


def run(model, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**{key: value for key, value in batch.items() if key != "labels"}).logits


def layer_states(model, batch: dict) -> list[torch.Tensor]:
    """Every layer's keys and values, and the final hidden states (a function of each layer's input states)."""
    with torch.no_grad():
        hidden, cache = model.encode(**{key: value for key, value in batch.items() if key != "labels"})
    return [*cache["keys"], *cache["values"], hidden.unsqueeze(1)]


def layout(mode, ids, sources=SOURCES, targets=TARGETS):
    rng = np.random.default_rng(0)
    examples = [build_example(s, t, mode, ids, 12, 8, NO_NOISE, rng) for s, t in zip(sources, targets, strict=True)]
    return collate(examples, mode, ids, 0, 1), examples


@pytest.mark.parametrize("mode", MODES)
def test_information_flow(bert, mode):
    """Source states never see target/pseudo tokens; real targets never see pseudo tokens; padding is invisible."""
    model, ids, _ = bert
    batch, _ = layout(mode, ids)
    width_source = int((batch["ranks"] == 0).sum(1).max())
    real = ~batch["is_pad"]
    before = layer_states(model, batch)
    changed = dict(batch, input_ids=batch["input_ids"].clone())
    changed["input_ids"][:, width_source:] = torch.randint(500, 1000, changed["input_ids"][:, width_source:].shape)
    after = layer_states(model, changed)
    for states_before, states_after in zip(before, after, strict=True):
        source = (real[:, :width_source] & (batch["ranks"][:, :width_source] == 0)).unsqueeze(1).unsqueeze(-1)
        assert torch.allclose(states_before[:, :, :width_source] * source, states_after[:, :, :width_source] * source)

    padded = dict(
        batch,
        input_ids=torch.where(batch["is_pad"], torch.randint(500, 1000, batch["ranks"].shape), batch["input_ids"]),
    )
    assert (padded["input_ids"] != batch["input_ids"]).any()
    for states_before, states_after in zip(before, layer_states(model, padded), strict=True):
        keep = real.unsqueeze(1).unsqueeze(-1)
        assert torch.allclose(states_before * keep, states_after * keep, atol=1e-5)

    if mode == "pseudo_masked":
        pseudo = batch["ranks"] < 0
        changed = dict(
            batch, input_ids=torch.where(pseudo, torch.randint(500, 1000, pseudo.shape), batch["input_ids"])
        )
        visible = (real & ~pseudo).unsqueeze(1).unsqueeze(-1)
        for states_before, states_after in zip(before, layer_states(model, changed), strict=True):
            assert torch.allclose(states_before * visible, states_after * visible)


def test_pseudo_token_sees_exactly_the_earlier_real_tokens(bert):
    """Changing y_t' with t' >= t (its own twin included) leaves P_t unchanged; changing y_(t-1) changes it."""
    model, ids, _ = bert
    batch, examples = layout("pseudo_masked", ids, [[101, 102, 103]], [[110, 111, 112, 113]])
    width_source, target_length = len(examples[0]["source"]), len(examples[0]["target"])
    logits = run(model, batch)
    pseudo_start = width_source + target_length
    for t in range(1, target_length):
        changed = batch["input_ids"].clone()
        changed[0, width_source + t :][: target_length - t] = 777  # y_t ... y_T
        new_logits = run(model, dict(batch, input_ids=changed))
        assert torch.allclose(logits[0, pseudo_start + t], new_logits[0, pseudo_start + t], atol=1e-6)
        changed = batch["input_ids"].clone()
        changed[0, width_source + t - 1] = 777
        new_logits = run(model, dict(batch, input_ids=changed))
        assert not torch.allclose(logits[0, pseudo_start + t], new_logits[0, pseudo_start + t], atol=1e-4)


def gold_incremental_logits(model, ids, source, gold, pos_shift, use_cache=True) -> torch.Tensor:
    decoder = IncrementalDecoder(model, source_batch([source], ids, pos_shift, 0), ids, 1, pos_shift, use_cache)
    with torch.no_grad():
        steps = [decoder.first()] + [decoder.next(torch.tensor([token])) for token in gold[:-1]]
    return torch.cat(steps)


@pytest.mark.parametrize("mode", MODES)
def test_training_forward_equals_incremental_decoding_on_the_gold_prefix(bert, mode):
    model, ids, _ = bert
    batch, examples = layout(mode, ids)
    logits = run(model, batch)
    width_source = max(len(example["source"]) for example in examples)
    width_target = max(len(example["target"]) for example in examples)
    for row, (source, target) in enumerate(zip(SOURCES, TARGETS, strict=True)):
        gold = target + [ids.sep]
        incremental = gold_incremental_logits(model, ids, source, gold, pos_shift=mode == "causal")
        if mode == "masked":  # slot t masked, alone, predicts y_t at its own slot
            training = []
            for t in range(len(gold)):
                example = dict(examples[row], target=gold[:t] + [ids.mask] + gold[t + 1 :])
                single = run(model, collate([example], mode, ids, 0, 1))
                training.append(single[0, len(examples[row]["source"]) + t])
            training = torch.stack(training)
        else:
            start = width_source + (width_target if mode == "pseudo_masked" else 0)
            training = logits[row, start : start + len(gold)]
        assert torch.allclose(training, incremental, atol=1e-4), (mode, (training - incremental).abs().max())


def test_cached_decoding_equals_full_recomputation(bert):
    model, ids, _ = bert
    for pos_shift in (False, True):
        gold = [120, 121, 122, 123, ids.sep]
        cached = gold_incremental_logits(model, ids, SOURCES[0], gold, pos_shift, use_cache=True)
        full = gold_incremental_logits(model, ids, SOURCES[0], gold, pos_shift, use_cache=False)
        assert torch.allclose(cached, full, atol=1e-4)
    # Reordering rows (beam back-pointers) keeps the cache consistent: permute, then continue.
    for pos_shift in (False, True):
        decoders = [
            IncrementalDecoder(model, source_batch(SOURCES, ids, pos_shift, 0), ids, 1, pos_shift, use_cache)
            for use_cache in (True, False)
        ]
        with torch.no_grad():
            for decoder in decoders:
                decoder.first()
                decoder.next(torch.tensor([120, 121, 122, 123]))
                decoder.reorder(torch.tensor([2, 0, 3, 3]))
            logits = [decoder.next(torch.tensor([130, 131, 132, 133])) for decoder in decoders]
        assert torch.allclose(logits[0], logits[1], atol=1e-4)
    for beam_size in (1, 3):
        options = DecodeOptions(max_tgt_length=5, beam_size=beam_size, forbid_duplicate_ngrams=True, ngram_size=2)
        with_cache = decode(model, SOURCES, ids, options, batch_size=3)
        options.use_cache = False
        without = decode(model, SOURCES, ids, options, batch_size=3)
        assert [r["tokens"] for r in with_cache] == [r["tokens"] for r in without]
        assert np.allclose([r["score"] for r in with_cache], [r["score"] for r in without], atol=1e-3)


def test_beam_score_is_reproduced_by_rescoring_with_full_forwards(bert):
    """After back-pointer reordering of the cache, the returned score is the sum of full-recompute log-probs."""
    model, ids, _ = bert
    options = DecodeOptions(max_tgt_length=6, beam_size=4)
    results = decode(model, SOURCES, ids, options, batch_size=4)
    for source, result in zip(SOURCES, results, strict=True):
        hypothesis = result["tokens"] + ([ids.sep] if len(result["tokens"]) < result["length"] else [])
        logits = gold_incremental_logits(model, ids, source, hypothesis, pos_shift=False, use_cache=False)
        log_probs = torch.log_softmax(logits, -1)
        rescored = log_probs[torch.arange(len(hypothesis)), torch.tensor(hypothesis)].sum()
        assert abs(float(rescored) - result["score"]) < 1e-3
    assert [r["score"] for r in decode(model, SOURCES, ids, options, batch_size=2)] == [r["score"] for r in results]


def test_key_bias_does_not_change_outputs(bert):
    model, ids, _ = bert
    batch, _ = layout("pseudo_masked", ids)
    before = run(model, batch)
    saved = [layer.attention.self.key.bias.detach().clone() for layer in model.bert.encoder.layer]
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            layer.attention.self.key.bias.zero_()
    try:
        assert torch.allclose(before, run(model, batch), atol=1e-4)
    finally:
        with torch.no_grad():
            for layer, bias in zip(model.bert.encoder.layer, saved, strict=True):
                layer.attention.self.key.bias.copy_(bias)


@pytest.fixture
def biased(bert):
    """The tiny model with its output bias pushed towards chosen tokens; restored afterwards."""
    model, ids, tokenizer = bert
    bias = model.cls.predictions.bias
    saved = bias.detach().clone()

    def push(token_biases: dict):
        with torch.no_grad():
            bias.copy_(saved)
            for token, value in token_biases.items():
                bias[token] += value
        return model

    yield push, ids
    with torch.no_grad():
        bias.copy_(saved)


def test_min_len_forbids_an_early_end(biased):
    push, ids = biased
    model = push({ids.sep: 50.0})  # the end token wins whenever it is allowed
    for beam_size in (1, 3):
        for min_len in (0, 1, 4):
            options = DecodeOptions(max_tgt_length=8, beam_size=beam_size, min_len=min_len)
            for result in decode(model, SOURCES, ids, options, batch_size=4):
                assert len(result["tokens"]) == min_len


def has_repeated_ngram(tokens: list[int], n: int, ignore: set) -> bool:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    grams = [gram for gram in grams if not ignore.intersection(gram)]
    return len(grams) != len(set(grams))


def test_ngram_blocking(biased):
    push, ids = biased
    model = push({500: 30.0, 501: 29.0, ids.sep: -100.0})  # a model that loves to repeat 500 500 500 ...
    plain = decode(model, SOURCES, ids, DecodeOptions(max_tgt_length=10), batch_size=4)
    assert all(has_repeated_ngram(result["tokens"], 2, set()) for result in plain)
    for beam_size in (1, 3):
        for n, ignore in ((2, set()), (3, set()), (2, {500})):
            options = DecodeOptions(
                max_tgt_length=10,
                beam_size=beam_size,
                forbid_duplicate_ngrams=True,
                ngram_size=n,
                forbid_ignore_ids=ignore,
            )
            for result in decode(model, SOURCES, ids, options, batch_size=4):
                assert len(result["tokens"]) == 10
                assert not has_repeated_ngram(result["tokens"], n, ignore), (n, ignore, result["tokens"])
                if ignore:
                    assert result["tokens"].count(500) > 2, "an ignored word may repeat"
    assert ngram_bans([5, 6, 7, 5, 6], 3, set()) == {7}
    assert ngram_bans([5, 6, 7, 5, 6, 9, 5, 6], 3, set()) == {7, 9}
    assert ngram_bans([5, 6, 7, 5, 6], 3, {6}) == set()
    assert ngram_bans([5, 6, 7, 5, 6], 3, {7}) == set()
    assert ngram_bans([5, 5], 2, set()) == {5} and ngram_bans([5], 2, set()) == set()


def test_length_penalty_selection_and_ended_beams(bert):
    model, ids, _ = bert
    for alpha in (0.0, 0.6, 2.0):
        options = DecodeOptions(max_tgt_length=6, beam_size=4, length_penalty=alpha)
        batch = source_batch(SOURCES, ids, False, 0)
        with torch.no_grad():
            results = beam_search(IncrementalDecoder(model, batch, ids, 1, False, True), ids, options)
        for result in results:
            best = max(
                result["candidates"],
                key=lambda c: c[0] / ((5 + c[1]) / 6) ** alpha if alpha else c[0],
            )
            assert (result["score"], result["length"]) == (best[0], best[1])
            assert rank_score(best[0], best[1], alpha) == max(
                rank_score(c[0], c[1], alpha) for c in result["candidates"]
            )
        # Replay the trace: a beam that has emitted EOS is never extended while live beams exist.
        trace = results[0]["trace"]
        ended = [[token == ids.sep for token in row] for row in trace[0]["tokens"]]
        for step in trace[1:]:
            for row, (parents, tokens) in enumerate(zip(step["parents"], step["tokens"], strict=True)):
                assert not any(ended[row][parent] for parent in parents) or all(ended[row])
                ended[row] = [
                    ended[row][parent] or token == ids.sep for parent, token in zip(parents, tokens, strict=True)
                ]


def test_outputs_come_back_in_input_order_and_detokenize(bert):
    model, ids, tokenizer = bert
    options = DecodeOptions(max_tgt_length=5, beam_size=2)
    together = decode(model, SOURCES, ids, options, batch_size=3)
    alone = [decode(model, [source], ids, options, batch_size=1)[0] for source in SOURCES]
    assert [r["tokens"] for r in together] == [r["tokens"] for r in alone]
    assert np.allclose([r["score"] for r in together], [r["score"] for r in alone], atol=1e-4)
    pieces = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("unbelievable weather today"))
    assert any(tokenizer.convert_ids_to_tokens(i).startswith("##") for i in pieces), "the test needs a ## piece"
    assert detokenize(tokenizer, pieces) == "unbelievable weather today"


def test_loss_normalisation_ignores_padding(bert):
    model, ids, _ = bert
    for mode in MODES:
        batch, examples = layout(mode, ids)
        with torch.no_grad():
            loss = model(**batch).loss
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        scored = batch["labels"] != ids.pad
        log_probs = torch.log_softmax(logits[scored], -1)
        # Closed form of the smoothed loss, averaged over the scored slots of the whole batch.
        labels = batch["labels"][scored]
        eps, vocab = 0.1, log_probs.shape[-1]
        per_token = (1 - eps) * (np.log(1 - eps) - log_probs[torch.arange(len(labels)), labels]) + eps / (
            vocab - 2
        ) * (
            (vocab - 2) * np.log(eps / (vocab - 2))
            - (log_probs.sum(-1) - log_probs[torch.arange(len(labels)), labels] - log_probs[:, ids.pad])
        )
        assert torch.allclose(loss, per_token.sum() / scored.sum(), atol=1e-4)
        # Longer padding changes nothing.
        wider = [dict(example, source=example["source"]) for example in examples]
        wider.append(
            build_example(
                list(range(100, 111)), list(range(120, 127)), mode, ids, 12, 8, NO_NOISE, np.random.default_rng(0)
            )
        )
        padded = collate(wider, mode, ids, 0, 1)
        padded["labels"][-1] = ids.pad  # the extra example scores nothing
        with torch.no_grad():
            assert torch.allclose(model(**padded).loss, loss, atol=1e-4)


def test_position_table_is_extended_by_tiling(tiny_models):
    model, _ = load_s2s_model("bert", str(tiny_models / "bert"))
    original = model.bert.embeddings.position_embeddings.weight.detach().clone()
    assert extend_position_embeddings(model, 1300)
    extended = model.bert.embeddings.position_embeddings.weight
    assert extended.shape[0] == 1300 and model.config.max_position_embeddings == 1300
    assert torch.equal(extended[:512], original)
    assert torch.equal(extended[512:1024], original) and torch.equal(extended[1024:], original[:276])
    assert not extend_position_embeddings(model, 100)


def test_converted_checkpoints_reproduce_the_original_encoders(tiny_models, tmp_path):
    from transformers import AutoModel, ElectraConfig, ElectraModel, RobertaForMaskedLM

    ids_ = torch.randint(5, 1000, (2, 9))
    folders = {"bert": tiny_models / "bert", "roberta": tiny_models / "roberta"}
    torch.manual_seed(0)
    electra = ElectraModel(
        ElectraConfig(
            vocab_size=1505,
            embedding_size=64,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
        )
    )
    electra.save_pretrained(tmp_path / "electra")
    folders["electra"] = tmp_path / "electra"
    for model_type, folder in folders.items():
        model, _ = load_s2s_model(model_type, str(folder))
        original = AutoModel.from_pretrained(folder).eval()
        with torch.no_grad():
            expected = original(ids_).last_hidden_state
            hidden, _ = model.eval().encode(
                ids_,
                torch.arange(9).expand(2, 9),
                torch.zeros_like(ids_),
                torch.zeros_like(ids_),
                torch.zeros_like(ids_, dtype=torch.bool),
            )
        assert torch.allclose(hidden, expected, atol=1e-5), model_type
    roberta_lm = RobertaForMaskedLM.from_pretrained(folders["roberta"]).eval()
    model, _ = load_s2s_model("roberta", str(folders["roberta"]))
    with torch.no_grad():
        hidden, _ = model.eval().encode(
            ids_,
            torch.arange(9).expand(2, 9),
            torch.zeros_like(ids_),
            torch.zeros_like(ids_),
            torch.zeros_like(ids_, dtype=torch.bool),
        )
        assert torch.allclose(model.cls(hidden), roberta_lm(ids_).logits, atol=1e-4), "the LM head is converted too"
