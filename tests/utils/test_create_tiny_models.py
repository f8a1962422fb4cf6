"""Tests for `utils/create_tiny_models.py`, run as a user would: `python utils/create_tiny_models.py ...`.

One module-scoped fixture builds all ten models twice, into two folders at the same time (the builds are
single-threaded, so two run side by side); the tests then load every folder with the Auto classes and check
what the example scripts rely on: tokenizer class, special-token ids, decoder start, length limits, lossless
tokenization of English and Romanian, the language codes of the multilingual tokenizers, a finite loss and
generation. The second build proves determinism and serves the stamp (skip / --force) test.
"""

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    GenerationConfig,
)
from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES as M2M100_LANGUAGES
from transformers.models.mbart50.tokenization_mbart50 import FAIRSEQ_LANGUAGE_CODES as MBART50_CODES
from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES as NLLB_CODES

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "utils" / "create_tiny_models.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

ENGLISH = "The committee said on Tuesday that 25 new schools will open in Bucharest next year."
# ș and ț with comma below, as in the corpus, plus ă, â, î and Î.
ROMANIAN = "Îngrijorați, elevii și părinții așteaptă ca școlile să își redeschidă porțile în această săptămână."

SEQ2SEQ = ["t5", "bart", "mbart", "mbart50", "m2m100", "nllb", "marian", "pegasus"]
# Tokenizers whose source and target are `[language code] X </s>` and models that start decoding from </s>, with
# the target language code forced as the first generated token.
PREFIX_MULTILINGUAL = ["mbart50", "m2m100", "nllb"]
MASKED_LM = ["bert", "roberta"]
TOKENIZER_CLASS = {
    "t5": "T5Tokenizer",
    "bart": "RobertaTokenizer",  # transformers 5: BartTokenizer is an alias of RobertaTokenizer
    "mbart": "MBartTokenizer",
    "mbart50": "MBart50Tokenizer",  # transformers 5: MBart50TokenizerFast is an alias
    "m2m100": "M2M100Tokenizer",
    "nllb": "NllbTokenizer",
    "marian": "MarianTokenizer",
    "pegasus": "PegasusTokenizer",
    "bert": "BertTokenizer",
    "roberta": "RobertaTokenizer",
}
# Expected token -> id; "last" means len(tokenizer) - 1.
SPECIAL_IDS = {
    "t5": {"<pad>": 0, "</s>": 1, "<unk>": 2, "<extra_id_0>": "last"},
    "bart": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": "last"},
    "mbart": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": "last"},
    "mbart50": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": "last"},
    "m2m100": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "__zu__": "last"},
    "nllb": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": "last"},
    "marian": {"</s>": 0, "<unk>": 1, "<pad>": "last"},
    "pegasus": {"<pad>": 0, "</s>": 1, "<mask_1>": 2, "<mask_2>": 3, "<unk_2>": 4, "<unk_102>": 104, "<unk>": 105},
    "bert": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4},
    "roberta": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": "last"},
}
# decoder_start_token_id by model, as a token (None: set by the scripts from the target language).
DECODER_START = {
    "t5": "<pad>",
    "bart": "</s>",
    "mbart": None,
    "mbart50": "</s>",
    "m2m100": "</s>",
    "nllb": "</s>",
    "marian": "<pad>",
    "pegasus": "<pad>",
}
MBART_25_CODES = (
    "ar_AR cs_CZ de_DE en_XX es_XX et_EE fi_FI fr_XX gu_IN hi_IN it_IT ja_XX kk_KZ ko_KR lt_LT lv_LV my_MM ne_NP "
    "nl_XX ro_RO ru_RU si_LK tr_TR vi_VN zh_CN"
).split()
# Each prefix-multilingual tokenizer: every language code token, then the codes of English, Romanian, German and
# French as `src_lang`/`tgt_lang` take them (M2M100 takes "ro" and writes the token "__ro__").
LANGUAGES = {
    "mbart50": (MBART50_CODES, ["en_XX", "ro_RO", "de_DE", "fr_XX"]),
    "m2m100": ([f"__{code}__" for code in M2M100_LANGUAGES["m2m100"]], ["en", "ro", "de", "fr"]),
    "nllb": (NLLB_CODES, ["eng_Latn", "ron_Latn", "deu_Latn", "fra_Latn"]),
}


def language_id(tokenizer, name: str, code: str) -> int:
    """Return the id of `code` (as `src_lang` takes it) the way the translation scripts look it up."""
    return tokenizer.get_lang_id(code) if name == "m2m100" else tokenizer.convert_tokens_to_ids(code)


def start_script(*args: str) -> subprocess.Popen:
    """Start `python utils/create_tiny_models.py *args` as a user would, offline."""
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        env=ENV,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    """Wait for the script; return its stdout, or fail with the end of its stderr if it exits non-zero."""
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    return stdout


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def file_mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path]:
    """Two complete builds with the default seed, made side by side in separate processes."""
    first, second = tmp_path_factory.mktemp("tiny_a"), tmp_path_factory.mktemp("tiny_b")
    processes = [start_script("--output_dir", str(out)) for out in (first, second)]
    for process in processes:
        finish(process)
    return first, second


@pytest.fixture(scope="module")
def tiny(builds) -> Path:
    return builds[0]


def test_two_builds_are_byte_identical(builds):
    first, second = builds
    first_files, second_files = file_bytes(first), file_bytes(second)
    assert sorted(first_files) == sorted(second_files)
    assert {name for name in first_files if name.endswith("model.safetensors")} == {
        f"{name}/model.safetensors" for name in SEQ2SEQ + MASKED_LM
    }
    different = [name for name in first_files if first_files[name] != second_files[name]]
    assert different == []
    # No absolute path of either build leaks into the files (it would break the comparison in other dirs).
    assert not any(str(first).encode() in content for content in first_files.values())


@pytest.mark.parametrize("name", SEQ2SEQ + MASKED_LM)
def test_tokenizer_and_config_agree(tiny, name):
    folder = tiny / name
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)

    assert type(tokenizer).__name__ == TOKENIZER_CLASS[name]
    assert tokenizer.model_max_length == 512
    assert len(tokenizer(" ".join(["news"] * 600), truncation=True)["input_ids"]) == 512
    assert len(tokenizer) == config.vocab_size
    assert 1000 <= len(tokenizer) <= 2000
    for token, expected in SPECIAL_IDS[name].items():
        assert tokenizer.convert_tokens_to_ids(token) == (len(tokenizer) - 1 if expected == "last" else expected), (
            token
        )
    for attribute in ("pad_token_id", "eos_token_id", "bos_token_id"):
        if getattr(config, attribute, None) is not None:
            assert getattr(config, attribute) == getattr(tokenizer, attribute), attribute
    # Positions must cover model_max_length (RoBERTa counts from pad_token_id + 1, so it needs 514).
    if hasattr(config, "max_position_embeddings"):
        offset = config.pad_token_id + 1 if name == "roberta" else 0
        assert config.max_position_embeddings >= 512 + offset
    assert sum(p.stat().st_size for p in folder.iterdir()) < 1_600_000


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_decoder_start_and_generation_config(tiny, name):
    folder = tiny / name
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    generation_config = GenerationConfig.from_pretrained(folder)

    start = DECODER_START[name]
    assert config.decoder_start_token_id == (None if start is None else tokenizer.convert_tokens_to_ids(start))
    for attribute in ("decoder_start_token_id", "pad_token_id", "eos_token_id", "bos_token_id"):
        assert getattr(generation_config, attribute) == getattr(config, attribute, None), attribute
    assert generation_config.num_beams == 1
    # The target language is the scripts' to force (--target_lang), never a default of the checkpoint.
    assert getattr(config, "forced_bos_token_id", None) is None
    assert generation_config.forced_bos_token_id is None
    assert generation_config.max_length <= 128
    if name == "bart":
        assert config.forced_eos_token_id == generation_config.forced_eos_token_id == tokenizer.eos_token_id
    if name == "marian":
        assert config.share_encoder_decoder_embeddings
        assert config.decoder_vocab_size == config.vocab_size


@pytest.mark.parametrize("name", SEQ2SEQ + MASKED_LM)
@pytest.mark.parametrize("text", [ENGLISH, ROMANIAN], ids=["en", "ro"])
def test_tokenizer_round_trip(tiny, name, text):
    tokenizer = AutoTokenizer.from_pretrained(tiny / name)
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert (
        ids[-1] == tokenizer.eos_token_id
        or (name == "mbart" and ids[-2] == tokenizer.eos_token_id)
        or (name == "bert" and ids[-1] == tokenizer.sep_token_id)
    )
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    if name == "bert":
        # Uncased BERT lower-cases, strips accents (ș -> s) and splits punctuation off with spaces.
        expected = tokenizer.backend_tokenizer.normalizer.normalize_str(text)
        assert decoded.replace(" ", "") == expected.replace(" ", "")
    else:
        assert decoded == text


def test_mbart_language_codes(tiny):
    tokenizer = AutoTokenizer.from_pretrained(tiny / "mbart")
    assert (tokenizer.src_lang, tokenizer.tgt_lang) == ("en_XX", "ro_RO")
    code_ids = [tokenizer.convert_tokens_to_ids(code) for code in MBART_25_CODES]
    assert tokenizer.unk_token_id not in code_ids and len(set(code_ids)) == 25
    assert tokenizer.lang_code_to_id["ro_RO"] == tokenizer.convert_tokens_to_ids("ro_RO")

    tokenizer.src_lang, tokenizer.tgt_lang = "de_DE", "fr_XX"
    batch = tokenizer("hello", text_target="salut")
    assert batch["input_ids"][-2:] == [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("de_DE")]
    assert batch["labels"][-2:] == [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("fr_XX")]


@pytest.mark.parametrize("name", PREFIX_MULTILINGUAL)
def test_prefix_multilingual_language_codes(tiny, name):
    tokenizer = AutoTokenizer.from_pretrained(tiny / name)
    code_tokens, (english, romanian, german, french) = LANGUAGES[name]
    assert len(code_tokens) == {"mbart50": 52, "m2m100": 100, "nllb": 202}[name]
    # Every code has an id of its own inside the embedding, and is special (decode with skip_special_tokens drops it).
    code_ids = tokenizer.convert_tokens_to_ids(code_tokens)
    assert tokenizer.unk_token_id not in code_ids and len(set(code_ids)) == len(code_tokens)
    assert max(code_ids) < len(tokenizer)
    assert set(code_tokens) <= set(tokenizer.all_special_tokens)
    assert (tokenizer.src_lang, tokenizer.tgt_lang) == (english, romanian)
    romanian_token = "__ro__" if name == "m2m100" else romanian
    assert language_id(tokenizer, name, romanian) == tokenizer.convert_tokens_to_ids(romanian_token)
    if name == "m2m100":
        assert tokenizer.lang_code_to_id["ro"] == tokenizer.convert_tokens_to_ids("__ro__")
    if name == "mbart50":
        assert tokenizer.lang_code_to_id["ro_RO"] == tokenizer.convert_tokens_to_ids("ro_RO")

    # Source and target are both `[language code] X </s>`, padded on the right.
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    for source_lang, target_lang in [(german, french), (english, romanian)]:
        tokenizer.src_lang, tokenizer.tgt_lang = source_lang, target_lang
        batch = tokenizer([ENGLISH, "Hi."], text_target=[ROMANIAN, "Salut."], padding=True)
        for key, lang in [("input_ids", source_lang), ("labels", target_lang)]:
            for padded in batch[key]:
                ids = [i for i in padded if i != pad]
                assert ids[0] == language_id(tokenizer, name, lang), (key, lang)
                assert ids[-1] == eos and eos not in ids[:-1], key
                assert not set(ids[1:]) & set(code_ids), key


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_seq2seq_loss_and_generate(tiny, name):
    tokenizer = AutoTokenizer.from_pretrained(tiny / name)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny / name)
    batch = tokenizer(
        [ENGLISH, "A short one."], text_target=[ROMANIAN, "Una scurtă."], padding=True, return_tensors="pt"
    )
    batch["labels"][batch["labels"] == tokenizer.pad_token_id] = -100
    loss = model(**batch).loss
    assert math.isfinite(loss.item())
    # An untrained model should be about uniform over the vocabulary.
    assert abs(loss.item() - math.log(len(tokenizer))) < 1.0

    # mBART starts from the target language code; in transformers 5 generate reads it from generation_config
    # (or the argument), not from model.config. mBART-50, M2M100 and NLLB start from </s> and are forced to
    # generate the target language code next.
    start = (
        tokenizer.convert_tokens_to_ids("ro_RO") if name == "mbart" else model.generation_config.decoder_start_token_id
    )
    forced = {}
    if name in PREFIX_MULTILINGUAL:
        forced["forced_bos_token_id"] = language_id(tokenizer, name, LANGUAGES[name][1][1])
    with torch.no_grad():
        generated = model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            max_length=8,
            decoder_start_token_id=start,
            **forced,
        )
    assert generated.shape[0] == 2 and 1 < generated.shape[1] <= 8
    assert generated[:, 0].tolist() == [start, start]
    if forced:
        assert generated[:, 1].tolist() == [forced["forced_bos_token_id"]] * 2


@pytest.mark.parametrize("name", MASKED_LM)
def test_masked_lm_loss(tiny, name):
    tokenizer = AutoTokenizer.from_pretrained(tiny / name)
    model = AutoModelForMaskedLM.from_pretrained(tiny / name)
    batch = tokenizer([ENGLISH, ROMANIAN], padding="max_length", max_length=512, return_tensors="pt")
    labels = batch["input_ids"].clone()
    batch["input_ids"][:, 3] = tokenizer.mask_token_id
    labels[batch["attention_mask"] == 0] = -100
    # A full 512-token batch must fit the position table (RoBERTa's pad offset) and, for BERT, segment id 1.
    if name == "bert":
        batch["token_type_ids"][:, 256:] = 1
    output = model(**batch, labels=labels)
    assert output.logits.shape == (2, 512, len(tokenizer))
    assert math.isfinite(output.loss.item())


def test_second_run_skips_force_rebuilds_and_damage_is_repaired(builds, tmp_path):
    folder = builds[1]
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)  # the stamp holds no paths, so a copied build is still up to date
    before_bytes, before_mtimes = file_bytes(folder), file_mtimes(folder)

    stdout = finish(start_script("--output_dir", str(folder)))
    assert "up to date" in stdout
    assert file_mtimes(folder) == before_mtimes

    # Side by side: --force rebuilds roberta in the original; in the copy, a damaged bert no longer matches the
    # stamp and is the only model rebuilt. (The two cheapest models to build.)
    (copy / "bert" / "tokenizer.json").unlink()
    forced = start_script("--output_dir", str(folder), "--models", "roberta", "--force")
    repaired = start_script("--output_dir", str(copy))
    finish(forced)
    assert [line.split()[1] for line in finish(repaired).splitlines()] == [str(copy / "bert")]

    after_mtimes = file_mtimes(folder)
    rebuilt = {name for name in before_mtimes if after_mtimes[name] != before_mtimes[name]}
    assert rebuilt == {name for name in before_mtimes if name.startswith("roberta/")} | {".build_stamp.json"}
    assert file_bytes(folder) == before_bytes
    assert file_bytes(copy) == before_bytes


def test_unknown_model_is_a_one_line_error(tmp_path):
    process = subprocess.run(
        [sys.executable, str(SCRIPT), "--output_dir", str(tmp_path / "out"), "--models", "t5,gpt2"],
        env=ENV,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert process.returncode == 2
    assert "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines()[-1].startswith("error: --models gpt2")
    assert not (tmp_path / "out").exists()
