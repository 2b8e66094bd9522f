"""Lines of one pair: duplicates counted and merged with every id kept, disagreements settled.

The expectations were counted by hand from tests/data/maps/winner-012.jsonl
(nine lines, six pairs: lines 5, 7 and 8 repeat lines 2, 6 and 6; lines 6-8
say tie, tie, b) and arena-conversations.json (items 3 and 4: b, then a).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.labeling.field_maps import load_map
from app.labeling.gold import GoldConflict, GoldImportSummary, import_gold, resolve
from app.labeling.jsonl import open_input, read_pairs
from app.labeling.shapes import converter
from app.store.db import Database, sync_url
from app.store.models import Comparison, GoldLabel
from tests.fake_provider import FakeProvider

MAPS = Path(__file__).parent / "data" / "maps"
WINNER = MAPS / "winner-012.jsonl"
WINNER_MAP = "prompt=question,response_a=answer_0,response_b=answer_1,label=winner:0=a,1=b,2=tie"
ARENA = MAPS / "arena-conversations.json"
ARENA_MAP = str(MAPS / "arena-map.yaml")


class TestResolve:
    @pytest.mark.parametrize(
        ("labels", "newest", "majority", "reject"),
        [
            (["a"], "a", "a", "a"),
            (["b", "b"], "b", "b", "b"),
            (["tie", "tie", "b"], "b", "tie", None),
            (["b", "a"], "a", None, None),
            (["a", "a", "b", "b", "tie"], "tie", None, None),
            (["a", "b", "a", "tie"], "tie", "a", None),
            (["tie", "a", "b"], "b", None, None),
        ],
    )
    def test_each_policy(
        self, labels: list[str], newest: str | None, majority: str | None, reject: str | None
    ) -> None:
        """newest: the last line; majority: the most common, none on a tie for the top;
        reject: none on any disagreement. Lines that agree win under every policy."""
        assert resolve(labels, "newest") == newest
        assert resolve(labels, "majority") == majority
        assert resolve(labels, "reject") == reject


def stored_gold(database_url: str) -> list[GoldLabel]:
    engine = create_engine(sync_url(database_url))
    with Session(engine) as session:
        rows = list(session.scalars(select(GoldLabel).order_by(GoldLabel.id)))
    engine.dispose()
    return rows


def import_file(
    database_url: str, path: Path, spec: str, policy: GoldConflict
) -> GoldImportSummary:
    async def run() -> GoldImportSummary:
        database = Database(database_url)
        try:
            with open_input(str(path)) as stream:
                records = read_pairs(stream, path.name, converter(mapping=load_map(spec)))
                return await import_gold(database, records, str(path), policy)
        finally:
            await database.dispose()

    return asyncio.run(run())


class TestGoldImport:
    @pytest.mark.parametrize(
        ("policy", "winners", "without_gold", "tomato"),
        [
            ("newest", {"a": 3, "b": 2, "tie": 1}, 0, "b"),
            ("majority", {"a": 3, "b": 1, "tie": 2}, 0, "tie"),
            ("reject", {"a": 3, "b": 1, "tie": 1}, 1, None),
        ],
    )
    def test_policies_on_the_0_1_2_file(
        self,
        database_url: str,
        policy: GoldConflict,
        winners: dict[str, int],
        without_gold: int,
        tomato: str | None,
    ) -> None:
        """Nine lines, six pairs, three duplicates, one conflict: settled as the policy says."""
        summary = import_file(database_url, WINNER, WINNER_MAP, policy)
        assert (summary.records, summary.ledger.duplicates) == (9, 3)
        assert [(m.line, m.external_id, m.into_line) for m in summary.ledger.merges] == [
            (5, "w105", 2),
            (7, "w107", 6),
            (8, "w108", 6),
        ]
        assert len(summary.ledger.conflicts) == 1
        conflict = summary.ledger.conflicts[0]
        assert (conflict.lines, conflict.labels, conflict.winner) == (
            (6, 7, 8),
            ("tie", "tie", "b"),
            tomato,
        )
        assert summary.ledger.conflicts_without_gold == without_gold
        rows = stored_gold(database_url)
        assert Counter(row.winner for row in rows) == Counter(winners)
        assert summary.new == summary.labeled == len(rows) == sum(winners.values())
        by_first_id = {(row.external_ids or [row.external_id])[0]: row for row in rows}
        assert by_first_id["w102"].external_ids == ["w102", "w105"]
        assert by_first_id["w102"].votes is None  # the lines agree: nothing to tell apart
        assert by_first_id["w101"].external_ids is None  # a pair on one line
        if tomato is not None:
            merged = by_first_id["w106"]
            assert (merged.winner, merged.votes) == (tomato, ["tie", "tie", "b"])
            assert merged.external_ids == ["w106", "w107", "w108"]
            assert merged.external_id == {"tie": "w106", "b": "w108"}[tomato]
        else:
            assert "w106" not in by_first_id

    def test_importing_again_adds_nothing_and_a_new_policy_adds_its_decision(
        self, database_url: str
    ) -> None:
        """Same file, same policy: 0 new. Then majority: only the settled pair changes."""
        import_file(database_url, WINNER, WINNER_MAP, "newest")
        assert import_file(database_url, WINNER, WINNER_MAP, "newest").new == 0
        again = import_file(database_url, WINNER, WINNER_MAP, "majority")
        assert again.new == 1
        assert stored_gold(database_url)[-1].winner == "tie"

    def test_a_majority_tie_leaves_the_arena_pair_without_gold(self, database_url: str) -> None:
        """Items 3 and 4 (b, then a): no majority, no gold for that pair, counted."""
        summary = import_file(database_url, ARENA, ARENA_MAP, "majority")
        assert summary.ledger.duplicates == 1
        assert [(c.lines, c.labels, c.winner) for c in summary.ledger.conflicts] == [
            ((3, 4), ("b", "a"), None)
        ]
        assert Counter(row.winner for row in stored_gold(database_url)) == {"a": 1, "tie": 2}


def invoke(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env={"REFEREE_DATABASE_URL": database_url})


class TestCommands:
    def test_gold_import_says_what_was_merged_and_settled(self, database_url: str) -> None:
        """The summary counts duplicates and conflicts and lists them with ids and lines."""
        result = invoke(
            database_url,
            "gold", "import", str(WINNER), "--map", WINNER_MAP, "--gold-conflict", "majority",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert (
            "9 lines read: 6 gold labels (a 3, b 1, tie 2), 6 new; 3 duplicate lines merged, "
            "0 lines without a label, 0 rejected lines"
        ) in lines
        assert (
            "merged: line 5 (id w105) into line 2, line 7 (id w107) into line 6, "
            "line 8 (id w108) into line 6"
        ) in lines
        assert (
            "1 pair with conflicting gold labels, settled by --gold-conflict majority; "
            "0 left without gold"
        ) in lines
        assert "  lines 6, 7, 8: tie, tie, b -> tie" in lines

    def test_an_unknown_policy_is_refused(self, database_url: str) -> None:
        """Only newest, majority and reject."""
        result = invoke(database_url, "gold", "import", str(WINNER), "--gold-conflict", "oldest")
        assert result.exit_code == 2
        assert "newest" in result.output

    def test_label_counts_duplicates_and_conflicts_and_stores_one_gold_per_pair(
        self, database_url: str, provider: FakeProvider
    ) -> None:
        """referee label: six comparisons for nine lines, gold by --gold-conflict reject."""
        result = invoke(
            database_url,
            "label", str(WINNER), "--map", WINNER_MAP, "--gold-conflict", "reject",
            "--judge", "anthropic:claude-sonnet-4-6", "--rejects", "/dev/null",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert (
            "merged: line 5 (id w105) into line 2, line 7 (id w107) into line 6, "
            "line 8 (id w108) into line 6"
        ) in result.output
        assert (
            "1 pair with conflicting gold labels, settled by --gold-conflict reject; "
            "1 left without gold"
        ) in result.output
        assert "  lines 6, 7, 8: tie, tie, b -> no gold label" in result.output
        engine = create_engine(sync_url(database_url))
        with engine.connect() as connection:
            comparisons = connection.execute(select(Comparison.external_id)).scalars().all()
        engine.dispose()
        assert sorted(map(str, comparisons)) == ["w101", "w102", "w103", "w104", "w106", "w109"]
        rows = stored_gold(database_url)
        assert Counter(row.winner for row in rows) == {"a": 3, "b": 1, "tie": 1}
        merged = [row.external_ids for row in rows if row.external_ids]
        assert merged == [["w102", "w105"]]
