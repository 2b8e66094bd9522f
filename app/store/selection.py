"""Selection runs and their per-prompt decisions. None of these functions commits.

Reading (what exports and round reports use):

- :func:`get_run` / :func:`runs_for_generation` — a run by id, or every run
  over a generation, newest first.
- :func:`preferences` — per prompt of a run, in the generation's prompt
  order, a :class:`PromptSelection`: the prompt (as given), the chosen and
  rejected candidates (:class:`CandidateRef`: id, text, count, score), the
  margin, the strategy and judge, the decision's reason and details, or the
  skip reason. ``selected_only=True`` keeps the prompts with a preference,
  which is what a DPO export wants.
- :func:`counts` — decisions by status and skip reason.

Writing (:mod:`app.labeling.rounds.select`): :func:`get_or_create_run`,
:func:`decided`, :func:`write_decision`, :func:`set_run_status`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.store.db import insert_for
from app.store.models import utcnow
from app.store.models_generation import GenerationCandidate, GenerationPrompt
from app.store.models_selection import Selection, SelectionRun

__all__ = [
    "CandidateRef",
    "PromptSelection",
    "counts",
    "decided",
    "get_or_create_run",
    "get_run",
    "preferences",
    "runs_for_generation",
    "set_run_status",
    "write_decision",
]

RETRIED_SKIP = "judge_failed"
"""The one skip a re-run decides again: a judge failure is not a judgement on the prompt."""


@dataclass(frozen=True, slots=True)
class CandidateRef:
    """A chosen or rejected candidate: its id, text, how many samples gave it, its score."""

    id: uuid.UUID
    text: str
    count: int
    score: float | None


@dataclass(frozen=True, slots=True)
class PromptSelection:
    """One prompt's decision in a selection run."""

    prompt_id: uuid.UUID
    prompt_key: str
    prompt: Any
    """A string, or a list of ``{"role", "content"}`` messages, as the generation stored it."""
    external_id: str | None
    metadata: dict[str, Any] | None
    status: str
    """selected or skipped."""
    chosen: CandidateRef | None
    rejected: CandidateRef | None
    margin: float | None
    """Chosen's score minus rejected's, in the strategy's unit."""
    strategy: str
    judge: str
    reason: str
    skip_reason: str | None
    details: dict[str, Any]
    run_id: uuid.UUID
    selection_id: int


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> SelectionRun | None:
    found: SelectionRun | None = await session.get(SelectionRun, run_id)
    return found


async def runs_for_generation(
    session: AsyncSession, generation_id: uuid.UUID
) -> list[SelectionRun]:
    result = await session.execute(
        select(SelectionRun)
        .where(SelectionRun.generation_id == generation_id)
        .order_by(SelectionRun.created_at.desc(), SelectionRun.id)
    )
    return list(result.scalars())


async def get_or_create_run(
    session: AsyncSession, values: dict[str, Any]
) -> tuple[SelectionRun, bool]:
    """The run keyed by ``values["run_key"]``, created from ``values`` if new; (run, created)."""
    now = utcnow()
    row = {"id": uuid.uuid4(), "status": "running", "created_at": now, "updated_at": now}
    statement = insert_for(session)(SelectionRun).values(**row, **values)
    result = await session.execute(
        statement.on_conflict_do_nothing(index_elements=["run_key"]).returning(SelectionRun.id)
    )
    created = result.scalar_one_or_none() is not None
    run = (
        await session.execute(select(SelectionRun).where(SelectionRun.run_key == values["run_key"]))
    ).scalar_one()
    return run, created


async def set_run_status(session: AsyncSession, run_id: uuid.UUID, status: str) -> None:
    await session.execute(
        update(SelectionRun)
        .where(SelectionRun.id == run_id)
        .values(status=status, updated_at=utcnow())
    )


async def decided(session: AsyncSession, run_id: uuid.UUID) -> dict[uuid.UUID, str | None]:
    """The run's decided prompts: prompt id → skip reason (None when selected)."""
    result = await session.execute(
        select(Selection.prompt_id, Selection.skip_reason).where(Selection.run_id == run_id)
    )
    return dict(result.all())


async def write_decision(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Store a prompt's decision once; True when this call wrote it.

    A prompt decided already keeps its decision (two runs racing on one
    prompt store one row), except a skip for a judge failure, which the
    new decision replaces (``attempts`` counts the tries).
    """
    now = utcnow()
    row = {**values, "attempts": 1, "created_at": now, "updated_at": now}
    statement = insert_for(session)(Selection).values(**row)
    result = await session.execute(
        statement.on_conflict_do_nothing(index_elements=["run_id", "prompt_id"]).returning(
            Selection.id
        )
    )
    if result.scalar_one_or_none() is not None:
        return True
    changed = {k: v for k, v in values.items() if k not in ("run_id", "prompt_id")}
    retried = await session.execute(
        update(Selection)
        .where(
            Selection.run_id == values["run_id"],
            Selection.prompt_id == values["prompt_id"],
            Selection.skip_reason == RETRIED_SKIP,
        )
        .values(**changed, attempts=Selection.attempts + 1, updated_at=now)
        .returning(Selection.id)
    )
    return retried.scalar_one_or_none() is not None


async def counts(session: AsyncSession, run_id: uuid.UUID) -> dict[str, int]:
    """Decisions by outcome: ``selected``, and each skip reason."""
    result = await session.execute(
        select(Selection.status, Selection.skip_reason, func.count())
        .where(Selection.run_id == run_id)
        .group_by(Selection.status, Selection.skip_reason)
    )
    return {skip_reason or status: int(n) for status, skip_reason, n in result.all()}


async def preferences(
    session: AsyncSession, run_id: uuid.UUID, *, selected_only: bool = False
) -> list[PromptSelection]:
    """Each decided prompt of the run, in the generation's prompt order."""
    chosen, rejected = aliased(GenerationCandidate), aliased(GenerationCandidate)
    statement = (
        select(Selection, GenerationPrompt, SelectionRun, chosen, rejected)
        .join(GenerationPrompt, GenerationPrompt.id == Selection.prompt_id)
        .join(SelectionRun, SelectionRun.id == Selection.run_id)
        .outerjoin(chosen, chosen.id == Selection.chosen_id)
        .outerjoin(rejected, rejected.id == Selection.rejected_id)
        .where(Selection.run_id == run_id)
        .order_by(GenerationPrompt.source_line, GenerationPrompt.created_at, Selection.id)
    )
    if selected_only:
        statement = statement.where(Selection.status == "selected")
    rows = (await session.execute(statement)).all()
    return [
        PromptSelection(
            prompt_id=prompt.id,
            prompt_key=prompt.prompt_key,
            prompt=prompt.prompt,
            external_id=prompt.external_id,
            metadata=prompt.meta,
            status=selection.status,
            chosen=_ref(chosen_row, selection.chosen_score),
            rejected=_ref(rejected_row, selection.rejected_score),
            margin=selection.margin,
            strategy=run.strategy,
            judge=run.judge,
            reason=selection.reason,
            skip_reason=selection.skip_reason,
            details=selection.details,
            run_id=run.id,
            selection_id=selection.id,
        )
        for selection, prompt, run, chosen_row, rejected_row in rows
    ]


def _ref(row: GenerationCandidate | None, score: float | None) -> CandidateRef | None:
    return None if row is None else CandidateRef(row.id, row.text, row.count, score)
