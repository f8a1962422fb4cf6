#!/usr/bin/env python
"""Build the tiny, randomly initialised models that the tests and `make demo` run on, fully offline.

Commands:

    python utils/create_tiny_models.py --output_dir tiny_models
    python utils/create_tiny_models.py --output_dir /tmp/tiny --models t5,mbart --seed 0 --force

Each folder under `--output_dir` is an ordinary `save_pretrained` checkpoint that loads with
`AutoModelForSeq2SeqLM` (t5, bart, mbart, mbart50, m2m100, nllb, marian, pegasus) or `AutoModelForMaskedLM` (bert,
roberta) and `AutoTokenizer`: safetensors weights, `config.json`, `generation_config.json` (seq2seq models only) and
a tokenizer of the model's own transformers class, trained here on the English and Romanian news text in
`tests/fixtures/tokenizer_corpus/` (see PROVENANCE.md there):

    folder   model class                      tokenizer class    vocabulary
    t5       T5ForConditionalGeneration       T5Tokenizer        Unigram*, then 100 <extra_id_N> sentinels
    bart     BartForConditionalGeneration     RobertaTokenizer   byte-level BPE (tokenizers BpeTrainer)
    mbart    MBartForConditionalGeneration    MBartTokenizer     Unigram*, then 25 language codes and <mask>
    mbart50  MBartForConditionalGeneration    MBart50Tokenizer   Unigram*, then 52 language codes and <mask>
    m2m100   M2M100ForConditionalGeneration   M2M100Tokenizer    Unigram* model file + vocab.json, then 100 __xx__
    nllb     M2M100ForConditionalGeneration   NllbTokenizer      BPE**, then 202 language codes and <mask>
    marian   MarianMTModel                    MarianTokenizer    Unigram* as source.spm = target.spm, + vocab.json
    pegasus  PegasusForConditionalGeneration  PegasusTokenizer   <mask_1>, <mask_2>, <unk_2..102>, then Unigram*
    bert     BertForMaskedLM                  BertTokenizer      lower-cased WordPiece (tokenizers WordPieceTrainer)
    roberta  RobertaForMaskedLM               RobertaTokenizer   byte-level BPE (tokenizers BpeTrainer)

    * the pieces of one sentencepiece Unigram model trained here (their real tokenizers came from sentencepiece too)
    ** the pieces of a sentencepiece BPE model trained here, with merges made as transformers makes NLLB's

The multilingual ones (mbart, mbart50, m2m100, nllb) carry all the language codes of their real checkpoints, in
the same order, with the tokenizer set to English -> Romanian; mbart50, m2m100 and nllb start decoding from
`</s>` and leave `forced_bos_token_id` (the target language) to the scripts.

All models have 2 encoder (and 2 decoder) layers, width 64, 4 heads and a feed-forward size of 128, and accept
512 tokens. The same seed gives byte-identical files. A finished build writes `.build_stamp.json` (a hash of this
script, the corpus, the library versions, the seed and every file written); a later run whose stamp matches
skips the work, so `make demo` and the test fixtures pay for the build once. `--force` rebuilds.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from tokenizers.models import Model
    from tokenizers.trainers import Trainer
    from transformers import GenerationConfig, PreTrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

# torch, tokenizers, sentencepiece and transformers are imported inside the functions that use them: importing
# them takes ~8 s on a small machine, and an up-to-date output dir should be recognised without paying that.

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = REPO_ROOT / "tests" / "fixtures" / "tokenizer_corpus"
CORPUS_FILES = ("newstest2016-enfi.en", "newsdev2016.en", "newsdev2016.ro")
STAMP_FILE = ".build_stamp.json"
ALL_MODELS = ("t5", "bart", "mbart", "mbart50", "m2m100", "nllb", "marian", "pegasus", "bert", "roberta")

# Pieces learned from the corpus (~1500 in each tokenizer); each model's special tokens come on top of them.
VOCAB_SIZE = 1500
# Without an explicit value the tokenizer saves model_max_length as ~1e30 and `truncation=True` does nothing.
MODEL_MAX_LENGTH = 512
# Generation defaults written to generation_config.json: short, greedy, so tests and demos stay fast.
GENERATION_MAX_LENGTH = 64
D_MODEL = 64
FFN_DIM = 128
NUM_HEADS = 4
NUM_LAYERS = 2
T5_EXTRA_IDS = 100
# The 25 mBART-cc25 language codes, in the order (and so with the ids) of the real checkpoints.
MBART_LANGUAGE_CODES = [
    "ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN", "it_IT", "ja_XX",
    "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN",
    "zh_CN",
]  # fmt: skip
# The first ids of the fairseq dictionaries that mBART, mBART-50, M2M100 and NLLB were trained with.
FAIRSEQ_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]


class UsageError(ValueError):
    """A problem with the command line that the user can fix; reported as one line, exit code 2."""


# ----------------------------------------------------------------------------------------------------------------
# Corpus and tokenizer training
# ----------------------------------------------------------------------------------------------------------------


def read_corpus() -> list[str]:
    """Return the non-empty lines of the shipped tokenizer corpus, in a fixed file order."""
    lines = []
    for name in CORPUS_FILES:
        text = (CORPUS_DIR / name).read_text(encoding="utf-8")
        lines.extend(line.strip() for line in text.splitlines() if line.strip())
    return lines


@functools.cache
def train_sentencepiece(model_type: str) -> bytes:
    """Train a sentencepiece model (`"unigram"` or `"bpe"`) on the corpus; return it serialized (`<unk>`=0, `</s>`=1).

    Cached: each kind is trained once per run however many models use it.
    """
    import sentencepiece

    # Random numbers are only drawn to sample sentences, which the full corpus does not need; fixed anyway, so
    # the tokenizers never depend on --seed.
    sentencepiece.set_random_generator_seed(0)
    model = io.BytesIO()
    # The corpus goes in as an iterator and the model comes back as bytes, so no file path is recorded in it.
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(read_corpus()),
        model_writer=model,
        model_type=model_type,
        vocab_size=VOCAB_SIZE,
        character_coverage=1.0,  # keep every character, including the rare Romanian and typographic ones
        # No normalization (no NFKC), like the pipeline T5Tokenizer/MBartTokenizer rebuild when they load.
        normalization_rule_name="identity",
        unk_id=0,
        eos_id=1,
        bos_id=-1,
        pad_id=-1,  # Marian pads with a <pad> that only exists in vocab.json
        # The result depends on the thread count, so it is fixed here rather than taken from the machine.
        num_threads=2,
        minloglevel=2,
    )
    return model.getvalue()


def sentencepiece_unigram() -> bytes:
    """Return the shared sentencepiece Unigram model, serialized (`<unk>`=0, `</s>`=1).

    Marian and M2M100 use the model file itself; T5, mBART, mBART-50 and Pegasus use its pieces and scores, which
    is how their real tokenizers were made too (transformers converts the sentencepiece model to a `tokenizers`
    Unigram). One training serves all six, because it is the slow step: ~3 s, where the `tokenizers` Unigram
    trainer took ~10 s and gave a different vocabulary with and without its thread pool.
    """
    return train_sentencepiece("unigram")


def sentencepiece_pieces(model_bytes: bytes) -> list[tuple[str, float]]:
    """Return the `(piece, score)` pairs of a serialized sentencepiece model, without its `<unk>` and `</s>`."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_proto=model_bytes)
    return [
        (processor.id_to_piece(i), processor.get_score(i))
        for i in range(processor.get_piece_size())
        if not (processor.is_unknown(i) or processor.is_control(i))
    ]


def unigram_pieces() -> list[tuple[str, float]]:
    """Return the `(piece, log-prob)` pairs of the shared Unigram model, without its `<unk>` and `</s>`."""
    return sentencepiece_pieces(sentencepiece_unigram())


def sentencepiece_bpe_vocab(special_tokens: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return the vocab (`special_tokens` first, then the pieces) and merges of a sentencepiece BPE model.

    NllbTokenizer is a `tokenizers` BPE, made from NLLB's sentencepiece BPE model; the Unigram pieces above have
    no merges and, given merges made up for them, split words into single letters. So a sentencepiece BPE model
    is trained here too (~0.2 s) and its merges are generated from its pieces the way transformers converts a
    sentencepiece BPE model when it loads one (which reproduces sentencepiece's own segmentation).
    """
    from transformers.tokenization_utils_base import generate_merges

    pieces = sentencepiece_pieces(train_sentencepiece("bpe"))
    vocab = {token: i for i, token in enumerate(special_tokens)}
    for piece, _ in pieces:
        vocab.setdefault(piece, len(vocab))
    # Scores order the merges (sentencepiece BPE scores are minus the merge rank).
    return vocab, generate_merges(vocab, dict(pieces))


def train_like(template: Tokenizer, trainer: Trainer, model: Model) -> dict:
    """Train `model` with `trainer` and `template`'s normalizer and pre-tokenizer; return the trained model JSON.

    The transformers classes rebuild their normalizer and pre-tokenizer in `__init__` when a folder is loaded and
    keep only the vocabulary (and merges) from tokenizer.json, so the pieces must be learned with exactly the
    pipeline the class will apply; taking it from a blank instance of the class guarantees that.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer(model)
    tokenizer.normalizer = template.normalizer
    tokenizer.pre_tokenizer = template.pre_tokenizer
    tokenizer.train_from_iterator(read_corpus(), trainer=trainer)
    return json.loads(tokenizer.to_str())["model"]


def train_byte_level_bpe(
    template: Tokenizer, special_tokens: list[str]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return the vocab and merges of a byte-level BPE (GPT-2/RoBERTa style) with `special_tokens` first."""
    from tokenizers.models import BPE
    from tokenizers.pre_tokenizers import ByteLevel
    from tokenizers.trainers import BpeTrainer

    # All 256 byte symbols must be in the vocab, or bytes unseen in the corpus would have no id.
    trainer = BpeTrainer(
        vocab_size=VOCAB_SIZE + len(special_tokens),
        special_tokens=special_tokens,
        initial_alphabet=ByteLevel.alphabet(),
        show_progress=False,
    )
    model = train_like(template, trainer, BPE())
    return model["vocab"], [tuple(merge) for merge in model["merges"]]


def train_wordpiece(template: Tokenizer, special_tokens: list[str]) -> dict[str, int]:
    """Return a WordPiece vocab (`##` continuation prefix, as BERT) with `special_tokens` first."""
    from tokenizers.models import WordPiece
    from tokenizers.trainers import WordPieceTrainer

    trainer = WordPieceTrainer(
        vocab_size=VOCAB_SIZE + len(special_tokens), special_tokens=special_tokens, show_progress=False
    )
    learned = train_like(template, trainer, WordPiece())["vocab"]
    # The trainer learns the same set of pieces every run but numbers them in hash-map order, which changes
    # from run to run. WordPiece encoding depends only on the set (greedy longest match), so renumber: the
    # special tokens first, in the given order, then the pieces sorted.
    pieces = sorted(piece for piece in learned if piece not in special_tokens)
    return {piece: i for i, piece in enumerate(special_tokens + pieces)}


# ----------------------------------------------------------------------------------------------------------------
# Shared model helpers
# ----------------------------------------------------------------------------------------------------------------


def seq2seq_sizes() -> dict[str, int]:
    """Return the size arguments shared by the BART-family configs (bart, mbart, marian, pegasus)."""
    return {
        "d_model": D_MODEL,
        "encoder_layers": NUM_LAYERS,
        "decoder_layers": NUM_LAYERS,
        "encoder_attention_heads": NUM_HEADS,
        "decoder_attention_heads": NUM_HEADS,
        "encoder_ffn_dim": FFN_DIM,
        "decoder_ffn_dim": FFN_DIM,
        # Must cover model_max_length, or a 512-token input indexes past the position table.
        "max_position_embeddings": MODEL_MAX_LENGTH,
        # Real checkpoints use 0.1; a tiny model in a 30-second learning test learns faster without it.
        "dropout": 0.0,
    }


def encoder_sizes() -> dict[str, int]:
    """Return the size arguments shared by the BERT-family configs (bert, roberta)."""
    return {
        "hidden_size": D_MODEL,
        "num_hidden_layers": NUM_LAYERS,
        "num_attention_heads": NUM_HEADS,
        "intermediate_size": FFN_DIM,
    }


def greedy_generation_config(config: PreTrainedConfig) -> GenerationConfig:
    """Return a generation config with the config's special ids, greedy search and a short `max_length`."""
    from transformers import GenerationConfig

    # transformers 5 configs only define the ids their model uses (T5Config has no bos_token_id), hence getattr.
    return GenerationConfig(
        bos_token_id=getattr(config, "bos_token_id", None),
        eos_token_id=getattr(config, "eos_token_id", None),
        pad_token_id=getattr(config, "pad_token_id", None),
        decoder_start_token_id=getattr(config, "decoder_start_token_id", None),
        forced_eos_token_id=getattr(config, "forced_eos_token_id", None),
        max_length=GENERATION_MAX_LENGTH,
        num_beams=1,
    )


def save_model(
    folder: Path,
    model_class: type[PreTrainedModel],
    config: PreTrainedConfig,
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
) -> None:
    """Initialise `model_class(config)` from `seed` and save it with `tokenizer` (and a greedy generation config)."""
    import torch

    # Seeding here, per model, makes each model independent of which other models are built in the same run.
    torch.manual_seed(seed)
    model = model_class(config)
    if model.can_generate():
        model.generation_config = greedy_generation_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


# ----------------------------------------------------------------------------------------------------------------
# One builder per model family
# ----------------------------------------------------------------------------------------------------------------


def build_t5(folder: Path, seed: int) -> None:
    """T5: Unigram with `<pad>`=0, `</s>`=1, `<unk>`=2 and 100 sentinels at the end; decoding starts from pad."""
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    # As in the real T5 vocab, the sentinels are the last ids, <extra_id_0> the very last.
    sentinels = [(f"<extra_id_{i}>", 0.0) for i in reversed(range(T5_EXTRA_IDS))]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + unigram_pieces() + sentinels
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=T5_EXTRA_IDS, model_max_length=MODEL_MAX_LENGTH)
    config = T5Config(
        vocab_size=len(tokenizer),  # the sentinels are ids too, so the embedding must cover them
        d_model=D_MODEL,
        d_kv=D_MODEL // NUM_HEADS,
        d_ff=FFN_DIM,
        num_layers=NUM_LAYERS,
        num_decoder_layers=NUM_LAYERS,
        num_heads=NUM_HEADS,
        dropout_rate=0.0,  # as for the BART family: faster learning in short tests
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,  # T5 starts decoding from <pad>
    )
    save_model(folder, T5ForConditionalGeneration, config, tokenizer, seed)


def build_bart(folder: Path, seed: int) -> None:
    """BART: byte-level BPE with `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>` last; decoding starts from `</s>`."""
    from transformers import BartConfig, BartForConditionalGeneration, RobertaTokenizer

    # transformers 5 has no BART tokenizer of its own: BartTokenizer is an alias of RobertaTokenizer.
    template = RobertaTokenizer().backend_tokenizer
    vocab, merges = train_byte_level_bpe(template, special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    tokenizer = RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=MODEL_MAX_LENGTH)
    config = BartConfig(
        vocab_size=len(tokenizer),
        **seq2seq_sizes(),
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,  # BART starts decoding from </s>, as it was pre-trained
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    save_model(folder, BartForConditionalGeneration, config, tokenizer, seed)


def build_mbart(folder: Path, seed: int) -> None:
    """mBART: Unigram with `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, pieces, the 25 language codes, `<mask>` last.

    No `decoder_start_token_id`: the scripts set it to the target language code.
    """
    from transformers import MBartConfig, MBartForConditionalGeneration, MBartTokenizer

    specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    # Language codes, then <mask>, follow the pieces, as in the real checkpoints.
    tail = [(code, 0.0) for code in MBART_LANGUAGE_CODES] + [("<mask>", 0.0)]
    tokenizer = MBartTokenizer(
        vocab=specials + unigram_pieces() + tail,
        src_lang="en_XX",
        tgt_lang="ro_RO",
        model_max_length=MODEL_MAX_LENGTH,
    )
    config = MBartConfig(
        vocab_size=len(tokenizer),
        **seq2seq_sizes(),
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=None,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    save_model(folder, MBartForConditionalGeneration, config, tokenizer, seed)


def build_mbart50(folder: Path, seed: int) -> None:
    """mBART-50: as mbart, but with the 52 mBART-50 language codes and mBART-50's `[lang code] X </s>` on both sides.

    Decoding starts from `</s>`, as in the real checkpoints; generation forces the target language code as the
    first generated token (`forced_bos_token_id`), which the scripts set from --target_lang, so it is not here.
    """
    from transformers import MBart50Tokenizer, MBartConfig, MBartForConditionalGeneration
    from transformers.models.mbart50.tokenization_mbart50 import FAIRSEQ_LANGUAGE_CODES

    specials = [(token, 0.0) for token in FAIRSEQ_SPECIAL_TOKENS]
    # Language codes (in the class's order, the real checkpoints' order), then <mask>, follow the pieces.
    tail = [(code, 0.0) for code in FAIRSEQ_LANGUAGE_CODES] + [("<mask>", 0.0)]
    tokenizer = MBart50Tokenizer(
        vocab=specials + unigram_pieces() + tail,
        src_lang="en_XX",
        tgt_lang="ro_RO",
        # MBart50Tokenizer has no bos_token argument and would leave bos_token unset; mbart-large-50 has <s>.
        bos_token="<s>",
        model_max_length=MODEL_MAX_LENGTH,
    )
    config = MBartConfig(
        vocab_size=len(tokenizer),
        **seq2seq_sizes(),
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,  # mBART-50 starts decoding from </s>
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    save_model(folder, MBartForConditionalGeneration, config, tokenizer, seed)


def m2m100_config(tokenizer: PreTrainedTokenizerBase) -> PreTrainedConfig:
    """Return the M2M100 config (M2M100 and NLLB) for `tokenizer`: decoding starts from `</s>`, as in both."""
    from transformers import M2M100Config

    return M2M100Config(
        vocab_size=len(tokenizer),
        **seq2seq_sizes(),
        # M2M100Config defaults to 0.1 and 0.05 here, where the BART-family configs default to 0.0; zero for the
        # same reason as dropout (and layer drop would make a training step skip layers at random).
        attention_dropout=0.0,
        encoder_layerdrop=0.0,
        decoder_layerdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
    )


def build_m2m100(folder: Path, seed: int) -> None:
    """M2M100: sentencepiece model + vocab.json with `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, the pieces, then the
    100 `__xx__` language tokens; `[__src__] X </s>` and `[__tgt__] X </s>`; decoding starts from `</s>`.

    M2M100Tokenizer is a Python tokenizer that needs `sentencepiece.bpe.model` and a `vocab.json` mapping pieces
    to model ids; the language tokens get the ids after vocab.json's. Generation forces the target language token
    (`forced_bos_token_id`), which the scripts set from --target_lang. The real checkpoints also reserve 8
    "madeupword" ids after the language tokens; no token maps to them, so they are left out here and
    `len(tokenizer)` equals the embedding size.
    """
    from transformers import M2M100ForConditionalGeneration, M2M100Tokenizer
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

    spm_bytes = sentencepiece_unigram()
    vocab = {token: i for i, token in enumerate(FAIRSEQ_SPECIAL_TOKENS)}
    for piece, _ in sentencepiece_pieces(spm_bytes):
        vocab.setdefault(piece, len(vocab))
    # M2M100Tokenizer means to register its language tokens as special tokens, but a mistake in its check adds
    # none (the real checkpoints list them in tokenizer_config.json). Unregistered, they are not counted in
    # len(tokenizer) and not skipped by decode(skip_special_tokens=True), so they are passed explicitly.
    language_tokens = [f"__{code}__" for code in FAIRSEQ_LANGUAGE_CODES["m2m100"]]
    # M2M100Tokenizer only loads from files, so it is created from scratch files, which save_pretrained copies.
    with tempfile.TemporaryDirectory() as scratch:
        files = Path(scratch)
        (files / "sentencepiece.bpe.model").write_bytes(spm_bytes)
        (files / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        tokenizer = M2M100Tokenizer(
            vocab_file=str(files / "vocab.json"),
            spm_file=str(files / "sentencepiece.bpe.model"),
            src_lang="en",
            tgt_lang="ro",
            additional_special_tokens=language_tokens,
            model_max_length=MODEL_MAX_LENGTH,
        )
        save_model(folder, M2M100ForConditionalGeneration, m2m100_config(tokenizer), tokenizer, seed)


def build_nllb(folder: Path, seed: int) -> None:
    """NLLB: BPE with `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, pieces, the 202 language codes, `<mask>` last.

    The M2M100 architecture, as the real NLLB checkpoints; `[src code] X </s>` and `[tgt code] X </s>` (the
    tokenizer's default, non-legacy layout); decoding starts from `</s>` and generation forces the target code
    (`forced_bos_token_id`), which the scripts set from --target_lang.
    """
    from transformers import M2M100ForConditionalGeneration, NllbTokenizer
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    vocab, merges = sentencepiece_bpe_vocab(FAIRSEQ_SPECIAL_TOKENS)
    # Language codes (in the class's order, the real checkpoints' order), then <mask>, follow the pieces.
    for token in [*FAIRSEQ_LANGUAGE_CODES, "<mask>"]:
        vocab[token] = len(vocab)
    tokenizer = NllbTokenizer(
        vocab=vocab,
        merges=merges,
        src_lang="eng_Latn",
        tgt_lang="ron_Latn",
        legacy_behaviour=False,
        model_max_length=MODEL_MAX_LENGTH,
    )
    save_model(folder, M2M100ForConditionalGeneration, m2m100_config(tokenizer), tokenizer, seed)


def build_marian(folder: Path, seed: int) -> None:
    """Marian: sentencepiece model + vocab.json with `</s>`=0, `<unk>`=1, `<pad>` last; decoding starts from pad.

    MarianTokenizer is a Python tokenizer that needs `source.spm`, `target.spm` and a `vocab.json` mapping pieces
    to model ids. One model trained on English and Romanian serves as both, with one shared vocab, like the
    opus-mt checkpoints.
    """
    import sentencepiece
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    spm_bytes = sentencepiece_unigram()
    processor = sentencepiece.SentencePieceProcessor(model_proto=spm_bytes)
    vocab = {"</s>": 0, "<unk>": 1}
    for i in range(processor.get_piece_size()):
        vocab.setdefault(processor.id_to_piece(i), len(vocab))
    vocab["<pad>"] = len(vocab)
    # MarianTokenizer only loads from files, so it is created from scratch files, which save_pretrained copies.
    with tempfile.TemporaryDirectory() as scratch:
        files = Path(scratch)
        (files / "source.spm").write_bytes(spm_bytes)
        (files / "target.spm").write_bytes(spm_bytes)
        (files / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        tokenizer = MarianTokenizer(
            source_spm=str(files / "source.spm"),
            target_spm=str(files / "target.spm"),
            vocab=str(files / "vocab.json"),
            source_lang="en",
            target_lang="ro",
            model_max_length=MODEL_MAX_LENGTH,
        )
        config = MarianConfig(
            vocab_size=len(vocab),
            decoder_vocab_size=len(vocab),
            **seq2seq_sizes(),
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,  # Marian starts decoding from <pad>
            forced_eos_token_id=tokenizer.eos_token_id,
            share_encoder_decoder_embeddings=True,  # one vocab for both sides, as opus-mt
        )
        save_model(folder, MarianMTModel, config, tokenizer, seed)


def build_pegasus(folder: Path, seed: int) -> None:
    """Pegasus: Unigram laid out as the real checkpoints: `<pad>`=0, `</s>`=1, `<mask_1>`=2, `<mask_2>`=3,
    `<unk_2>`..`<unk_102>`=4..104, `<unk>`=105, then the pieces; decoding starts from pad."""
    from transformers import PegasusConfig, PegasusForConditionalGeneration, PegasusTokenizer

    # The 105 reserved ids come first (PegasusTokenizer's default `offset=103`).
    reserved = ["<pad>", "</s>", "<mask_1>", "<mask_2>"] + [f"<unk_{i}>" for i in range(2, 103)] + ["<unk>"]
    vocab = [(token, 0.0) for token in reserved] + unigram_pieces()
    tokenizer = PegasusTokenizer(vocab=vocab, model_max_length=MODEL_MAX_LENGTH)
    config = PegasusConfig(
        vocab_size=len(tokenizer),
        **seq2seq_sizes(),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,  # Pegasus starts decoding from <pad>
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    save_model(folder, PegasusForConditionalGeneration, config, tokenizer, seed)


def build_bert(folder: Path, seed: int) -> None:
    """BERT (uncased): WordPiece with `[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4; a masked LM."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    # do_lower_case also strips accents (ș -> s), as bert-base-uncased does.
    template = BertTokenizer(do_lower_case=True).backend_tokenizer
    vocab = train_wordpiece(template, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=MODEL_MAX_LENGTH)
    config = BertConfig(
        vocab_size=len(tokenizer),
        **encoder_sizes(),
        max_position_embeddings=MODEL_MAX_LENGTH,
        type_vocab_size=2,  # sentence A/B segments, which seq2seq fine-tuning of encoders uses for source/target
        pad_token_id=tokenizer.pad_token_id,
    )
    save_model(folder, BertForMaskedLM, config, tokenizer, seed)


def build_roberta(folder: Path, seed: int) -> None:
    """RoBERTa: byte-level BPE with `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>` last; a masked LM."""
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizer

    template = RobertaTokenizer().backend_tokenizer
    vocab, merges = train_byte_level_bpe(template, special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    tokenizer = RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=MODEL_MAX_LENGTH)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        **encoder_sizes(),
        # RoBERTa numbers positions from pad_token_id + 1, so 512 tokens need 514 rows (as roberta-base has).
        max_position_embeddings=MODEL_MAX_LENGTH + tokenizer.pad_token_id + 1,
        type_vocab_size=1,  # as roberta-base, which was pre-trained without segment ids
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    save_model(folder, RobertaForMaskedLM, config, tokenizer, seed)


BUILDERS = {
    "t5": build_t5,
    "bart": build_bart,
    "mbart": build_mbart,
    "mbart50": build_mbart50,
    "m2m100": build_m2m100,
    "nllb": build_nllb,
    "marian": build_marian,
    "pegasus": build_pegasus,
    "bert": build_bert,
    "roberta": build_roberta,
}


# ----------------------------------------------------------------------------------------------------------------
# Checks, stamp and entry point
# ----------------------------------------------------------------------------------------------------------------


def check_folder(name: str, folder: Path) -> None:
    """Reload `folder` with the Auto classes and check that the tokenizer and config agree on special ids.

    Raises:
        RuntimeError: if an id differs, the tokenizer and the embedding differ in size or model_max_length is
            off; that is a bug in this script.
    """
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    problems = []
    for attribute in ("pad_token_id", "eos_token_id", "bos_token_id"):
        config_id = getattr(config, attribute, None)
        if config_id is not None and config_id != getattr(tokenizer, attribute):
            problems.append(
                f"config.{attribute}={config_id} but tokenizer.{attribute}={getattr(tokenizer, attribute)}"
            )
    if len(tokenizer) != config.vocab_size:
        problems.append(f"len(tokenizer)={len(tokenizer)} but config.vocab_size={config.vocab_size}")
    if tokenizer.model_max_length != MODEL_MAX_LENGTH:
        problems.append(f"tokenizer.model_max_length={tokenizer.model_max_length}")
    if config.is_encoder_decoder:
        generation_config = GenerationConfig.from_pretrained(folder)
        for attribute in ("pad_token_id", "eos_token_id", "bos_token_id", "decoder_start_token_id"):
            if getattr(generation_config, attribute) != getattr(config, attribute, None):
                problems.append(f"generation_config.{attribute} differs from config.{attribute}")
    if problems:
        raise RuntimeError(f"{name}: " + "; ".join(problems))


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_key(seed: int) -> dict:
    """Return what a build depends on: this script, the corpus, the library versions and the seed."""
    return {
        "script_sha256": sha256_file(Path(__file__).resolve()),
        "corpus_sha256": {name: sha256_file(CORPUS_DIR / name) for name in CORPUS_FILES},
        "versions": {lib: version(lib) for lib in ("transformers", "tokenizers", "sentencepiece", "torch")},
        "seed": seed,
    }


def folder_hashes(folder: Path) -> dict[str, str]:
    """Return `{relative path: sha256}` for every file in `folder`, sorted by path."""
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def read_stamp(output_dir: Path, key: dict) -> dict[str, dict[str, str]]:
    """Return the stamp's `{model: file hashes}` if the stamp exists and was made with `key`, else `{}`."""
    stamp_path = output_dir / STAMP_FILE
    if not stamp_path.is_file():
        return {}
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}
    return stamp.get("models", {}) if stamp.get("key") == key else {}


def write_stamp(output_dir: Path, key: dict, models: dict[str, dict[str, str]]) -> None:
    """Write the stamp atomically, so an interrupted run never leaves a stamp for files that are not there."""
    stamp = {"key": key, "models": dict(sorted(models.items()))}
    tmp = output_dir / f"{STAMP_FILE}.tmp"
    tmp.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, output_dir / STAMP_FILE)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate the command line; `args.models` becomes a list of names.

    Raises:
        UsageError: for an unknown or empty `--models`, or an `--output_dir` that is a file.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output_dir", type=Path, required=True, help="Folder that receives one sub-folder per model."
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="Seed for the random weights; default 0. The tokenizers come out the same for every seed.",
    )
    parser.add_argument(
        "--models",
        default=",".join(ALL_MODELS),
        help=f"Comma-separated subset to build; default all: {','.join(ALL_MODELS)}.",
    )
    parser.add_argument("--force", action="store_true", help="Rebuild even if the stamp says the build is current.")
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    if not args.models:
        raise UsageError(f"--models is empty; pass a comma-separated subset of {','.join(ALL_MODELS)}")
    unknown = [name for name in args.models if name not in BUILDERS]
    if unknown:
        raise UsageError(f"--models {','.join(unknown)}: unknown model; choose from {','.join(ALL_MODELS)}")
    if args.output_dir.exists() and not args.output_dir.is_dir():
        raise UsageError(f"--output_dir {args.output_dir} is a file; pass a folder path")
    return args


def main(argv: list[str] | None = None) -> None:
    """Build the requested models that the stamp does not show as current, one folder at a time."""
    # parse and validate
    args = parse_args(argv)
    output_dir: Path = args.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)

    # skip the models whose files are exactly what a build with the same script, corpus, libraries and seed wrote
    key = build_key(args.seed)
    built = read_stamp(output_dir, key)
    todo = [
        name
        for name in args.models
        if args.force or name not in built or built[name] != folder_hashes(output_dir / name)
    ]
    if not todo:
        print(f"{output_dir}: {','.join(args.models)} up to date (seed {args.seed}); pass --force to rebuild")
        return

    # build, check and swap in each model, then record it in the stamp
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # one "Writing model shards" bar per model is only noise here
    # MarianTokenizer warns when sacremoses is missing, but only its unused `normalize()` needs it.
    warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
    for name in todo:
        start = time.perf_counter()
        # Build next to the final folder and swap it in at the end, so an interrupted run leaves no half folder.
        staging = output_dir / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        BUILDERS[name](staging, args.seed)
        check_folder(name, staging)
        shutil.rmtree(output_dir / name, ignore_errors=True)
        os.replace(staging, output_dir / name)
        built[name] = folder_hashes(output_dir / name)
        write_stamp(output_dir, key, built)
        print(f"built {output_dir / name} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    try:
        main()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
