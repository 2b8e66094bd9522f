"""Jury member votes: written with their jury's run, read back with its verdict.

Functions take a session inside a transaction someone else owns; none of
them commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.models import Base, Comparison, JuryVote

_VOTES = Base.metadata.tables["jury_votes"]


@dataclass(slots=True)
class VoteRows:
    """One member's vote, ready to store: its ``jury_votes`` values and its calls."""

    values: dict[str, Any]
    calls: list[dict[str, Any]]


async def write_votes(
    session: AsyncSession,
    runs: Sequence[tuple[uuid.UUID, Sequence[VoteRows]]],
    verdict_ids: dict[uuid.UUID, int],
    now: datetime,
) -> list[dict[str, Any]]:
    """Insert the votes of jury runs (comparison id, votes); return their calls, linked.

    A vote points at its run's verdict (None when the run missed its
    quorum); each call at the verdict and its vote. One statement for all
    votes, whatever the number of runs.
    """
    rows: list[dict[str, Any]] = []
    owners: list[tuple[int | None, VoteRows]] = []
    for comparison_id, votes in runs:
        verdict_id = verdict_ids.get(comparison_id)
        for vote in votes:
            rows.append(
                {
                    **vote.values,
                    "comparison_id": comparison_id,
                    "verdict_id": verdict_id,
                    "created_at": now,
                }
            )
            owners.append((verdict_id, vote))
    if not rows:
        return []
    result = await session.execute(
        insert(_VOTES).returning(_VOTES.c.id, sort_by_parameter_order=True), rows
    )
    vote_ids = list(result.scalars())
    return [
        {**call, "verdict_id": verdict_id, "jury_vote_id": vote_id, "created_at": now}
        for vote_id, (verdict_id, vote) in zip(vote_ids, owners, strict=True)
        for call in vote.calls
    ]


def votes_of(comparison: Comparison, verdict_id: int) -> list[JuryVote]:
    """The votes cast in the jury run that gave this verdict."""
    return [vote for vote in comparison.jury_votes if vote.verdict_id == verdict_id]
