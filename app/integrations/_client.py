"""A small client for Referee's ``POST /v1/rewards``, sync and async, needing only httpx.

Batches go out in chunks of ``batch_size`` items, several chunks at a time;
the scores come back in input order, ``None`` where the server answered
``null`` (the item failed, or the request's deadline passed). A 429 (or a
503 with ``Retry-After``) waits the seconds the server asks and sends the
same chunk again, with the same idempotency key (the server never counts a
retried batch twice); a dropped connection or a 502 / 504 is retried with
exponential backoff. Any other error answer raises
:class:`RewardRequestError` with the server's error code and message.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

API_KEY_ENV = "REFEREE_API_KEY"
REWARDS_PATH = "/v1/rewards"
RETRY_AFTER_STATUSES = frozenset({429, 503})
GATEWAY_STATUSES = frozenset({502, 504})
# The server answers by its deadline; the connection gets this much longer
# before the client gives up on it (then retries).
DEADLINE_MARGIN_S = 30.0


class RewardServiceError(Exception):
    """The reward service could not give scores for a batch."""


class RewardRequestError(RewardServiceError):
    """The server refused the request (bad input, access, …): retrying will not help."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"Referee answered {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class RewardServiceUnavailable(RewardServiceError):
    """The server stayed busy or unreachable for longer than the retry budget."""


@dataclass(frozen=True)
class RewardItem:
    """One completion to score: the prompt it answers, and an optional reference answer."""

    prompt: Any
    completion: Any
    reference: Any = None
    metadata: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": self.prompt, "completion": self.completion}
        if self.reference is not None:
            body["reference"] = self.reference
        if self.metadata:
            body["metadata"] = dict(self.metadata)
        return body


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying: backoff for dropped connections, a total wait budget."""

    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_wait_s: float = 600.0
    """Total time spent waiting between attempts of one chunk before giving up."""

    def backoff(self, attempt: int) -> float:
        return float(min(self.max_backoff_s, self.backoff_s * 2**attempt))


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), if valid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def parse_scores(response: httpx.Response, expected: int) -> list[float | None]:
    """The ``scores`` of a 200 answer, checked: one float or null per item sent."""
    try:
        body = response.json()
    except ValueError as exc:
        raise RewardServiceError(f"Referee answered {response.status_code} without JSON") from exc
    scores = body.get("scores") if isinstance(body, dict) else None
    if not isinstance(scores, list) or len(scores) != expected:
        raise RewardServiceError(f"Referee's answer has no list of {expected} scores")
    if not all(_is_score(s) for s in scores):
        raise RewardServiceError("Referee's answer has a score that is neither a number nor null")
    return [None if s is None else float(s) for s in scores]


def _is_score(value: object) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def request_error(response: httpx.Response) -> RewardRequestError:
    """The server's error body ``{"error": {"code", "message"}}`` as an exception."""
    code, message = "error", response.text[:500]
    try:
        error = response.json().get("error")
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, AttributeError, KeyError, TypeError):
        pass
    return RewardRequestError(response.status_code, code, message)


@dataclass
class _Attempts:
    """One chunk's retry state: which failures to retry, and how long to wait."""

    policy: RetryPolicy
    waited_s: float = 0.0
    attempt: int = 0
    last_problem: str = ""

    def wait_after(self, response: httpx.Response | None, problem: str) -> float:
        """Seconds to wait before the next attempt; raises when the budget is spent."""
        asked = None
        if response is not None and response.status_code in RETRY_AFTER_STATUSES:
            asked = retry_after_s(response.headers.get("retry-after"))
        delay = asked if asked is not None else self.policy.backoff(self.attempt)
        self.attempt += 1
        self.last_problem = problem
        if self.waited_s + delay > self.policy.max_wait_s:
            raise RewardServiceUnavailable(
                f"gave up after {self.attempt} attempts and {self.waited_s:.0f} s of waiting "
                f"(last: {problem}); RetryPolicy.max_wait_s is {self.policy.max_wait_s:.0f} s"
            )
        self.waited_s += delay
        return delay

    def outcome(self, response: httpx.Response, expected: int) -> list[float | None] | float:
        """Scores for a final answer, or the seconds to wait before retrying this one."""
        if response.status_code == 200:
            return parse_scores(response, expected)
        if is_transient(response):
            return self.wait_after(response, f"HTTP {response.status_code}")
        raise request_error(response)


def is_transient(response: httpx.Response) -> bool:
    """A 429, a 503 that says when to come back, or a gateway's 502/504: worth retrying.

    A 503 without Retry-After (the server has no key for the judge) is not.
    """
    status = response.status_code
    if status == 503:
        return "retry-after" in response.headers
    return status == 429 or status in GATEWAY_STATUSES


def _chunks(items: Sequence[RewardItem], size: int) -> Iterator[Sequence[RewardItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class RewardsClient:
    """Scores batches of completions with ``POST /v1/rewards`` on one Referee server.

    ``api_key`` defaults to the ``REFEREE_API_KEY`` environment variable and is
    sent as ``Authorization: Bearer …``; a key needs the ``label`` scope.
    ``deadline_s`` is forwarded as the request's ``timeout_s``: items not
    scored by then come back ``None``. One instance may be shared by threads;
    the async methods keep one connection pool per event loop.
    """

    base_url: str
    api_key: str | None = None
    deadline_s: float | None = None
    batch_size: int = 64
    max_concurrency: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    transport: httpx.BaseTransport | None = None
    async_transport: httpx.AsyncBaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _sync: httpx.Client | None = field(default=None, init=False, repr=False)
    _async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = field(
        default_factory=weakref.WeakKeyDictionary, init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_concurrency < 1:
            raise ValueError("batch_size and max_concurrency must be at least 1")
        self.base_url = self.base_url.rstrip("/")
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV) or None

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (TRL and verl may ship reward functions to other processes): no pools."""
        state = dict(self.__dict__)
        state.update(_sync=None, _async=None, _lock=None, transport=None, async_transport=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._async = weakref.WeakKeyDictionary()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _timeout(self) -> httpx.Timeout:
        read = (self.deadline_s or 300.0) + DEADLINE_MARGIN_S
        return httpx.Timeout(read, connect=10.0)

    def _body(self, scorer: Mapping[str, Any], chunk: Sequence[RewardItem]) -> dict[str, Any]:
        """One chunk's request, sent as is on every retry: its idempotency key names it, so
        a retry after a lost answer finds the rows the first attempt stored."""
        body: dict[str, Any] = {
            "scorer": dict(scorer),
            "items": [i.to_json() for i in chunk],
            "idempotency_key": uuid.uuid4().hex,
        }
        if self.deadline_s is not None:
            body["timeout_s"] = self.deadline_s
        return body

    # --- sync ---------------------------------------------------------------

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._sync is None:
                self._sync = httpx.Client(
                    base_url=self.base_url,
                    headers=self._headers(),
                    timeout=self._timeout(),
                    transport=self.transport,
                    limits=httpx.Limits(max_connections=self.max_concurrency),
                )
            return self._sync

    def score(self, scorer: Mapping[str, Any], items: Sequence[RewardItem]) -> list[float | None]:
        """One score (or None) per item, in order; chunks go out on a few threads."""
        chunks = list(_chunks(items, self.batch_size))
        if len(chunks) <= 1:
            return [s for chunk in chunks for s in self._score_chunk(scorer, chunk)]
        with ThreadPoolExecutor(min(self.max_concurrency, len(chunks))) as pool:
            results = pool.map(lambda chunk: self._score_chunk(scorer, chunk), chunks)
            return [s for result in results for s in result]

    def _score_chunk(
        self, scorer: Mapping[str, Any], chunk: Sequence[RewardItem]
    ) -> list[float | None]:
        attempts = _Attempts(self.retry)
        body = self._body(scorer, chunk)
        while True:
            try:
                response = self._client().post(REWARDS_PATH, json=body)
            except httpx.TransportError as exc:
                self.sleep(attempts.wait_after(None, f"{type(exc).__name__}: {exc}"))
                continue
            outcome = attempts.outcome(response, len(chunk))
            if isinstance(outcome, list):
                return outcome
            self.sleep(outcome)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    # --- async --------------------------------------------------------------

    def _aclient(self) -> httpx.AsyncClient:
        """The pool of the running event loop (an httpx pool is bound to one loop)."""
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None or client.is_closed:
            client = self._async[loop] = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers(),
                timeout=self._timeout(),
                transport=self.async_transport,
                limits=httpx.Limits(max_connections=self.max_concurrency),
            )
        return client

    async def ascore(
        self, scorer: Mapping[str, Any], items: Sequence[RewardItem]
    ) -> list[float | None]:
        """One score (or None) per item, in order; up to ``max_concurrency`` chunks at once."""
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(chunk: Sequence[RewardItem]) -> list[float | None]:
            async with gate:
                return await self._ascore_chunk(scorer, chunk)

        results = await asyncio.gather(*(one(c) for c in _chunks(items, self.batch_size)))
        return [s for result in results for s in result]

    async def _ascore_chunk(
        self, scorer: Mapping[str, Any], chunk: Sequence[RewardItem]
    ) -> list[float | None]:
        attempts = _Attempts(self.retry)
        body = self._body(scorer, chunk)
        while True:
            try:
                response = await self._aclient().post(REWARDS_PATH, json=body)
            except httpx.TransportError as exc:
                await self.asleep(attempts.wait_after(None, f"{type(exc).__name__}: {exc}"))
                continue
            outcome = attempts.outcome(response, len(chunk))
            if isinstance(outcome, list):
                return outcome
            await self.asleep(outcome)

    async def aclose(self) -> None:
        """Close the running loop's pool."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
