"""Agreement between human reviewers, and of each reviewer with each judge.

Per review queue: Krippendorff's alpha (nominal, over the labels a, b and tie;
computed by the ``krippendorff`` package, with items a single reviewer
answered left out as it prescribes) and the pairwise agreement: over every
two answers given to the same item, the share that are equal. Per pair of
reviewers and per reviewer (against everyone else), the same share over the
items they both answered. Per reviewer and judge: the share of the
reviewer's answers equal to the judge's current verdict on the same pair.
Shares carry a seeded bootstrap interval (each compared pair resampled as
independent, which slightly narrows the interval when one item gives
several pairs). On an ``audit`` queue, a uniform random sample of its
batch, these are unbiased estimates for the whole batch; on the other
kinds they describe the hard cases the queue selected.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import krippendorff
import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from app.reports.metrics import Bootstrap, proportion
from app.store import review_queues
from app.store.models_review import ReviewQueue
from app.store.reports import Scope


@dataclass(frozen=True, slots=True)
class Answer:
    item: int
    pair_key: str | None
    reviewer: str
    winner: str


def krippendorff_alpha(units: dict[Any, dict[str, str]]) -> float | None:
    """Nominal alpha over units (item → reviewer → label, any labels); None when undefined.

    Undefined: no item has two answers, or every answer given is the same label
    (no disagreement is possible, so alpha is 0/0).
    """
    pairable = {unit: by for unit, by in units.items() if len(by) >= 2}
    values = {label for by in pairable.values() for label in by.values()}
    if not pairable or len(values) < 2:
        return None
    raters = sorted({name for by in pairable.values() for name in by})
    codes = {label: float(code) for code, label in enumerate(sorted(values))}
    data = np.full((len(raters), len(pairable)), np.nan)
    for column, by in enumerate(pairable.values()):
        for name, label in by.items():
            data[raters.index(name), column] = codes[label]
    value = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    return None if math.isnan(value) else value


def _units(answers: Sequence[Answer]) -> dict[int, dict[str, str]]:
    units: dict[int, dict[str, str]] = defaultdict(dict)
    for answer in answers:
        units[answer.item][answer.reviewer] = answer.winner
    return units


def _pairs(units: dict[int, dict[str, str]]) -> list[tuple[str, str, bool]]:
    """Every two answers on one item: (reviewer, reviewer, equal), names in order."""
    found = []
    for by in units.values():
        for first, second in combinations(sorted(by), 2):
            found.append((first, second, by[first] == by[second]))
    return found


def queue_block(queue: ReviewQueue, answers: Sequence[Answer], boot: Bootstrap) -> dict[str, Any]:
    """Alpha, pairwise agreement, per pair of reviewers and per reviewer, for one queue."""
    units = _units(answers)
    pairs = _pairs(units)
    reviewers = sorted({a.reviewer for a in answers})
    by_pair: dict[tuple[str, str], list[bool]] = defaultdict(list)
    by_reviewer: dict[str, list[bool]] = defaultdict(list)
    for first, second, equal in pairs:
        by_pair[(first, second)].append(equal)
        by_reviewer[first].append(equal)
        by_reviewer[second].append(equal)
    return {
        "queue": queue.name,
        "kind": queue.kind,
        "overlap": queue.overlap,
        "items": queue.items,
        "answered_items": len(units),
        "answers": len(answers),
        "reviewers": len(reviewers),
        "alpha": {
            "value": krippendorff_alpha(units),
            "n": sum(len(by) >= 2 for by in units.values()),
        },
        "pairwise": proportion(sum(e for *_, e in pairs), len(pairs), boot).as_dict(),
        "reviewer_pairs": [
            {
                "reviewer_a": first,
                "reviewer_b": second,
                "agreement": proportion(sum(equal), len(equal), boot).as_dict(),
            }
            for (first, second), equal in sorted(by_pair.items())
        ],
        "per_reviewer": [
            {
                "reviewer": name,
                "answers": sum(a.reviewer == name for a in answers),
                "agreement_with_others": proportion(
                    sum(by_reviewer[name]), len(by_reviewer[name]), boot
                ).as_dict(),
            }
            for name in reviewers
        ],
    }


def reviewer_judge(
    answers: Sequence[Answer], verdicts: Sequence[tuple[str | None, str, str]], boot: Bootstrap
) -> list[dict[str, Any]]:
    """Each reviewer against each judge, over the pairs both decided."""
    by_pair: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key, judge, winner in verdicts:
        if key is not None:
            by_pair[key].append((judge, winner))
    tally: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for answer in answers:
        for judge, winner in by_pair.get(answer.pair_key or "", []):
            tally[(answer.reviewer, judge)].append(answer.winner == winner)
    return [
        {
            "reviewer": reviewer,
            "judge": judge,
            "agreement": proportion(sum(equal), len(equal), boot).as_dict(),
        }
        for (reviewer, judge), equal in sorted(tally.items())
    ]


async def _answers(
    session: AsyncSession, queue_id: uuid.UUID, scope: Scope | None = None
) -> list[Answer]:
    conditions = scope.conditions() if scope is not None else []
    rows = await review_queues.queue_answers(session, queue_id, conditions)
    return [Answer(item, key, reviewer, winner) for item, key, reviewer, winner in rows if winner]


async def queue_agreement(
    session: AsyncSession, queue_id: uuid.UUID, boot: Bootstrap | None = None
) -> dict[str, Any] | None:
    """One queue's agreement block plus its reviewers against each judge; None: no queue."""
    boot = boot or Bootstrap()
    queue = await review_queues.get_queue(session, queue_id)
    if queue is None:
        return None
    answers = await _answers(session, queue.id)
    keys = [a.pair_key for a in answers if a.pair_key is not None]
    verdicts = await review_queues.judge_winners(session, keys)
    return {
        **queue_block(queue, answers, boot),
        "reviewer_judge": reviewer_judge(answers, verdicts, boot),
    }


async def review_agreement(
    session: AsyncSession, boot: Bootstrap, scope: Scope | None = None
) -> dict[str, Any]:
    """The report's ``review_agreement``: every queue, and reviewers against judges overall.

    A report's ``--judge``/``--batch`` (``scope``) narrows it to answers on
    items whose comparison is that judge's and in that batch, and reviewers
    are compared with that judge only; queues with no such answer are left
    out. ``scope`` in the result says which: ``null`` fields cover all.
    """
    scope = scope or Scope()
    scoped = scope.judge is not None or scope.batch_id is not None
    blocks, everything = [], []
    for queue in await review_queues.all_queues(session):
        answers = await _answers(session, queue.id, scope)
        if scoped and not answers:
            continue
        everything.extend(answers)
        blocks.append(queue_block(queue, answers, boot))
    keys = [a.pair_key for a in everything if a.pair_key is not None]
    verdicts = await review_queues.judge_winners(session, keys, scope.judge)
    return {
        "scope": {
            "judge": scope.judge,
            "batch_id": None if scope.batch_id is None else str(scope.batch_id),
        },
        "queues": blocks,
        "reviewer_judge": reviewer_judge(everything, verdicts, boot),
    }
