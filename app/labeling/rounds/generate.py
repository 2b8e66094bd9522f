"""Sampling a generation's pending samples: claim → draw → store, resumable and budgeted.

The unit of work is one (generation, prompt, sample index) row. Rows are
claimed in chunks under a lease that a heartbeat renews; a prompt's claimed
indexes are drawn in as few requests as the policy allows (OpenAI's native
``n``: one request; Anthropic: one request each); finished requests go to
one writer task that stores their samples in small transactions, after
checking the lease is still held. A killed run loses only the requests in
flight: the next run claims their rows again once the lease is gone, and
never samples a stored index twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from itertools import groupby
from typing import Any

from app.labeling.batch import worker_id
from app.labeling.gathering import WAIT_S, gathered
from app.labeling.pricing import call_cost
from app.observability import metrics
from app.observability.logs import observed_generation_run
from app.store import generation as store
from app.store.db import Database
from judges.policies.base import (
    PlannedRequest,
    Policy,
    RequestOutcome,
    SamplingParams,
    draw_with_retries,
    plan_requests,
    request_seed,
    usage_shares,
)
from judges.types import Message, Text, Usage

WRITE_SAMPLES = 2048
"""Samples stored in one transaction at most (their ids are bound in one IN list)."""
WRITE_WAIT_S = WAIT_S
"""How long a finished request waits for others to be stored with it."""
COST_QUANTUM = Decimal("1e-8")
"""Costs are stored to the cent's millionth (Numeric(14, 8))."""
PRICED_PROVIDERS = frozenset({"openai", "anthropic"})
BUFFERED = 2
"""Requests claimed per request slot: one in flight, one waiting for the slot."""


@dataclass
class GenerationProgress:
    """What a run has sampled so far; the CLI draws it, the API reports it."""

    done: int = 0
    """Samples stored (succeeded or failed)."""
    sampled: int = 0
    failed: int = 0
    requests: int = 0
    discarded: int = 0
    """Samples whose lease another worker took over: their late results are dropped."""
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)
    failures: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None
    elapsed_s: float = 0.0
    total: int = 0
    """Samples this run has to draw, as far as known: it grows while prompts are still stored."""


@dataclass
class GeneratorOptions:
    concurrency: int = 16
    """Requests in flight at once."""
    lease_seconds: float = 120.0
    max_cost: Decimal | None = None
    poll_seconds: float = 1.0
    batch_prices: bool = False
    """Price requests at the providers' batch-API rates (provider-batch mode)."""


@dataclass(frozen=True, slots=True)
class _Drawn:
    """A finished request and the claimed samples it was for, waiting for the writer."""

    samples: tuple[store.ClaimedSample, ...]
    outcome: RequestOutcome
    cost: Decimal | None
    """The request's cost (None: unpriced), shared over its samples when stored."""


def _sample_count(drawn: _Drawn) -> int:
    return len(drawn.samples)


class Generator:
    """Works off one generation's pending samples with one policy."""

    def __init__(
        self,
        db: Database,
        policy: Policy,
        generation_id: uuid.UUID,
        n: int,
        params: SamplingParams,
        seed: int | None,
        options: GeneratorOptions,
        on_progress: Callable[[GenerationProgress], None] = lambda _p: None,
    ) -> None:
        self.db, self.policy, self.generation_id = db, policy, generation_id
        self.params, self.seed, self.options = params, seed, options
        self.on_progress = on_progress
        self.owner = worker_id()
        self.progress = GenerationProgress()
        self._lease = timedelta(seconds=options.lease_seconds)
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._leased: dict[int, tuple[int, ...]] = {}
        self._results: asyncio.Queue[_Drawn | None] = asyncio.Queue()
        self._unwritten = 0
        """Finished requests not yet stored: their samples still read as pending."""
        self._written = asyncio.Event()
        self._writer_failed = False
        self._feeding = False
        self._fed = asyncio.Event()
        self._slots = asyncio.Semaphore(options.concurrency)
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._next_task = 0
        # Claim about one request's samples per free slot, so what is claimed can be sent
        # at once and a stop (--max-cost) overshoots by the requests in flight at most.
        self._claim_size = min(n, policy.max_n) if policy.native_n else 1
        self._prices: tuple[Decimal, Decimal] | None = None
        self._spent = Decimal(0)
        """What the finished requests cost, stored or still waiting for the writer."""

    def expect_prompts(self) -> None:
        """Prompts are still being stored: an empty queue means "wait", not "done"."""
        self._feeding = True

    def prompts_added(self, samples: int) -> None:
        """A chunk of prompts with ``samples`` pending samples is stored: claim them."""
        self.progress.total += samples
        self._fed.set()
        self._slot_freed.set()

    def prompts_done(self) -> None:
        """Every prompt is stored (or storing them stopped): the queue is complete."""
        self._feeding = False
        self._fed.set()
        self._slot_freed.set()

    def stop(self, reason: str) -> None:
        """Claim nothing more; requests in flight finish and are stored."""
        if not self._stopping:
            self._stopping = True
            self.progress.stop_reason = reason

    @observed_generation_run
    async def run(self) -> GenerationProgress:
        started = time.perf_counter()
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
            heartbeat.cancel()
            try:
                await writer
            finally:
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
                await asyncio.shield(self._release())
                self.progress.elapsed_s = time.perf_counter() - started
        return self.progress

    async def _release(self) -> None:
        async with self.db.transaction() as session:
            await store.release(session, [self.owner])

    async def _claim_loop(self) -> None:
        concurrency = self.options.concurrency
        while not self._stopping:
            # Up to twice as many requests as slots: the next ones wait, claimed, for a
            # slot to free up, so a finished request is replaced without a database turn.
            room = BUFFERED * concurrency - len(self._in_flight)
            claimed: list[store.ClaimedSample] = []
            # Refill once a quarter of the slots' worth is gone: the claimed requests still
            # waiting keep every slot busy meanwhile, and fewer claims cost fewer transactions.
            if room >= max(1, concurrency // 4) or not self._in_flight:
                self._fed.clear()
                async with self.db.transaction() as session:
                    claimed = await store.claim(
                        session,
                        self.generation_id,
                        self.owner,
                        room * self._claim_size,
                        self._lease,
                    )
                self._start(claimed)
            if not claimed and not self._in_flight and self._feeding:
                await self._fed.wait()  # the next chunk of prompts, or the end of them
                continue
            if not claimed and not self._in_flight:
                # Our own finished requests still read as pending until the writer stores
                # them: wait for it, or the run would take them for another worker's.
                await self._all_written()
                if not await self._others_hold_work():
                    return
                await asyncio.sleep(self.options.poll_seconds)
                continue
            if self._in_flight:
                self._slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), self.options.poll_seconds)

    def _start(self, claimed: list[store.ClaimedSample]) -> None:
        """One task per planned request: a prompt's claimed indexes, grouped."""
        for _, group in groupby(claimed, key=lambda c: c.prompt_id):
            samples = {c.sample_index: c for c in group}
            for plan in plan_requests(list(samples), self.policy):
                chosen = tuple(samples[plan.first_index + k] for k in range(plan.n))
                key = self._next_task
                self._next_task += 1
                task = asyncio.create_task(self._draw(chosen, plan))
                self._in_flight[key] = task
                self._leased[key] = tuple(c.sample_id for c in chosen)
                task.add_done_callback(functools.partial(self._forget, key))

    def _forget(self, key: int, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(key, None)
        self._leased.pop(key, None)
        self._slot_freed.set()

    async def _others_hold_work(self) -> bool:
        """Pending samples leased by other workers: wait for them (they may die and release)."""
        async with self.db.transaction() as session:
            counts = await store.status_counts(session, self.generation_id)
        return counts.get("pending", 0) > 0

    async def _draw(self, samples: tuple[store.ClaimedSample, ...], plan: PlannedRequest) -> None:
        prompt = stored_prompt(samples[0].prompt)
        seed = request_seed(self.seed, plan, self.policy)
        outcome = await draw_with_retries(
            self.policy,
            prompt,
            plan,
            self.params,
            seed,
            slots=self._slots,
            proceed=lambda: not self._stopping,
        )
        if outcome is not None:  # None: stopped before it was sent; the samples stay pending
            cost = self._request_cost(outcome.usage)
            metrics.count_generation(self.policy.config, outcome, cost, self._request_cost)
            # The budget counts a request once it is answered, not once it is stored:
            # results wait a moment to be stored together, and claimed requests must
            # not be sent meanwhile.
            self._spent += cost or Decimal(0)
            max_cost = self.options.max_cost
            if max_cost is not None and self._spent >= max_cost:
                self.stop(f"budget of ${max_cost} reached")
            self._unwritten += 1
            self._results.put_nowait(_Drawn(samples, outcome, cost))

    async def _all_written(self) -> None:
        while self._unwritten and not self._writer_failed:
            self._written.clear()
            await self._written.wait()

    async def _write_loop(self) -> None:
        try:
            await self._write_all()
        except BaseException:
            self._writer_failed = True
            self._written.set()
            self.stop("storing samples failed")
            raise

    async def _write_all(self) -> None:
        async for drawn in gathered(
            self._results, limit=WRITE_SAMPLES, weight=_sample_count, wait_s=WRITE_WAIT_S
        ):
            await self._write(drawn)
            self._unwritten -= len(drawn)
            self._written.set()

    async def write_outcomes(
        self, owner: str, drawn: list[tuple[tuple[store.ClaimedSample, ...], RequestOutcome]]
    ) -> None:
        """Store finished requests' samples that ``owner`` still leases (provider-batch mode)."""
        for _samples, outcome in drawn:  # a provider batch's result: one call each
            metrics.count_generation(
                self.policy.config, outcome, self._request_cost(outcome.usage), self._request_cost
            )
        await self._write(
            [
                _Drawn(samples, outcome, self._request_cost(outcome.usage))
                for samples, outcome in drawn
            ],
            owner,
        )

    async def _write(self, items: list[_Drawn], owner: str | None = None) -> None:
        if not items:
            return
        rows = [row for item in items for row in self._rows(item)]
        owner = owner or self.owner
        async with self.db.transaction() as session:
            owned = await store.take_ownership(session, owner, [r.sample_id for r in rows])
            kept = [r for r in rows if r.sample_id in owned]
            await store.write_samples(session, self.generation_id, kept)
        self.progress.discarded += len(rows) - len(kept)
        self._count(items, kept)
        self.on_progress(self.progress)

    def _rows(self, item: _Drawn) -> list[store.SampleResult]:
        """One stored row per sample: its text and its share of the request, or the error."""
        outcome, config = item.outcome, self.policy.config
        request_id = uuid.uuid4().hex
        draw = outcome.draw
        if draw is None:
            shares = usage_shares(outcome.usage, [None] * len(item.samples))
            costs = self._costs(item.cost, shares)
            return [
                _failed(c.sample_id, request_id, outcome, share, cost)
                for c, share, cost in zip(item.samples, shares, costs, strict=True)
            ]
        seed = draw.seed if draw.seed is not None else outcome.seed
        shares = usage_shares(outcome.usage, [c.text for c in draw.choices])
        costs = self._costs(item.cost, shares)
        return [
            store.SampleResult(
                sample_id=sample.sample_id,
                text=choice.text,
                request_id=request_id,
                seed=seed,
                model=draw.model or config.model,
                finish_reason=choice.finish_reason,
                input_tokens=share.input_tokens,
                output_tokens=share.output_tokens,
                cost_usd=cost,
                latency_ms=outcome.latency_ms,
                attempts=outcome.attempts,
                error_class=choice.error_class,
                error_message=choice.error_message,
                prompt_id=sample.prompt_id,
                trace_id=outcome.trace_id,
            )
            for sample, choice, share, cost in zip(
                item.samples, draw.choices, shares, costs, strict=True
            )
        ]

    def _request_cost(self, usage: Usage) -> Decimal | None:
        """A request's cost to the stored precision (None: unpriced); one price lookup."""
        cost = self._cost(usage)
        return cost.quantize(COST_QUANTUM) if cost is not None else None

    def _costs(self, cost: Decimal | None, shares: list[Usage]) -> list[Decimal | None]:
        """The request's exact cost, shared over its samples by their tokens at unit prices.

        The shares add up to the request's cost exactly.
        """
        if cost is None:
            return [None] * len(shares)
        rate_in, rate_out = self._unit_prices()
        weights = [
            (s.input_tokens + s.cache_read_tokens + s.cache_write_tokens) * rate_in
            + s.output_tokens * rate_out
            for s in shares
        ]
        total = sum(weights, Decimal(0))
        if not total:
            return [cost, *(Decimal(0) for _ in shares[1:])]
        parts = [(cost * w / total).quantize(COST_QUANTUM) for w in weights]
        parts[0] += cost - sum(parts, Decimal(0))
        return list(parts)

    def _cost(self, usage: Usage) -> Decimal | None:
        config = self.policy.config
        if config.provider not in PRICED_PROVIDERS:
            return None  # in process: no price
        return call_cost(config.provider, config.model, usage, batch=self.options.batch_prices)

    def _unit_prices(self) -> tuple[Decimal, Decimal]:
        """USD per input and per output token (at a million tokens each), looked up once."""
        if self._prices is None:
            per_input = self._cost(Usage(input_tokens=1_000_000)) or Decimal(0)
            per_output = self._cost(Usage(output_tokens=1_000_000)) or Decimal(0)
            self._prices = (per_input / 1_000_000, per_output / 1_000_000)
        return self._prices

    def _count(self, items: list[_Drawn], kept: list[store.SampleResult]) -> None:
        p = self.progress
        p.requests += len(items)
        for row in kept:
            p.done += 1
            p.input_tokens += row.input_tokens
            p.output_tokens += row.output_tokens
            p.cost += row.cost_usd or Decimal(0)
            if row.text is None:
                p.failed += 1
                key = row.error_class or "unknown"
                p.failures[key] = p.failures.get(key, 0) + 1
            else:
                p.sampled += 1
        if self.options.max_cost is not None and p.cost >= self.options.max_cost:
            self.stop(f"budget of ${self.options.max_cost} reached")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.lease_seconds / 3)
            ids = [sample_id for ids in self._leased.values() for sample_id in ids]
            if ids:
                async with self.db.transaction() as session:
                    await store.renew(session, self.owner, ids, self._lease)


def _failed(
    sample_id: int, request_id: str, outcome: RequestOutcome, usage: Usage, cost: Decimal | None
) -> store.SampleResult:
    return store.SampleResult(
        sample_id=sample_id,
        text=None,
        request_id=request_id,
        seed=outcome.seed,
        model=None,
        finish_reason=None,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=cost,
        latency_ms=outcome.latency_ms,
        attempts=outcome.attempts,
        error_class=outcome.error_class,
        error_message=outcome.error_message,
        trace_id=outcome.trace_id,
    )


def stored_prompt(stored: Any) -> Text:
    """A stored prompt (checked when it came in) as the policy's input: a string or turns."""
    if isinstance(stored, str):
        return stored
    return tuple(Message(m["role"], m["content"]) for m in stored)
