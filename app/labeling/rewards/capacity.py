"""Shared judge capacity for reward requests: bounded in flight, bounded queue, 429 beyond.

Every reward request of the process draws on one pool of ``in_flight``
slots (a slot is held only while the judge is being called), so concurrent
training workers share the judge instead of each opening its own flood.
Items admitted but not finished are bounded by ``queued``: a request that
would pass it is refused at once with 429 and a Retry-After estimated from
the work ahead, never left to time out. A local reward model's micro-batcher
gathers the items in flight into forward passes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.errors import TooManyRequestsError


class DeadlinePassed(Exception):
    """The request's deadline passed before the item got a slot: it was never sent."""


class Capacity:
    """The process's slots for judge calls, and its admission bound."""

    def __init__(self, in_flight: int, queued: int) -> None:
        self.in_flight = in_flight
        self.max_queued = queued
        self.pending = 0
        self.latency_s = 1.0
        """Moving average of how long an item holds a slot: the Retry-After estimate."""
        self._slots: asyncio.Semaphore | None = None

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:  # made in the loop that serves the requests
            self._slots = asyncio.Semaphore(self.in_flight)
        return self._slots

    def admit(self, items: int) -> None:
        """Count ``items`` in, or refuse the request (429) when the queue would overflow.

        An idle service admits any request the item bound allows, so no
        request is refused forever.
        """
        if items and self.pending and self.pending + items > self.max_queued:
            raise TooManyRequestsError(
                f"the reward queue is full ({self.pending} items waiting or in flight, at most"
                f" {self.max_queued}: REFEREE_REWARD_MAX_QUEUED); retry later",
                retry_after_s=self.retry_after(),
                queued=self.pending,
                max_queued=self.max_queued,
            )
        self.pending += items

    def finished(self) -> None:
        self.pending -= 1

    def retry_after(self) -> int:
        """Seconds until the work ahead should have drained at the current pace."""
        return max(1, math.ceil(self.latency_s * self.pending / self.in_flight))

    @asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[None]:
        """A slot, awaited until ``deadline`` (loop time) at most; DeadlinePassed after."""
        try:
            async with asyncio.timeout_at(deadline):
                await self.slots.acquire()
        except TimeoutError:
            raise DeadlinePassed from None
        started = time.monotonic()
        try:
            yield
        finally:
            self.slots.release()
            self.latency_s = 0.9 * self.latency_s + 0.1 * (time.monotonic() - started)
