"""Provider-batch mode for generations: pending samples through the providers' batch APIs.

Pending samples are claimed under a submitting lease, planned into requests
as a live run plans them (OpenAI: a prompt's samples in one request with
``n``; Anthropic: one request a sample) and submitted as one provider batch.
The moment the provider accepts it, the samples' lease passes to
``provider-batch:<submitted at>:<provider batch id>`` for longer than a
provider keeps a batch, so a killed run started again polls that batch
instead of submitting again, and no live run takes the samples meanwhile.
Ended batches' results join back on ``custom_id`` and are stored through
the live run's writer (same rows, same provenance, batch-API prices,
latency from submission to collection). A request the provider did not
answer with a sample (errored, expired, cancelled, missing) is stored as
the failure it is; ``--retry-failed`` draws it again. A batch the provider
refused as a whole gives its samples back to the queue and the run ends
with an error naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from itertools import groupby

from app.errors import BadRequestError, JudgeUnavailableError, ProviderBatchFailedError
from app.labeling.provider_batch import MAX_CLAIM, REFUSED_HINT, ProviderBatchOptions
from app.labeling.rounds.generate import GenerationProgress, Generator, stored_prompt
from app.observability.logs import observed_generation_run
from app.store import generation as store
from judges.errors import JudgeError, TransientJudgeError
from judges.policies.base import PlannedRequest, Policy, RequestOutcome, plan_requests, request_seed
from judges.policies.batch import DrawResult, PolicyBatchAPI, parse_request_id
from judges.provider_batch import BatchRequest, BatchState
from judges.types import Usage

SUBMITTING = "provider-batch-submitting:"
SUBMITTED = "provider-batch:"
# Longer than a provider keeps a batch (24 hours): no run takes the samples meanwhile.
SUBMISSION_LEASE = timedelta(hours=25)
RESULT_CHUNK = 500

Drawn = tuple[tuple[store.ClaimedSample, ...], RequestOutcome]


def submitted_owner(provider_batch_id: str, at: float | None = None) -> str:
    """The lease owner of a submitted batch's samples: when it was submitted, and its id."""
    return f"{SUBMITTED}{int(at if at is not None else time.time())}:{provider_batch_id}"


def parse_owner(owner: str) -> tuple[float, str]:
    """The submission time and provider batch id a :func:`submitted_owner` names."""
    at, provider_batch_id = owner.removeprefix(SUBMITTED).split(":", 1)
    return float(at), provider_batch_id


def check_policy(policy: Policy) -> PolicyBatchAPI:
    """The policy's batch API; a clear error, before anything is read, if it has none."""
    try:
        return PolicyBatchAPI(policy)
    except JudgeError as exc:
        raise BadRequestError(exc.message) from None


class GenerationBatchRun:
    """Submits a generation's pending samples, polls the batches, stores their samples."""

    def __init__(self, generator: Generator, options: ProviderBatchOptions) -> None:
        self.generator = generator
        self.db, self.policy = generator.db, generator.policy
        self.generation_id = generator.generation_id
        self.options = options
        self.api = check_policy(generator.policy)
        self._stopped = asyncio.Event()
        self.refused: list[str] = []

    @property
    def progress(self) -> GenerationProgress:
        return self.generator.progress

    @property
    def on_progress(self) -> Callable[[GenerationProgress], None]:
        return self.generator.on_progress

    @on_progress.setter
    def on_progress(self, update: Callable[[GenerationProgress], None]) -> None:
        self.generator.on_progress = update

    def stop(self, reason: str) -> None:
        """Stop polling; submitted batches stay at the provider and the next run collects them."""
        if not self._stopped.is_set():
            self.progress.stop_reason = reason
            self._stopped.set()

    @observed_generation_run
    async def run(self) -> GenerationProgress:
        started = time.perf_counter()
        try:
            async with self.db.transaction() as session:
                # A run killed between claiming and the provider's answer: submit those again.
                orphans = await store.generation_lease_owners(
                    session, self.generation_id, SUBMITTING
                )
                await store.release(session, orphans)
                # A run back after the lease ran out: the samples are still the batches'.
                for owner in await store.generation_lease_owners(
                    session, self.generation_id, SUBMITTED
                ):
                    await store.move_lease(session, owner, owner, SUBMISSION_LEASE)
            await self._submit_pending()
            await self._poll_until_collected()
        finally:
            self.progress.elapsed_s = time.perf_counter() - started
        return self.progress

    # ------------------------------------------------------------ submitting

    async def _submit_pending(self) -> None:
        transport = self.api.transport
        limit = min(self.options.max_requests or transport.max_requests, MAX_CLAIM)
        while not self._stopped.is_set():
            owner = f"{SUBMITTING}{uuid.uuid4().hex}"
            async with self.db.transaction() as session:
                claimed = await store.claim(
                    session, self.generation_id, owner, limit, SUBMISSION_LEASE
                )
            if not claimed:
                return
            await self._submit(owner, claimed)

    def _requests(self, claimed: list[store.ClaimedSample]) -> list[tuple[BatchRequest, list[int]]]:
        """The requests a live run would make for these samples, with the samples of each."""
        generator, planned = self.generator, []
        for prompt_id, group in groupby(claimed, key=lambda c: c.prompt_id):
            samples = {c.sample_index: c for c in group}
            prompt = stored_prompt(next(iter(samples.values())).prompt)
            for plan in plan_requests(list(samples), self.policy):
                seed = request_seed(generator.seed, plan, self.policy)
                request = self.api.request(prompt_id.hex, prompt, plan, generator.params, seed)
                ids = [samples[plan.first_index + k].sample_id for k in range(plan.n)]
                planned.append((request, ids))
        return planned

    async def _submit(self, owner: str, claimed: list[store.ClaimedSample]) -> None:
        transport = self.api.transport
        try:
            planned = self._requests(claimed)
            sent: list[BatchRequest] = []
            size = 0
            for request, _ids in planned:
                size += transport.request_bytes(request)
                if sent and size > transport.max_bytes:
                    break
                sent.append(request)
            rest = [i for _request, ids in planned[len(sent) :] for i in ids]
            if rest:  # over the size limit: back to the queue for the next submission
                async with self.db.transaction() as session:
                    await store.take_ownership(session, owner, rest)
            provider_batch_id = await transport.submit(sent)
        except BaseException as exc:
            async with self.db.transaction() as session:
                await store.release(session, [owner])
            if isinstance(exc, JudgeError):
                raise JudgeUnavailableError(
                    f"the {self.policy.config.provider} batch API refused the submission: "
                    f"{exc.message}"
                ) from None
            raise
        async with self.db.transaction() as session:
            await store.move_lease(
                session, owner, submitted_owner(provider_batch_id), SUBMISSION_LEASE
            )

    # --------------------------------------------------------------- polling

    async def _poll_until_collected(self) -> None:
        while not self._stopped.is_set():
            async with self.db.transaction() as session:
                owners = await store.generation_lease_owners(session, self.generation_id, SUBMITTED)
            if not owners:
                break
            for owner in owners:
                if self._stopped.is_set():
                    break
                await self._poll(owner)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.options.poll_seconds)
        if self.refused:
            raise ProviderBatchFailedError("\n".join([*self.refused, REFUSED_HINT]))

    async def _poll(self, owner: str) -> None:
        submitted_at, provider_batch_id = parse_owner(owner)
        provider = self.policy.config.provider
        results: dict[str, DrawResult] = {}
        try:
            state = await self.api.transport.state(provider_batch_id)
            if state.ended and not state.failed:
                async for result in self.api.results(provider_batch_id):
                    results[result.custom_id] = result
        except TransientJudgeError:
            return  # poll (and read the results) again next round
        except JudgeError as exc:
            raise JudgeUnavailableError(
                f"cannot read {provider} batch {provider_batch_id}: {exc.message}"
            ) from None
        if state.failed:
            await self._refused(owner, provider_batch_id, state)
        elif state.ended:
            latency_ms = max(0.0, time.time() - submitted_at) * 1000
            await self._collect(owner, provider_batch_id, results, latency_ms)

    async def _refused(self, owner: str, provider_batch_id: str, state: BatchState) -> None:
        """The provider refused the batch as a whole: its samples go back to pending, unsampled."""
        async with self.db.transaction() as session:
            given_back = await store.release(session, [owner])
        reasons = "; ".join(str(e) for e in state.errors) or "the provider gave no reason"
        self.refused.append(
            f"{self.policy.config.provider} batch {provider_batch_id} failed as a whole "
            f"({given_back} samples, none drawn, pending again): {reasons}"
        )

    async def _collect(
        self,
        owner: str,
        provider_batch_id: str,
        results: dict[str, DrawResult],
        latency_ms: float,
    ) -> None:
        async with self.db.transaction() as session:
            leased = await store.leased_to(session, owner)
        by_index = {(c.prompt_id.hex, c.sample_index): c for c in leased}
        drawn: list[Drawn] = []
        covered: set[int] = set()
        for custom_id, result in results.items():
            key, plan = parse_request_id(custom_id)
            chosen = [by_index.get((key, plan.first_index + k)) for k in range(plan.n)]
            samples = tuple(c for c in chosen if c is not None)
            if len(samples) != plan.n or covered & {c.sample_id for c in samples}:
                continue  # not this batch's samples any more (stored, or taken over)
            covered.update(c.sample_id for c in samples)
            drawn.append((samples, self._outcome(plan, result, latency_ms)))
        missing = [c for c in leased if c.sample_id not in covered]
        for sample in missing:
            plan = PlannedRequest(sample.sample_index, 1)
            seed = request_seed(self.generator.seed, plan, self.policy)
            message = "the provider batch returned no result for this sample's request"
            gone = RequestOutcome(plan, seed, None, 1, latency_ms, Usage(), "missing", message)
            drawn.append(((sample,), gone))
        for start in range(0, len(drawn), RESULT_CHUNK):
            await self.generator.write_outcomes(owner, drawn[start : start + RESULT_CHUNK])

    def _outcome(
        self, plan: PlannedRequest, result: DrawResult, latency_ms: float
    ) -> RequestOutcome:
        seed = request_seed(self.generator.seed, plan, self.policy)
        if result.draw is not None:
            draw = result.draw
            return RequestOutcome(plan, seed, draw, 1, latency_ms, draw.usage)
        error = result.error
        if error is not None:
            return RequestOutcome(
                plan, seed, None, 1, latency_ms, error.usage, error.error_class, error.message
            )
        message = f"the provider batch request was {result.kind.value}"
        kind = result.kind.value
        return RequestOutcome(plan, seed, None, 1, latency_ms, Usage(), kind, message)
