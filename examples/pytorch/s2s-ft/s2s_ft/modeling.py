"""The s2s-ft model: a BERT-layout encoder plus its tied MLM head, run with per-example attention masks and an
explicit key/value cache; loading and conversion of BERT, RoBERTa, XLM-R and ELECTRA checkpoints.

The class subclasses `BertForMaskedLM`, so its weights, tying, `save_pretrained` and `from_pretrained` are the
stock ones (any BERT-layout checkpoint loads as is). Only the forward pass is ours (spec §13): a short loop over
the stock layer modules that takes a boolean mask built from slot ranks (`masks.attention_allowed`) and can
continue from cached keys/values, which `transformers`' own BERT forward does not offer.
"""

import json
import math
import os

import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM, ElectraModel
from transformers.modeling_outputs import MaskedLMOutput

from .masks import attention_allowed
from .utils import UsageError

# Upstream names -> how the checkpoint is turned into the BERT layout (spec §8).
MODEL_TYPES = ("bert", "minilm", "roberta", "xlm-roberta", "electra")
# The config.json `model_type`s each --model_type reads (MiniLM checkpoints are saved as BERT; so are ours).
CONFIG_MODEL_TYPES = {
    "bert": ("bert",),
    "minilm": ("bert",),
    "roberta": ("roberta", "camembert"),
    "xlm-roberta": ("xlm-roberta",),
    "electra": ("electra",),
}
# Any one of these in a folder means it carries a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model")


def check_encoder_checkpoint(flag: str, path: str, model_type: str) -> None:
    """Raise UsageError unless the local folder `path` holds a config.json of a BERT-like encoder that
    `--model_type` reads. A Hub id (not a folder) is left to loading. Reads config.json only."""
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise UsageError(f"{flag} {path} is a file; pass the folder that holds config.json and the weights")
        return
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise UsageError(f"{flag} {path}: no config.json; pass a folder saved with save_pretrained (or a Hub id)")
    try:
        with open(config_path, encoding="utf-8") as handle:
            found = json.load(handle).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise UsageError(f"{flag} {path}: config.json does not parse ({error}); restore it") from error
    if found is None or found in CONFIG_MODEL_TYPES[model_type]:
        return
    readers = [name for name, types in CONFIG_MODEL_TYPES.items() if found in types]
    if readers:
        raise UsageError(
            f"{flag} {path} is a {found} checkpoint (config.json model_type '{found}'), but --model_type is "
            f"{model_type}; pass --model_type {readers[0]}"
        )
    raise UsageError(
        f"{flag} {path} is a {found} model (config.json model_type '{found}'), not a BERT-like encoder, and "
        f"--model_type {model_type} cannot read it; s2s-ft fine-tunes {', '.join(MODEL_TYPES)} checkpoints: pass "
        "one (encoder-decoder models such as BART or T5 train with examples/pytorch/summarization/run_summarization.py)"
    )


def check_tokenizer_folder(flag: str, path: str, other_flag: str = "--tokenizer_name") -> None:
    """Raise UsageError when the local folder `path` holds none of `TOKENIZER_FILES` (a Hub id is left alone)."""
    if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, name)) for name in TOKENIZER_FILES):
        raise UsageError(
            f"{flag} {path} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); save the tokenizer into "
            f"it (tokenizer.save_pretrained), or pass {other_flag} <folder or Hub id>"
        )


class S2SFTForSeq2Seq(BertForMaskedLM):
    """A BERT encoder fine-tuned as a generator: source and target packed in one sequence (spec §4, §5).

    Extra config fields (saved in config.json, read back by the decoder): `s2s_ft_mode`, `source_type_id`,
    `target_type_id`, `label_smoothing`.
    """

    def encode(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        ranks: torch.Tensor,
        is_pad: torch.Tensor,
        past: dict | None = None,
    ) -> tuple[torch.Tensor, dict]:
        """Final hidden states [B, Lq, H] of the given slots, and the cache extended by them.

        The given slots are the queries; the keys are the cached slots (`past`: per-layer `keys`/`values`
        [B, heads, Lp, d], `ranks`, `is_pad`) followed by the given ones. The returned cache holds all of them.
        """
        embeddings = self.bert.embeddings
        hidden = embeddings.word_embeddings(input_ids) + embeddings.position_embeddings(position_ids)
        if self.config.type_vocab_size > 0:
            hidden = hidden + embeddings.token_type_embeddings(token_type_ids)
        hidden = embeddings.dropout(embeddings.LayerNorm(hidden))

        past_length = 0 if past is None else past["ranks"].shape[1]
        key_ranks = ranks if past is None else torch.cat([past["ranks"], ranks], dim=1)
        key_is_pad = is_pad if past is None else torch.cat([past["is_pad"], is_pad], dim=1)
        query_key_index = torch.arange(past_length, past_length + ranks.shape[1], device=ranks.device)
        allowed = attention_allowed(ranks, key_ranks, key_is_pad, query_key_index).unsqueeze(1)

        cache = {"keys": [], "values": [], "ranks": key_ranks, "is_pad": key_is_pad}
        heads = self.config.num_attention_heads
        dropout = self.config.attention_probs_dropout_prob if self.training else 0.0
        for index, layer in enumerate(self.bert.encoder.layer):
            attention = layer.attention.self
            batch, length, width = hidden.shape

            shape = (batch, length, heads, width // heads)
            query, key, value = (
                projection(hidden).view(shape).transpose(1, 2)
                for projection in (attention.query, attention.key, attention.value)
            )
            if past is not None:
                key = torch.cat([past["keys"][index], key], dim=2)
                value = torch.cat([past["values"][index], value], dim=2)
            cache["keys"].append(key)
            cache["values"].append(value)
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, dropout_p=dropout)
            context = context.transpose(1, 2).reshape(batch, length, width)
            attended = layer.attention.output(context, hidden)
            hidden = layer.output(layer.intermediate(attended), attended)
        return hidden, cache

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        ranks: torch.Tensor,
        is_pad: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> MaskedLMOutput:
        """With `labels` ([B, L], pad id = no loss): the loss (spec §7), head run on scored slots only.
        Without: the logits of every slot."""
        hidden, _ = self.encode(input_ids, position_ids, token_type_ids, ranks, is_pad)
        if labels is None:
            return MaskedLMOutput(logits=self.cls(hidden))
        scored = labels != self.config.pad_token_id
        logits = self.cls(hidden[scored])
        token_losses = label_smoothed_loss(
            logits, labels[scored], self.config.pad_token_id, getattr(self.config, "label_smoothing", 0.0)
        )
        # One global mean over the batch's scored slots, not a mean of per-example means.
        return MaskedLMOutput(loss=token_losses.sum() / (scored.sum() + 1e-5))


def label_smoothed_loss(logits: torch.Tensor, labels: torch.Tensor, pad_id: int, smoothing: float) -> torch.Tensor:
    """Per-token KL(q || softmax(logits)) with q(gold) = 1 - eps, q(pad) = 0, q(other) = eps / (V - 2) (spec §7);
    plain cross-entropy when eps = 0. A pad label gets zero loss. logits [N, V], labels [N]; returns [N]."""
    log_probs = F.log_softmax(logits.float(), dim=-1)
    gold = log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    not_pad = labels != pad_id
    if smoothing <= 0:
        return -gold * not_pad
    vocab = log_probs.shape[-1]
    other = smoothing / (vocab - 2)
    rest = log_probs.sum(-1) - gold - log_probs[:, pad_id]
    loss = (1 - smoothing) * (math.log(1 - smoothing) - gold) + other * ((vocab - 2) * math.log(other) - rest)
    return loss * not_pad


def extend_position_embeddings(model: S2SFTForSeq2Seq, size: int) -> bool:
    """Grow the position table to `size` rows by tiling the existing rows (row i gets row i mod old_size), as
    upstream does with its "reuse" option. A table already large enough is kept. Returns whether it grew."""
    old = model.bert.embeddings.position_embeddings
    if size <= old.num_embeddings:
        return False
    new = torch.nn.Embedding(size, old.embedding_dim, dtype=old.weight.dtype, device=old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight[torch.arange(size) % old.num_embeddings])
    model.bert.embeddings.position_embeddings = new
    model.config.max_position_embeddings = size
    return True


def bert_config_from(source_config, **overrides) -> BertConfig:
    """A BertConfig with the sizes of a RoBERTa/XLM-R/ELECTRA config."""
    keys = (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "max_position_embeddings",
        "type_vocab_size",
        "layer_norm_eps",
        "initializer_range",
        "pad_token_id",
    )
    values = {key: getattr(source_config, key) for key in keys}
    return BertConfig(**{**values, **overrides, "tie_word_embeddings": True})


def convert_roberta_state_dict(state_dict: dict) -> dict:
    """RoBERTa/XLM-R masked-LM weights in the BERT layout: `roberta.` -> `bert.`, the two padding-offset rows of
    the position table dropped, LM-head transform and bias renamed (spec §8)."""
    converted = {}
    for name, tensor in state_dict.items():
        if name.startswith("roberta."):
            name = "bert." + name[len("roberta.") :]
            if name == "bert.embeddings.position_embeddings.weight":
                tensor = tensor[2:]
        elif name.startswith("lm_head."):
            name = {
                "lm_head.dense.weight": "cls.predictions.transform.dense.weight",
                "lm_head.dense.bias": "cls.predictions.transform.dense.bias",
                "lm_head.layer_norm.weight": "cls.predictions.transform.LayerNorm.weight",
                "lm_head.layer_norm.bias": "cls.predictions.transform.LayerNorm.bias",
                "lm_head.bias": "cls.predictions.bias",
            }.get(name)
        if name is not None and "position_ids" not in name:
            converted[name] = tensor
    return converted


def load_s2s_model(model_type: str, name_or_path: str, **config_overrides) -> tuple[S2SFTForSeq2Seq, list[str]]:
    """Load a checkpoint into the BERT layout; return the model and the names of freshly initialised weights.

    bert/minilm (and our own fine-tuned checkpoints) load directly. RoBERTa and XLM-R keep their single
    token-type row, used for both segments, so the encoder computes exactly what was pre-trained. An ELECTRA
    discriminator gets a new MLM head; one whose embedding size differs from its hidden size cannot be loaded.
    """
    if model_type in ("bert", "minilm"):
        model, info = S2SFTForSeq2Seq.from_pretrained(name_or_path, output_loading_info=True, **config_overrides)
        return model, sorted(info["missing_keys"])
    if model_type in ("roberta", "xlm-roberta"):
        original = AutoModelForMaskedLM.from_pretrained(name_or_path)
        state_dict = convert_roberta_state_dict(original.state_dict())
        positions = original.config.max_position_embeddings - 2
    else:
        original = ElectraModel.from_pretrained(name_or_path)
        if original.config.embedding_size != original.config.hidden_size:
            raise ValueError(
                f"{name_or_path}: ELECTRA with embedding size {original.config.embedding_size} != hidden size "
                f"{original.config.hidden_size} (e.g. electra-small) has no BERT layout; use a base or large model"
            )
        state_dict = {"bert." + name: tensor for name, tensor in original.state_dict().items()}
        positions = original.config.max_position_embeddings
    config = bert_config_from(original.config, max_position_embeddings=positions, **config_overrides)
    model = S2SFTForSeq2Seq(config)
    result = model.load_state_dict(state_dict, strict=False)
    model.tie_weights()
    unexpected = [name for name in result.unexpected_keys if "position_ids" not in name]
    if unexpected:
        raise ValueError(f"{name_or_path}: weights with no place in the BERT layout: {', '.join(unexpected[:5])}")
    missing = [name for name in result.missing_keys if name != "cls.predictions.decoder.weight"]
    return model, sorted(missing)
