"""A bad line costs only itself: one reject naming line, field and reason; the rest is stored.

One table of malformed lines, mixed with good ones, goes through every way
records come in from a file or an upload (``label`` and its ``--dry-run``,
``gold import``, ``revise``, ``rate``, ``feedback import``, ``POST
/v1/batches``) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner, Result

from app.cli import cli
from app.cli.console import MAX_PRINTED_REJECTS
from app.labeling.jsonl import LineError, ParsedLine, read_pairs
from app.labeling.shapes import converter
from app.settings import Settings
from app.store.db import sync_url
from app.store.models import Comparison, Feedback, GoldLabel, JudgeCall, Rating, Revision, Verdict
from judges.prompts import RATING_TOOL_NAME
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"
MAX_TEXT = 1000


def good(n: int, **more: Any) -> bytes:
    line = {
        "id": f"g{n}",
        "prompt": f"question {n}",
        "response_a": "a long answer",
        "response_b": "short",
    }
    return json.dumps({**line, **more}).encode()


def pair(**fields: Any) -> dict[str, Any]:
    return {"prompt": "q", "response_a": "x", "response_b": "y", **fields}


# (raw line, what its reject says): every kind of bad line a pair file has held.
BAD_PAIR_LINES: list[tuple[bytes, str]] = [
    (b'"just a string"', "expected a JSON object, got a string"),
    (b"[1, 2]", "expected a JSON object, got an array"),
    (b"17", "expected a JSON object, got a number"),
    (json.dumps({"prompt": "q", "response_a": "x"}).encode(), "field 'response_b': Field required"),
    (json.dumps(pair(prompt=5)).encode(), "field 'prompt': Input should be a valid string"),
    (
        json.dumps(pair(prompt=[{"role": "bot", "content": "x"}])).encode(),
        "field 'prompt[0].role': Input should be 'system', 'user' or 'assistant'",
    ),
    (b'{"prompt": "q", "response_a": "x", "response_b": "y', "truncated?"),
    (b'{"prompt": "q", "response_a": "x", "response_b": "y"', "truncated?"),
    (b'{"prompt": "q\xff\xfe", "response_a": "x", "response_b": "y"}', "not valid UTF-8"),
    (b'{"prompt": "q\\u0000", "response_a": "x", "response_b": "y"}', "contains a NUL character"),
    (b'{"prompt": "q\x00", "response_a": "x", "response_b": "y"}', "invalid JSON"),  # a raw NUL
    (b'{"prompt": "q", "response_a": "x\\ud800", "response_b": "y"}', "lone surrogate"),
    (b'{"prompt": "q", "response_a": "x", "response_b": "\\udfff y"}', "lone surrogate"),
    (json.dumps(pair(metadata="oops")).encode(), "field 'metadata'"),
    (json.dumps(pair(metadata=7)).encode(), "field 'metadata'"),
    (json.dumps(pair(metadata=["ab"])).encode(), "field 'metadata'"),
    (b'{"prompt": "q", "response_a": "x", "response_b": "y", "metadata": {"k": "\\u0000"}}', "NUL"),
    (json.dumps(pair(response_a="x" * (MAX_TEXT + 1))).encode(), "the limit is 1000"),
    (json.dumps(pair(response_b="   \n ")).encode(), "field 'response_b': empty or whitespace"),
    (json.dumps(pair(prompt="")).encode(), "field 'prompt': empty or whitespace"),
    (json.dumps(pair(label="c")).encode(), "field 'label'"),
    (
        json.dumps(pair(extra_field=1, response_a={"role": "user", "content": "x"})).encode(),
        "field",
    ),
]


def run_rule(item: tuple[bytes, str]) -> bool:
    """Size and emptiness are rules of a judging run, not of reading a file."""
    return "the limit is" in item[1] or "empty or whitespace" in item[1]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, judges_file=None, max_text_chars=MAX_TEXT)


def pair_file(tmp_path: Path, bad: list[tuple[bytes, str]]) -> tuple[Path, dict[int, str]]:
    """Good lines, each bad line after one of them, a duplicate line and an identical pair.

    Returns the file and {line number: expected reason} of its bad lines.
    """
    lines: list[bytes] = [good(0)]
    expected: dict[int, str] = {}
    for n, (raw, reason) in enumerate(bad, start=1):
        lines.append(raw)
        expected[len(lines)] = reason
        if n % 4 == 0:
            lines.append(good(n))
    lines.append(good(0))  # the same pair again: merged, judged once
    lines.append(json.dumps(pair(prompt="same?", response_a="same", response_b="same")).encode())
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, expected


def good_pairs(bad: list[tuple[bytes, str]]) -> int:
    return 1 + sum(1 for n in range(1, len(bad) + 1) if n % 4 == 0)


def run(database_url: str, *args: str, **env: str) -> Result:
    environment = {"REFEREE_DATABASE_URL": database_url, "REFEREE_MAX_TEXT_CHARS": str(MAX_TEXT)}
    return CliRunner().invoke(cli, list(args), env={**environment, **env})


def count(database_url: str, model: type, *where: Any) -> int:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        statement = select(func.count()).select_from(model)
        n = connection.execute(statement.where(*where) if where else statement).scalar_one()
    engine.dispose()
    return int(n)


def reject_lines(output: str, path: Path) -> dict[int, list[str]]:
    """{line number: [the reasons printed for it]} from a command's output."""
    found: dict[int, list[str]] = {}
    for match in re.finditer(rf"^{re.escape(str(path))}:(\d+): (.*)$", output, re.MULTILINE):
        found.setdefault(int(match.group(1)), []).append(match.group(2))
    return found


def assert_one_reject_each(output: str, path: Path, expected: dict[int, str]) -> None:
    """Each bad line printed once with its reason, up to the limit; the rest counted."""
    printed = reject_lines(output, path)
    shown = sorted(expected)[:MAX_PRINTED_REJECTS]
    assert sorted(printed) == shown, output
    for line in shown:
        assert len(printed[line]) == 1, (line, printed[line])
        assert expected[line] in printed[line][0], (line, printed[line][0], expected[line])
    hidden = len(expected) - len(shown)
    assert (f"… and {hidden:,} more rejected lines" in output) == (hidden > 0), output
    assert "Traceback" not in output


class TestReader:
    @pytest.mark.parametrize("shape", ["none", "auto"])
    @pytest.mark.parametrize("as_text", [False, True])
    def test_each_bad_line_is_one_error_and_good_lines_pass(
        self, tmp_path: Path, shape: str, as_text: bool
    ) -> None:
        """Bytes or text, canonical or detected shape: one LineError per bad line, in place."""
        bad = [item for item in BAD_PAIR_LINES if not run_rule(item)]
        if as_text:  # a text stream cannot hold bytes that are not UTF-8
            bad = [item for item in bad if item[1] != "not valid UTF-8"]
        path, expected = pair_file(tmp_path, bad)
        raw = path.read_bytes()
        stream: Any = io.StringIO(raw.decode()) if as_text else io.BytesIO(raw)
        records = list(read_pairs(stream, "f", None if shape == "none" else converter()))
        errors = {r.line: r.reason for r in records if isinstance(r, LineError)}
        assert sorted(errors) == sorted(expected)
        for line, reason in expected.items():
            assert reason in errors[line], (line, errors[line])
        parsed = [r for r in records if isinstance(r, ParsedLine)]
        assert len(parsed) == good_pairs(bad) + 2  # the duplicate and the identical pair read fine

    def test_integer_id_and_spelled_labels_are_accepted(self) -> None:
        """An integer id is its digits; labels "A", " b ", "Tie", 1 and 2 are a, b, tie, a, b."""
        lines = [json.dumps(pair(id=7, label=label)) for label in ("A", " b ", "Tie", 1, 2)]
        records = list(read_pairs(io.StringIO("\n".join(lines)), "f", converter()))
        assert [r.pair.label for r in records if isinstance(r, ParsedLine)] == [
            "a",
            "b",
            "tie",
            "a",
            "b",
        ]
        assert {r.pair.id for r in records if isinstance(r, ParsedLine)} == {"7"}
        (zero,) = read_pairs(io.StringIO(json.dumps(pair(label=0))), "f")
        assert isinstance(zero, LineError)
        assert "field 'label'" in zero.reason

    def test_a_deeply_nested_line_is_one_reject(self) -> None:
        """JSON nested past the recursion limit is refused as a line, not a crash."""
        deep = '{"prompt": "q", "response_a": "x", "response_b": "y", "metadata": ' + "[" * 100_000
        lines = [deep, json.dumps(pair())]
        records = list(read_pairs(io.StringIO("\n".join(lines)), "f", converter()))
        assert isinstance(records[0], LineError)
        assert isinstance(records[1], ParsedLine)


class TestLabel:
    def test_bad_lines_rejected_good_stored_and_the_dry_run_agrees(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """Dry run and real run: the same rejects, the same exit code, the same pairs judged."""
        provider.configure(policy="longer")
        path, expected = pair_file(tmp_path, BAD_PAIR_LINES)
        judged = good_pairs(BAD_PAIR_LINES)

        dry = run(database_url, "label", str(path), "--judge", JUDGE, "--dry-run")
        assert dry.exit_code == 1, dry.output
        assert_one_reject_each(dry.output, path, expected)
        assert f"dry run: {judged} pairs, {2 * judged} calls" in dry.output
        assert f"{len(expected)} lines would be rejected, 1 duplicate lines merged" in dry.output
        assert "1 identical pairs tied without a call" in dry.output
        assert count(database_url, Comparison) == 0
        assert provider.requests() == []

        real = run(database_url, "label", str(path), "--judge", JUDGE)
        assert real.exit_code == dry.exit_code, real.output
        assert_one_reject_each(real.output, path, expected)
        assert f"{judged + 1} labeled" in real.output  # the identical pair is a tie by rule
        assert f"{len(expected)} rejected lines, 1 duplicate lines merged" in real.output
        assert count(database_url, Comparison) == judged + 1
        assert count(database_url, JudgeCall) == 2 * judged
        assert len(provider.requests()) == 2 * judged
        rejects = path.with_name(path.name + ".rejects.jsonl").read_text().splitlines()
        written = {json.loads(line)["line"]: json.loads(line)["reason"] for line in rejects}
        assert sorted(written) == sorted(expected)
        assert all(expected[line] in reason for line, reason in written.items()), written

        again = run(database_url, "label", str(path), "--judge", JUDGE, "--dry-run")
        assert "dry run: 0 pairs, 0 calls" in again.output
        assert f"0 identical pairs tied without a call, {judged + 1} already judged" in again.output

    def test_identical_and_empty_policies(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """Identical: a tie by rule (no call), judged, or rejected; empty: rejected or judged."""
        provider.configure(policy="first")
        path = tmp_path / "same.jsonl"
        path.write_text(
            json.dumps(pair(response_a="same", response_b="same"))
            + "\n"
            + json.dumps(pair(prompt="p2", response_a=" ", response_b="y"))
            + "\n"
        )
        tie = run(database_url, "label", str(path), "--judge", JUDGE)
        assert tie.exit_code == 1
        assert f"{path}:2: field 'response_a': empty" in tie.output
        assert provider.requests() == []
        engine = create_engine(sync_url(database_url))
        with engine.connect() as connection:
            row = connection.execute(
                select(
                    Comparison.template_version,
                    Comparison.status,
                    Verdict.winner,
                    Verdict.rationale,
                ).join(Verdict, Verdict.comparison_id == Comparison.id)
            ).one()
        engine.dispose()
        assert row[:3] == ("rule:identical-responses", "labeled", "tie")
        assert "without a judge call" in row[3]

        rejected = run(database_url, "label", str(path), "--judge", JUDGE, "--identical", "reject")
        assert f"{path}:1: field 'response_b': identical to response_a" in rejected.output

        judged = run(
            database_url,
            "label",
            str(path),
            "--judge",
            JUDGE,
            "--identical",
            "judge",
            "--empty",
            "judge",
            "--batch",
            "judged",
        )
        assert judged.exit_code == 0, judged.output
        assert len(provider.requests()) == 4  # both pairs, both orders
        assert count(database_url, Comparison) == 3  # the rule's tie stays beside the judged pair

        bad = run(database_url, "label", str(path), "--judge", JUDGE, "--identical", "maybe")
        assert bad.exit_code == 2
        assert "not one of tie, judge, reject" in bad.output

    def test_rejects_are_printed_up_to_a_limit_then_counted(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """A file in the wrong shape prints 20 rejects and a count, not one line per line."""
        path = tmp_path / "wrong.jsonl"
        path.write_text("".join(json.dumps({"question": n}) + "\n" for n in range(45)))
        for extra in ((), ("--dry-run",)):
            result = run(database_url, "label", str(path), "--judge", JUDGE, *extra)
            assert result.exit_code == 1
            assert len(reject_lines(result.output, path)) == 20
            assert "… and 25 more rejected lines" in result.output


class TestOtherReaders:
    def test_gold_import(self, tmp_path: Path, database_url: str) -> None:
        """Good labeled lines become gold labels; each bad line is one reject; exit code 1."""
        bad = [item for item in BAD_PAIR_LINES if not run_rule(item)]
        path, expected = pair_file(tmp_path, bad)
        # Give every good line a label, spelled as data sets spell it.
        lines = path.read_bytes().split(b"\n")
        for n, line in enumerate(lines):
            if line.startswith(b'{"id": "g'):
                record = json.loads(line)
                lines[n] = json.dumps({**record, "label": "A"}).encode()
        path.write_bytes(b"\n".join(lines))
        result = run(database_url, "gold", "import", str(path))
        assert result.exit_code == 1, result.output
        assert_one_reject_each(result.output, path, expected)
        assert count(database_url, GoldLabel) == good_pairs(bad)

    def test_revise_runs_a_duplicate_line_once(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """Two equal lines: one run, one set of calls, counted as merged; bad lines rejected."""
        provider.configure(
            outputs={
                "record_critique": {"critique": "Unsafe.", "needs_revision": True},
                "record_revision": {"revision": "A safer answer."},
            }
        )
        item = {"prompt": "p1", "response": "Mix them in a closed room."}
        lines = [
            json.dumps(item),
            json.dumps({**item, "id": 2}),  # the same content under an (integer) id
            b'{"prompt": "p\\u0000", "response": "x"}'.decode(),
            json.dumps({"prompt": "p2", "response": "r", "metadata": "oops"}),
            '{"prompt": "p3", "response": "r',
        ]
        path = tmp_path / "red.jsonl"
        path.write_text("\n".join(lines) + "\n")
        result = run(
            database_url, "revise", str(path), "--constitution", "harmlessness", "-j", JUDGE
        )
        assert result.exit_code == 1, result.output
        assert_one_reject_each(
            result.output,
            path,
            {3: "NUL character", 4: "field 'metadata'", 5: "truncated?"},
        )
        assert (
            "1 revised, 0 already revised, 0 failed, 3 rejected lines, 1 duplicate lines merged"
            in result.output
        )
        assert len(provider.requests()) == 2
        assert count(database_url, Revision) == 1

    def test_rate_runs_a_duplicate_line_once(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        provider.configure(outputs={RATING_TOOL_NAME: {"rationale": "ok", "score": 8}})
        lines = [
            json.dumps({"prompt": "q", "response": "a"}),
            json.dumps({"prompt": "q", "response": "a", "metadata": {"k": 1}}),
            json.dumps({"prompt": "q", "response": "a\ud800"}),
            json.dumps({"prompt": "q", "response": [{"role": "robot", "content": "a"}]}),
        ]
        path = tmp_path / "answers.jsonl"
        path.write_text("\n".join(lines) + "\n", errors="surrogatepass")
        result = run(database_url, "rate", str(path), "-j", JUDGE)
        assert result.exit_code == 1, result.output
        assert_one_reject_each(
            result.output, path, {3: "lone surrogate", 4: "field 'response[0].role'"}
        )
        assert "1 rated" in result.output
        assert "1 duplicate lines merged" in result.output
        assert len(provider.requests()) == 1
        assert count(database_url, Rating) == 1

    def test_feedback_import(self, tmp_path: Path, database_url: str) -> None:
        base = {"prompt": "q", "completion": "a", "label": "up"}
        lines = [
            json.dumps(base).encode(),
            json.dumps({**base, "metadata": ["ab"]}).encode(),
            b'{"prompt": "q", "completion": "a\xff", "label": "up"}',
            b'{"prompt": "q\\u0000", "completion": "a", "label": "up"}',
            b'{"prompt": "q", "completion": "a", "label": "up"',
            json.dumps({**base, "completion": "b"}).encode(),
        ]
        path = tmp_path / "thumbs.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        result = run(database_url, "feedback", "import", str(path))
        assert result.exit_code == 1, result.output
        assert_one_reject_each(
            result.output,
            path,
            {2: "field 'metadata'", 3: "not valid UTF-8", 4: "NUL character", 5: "truncated?"},
        )
        assert count(database_url, Feedback) == 2


class TestHttpBatches:
    def test_upload_with_bad_lines_is_accepted_minus_them(
        self, api: TestClient, database_url: str
    ) -> None:
        """POST /v1/batches: 202, each bad line listed once with its reason, the rest queued."""
        bad = [item for item in BAD_PAIR_LINES if b"\xff" not in item[0]]  # the body is UTF-8
        lines = [good(0)]
        expected: dict[int, str] = {}
        for raw, reason in bad:
            lines.append(raw)
            expected[len(lines)] = reason
        lines += [good(1), good(0), json.dumps(pair(response_a="z", response_b="z")).encode()]
        response = api.post(
            "/v1/batches",
            params={"judge": JUDGE},
            content=b"\n".join(lines),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert response.status_code == 202, response.text
        body = response.json()
        listed = {item["line"]: item["reason"] for item in body["rejected"]}
        assert len(body["rejected"]) == len(listed)
        assert sorted(listed) == sorted(expected)
        for line, reason in expected.items():
            assert reason in listed[line], (line, listed[line])
        assert (body["submitted"], body["merged"], body["ruled"]) == (3, 1, 1)
        assert count(database_url, Comparison) == 3

    def test_identical_pair_over_http_is_a_tie_without_a_call(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """POST /v1/comparisons: identical responses tie by rule; an empty response is a 422."""
        same = api.post(
            "/v1/comparisons", json={**pair(response_a="s", response_b="s"), "judge": JUDGE}
        )
        assert same.status_code in (200, 201), same.text
        body = same.json()
        assert body["verdict"]["winner"] == "tie"
        assert body["template_version"] == "rule:identical-responses"
        assert provider.requests() == []
        empty = api.post("/v1/comparisons", json={**pair(response_a=""), "judge": JUDGE})
        assert empty.status_code == 422, empty.text
        assert "response_a" in empty.text


class TestMessages:
    def test_an_all_tie_database_says_so_on_export(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """No filter given and every verdict a tie: the export names that, not the filters."""
        path = tmp_path / "ties.jsonl"
        path.write_text(
            "".join(
                json.dumps(pair(prompt=f"q{n}", response_a="s", response_b="s")) + "\n"
                for n in range(2)
            )
        )
        assert run(database_url, "label", str(path), "--judge", JUDGE).exit_code == 0
        result = run(database_url, "export", "dpo", "--out", str(tmp_path / "dpo.jsonl"))
        assert result.exit_code == 2
        assert "all 2 labeled comparisons are ties; ties are not exported as DPO pairs" in (
            result.output
        )
        assert "filters" not in result.output
        filtered = run(
            database_url,
            "export",
            "dpo",
            "--out",
            str(tmp_path / "d.jsonl"),
            "--min-confidence",
            "0.5",
        )
        assert "no rows match the export's filters" in filtered.output


class TestEmptyTextsBeforePaying:
    """Rate and revise refuse an empty text before any call, as label does; --empty judge sends."""

    @pytest.mark.parametrize("command", ["rate", "revise"])
    def test_empty_prompt_or_response_is_a_reject_without_a_call(
        self, tmp_path: Path, database_url: str, provider: FakeProvider, command: str
    ) -> None:
        provider.configure(
            outputs={
                RATING_TOOL_NAME: {"rationale": "ok", "score": 8},
                "record_critique": {"critique": "Fine.", "needs_revision": False},
            }
        )
        path = tmp_path / "items.jsonl"
        path.write_text(
            json.dumps({"prompt": "q", "response": " \n\t"})
            + "\n"
            + json.dumps({"prompt": "", "response": "an answer"})
            + "\n"
            + json.dumps({"prompt": "q", "response": [{"role": "assistant", "content": " "}]})
            + "\n"
        )
        extra = ["--constitution", "harmlessness"] if command == "revise" else []
        result = run(database_url, command, str(path), "-j", JUDGE, *extra)
        assert result.exit_code == 1, result.output
        assert_one_reject_each(
            result.output,
            path,
            {
                1: "field 'response': empty or whitespace",
                2: "field 'prompt': empty or whitespace",
                3: "field 'response': empty or whitespace",
            },
        )
        assert provider.requests() == []
        assert count(database_url, Rating) + count(database_url, Revision) == 0

        anyway = run(database_url, command, str(path), "-j", JUDGE, *extra, "--empty", "judge")
        assert anyway.exit_code == 0, anyway.output
        assert len(provider.requests()) == 3
        by_env = run(
            database_url, command, str(path), "-j", JUDGE, *extra, REFEREE_EMPTY_TEXTS="judge"
        )
        assert by_env.exit_code == 0, by_env.output
        assert len(provider.requests()) == 3  # stored already: nothing paid twice

        bad = run(database_url, command, str(path), "-j", JUDGE, *extra, "--empty", "maybe")
        assert bad.exit_code != 0
        assert "not one of reject, judge" in bad.output

    def test_empty_response_over_http_is_a_422_before_any_call(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        rated = api.post("/v1/ratings", json={"prompt": "q", "response": " ", "judge": JUDGE})
        assert rated.status_code == 422, rated.text
        assert "response" in rated.text
        assert "empty" in rated.text
        revised = api.post(
            "/v1/revisions",
            json={"prompt": " ", "response": "r", "judge": JUDGE, "constitution": "harmlessness"},
        )
        assert revised.status_code == 422, revised.text
        assert "prompt" in revised.text
        assert "empty" in revised.text
        assert provider.requests() == []


@pytest.mark.parametrize(
    "command",
    [
        ["label", "--judge", JUDGE],
        ["label", "--judge", JUDGE, "--dry-run"],
        ["gold", "import"],
        ["rate", "-j", JUDGE],
        ["inspect"],
    ],
)
def test_a_file_that_is_not_gzip_says_why(
    tmp_path: Path, database_url: str, provider: FakeProvider, command: list[str]
) -> None:
    """A .gz that is not gzip: one clean line naming the file and the reason, never 'None'."""
    path = tmp_path / "pairs.jsonl.gz"
    path.write_text(json.dumps(pair()) + "\n")
    words = (
        [*command[:2], str(path), *command[2:]]
        if command[0] == "gold"
        else [
            command[0],
            str(path),
            *command[1:],
        ]
    )
    result = run(database_url, *words)
    assert result.exit_code != 0, result.output
    assert f"cannot read {path}: Not a gzipped file" in result.output, result.output
    assert "None" not in result.output
    assert "Traceback" not in result.output


def test_a_truncated_string_says_where_it_starts() -> None:
    """json's "Unterminated string starting at" is completed with its column, not left hanging."""
    (error,) = read_pairs(io.StringIO('{"prompt": "q", "response_a": "x", "response_b": "y'), "f")
    assert isinstance(error, LineError)
    assert error.reason.endswith("(truncated?): Unterminated string starting at column 50")
