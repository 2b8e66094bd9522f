"""Run a use case over every record of a file: concurrently, resumably, bad lines reported.

``referee rate`` and ``referee revise`` go through here. Each record goes
through its use case, which reuses a stored result for the same input, so
running the same command after a crash picks up where it stopped and pays
for nothing twice. A judge failure is counted (and stored by the use case);
a bad line is reported with its number; neither stops the others.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel

from app.errors import JudgeFailedError, RefereeError
from app.keys import digest
from app.labeling.jsonl import LineError, Parsed, rejected

if TYPE_CHECKING:
    from app.store.models import JudgeCall

RecordT = TypeVar("RecordT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What one record's use case did: whether it called a model, its calls, a tag to count."""

    created: bool
    calls: list[JudgeCall]
    tag: str | None = None


@dataclass(slots=True)
class RunSummary:
    new: int = 0
    reused: int = 0
    failed: int = 0
    merged: int = 0
    """Lines repeating an earlier line's content (its id and metadata aside): run once."""
    rejected: list[LineError] = field(default_factory=list)
    cost: Decimal = Decimal(0)
    failures: Counter[str] = field(default_factory=Counter)
    tags: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> int:
        return self.new + self.reused + self.failed

    def describe_failures(self) -> str:
        return ", ".join(f"{name} {count}" for name, count in sorted(self.failures.items()))


async def run_records(
    records: Iterable[Parsed[RecordT] | LineError],
    source: str,
    concurrency: int,
    handle: Callable[[RecordT], Awaitable[ItemResult]],
    on_progress: Callable[[RunSummary], None] = lambda _summary: None,
) -> RunSummary:
    """Send each record to ``handle`` with at most ``concurrency`` records in flight."""
    summary = RunSummary()
    queue: asyncio.Queue[Parsed[RecordT] | None] = asyncio.Queue(maxsize=concurrency * 2)

    async def work() -> None:
        while (record := await queue.get()) is not None:
            await _one(record, source, handle, summary)
            on_progress(summary)

    workers = [asyncio.create_task(work()) for _ in range(concurrency)]
    # 64 bits of each record's content key: two equal lines in flight at once
    # would each miss the other's stored result and run (and be paid) twice.
    seen: set[int] = set()
    try:
        for record in records:
            if isinstance(record, LineError):
                summary.rejected.append(record)
                continue
            key = int(content_digest(record.record)[:16], 16)
            if key in seen:
                summary.merged += 1
                continue
            seen.add(key)
            await queue.put(record)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    return summary


def content_digest(record: BaseModel) -> str:
    """What a use case's key covers: the record without the caller's id and metadata."""
    return digest(record.model_dump(mode="json", exclude={"id", "metadata"}))


async def _one(
    record: Parsed[RecordT],
    source: str,
    handle: Callable[[RecordT], Awaitable[ItemResult]],
    summary: RunSummary,
) -> None:
    try:
        result = await handle(record.record)
    except JudgeFailedError as exc:
        summary.failed += 1
        summary.failures[str(exc.details.get("error_class"))] += 1
        return
    except RefereeError as exc:
        summary.rejected.append(rejected(source, record.line, exc))
        return
    if result.created:
        summary.new += 1
        summary.cost += sum((c.cost_usd for c in result.calls if c.cost_usd), Decimal(0))
    else:
        summary.reused += 1
    if result.tag:
        summary.tags[result.tag] += 1
