"""Provider-batch mode: a batch's pending pairs go through the providers' batch APIs.

Each submission is stored the moment the provider accepts it, and its pairs
are leased to it, so a run that is killed and started again polls the
submissions it has instead of submitting again. Ended submissions' results
are joined back on ``custom_id``, turned into the same judge_calls and
verdict rows a live run writes (keyed by the same label keys), and
committed in chunks; a request the provider did not finish is judged live.
A submission the provider refused as a whole (OpenAI's ``failed``) is not:
its reasons are stored, its pairs go back to pending for the next run, and
the run ends with an error naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from app.errors import (
    BadRequestError,
    JudgeUnavailableError,
    ProviderBatchFailedError,
    RefereeError,
)
from app.labeling.batch import Progress, ProgressView, run_in_foreground
from app.labeling.compare import Labeler, pair_lengths, run_cost, run_rows
from app.labeling.pricing import call_cost
from app.labeling.worker import stored_pair
from app.observability.logs import observed_batch_run
from app.store import batches, comparisons, provider_batches
from app.store.models import Comparison, ProviderBatch, utcnow
from judges import JudgeConfig, JudgeError, PairOutcome, TransientJudgeError
from judges.backends.anthropic import cached_preamble_tokens
from judges.base import Judge
from judges.provider_batch import (
    BatchResult,
    BatchState,
    ProviderBatchAPI,
    batch_api_for,
    custom_id,
    pair_outcome,
    submissions,
)
from judges.types import Order, Usage

# Longer than a provider keeps a batch (24 hours), so no worker takes the
# pairs while the provider may still answer them.
SUBMISSION_LEASE = timedelta(hours=25)
RESULT_CHUNK = 500
# The most pairs one claim leases: the claim names each row in one statement,
# and PostgreSQL takes at most 65,535 parameters a statement.
MAX_CLAIM = 50_000
REFUSED_HINT = (
    "fix the cause and run the same command again (the pending pairs are submitted again), "
    "or rerun with --mode live to judge them at the live price"
)


@dataclass
class ProviderBatchOptions:
    poll_seconds: float = 30.0
    concurrency: int = 16
    """Live requests in flight for the requests a batch did not finish."""
    max_requests: int | None = None
    """Submit at most this many requests at once (default: the provider's limit)."""


MODES = ("live", "provider-batch")


def provider_batch_options(
    mode: str, poll_seconds: float, concurrency: int, max_cost: Decimal | None = None
) -> ProviderBatchOptions | None:
    """The options of ``--mode``: None for live calls; a clear error for an unknown mode."""
    if mode not in MODES:
        raise BadRequestError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "live":
        return None
    if max_cost is not None:
        # A submission is paid for as a whole; there is no stopping it halfway.
        raise BadRequestError("--max-cost works in live mode only; see --dry-run for the cost")
    return ProviderBatchOptions(poll_seconds=poll_seconds, concurrency=concurrency)


def check_mode(config: object, labeler: Labeler, constitution: str | None) -> JudgeConfig:
    """Refuse, before anything is queued, a run provider-batch mode cannot do."""
    if not isinstance(config, JudgeConfig):
        raise BadRequestError("provider-batch mode takes one judge, not a jury")
    if constitution is not None:
        raise BadRequestError("provider-batch mode judges plain pairs; drop --constitution")
    try:
        batch_api_for(labeler.judge_for(config))
    except JudgeError as exc:
        raise BadRequestError(exc.message) from None
    return config


def with_prompt_cache(config: JudgeConfig, usage: Usage, calls: int) -> Usage:
    """An estimate's usage once the judge's preamble is cached: one write, then reads."""
    preamble = cached_preamble_tokens(config)
    if not preamble or not calls:
        return usage
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=preamble * (calls - 1),
        cache_write_tokens=preamble,
    )


def estimated_cost(
    config: JudgeConfig, total: Usage, calls: int, *, batch: bool = False
) -> Decimal | None:
    """Price a run's estimated usage as ``calls`` average calls, the first writing the cache.

    Not as one call of the whole usage: price tiers (a model's long-context
    rates) apply per request, and a whole run's tokens would cross them.
    """
    if calls <= 0:
        return call_cost(config.provider, config.model, Usage(), batch=batch)
    inputs, outputs = round(total.input_tokens / calls), round(total.output_tokens / calls)
    preamble = total.cache_write_tokens
    first = Usage(inputs, outputs, cache_write_tokens=preamble)
    rest = Usage(inputs, outputs, cache_read_tokens=preamble)
    first_cost = call_cost(config.provider, config.model, first, batch=batch)
    rest_cost = call_cost(config.provider, config.model, rest, batch=batch)
    if first_cost is None or rest_cost is None:
        return None
    return first_cost + rest_cost * (calls - 1)


async def run_submissions(
    labeler: Labeler,
    batch_id: uuid.UUID,
    config: JudgeConfig,
    options: ProviderBatchOptions,
    progress_view: ProgressView,
    pending: int,
) -> Progress:
    """``referee label --mode provider-batch``: submit, poll and collect, Ctrl-C to pause."""
    run = ProviderBatchRun(labeler, batch_id, config, options)
    return await run_in_foreground(run, progress_view, pending)


class ProviderBatchRun:
    """Submits a batch's pending pairs, polls the submissions, stores their results."""

    def __init__(
        self,
        labeler: Labeler,
        batch_id: uuid.UUID,
        config: JudgeConfig,
        options: ProviderBatchOptions,
        on_progress: Callable[[Progress], None] = lambda _p: None,
    ) -> None:
        self.labeler = labeler
        self.batch_id = batch_id
        self.config = config
        self.options = options
        self.on_progress = on_progress
        self.progress = Progress()
        self.judge: Judge = labeler.judge_for(config)
        try:
            self.api: ProviderBatchAPI = batch_api_for(self.judge)
        except JudgeError as exc:
            raise BadRequestError(exc.message) from None
        self._stopped = asyncio.Event()
        self._slots = asyncio.Semaphore(options.concurrency)
        self.refused: list[str] = []
        """One line per submission the provider refused as a whole in this run."""

    def stop(self, reason: str) -> None:
        """Stop polling; submissions stay at the provider and the next run collects them."""
        if not self._stopped.is_set():
            self.progress.stop_reason = reason
            self._stopped.set()

    @observed_batch_run
    async def run(self) -> Progress:
        # Its client polls for hours: no cache eviction may close it meanwhile.
        async with self.labeler.holding(self.judge):
            return await self._run()

    async def _run(self) -> Progress:
        started = time.perf_counter()
        try:
            async with self.labeler.db.transaction() as session:
                orphans = await provider_batches.orphan_owners(session, self.batch_id)
                await batches.release(session, orphans)
                # A run back after the lease ran out (a weekend): the pairs are still
                # the stored submissions' to collect, not to be submitted again.
                await provider_batches.renew_open(session, self.batch_id, SUBMISSION_LEASE)
            await self._submit_pending()
            await self._poll_until_collected()
        finally:
            self.progress.elapsed_s = time.perf_counter() - started
        return self.progress

    # ------------------------------------------------------------ submitting

    async def _submit_pending(self) -> None:
        per_pair = 2 if self.config.order == "both" else 1
        limit = self.options.max_requests or self.api.max_requests
        while not self._stopped.is_set():
            submission_id = uuid.uuid4()
            owner = provider_batches.owner_for(submission_id)
            async with self.labeler.db.transaction() as session:
                size = max(1, min(limit // per_pair, MAX_CLAIM))
                rows = await batches.claim(session, self.batch_id, owner, size, SUBMISSION_LEASE)
            if not rows:
                return
            await self._submit(submission_id, owner, rows)

    async def _submit(self, submission_id: uuid.UUID, owner: str, rows: list[Comparison]) -> None:
        try:
            for row in rows:
                self._check_config(row)
            items = [(row.id.hex, stored_pair(row).to_pair()) for row in rows]
            # A claim is sized to the request limit; the size limit may cut it
            # shorter: the first submission goes now, the rest back to the queue.
            ids, requests = next(submissions(items, self.api))
            if len(ids) < len(rows):
                sent = set(ids)
                rest = [row.id for row in rows if row.id.hex not in sent]
                rows = [row for row in rows if row.id.hex in sent]
                async with self.labeler.db.transaction() as session:
                    await provider_batches.release_rows(session, owner, rest)
            provider_batch_id = await self.api.submit(requests)
        except BaseException as exc:
            async with self.labeler.db.transaction() as session:
                await batches.release(session, [owner])
            if isinstance(exc, JudgeError):
                raise JudgeUnavailableError(
                    f"the {self.config.provider} batch API refused the submission: {exc.message}"
                ) from None
            raise
        async with self.labeler.db.transaction() as session:
            await provider_batches.record(
                session,
                submission_id,
                self.batch_id,
                self.config.provider,
                provider_batch_id,
                self.config.label,
                len(rows),
                len(requests),
            )

    def _check_config(self, row: Comparison) -> None:
        if row.judge_config != self.config.fingerprint() or row.constitution is not None:
            raise BadRequestError(
                f"pair {row.id} was queued for another judge configuration or a constitution; "
                "provider-batch mode judges plain pairs with the batch's own judge"
            )

    # --------------------------------------------------------------- polling

    async def _poll_until_collected(self) -> None:
        # A submission that cannot be read for good does not keep the others'
        # results from being stored; its error is raised once they are.
        unreadable: dict[uuid.UUID, JudgeUnavailableError] = {}
        while not self._stopped.is_set():
            async with self.labeler.db.transaction() as session:
                open_ = await provider_batches.open_submissions(session, self.batch_id)
            readable = [s for s in open_ if s.id not in unreadable]
            if not readable:
                self._raise_refused(unreadable.values())
                if unreadable:
                    raise next(iter(unreadable.values()))
                return
            for submission in readable:
                if self._stopped.is_set():
                    break
                try:
                    await self._poll(submission)
                except JudgeUnavailableError as exc:
                    unreadable[submission.id] = exc
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.options.poll_seconds)
        self._raise_refused(unreadable.values())

    def _raise_refused(self, unreadable: Iterable[JudgeUnavailableError]) -> None:
        """Report the submissions refused as a whole: not judged live, a cost nobody asked for."""
        if self.refused:
            lines = [*self.refused, *(exc.message for exc in unreadable), REFUSED_HINT]
            raise ProviderBatchFailedError("\n".join(lines))

    async def _poll(self, submission: ProviderBatch) -> None:
        results: dict[str, BatchResult] = {}
        try:
            state = await self.api.state(submission.provider_batch_id)
            if state.ended and not state.failed:
                async for result in self.api.results(submission.provider_batch_id):
                    results[result.custom_id] = result
        except TransientJudgeError:
            return  # poll (and read the results) again next round
        except JudgeError as exc:
            raise JudgeUnavailableError(
                f"cannot read {self.config.provider} batch {submission.provider_batch_id}: "
                f"{exc.message}"
            ) from None
        if state.failed:
            await self._refused(submission, state)
        elif state.ended:
            await self._collect(submission, state.status, results)

    async def _refused(self, submission: ProviderBatch, state: BatchState) -> None:
        """Store the provider's reasons and give the pairs back to the queue, unjudged."""
        errors = [{"code": e.code, "message": e.message, "line": e.line} for e in state.errors]
        async with self.labeler.db.transaction() as session:
            await provider_batches.fail(session, submission, state.status, errors)
        reasons = "; ".join(str(e) for e in state.errors) or "the provider gave no reason"
        self.refused.append(
            f"{submission.provider} batch {submission.provider_batch_id} failed as a whole "
            f"({submission.pairs} pairs, none judged, pending again): {reasons}"
        )

    async def _collect(
        self, submission: ProviderBatch, provider_status: str, results: dict[str, BatchResult]
    ) -> None:
        latency_ms = (utcnow() - submission.created_at).total_seconds() * 1000
        async with self.labeler.db.transaction() as session:
            rows = await provider_batches.leased_to(session, submission.lease_owner)
        for start in range(0, len(rows), RESULT_CHUNK):
            chunk = rows[start : start + RESULT_CHUNK]
            outcomes = await asyncio.gather(
                *(self._outcome(row, results, submission, latency_ms) for row in chunk)
            )
            await self._write(submission.lease_owner, chunk, outcomes)
        async with self.labeler.db.transaction() as session:
            await provider_batches.set_status(session, submission.id, "collected", provider_status)

    async def _outcome(
        self,
        row: Comparison,
        results: dict[str, BatchResult],
        submission: ProviderBatch,
        latency_ms: float,
    ) -> PairOutcome:
        # The ids the requests were built with (judges.provider_batch.custom_id).
        ids = {order: custom_id(row.id.hex, order) for order in Order}
        mine = {order: results[cid] for order, cid in ids.items() if cid in results}
        return await pair_outcome(
            self.judge,
            stored_pair(row).to_pair(),
            mine,
            parameters={"provider_batch": submission.provider_batch_id},
            latency_ms=latency_ms,
            slots=self._slots,
        )

    async def _write(
        self, owner: str, rows: Sequence[Comparison], outcomes: Sequence[PairOutcome]
    ) -> None:
        async with self.labeler.db.transaction() as session:
            owned = await batches.take_ownership(session, owner, [row.id for row in rows])
            runs = [
                (run_rows(row.id, pair_lengths(stored_pair(row)), self.config, outcome), outcome)
                for row, outcome in zip(rows, outcomes, strict=True)
                if row.id in owned
            ]
            await comparisons.write_runs(session, [run for run, _ in runs])
        self.progress.discarded += len(rows) - len(runs)
        for run, outcome in runs:
            self.progress.count(outcome, run_cost(run))
        self.on_progress(self.progress)


async def cancel_submissions(labeler: Labeler, batch_id: uuid.UUID) -> int:
    """Ask the providers to stop a batch's open submissions; returns how many were asked."""
    async with labeler.db.transaction() as session:
        open_ = await provider_batches.open_submissions(session, batch_id)
    asked = 0
    for submission in open_:
        try:
            judge = labeler.judge_for(labeler.resolve(submission.judge))
            await batch_api_for(judge).cancel(submission.provider_batch_id)
        except (JudgeError, RefereeError):
            continue  # the pairs are cancelled here whatever the provider says
        async with labeler.db.transaction() as session:
            await provider_batches.set_status(session, submission.id, "cancelled", "canceling")
        asked += 1
    return asked
