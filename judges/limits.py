"""Client-side request and token rate limits, shared by every task using one judge.

:class:`RateLimits` is the process-local limiter: aiolimiter leaky buckets
kept small on purpose, since a bucket of a minute's quota would let a fresh
limiter burst it at once and trip the provider's own sliding-window limit.
Requests are spaced one at a time (60/rpm seconds apart); tokens use a
one-second bucket, since one request may be large.

:class:`FleetLimits` is the same budget shared by every process working on
one judge (see :func:`limit_key`): each request reserves the next slot of a
GCRA timeline kept in a :class:`BudgetStore` (PostgreSQL or Redis, built by
the app) and sleeps until it. Both honour a cool-down after a provider 429
(:meth:`RateLimits.cool_down`); the fleet one is seen by every process.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiolimiter import AsyncLimiter

if TYPE_CHECKING:
    from judges.config import JudgeConfig

# A 429 without a retry-after hint pauses the judge this long.
DEFAULT_COOL_DOWN_S = 1.0
# The longest cool-down honoured from a hint, whatever the provider says.
MAX_COOL_DOWN_S = 60.0
# Shared pacing runs this much under the configured rpm: requests leave
# processes with a few ms of jitter, and at exactly rpm a provider counting a
# sliding 60 s window sees one request too many whenever a request is later
# than the one 60/rpm * rpm slots after it. 1% leaves 0.6 s of slack.
FLEET_HEADROOM = 0.01
TOKEN_BUCKET_S = 1.0
# Slots a process may hold reserved ahead: a second's worth of requests (tpm
# alone: a few), so its own round trips never hold the fleet back.
RESERVE_AHEAD_S = 1.0
TOKENS_AHEAD = 4
# Clock reads of one reservation differ by this much at most.
PAUSE_SLACK_S = 0.001


def limit_key(config: JudgeConfig) -> str:
    """The identity a rate limit is kept under: provider, model and endpoint.

    A provider's quota is per organisation and model, so every judge (named
    or not, whatever its template or temperature) that reaches the same model
    at the same endpoint shares one budget. No API key goes in: the key is
    stored in the shared database or Redis, where secrets must never be.
    """
    return f"{config.provider}:{config.model}@{config.base_url or 'default'}"


def cool_down_seconds(retry_after: float | None) -> float:
    """How long a 429 pauses the judge: the provider's hint (capped) or a short default."""
    if retry_after is None:
        return DEFAULT_COOL_DOWN_S
    return min(max(float(retry_after), 0.0), MAX_COOL_DOWN_S)


class RateLimits:
    """Requests-per-minute and tokens-per-minute limits; ``None`` means unlimited.

    Process-local: on SQLite one process owns the database, so its tasks
    are the whole fleet.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self._requests = AsyncLimiter(1, 60.0 / rpm) if rpm else None
        self._tokens = AsyncLimiter(tpm / 60.0, 1.0) if tpm else None
        self._paused_until = 0.0  # time.monotonic() before which no request leaves

    async def acquire(self, estimated_tokens: int) -> None:
        """Wait until one more request of about ``estimated_tokens`` tokens fits both limits."""
        await self._wait_pause()
        if self._requests is not None:
            await self._requests.acquire()
        if self._tokens is not None:
            # A request larger than one second's budget is admitted when the
            # bucket is empty rather than never.
            await self._tokens.acquire(min(float(estimated_tokens), self._tokens.max_rate))

    @property
    def limited(self) -> bool:
        return self._requests is not None or self._tokens is not None

    async def cool_down(self, retry_after: float | None) -> None:
        """The provider answered 429: hold every task's next request for a while.

        Only a limited judge pauses; an unlimited one leaves each request's
        retries to back off alone (judges.retry), as they always have.
        """
        if self.limited:
            self._pause(cool_down_seconds(retry_after))

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    @property
    def paused_for(self) -> float:
        """Seconds this process still holds its requests after a 429 (zero when not paused)."""
        return max(0.0, self._paused_until - time.monotonic())

    async def _wait_pause(self) -> None:
        # A loop, not one sleep: another 429 may extend the pause meanwhile.
        while (wait := self._paused_until - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a store answers to a reservation, in the store's clock (seconds).

    ``requests_tat`` and ``tokens_tat`` are the timelines after this
    request's increments; ``paused_until`` the fleet's cool-down; ``now`` the
    store's time, so no two machines' clocks are compared.
    """

    requests_tat: float
    tokens_tat: float
    paused_until: float
    now: float


class BudgetStore(Protocol):
    """Where the fleet's timelines live: one short atomic step per call, no lock held between."""

    async def reserve(self, key: str, requests_s: float, tokens_s: float) -> Reservation:
        """Push both timelines past ``max(timeline, now, paused_until)`` by these increments."""

    async def pause(self, key: str, seconds: float) -> None:
        """Hold every process's next reservation until ``now + seconds`` (never shorter)."""


class FleetLimits(RateLimits):
    """rpm and tpm as one budget shared through ``store`` by every process using ``key``.

    GCRA with reservations: a request adds 60/rpm seconds to the requests
    timeline (and its tokens' share of a minute to the tokens timeline) and
    may leave at the timeline's old value (tokens: up to a one-second bucket
    early). One store call per request, no lock held between calls. A
    process keeps at most about a second of slots reserved ahead
    (:data:`RESERVE_AHEAD_S`), so the fleet's timeline never waits on one
    process's round trip, and a process that dies wastes at most that
    second. Every reply carries the fleet's cool-down: a task that wakes
    for a slot a 429 has since covered reserves again after the pause.
    """

    def __init__(
        self, store: BudgetStore, key: str, rpm: float | None = None, tpm: float | None = None
    ) -> None:
        super().__init__()
        self.store, self.key, self.rpm, self.tpm = store, key, rpm, tpm
        ahead = max(1, int(RESERVE_AHEAD_S * rpm / 60.0)) if rpm else TOKENS_AHEAD
        self._ahead = asyncio.Semaphore(ahead)

    def increments(self, estimated_tokens: int) -> tuple[float, float]:
        """Seconds of the requests and tokens timelines one request of this size takes."""
        requests_s = 60.0 / self.rpm * (1 + FLEET_HEADROOM) if self.rpm else 0.0
        tokens_s = 0.0
        if self.tpm:
            tokens_s = min(60.0 * estimated_tokens / self.tpm, TOKEN_BUCKET_S)
        return requests_s, tokens_s

    def delay(self, reservation: Reservation, requests_s: float) -> float:
        """Seconds from now until the reserved slot (zero when it is now)."""
        slot = reservation.paused_until
        if self.rpm:
            slot = max(slot, reservation.requests_tat - requests_s)
        if self.tpm:
            slot = max(slot, reservation.tokens_tat - TOKEN_BUCKET_S)
        return max(0.0, slot - reservation.now)

    async def acquire(self, estimated_tokens: int) -> None:
        requests_s, tokens_s = self.increments(estimated_tokens)
        async with self._ahead:
            while True:
                await self._wait_pause()
                reservation = await self.store.reserve(self.key, requests_s, tokens_s)
                now = time.monotonic()
                # The store's clock, read in ours: how long the fleet's pause still runs.
                paused = now + reservation.paused_until - reservation.now
                self._paused_until = max(self._paused_until, paused)
                slot = now + self.delay(reservation, requests_s)
                if slot > now:
                    await asyncio.sleep(slot - now)
                if self._paused_until <= slot + PAUSE_SLACK_S:
                    return
                # A 429 somewhere in the fleet since this slot was reserved covers it.

    @property
    def limited(self) -> bool:
        return bool(self.rpm or self.tpm)

    async def cool_down(self, retry_after: float | None) -> None:
        # The fleet first: once this process shows the pause, every process can see it.
        await self.store.pause(self.key, cool_down_seconds(retry_after))
        self._pause(cool_down_seconds(retry_after))
