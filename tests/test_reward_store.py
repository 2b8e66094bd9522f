"""The reward service's writes: every id returned is the one stored, in every case.

``store_ratings`` (the group commit of judged ratings) and ``record_items``
(a request's reward rows) skip reading ids back when the driver counts all
rows inserted; these cases mix new rows, repeats within one write, and rows
stored before (scored or not), on both databases, and check the ids against
the table, the statements read, and the calls stored.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, func, select

from app.labeling.calls import call_row
from app.labeling.inputs import to_text
from app.labeling.rate import ResponseItemIn, outcome_values, rating_key, rating_values
from app.store import rewards
from app.store.db import Database
from app.store.models import JudgeCall, Rating
from app.store.models_rewards import RewardItem
from judges import JudgeRegistry, rate_response
from judges.errors import RefusedError
from judges.rubrics import get_rubric
from judges.testing import Script

RUBRIC = get_rubric(None)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


class Statements:
    """The SQL statements a database runs, as their first words and table."""

    def __init__(self, db: Database) -> None:
        self.seen: list[str] = []
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(" ".join(statement.split()[:4]).upper())

    def reads(self, table: str) -> int:
        return sum(s.startswith("SELECT") and table.upper() in s for s in self.seen)


async def rating_run(
    registry: JudgeRegistry, script: Script, text: str, *, fail: bool = False
) -> rewards.RatingRun:
    config = registry.resolve("scripted:rater")
    item = ResponseItemIn(prompt="Say something.", response=text)
    if fail:
        script.failures.append(RefusedError("no"))
    outcome = await rate_response(
        registry.judge(config), to_text(item.prompt), to_text(item.response), RUBRIC
    )
    key = rating_key(item.stored(), config, RUBRIC)
    values = rating_values(item, config, RUBRIC, key)
    return rewards.RatingRun(
        values, outcome_values(outcome), [call_row(config, c) for c in outcome.calls]
    )


async def store(db: Database, runs: list[rewards.RatingRun]) -> list[tuple[uuid.UUID, bool]]:
    async with db.transaction() as session:
        return await rewards.store_ratings(session, runs)


async def stored_ratings(db: Database) -> dict[str, tuple[uuid.UUID, str, int]]:
    """label key -> (id, status, calls stored)."""
    async with db.transaction() as session:
        calls = dict(
            (
                await session.execute(
                    select(JudgeCall.rating_id, func.count()).group_by(JudgeCall.rating_id)
                )
            ).all()
        )
        rows = (await session.execute(select(Rating.label_key, Rating.id, Rating.status))).all()
    return {key: (row_id, status, calls.get(row_id, 0)) for key, row_id, status in rows}


@pytest.mark.parametrize(
    ("case", "before", "group", "taken", "reads_back"),
    [
        # texts stored before (a trailing "!" marks a failed rating), the group, expected
        # "taken" per entry, and whether the ids must be read back.
        ("all new", [], ["a", "b", "c"], [False, False, False], False),
        ("one new", [], ["a"], [False], False),
        ("a repeat within the group", [], ["a", "b", "a"], [False, False, True], True),
        ("rated before", ["a"], ["a", "b"], [True, False], True),
        ("failed before, rated now", ["a!"], ["a", "b"], [False, False], True),
        ("failed before and again", ["a!"], ["a!"], [False], True),
    ],
)
async def test_store_ratings_returns_the_stored_ids(
    case: str,
    before: list[str],
    group: list[str],
    taken: list[bool],
    reads_back: bool,
    db: Database,
    registry: JudgeRegistry,
    script: Script,
) -> None:
    earlier = [
        await rating_run(registry, script, t.rstrip("!"), fail=t.endswith("!")) for t in before
    ]
    if earlier:
        await store(db, earlier)
    runs = [await rating_run(registry, script, t.rstrip("!"), fail=t.endswith("!")) for t in group]
    statements = Statements(db)
    results = await store(db, runs)
    reads = statements.reads("ratings")
    table = await stored_ratings(db)
    assert [was_taken for _, was_taken in results] == taken
    for run, (rating_id, _) in zip(runs, results, strict=True):
        assert table[run.values["label_key"]][0] == rating_id
    assert reads == (1 if reads_back else 0), statements.seen
    # Every call made is stored, taken or not: before and now.
    assert sum(calls for _, _, calls in table.values()) == len(before) + len(group)
    # A rating is rated if any run of its text was (a failure never replaces a score).
    for run in runs:
        text = run.values["response"]
        runs_of_text = [t for t in [*before, *group] if t.rstrip("!") == text]
        rated = any(not t.endswith("!") for t in runs_of_text)
        assert table[run.values["label_key"]][1] == ("rated" if rated else "failed")


def reward_row(key: str, status: str = "scored") -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "item_key": key,
        "score_key": f"score {key}",
        "run": "r",
        "step": 1,
        "idempotency_key": None,
        "scorer": "rubric",
        "judge": "scripted:rater",
        "prompt": "Say something.",
        "completion": key,
        "reference": None,
        "metadata": None,
        "api_key_id": None,
        "status": status,
        "reason": None if status == "scored" else "deadline",
        "score": 0.5 if status == "scored" else None,
        "raw_score": 5.0 if status == "scored" else None,
        "passed": True if status == "scored" else None,
        "rating_id": None,
        "comparison_id": None,
    }


@pytest.mark.parametrize(
    ("case", "before", "rows", "reads_back"),
    [
        ("all new", [], ["a", "b"], False),
        ("the same request again", ["a:scored", "b:scored"], ["a", "b"], True),
        ("unscored before, scored now", ["a:deadline"], ["a", "b"], True),
    ],
)
async def test_record_items_returns_the_stored_ids(
    case: str, before: list[str], rows: list[str], reads_back: bool, db: Database
) -> None:
    first = [reward_row(*entry.split(":")) for entry in before]
    earlier: dict[str, uuid.UUID] = {}
    if first:
        async with db.transaction() as session:
            earlier = await rewards.record_items(session, first)
    now = [reward_row(key) for key in rows]
    statements = Statements(db)
    async with db.transaction() as session:
        found = await rewards.record_items(session, now)
    reads = statements.reads("reward_items")
    async with db.transaction() as session:
        table = {
            key: (row_id, status)
            for key, row_id, status in await session.execute(
                select(RewardItem.item_key, RewardItem.id, RewardItem.status)
            )
        }
    assert reads == (1 if reads_back else 0), statements.seen
    for row in now:
        key = row["item_key"]
        assert found[key] == table[key][0] == earlier.get(key, row["id"])
        assert table[key][1] == "scored"  # an unscored row takes the new outcome
