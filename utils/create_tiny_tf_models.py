#!/usr/bin/env python
"""Build the tiny, randomly initialised TensorFlow models that the Keras twins' tests run on, fully offline.

Run it with the TensorFlow venv (transformers 4.57.6; transformers 5 has no TF models, and a tokenizer saved by
transformers 5 does not load under 4.57, so the PyTorch tiny models cannot be reused):

    .venv-tf/bin/python utils/create_tiny_tf_models.py --output_dir .cache/tiny-models-tf
    .venv-tf/bin/python utils/create_tiny_tf_models.py --output_dir /tmp/tiny --models t5 --seed 0 --force

Each folder is an ordinary `save_pretrained` checkpoint that loads with `TFAutoModelForSeq2SeqLM` and
`AutoTokenizer`: `model.safetensors`, `config.json`, `generation_config.json` (greedy, max_length 64) and a
tokenizer trained on `tests/fixtures/tokenizer_corpus/` with the same corpus reader and sentencepiece settings as
`utils/create_tiny_models.py` (imported from it, so both builds learn the same pieces):

    folder   model class                       tokenizer class       vocabulary
    t5       TFT5ForConditionalGeneration      T5TokenizerFast       sentencepiece Unigram (<pad>=0, </s>=1, <unk>=2)
                                                                     then 100 <extra_id_N> sentinels
    bart     TFBartForConditionalGeneration    BartTokenizerFast     byte-level BPE (tokenizers)
    marian   TFMarianMTModel                   MarianTokenizer       sentencepiece Unigram as source.spm = target.spm
    mbart    TFMBartForConditionalGeneration   MBartTokenizerFast    <s>, <pad>, </s>, <unk>, Unigram pieces, the 25
                                                                     mBART-cc25 language codes, <mask> (en_XX -> ro_RO)

Sizes are those of the PyTorch tiny models (2+2 layers, width 64, 4 heads, feed-forward 128, 512 positions).
The same seed gives the same weights. A finished build writes `.build_stamp.json` (a hash of this script, the
shared builder, the corpus, the library versions, the seed and every file written); a later run whose stamp
matches skips the work. `--force` rebuilds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path

# The corpus, its sentencepiece training and the sizes are shared with the PyTorch builder (one source of truth).
from create_tiny_models import (
    CORPUS_DIR,
    CORPUS_FILES,
    D_MODEL,
    FFN_DIM,
    GENERATION_MAX_LENGTH,
    MODEL_MAX_LENGTH,
    NUM_HEADS,
    NUM_LAYERS,
    T5_EXTRA_IDS,
    VOCAB_SIZE,
    UsageError,
    folder_hashes,
    read_corpus,
    read_stamp,
    seq2seq_sizes,
    sha256_file,
    train_sentencepiece,
    write_stamp,
)

ALL_MODELS = ("t5", "bart", "marian", "mbart")


def t5_sentencepiece() -> bytes:
    """A sentencepiece Unigram model laid out as T5's: `<pad>`=0, `</s>`=1, `<unk>`=2 (serialized).

    The shared model has `<unk>`=0, `</s>`=1 and no pad; T5TokenizerFast converts a model file, so the ids are
    renumbered by editing the model proto: the unknown piece becomes `<pad>` (a control piece) and a new `<unk>`
    is inserted at id 2. The learned pieces and scores are unchanged.
    """
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    proto = model_pb2.ModelProto()
    proto.ParseFromString(train_sentencepiece("unigram"))
    pieces = list(proto.pieces)
    del proto.pieces[:]
    pad, eos, unk = model_pb2.ModelProto.SentencePiece(), pieces[1], model_pb2.ModelProto.SentencePiece()
    pad.piece, pad.score, pad.type = "<pad>", 0.0, model_pb2.ModelProto.SentencePiece.CONTROL
    unk.piece, unk.score, unk.type = "<unk>", 0.0, model_pb2.ModelProto.SentencePiece.UNKNOWN
    proto.pieces.extend([pad, eos, unk, *pieces[2:]])
    proto.trainer_spec.pad_id, proto.trainer_spec.eos_id, proto.trainer_spec.unk_id = 0, 1, 2
    return proto.SerializeToString()


def mbart_sentencepiece() -> bytes:
    """The shared Unigram model laid out as fairseq's mBART model file: `<unk>`=0, `<s>`=1, `</s>`=2, then the pieces.

    MBartTokenizerFast converts such a file into `<s>`, `<pad>`, `</s>`, `<unk>`, the pieces (from id 3 on),
    the language codes and `<mask>`; a `<s>` control piece is inserted so no learned piece is skipped.
    """
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    proto = model_pb2.ModelProto()
    proto.ParseFromString(train_sentencepiece("unigram"))
    pieces = list(proto.pieces)
    del proto.pieces[:]
    bos = model_pb2.ModelProto.SentencePiece()
    bos.piece, bos.score, bos.type = "<s>", 0.0, model_pb2.ModelProto.SentencePiece.CONTROL
    proto.pieces.extend([pieces[0], bos, *pieces[1:]])
    proto.trainer_spec.unk_id, proto.trainer_spec.bos_id, proto.trainer_spec.eos_id = 0, 1, 2
    return proto.SerializeToString()


def greedy_generation_config(config):
    """A generation config with the config's special ids, greedy search and a short `max_length`."""
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=getattr(config, "bos_token_id", None),
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        decoder_start_token_id=config.decoder_start_token_id,
        forced_eos_token_id=getattr(config, "forced_eos_token_id", None),
        max_length=GENERATION_MAX_LENGTH,
        num_beams=1,
    )


def save_model(folder: Path, model_class, config, tokenizer, seed: int) -> None:
    """Initialise `model_class(config)` from `seed`, build its weights and save it with `tokenizer`."""
    import tf_keras

    tf_keras.utils.set_random_seed(seed)  # Python, NumPy and TF seeds: the same weights for the same seed
    model = model_class(config)
    model.build_in_name_scope()
    model.generation_config = greedy_generation_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def build_t5(folder: Path, seed: int) -> None:
    """T5: Unigram with `<pad>`=0, `</s>`=1, `<unk>`=2 and 100 sentinels at the end; decoding starts from pad."""
    from transformers import T5Config, T5TokenizerFast, TFT5ForConditionalGeneration

    with tempfile.TemporaryDirectory() as scratch:
        spm_file = Path(scratch) / "spiece.model"
        spm_file.write_bytes(t5_sentencepiece())
        tokenizer = T5TokenizerFast(
            vocab_file=str(spm_file), extra_ids=T5_EXTRA_IDS, model_max_length=MODEL_MAX_LENGTH
        )
        config = T5Config(
            vocab_size=len(tokenizer),  # the sentinels are ids too, so the embedding must cover them
            d_model=D_MODEL,
            d_kv=D_MODEL // NUM_HEADS,
            d_ff=FFN_DIM,
            num_layers=NUM_LAYERS,
            num_decoder_layers=NUM_LAYERS,
            num_heads=NUM_HEADS,
            dropout_rate=0.0,  # faster learning in short tests, as in the PyTorch tiny models
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,  # T5 starts decoding from <pad>
        )
        save_model(folder, TFT5ForConditionalGeneration, config, tokenizer, seed)


def build_bart(folder: Path, seed: int) -> None:
    """BART: byte-level BPE with `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>` last; decoding starts from `</s>`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartTokenizerFast, TFBartForConditionalGeneration

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        read_corpus(),
        vocab_size=VOCAB_SIZE + 4,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        show_progress=False,
    )
    with tempfile.TemporaryDirectory() as scratch:
        vocab_file, merges_file = bpe.save_model(scratch)
        tokenizer = BartTokenizerFast(
            vocab_file=vocab_file, merges_file=merges_file, model_max_length=MODEL_MAX_LENGTH
        )
    config = BartConfig(
        vocab_size=len(tokenizer),
        **seq2seq_sizes(),
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,  # BART starts decoding from </s>, as it was pre-trained
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    save_model(folder, TFBartForConditionalGeneration, config, tokenizer, seed)


def build_marian(folder: Path, seed: int) -> None:
    """Marian: sentencepiece model + vocab.json with `</s>`=0, `<unk>`=1, `<pad>` last; decoding starts from pad."""
    import sentencepiece
    from transformers import MarianConfig, MarianTokenizer, TFMarianMTModel

    spm_bytes = train_sentencepiece("unigram")
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
            share_encoder_decoder_embeddings=True,
        )
        save_model(folder, TFMarianMTModel, config, tokenizer, seed)


def build_mbart(folder: Path, seed: int) -> None:
    """mBART: `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, pieces, the 25 language codes, `<mask>` last.

    No `decoder_start_token_id`: the scripts set it to the target language code.
    """
    from transformers import MBartConfig, MBartTokenizerFast, TFMBartForConditionalGeneration

    with tempfile.TemporaryDirectory() as scratch:
        spm_file = Path(scratch) / "sentencepiece.bpe.model"
        spm_file.write_bytes(mbart_sentencepiece())
        tokenizer = MBartTokenizerFast(
            vocab_file=str(spm_file), src_lang="en_XX", tgt_lang="ro_RO", model_max_length=MODEL_MAX_LENGTH
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
        save_model(folder, TFMBartForConditionalGeneration, config, tokenizer, seed)


BUILDERS = {"t5": build_t5, "bart": build_bart, "marian": build_marian, "mbart": build_mbart}


def check_folder(name: str, folder: Path) -> None:
    """Reload `folder` with the Auto classes; raise RuntimeError if tokenizer, config and weights disagree."""
    from transformers import AutoConfig, AutoTokenizer, TFAutoModelForSeq2SeqLM

    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    model = TFAutoModelForSeq2SeqLM.from_pretrained(folder)
    problems = []
    for attribute in ("pad_token_id", "eos_token_id"):
        if getattr(config, attribute) != getattr(tokenizer, attribute):
            problems.append(f"config.{attribute}={getattr(config, attribute)} but tokenizer has another id")
    if len(tokenizer) != config.vocab_size:
        problems.append(f"len(tokenizer)={len(tokenizer)} but config.vocab_size={config.vocab_size}")
    if tokenizer.model_max_length != MODEL_MAX_LENGTH:
        problems.append(f"tokenizer.model_max_length={tokenizer.model_max_length}")
    if "token_type_ids" in tokenizer("a b"):
        problems.append("the tokenizer returns token_type_ids, which TF generate() rejects")
    embedding = model.get_input_embeddings()
    rows = (embedding.embeddings if hasattr(embedding, "embeddings") else embedding.weight).shape[0]
    if rows != config.vocab_size:
        problems.append("the embedding does not match config.vocab_size")
    if problems:
        raise RuntimeError(f"{name}: " + "; ".join(problems))


def build_key(seed: int) -> dict:
    """What a build depends on: this script, the shared builder, the corpus, the library versions and the seed."""
    here = Path(__file__).resolve().parent
    return {
        "script_sha256": sha256_file(Path(__file__).resolve()),
        "shared_builder_sha256": sha256_file(here / "create_tiny_models.py"),
        "corpus_sha256": {name: sha256_file(CORPUS_DIR / name) for name in CORPUS_FILES},
        "versions": {
            lib: version(lib) for lib in ("transformers", "tokenizers", "sentencepiece", "tensorflow", "tf-keras")
        },
        "seed": seed,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate the command line; raise UsageError for an unknown model or a file as --output_dir."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output_dir", type=Path, required=True, help="Folder that receives one sub-folder per model."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed for the random weights; default 0.")
    parser.add_argument(
        "--models", default=",".join(ALL_MODELS), help=f"Comma-separated subset; default all: {','.join(ALL_MODELS)}."
    )
    parser.add_argument("--force", action="store_true", help="Rebuild even if the stamp says the build is current.")
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in args.models if name not in BUILDERS]
    if unknown or not args.models:
        raise UsageError(f"--models {','.join(unknown)}: unknown model; choose from {','.join(ALL_MODELS)}")
    if args.output_dir.exists() and not args.output_dir.is_dir():
        raise UsageError(f"--output_dir {args.output_dir} is a file; pass a folder path")
    return args


def main(argv: list[str] | None = None) -> None:
    """Build the requested models that the stamp does not show as current, one folder at a time."""
    args = parse_args(argv)
    output_dir: Path = args.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
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

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported: no C++ start-up chatter
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
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
