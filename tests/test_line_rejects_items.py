"""The malformed-line table, in the shapes of rate, revise and feedback import.

tests/test_line_rejects.py drives the table of bad pair lines through
``label`` (and ``--dry-run``), ``gold import`` and ``POST /v1/batches``;
here the same kinds of bad line, written in each item shape, go through
``rate``, ``revise`` and ``feedback import`` on SQLite and PostgreSQL: the
good lines stored, one reject per bad line naming field and reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.store.models import Feedback, Rating, Revision
from judges.prompts import RATING_TOOL_NAME
from tests.fake_provider import FakeProvider
from tests.test_line_rejects import JUDGE, MAX_TEXT, assert_one_reject_each, count, run

# command -> (a good line's fields, the text field checked, the stored model, extra arguments)
SHAPES: dict[str, tuple[dict[str, Any], str, type, list[str]]] = {
    "rate": ({"prompt": "q", "response": "an answer"}, "response", Rating, ["-j", JUDGE]),
    "revise": (
        {"prompt": "q", "response": "an answer"},
        "response",
        Revision,
        ["-j", JUDGE, "--constitution", "harmlessness"],
    ),
    "feedback": (
        {"prompt": "q", "completion": "an answer", "label": "up"},
        "completion",
        Feedback,
        [],
    ),
}


def bad_lines(
    base: dict[str, Any], field: str, judged: bool, missing_reason: str = "Field required"
) -> list[tuple[bytes, str]]:
    """(raw line, what its reject says) for every kind of bad line, in this shape."""

    def with_(**fields: Any) -> bytes:
        return json.dumps({**base, **fields}).encode()

    text = json.dumps(base)[:-1]  # the object without its closing brace
    missing = {k: v for k, v in base.items() if k != field}
    lines: list[tuple[bytes, str]] = [
        (b'"just a string"', "expected a JSON object, got a string"),
        (b"[1, 2]", "expected a JSON object, got an array"),
        (json.dumps(missing).encode(), f"field '{field}': {missing_reason}"),
        (with_(**{field: 5}), f"field '{field}'"),
        (with_(prompt=[{"role": "bot", "content": "x"}]), "field 'prompt[0].role'"),
        (text.encode(), "truncated?"),
        (text[:-3].encode(), "truncated?"),
        (with_(prompt="q").replace(b'"q"', b'"q\xff"'), "not valid UTF-8"),
        (with_(prompt="q").replace(b'"q"', b'"q\\u0000"'), "NUL character"),
        (with_(prompt="q").replace(b'"q"', b'"q\x00"'), "invalid JSON"),
        (with_(prompt="q").replace(b'"q"', b'"q\\ud800"'), "lone surrogate"),
        (with_(metadata="oops"), "field 'metadata'"),
        (with_(metadata=7), "field 'metadata'"),
        (with_(metadata=["ab"]), "field 'metadata'"),
        (with_(metadata={"k": "x"}).replace(b'"x"', b'"\\u0000"'), "NUL"),
        (with_(unknown_field=1), "field 'unknown_field'"),
    ]
    if judged:  # the rules of a paid call: size and emptiness
        lines += [
            (with_(**{field: "x" * (MAX_TEXT + 1)}), "the limit is 1000"),
            (with_(**{field: " \n "}), f"field '{field}': empty or whitespace"),
            (with_(prompt=""), "field 'prompt': empty or whitespace"),
        ]
    return lines


@pytest.mark.parametrize("command", sorted(SHAPES))
def test_each_bad_line_is_one_reject_and_the_good_lines_are_stored(
    tmp_path: Path, database_url: str, provider: FakeProvider, command: str
) -> None:
    provider.configure(
        outputs={
            RATING_TOOL_NAME: {"rationale": "ok", "score": 8},
            "record_critique": {"critique": "Fine.", "needs_revision": False},
        }
    )
    base, field, model, extra = SHAPES[command]
    # revise reads a line without a response (a generator may write it); without one, no.
    missing = "no response given" if command == "revise" else "Field required"
    bad = bad_lines(base, field, command != "feedback", missing)
    lines: list[bytes] = []
    expected: dict[int, str] = {}
    good = 0
    for n, (raw, reason) in enumerate(bad):
        lines.append(json.dumps({**base, "prompt": f"q{n}"}).encode())
        good += 1
        lines.append(raw)
        expected[len(lines)] = reason
    path = tmp_path / f"{command}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    words = [command, "import", str(path)] if command == "feedback" else [command, str(path)]
    result = run(database_url, *words, *extra)
    assert result.exit_code == 1, result.output
    assert_one_reject_each(result.output, path, expected)
    assert count(database_url, model) == good
