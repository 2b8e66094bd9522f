"""``referee generate``: a prompts file → a generation → candidates, resumable and budgeted."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING

from app.labeling.jsonl import LineError, RejectsFile, read_records
from app.labeling.pricing import call_cost
from app.labeling.rounds.generate import GenerationProgress, Generator, GeneratorOptions
from app.labeling.rounds.generation_jobs import (
    EnqueueCounts,
    GenerationPromptIn,
    GenerationSpec,
    PromptScreen,
    add_prompts,
    build_policy,
    finish,
    open_generation,
    policy_settings,
    sample,
)
from app.labeling.runtime import ensure_schema
from app.settings import Settings
from app.store import generation as store
from app.store.db import Database
from judges.policies.base import PROMPT_OVERHEAD_TOKENS
from judges.policies.registry import PolicyFactory, capabilities
from judges.prompts import render_text
from judges.types import Usage

if TYPE_CHECKING:
    from app.labeling.provider_batch import ProviderBatchOptions
    from app.labeling.rounds.generation_batch import GenerationBatchRun

GenerationView = Callable[[int], AbstractContextManager[Callable[[GenerationProgress], None]]]
"""Draws a run's progress: given the samples pending, a context yielding the update callback."""


@dataclass
class GenerateOptions:
    concurrency: int = 32
    max_cost: Decimal | None = None
    retry_failed: bool = False
    rejects_path: Path | None = None
    origin: str | None = None
    """Where the prompts come from (an absolute path): part of the default generation name."""
    extra_policies: dict[str, PolicyFactory] | None = None
    """Providers besides the built-in ones (tests register in-process policies)."""
    provider_batch: ProviderBatchOptions | None = None
    """Sample through the providers' batch APIs (``--mode provider-batch``); None: live."""


@dataclass
class GenerateSummary:
    generation_id: str = ""
    name: str = ""
    submitted: int = 0
    new: int = 0
    rejected: int = 0
    merged: int = 0
    progress: GenerationProgress = field(default_factory=GenerationProgress)
    status_counts: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    """Distinct texts stored over the generation's prompts."""


@dataclass
class GenerateEstimate:
    prompts: int = 0
    samples: int = 0
    requests: int = 0
    input_tokens: int = 0
    max_output_tokens: int = 0
    """Every sample at ``max_tokens``: the cost below is an upper bound."""
    cost: Decimal | None = None
    batch: bool = False
    """The cost is at the providers' batch-API rates (``--mode provider-batch``)."""
    rejected: int = 0
    merged: int = 0
    stored: int = 0
    """Samples of the file's prompts already drawn by this generation: not drawn again."""


async def estimate(
    settings: Settings,
    stream: IO[bytes],
    source: str,
    spec: GenerationSpec,
    options: GenerateOptions,
    on_reject: Callable[[LineError], None] = lambda _error: None,
) -> GenerateEstimate:
    """Requests, tokens and (at most) the cost a run would spend: nothing stored or sent.

    The lines go through the real run's reader and checks (same rejects,
    same merged repeats); samples the generation already holds are left out.
    """
    config = policy_settings(spec)
    native_n, max_n = capabilities(config.provider, options.extra_policies)
    result = GenerateEstimate()
    screen = PromptScreen(source, settings.max_text_chars)
    await ensure_schema(settings)
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            existing = await store.get_by_name(
                session, spec.name or spec.default_name(options.origin or source)
            )
            done = await store.drawn_by_prompt_key(session, existing.id) if existing else {}
        for item in read_records(stream, source, GenerationPromptIn):
            row = screen.check(item)
            if isinstance(row, LineError):
                result.rejected += 1
                on_reject(row)
                continue
            if not row:
                continue
            drawn = done.get(row["prompt_key"], 0)
            result.stored += drawn
            if drawn >= spec.n:
                continue
            result.prompts += 1
            result.samples += spec.n - drawn
            requests = math.ceil((spec.n - drawn) / max_n) if native_n else spec.n - drawn
            result.requests += requests
            tokens = len(render_text(_text(row["prompt"]))) // 4 + PROMPT_OVERHEAD_TOKENS
            result.input_tokens += requests * tokens
        result.merged = screen.merged
    finally:
        await db.dispose()
    result.max_output_tokens = result.samples * spec.max_tokens
    if config.provider in ("openai", "anthropic"):
        usage = Usage(input_tokens=result.input_tokens, output_tokens=result.max_output_tokens)
        result.batch = options.provider_batch is not None
        result.cost = call_cost(config.provider, config.model, usage, batch=result.batch)
    return result


def _text(prompt: object) -> str:
    from app.labeling.rounds.generate import stored_prompt

    return render_text(stored_prompt(prompt))


async def generate_stream(
    settings: Settings,
    stream: IO[bytes],
    source: str,
    spec: GenerationSpec,
    options: GenerateOptions,
    progress_view: GenerationView,
    on_reject: Callable[[LineError], None],
) -> GenerateSummary:
    """Store a stream's prompts in a generation and draw what is pending in it."""
    config = policy_settings(spec)
    policy = build_policy(config, options.extra_policies)  # a missing key fails before reading
    if options.provider_batch is not None:
        # Imported here: provider-batch mode's imports (both SDKs) would slow every start-up.
        from app.labeling.rounds.generation_batch import GenerationBatchRun, check_policy

        try:
            check_policy(policy)
        except BaseException:
            await policy.aclose()
            raise
    summary = GenerateSummary()
    await ensure_schema(settings)
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    try:
        generation = await open_generation(db, spec, config, options.origin or source)
        summary.generation_id, summary.name = str(generation.id), generation.name
        generator = await sample(
            db,
            generation,
            policy,
            GeneratorOptions(
                concurrency=options.concurrency,
                max_cost=options.max_cost,
                batch_prices=options.provider_batch is not None,
            ),
            retry_failed=options.retry_failed,
        )
        async with db.transaction() as session:  # left by an earlier run
            generator.progress.total = (await store.status_counts(session, generation.id)).get(
                "pending", 0
            )
        rejects = RejectsFile(options.rejects_path)

        def reject(error: LineError) -> None:
            on_reject(error)
            rejects.write(error)

        async def store_prompts() -> EnqueueCounts:
            try:
                records = read_records(stream, source, GenerationPromptIn)
                screen = PromptScreen(source, settings.max_text_chars)
                return await add_prompts(
                    db,
                    generation,
                    records,
                    screen,
                    reject,
                    on_chunk=lambda new: generator.prompts_added(new * generation.n),
                )
            except BaseException:
                generator.stop("the prompts could not be read to the end")
                raise
            finally:
                rejects.close()
                generator.prompts_done()

        runner: Generator | GenerationBatchRun = generator
        if options.provider_batch is not None:
            # A provider batch is made of what is pending once: every prompt stored first.
            counts = await store_prompts()
            runner = GenerationBatchRun(generator, options.provider_batch)
            summary.progress = await _in_foreground(runner, progress_view, generator)
        else:
            # Live: sampling starts on the first stored chunk while the rest is read.
            generator.expect_prompts()
            storing = asyncio.create_task(store_prompts())
            try:
                summary.progress = await _in_foreground(runner, progress_view, generator)
            finally:
                if not storing.done():  # sampling failed: stop reading (stored chunks stay)
                    storing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await storing
            counts = await storing
        summary.submitted, summary.new = counts.submitted, counts.new
        summary.rejected, summary.merged = counts.rejected, counts.merged
        summary.status_counts = await finish(db, generation)
        async with db.transaction() as session:
            summary.candidates = await store.candidate_count(session, generation.id)
    finally:
        await policy.aclose()
        await db.dispose()
    return summary


async def _in_foreground(
    runner: Generator | GenerationBatchRun, progress_view: GenerationView, generator: Generator
) -> GenerationProgress:
    """Run with its progress drawn; Ctrl-C stops it cleanly (what is stored stays stored)."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, runner.stop, "interrupted")
    try:
        with progress_view(generator.progress.total) as update:
            runner.on_progress = update
            return await runner.run()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
