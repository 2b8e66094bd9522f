"""Score a batch of completions for a training loop: in order, on time, once, stored.

The request is checked whole before anything is paid for (sizes, the judge
and whether this caller may use it, the queue). Items scored before (by
content and scorer) come from the store with no call; identical items in
flight, in this request or another, are judged once (single flight); the
rest draw slots from the process's shared capacity. At the deadline, the
items still unscored are ``null`` with reason ``deadline`` and the request
answers; calls already made finish in the background and store their
result, so a retry finds them. Items not yet sent by then are never sent.

Every item is stored as a reward row keyed by the request it came in, so a
client retrying the same batch finds the same rows instead of adding more.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from app.errors import RefereeError
from app.keys import document_key
from app.labeling.access import acting_key
from app.labeling.compare import Labeler
from app.labeling.rewards.capacity import Capacity, DeadlinePassed
from app.labeling.rewards.inputs import RewardItemIn, RewardRequest, check_request, item_problem
from app.labeling.rewards.scorers import DEADLINE, RatingWriter, Scored, Scorer, build_scorer
from app.labeling.rewards.writer import GroupWriter
from app.store import rewards

log = logging.getLogger("referee")
# The time kept after the wait for scores to store the rows and answer.
ANSWER_RESERVE_S = 0.05


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    scored: Scored
    row_id: uuid.UUID
    """The stored reward row."""


@dataclass(frozen=True, slots=True)
class RewardBatch:
    scorer: Scorer
    items: list[ItemOutcome]
    elapsed_s: float

    def counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter(item.scored.status for item in self.items)
        counts["cached"] = sum(item.scored.cached for item in self.items)
        return dict(counts)


@dataclass(slots=True)
class _Planned:
    item: RewardItemIn
    run: str | None
    step: int | None
    key: str
    problem: RefereeError | None


class RewardService:
    """Reward scoring over a labeler, with one capacity pool for the process."""

    def __init__(self, labeler: Labeler) -> None:
        self.labeler = labeler
        self.settings = labeler.settings
        self.capacity = Capacity(
            self.settings.reward_max_in_flight, self.settings.reward_max_queued
        )
        self.writer: RatingWriter = GroupWriter(labeler.db, rewards.store_ratings)
        self._background: set[asyncio.Task[Scored]] = set()
        self._starting = asyncio.Lock()

    def deadline_s(self, timeout_s: float | None) -> float:
        return min(timeout_s or self.settings.reward_timeout_s, self.settings.reward_max_timeout_s)

    async def score(self, request: RewardRequest) -> RewardBatch:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.deadline_s(request.timeout_s)
        check_request(request, self.settings)
        scorer = build_scorer(self.labeler, request.scorer, self.writer)
        async with scorer.holding():
            planned = [self._plan(scorer, item, i) for i, item in enumerate(request.items)]
            keys = sorted({p.key for p in planned if p.problem is None})
            async with self.labeler.db.transaction() as session:
                results: dict[str, Scored] = await scorer.lookup(session, keys)
            todo = {p.key: p.item for p in planned if p.problem is None and p.key not in results}
            self.capacity.admit(len(todo))
            tasks: dict[str, asyncio.Task[Scored]] = {}
            try:
                # One request starts its items at a time, so slots go to requests in the
                # order they came: the first ones finish (and store) while later ones wait.
                async with self._starting:
                    for key, item in todo.items():
                        tasks[key] = self._start(scorer, item, key, deadline)
                        # Each item's call goes out before the next item is started: the
                        # first call of a batch is sent at once, not after every item's set-up.
                        await asyncio.sleep(0)
            finally:
                self.capacity.withdraw(len(todo) - len(tasks))  # not started: cancelled
            if tasks:
                # The reward rows are made while the judge works, once the calls waiting
                # for a slot are sent; only the outcomes are added after.
                await self.capacity.after_sends(deadline - ANSWER_RESERVE_S)
            rows = self._rows(request, scorer, planned)
            if tasks:
                await asyncio.wait(
                    tasks.values(), timeout=max(0.0, deadline - loop.time() - ANSWER_RESERVE_S)
                )
                # Storing them waits likewise. A request with nothing to judge (all cached
                # or refused) answers at once.
                await self.capacity.after_sends(deadline - ANSWER_RESERVE_S)
            results.update({key: _result(task) for key, task in tasks.items()})
            outcomes = [Scored.refused(p.problem) if p.problem else results[p.key] for p in planned]
            ids = await self._record(rows, outcomes)
        items = [ItemOutcome(s, ids[i]) for i, s in enumerate(outcomes)]
        return RewardBatch(scorer, items, loop.time() - started)

    def _plan(self, scorer: Scorer, item: RewardItemIn, index: int) -> _Planned:
        problem = item_problem(item, index, self.settings, scorer.kind)
        try:
            run, step = item.run_and_step(index)
        except RefereeError:  # the item's problem already; its row has no run
            run, step = None, None
        key = ""
        if problem is None:
            try:
                key = scorer.key(item)
            except RefereeError as exc:  # the pair screen refusing it (identical, empty)
                problem = exc
        if problem is not None:
            key = document_key({"refused": item.stored(), "scorer": scorer.fingerprint()})
        return _Planned(item, run, step, key, problem)

    def _start(
        self, scorer: Scorer, item: RewardItemIn, key: str, deadline: float
    ) -> asyncio.Task[Scored]:
        async def shared() -> Scored:
            result, _ = await self.labeler.flights.run(
                ("reward", scorer.kind, key), lambda: self._work(scorer, item, key, deadline)
            )
            return result

        task = asyncio.get_running_loop().create_task(shared())
        self._background.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Scored]) -> None:
        self._background.discard(task)
        self.capacity.finished()
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here too: an item past its request's deadline has no reader.
            log.debug("reward scoring failed: %r", task.exception())

    async def _work(self, scorer: Scorer, item: RewardItemIn, key: str, deadline: float) -> Scored:
        async with scorer.holding():
            try:
                return await scorer.work(item, key, self.capacity.slot(deadline))
            except DeadlinePassed:
                return DEADLINE

    def _rows(
        self, request: RewardRequest, scorer: Scorer, planned: list[_Planned]
    ) -> list[dict[str, Any]]:
        """One reward row per item, keyed so that the same request again finds the same rows.

        Without the outcome's columns: :meth:`_record` adds them.
        """
        fingerprint = scorer.fingerprint()
        # Scorer and idempotency key are the request's: an item's identity within it is
        # its run, step and texts (the nth repeat of one gets n in its key).
        seen: Counter[tuple[str | None, int | None, str]] = Counter()
        rows = []
        for plan in planned:
            stored = plan.item.stored()
            same = (plan.run, plan.step, json.dumps(stored, sort_keys=True, ensure_ascii=False))
            occurrence = seen[same]
            seen[same] += 1
            identity = {
                "v": 1,
                "kind": "reward_item",
                "scorer": fingerprint,
                "run": plan.run,
                "step": plan.step,
                "idempotency_key": request.idempotency_key,
                "item": stored,
                "n": occurrence,
            }
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "item_key": document_key(identity),
                    "score_key": plan.key,
                    "run": plan.run,
                    "step": plan.step,
                    "idempotency_key": request.idempotency_key,
                    "scorer": scorer.kind,
                    "judge": scorer.judge_label,
                    **stored,
                    "metadata": plan.item.metadata,
                    "api_key_id": acting_key.get(),
                }
            )
        return rows

    async def _record(self, rows: list[dict[str, Any]], outcomes: list[Scored]) -> list[uuid.UUID]:
        """Store the rows with their outcomes; each row's id (the one stored before, if any)."""
        rows = [
            {**row, **_outcome_columns(scored)} for row, scored in zip(rows, outcomes, strict=True)
        ]
        async with self.labeler.db.transaction() as session:
            found = await rewards.record_items(session, rows)
        return [found[row["item_key"]] for row in rows]

    async def aclose(self) -> None:
        """Let background scoring (items past their request's deadline) finish and store."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def _outcome_columns(scored: Scored) -> dict[str, Any]:
    return {
        "status": scored.status,
        "reason": scored.reason,
        "score": scored.score,
        "raw_score": scored.raw_score,
        "passed": scored.passed,
        "rating_id": scored.rating_id,
        "comparison_id": scored.comparison_id,
    }


def _result(task: asyncio.Task[Scored]) -> Scored:
    """The item's reward; ``deadline`` if it is not done; a failure named by its class."""
    if not task.done() or task.cancelled():
        return DEADLINE
    exc = task.exception()
    if exc is None:
        return task.result()
    if isinstance(exc, RefereeError):
        return Scored.refused(exc, "failed")
    log.warning("reward scoring failed: %r", exc)
    return Scored("failed", reason=type(exc).__name__, message=str(exc)[:500])


__all__ = ["ItemOutcome", "RewardBatch", "RewardService"]
