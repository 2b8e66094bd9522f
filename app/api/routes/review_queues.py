"""/v1/review-queues: human review queues as JSON (the /review page serves the same use cases).

Making a queue needs ``admin``; reading, being served and answering need
``review``. The reviewer is the API key's name (``local`` with
REFEREE_AUTH=off, which serves loopback only).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import DatabaseDep, get_labeler
from app.api.errors import error_responses
from app.errors import NotFoundError
from app.labeling.access import authenticate
from app.labeling.review import manage, queues
from app.labeling.review.create import QueueSpec, create_queue
from app.labeling.text_rules import BatchName, ReviewNote
from app.reports.review_agreement import queue_agreement
from app.store import review_queues as store
from app.store.db import Database
from app.store.limits import INT64_MAX

router = APIRouter(prefix="/v1/review-queues", tags=["review queues"])
LOCAL_REVIEWER = "local"


class QueueCreate(QueueSpec):
    """A queue to make: its kind, and where its pairs come from."""

    model_config = ConfigDict(extra="forbid")

    batch: BatchName | None = Field(
        None, description="The batch by name or id (instead of batch_id)."
    )


class QueueOut(BaseModel):
    id: uuid.UUID
    name: str
    kind: str
    batch_id: uuid.UUID | None
    params: dict[str, Any]
    overlap: int
    show_machine: bool
    guidelines: str = Field(description="Markdown, as given.")
    items: int
    done: int = Field(description="Items k reviewers answered.")
    answers: int
    reviewers: int
    created_by: str | None
    created_at: datetime


class ProgressOut(BaseModel):
    queue_id: uuid.UUID
    name: str
    kind: str
    overlap: int
    show_machine: bool
    items: int
    done: int
    answered_by_you: int
    left_for_you: int


class MachineVerdictOut(BaseModel):
    judge: str
    winner: Literal["left", "right", "tie"] = Field(description="In this reviewer's order.")
    confidence: float | None
    position_consistent: bool | None
    rationale: str


class ItemOut(BaseModel):
    item_id: int
    assignment_id: int = Field(description="Answer with this id.")
    queue_id: uuid.UUID
    queue_name: str
    prompt: Any = Field(description="A string, or a list of {role, content} messages.")
    left: str
    right: str
    guidelines: str
    show_machine: bool
    machine: list[MachineVerdictOut] | None = Field(description="None in blind review.")
    lease_expires_at: datetime


class NextOut(BaseModel):
    item: ItemOut | None = Field(description="None when nothing is left for this reviewer.")


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignment_id: int = Field(ge=1, le=INT64_MAX)
    choice: queues.Choice = Field(description="What the reviewer picked, in their order.")
    note: ReviewNote | None = None


class AnsweredOut(BaseModel):
    assignment_id: int
    choice: str
    winner: str | None = Field(description="The comparison's a, b or tie; None for a skip.")
    item_done: bool
    gold_label_id: int | None


def _item(served: queues.ServedItem) -> ItemOut:
    machine = None
    if served.machine is not None:
        machine = [MachineVerdictOut(**vars_of(m)) for m in served.machine]
    return ItemOut(
        item_id=served.item_id,
        assignment_id=served.assignment_id,
        queue_id=served.queue_id,
        queue_name=served.queue_name,
        prompt=served.prompt,
        left=served.left,
        right=served.right,
        guidelines=served.guidelines,
        show_machine=served.show_machine,
        machine=machine,
        lease_expires_at=served.lease_expires_at,
    )


def vars_of(verdict: queues.MachineVerdict) -> dict[str, Any]:
    return {
        "judge": verdict.judge,
        "winner": verdict.winner,
        "confidence": verdict.confidence,
        "position_consistent": verdict.position_consistent,
        "rationale": verdict.rationale,
    }


async def reviewer_of(request: Request, db: Database) -> str:
    """The API key's name; ``local`` with REFEREE_AUTH=off (require_access ran first)."""
    if get_labeler(request).settings.auth == "off":
        return LOCAL_REVIEWER
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    caller = await authenticate(db, token.strip() if scheme.lower() == "bearer" else None)
    return caller.name


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=QueueOut,
    responses=error_responses(400, 404, 413, 422, e404="No such batch."),
)
async def create(body: QueueCreate, request: Request, db: DatabaseDep) -> dict[str, Any]:
    """Make a queue of the pairs its kind selects (admin). The pairs are fixed when it is made."""
    maker = await reviewer_of(request, db)
    max_items = get_labeler(request).settings.max_queue_items
    async with db.transaction() as session:
        spec = body
        if body.batch is not None:
            spec = body.model_copy(
                update={"batch_id": await manage.batch_id_of(session, body.batch)}
            )
        queue = await create_queue(
            session,
            QueueSpec(**spec.model_dump(exclude={"batch"})),
            created_by=maker,
            max_items=max_items,
        )
        counts = await store.counts(session, queue.id)
        return manage.describe(queue, counts)


@router.get("", response_model=list[ProgressOut], responses=error_responses(422))
async def list_all(request: Request, db: DatabaseDep) -> list[ProgressOut]:
    """Every queue, with the calling reviewer's progress in it."""
    reviewer = await reviewer_of(request, db)
    async with db.transaction() as session:
        found = await queues.list_queues(session, reviewer)
    return [_progress(p) for p in found]


def _progress(p: queues.QueueProgress) -> ProgressOut:
    return ProgressOut(
        queue_id=p.queue_id,
        name=p.name,
        kind=p.kind,
        overlap=p.overlap,
        show_machine=p.show_machine,
        items=p.items,
        done=p.done,
        answered_by_you=p.answered_by_you,
        left_for_you=p.left_for_you,
    )


@router.get("/{queue_id}", response_model=QueueOut, responses=error_responses(404, 422))
async def get_one(queue_id: uuid.UUID, db: DatabaseDep) -> dict[str, Any]:
    """One queue: its guidelines, settings and progress."""
    async with db.transaction() as session:
        queue = await queues.get_queue(session, queue_id)
        return manage.describe(queue, await store.counts(session, queue.id))


@router.post("/{queue_id}/next", response_model=NextOut, responses=error_responses(404, 422))
async def next_item(queue_id: uuid.UUID, request: Request, db: DatabaseDep) -> NextOut:
    """Lease the next item to the calling reviewer, in their stored left/right order."""
    reviewer = await reviewer_of(request, db)
    async with db.transaction() as session:
        served = await queues.next_item(session, queue_id, reviewer)
    return NextOut(item=None if served is None else _item(served))


@router.post(
    "/{queue_id}/answers",
    response_model=AnsweredOut,
    responses=error_responses(
        400, 404, 409, 413, 422, e409="Answered already, or completed by others."
    ),
)
async def answer(
    queue_id: uuid.UUID, body: AnswerIn, request: Request, db: DatabaseDep
) -> AnsweredOut:
    """Answer the item of an assignment: left, right, tie, or skip (it goes back to others)."""
    reviewer = await reviewer_of(request, db)
    async with db.transaction() as session:
        done = await queues.answer(
            session, body.assignment_id, reviewer, body.choice, body.note, queue_id=queue_id
        )
    return AnsweredOut(
        assignment_id=done.assignment_id,
        choice=done.choice,
        winner=done.winner,
        item_done=done.item_done,
        gold_label_id=done.gold_label_id,
    )


@router.post("/{queue_id}/undo", response_model=ItemOut, responses=error_responses(404, 409, 422))
async def undo(queue_id: uuid.UUID, request: Request, db: DatabaseDep) -> ItemOut:
    """Take back the caller's last answer (and gold written from it); serve that item again."""
    reviewer = await reviewer_of(request, db)
    async with db.transaction() as session:
        served = await queues.undo_last(session, queue_id, reviewer)
    return _item(served)


@router.get("/{queue_id}/agreement", responses=error_responses(404, 422))
async def agreement(queue_id: uuid.UUID, db: DatabaseDep) -> dict[str, Any]:
    """Krippendorff's alpha, pairwise agreement, per reviewer, and reviewers against judges."""
    async with db.transaction() as session:
        found = await queue_agreement(session, queue_id)
    if found is None:
        raise NotFoundError(f"no review queue {queue_id}", field="queue_id")
    return found
