"""KTO exports resolve a (prompt, completion) labeled both ways by a stated rule, and count it.

The data below is scripted so that every count is known by hand:

| prompt | completion | votes                          | contradiction?              |
|--------|------------|--------------------------------|-----------------------------|
| q1     | A          | up, down (feedback)            | yes, even                   |
| q2     | B          | up, up, down (feedback)        | yes, majority up            |
| q3     | C          | down                           | no                          |
| q4     | D          | up                             | no                          |
| q5     | E          | up (as messages), down (text)  | yes, even: one prompt       |
| q6/q6b | F          | up on q6, down on q6b          | no: different prompts       |
| q7     | LONG       | wins over SHORT (verdict)      | no                          |
| q7     | SHORT      | loses to LONG, beats "x"       | yes, even (two verdicts)    |
| q7     | x          | loses to SHORT                 | no                          |

15 candidate rows; 4 contradicting pairs holding 9 of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.export.build import Candidate, Stats
from app.export.contradictions import resolve_contradictions
from app.export.options import ContradictionRule, Shape, Source
from app.export.rows import kto_row

LONG = "Paris is the capital of France."
SHORT = "Lyon."


def feedback(prompt: Any, completion: str, up: bool, n: int) -> dict[str, Any]:
    return {"prompt": prompt, "completion": completion, "label": up, "user_id": f"u{n}"}


@pytest.fixture
def scripted(api: TestClient) -> TestClient:
    records = [
        feedback("q1", "A", True, 1),
        feedback("q1", "A", False, 2),
        feedback("q2", "B", True, 3),
        feedback("q2", "B", True, 4),
        feedback("q2", "B", False, 5),
        feedback("q3", "C", False, 6),
        feedback("q4", "D", True, 7),
        feedback([{"role": "user", "content": "q5"}], "E", True, 8),
        feedback("q5", "E", False, 9),
        feedback("q6", "F", True, 10),
        feedback("q6b", "F", False, 11),
    ]
    assert api.post("/v1/feedback", json=records).json()["accepted"] == 11
    for a, b in ((LONG, SHORT), (SHORT, "x")):
        body = {"prompt": "q7", "response_a": a, "response_b": b, "judge": "scripted:x"}
        assert api.post("/v1/comparisons", json=body).status_code in (200, 201)
    return api


def export(database_url: str, out: Path, *args: str) -> tuple[list[tuple[str, str, bool]], str]:
    result = CliRunner().invoke(
        cli,
        ["export", "kto", "--out", str(out), *args],
        env={"REFEREE_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, (result.output, result.exception)
    files = [out / "train.jsonl"] if out.is_dir() else [out]
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    labels = sorted(
        (row["prompt"][0]["content"], row["completion"][0]["content"], row["label"]) for row in rows
    )
    return labels, result.stdout


UNCONTESTED = [
    ("q3", "C", False),
    ("q4", "D", True),
    ("q6", "F", True),
    ("q6b", "F", False),
    ("q7", LONG, True),
    ("q7", "x", False),
]


class TestRules:
    def test_drop_is_the_default_and_leaves_out_every_contradicting_row(
        self, scripted: TestClient, database_url: str, tmp_path: Path
    ) -> None:
        """By default the 9 rows of the 4 contradicting pairs are left out, as the summary says."""
        labels, stdout = export(database_url, tmp_path / "kto.jsonl")
        assert labels == sorted(UNCONTESTED)
        assert (
            "contradictions: 4 (prompt, completion) pairs labeled both desirable and "
            "undesirable; rule drop (every row of such a pair left out): 9 rows left out"
        ) in stdout
        assert "desirable 3, undesirable 3" in stdout

    def test_majority_keeps_the_larger_side_and_drops_even_splits(
        self, scripted: TestClient, database_url: str, tmp_path: Path
    ) -> None:
        """q2/B is up two to one: its up row stays (once, de-duplicated); the even splits go."""
        labels, stdout = export(
            database_url, tmp_path / "kto.jsonl", "--kto-contradictions", "majority"
        )
        assert labels == sorted([*UNCONTESTED, ("q2", "B", True)])
        assert "rule majority" in stdout
        assert ": 7 rows left out" in stdout
        assert "1 duplicates dropped" in stdout

    def test_keep_writes_both_labels_but_still_counts(
        self, scripted: TestClient, database_url: str, tmp_path: Path
    ) -> None:
        """keep is the old behaviour: both labels of each pair go out, and are counted."""
        labels, stdout = export(
            database_url, tmp_path / "kto.jsonl", "--kto-contradictions", "keep"
        )
        contested = [
            ("q1", "A", False),
            ("q1", "A", True),
            ("q2", "B", False),
            ("q2", "B", True),
            ("q5", "E", False),
            ("q5", "E", True),
            ("q7", SHORT, False),
            ("q7", SHORT, True),
        ]
        assert labels == sorted(UNCONTESTED + contested)
        assert "contradictions: 4 (prompt, completion) pairs" in stdout
        assert ": 0 rows left out" in stdout

    def test_the_card_states_the_rule_and_the_counts(
        self, scripted: TestClient, database_url: str, tmp_path: Path
    ) -> None:
        """The dataset card names the rule among the settings and gives both counts."""
        export(database_url, tmp_path / "dataset")
        card = (tmp_path / "dataset" / "README.md").read_text(encoding="utf-8")
        assert (
            "- Contradictions: 4 (prompt, completion) pairs labeled both desirable and "
            "undesirable; rule drop (every row of such a pair left out): 9 rows left out"
        ) in card
        assert "- kto_contradictions: drop" in card

    def test_an_unknown_rule_is_refused(self, database_url: str, tmp_path: Path) -> None:
        """A rule that does not exist is one clean error listing the accepted ones."""
        result = CliRunner().invoke(
            cli,
            ["export", "kto", "--out", str(tmp_path / "k.jsonl"), "--kto-contradictions", "vote"],
            env={"REFEREE_DATABASE_URL": database_url},
        )
        assert result.exit_code == 2
        assert "use one of: drop, majority, keep" in result.stderr


def candidate(prompt: str, completion: str, label: bool, n: int) -> Candidate:
    row = kto_row(prompt, completion, label, Shape.CONVERSATIONAL)
    return Candidate(row, str(n), prompt, Source.FEEDBACK, f"k{n}", None, 0.5, disagreement=0.25)


class TestResolve:
    def test_rows_come_back_whole_and_in_order(self) -> None:
        """Spooled candidates replay unchanged, in the order they came, less the dropped ones."""
        found = [
            candidate("p", "a", True, 1),
            candidate("p", "b", False, 2),
            candidate("p", "a", False, 3),
            candidate("p", "c", True, 4),
        ]
        stats = Stats()
        kept = list(resolve_contradictions(iter(found), ContradictionRule.DROP, stats))
        assert kept == [found[1], found[3]]
        assert (stats.contradictions, stats.contradiction_rows_dropped) == (1, 2)

    def test_texts_with_line_breaks_survive_the_spool(self) -> None:
        """Newlines, CR and Unicode line separators in a row do not split its spooled line."""
        texts = ["a\nb", "c\r\nd", "e\u2028f", "g\x85h", "\n"]
        found = [candidate(t, t, n % 2 == 0, n) for n, t in enumerate(texts)]
        stats = Stats()
        assert list(resolve_contradictions(iter(found), ContradictionRule.DROP, stats)) == found
        assert stats.contradictions == 0

    @pytest.mark.parametrize(
        ("votes", "rule", "kept"),
        [
            ([True, False], ContradictionRule.MAJORITY, []),
            ([True, True, False], ContradictionRule.MAJORITY, [0, 1]),
            ([False, True, False], ContradictionRule.MAJORITY, [0, 2]),
            ([True, True, False], ContradictionRule.DROP, []),
            ([True, True, False], ContradictionRule.KEEP, [0, 1, 2]),
            ([True, True], ContradictionRule.DROP, [0, 1]),
        ],
    )
    def test_rule_table(self, votes: list[bool], rule: ContradictionRule, kept: list[int]) -> None:
        """Each rule on one (prompt, completion) with the given votes keeps these rows."""
        found = [candidate("p", "a", vote, n) for n, vote in enumerate(votes)]
        result = list(resolve_contradictions(iter(found), rule, Stats()))
        assert result == [found[i] for i in kept]
