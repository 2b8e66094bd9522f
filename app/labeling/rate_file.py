"""``referee rate FILE``: rate every response in a file, concurrently and resumably.

Each line is rated through :class:`~app.labeling.rate.Rater`, so a line
already rated with the same judge and rubric is reused, not paid for again:
running the same command after a crash picks up where it stopped. Bad lines
are reported with their line number and do not stop the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from app.errors import JudgeFailedError, RefereeError
from app.labeling.compare import Labeler
from app.labeling.jsonl import LineError, Parsed
from app.labeling.rate import Rater, ResponseItemIn, RubricChoice


@dataclass(slots=True)
class RateSummary:
    rated: int = 0
    reused: int = 0
    failed: int = 0
    passed: int = 0
    rejected: list[LineError] = field(default_factory=list)
    cost: Decimal = Decimal(0)
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.rated + self.reused + self.failed


async def rate_records(
    labeler: Labeler,
    records: Iterable[Parsed[ResponseItemIn] | LineError],
    source: str,
    judge: str | None,
    choice: RubricChoice,
    concurrency: int,
    on_progress: Callable[[RateSummary], None] = lambda _summary: None,
) -> RateSummary:
    """Rate each record with at most ``concurrency`` model calls in flight."""
    rater = Rater(labeler)
    # Resolve once up front: a bad judge or rubric fails the run before any line.
    labeler.judge_for(labeler.resolve(judge))
    choice.resolve()
    summary = RateSummary()
    queue: asyncio.Queue[Parsed[ResponseItemIn] | None] = asyncio.Queue(maxsize=concurrency * 2)

    async def work() -> None:
        while (record := await queue.get()) is not None:
            await _rate_one(rater, record, source, judge, choice, summary)
            on_progress(summary)

    workers = [asyncio.create_task(work()) for _ in range(concurrency)]
    try:
        for record in records:
            if isinstance(record, LineError):
                summary.rejected.append(record)
                continue
            await queue.put(record)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    return summary


async def _rate_one(
    rater: Rater,
    record: Parsed[ResponseItemIn],
    source: str,
    judge: str | None,
    choice: RubricChoice,
    summary: RateSummary,
) -> None:
    try:
        result = await rater.rate(record.record, judge, choice)
    except JudgeFailedError as exc:
        summary.failed += 1
        error_class = str(exc.details.get("error_class"))
        summary.failures[error_class] = summary.failures.get(error_class, 0) + 1
        return
    except RefereeError as exc:
        summary.rejected.append(LineError(source, record.line, exc.message, ""))
        return
    rating = result.rating
    if result.created:
        summary.rated += 1
        summary.cost += sum((c.cost_usd for c in rating.calls if c.cost_usd), Decimal(0))
    else:
        summary.reused += 1
    summary.passed += bool(rating.passed)
