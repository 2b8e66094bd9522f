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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal, Protocol

from app.errors import InvalidInputError, TextTooLargeError
from app.keys import label_key
from app.labeling.claims import holder_is_gone
from app.labeling.compare import Labeler, UnderConstitution, comparison_values, pair_lengths
from app.labeling.gold import GoldLedger, store_gold
from app.labeling.inputs import LabeledPairIn, PairIn
from app.labeling.jsonl import LineError, ParsedLine, rejected
from app.labeling.screening import RULE_TEMPLATE, TextPolicy, rule_key, rule_verdict, screen_pair
from app.labeling.templating import prepare
from app.observability import metrics
from app.store import batches, comparisons
from app.store.models import utcnow
from judges.jury import PairJudgeConfig
from judges.types import PairOutcome

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

ENQUEUE_CHUNK = 500
FIRST_CHUNK = 16
READ_SLICE = 32


@dataclass
class EnqueueResult:
    submitted: int = 0
    new: int = 0
    rejected: int = 0
    merged: int = 0
    """Lines that repeat an earlier line's pair (same label key): judged once."""
    ruled: int = 0
    """Pairs with identical responses stored as a tie by rule, without a judge call."""


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
    queued: int | None = None
    """Pairs this run has to judge, when it grows while the file is still being enqueued."""

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


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def pending_row(
    pair: PairIn,
    config: PairJudgeConfig,
    batch_id: uuid.UUID,
    line: int | None,
    under: UnderConstitution | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    stored = pair.stored()
    now = utcnow()
    key = key or label_key(stored, config, under.key if under else None)
    return {
        "id": uuid.uuid4(),
        **comparison_values(pair, stored, config, key, under),
        "status": "pending",
        "batch_id": batch_id,
        "source_line": line,
        "created_at": now,
        "updated_at": now,
    }


@dataclass(frozen=True, slots=True)
class Accepted:
    """A line that passed every check, with the label key it will be stored under."""

    line: int
    pair: LabeledPairIn
    key: str
    decision: Literal["judge", "tie"]
    duplicate: bool
    """An earlier line of the same file has the same key: no second comparison (or call)."""
    config: PairJudgeConfig | None = None
    """The judge this line is keyed with (its category's template); None: the batch's."""


class Screen:
    """The checks every line of a pair file goes through before anything is stored or paid.

    ``referee label``, its ``--dry-run`` and ``POST /v1/batches`` all read
    through one Screen, so the dry run refuses, merges and prices exactly
    what the real run would: text size, empty texts, identical responses,
    lines repeating an earlier pair.
    """

    def __init__(
        self,
        labeler: Labeler,
        config: PairJudgeConfig,
        source: str,
        under: UnderConstitution | None = None,
        policy: TextPolicy | None = None,
    ) -> None:
        self.labeler, self.config, self.source, self.under = labeler, config, source, under
        self.policy = policy or labeler.text_policy()
        # 64 bits of each key seen: a file of millions of pairs keeps a few
        # tens of MB here; a collision would only merge two lines' counts.
        self._seen: set[int] = set()
        self.merged = 0

    def __call__(self, records: Iterable[ParsedLine | LineError]) -> Iterator[Accepted | LineError]:
        for record in records:
            yield record if isinstance(record, LineError) else self.check(record)

    def check(self, record: ParsedLine) -> Accepted | LineError:
        try:
            self.labeler.check_sizes(record.pair)
            decision = screen_pair(record.pair, self.policy)
            limit = self.labeler.settings.max_criteria_chars
            pair, config = prepare(record.pair, self.config, limit)
        except (TextTooLargeError, InvalidInputError) as exc:  # reject the line, keep going
            return rejected(self.source, record.line, exc)
        under_key = self.under.key if self.under else None
        stored = pair.stored()
        if decision == "tie":
            key = rule_key(stored, config, under_key)
        else:
            key = label_key(stored, config, under_key)
        short = int(key[:16], 16)
        duplicate = short in self._seen
        self._seen.add(short)
        self.merged += duplicate
        return Accepted(record.line, pair, key, decision, duplicate, config)


async def enqueue(
    labeler: Labeler,
    batch_id: uuid.UUID,
    config: PairJudgeConfig,
    records: Iterable[ParsedLine | LineError],
    source: str,
    on_reject: Callable[[LineError], None] = lambda _error: None,
    under: UnderConstitution | None = None,
    policy: TextPolicy | None = None,
    gold_ledger: GoldLedger | None = None,
    on_stored: Callable[[int], None] = lambda _pending: None,
    halted: Callable[[], bool] = lambda: False,
    room: Callable[[int], Awaitable[None]] | None = None,
) -> EnqueueResult:
    """Store every good record as a pending comparison, a chunk per transaction.

    Records' human labels (``label``) are stored as gold labels once the
    file is read, so a human-labeled file judged here can be reported on:
    one per pair, ``gold_ledger`` (app.labeling.gold) merging the labels of
    a pair's lines and settling disagreements by its policy. A line that
    repeats an earlier line's pair adds its id to that comparison's
    ``external_ids``. Identical responses are stored as a tie by rule (see
    app.labeling.screening). Bad records go to
    ``on_reject`` as they come rather than into a list, so memory stays flat
    however many lines a file gets wrong.

    Judging may run beside it (``referee label``): chunks start small so the
    first pairs are claimable within milliseconds, each committed chunk calls
    ``on_stored`` with its new pending rows, and the reading yields to the
    event loop every few lines so calls in flight are not held up. Before
    a chunk is stored, ``room(rows)`` returns once that many more pending
    rows keep the judging's backlog within its bound, so a file of millions
    of lines is not stored far ahead of the verdicts. Once ``halted()`` says
    so (Ctrl-C) it stops between chunks; what is stored stays stored and
    the same command resumes the rest.
    """
    result = EnqueueResult()
    screen = Screen(labeler, config, source, under, policy)
    ledger = gold_ledger if gold_ledger is not None else GoldLedger()
    # Ids of lines merged into an earlier line's comparison (label key -> ids), kept on it.
    merged_ids: dict[str, list[str]] = {}
    async for chunk in _ramped_chunks(screen(records)):
        if halted():
            result.merged = screen.merged
            return result
        rows, ties = [], []
        for item in chunk:
            if isinstance(item, LineError):
                result.rejected += 1
                on_reject(item)
                continue
            ledger.add(item.pair, item.line)
            if item.duplicate:
                if item.pair.id is not None:
                    merged_ids.setdefault(item.key, []).append(item.pair.id)
                continue
            line_config = item.config or config
            row = pending_row(item.pair, line_config, batch_id, item.line, under, item.key)
            if item.decision == "tie":
                row["template_version"] = RULE_TEMPLATE
                ties.append((row, pair_lengths(item.pair)))
            else:
                rows.append(row)
        if room is not None and rows:
            await room(len(rows))
            if halted():  # stopped while waiting for the judging to catch up
                result.merged = screen.merged
                return result
        async with labeler.db.transaction() as session:
            ruled = await _store_rule_ties(session, ties)
            pending = await batches.enqueue(session, rows)
            rejected = sum(isinstance(item, LineError) for item in chunk)
            await batches.add_counts(session, batch_id, len(rows) + len(ties), rejected)
        result.new += ruled + pending
        result.ruled += ruled
        result.submitted += len(rows) + len(ties)
        on_stored(pending)
    result.merged = screen.merged
    if merged_ids:
        async with labeler.db.transaction() as session:
            await batches.add_merged_ids(session, merged_ids)
    # Human labels once the whole file is read: lines of one pair anywhere in it make one
    # gold label, and the ledger's policy settles labels that disagree.
    await store_gold(labeler.db, ledger, source)
    return result


async def _ramped_chunks(items: Iterable[Any]) -> AsyncIterator[list[Any]]:
    """Chunks of FIRST_CHUNK items, doubling up to ENQUEUE_CHUNK; yields the loop every few items.

    The first pairs of a file are stored (and claimable) after reading a
    handful of lines, not a full chunk; reading is CPU work on the event
    loop, so it gives way every READ_SLICE items to the calls in flight.
    """
    size = FIRST_CHUNK
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) % READ_SLICE == 0:
            await asyncio.sleep(0)
        if len(chunk) >= size:
            yield chunk
            chunk, size = [], min(2 * size, ENQUEUE_CHUNK)
    if chunk:
        yield chunk


async def _store_rule_ties(
    session: AsyncSession, ties: list[tuple[dict[str, Any], dict[str, int]]]
) -> int:
    """Insert the tie-by-rule comparisons not stored yet, each with its verdict and no call."""
    if not ties:
        return 0
    stored = await batches.existing_keys(session, [row["label_key"] for row, _ in ties])
    fresh = [(row, lengths) for row, lengths in ties if row["label_key"] not in stored]
    await batches.enqueue(session, [row for row, _ in fresh])
    runs = [
        comparisons.RunRows(row["id"], rule_verdict(lengths), [], "labeled", None)
        for row, lengths in fresh
    ]
    await comparisons.write_runs(session, runs)
    for (row, _), run in zip(fresh, runs, strict=True):
        metrics.count_verdict(row["judge"], run.verdict)
    return len(fresh)


def worker_id() -> str:
    """host:pid:nonce — the pid lets a restarted process on the same host reclaim dead leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def release_dead_local_leases(labeler: Labeler) -> int:
    """Free leases held by processes of this host that no longer exist (a SIGKILLed run)."""
    host = socket.gethostname()
    async with labeler.db.transaction() as session:
        owners = await batches.lease_owners_like(session, f"{host}:")
        dead = [o for o in owners if holder_is_gone(o)]
        return await batches.release(session, dead) if dead else 0
