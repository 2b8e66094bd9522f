"""Reviewing a queue: progress, the next item, answers, undo; answers become gold.

Every function takes a session in a transaction the caller owns (the
request, the CLI command) and commits nothing.

Order: each (reviewer, item) draws left/right once and stores it
(``ab``: left is response_a). An answer (``left``, ``right``, ``tie``) maps
back to the comparison's a/b through :func:`judges.protocol.winner_from_position`,
the protocol's single mapping, with left the first position shown.

Assignment: a reviewer is served their live lease if they hold one, else
the first open item they have not answered or skipped whose answers plus
other reviewers' live leases are fewer than the queue's overlap k. So with
k = 1 two reviewers are never served the same item at once; with k = 2 two
may be. A lease lasts :data:`LEASE`; a reviewer who walks away frees the
item when it expires. A skip frees the item for others and leaves it out
of the skipper's queue.

Gold: once k reviewers answered an item, it is done and one review (a
``gold_labels`` row with source ``review``, as ``POST
/v1/comparisons/{id}/reviews`` writes) is stored for its pair: the answer
when k = 1, the majority of the k answers when k >= 2 (``votes`` holds
them all, ``reviewer`` names the reviewers). When no answer has a strict
majority (a 1-1 split) the item is done without gold. Undo takes back the
reviewer's last answer or skip, within :data:`UNDO_WINDOW` of giving it;
when it had completed the item, the gold written from it is deleted and
the item is open again, to be decided anew when k answers are in once
more. Deleting is right for that short window only: it corrects a key
pressed a moment ago, before the gold row is likely to have been read,
and the corrected answer writes a new row. Later, the answer stands and
undo is refused (409): a human review is a row and past ones are not
rewritten; a reviewer who changes their mind later gives a new review.

Agreement between reviewers and with judges: :mod:`app.reports.review_agreement`.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidInputError, NotFoundError, RefereeError
from app.keys import pair_key
from app.labeling.gold import resolve
from app.store import comparisons, gold
from app.store import review_queues as store
from app.store.models import utcnow
from app.store.models_review import ReviewAssignment, ReviewItem, ReviewQueue
from judges.protocol import winner_from_position
from judges.types import Order, Position

LEASE = timedelta(minutes=10)
UNDO_WINDOW = timedelta(minutes=10)
"""How long after an answer undo may take it back (and delete the gold it wrote)."""
Choice = Literal["left", "right", "tie", "skip"]
CHOICES: tuple[Choice, ...] = ("left", "right", "tie", "skip")
_POSITIONS = {"left": Position.FIRST, "right": Position.SECOND, "tie": Position.TIE}
MAX_NOTE_CHARS = 20_000
MAX_REVIEWER_CHARS = 256


class ConflictError(RefereeError):
    """The answer no longer applies: already answered, or the item was completed by others."""

    status_code = 409
    code = "conflict"


@dataclass(frozen=True, slots=True)
class QueueProgress:
    """A queue as one reviewer sees it."""

    queue_id: uuid.UUID
    name: str
    kind: str
    overlap: int
    show_machine: bool
    items: int
    done: int
    """Items k reviewers answered."""
    answered_by_you: int
    """Items this reviewer answered or skipped."""
    left_for_you: int
    """Open items this reviewer has not answered or skipped."""


@dataclass(frozen=True, slots=True)
class MachineVerdict:
    """A judge's current decision on the pair, in the reviewer's left/right terms."""

    judge: str
    winner: Literal["left", "right", "tie"]
    confidence: float | None
    position_consistent: bool | None
    rationale: str


@dataclass(frozen=True, slots=True)
class ServedItem:
    """What the reviewer sees: the pair in their stored order, and the queue's guidelines."""

    item_id: int
    assignment_id: int
    queue_id: uuid.UUID
    queue_name: str
    prompt: Any
    """A string, or a list of {"role", "content"} messages."""
    left: str
    right: str
    guidelines: str
    """Markdown, unrendered (the page renders and sanitises it)."""
    show_machine: bool
    machine: list[MachineVerdict] | None
    """The judges' verdicts when the queue shows them; None in blind review."""
    lease_expires_at: Any


@dataclass(frozen=True, slots=True)
class Answered:
    """What an answer did: the item's a/b winner and, when it completed the item, its gold."""

    assignment_id: int
    choice: Choice
    winner: str | None
    item_done: bool
    gold_label_id: int | None


def check_reviewer(reviewer: str) -> str:
    if not reviewer or len(reviewer) > MAX_REVIEWER_CHARS or "\x00" in reviewer:
        raise InvalidInputError("reviewer must be 1-256 characters, no NUL", field="reviewer")
    return reviewer


async def queue_named(session: AsyncSession, name_or_id: str) -> ReviewQueue:
    """A queue by its name or id; 404 when there is none."""
    queue = await store.queue_by_name(session, name_or_id)
    if queue is None:
        try:
            queue = await store.get_queue(session, uuid.UUID(name_or_id))
        except ValueError:
            queue = None
    if queue is None:
        raise NotFoundError(f"no review queue {name_or_id!r}", field="queue")
    return queue


async def get_queue(session: AsyncSession, queue_id: uuid.UUID) -> ReviewQueue:
    """The queue; 404 when there is none."""
    queue = await store.get_queue(session, queue_id)
    if queue is None:
        raise NotFoundError(f"no review queue {queue_id}", field="queue_id")
    return queue


async def list_queues(session: AsyncSession, reviewer: str) -> list[QueueProgress]:
    """Every queue, oldest first, with this reviewer's progress in it."""
    check_reviewer(reviewer)
    found = []
    for queue in await store.all_queues(session):
        progress = await store.progress(session, queue.id, reviewer)
        found.append(
            QueueProgress(
                queue.id,
                queue.name,
                queue.kind,
                queue.overlap,
                queue.show_machine,
                progress.items,
                progress.done,
                progress.answered_by,
                progress.left_for,
            )
        )
    return found


async def next_item(
    session: AsyncSession, queue_id: uuid.UUID, reviewer: str, *, lease: timedelta = LEASE
) -> ServedItem | None:
    """The item to show this reviewer now, leased to them; None when nothing is left for them.

    The same item again while their lease lives (a reload shows what they
    were looking at); the lease is renewed.
    """
    check_reviewer(reviewer)
    queue = await get_queue(session, queue_id)
    now = utcnow()
    held = await store.live_lease(session, queue.id, reviewer, now)
    item_id = held.item_id if held is not None else None
    if item_id is None:
        item_id = await store.claim_item(session, queue.id, reviewer, queue.overlap, now)
    if item_id is None:
        return None
    order = secrets.choice((Order.AB, Order.BA)).value
    assignment = await store.lease(session, item_id, queue.id, reviewer, order, now + lease)
    return await _served(session, queue, assignment)


async def _served(
    session: AsyncSession, queue: ReviewQueue, assignment: ReviewAssignment
) -> ServedItem:
    # Items cascade with their comparison, so the pair is there.
    item, comparison = await store.item_and_comparison(session, assignment.item_id)
    order = Order(assignment.shown_order)
    first, second = (
        (comparison.response_a, comparison.response_b)
        if order is Order.AB
        else (comparison.response_b, comparison.response_a)
    )
    machine = None
    if queue.show_machine:
        machine = [
            MachineVerdict(
                judge,
                _position_of(order, verdict.winner),
                verdict.confidence,
                verdict.position_consistent,
                verdict.rationale,
            )
            for judge, verdict in await store.current_verdicts(session, comparison.id)
        ]
    return ServedItem(
        item_id=item.id,
        assignment_id=assignment.id,
        queue_id=queue.id,
        queue_name=queue.name,
        prompt=comparison.prompt,
        left=_text(first),
        right=_text(second),
        guidelines=queue.guidelines,
        show_machine=queue.show_machine,
        machine=machine,
        lease_expires_at=assignment.lease_expires_at,
    )


def _position_of(order: Order, winner: str) -> Literal["left", "right", "tie"]:
    """Where a judge's a/b winner sits for this reviewer, found through the one mapping."""
    choices: tuple[Literal["left", "right", "tie"], ...] = ("left", "right", "tie")
    for choice in choices:
        if winner_from_position(order, _POSITIONS[choice]).value == winner:
            return choice
    raise ValueError(f"not a winner: {winner!r}")


def _text(response: Any) -> str:
    """A response as text: a string, or an assistant message's content."""
    if isinstance(response, dict):
        return str(response.get("content", ""))
    return str(response)


def winner_for(shown_order: str, choice: Choice) -> str | None:
    """The comparison's a/b/tie for what a reviewer pressed; None for a skip."""
    if choice == "skip":
        return None
    return winner_from_position(Order(shown_order), _POSITIONS[choice]).value


async def answer(
    session: AsyncSession,
    assignment_id: int,
    reviewer: str,
    choice: Choice,
    note: str | None = None,
    *,
    queue_id: uuid.UUID | None = None,
) -> Answered:
    """Record the reviewer's answer on their assignment; complete the item at k answers.

    ``queue_id``, when given, must be the assignment's queue (else 404).
    """
    check_reviewer(reviewer)
    if choice not in CHOICES:
        raise InvalidInputError(f"choice must be one of {', '.join(CHOICES)}", field="choice")
    if note is not None and (len(note) > MAX_NOTE_CHARS or "\x00" in note):
        raise InvalidInputError("note must be at most 20000 characters, no NUL", field="note")
    mine = await store.assignment(session, assignment_id, reviewer)
    if mine is None or (queue_id is not None and mine.queue_id != queue_id):
        raise NotFoundError(f"no assignment {assignment_id} of {reviewer!r}", field="assignment_id")
    item = await store.lock_item(session, mine.item_id)
    await session.refresh(mine)
    if mine.state != "leased":
        raise ConflictError(f"assignment {assignment_id} is answered already; undo it first")
    queue = await get_queue(session, mine.queue_id)
    if item.done:
        raise ConflictError("this item was completed by other reviewers while it was open")
    now = utcnow()
    expired = mine.lease_expires_at is None or mine.lease_expires_at <= now
    if expired and choice != "skip":
        taken = item.answers + await store.others_taken(session, item.id, reviewer, now)
        if taken >= queue.overlap:
            raise ConflictError("the lease ran out and other reviewers took this item")
    winner = winner_for(mine.shown_order, choice)
    mine.state = "skipped" if choice == "skip" else "answered"
    mine.choice, mine.winner, mine.note, mine.answered_at = choice, winner, note, now
    mine.lease_expires_at = None
    if choice != "skip":
        item.answers += 1
        if item.answers >= queue.overlap:
            await _complete(session, queue, item)
    await session.flush()
    return Answered(mine.id, choice, winner, item.done, item.gold_label_id)


async def _complete(session: AsyncSession, queue: ReviewQueue, item: ReviewItem) -> None:
    """k answers are in: the item is done, and its gold is the majority (or the one answer)."""
    await session.flush()
    answers = await store.answers_of(session, item.id)
    item.done = True
    winner = resolve([a.winner for a in answers if a.winner is not None], "majority")
    if winner is None:
        return  # an even split: no gold
    comparison = await comparisons.get(session, item.comparison_id)
    assert comparison is not None
    names = ", ".join(sorted({a.reviewer for a in answers}))
    notes = "\n".join(f"{a.reviewer}: {a.note}" for a in answers if a.note)
    key = comparison.pair_key or pair_key(
        comparison.prompt, comparison.response_a, comparison.response_b
    )
    review = await gold.add_review(
        session,
        {
            "pair_key": key,
            "dedupe_key": uuid.uuid4().hex,
            "winner": winner,
            "source": "review",
            "origin": f"review-queue:{queue.name}",
            "external_id": comparison.external_id,
            "comparison_id": comparison.id,
            "reviewer": names[:MAX_REVIEWER_CHARS],
            "note": notes or None,
            "votes": [a.winner for a in answers],
            "created_at": utcnow(),
        },
    )
    item.gold_label_id = review.id


async def undo_last(
    session: AsyncSession, queue_id: uuid.UUID, reviewer: str, *, lease: timedelta = LEASE
) -> ServedItem:
    """Take back the reviewer's last answer or skip in the queue, and serve that item again.

    If the answer had completed the item, the gold written from it is
    deleted and the item is open again. 404 when there is nothing to undo;
    409 when the answer is older than :data:`UNDO_WINDOW`.
    """
    check_reviewer(reviewer)
    queue = await get_queue(session, queue_id)
    last = await store.last_answer(session, queue.id, reviewer)
    if last is None:
        raise NotFoundError(f"{reviewer!r} has no answer to undo in {queue.name!r}")
    if last.answered_at is not None and last.answered_at < utcnow() - UNDO_WINDOW:
        raise ConflictError(
            f"the last answer was given over {UNDO_WINDOW.seconds // 60} minutes ago and stands;"
            " give a new review instead"
        )
    item = await store.lock_item(session, last.item_id)
    if last.state == "answered":
        if item.done and item.gold_label_id is not None:
            await store.delete_gold(session, item.gold_label_id)
        item.done, item.gold_label_id = False, None
        item.answers -= 1
    last.state, last.choice, last.winner, last.note, last.answered_at = (
        "leased",
        None,
        None,
        None,
        None,
    )
    last.lease_expires_at = utcnow() + lease
    await session.flush()
    return await _served(session, queue, last)
