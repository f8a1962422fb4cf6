"""The legacy tools sentence_splitter, save_randomly_initialized_model and download_wmt run as a user would
(examples/legacy/seq2seq), each with its main error path."""

import json

import torch
from safetensors.torch import load_file

from helpers import FIXTURES, assert_usage_error, read_lines, run_example

TOOLS = "examples/legacy/seq2seq"


# ----------------------------------------------------------------------------- sentence_splitter.py
def test_sentence_splitter_marker_keeps_alignment(tmp_path):
    source = tmp_path / "docs.txt"
    source.write_text("First one. Second one here.\n\nAlready<n>split. Third.\nNo full stop\n", encoding="utf-8")
    out = tmp_path / "docs.n.txt"
    run_example([f"{TOOLS}/sentence_splitter.py", source, out])
    # one line per input line (the empty one kept); an existing <n> is a break, not glued text (upstream bug)
    assert read_lines(out) == ["First one.<n>Second one here.", "", "Already<n>split.<n>Third.", "No full stop"]

    missing = run_example(
        [f"{TOOLS}/sentence_splitter.py", tmp_path / "nope.txt", "--marker", "newline"], expect_success=False
    )
    assert_usage_error(missing, "cannot read")


# ----------------------------------------------------------------------------- save_randomly_initialized_model.py
def test_save_randomly_initialized_model_applies_overrides(tiny_models, tmp_path):
    source = tiny_models / "marian"
    save_dir = tmp_path / "small"
    overrides = ["--encoder_layers=1", "--d_model", "32", "--activation_function=relu", "--dropout=0"]
    result = run_example([f"{TOOLS}/save_randomly_initialized_model.py", source, save_dir, *overrides])
    assert "saved a randomly initialized MarianMTModel" in result.stdout
    config = json.loads((save_dir / "config.json").read_text())
    assert config["encoder_layers"] == 1 and config["decoder_layers"] == 2 and config["d_model"] == 32
    assert config["activation_function"] == "relu" and config["dropout"] == 0.0
    assert {"source.spm", "target.spm", "vocab.json"} <= {p.name for p in save_dir.iterdir()}  # the tokenizer
    assert (save_dir / "vocab.json").read_bytes() == (source / "vocab.json").read_bytes()
    weights, original = load_file(save_dir / "model.safetensors"), load_file(source / "model.safetensors")
    key = "model.decoder.layers.1.fc1.weight"
    assert weights[key].shape == (128, 32) and original[key].shape == (128, 64)
    assert not any(name.startswith("model.encoder.layers.1.") for name in weights)
    assert torch.isfinite(weights[key]).all() and weights[key].std() > 0

    bad = run_example(
        [f"{TOOLS}/save_randomly_initialized_model.py", source, tmp_path / "bad", "--encoder_layer=1"],
        expect_success=False,
    )
    assert_usage_error(bad, "no key --encoder_layer (did you mean --encoder_layers?)", output_dir=tmp_path / "bad")


# ----------------------------------------------------------------------------- download_wmt.py
def test_download_wmt_from_local_json_and_offline_hub_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    # the json fixture, plus one text with line breaks in a train record
    for split in ("train", "val", "test"):
        records = (FIXTURES / "translation" / "wmt_en_ro" / f"{split}.json").read_text(encoding="utf-8")
        (data / f"{split}.json").write_text(records, encoding="utf-8")
    records = [json.loads(line) for line in (data / "train.json").read_text(encoding="utf-8").splitlines()]
    records[0]["translation"]["en"] = "Line one.\nLine two.\r\nLine three."
    (data / "train.json").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    save_dir = tmp_path / "out"
    env = {"HF_DATASETS_CACHE": str(tmp_path / "cache")}
    result = run_example(
        [
            f"{TOOLS}/download_wmt.py",
            "--src_lang",
            "en",
            "--tgt_lang",
            "ro",
            "--dataset",
            data,
            "--save_dir",
            save_dir,
        ],
        env=env,
    )
    names = sorted(p.name for p in save_dir.iterdir())
    assert names == [f"{s}.{side}" for s in ("test", "train", "val") for side in ("source", "target")]
    legacy = FIXTURES / "legacy" / "wmt_en_ro"  # the same WMT16 records in the legacy layout
    for split in ("val", "test"):
        for side in ("source", "target"):
            assert read_lines(save_dir / f"{split}.{side}") == read_lines(legacy / f"{split}.{side}")
    train_source = read_lines(save_dir / "train.source")
    assert len(train_source) == len(read_lines(save_dir / "train.target")) == 11
    assert train_source[0] == "Line one. Line two. Line three."
    assert "train: 1 texts had line breaks" in result.stderr

    offline = run_example(
        [f"{TOOLS}/download_wmt.py", "--dataset", "wmt16", "--save_dir", tmp_path / "hub"],
        env=env,
        expect_success=False,
    )
    assert_usage_error(offline, "unset HF_HUB_OFFLINE", output_dir=tmp_path / "hub")
