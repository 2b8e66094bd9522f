"""Queries for rounds, their lineage and their head-to-head matchups.

Functions take a session inside a transaction someone else owns; none of
them commits. :func:`lineage_rows` reads on a synchronous connection, for
the export's dataset card.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.store.comparisons import is_current_verdict
from app.store.db import insert_for
from app.store.models import Comparison, Verdict, utcnow
from app.store.models_generation import GenerationCandidate, GenerationPrompt, GenerationSample
from app.store.models_rounds import Round, RoundMatchup
from app.store.models_selection import Selection

# A parent chain longer than this is cut (a chain is acyclic by construction:
# a round names its parent when it is created, and a name is never reused).
MAX_LINEAGE = 1000


async def get_by_name(session: AsyncSession, name: str) -> Round | None:
    found: Round | None = await session.scalar(select(Round).where(Round.name == name))
    return found


async def get(session: AsyncSession, round_id: uuid.UUID) -> Round | None:
    return await session.get(Round, round_id)


async def create_if_absent(session: AsyncSession, values: dict[str, Any]) -> Round:
    """Insert a round unless its name exists; return the stored round either way."""
    row = {"id": uuid.uuid4(), "created_at": utcnow(), "updated_at": utcnow(), **values}
    statement = insert_for(session)(Round).values(**row)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["name"]))
    found = await get_by_name(session, values["name"])
    assert found is not None  # inserted just now or already there
    return found


async def update_round(session: AsyncSession, round_id: uuid.UUID, **values: Any) -> None:
    """Set a round's stage, generation or head-to-head batch."""
    await session.execute(
        update(Round)
        .where(Round.id == round_id)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )


async def list_rounds(session: AsyncSession, limit: int = 100) -> list[Round]:
    """Rounds, oldest first."""
    result = await session.scalars(select(Round).order_by(Round.created_at, Round.id).limit(limit))
    return list(result)


async def lineage(session: AsyncSession, found: Round) -> list[Round]:
    """The round, then its parent, its parent's parent, …"""
    chain = [found]
    while chain[-1].parent_id is not None and len(chain) < MAX_LINEAGE:
        parent = await session.get(Round, chain[-1].parent_id)
        if parent is None:
            break
        chain.append(parent)
    return chain


@dataclass(frozen=True, slots=True)
class PromptAnswer:
    """A prompt of a generation with the answer that stands for the policy on it."""

    prompt_key: str
    prompt: Any
    candidate_id: uuid.UUID
    text: str


async def representative_answers(
    session: AsyncSession, generation_id: uuid.UUID
) -> dict[str, PromptAnswer]:
    """Per prompt key, the candidate of the lowest sample index that succeeded.

    The first successful sample is a plain draw from the policy at its
    sampling settings, the same rule for every round, so a round and its
    parent are compared like for like.
    """
    first = (
        select(
            GenerationSample.prompt_id.label("prompt_id"),
            func.min(GenerationSample.sample_index).label("sample_index"),
        )
        .where(
            GenerationSample.generation_id == generation_id,
            GenerationSample.status == "done",
            GenerationSample.candidate_id.is_not(None),
        )
        .group_by(GenerationSample.prompt_id)
        .subquery()
    )
    sample = aliased(GenerationSample)
    statement = (
        select(
            GenerationPrompt.prompt_key,
            GenerationPrompt.prompt,
            GenerationCandidate.id,
            GenerationCandidate.text,
        )
        .join(first, first.c.prompt_id == GenerationPrompt.id)
        .join(
            sample,
            and_(
                sample.prompt_id == first.c.prompt_id, sample.sample_index == first.c.sample_index
            ),
        )
        .join(GenerationCandidate, GenerationCandidate.id == sample.candidate_id)
        # Implied by the join, but said: the prompts are then read by the generation's index,
        # not hashed from the whole table (tests/test_query_plans.py).
        .where(GenerationPrompt.generation_id == generation_id)
    )
    rows = (await session.execute(statement)).all()
    return {row[0]: PromptAnswer(row[0], row[1], row[2], row[3]) for row in rows}


async def add_matchups(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Store matchups; a (round, prompt) stored already is left as it is."""
    if not rows:
        return
    now = utcnow()
    statement = insert_for(session)(RoundMatchup).on_conflict_do_nothing(
        index_elements=["round_id", "prompt_key"]
    )
    await session.execute(statement, [{"created_at": now, **row} for row in rows])


async def comparison_ids(session: AsyncSession, label_keys: Sequence[str]) -> dict[str, uuid.UUID]:
    """Label key -> comparison id, for the keys stored."""
    found: dict[str, uuid.UUID] = {}
    for start in range(0, len(label_keys), 500):
        chunk = label_keys[start : start + 500]
        result = await session.execute(
            select(Comparison.label_key, Comparison.id).where(Comparison.label_key.in_(chunk))
        )
        found.update({key: row_id for key, row_id in result.all()})
    return found


async def matchup_keys(session: AsyncSession, round_id: uuid.UUID) -> set[str]:
    result = await session.scalars(
        select(RoundMatchup.prompt_key).where(RoundMatchup.round_id == round_id)
    )
    return set(result)


@dataclass(frozen=True, slots=True)
class MatchupOutcome:
    """A matchup's comparison as the report reads it: ``a`` is the round, ``b`` its parent."""

    prompt_key: str
    status: str
    """pending, labeled or failed: the comparison's status."""
    winner: str | None
    """a, b or tie from the current verdict; None when there is none (pending, failed)."""
    position_consistent: bool | None
    length_a: int | None
    length_b: int | None


async def matchup_outcomes(session: AsyncSession, round_id: uuid.UUID) -> list[MatchupOutcome]:
    """Every matchup of a round with its comparison's status and current verdict."""
    statement = (
        select(
            RoundMatchup.prompt_key,
            Comparison.status,
            Verdict.winner,
            Verdict.position_consistent,
            Verdict.length_a,
            Verdict.length_b,
        )
        .join(Comparison, Comparison.id == RoundMatchup.comparison_id)
        .outerjoin(Verdict, and_(Verdict.comparison_id == Comparison.id, is_current_verdict()))
        .where(RoundMatchup.round_id == round_id)
        .order_by(RoundMatchup.id)
    )
    return [MatchupOutcome(*row) for row in (await session.execute(statement)).all()]


def lineage_rows(connection: Connection, name: str) -> list[dict[str, Any]]:
    """A round and its parent chain as plain dicts (name, policy, checkpoint, strategy, judge…).

    Empty when no round has that name.
    """
    columns = (
        Round.id,
        Round.name,
        Round.parent_id,
        Round.policy,
        Round.checkpoint,
        Round.strategy,
        Round.judge,
        Round.prompts_source,
        Round.prompt_count,
        Round.prompt_set_key,
        Round.stage,
        Round.selection_run_id,
    )
    chain: list[dict[str, Any]] = []
    condition = Round.name == name
    while len(chain) < MAX_LINEAGE:
        row = connection.execute(select(*columns).where(condition)).mappings().first()
        if row is None:
            break
        chain.append(dict(row))
        if row["parent_id"] is None:
            break
        condition = Round.id == row["parent_id"]
    return chain


def selected_pairs(
    connection: Connection, selection_run_id: uuid.UUID, chunk_rows: int
) -> Iterator[Row[Any]]:
    """A selection run's chosen/rejected pairs, in decision order: rows of ``id``,
    ``external_id``, ``prompt``, ``chosen`` and ``rejected`` (texts). Skipped prompts have none."""
    chosen = aliased(GenerationCandidate)
    rejected = aliased(GenerationCandidate)
    statement = (
        select(
            Selection.id,
            GenerationPrompt.external_id,
            GenerationPrompt.prompt,
            chosen.text.label("chosen"),
            rejected.text.label("rejected"),
        )
        .join(GenerationPrompt, GenerationPrompt.id == Selection.prompt_id)
        .join(chosen, chosen.id == Selection.chosen_id)
        .join(rejected, rejected.id == Selection.rejected_id)
        .where(Selection.run_id == selection_run_id, Selection.status == "selected")
        .order_by(Selection.id)
    )
    yield from connection.execute(statement.execution_options(yield_per=chunk_rows))
