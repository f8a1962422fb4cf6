"""average_checkpoints.py on real checkpoints: the Trainer's checkpoint-N (run_summarization.py) and Accelerate's
step_N (run_summarization_no_trainer.py), averaged by the command line as a user would, and in memory with
`load_averaged_weights` as the training scripts do."""

import importlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from helpers import FIXTURES, REPO_ROOT, assert_usage_error, read_json, run_example

SUMMARIZATION = REPO_ROOT / "examples" / "pytorch" / "summarization"
SCRIPT = SUMMARIZATION / "average_checkpoints.py"
XSUM = FIXTURES / "summarization" / "xsum" / "sample.json"
# A high learning rate, so that consecutive checkpoints differ in every weight.
TRAINING = ["--train_file", XSUM, "--source_prefix", "summarize: ", "--per_device_train_batch_size", 2]
TRAINING += ["--learning_rate", 3e-3, "--max_source_length", 128, "--max_target_length", 32, "--seed", 7]


@pytest.fixture(scope="module")
def trainer_run(tiny_models, tmp_path_factory) -> Path:
    """A Seq2SeqTrainer run with checkpoint-2, checkpoint-4 and checkpoint-6."""
    run_dir = tmp_path_factory.mktemp("avg-trainer") / "run"
    run_example(
        [SUMMARIZATION / "run_summarization.py", "--model_name_or_path", tiny_models / "t5", *TRAINING]
        + ["--do_train", "--max_steps", 6, "--save_steps", 2, "--output_dir", run_dir]
    )
    return run_dir


@pytest.fixture(scope="module")
def accelerate_run(tiny_models, tmp_path_factory) -> Path:
    """A _no_trainer run with step_2 and step_4 (config and tokenizer in the run folder, from its final save)."""
    run_dir = tmp_path_factory.mktemp("avg-accelerate") / "run"
    run_example(
        [SUMMARIZATION / "run_summarization_no_trainer.py", "--model_name_or_path", tiny_models / "t5", *TRAINING]
        + ["--max_train_steps", 4, "--checkpointing_steps", 2, "--output_dir", run_dir]
    )
    return run_dir


def mean_of(*folders: Path) -> dict[str, torch.Tensor]:
    """The expected average, computed here from the checkpoints' safetensors: summed in float32 in the given order,
    divided by their number."""
    states = [load_file(folder / "model.safetensors") for folder in folders]
    total = {key: tensor.float() for key, tensor in states[0].items()}
    for state in states[1:]:
        total = {key: total[key] + state[key].float() for key in total}
    return {key: (total[key] / len(states)).to(states[0][key].dtype) for key in total}


def assert_all_differ(*folders: Path) -> None:
    """Every tensor changed between the checkpoints (else a copy of one would pass as their mean)."""
    first, second = (load_file(folder / "model.safetensors") for folder in folders)
    assert all(not torch.equal(first[key], second[key]) for key in first), "the checkpoints should differ"


def assert_equal_weights(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    unequal = [key for key in expected if not torch.equal(actual[key], expected[key])]
    assert not unequal, f"{len(unequal)} tensors differ from the mean, e.g. {unequal[0]}"


def average(*args, expect_success=True):
    return run_example([SCRIPT, *args], expect_success=expect_success)


@pytest.fixture(scope="module")
def two_averaged(trainer_run, tmp_path_factory) -> tuple[Path, str]:
    output_dir = tmp_path_factory.mktemp("avg-out") / "averaged"
    result = average(
        "--checkpoints", trainer_run / "checkpoint-2", trainer_run / "checkpoint-4", "--output_dir", output_dir
    )
    return output_dir, result.stdout + result.stderr


def test_cli_writes_the_exact_mean(trainer_run, two_averaged):
    output_dir, log = two_averaged
    assert_all_differ(trainer_run / "checkpoint-2", trainer_run / "checkpoint-4")
    assert_equal_weights(
        load_file(output_dir / "model.safetensors"),
        mean_of(trainer_run / "checkpoint-2", trainer_run / "checkpoint-4"),
    )
    record = read_json(output_dir / "averaged_checkpoints.json")
    assert [Path(path).name for path in record["checkpoints"]] == ["checkpoint-2", "checkpoint-4"]
    assert Path(record["config_from"]).name == "checkpoint-4"  # the newest
    assert f"Averaging 2 checkpoints: {trainer_run / 'checkpoint-2'}, {trainer_run / 'checkpoint-4'}" in log


def test_cli_output_loads_and_generates(trainer_run, two_averaged):
    output_dir, _ = two_averaged
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (output_dir / name).is_file(), name
    model = AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    expected = mean_of(trainer_run / "checkpoint-2", trainer_run / "checkpoint-4")
    assert torch.equal(model.lm_head.weight, expected["shared.weight"])  # the tied copy, not in the file
    assert torch.equal(
        model.encoder.block[0].layer[0].SelfAttention.q.weight,
        expected["encoder.block.0.layer.0.SelfAttention.q.weight"],
    )
    inputs = tokenizer(["summarize: The cat sat on the mat all day."], return_tensors="pt")
    generated = model.generate(**inputs, max_length=8, do_sample=False)
    assert generated.shape[0] == 1 and generated.shape[1] > 1


def test_last_picks_the_newest_complete_checkpoints(trainer_run, tmp_path):
    # A copy of the run with a checkpoint-8 still being written (its trainer_state.json not there yet): skipped.
    run_copy = tmp_path / "run"
    shutil.copytree(trainer_run, run_copy)
    shutil.copytree(run_copy / "checkpoint-6", run_copy / "checkpoint-8")
    (run_copy / "checkpoint-8" / "trainer_state.json").unlink()
    output_dir = tmp_path / "averaged"
    result = average("--run_dir", run_copy, "--last", 2, "--output_dir", output_dir)
    assert_equal_weights(
        load_file(output_dir / "model.safetensors"), mean_of(run_copy / "checkpoint-4", run_copy / "checkpoint-6")
    )
    record = read_json(output_dir / "averaged_checkpoints.json")
    assert [Path(path).name for path in record["checkpoints"]] == ["checkpoint-4", "checkpoint-6"]
    assert "skipping" in result.stdout and "checkpoint-8: incomplete (no trainer_state.json)" in result.stdout


def test_accelerate_step_checkpoints(accelerate_run, tmp_path):
    # A copy of the run with a step_6 whose save was cut short (still under its temporary name): never picked.
    run_copy = tmp_path / "run"
    shutil.copytree(accelerate_run, run_copy)
    shutil.copytree(run_copy / "step_4", run_copy / "step_6.partial")
    output_dir = tmp_path / "averaged"
    average("--run_dir", run_copy, "--last", 2, "--output_dir", output_dir)
    assert_all_differ(run_copy / "step_2", run_copy / "step_4")
    assert_equal_weights(
        load_file(output_dir / "model.safetensors"), mean_of(run_copy / "step_2", run_copy / "step_4")
    )
    assert Path(read_json(output_dir / "averaged_checkpoints.json")["config_from"]) == run_copy
    model = AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    assert torch.equal(model.lm_head.weight, load_file(output_dir / "model.safetensors")["shared.weight"])


def test_accelerate_checkpoints_with_config_from(accelerate_run, tiny_models, tmp_path):
    # step_N folders moved away from their run (no config or tokenizer anywhere near): --config_from supplies them.
    for name in ("step_2", "step_4"):
        shutil.copytree(accelerate_run / name, tmp_path / "moved" / name)
    output_dir = tmp_path / "averaged"
    checkpoints = [tmp_path / "moved" / "step_4", tmp_path / "moved" / "step_2"]  # listed newest first: sorted
    refused = average("--checkpoints", *checkpoints, "--output_dir", output_dir, expect_success=False)
    assert_usage_error(refused, "pass --config_from", output_dir)
    average("--checkpoints", *checkpoints, "--config_from", tiny_models / "t5", "--output_dir", output_dir)
    assert_equal_weights(load_file(output_dir / "model.safetensors"), mean_of(*reversed(checkpoints)))
    assert AutoTokenizer.from_pretrained(output_dir)("summarize: a")["input_ids"]


def import_from_folder(module: str):
    """A sibling module of the summarization folder, imported as the scripts import it (their folder on sys.path)."""
    sys.path.insert(0, str(SUMMARIZATION))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(SUMMARIZATION))


def test_load_averaged_weights_in_memory(trainer_run, tiny_models):
    load_averaged_weights = import_from_folder("average_checkpoints").load_averaged_weights
    UsageError = import_from_folder("seq2seq_checks").UsageError
    checkpoints = [trainer_run / "checkpoint-2", trainer_run / "checkpoint-4", trainer_run / "checkpoint-6"]
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models / "t5")
    load_averaged_weights(model, [str(folder) for folder in checkpoints])
    expected = mean_of(*checkpoints)
    state = model.state_dict()
    tied = ["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"]
    assert set(state) == set(expected) | set(tied)
    for key, tensor in state.items():
        assert torch.equal(tensor, expected[key if key in expected else "shared.weight"]), key
    assert model.lm_head.weight is model.shared.weight  # still tied
    other = AutoModelForSeq2SeqLM.from_pretrained(tiny_models / "bart")
    with pytest.raises(UsageError, match="do not fit the model"):
        load_averaged_weights(other, [str(folder) for folder in checkpoints[:2]])


@pytest.mark.parametrize(
    "arguments, expected",
    [
        ((None, False, "--save_steps 500"), None),
        ((3, True, "--save_steps 500", None), None),
        ((0, True, "--save_steps 500"), "--average_last_checkpoints must be at least 1, got 0"),
        ((3, False, "--checkpointing_steps 500"), "this run saves none; add --checkpointing_steps 500"),
        ((3, True, "--save_steps 500", 2), "--save_total_limit 2 keeps only 2 checkpoints; pass --save_total_limit 3"),
    ],
)
def test_check_average_last_checkpoints(arguments, expected):
    check = import_from_folder("average_checkpoints").check_average_last_checkpoints
    if expected is None:
        check(*arguments)
    else:
        with pytest.raises(import_from_folder("seq2seq_checks").UsageError, match=re.escape(expected)):
            check(*arguments)


def test_overwrite_replaces_an_earlier_average(trainer_run, tmp_path):
    output_dir = tmp_path / "averaged"
    average("--checkpoints", trainer_run / "checkpoint-2", trainer_run / "checkpoint-4", "--output_dir", output_dir)
    before = (output_dir / "model.safetensors").read_bytes()
    refused = average("--run_dir", trainer_run, "--last", 2, "--output_dir", output_dir, expect_success=False)
    assert_usage_error(refused, "--overwrite")
    assert (output_dir / "model.safetensors").read_bytes() == before
    average("--run_dir", trainer_run, "--last", 2, "--output_dir", output_dir, "--overwrite")
    assert_equal_weights(
        load_file(output_dir / "model.safetensors"),
        mean_of(trainer_run / "checkpoint-4", trainer_run / "checkpoint-6"),
    )


def test_help_shows_the_commands():
    result = average("--help")
    assert "--run_dir outputs/xsum-t5 --last 3 --output_dir" in result.stdout and "--config_from" in result.stdout


def edited_copy(checkpoint: Path, target: Path, config_edit=None, weights_edit=None) -> Path:
    """A copy of `checkpoint` with its config.json or weights changed (the refusals' inputs)."""
    shutil.copytree(checkpoint, target)
    if config_edit is not None:
        config = read_json(target / "config.json")
        config.update(config_edit)
        (target / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if weights_edit is not None:
        weights = load_file(target / "model.safetensors")
        save_file(weights_edit(weights), target / "model.safetensors", metadata={"format": "pt"})
    return target


def truncated_embeddings(weights: dict) -> dict:
    return {**weights, "shared.weight": weights["shared.weight"][:100].clone()}


def in_half_precision(weights: dict) -> dict:
    return {key: tensor.half() for key, tensor in weights.items()}


@pytest.fixture(scope="module")
def places(trainer_run, tiny_models, tmp_path_factory) -> dict[str, str]:
    """What the refusals' placeholders stand for: the Trainer run, a model folder (no checkpoint), and copies of
    checkpoint-4 that claim another architecture, hold a tensor of another shape, or hold float16 weights."""
    root, source = tmp_path_factory.mktemp("avg-bad-inputs"), trainer_run / "checkpoint-4"
    bart = {"model_type": "bart", "architectures": ["BartForConditionalGeneration"]}
    return {
        "RUN": str(trainer_run),
        "MODEL": str(tiny_models / "t5"),
        "BART": str(edited_copy(source, root / "bart" / "checkpoint-4", config_edit=bart)),
        "SHAPE": str(edited_copy(source, root / "shape" / "checkpoint-4", weights_edit=truncated_embeddings)),
        "DTYPE": str(edited_copy(source, root / "dtype" / "checkpoint-4", weights_edit=in_half_precision)),
    }


LAST_TWO = ["--run_dir", "RUN", "--last", 2]
REFUSALS = {
    # name: (arguments, --output_dir (NEW: a folder not there yet), text the error line must hold)
    "last_too_many": (["--run_dir", "RUN", "--last", 4], "NEW", "--last 4: RUN holds only 3 complete checkpoints"),
    "last_zero": (["--run_dir", "RUN", "--last", 0], "NEW", "--last must be at least 1, got 0"),
    "neither": (["--run_dir", "RUN"], "NEW", "one of the arguments --last --checkpoints is required"),
    "both": (
        [*LAST_TWO, "--checkpoints", "RUN/checkpoint-2"],
        "NEW",
        "--checkpoints: not allowed with argument --last",
    ),
    "last_without_run_dir": (["--last", 2], "NEW", "--last needs --run_dir"),
    "not_a_checkpoint": (["--checkpoints", "RUN/checkpoint-2", "MODEL"], "NEW", "MODEL: not a checkpoint folder"),
    "missing_folder": (
        ["--checkpoints", "RUN/checkpoint-2", "RUN/checkpoint-9"],
        "NEW",
        "checkpoint-9: no such folder",
    ),
    "other_architecture": (
        ["--checkpoints", "RUN/checkpoint-2", "BART"],
        "NEW",
        "is a t5 model (T5ForConditionalGeneration), but BART is a bart model",
    ),
    "other_shape": (
        ["--checkpoints", "RUN/checkpoint-2", "SHAPE"],
        "NEW",
        "'shared.weight' has shape [1601, 64] vs [100, 64]",
    ),
    "other_dtype": (["--checkpoints", "RUN/checkpoint-2", "DTYPE"], "NEW", "has dtype torch.float32 vs torch.float16"),
    "out_inside_checkpoint": (LAST_TWO, "RUN/checkpoint-6/avg", "lies inside the checkpoint RUN/checkpoint-6"),
    "out_is_the_run": (LAST_TWO, "RUN", "--output_dir RUN holds the checkpoint RUN/checkpoint-4"),
    "out_not_an_average": (
        [*LAST_TWO, "--overwrite"],
        "OTHER",
        "holds no earlier average (averaged_checkpoints.json)",
    ),
}


def snapshot(folder: Path) -> dict:
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals(case, places, trainer_run, tmp_path):
    arguments, output_dir, expected = REFUSALS[case]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("the user's own file\n", encoding="utf-8")

    def resolve(value) -> str:
        text = str(value)
        for name, path in {**places, "NEW": str(tmp_path / "new"), "OTHER": str(tmp_path / "other")}.items():
            text = text.replace(name, path)
        return text

    output_dir = Path(resolve(output_dir))
    before, run_before = snapshot(output_dir), snapshot(trainer_run)
    result = average(*map(resolve, arguments), "--output_dir", output_dir, expect_success=False)
    assert_usage_error(result, resolve(expected))
    assert snapshot(output_dir) == before and snapshot(trainer_run) == run_before, "an input or output was changed"
    assert output_dir.exists() == bool(before), "--output_dir was created"
