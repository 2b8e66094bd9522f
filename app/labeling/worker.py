"""The claim → judge → store loop shared by ``referee label``, ``referee worker`` and the API.

Up to ``concurrency`` pairs are in flight; rows are claimed in chunks under
a lease that a heartbeat renews while they are being judged; finished pairs
go to one writer task that commits them in small transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from app.errors import RefereeError
from app.labeling.access import Caller, acting_key, batch_payer, check_payer
from app.labeling.batch import BatchRunner, Progress, worker_id
from app.labeling.compare import (
    Labeler,
    UnderConstitution,
    judge_comparison,
    pair_lengths,
    run_cost,
    run_rows,
)
from app.labeling.gathering import WAIT_S, gathered
from app.labeling.heap import busy_collector
from app.labeling.inputs import PairIn
from app.labeling.templating import matching
from app.observability import metrics
from app.observability.logs import observed_batch_run, observed_comparison
from app.observability.tracing import record_outcome
from app.settings import Settings
from app.store import batches, comparisons
from app.store.models import Comparison
from judges import JudgeConfigError, PairOutcome
from judges.jury import PairJudgeConfig

log = logging.getLogger("referee.worker")
WRITE_PAIRS = 1024
"""Judged pairs stored in one transaction at most (their ids are bound in one IN list)."""
WRITE_WAIT_S = WAIT_S
"""How long a judged pair waits for others to be stored with it (the first one never waits)."""
REFILL_FRACTION = 4
"""Claim again once 1/REFILL_FRACTION of the pair slots is free (fewer, larger claims)."""


@dataclass
class WorkerOptions:
    concurrency: int = 16
    lease_seconds: float = 120.0
    max_cost: Decimal | None = None
    poll_seconds: float = 1.0
    stop_when_empty: bool = True
    rpm: float | None = None
    tpm: float | None = None
    """Rate limits on every judge worked with, shared by the fleet (app.labeling.fleet_limits)."""


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A judged pair waiting for the writer."""

    row: Comparison
    config: PairJudgeConfig
    lengths: dict[str, int]
    outcome: PairOutcome


def stored_pair(row: Comparison) -> PairIn:
    pair = {"prompt": row.prompt, "response_a": row.response_a, "response_b": row.response_b}
    judging = {"criteria": row.criteria, "reference": row.reference}
    return PairIn.model_validate({**pair, **{k: v for k, v in judging.items() if v is not None}})


class Worker:
    """Works off pending comparisons of one batch (or of all batches)."""

    def __init__(
        self,
        labeler: Labeler,
        options: WorkerOptions,
        batch_id: uuid.UUID | None = None,
        on_progress: Callable[[Progress], None] = lambda _p: None,
    ) -> None:
        self.labeler = labeler
        self.options = options
        self.batch_id = batch_id
        self.batch_ids: set[uuid.UUID] = set()
        """The batches whose pairs this run claimed (its canonical log line names them)."""
        self.owner = worker_id()
        self.progress = Progress()
        self.on_progress = on_progress
        self._lease = timedelta(seconds=options.lease_seconds)
        self._in_flight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._results: asyncio.Queue[WorkItem | None] = asyncio.Queue()
        self._stopping = False
        self._feeding = False
        self._unwritten = 0  # judged pairs the writer has not committed yet
        self.written = asyncio.Event()
        """Set after each write and when the run ends: whoever waits for judging to catch up
        (the feeder of ``referee label``) looks again."""
        self.finished = False
        self._written_once = False
        # Set when a slot frees up or new rows are stored: the claim loop looks again.
        self._slot_freed = asyncio.Event()
        # ``concurrency`` bounds requests, not pairs: as many pairs as requests
        # may be open, and each call takes a request slot only while it is out.
        self._request_slots = asyncio.Semaphore(options.concurrency)
        self._configs: dict[str, PairJudgeConfig] = {}
        self._payer: Caller | None = None

    def use(self, config: PairJudgeConfig) -> None:
        """Judge rows queued for ``config.label`` with this configuration (say, rate limits)."""
        self._configs[config.label] = config

    def feeding(self, more: bool) -> None:
        """While ``more``, pairs are still being enqueued: an empty queue is not the end."""
        self._feeding = more
        self._slot_freed.set()

    def wake(self) -> None:
        """New pending rows were stored: claim them now rather than at the next poll."""
        self._slot_freed.set()

    @property
    def first_verdict_due(self) -> bool:
        """A pair is judged and the first write has not committed yet."""
        return self._unwritten > 0 and not self._written_once

    @property
    def stopping(self) -> bool:
        """Told to stop (or done): it claims nothing more."""
        return self._stopping or self.finished

    def stop(self, reason: str) -> None:
        """Claim nothing more; pairs in flight finish and are stored."""
        if not self._stopping:
            self._stopping = True
            self.progress.stop_reason = reason
            self.written.set()

    @observed_batch_run
    async def run(self) -> Progress:
        started = time.perf_counter()
        if self.batch_id is not None:
            # A batch submitted over HTTP bills its key, whichever process works it off;
            # set before the tasks below start, as they copy this context.
            self._payer = await batch_payer(self.labeler.db, self.batch_id)
            acting_key.set(self._payer.key_id if self._payer else None)
        writer = asyncio.create_task(self._write_loop())
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        try:
            await self._claim_loop()
            if self._in_flight:
                await asyncio.gather(*self._in_flight.values())
        finally:
            for task in self._in_flight.values():
                task.cancel()
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
            await self._results.put(None)
            await writer
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await asyncio.shield(self._release())
            self.progress.elapsed_s = time.perf_counter() - started
            self.finished = True
            self.written.set()
        return self.progress

    async def _release(self) -> None:
        async with self.labeler.db.transaction() as session:
            await batches.release(session, [self.owner])

    async def _claim_loop(self) -> None:
        while not self._stopping:
            # Cleared before claiming, so a slot freed or rows stored meanwhile wake the wait below.
            self._slot_freed.clear()
            room = self.options.concurrency - len(self._in_flight)
            claimed: list[Comparison] = []
            # Refill once a quarter of the pair slots is free: a pair takes a request slot
            # per call, so the pairs still claimed keep every request slot busy meanwhile,
            # and fewer claims cost fewer transactions.
            if room >= max(1, self.options.concurrency // REFILL_FRACTION) or not self._in_flight:
                if not await self._payer_may_spend():
                    return
                async with self.labeler.db.transaction() as session:
                    claimed = await batches.claim(
                        session, self.batch_id, self.owner, room, self._lease
                    )
                self.batch_ids.update(row.batch_id for row in claimed if row.batch_id is not None)
                for row in claimed:
                    task = asyncio.create_task(self._judge(row))
                    self._in_flight[row.id] = task
                    task.add_done_callback(functools.partial(self._forget, row.id))
            if not claimed and not self._in_flight and not self._feeding:
                if self._unwritten:
                    # Our own results, not written yet, would look like others' pending work
                    # (a poll's sleep at the end of every run): wait for the writer instead.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._slot_freed.wait(), self.options.poll_seconds)
                    continue
                if self.options.stop_when_empty and not await self._others_hold_work():
                    return
                await asyncio.sleep(self.options.poll_seconds)
                continue
            # An event rather than asyncio.wait(tasks): waiting on every task
            # in flight costs O(in flight) per finished pair.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), self.options.poll_seconds)

    async def _payer_may_spend(self) -> bool:
        """False (and stopping) once the batch's key is revoked or its daily budget is spent."""
        if self._payer is None:
            return True
        try:
            await check_payer(self.labeler.db, self._payer)
        except RefereeError as exc:
            self.stop(exc.message)
            return False
        return True

    def _forget(self, comparison_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(comparison_id, None)
        self._slot_freed.set()

    async def _others_hold_work(self) -> bool:
        """Pending rows leased by other workers: wait for them (they may die and release)."""
        if self.batch_id is None:
            return False
        async with self.labeler.db.transaction() as session:
            counts = await batches.status_counts(session, self.batch_id)
        return counts.get("pending", 0) > 0

    def _config_for(self, row: Comparison) -> PairJudgeConfig:
        config = self._configs.get(row.judge)
        if config is None:
            config = self.labeler.resolve_pairwise(row.judge)
            config = self.labeler.with_limits(config, self.options.rpm, self.options.tpm)
            self._configs[row.judge] = config
        # A pair keyed under its category's template, or another --template, is judged so.
        found = matching(config, row.judge_config, row.meta)
        if found is None:
            raise JudgeConfigError(
                f"judge {row.judge!r} here is configured differently from when the pair was queued"
            )
        return found

    def _under(self, row: Comparison) -> UnderConstitution | None:
        if row.constitution is None:
            return None
        constitution = self.labeler.constitutions.by_ref(row.constitution)
        return UnderConstitution(constitution, row.principle_count or 1)

    async def _judge(self, row: Comparison) -> None:
        try:
            judge = self.labeler.pairwise_judge_for(self._config_for(row))
        except (RefereeError, JudgeConfigError) as exc:
            # The pair is fine; this worker cannot judge it. Stop and leave it
            # pending (the lease is released on exit) for a worker that can.
            self.stop(f"cannot judge with {row.judge!r} here: {exc}")
            return
        pair = stored_pair(row)
        try:
            under = self._under(row)
        except RefereeError as exc:
            # Never judge under a constitution other than the one queued: store why.
            outcome = PairOutcome(
                calls=(),
                verdict=None,
                error_class="constitution_changed",
                error_message=exc.message,
            )
        else:
            async with self.labeler.holding(judge), observed_comparison(row.id, row.judge):
                outcome = await judge_comparison(
                    judge, pair.to_pair(), row.label_key, under, self._request_slots
                )
                record_outcome(outcome)
        self._unwritten += 1
        await self._results.put(WorkItem(row, judge.config, pair_lengths(pair), outcome))

    async def _write_loop(self) -> None:
        # The first verdict is stored at once; later ones gather for WRITE_WAIT_S.
        async for written in gathered(
            self._results, limit=WRITE_PAIRS, first_at_once=True, wait_s=WRITE_WAIT_S
        ):
            try:
                await self._write(written)
            finally:
                self._unwritten -= len(written)
                self._written_once = True
                self._slot_freed.set()
                self.written.set()

    async def _write(self, items: list[WorkItem]) -> None:
        if not items:
            return
        async with self.labeler.db.transaction() as session:
            owned = await batches.take_ownership(session, self.owner, [i.row.id for i in items])
            runs = [
                (run_rows(i.row.id, i.lengths, i.config, i.outcome), i.outcome)
                for i in items
                if i.row.id in owned
            ]
            await comparisons.write_runs(session, [run for run, _ in runs])
        self.progress.discarded += len(items) - len(runs)  # lease lost: another worker has them
        for run, outcome in runs:
            self._count(outcome, run_cost(run))
        self.on_progress(self.progress)

    def _count(self, outcome: PairOutcome, cost: Decimal) -> None:
        p = self.progress
        p.count(outcome, cost)
        if self.options.max_cost is not None and p.cost >= self.options.max_cost:
            self.stop(f"budget of ${self.options.max_cost} reached")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.lease_seconds / 3)
            ids = list(self._in_flight)
            if ids:
                async with self.labeler.db.transaction() as session:
                    await batches.renew(session, self.owner, ids, self._lease)
                metrics.count_lease("batch", renewed=len(ids))


async def run_worker(
    settings: Settings,
    concurrency: int,
    batch_id: uuid.UUID | None,
    forever: bool,
    lease_seconds: float,
    rpm: float | None = None,
    tpm: float | None = None,
) -> Progress:
    """``referee worker``: claim and judge pending pairs until none are left (or forever)."""
    from app.labeling.runtime import runtime

    async with runtime(settings) as labeler:
        worker = Worker(
            labeler,
            WorkerOptions(
                concurrency=concurrency,
                lease_seconds=lease_seconds,
                stop_when_empty=not forever,
                rpm=rpm,
                tpm=tpm,
            ),
            batch_id,
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, worker.stop, "interrupted")
        with busy_collector():
            return await worker.run()


class BackgroundWorkers:
    """In-process workers for batches submitted over HTTP; stopped cleanly at shutdown."""

    def __init__(self, labeler: Labeler, options: WorkerOptions) -> None:
        self.labeler = labeler
        self.options = options
        self._running: dict[uuid.UUID, tuple[BatchRunner, asyncio.Task[Progress]]] = {}

    def start(self, batch_id: uuid.UUID, runner: BatchRunner | None = None) -> None:
        """Work the batch off with ``runner`` (default: a live :class:`Worker`)."""
        if batch_id in self._running and not self._running[batch_id][1].done():
            return
        worker = runner or Worker(self.labeler, self.options, batch_id)
        task = asyncio.create_task(worker.run())
        task.add_done_callback(lambda _t: self._log_failure(batch_id, _t))
        self._running[batch_id] = (worker, task)

    def is_running(self, job_id: uuid.UUID) -> bool:
        return job_id in self._running and not self._running[job_id][1].done()

    def running(self, kind: type[object]) -> int:
        """How many jobs of this runner class are running now."""
        return sum(
            isinstance(worker, kind) and not task.done() for worker, task in self._running.values()
        )

    def _log_failure(self, batch_id: uuid.UUID, task: asyncio.Task[Progress]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("worker for batch %s failed: %r", batch_id, task.exception())

    def stop(self, batch_id: uuid.UUID) -> None:
        if batch_id in self._running:
            self._running[batch_id][0].stop("cancelled")

    async def aclose(self) -> None:
        for worker, _ in self._running.values():
            worker.stop("shutting down")
        await asyncio.gather(*(task for _, task in self._running.values()), return_exceptions=True)
