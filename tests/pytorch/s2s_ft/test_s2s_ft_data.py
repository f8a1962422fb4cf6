"""s2s-ft data handling in-process: JSON lines, JSON arrays and CSV; text and pre-tokenised sides; output cuts."""

import json
import sys

import pytest

from helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "examples" / "pytorch" / "s2s-ft"))

from s2s_ft.data import read_records, special_ids, tokenize_texts  # noqa: E402
from s2s_ft.decoding import strip_eos  # noqa: E402
from s2s_ft.utils import UsageError  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models / "bert")


def test_formats_and_pre_tokenised_input(tmp_path, tokenizer):
    pieces = tokenizer.tokenize("The weather")  # lower-cased WordPiece pieces, `##` included
    assert any(piece.startswith("##") for piece in pieces)
    rows = [{"src": "The weather is nice.", "tgt": "nice weather"}, {"src": pieces, "tgt": ["nice"]}]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "array.json").write_text(json.dumps(rows))
    (tmp_path / "data.csv").write_text('document,summary\n"The weather is nice.",nice weather\n')
    lines = read_records("--train_file", str(tmp_path / "data.jsonl"), "src", "tgt")
    assert lines == read_records("--train_file", str(tmp_path / "array.json"), "src", "tgt")
    assert read_records("--train_file", str(tmp_path / "data.csv"), "document", "summary") == [lines[0]]
    assert read_records("--input_file", str(tmp_path / "data.jsonl"), "src", None)[1] == (pieces, None)

    sources = tokenize_texts(tokenizer, [source for source, _ in lines])
    assert sources[0] == tokenizer("The weather is nice.", add_special_tokens=False)["input_ids"]
    assert sources[1] == sources[0][: len(pieces)] and tokenizer.unk_token_id not in sources[1]
    with pytest.raises(UsageError, match="no 'target'.*pass --target_column"):
        read_records("--train_file", str(tmp_path / "data.jsonl"), "src", "target")


def test_output_stops_at_the_first_end_or_pad(tokenizer):
    ids = special_ids(tokenizer)
    assert strip_eos([7, 8, ids.sep, 9, ids.sep], ids) == [7, 8]
    assert strip_eos([7, ids.pad, 8], ids) == [7]
    assert strip_eos([7, 8], ids) == [7, 8] and strip_eos([ids.sep], ids) == []
