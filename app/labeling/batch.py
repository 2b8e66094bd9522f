"""Batch labeling: enqueue pairs as pending comparisons, then work them off under leases.

``referee label``, ``POST /v1/batches`` and ``referee worker`` all go through
here. Every pair is a row before any model is called, so a crash loses at
most the pairs in flight; results are committed in small transactions as
they complete; the label key makes a finished pair never judged again, and
the lease guard keeps a pair from being stored twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from typing import Any, Protocol

from app.errors import TextTooLargeError
from app.labeling.compare import Labeler, UnderConstitution, comparison_values
from app.labeling.gold import GoldLedger, store_gold
from app.labeling.inputs import PairIn
from app.labeling.jsonl import LineError, ParsedLine
from app.labeling.keys import label_key
from app.store import batches
from app.store.models import utcnow
from judges.jury import PairJudgeConfig
from judges.types import PairOutcome

ENQUEUE_CHUNK = 500


@dataclass
class EnqueueResult:
    submitted: int = 0
    new: int = 0
    rejected: int = 0


@dataclass
class Progress:
    """What a run has done so far; the CLI draws it, the API reports it."""

    done: int = 0
    labeled: int = 0
    failed: int = 0
    tied: int = 0
    position_biased: int = 0
    discarded: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    truncated: int = 0
    """Calls whose prompt was cut to fit a local model's context."""
    cost: Decimal = Decimal(0)
    failures: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None
    elapsed_s: float = 0.0

    def count(self, outcome: PairOutcome, cost: Decimal) -> None:
        """Add one stored pair, its calls' tokens and its cost."""
        self.done += 1
        for call in outcome.calls:
            self.input_tokens += call.usage.input_tokens
            self.output_tokens += call.usage.output_tokens
            self.cache_read_tokens += call.usage.cache_read_tokens
            self.cache_write_tokens += call.usage.cache_write_tokens
            self.truncated += call.usage.truncated_tokens > 0
        self.cost += cost
        if outcome.verdict is None:
            self.failed += 1
            key = outcome.error_class or "unknown"
            self.failures[key] = self.failures.get(key, 0) + 1
        else:
            self.labeled += 1
            self.tied += outcome.verdict.winner.value == "tie"
            self.position_biased += outcome.verdict.position_consistent is False


ProgressView = Callable[[int], AbstractContextManager[Callable[[Progress], None]]]
"""Draws a run's progress: given the pairs pending, a context yielding the update callback."""


class BatchRunner(Protocol):
    """What works a batch off: a worker, or a provider-batch run."""

    async def run(self) -> Progress: ...

    def stop(self, reason: str) -> None: ...


class ReportingRunner(BatchRunner, Protocol):
    on_progress: Callable[[Progress], None]


async def run_in_foreground(
    run: ReportingRunner, progress_view: ProgressView, pending: int
) -> Progress:
    """Run with its progress drawn; Ctrl-C stops it cleanly (what is stored stays stored)."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, run.stop, "interrupted")
    try:
        with progress_view(pending) as update:
            run.on_progress = update
            return await run.run()
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def pending_row(
    pair: PairIn,
    config: PairJudgeConfig,
    batch_id: uuid.UUID,
    line: int | None,
    under: UnderConstitution | None = None,
) -> dict[str, Any]:
    stored = pair.stored()
    now = utcnow()
    key = label_key(stored, config, under.key if under else None)
    return {
        "id": uuid.uuid4(),
        **comparison_values(pair, stored, config, key, under),
        "status": "pending",
        "batch_id": batch_id,
        "source_line": line,
        "created_at": now,
        "updated_at": now,
    }


async def enqueue(
    labeler: Labeler,
    batch_id: uuid.UUID,
    config: PairJudgeConfig,
    records: Iterable[ParsedLine | LineError],
    source: str,
    on_reject: Callable[[LineError], None] = lambda _error: None,
    under: UnderConstitution | None = None,
    gold_ledger: GoldLedger | None = None,
) -> EnqueueResult:
    """Store every good record as a pending comparison, a chunk per transaction.

    Records' human labels (``label``) are stored as gold labels once the
    file is read, so a human-labeled file judged here can be reported on:
    one per pair, ``gold_ledger`` (app.labeling.gold) merging the labels of
    a pair's lines and settling disagreements by its policy.
    Bad records go to ``on_reject`` as they come rather than into a list, so
    memory stays flat however many lines a file gets wrong.
    """
    result = EnqueueResult()
    ledger = gold_ledger if gold_ledger is not None else GoldLedger()
    for chunk in _chunks(records, ENQUEUE_CHUNK):
        rows = []
        for record in chunk:
            if isinstance(record, LineError):
                result.rejected += 1
                on_reject(record)
                continue
            try:
                labeler.check_sizes(record.pair)
            except TextTooLargeError as exc:  # reject the line, keep going
                error = LineError(source, record.line, exc.message, "")
                result.rejected += 1
                on_reject(error)
                continue
            rows.append(pending_row(record.pair, config, batch_id, record.line, under))
            ledger.add(record.pair, record.line)
        async with labeler.db.transaction() as session:
            result.new += await batches.enqueue(session, rows)
            await batches.add_counts(session, batch_id, len(rows), len(chunk) - len(rows))
        result.submitted += len(rows)
    # Human labels once the whole file is read: lines of one pair anywhere in it make one
    # gold label, and the ledger's policy settles labels that disagree.
    await store_gold(labeler.db, ledger, source)
    return result


def worker_id() -> str:
    """host:pid:nonce — the pid lets a restarted process on the same host reclaim dead leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def release_dead_local_leases(labeler: Labeler) -> int:
    """Free leases held by processes of this host that no longer exist (a SIGKILLed run)."""
    host = socket.gethostname()
    async with labeler.db.transaction() as session:
        owners = await batches.lease_owners_like(session, f"{host}:")
        dead = [
            o for o in owners if o.split(":")[1].isdigit() and not _pid_alive(int(o.split(":")[1]))
        ]
        return await batches.release(session, dead) if dead else 0
