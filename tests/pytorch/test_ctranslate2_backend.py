"""--generation_backend ctranslate2: CTranslate2 generates, token for token, what `model.generate()` generates.

First `ctranslate2_generation` itself on every model type the tiny models cover (untrained, and trained briefly on a
copy task so that outputs end at varied lengths, which is where beam search differs from greedy), for greedy and beam
search, length limits, forced first and last tokens, several return sequences and length penalties; then the real
scripts (Trainer, Accelerate twin, summarization and translation, one and two processes) against their own
transformers runs; then the settings it refuses.
"""

import json
import random
import shutil
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

import ctranslate2_generation  # the summarization folder's sibling module (pytest puts that folder on sys.path)
from helpers import FIXTURES, assert_usage_error, read_json, read_jsonl, read_lines, run_example

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SOURCES = FIXTURES / "translation" / "wmt16_en_ro" / "sample.json"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
SUMMARIZATION = "examples/pytorch/summarization/run_summarization.py"
SUMMARIZATION_TWIN = "examples/pytorch/summarization/run_summarization_no_trainer.py"
TRANSLATION = "examples/pytorch/translation/run_translation.py"
TRANSLATION_TWIN = "examples/pytorch/translation/run_translation_no_trainer.py"
TORCHRUN = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", 2]
# Target language codes of the multilingual tiny models (English -> Romanian).
TARGET_CODES = {"mbart": "ro_RO", "mbart50": "ro_RO", "m2m100": "__ro__", "nllb": "ron_Latn"}
ALL_TYPES = ("t5", "bart", "mbart", "mbart50", "marian", "m2m100", "nllb", "pegasus")
FORCED_END = ("bart", "mbart", "mbart50", "marian", "pegasus")  # their generation configs force the end token
SETTINGS = [
    {"max_new_tokens": 12},
    {"max_new_tokens": 12, "num_beams": 4, "early_stopping": True},
    {"max_length": 8, "num_beams": 4, "early_stopping": True},
    {"max_length": 14, "num_beams": 4, "early_stopping": True, "num_return_sequences": 2, "length_penalty": 2.0},
    {"max_length": 12, "num_beams": 4, "early_stopping": True, "length_penalty": 0.5},
    {"max_length": 16, "num_beams": 5, "early_stopping": True, "length_penalty": 0.0},
    {"max_length": 30, "min_length": 14},
]
NEVER = {"max_length": 24, "num_beams": 3, "early_stopping": "never"}  # allowed where the end token is not forced


def source_texts(count: int = 24) -> list[str]:
    """English inputs of 2 to 12 words (varied lengths: batches are padded)."""
    lines = [row["translation"]["en"] for row in read_jsonl(SOURCES)]
    lines += (SHARED_DATA / "wmt16_en_ro_newsdev2016" / "newsdev2016.en").read_text(encoding="utf-8").splitlines()[:40]
    rng = random.Random(0)
    return [" ".join(line.split()[: rng.randint(2, 12)]) for line in lines[:count]]


def load(model_dir: Path, name: str):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    if name == "mbart":  # mBART-cc25 starts decoding from the target code (what the scripts set up)
        model.config.decoder_start_token_id = tokenizer.convert_tokens_to_ids(TARGET_CODES[name])
        model.generation_config.decoder_start_token_id = model.config.decoder_start_token_id
    elif name in TARGET_CODES:  # the others force it as the first generated token
        model.generation_config.forced_bos_token_id = tokenizer.convert_tokens_to_ids(TARGET_CODES[name])
    return tokenizer, model


def up_to_end(row: list[int], eos: int) -> list[int]:
    """The decoder start token and the tokens up to the first end token (what the scripts decode)."""
    end = next((index for index in range(1, len(row)) if row[index] == eos), len(row) - 1)
    return row[: end + 1]


def mismatches(model_dir: Path, name: str, tmp_path: Path, settings: list[dict]) -> list[str]:
    """Compare the two backends on `source_texts()` in batches of 8 (padded) for every setting."""
    torch.manual_seed(0)
    tokenizer, model = load(model_dir, name)
    generator = ctranslate2_generation.CTranslate2Generator.for_model(
        model, tokenizer, str(tmp_path / "ct2"), "float32"
    )
    texts, found = source_texts(), []
    for setting in settings:
        config = ctranslate2_generation.generation_config_for(model, setting)
        for start in range(0, len(texts), 8):
            batch = tokenizer(texts[start : start + 8], return_tensors="pt", padding=True)
            with torch.no_grad():
                expected = model.generate(**batch, generation_config=config).tolist()
            got = generator.generate(batch["input_ids"], batch["attention_mask"], config).tolist()
            assert len(got) == len(expected) == len(batch["input_ids"]) * (config.num_return_sequences or 1)
            for index, (want, have) in enumerate(zip(expected, got, strict=True)):
                if up_to_end(want, config.eos_token_id) != up_to_end(have, config.eos_token_id):
                    found.append(f"{name} {setting} row {start + index}: {want} != {have}")
    return found


def train_copy_task(name: str, tiny_models: Path, output_dir: Path, steps: int = 300) -> Path:
    """A tiny model trained briefly to copy short English phrases: it ends its outputs at varied lengths."""
    torch.manual_seed(0)
    tokenizer, model = load(tiny_models / name, name)
    model.train()
    lines = (SHARED_DATA / "wmt16_en_ro_newsdev2016" / "newsdev2016.en").read_text(encoding="utf-8").splitlines()
    rng = random.Random(0)
    phrases = [" ".join(line.split()[start : start + rng.randint(2, 8)]) for line in lines[:300] for start in (0, 5)]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = rng.sample(phrases, 16)
        inputs = tokenizer(batch, text_target=batch, return_tensors="pt", padding=True, truncation=True, max_length=24)
        inputs["labels"][inputs["labels"] == tokenizer.pad_token_id] = -100
        model(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


@pytest.mark.parametrize("name", ALL_TYPES)
def test_untrained_tiny_models_generate_the_same_tokens(name, tiny_models, tmp_path):
    settings = SETTINGS + ([] if name in FORCED_END else [NEVER])
    assert mismatches(tiny_models / name, name, tmp_path, settings) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["t5", "marian", "pegasus", "mbart50", "nllb"])
def test_trained_tiny_models_generate_the_same_tokens(name, tiny_models, tmp_path):
    """Trained, the models end their outputs early, so finished beams compete with running ones (and, with a forced
    end token, with those cut at the limit): the rankings must agree too."""
    trained = train_copy_task(name, tiny_models, tmp_path / "trained")
    settings = SETTINGS + ([] if name in FORCED_END else [NEVER])
    assert mismatches(trained, name, tmp_path / "runs", settings) == []
    # The outputs do end at varied lengths (else this would test the length limit only).
    tokenizer, model = load(trained, name)
    batch = tokenizer(source_texts(), return_tensors="pt", padding=True)
    with torch.no_grad():
        rows = model.generate(**batch, max_new_tokens=20).tolist()
    ended = [len(up_to_end(row, model.generation_config.eos_token_id)) for row in rows]
    assert len(set(ended)) >= 4 and min(ended) < 15


def test_the_conversion_is_reused_while_the_weights_are_unchanged(tiny_models, tmp_path):
    tokenizer, model = load(tiny_models / "bart", "bart")
    folder = str(tmp_path / "ctranslate2")
    assert ctranslate2_generation.convert(model, tokenizer, folder) == folder
    model_file = Path(folder) / "model.bin"
    written = model_file.stat().st_mtime_ns
    config_before = model.config.to_json_string()
    ctranslate2_generation.convert(model, tokenizer, folder)
    assert model_file.stat().st_mtime_ns == written  # reused, not written again
    assert model.config.to_json_string() == config_before  # the converter's flags were taken out again
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1.0  # training changed the weights: converted again
    ctranslate2_generation.convert(model, tokenizer, folder)
    assert model_file.stat().st_mtime_ns != written
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ctranslate2"]  # no partial folder left
    # A folder of that name that it did not write is refused, and left as it was.
    users = tmp_path / "users"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    with pytest.raises(ctranslate2_generation.UsageError, match="holds no model converted"):
        ctranslate2_generation.convert(model, tokenizer, str(users))
    assert [path.name for path in users.iterdir()] == ["notes.txt"]


def model_with_generation(source: Path, folder: Path, **settings) -> Path:
    """A copy of a tiny model whose generation_config.json holds `settings` (e.g. early_stopping for beams)."""
    shutil.copytree(source, folder)
    config = read_json(folder / "generation_config.json")
    (folder / "generation_config.json").write_text(json.dumps({**config, **settings}), encoding="utf-8")
    return folder


def same_outputs(transformers_dir: Path, ctranslate2_dir: Path, prediction_files: tuple[str, ...]) -> None:
    """Predictions, per-example records and scores equal; the losses too (they come from PyTorch either way)."""
    for name in prediction_files:
        assert read_lines(ctranslate2_dir / name) == read_lines(transformers_dir / name), name
    for name in ("generated_predictions.jsonl",):
        assert read_jsonl(ctranslate2_dir / name) == read_jsonl(transformers_dir / name)
    expected, got = read_json(transformers_dir / "all_results.json"), read_json(ctranslate2_dir / "all_results.json")
    timing = ("_runtime", "_per_second", "_preparation_time", "train_loss")
    assert {key: value for key, value in got.items() if not key.endswith(timing)} == {
        key: value for key, value in expected.items() if not key.endswith(timing)
    }
    assert (ctranslate2_dir / "ctranslate2" / "model.bin").is_file()
    assert not (transformers_dir / "ctranslate2").exists()


@pytest.mark.slow
def test_run_translation_beam_search_on_a_trained_marian(tiny_models, tmp_path):
    """Evaluate and predict with 4 beams on a Marian trained to copy (its outputs end at varied lengths): the same
    predictions, scores and losses with either backend; the model is converted once and reused for the prediction."""
    trained = train_copy_task("marian", tiny_models, tmp_path / "trained")
    model = model_with_generation(trained, tmp_path / "marian", num_beams=4, early_stopping=True)
    phrases = tmp_path / "phrases.jsonl"  # what it learnt to copy: 2 to 12 words
    rows = [json.dumps({"translation": {"en": text, "ro": text}}) + "\n" for text in source_texts()]
    phrases.write_text("".join(rows), encoding="utf-8")
    outputs = {}
    for backend in ("transformers", "ctranslate2"):
        outputs[backend] = tmp_path / backend
        result = run_example([
            TRANSLATION, "--model_name_or_path", model, "--source_lang", "en", "--target_lang", "ro",
            "--validation_file", phrases, "--test_file", phrases, "--do_eval", "--do_predict",
            "--predict_with_generate", "--per_device_eval_batch_size", 3, "--generation_max_length", 16,
            "--log_level", "info", "--generation_backend", backend, "--output_dir", outputs[backend],
        ])  # fmt: skip
        log = result.stdout + result.stderr
    same_outputs(outputs["transformers"], outputs["ctranslate2"], ("generated_predictions.txt",))
    assert log.count("CTranslate2: converted the model") == 1 and log.count("CTranslate2: reusing") == 1
    records = read_jsonl(outputs["ctranslate2"] / "generated_predictions.jsonl")
    assert len({record["generated_tokens"] for record in records}) >= 3  # not only outputs cut at the limit


def test_run_summarization_greedy_and_int8(tiny_models, tmp_path):
    """t5, predict only: float32 gives the transformers predictions; int8 runs and reports its scores."""
    base = [
        SUMMARIZATION, "--model_name_or_path", tiny_models / "t5", "--source_prefix", "summarize: ",
        "--validation_file", XSUM, "--test_file", XSUM, "--do_eval", "--do_predict", "--predict_with_generate",
        "--generation_max_length", 16, "--per_device_eval_batch_size", 4,
    ]  # fmt: skip
    run_example([*base, "--output_dir", tmp_path / "transformers"])
    run_example([*base, "--generation_backend", "ctranslate2", "--output_dir", tmp_path / "ctranslate2"])
    same_outputs(tmp_path / "transformers", tmp_path / "ctranslate2", ("generated_predictions.txt",))
    quantized = tmp_path / "int8"
    run_example(
        [*base, "--generation_backend", "ctranslate2", "--ctranslate2_compute_type", "int8", "--output_dir", quantized]
    )
    results = read_json(quantized / "all_results.json")
    assert len(read_lines(quantized / "generated_predictions.txt")) == results["predict_samples"] == 10
    assert 0 <= results["predict_rouge1"] <= 100


@pytest.mark.slow
def test_accelerate_twins_and_two_processes(tiny_models, tmp_path):
    """The summarization twin (bart, greedy) and the translation twin (mBART-50: forced target code, 3 beams), each
    against its transformers run; the translation twin under torchrun writes the one-process predictions."""
    summarization = [
        SUMMARIZATION_TWIN, "--model_name_or_path", tiny_models / "bart", "--train_file", XSUM,
        "--validation_file", XSUM, "--test_file", XSUM, "--do_predict", "--max_train_steps", 6,
        "--per_device_train_batch_size", 2, "--learning_rate", 3e-3, "--val_max_target_length", 16,
    ]  # fmt: skip
    model = model_with_generation(tiny_models / "mbart50", tmp_path / "mbart50", num_beams=3, early_stopping=True)
    translation = [
        TRANSLATION_TWIN, "--model_name_or_path", model, "--source_lang", "en_XX", "--target_lang", "ro_RO",
        "--train_file", SOURCES, "--validation_file", SOURCES, "--test_file", SOURCES, "--do_predict",
        "--max_train_steps", 4, "--per_device_train_batch_size", 2, "--val_max_target_length", 12,
        "--num_beams", 3, "--seed", 3,
    ]  # fmt: skip
    for name, args in (("summarization", summarization), ("translation", translation)):
        for backend in ("transformers", "ctranslate2"):
            run_example([*args, "--generation_backend", backend, "--output_dir", tmp_path / f"{name}-{backend}"])
        same_outputs(
            tmp_path / f"{name}-transformers",
            tmp_path / f"{name}-ctranslate2",
            ("generated_predictions.txt", "eval_predictions.txt"),
        )
    two = tmp_path / "translation-two-processes"
    run_example([*translation, "--generation_backend", "ctranslate2", "--output_dir", two], launcher=TORCHRUN)
    for name in ("generated_predictions.txt", "eval_predictions.txt"):
        assert read_lines(two / name) == read_lines(tmp_path / "translation-ctranslate2" / name)


def tiny_led(tiny_models: Path, folder: Path) -> Path:
    """A seq2seq model type CTranslate2 cannot convert (LED), with the tiny BART tokenizer."""
    from transformers import LEDConfig, LEDForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(tiny_models / "bart")
    config = LEDConfig(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, attention_window=[8],
        max_encoder_position_embeddings=64, max_decoder_position_embeddings=64, decoder_start_token_id=2,
    )  # fmt: skip
    LEDForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


REFUSED = {
    "no generation": ({"--predict_with_generate": None}, "has nothing to generate"),
    "unknown compute type": ({"--ctranslate2_compute_type": "float8"}, "--ctranslate2_compute_type"),
    "early_stopping False": ({"--num_beams": 3}, "early_stopping=False with beam search"),
    "minimum length with beams": ({"min_length": 5, "num_beams": 3, "early_stopping": True}, "min_length=5"),
    "repetition penalty": ({"repetition_penalty": 1.2}, "repetition_penalty=1.2"),
    "n-gram ban": ({"no_repeat_ngram_size": 3}, "no_repeat_ngram_size=3"),
    "sampling": ({"do_sample": True}, "do_sample=True"),
    "model type": ({"model": "led"}, "does not support led models (supported: bart, m2m_100, marian"),
    "not installed": ({"hide ctranslate2": True}, "pip install ctranslate2==4.8.5"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_settings_it_cannot_reproduce_are_refused_in_one_line(case, tiny_models, tmp_path):
    changes, expected = REFUSED[case]
    flags = {key: value for key, value in changes.items() if key.startswith("--")}
    generation = {
        key: value
        for key, value in changes.items()
        if not key.startswith("--") and key not in ("model", "hide ctranslate2")
    }
    model = tiny_led(tiny_models, tmp_path / "led") if changes.get("model") == "led" else tiny_models / "t5"
    if generation:
        model = model_with_generation(model, tmp_path / "model", **generation)
    env = {}
    if changes.get("hide ctranslate2"):  # as on a machine without the package
        (tmp_path / "hide").mkdir()
        (tmp_path / "hide" / "sitecustomize.py").write_text("import sys\nsys.modules['ctranslate2'] = None\n")
        env["PYTHONPATH"] = str(tmp_path / "hide")
    args = {
        "--model_name_or_path": model, "--validation_file": XSUM, "--do_eval": "", "--predict_with_generate": "",
        "--source_prefix": "summarize: ", "--generation_backend": "ctranslate2", "--output_dir": tmp_path / "out",
        **flags,
    }  # fmt: skip
    command = [SUMMARIZATION] + [
        part for key, value in args.items() if value is not None for part in (key, value) if part != ""
    ]
    result = run_example(command, env=env, expect_success=False)
    assert_usage_error(result, expected, tmp_path / "out")
