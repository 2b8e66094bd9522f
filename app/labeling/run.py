"""``referee label``: a file of pairs → a batch → verdicts, resumable and budgeted."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from app.labeling.batch import (
    ENQUEUE_CHUNK,
    Accepted,
    EnqueueResult,
    Progress,
    ProgressView,
    Screen,
    chunks,
    enqueue,
    release_dead_local_leases,
    run_in_foreground,
)
from app.labeling.compare import Labeler
from app.labeling.gold import GoldConflict, GoldLedger
from app.labeling.heap import busy_collector
from app.labeling.jsonl import LineError, RejectsFile, read_pairs
from app.labeling.runtime import runtime
from app.labeling.screening import TextPolicy
from app.labeling.shapes import Document
from app.labeling.templating import with_template
from app.labeling.worker import Worker, WorkerOptions
from app.settings import Settings
from app.store import batches
from judges import JudgeConfig, JudgeError, Order, show
from judges.jury import JuryConfig, PairJudgeConfig
from judges.protocol import estimate_tokens
from judges.templates import get_template
from judges.types import Usage

if TYPE_CHECKING:
    # Provider batches reach into the providers' SDKs: imported when a run uses them, so a
    # live run of an OpenAI judge never imports anthropic (about a second of start-up).
    from app.labeling.provider_batch import ProviderBatchOptions

ESTIMATED_OUTPUT_TOKENS = 150
BACKLOG_PER_SLOT = 8
"""Pending pairs allowed per request slot while a file is still being stored."""
MIN_BACKLOG = 2 * ENQUEUE_CHUNK
"""The backlog bound's floor: a full chunk fits while the judging still has a chunk ahead."""
RECOUNT_S = 1.0
"""A waiting feeder counts again at least this often (other processes judge the batch too)."""


@dataclass
class LabelOptions:
    judge: str | None = None
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    retry_failed: bool = False
    max_cost: Decimal | None = None
    batch_name: str | None = None
    origin: str | None = None
    """Where the pairs come from (an absolute path): with the judge, the default batch name."""
    rejects_path: Path | None = None
    convert: Callable[[Document], Document] | None = None
    constitution: str | None = None
    """Judge under this constitution's principles (its id)."""
    principles: int = 1
    provider_batch: ProviderBatchOptions | None = None
    """Go through the providers' batch APIs (--mode provider-batch) rather than live calls."""
    policy: TextPolicy | None = None
    """Identical responses and empty texts (default: the settings)."""
    gold_conflict: GoldConflict = "newest"
    """How lines of one pair whose human labels disagree make its gold label."""
    template: str | None = None
    """Judge with this template (id or ref) instead of the judge's own."""


@dataclass
class LabelSummary:
    batch_id: str = ""
    submitted: int = 0
    new: int = 0
    rejected: int = 0
    merged: int = 0
    """Lines repeating an earlier line's pair, stored and judged once."""
    ruled: int = 0
    """Pairs with identical responses stored as a tie by rule, no judge call."""
    progress: Progress = field(default_factory=Progress)
    status_counts: dict[str, int] = field(default_factory=dict)
    outcome_counts: dict[str, int] = field(default_factory=dict)
    released_leases: int = 0
    gold: GoldLedger = field(default_factory=GoldLedger)
    """The file's human labels: duplicates and disagreements, and how they were settled."""


@dataclass
class Estimate:
    pairs: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: Decimal | None = None
    batch_cost: Decimal | None = None
    """The same calls through the providers' batch APIs."""
    rejected: int = 0
    merged: int = 0
    ruled: int = 0
    stored: int = 0
    """Pairs of the file already judged: the real run reuses them and pays nothing."""
    gold: GoldLedger = field(default_factory=GoldLedger)
    """The file's human labels: merged lines and disagreements, settled as the real run would."""


def judge_config(labeler: Labeler, options: LabelOptions) -> PairJudgeConfig:
    """The judge or jury to label with; rate limits apply to each jury member."""
    config = labeler.with_limits(labeler.resolve_pairwise(options.judge), options.rpm, options.tpm)
    if options.template is not None:
        config = with_template(config, options.template)
    labeler.pairwise_judge_for(config)  # a missing key fails before any line is read
    return config


async def estimate(
    settings: Settings,
    stream: IO[bytes],
    source: str,
    options: LabelOptions,
    on_reject: Callable[[LineError], None] = lambda _error: None,
) -> Estimate:
    """Tokens and cost the run would spend: nothing is stored or sent.

    The lines go through the real run's reader and Screen (same rejects,
    same merged duplicates, same ties by rule), and pairs already judged
    are left out as the real run would reuse them.
    """
    from app.labeling.provider_batch import estimated_cost, with_prompt_cache

    result = Estimate(gold=GoldLedger(options.gold_conflict))
    # Input tokens of one call per pair, per member: both orders show the same texts, and
    # each member's template (routed by the pair's category) its own worked examples.
    per_call: list[int] = []
    async with runtime(settings) as labeler:
        config = judge_config(labeler, options)
        under = labeler.under(options.constitution, options.principles)
        # A jury's members each judge every pair, at their own prices.
        members = config.members if isinstance(config, JuryConfig) else (config,)
        calls_per_pair = [_calls_per_pair(labeler, member) for member in members]
        per_call = [0] * len(members)
        screen = Screen(labeler, config, source, under, options.policy)
        for chunk in chunks(screen(read_pairs(stream, source, options.convert)), 500):
            accepted = [item for item in chunk if isinstance(item, Accepted)]
            for item in chunk:
                if isinstance(item, LineError):
                    result.rejected += 1
                    on_reject(item)
            for item in accepted:
                result.gold.add(item.pair, item.line)
            fresh = [item for item in accepted if not item.duplicate]
            async with labeler.db.transaction() as session:
                found = await batches.existing_keys(session, [item.key for item in fresh])
            redo = {"pending", "failed"} if options.retry_failed else {"pending"}
            for item in fresh:
                if item.key in found and found[item.key] not in redo:
                    result.stored += 1
                elif item.decision == "tie":
                    result.ruled += 1
                else:
                    result.pairs += 1
                    shown = show(item.pair.to_pair(), Order.AB)
                    if under is not None:  # the constitution's examples, for templates showing them
                        shown = replace(shown, examples=under.constitution.preference_examples)
                    judged_by = item.config or config
                    judged = (
                        judged_by.members if isinstance(judged_by, JuryConfig) else (judged_by,)
                    )
                    for index, member in enumerate(judged):
                        per_call[index] += estimate_tokens(shown, 0, get_template(member.template))
        result.merged = screen.merged
        result.gold.settle()
    costs: list[Decimal | None] = []
    batch_costs: list[Decimal | None] = []
    for member, calls, tokens in zip(members, calls_per_pair, per_call, strict=True):
        usage = Usage(tokens * calls, result.pairs * calls * ESTIMATED_OUTPUT_TOKENS)
        usage = with_prompt_cache(member, usage, result.pairs * calls)
        result.cache_read_tokens += usage.cache_read_tokens
        result.cache_write_tokens += usage.cache_write_tokens
        batch_costs.append(estimated_cost(member, usage, result.pairs * calls, batch=True))
        result.calls += result.pairs * calls
        result.input_tokens += usage.input_tokens
        result.output_tokens += usage.output_tokens
        costs.append(estimated_cost(member, usage, result.pairs * calls))
    result.cost = _total(costs)
    result.batch_cost = _total(batch_costs)
    return result


def _calls_per_pair(labeler: Labeler, config: JudgeConfig) -> int:
    """Calls a judge makes per pair: one for a position-free judge (a reward model), else by
    its order policy. Whether it is position-free is known once it is built; one that cannot
    be built here (no key for a dry run) is taken at its order policy."""
    with contextlib.suppress(JudgeError):
        if labeler.judge_for(config).position_free:
            return 1
    return 2 if config.order == "both" else 1


def _total(costs: list[Decimal | None]) -> Decimal | None:
    return None if None in costs else sum((c for c in costs if c is not None), Decimal(0))


async def label_stream(
    settings: Settings,
    stream: IO[bytes],
    source: str,
    options: LabelOptions,
    progress_view: ProgressView,
    on_reject: Callable[[LineError], None],
) -> LabelSummary:
    """Enqueue a stream's pairs into a batch and judge what is pending in it."""
    summary = LabelSummary()
    async with runtime(settings) as labeler:
        config = judge_config(labeler, options)
        batch_config = None
        if options.provider_batch is not None:
            from app.labeling.provider_batch import check_mode

            batch_config = check_mode(config, labeler, options.constitution)
        under = labeler.under(options.constitution, options.principles)
        name = options.batch_name or f"{options.origin or source}|{config.label}"
        if options.template is not None and options.batch_name is None:
            name = f"{name}|{config.template}"
        if under is not None:
            name = f"{name}|{under.key}"
        async with labeler.db.transaction() as session:
            batch, _ = await batches.get_or_create(
                session, name, options.origin or source, config.label
            )
            if options.retry_failed:
                await batches.reset_failed(session, batch.id)
        summary.batch_id = str(batch.id)
        summary.released_leases = await release_dead_local_leases(labeler)
        rejects = RejectsFile(options.rejects_path)

        def reject(error: LineError) -> None:
            on_reject(error)
            rejects.write(error)

        summary.gold = GoldLedger(options.gold_conflict)
        feed = functools.partial(
            enqueue,
            labeler,
            batch.id,
            config,
            read_pairs(stream, source, options.convert),
            source,
            reject,
            under,
            options.policy,
            gold_ledger=summary.gold,
        )
        try:
            if batch_config is not None and options.provider_batch is not None:
                from app.labeling.provider_batch import run_submissions

                # A provider batch is submitted whole: the file is stored before it is.
                enqueued = await feed()
                async with labeler.db.transaction() as session:
                    pending = (await batches.status_counts(session, batch.id)).get("pending", 0)
                summary.progress = await run_submissions(
                    labeler, batch.id, batch_config, options.provider_batch, progress_view, pending
                )
            else:
                summary.progress, enqueued = await _judge_while_enqueueing(
                    labeler, batch.id, config, options, progress_view, feed
                )
        finally:
            rejects.close()
        summary.submitted, summary.new = enqueued.submitted, enqueued.new
        summary.rejected, summary.merged = enqueued.rejected, enqueued.merged
        summary.ruled = enqueued.ruled
        async with labeler.db.transaction() as session:
            summary.status_counts = await batches.status_counts(session, batch.id)
            summary.outcome_counts = await batches.outcome_counts(session, batch.id)
    return summary


Feed = Callable[..., Coroutine[Any, Any, EnqueueResult]]
"""``enqueue`` with the run's file and batch bound; takes ``on_stored``, ``halted`` and ``room``."""


def backlog_bound(concurrency: int) -> int:
    """Pending pairs a run lets pile up ahead of its judging: seconds of work, not the file."""
    return max(BACKLOG_PER_SLOT * concurrency, MIN_BACKLOG)


class Backlog:
    """Holds the feeder of ``referee label`` while the batch's pending pairs fill the bound.

    Reading a file is much faster than judging it: unbounded, a file of
    millions of lines was stored whole long before most of it was judged
    (and a killed run left it all pending). Pending rows are counted in the
    database once this run's own tally nears the bound (on the claim index:
    it costs as many rows as are pending), so pairs other processes judge
    free room too; the count is taken again after each write of the worker,
    or every RECOUNT_S. A worker that stops (a budget, Ctrl-C) or ends lets
    the rest through.
    """

    def __init__(self, labeler: Labeler, batch_id: uuid.UUID, worker: Worker, bound: int) -> None:
        self.labeler, self.batch_id, self.worker, self.bound = labeler, batch_id, worker, bound

    async def room(self, adding: int) -> None:
        """Return once ``adding`` more pending rows stay within the bound (or none is pending)."""
        # The first judged pair is about to be stored: a chunk's insert now would go first
        # (on SQLite, holding the one write lock in front of the first verdict).
        while self.worker.first_verdict_due and not self.worker.stopping:
            self.worker.written.clear()
            if self.worker.first_verdict_due:
                await self.worker.written.wait()
        progress = self.worker.progress
        # Pending before the run plus what it stored, less what it judged: the most that can
        # be pending unless another process stores into this batch too. Within the bound, no
        # count is needed (the file's first chunks are stored without one).
        if (progress.queued or 0) - progress.done + adding <= self.bound:
            return
        while not self.worker.stopping:
            self.worker.written.clear()  # before counting: a write meanwhile wakes the wait
            async with self.labeler.db.transaction() as session:
                pending = await batches.pending_count(session, self.batch_id)
            if pending == 0 or pending + adding <= self.bound:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.worker.written.wait(), RECOUNT_S)


async def _judge_while_enqueueing(
    labeler: Labeler,
    batch_id: uuid.UUID,
    config: PairJudgeConfig,
    options: LabelOptions,
    progress_view: ProgressView,
    feed: Feed,
) -> tuple[Progress, EnqueueResult]:
    """Judge the batch's pending pairs while the file is still being stored.

    The worker claims the first chunk as soon as it is committed and keeps
    going while the file is read, so a file of millions of lines shows
    verdicts within a second or two; the reading waits while the pending
    pairs fill :func:`backlog_bound` (:class:`Backlog`). Ctrl-C stops both between chunks;
    otherwise the whole file is stored even when judging stops early (a
    budget), as it was before judging started.
    """
    worker = Worker(
        labeler,
        WorkerOptions(concurrency=options.concurrency, max_cost=options.max_cost),
        batch_id,
    )
    worker.use(config)
    async with labeler.db.transaction() as session:
        pending = (await batches.status_counts(session, batch_id)).get("pending", 0)
    worker.progress.queued = pending  # left by an earlier run; grows as chunks are stored
    interrupted = asyncio.Event()

    def stored(new: int) -> None:
        worker.progress.queued = (worker.progress.queued or 0) + new
        worker.wake()

    def halted() -> bool:
        return interrupted.is_set() or worker.progress.stop_reason == "interrupted"

    def fed(task: asyncio.Task[EnqueueResult]) -> None:
        if not task.cancelled() and task.exception() is not None:
            worker.stop("the file could not be stored")
        worker.feeding(False)

    backlog = Backlog(labeler, batch_id, worker, backlog_bound(options.concurrency))
    worker.feeding(True)
    task = asyncio.create_task(feed(on_stored=stored, halted=halted, room=backlog.room))
    task.add_done_callback(fed)
    loop = asyncio.get_running_loop()
    try:
        with busy_collector():
            progress = await run_in_foreground(worker, progress_view, pending)
        # Judging ended first (a budget, a judge that cannot be built): the rest of the
        # file is still stored, unless Ctrl-C asks to stop now.
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
        return progress, await task
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
