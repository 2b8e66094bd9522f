"""``referee label``: a file of pairs → a batch → verdicts, resumable and budgeted."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO

from app.labeling.batch import Progress, enqueue, release_dead_local_leases
from app.labeling.compare import Labeler
from app.labeling.jsonl import LineError, read_pairs
from app.labeling.pricing import call_cost
from app.labeling.shapes import Document
from app.labeling.worker import Worker, WorkerOptions
from app.runtime import runtime
from app.settings import Settings
from app.store import batches
from judges import JudgeConfig, Order, show
from judges.protocol import estimate_tokens
from judges.types import Usage

ESTIMATED_OUTPUT_TOKENS = 150


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


@dataclass
class LabelSummary:
    batch_id: str = ""
    submitted: int = 0
    new: int = 0
    rejected: int = 0
    progress: Progress = field(default_factory=Progress)
    status_counts: dict[str, int] = field(default_factory=dict)
    outcome_counts: dict[str, int] = field(default_factory=dict)
    released_leases: int = 0


@dataclass
class Estimate:
    pairs: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal | None = None


ProgressView = Callable[[int], AbstractContextManager[Callable[[Progress], None]]]


def judge_config(labeler: Labeler, options: LabelOptions) -> JudgeConfig:
    config = labeler.resolve(options.judge)
    limits = {k: v for k, v in (("rpm", options.rpm), ("tpm", options.tpm)) if v}
    config = config.with_options(**limits) if limits else config
    labeler.judge_for(config)  # a missing key fails before any line is read
    return config


async def estimate(
    settings: Settings, stream: IO[str], source: str, options: LabelOptions
) -> tuple[Estimate, int]:
    """Tokens and cost the run would spend, from the pairs alone: nothing is stored or sent."""
    async with runtime(settings) as labeler:
        config = judge_config(labeler, options)
    result, rejected = Estimate(), 0
    orders = [Order.AB, Order.BA] if config.order == "both" else [Order.AB]
    for record in read_pairs(stream, source, options.convert):
        if isinstance(record, LineError):
            rejected += 1
            continue
        pair = record.pair.to_pair()
        result.pairs += 1
        for order in orders:
            result.calls += 1
            result.input_tokens += estimate_tokens(show(pair, order), 0)
            result.output_tokens += ESTIMATED_OUTPUT_TOKENS
    result.cost = call_cost(
        config.provider, config.model, Usage(result.input_tokens, result.output_tokens)
    )
    return result, rejected


class RejectsFile:
    """Writes rejected lines as JSONL, one per line as they come; the file is made on the first."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._out: IO[str] | None = None

    def write(self, error: LineError) -> None:
        if self.path is None:
            return
        if self._out is None:
            self._out = self.path.open("w", encoding="utf-8")
        record = {"line": error.line, "reason": error.reason, "text": error.text.rstrip("\n")}
        self._out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


async def label_stream(
    settings: Settings,
    stream: IO[str],
    source: str,
    options: LabelOptions,
    progress_view: ProgressView,
    on_reject: Callable[[LineError], None],
) -> LabelSummary:
    """Enqueue a stream's pairs into a batch and judge what is pending in it."""
    summary = LabelSummary()
    async with runtime(settings) as labeler:
        config = judge_config(labeler, options)
        under = labeler.under(options.constitution, options.principles)
        name = options.batch_name or f"{options.origin or source}|{config.label}"
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

        try:
            records = read_pairs(stream, source, options.convert)
            enqueued = await enqueue(labeler, batch.id, config, records, source, reject, under)
        finally:
            rejects.close()
        summary.submitted, summary.new = enqueued.submitted, enqueued.new
        summary.rejected = enqueued.rejected

        async with labeler.db.transaction() as session:
            pending = (await batches.status_counts(session, batch.id)).get("pending", 0)
        worker = Worker(
            labeler,
            WorkerOptions(concurrency=options.concurrency, max_cost=options.max_cost),
            batch.id,
        )
        worker.use(config)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, worker.stop, "interrupted")
        try:
            with progress_view(pending) as update:
                worker.on_progress = update
                summary.progress = await worker.run()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
        async with labeler.db.transaction() as session:
            summary.status_counts = await batches.status_counts(session, batch.id)
            summary.outcome_counts = await batches.outcome_counts(session, batch.id)
    return summary
