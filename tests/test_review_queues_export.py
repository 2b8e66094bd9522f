"""Human preferences out: referee export dpo --source human, reviewer count per row."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.store.models import GoldLabel
from tests.review_seed import Env, PairSpec, force_order


@pytest.fixture
def env(database_url: str) -> Iterator[Env]:
    environment = Env(database_url)
    yield environment
    environment.close()


def _answer(env: Env, queue_id: uuid.UUID, plan: list[tuple[str, str]]) -> None:
    from app.labeling.review import queues

    for reviewer, press in plan:
        served = env.next(queue_id, reviewer)
        assert served is not None
        force_order(env, served.assignment_id, "ab")
        env.tx(lambda s, a=served.assignment_id, r=reviewer, p=press: queues.answer(s, a, r, p))


def _import(env: Env, pair_key: str, winner: str, votes: list[str] | None) -> None:
    async def go(session: Any) -> None:
        session.add(
            GoldLabel(
                pair_key=pair_key,
                dedupe_key=uuid.uuid4().hex,
                winner=winner,
                source="import",
                origin="file.jsonl",
                votes=votes,
            )
        )

    env.tx(go)


def test_export_dpo_source_human(env: Env, database_url: str, tmp_path: Path) -> None:
    """Queue majorities, imports and ties: one row per decided pair, reviewers counted."""
    seeded = env.seed(
        [
            PairSpec("majority", disagreement=0.5),
            PairSpec("split", disagreement=0.5),
            PairSpec("imported", winner="a"),
            PairSpec("imported-2", judge="judge-2", winner="b", same_pair_as="imported"),
            PairSpec("tie", winner="a"),
        ]
    )
    queue_id = env.queue(kind="disagreement", overlap=3)
    # majority: left, right, right under "ab" -> b wins 2 of 3; split: a, b, tie -> no gold
    _answer(env, queue_id, [("ann", "left"), ("bob", "right"), ("cy", "right")])
    _answer(env, queue_id, [("ann", "left"), ("bob", "right"), ("cy", "tie")])
    _import(env, seeded["imported"].pair_key, "a", ["a", "a", "b", "a"])
    _import(env, seeded["tie"].pair_key, "tie", None)
    out = tmp_path / "human.jsonl"
    result = CliRunner().invoke(
        cli,
        ["export", "dpo", "--source", "human", "--provenance", "--out", str(out)],
        env={"REFEREE_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    rows = {
        row["chosen"][0]["content"]: row for row in map(json.loads, out.read_text().splitlines())
    }
    assert set(rows) == {"answer B of majority", "answer A of imported"}
    majority = rows["answer B of majority"]
    assert majority["rejected"][0]["content"] == "answer A of majority"
    assert (majority["source"], majority["reviewers"], majority["judge"]) == (
        "human",
        3,
        "ann, bob, cy",
    )
    assert majority["confidence"] == pytest.approx(2 / 3)
    imported = rows["answer A of imported"]
    assert (imported["reviewers"], imported["confidence"]) == (4, 0.75)
    parquet = tmp_path / "human.parquet"
    result = CliRunner().invoke(
        cli,
        ["export", "dpo", "--source", "human", "--provenance", "--out", str(parquet)],
        env={"REFEREE_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert sorted(table.column("reviewers").to_pylist()) == [3, 4]


def test_source_human_is_dpo_alone(database_url: str, tmp_path: Path) -> None:
    """--source human with KTO, another source or a verdict filter: a clear error."""
    runner = CliRunner()
    environ = {"REFEREE_DATABASE_URL": database_url}
    for args in (
        ["kto", "--source", "human"],
        ["dpo", "--source", "human", "--source", "verdicts"],
        ["dpo", "--source", "human", "--consistent-only"],
    ):
        result = runner.invoke(
            cli, ["export", *args, "--out", str(tmp_path / "x.jsonl")], env=environ
        )
        assert result.exit_code != 0
        assert "human" in result.output
