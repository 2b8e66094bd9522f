"""The providers' batch APIs: the same judge requests, asynchronously, at half price.

A :class:`ProviderBatchAPI` builds each request body exactly as the live
call would send it (same prompt, same structured-output tool or schema),
submits many at once, reports whether the batch has ended, and reads its
results back into the same typed answers a live call gives, parsed by the
same code. Results come in any order; they are joined on ``custom_id``.

Both orders of a pair travel in the same submission. A request that did not
succeed at the provider (expired, cancelled, a transient error, or missing
from the results) is judged again through the normal live path, so nothing
is dropped; a permanent error is stored as the failure it is. A batch the
provider refused as a whole (:attr:`BatchState.failed`) is not judged live:
that would be every request of it at full price, so the caller reports it.
"""

from __future__ import annotations

import asyncio
import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol, runtime_checkable

from judges.base import Judge, RawAnswer
from judges.errors import JudgeConfigError, JudgeError, TransientJudgeError
from judges.protocol import call_with_retries, orders_for, outcome_of, show
from judges.types import CallRecord, Order, Pair, PairOutcome, ShownPair, Usage


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request of a batch: its id and the body the live path would send."""

    custom_id: str
    body: dict[str, Any]


class ResultKind(enum.StrEnum):
    """How the provider finished one request (Anthropic's names; OpenAI's map onto them)."""

    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    CANCELED = "canceled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One request's result: the parsed answer, or the error it ended in.

    A succeeded request whose answer cannot be parsed carries the parse
    error, as a live call would raise it.
    """

    custom_id: str
    kind: ResultKind
    raw: RawAnswer | None = None
    error: JudgeError | None = None

    @property
    def final(self) -> bool:
        """Whether this result stands; otherwise the request is judged again live."""
        if self.kind is ResultKind.SUCCEEDED:
            return True
        return self.kind is ResultKind.ERRORED and not isinstance(self.error, TransientJudgeError)


@dataclass(frozen=True, slots=True)
class BatchError:
    """One reason the provider gives for refusing a whole batch (OpenAI's ``errors.data``)."""

    code: str | None
    message: str
    line: int | None = None
    """The line of the input file it concerns, when the provider names one."""

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.code or 'error'}: {self.message}{where}"


@dataclass(frozen=True, slots=True)
class BatchState:
    """A submitted batch as the provider reports it.

    ``failed`` means the provider refused the batch as a whole (OpenAI's
    ``failed``: the input did not validate, or the organisation's enqueued
    token limit was reached): none of its requests ran and it has no results.
    """

    ended: bool
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    failed: bool = False
    errors: tuple[BatchError, ...] = ()


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """One request's result as the provider gave it, before any caller parses it.

    ``payload`` is the succeeded request's answer in the provider's own shape
    (an Anthropic ``Message``, an OpenAI chat completion); ``error`` is an
    errored request's error in our classes.
    """

    custom_id: str
    kind: ResultKind
    payload: Any = None
    error: JudgeError | None = None


class BatchTransport(ABC):
    """One provider's batch endpoints over an SDK client, whatever the requests ask.

    Judges (:class:`ProviderBatchAPI`) and policies
    (:mod:`judges.policies.batch`) build the request bodies and parse the
    answers; submitting, polling, reading results and cancelling are this.
    """

    max_requests: ClassVar[int]
    """The most requests one submission may hold."""
    max_bytes: ClassVar[int]
    """The largest submission, in bytes, the provider takes (a margin under its limit)."""

    @abstractmethod
    def request_bytes(self, request: BatchRequest) -> int:
        """What ``request`` adds to the size of a submission (at most, never less)."""

    @abstractmethod
    async def submit(self, requests: Sequence[BatchRequest]) -> str:
        """Create a batch of ``requests``; returns the provider's batch id."""

    @abstractmethod
    async def state(self, batch_id: str) -> BatchState:
        """Whether the batch has ended, and the provider's counts."""

    @abstractmethod
    def outcomes(self, batch_id: str) -> AsyncIterator[BatchOutcome]:
        """Every result of an ended batch, unparsed, in the provider's order."""

    @abstractmethod
    async def cancel(self, batch_id: str) -> None:
        """Ask the provider to stop the batch; finished requests keep their results."""


class ProviderBatchAPI(ABC):
    """One provider's batch API, bound to a configured judge (and its SDK client)."""

    max_requests: ClassVar[int]
    """The most requests one submission may hold."""
    max_bytes: ClassVar[int]
    """The largest submission, in bytes, the provider takes (a margin under its limit)."""

    def __init__(self, judge: Judge, transport: BatchTransport) -> None:
        self.judge = judge
        self.transport = transport

    @abstractmethod
    def pair_request(self, custom_id: str, shown: ShownPair) -> BatchRequest:
        """The request for one order of one pair, byte for byte what the live call sends."""

    @abstractmethod
    def parse(self, payload: Any) -> RawAnswer:
        """A succeeded request's answer, parsed as the live call parses it (or raises)."""

    def request_bytes(self, request: BatchRequest) -> int:
        """What ``request`` adds to the size of a submission (at most, never less)."""
        return self.transport.request_bytes(request)

    async def submit(self, requests: Sequence[BatchRequest]) -> str:
        """Create a batch of ``requests``; returns the provider's batch id."""
        return await self.transport.submit(requests)

    async def state(self, batch_id: str) -> BatchState:
        """Whether the batch has ended, and the provider's counts."""
        return await self.transport.state(batch_id)

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Every result of an ended batch, in the provider's order (not the requests')."""
        async for outcome in self.transport.outcomes(batch_id):
            if outcome.kind is not ResultKind.SUCCEEDED or outcome.error is not None:
                yield BatchResult(outcome.custom_id, outcome.kind, error=outcome.error)
                continue
            try:
                raw = self.parse(outcome.payload)
            except JudgeError as exc:
                yield BatchResult(outcome.custom_id, outcome.kind, error=exc)
                continue
            yield BatchResult(outcome.custom_id, outcome.kind, raw=raw)

    async def cancel(self, batch_id: str) -> None:
        """Ask the provider to stop the batch; finished requests keep their results."""
        await self.transport.cancel(batch_id)


@runtime_checkable
class SupportsProviderBatch(Protocol):
    """A judge whose provider has a batch API."""

    def provider_batch_api(self) -> ProviderBatchAPI:
        """The batch API for this judge's model and client."""


def batch_api_for(judge: Judge) -> ProviderBatchAPI:
    """The judge's batch API, or a config error naming the providers that have one."""
    if not isinstance(judge, SupportsProviderBatch):
        raise JudgeConfigError(
            f"{judge.provider} judges have no provider batch API "
            "(provider-batch mode works with anthropic: and openai: judges)"
        )
    if judge.config.base_url is not None and judge.provider == "openai":
        # Self-hosted compatible servers rarely implement /v1/batches.
        raise JudgeConfigError("provider-batch mode needs OpenAI itself, not a base_url server")
    return judge.provider_batch_api()


def custom_id(item_id: str, order: Order) -> str:
    """The request id of one order of one item (a-z, 0-9, ``-``: every provider accepts it)."""
    return f"{item_id}-{order.value}"


def pair_requests(api: ProviderBatchAPI, item_id: str, pair: Pair) -> list[BatchRequest]:
    """The requests for every order the judge's policy asks for, to travel together."""
    return [
        api.pair_request(custom_id(item_id, order), show(pair, order))
        for order in orders_for(api.judge, pair)
    ]


def submissions(
    items: Iterable[tuple[str, Pair]], api: ProviderBatchAPI
) -> Iterator[tuple[list[str], list[BatchRequest]]]:
    """Split items into submissions under the provider's request and size limits.

    Never splits a pair: both orders of an item travel in the same submission.
    """
    ids: list[str] = []
    requests: list[BatchRequest] = []
    size = 0
    for item_id, pair in items:
        mine = pair_requests(api, item_id, pair)
        mine_size = sum(api.request_bytes(r) for r in mine)
        too_many = len(requests) + len(mine) > api.max_requests
        if requests and (too_many or size + mine_size > api.max_bytes):
            yield ids, requests
            ids, requests, size = [], [], 0
        ids.append(item_id)
        requests.extend(mine)
        size += mine_size
    if requests:
        yield ids, requests


async def pair_outcome(
    judge: Judge,
    pair: Pair,
    results: Mapping[Order, BatchResult],
    *,
    parameters: Mapping[str, Any],
    latency_ms: float,
    slots: asyncio.Semaphore | None = None,
) -> PairOutcome:
    """Turn one pair's batch results into an outcome, judging live what the batch did not.

    ``parameters`` are added to the stored parameters of the batch calls
    (which batch they came from). The batch's attempt is attempt 1; a live
    retry's attempts follow it.
    """
    per_order = await asyncio.gather(
        *(
            _order_records(judge, pair, order, results.get(order), parameters, latency_ms, slots)
            for order in orders_for(judge, pair)
        )
    )
    return outcome_of(per_order)


async def _order_records(
    judge: Judge,
    pair: Pair,
    order: Order,
    result: BatchResult | None,
    parameters: Mapping[str, Any],
    latency_ms: float,
    slots: asyncio.Semaphore | None,
) -> list[CallRecord]:
    records = [] if result is None else [_record(judge, order, result, parameters, latency_ms)]
    if result is not None and result.final:
        return records
    live = await call_with_retries(judge, show(pair, order), order, slots=slots)
    return records + [replace(r, attempt=r.attempt + len(records)) for r in live]


def _record(
    judge: Judge,
    order: Order,
    result: BatchResult,
    parameters: Mapping[str, Any],
    latency_ms: float,
) -> CallRecord:
    config = judge.config
    common: dict[str, Any] = {
        "order": order,
        "attempt": 1,
        "model": config.model,
        "template_version": config.template,
        "parameters": {**config.parameters(), **parameters},
        "latency_ms": latency_ms,
    }
    if result.raw is not None:
        raw = result.raw
        return CallRecord(**common, raw_output=raw.raw_output, usage=raw.usage, answer=raw.answer)
    error = result.error
    if error is None:
        message = f"the provider batch request was {result.kind.value}"
        return CallRecord(
            **common,
            raw_output=None,
            usage=Usage(),
            error_class=result.kind.value,
            error_message=message,
        )
    return CallRecord(
        **common,
        raw_output=error.raw_output,
        usage=error.usage,
        error_class=error.error_class,
        error_message=error.message,
    )
