"""Input shapes: every committed sample of the public data sets reads as canonical pairs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from app.errors import InvalidInputError
from app.labeling.field_maps import parse_inline
from app.labeling.jsonl import LineError, ParsedLine, open_input, read_pairs
from app.labeling.shapes import converter, split_transcript

DATA = Path(__file__).parent / "data"
SAMPLES = [
    "pairs.jsonl",
    "hh-rlhf/harmless-base.test.head20.jsonl",
    "hh-rlhf/harmless-base.test.prompt_chosen_rejected.head20.jsonl",
    "llmbar/llmbar_natural.head20.json",
    "pandalm/testset-v1.head20.json",
]


def read(path: Path, fmt: str = "auto") -> list[ParsedLine | LineError]:
    with open_input(str(path)) as stream:
        return list(read_pairs(stream, path.name, converter(fmt)))


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_reads_without_rejects(name: str) -> None:
    """Each shape is detected and every record becomes a pair."""
    records = read(DATA / name)
    assert records
    assert [r for r in records if isinstance(r, LineError)] == []


def test_hh_rlhf_transcripts_split_at_the_last_assistant_turn() -> None:
    """The prompt is the conversation before the last Assistant turn; responses differ."""
    first = read(DATA / "hh-rlhf/harmless-base.test.head20.jsonl")[0]
    assert isinstance(first, ParsedLine)
    prompt = first.pair.prompt
    assert isinstance(prompt, list)
    assert prompt[-1].role == "user"
    assert first.pair.response_a != first.pair.response_b
    assert first.pair.label in ("a", "b")
    assert first.pair.metadata is None


def test_trl_rows_keep_the_human_preference_as_the_label() -> None:
    """chosen goes to a or b by a hash of the pair, and the label names its side."""
    path = DATA / "hh-rlhf/harmless-base.test.prompt_chosen_rejected.head20.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    records = read(path)
    for row, record in zip(rows, records, strict=True):
        assert isinstance(record, ParsedLine)
        chosen_side = record.pair.response_a if record.pair.label == "a" else record.pair.response_b
        assert chosen_side == row["chosen"]
    labels = [r.pair.label for r in records if isinstance(r, ParsedLine)]
    assert {"a", "b"} == set(labels)  # both sides used, so a first-position judge can't score 100%
    assert labels == [r.pair.label for r in read(path) if isinstance(r, ParsedLine)]


def test_llmbar_labels_map_to_a_and_b() -> None:
    """LLMBar's 1|2 becomes a|b."""
    path = DATA / "llmbar/llmbar_natural.head20.json"
    expected = ["a" if item["label"] == 1 else "b" for item in json.loads(path.read_text())]
    labels = [r.pair.label for r in read(path) if isinstance(r, ParsedLine)]
    assert labels == expected


def test_pandalm_keeps_annotators_in_metadata() -> None:
    """Fields the shape does not use are not lost."""
    first = read(DATA / "pandalm/testset-v1.head20.json")[0]
    assert isinstance(first, ParsedLine)
    assert first.pair.metadata
    assert {"annotator1", "annotator2", "annotator3"} <= first.pair.metadata.keys()


def test_field_mapping() -> None:
    """--map renames any shape's fields into the canonical pair."""
    line = '{"q": "hi", "x": "hello there", "y": "yo", "extra": 1}\n'
    convert = converter(mapping=parse_inline("prompt=q,response_a=x,response_b=y"))
    (record,) = read_pairs(io.StringIO(line), "s", convert)
    assert isinstance(record, ParsedLine)
    assert record.pair.response_b == "yo"
    assert record.pair.metadata == {"extra": 1}
    with pytest.raises(InvalidInputError, match="FIELD=PATH"):
        parse_inline("answer=x")


def test_unknown_shape_and_broken_transcripts_are_explained() -> None:
    """Rejects say why, with the line number."""
    lines = '{"question": "x"}\n{"chosen": "no turns", "rejected": "x"}\n'
    errors = list(read_pairs(io.StringIO(lines), "f.jsonl", converter()))
    assert [str(e).split(": ")[0] for e in errors] == ["f.jsonl:1", "f.jsonl:2"]
    assert "no known shape" in str(errors[0])
    assert "Assistant" in str(errors[1])
    with pytest.raises(ValueError, match="Human"):
        split_transcript("\n\nAssistant: only")
