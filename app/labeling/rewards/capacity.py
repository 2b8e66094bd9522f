"""Shared judge capacity for reward requests: bounded in flight, bounded queue, 429 beyond.

Every reward request of the process draws on one pool of ``in_flight``
slots (a slot is held only while the judge is being called), so concurrent
training workers share the judge instead of each opening its own flood.
Items admitted but not finished are bounded by ``queued``: a request that
would pass it is refused at once with 429 and a Retry-After estimated from
the work ahead, never left to time out. A local reward model's micro-batcher
gathers the items in flight into forward passes.

Sends come first. While items wait for a slot, the judge is the bottleneck
and every millisecond of the one event loop's CPU spent elsewhere delays the
next call: an item leaving its slot, and a request about to store its rows,
first wait (``after_sends``) until no item is waiting for a slot, so that
storing and answering run while the calls are out instead of between them.
The wait is bounded (``MAX_DEFER_S``, and the caller's deadline), so under
a queue that never empties the bookkeeping still runs, only later. A
request with nothing to judge (every item cached) does not wait.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.errors import TooManyRequestsError

MAX_DEFER_S = 0.25
"""How long bookkeeping waits at most for the items waiting for a slot to be sent."""
STORE_RESERVE_S = 0.1
"""An item's bookkeeping stops deferring this long before its request's deadline."""


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
        self.waiting = 0
        """Items waiting for a slot: while there are any, sends come first."""
        self._sent: asyncio.Event | None = None

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

    def withdraw(self, items: int) -> None:
        """Count out ``items`` admitted but never started (their request was cancelled)."""
        self.pending -= items

    def retry_after(self) -> int:
        """Seconds until the work ahead should have drained at the current pace."""
        return max(1, math.ceil(self.latency_s * self.pending / self.in_flight))

    @property
    def sent(self) -> asyncio.Event:
        """Set while no item waits for a slot."""
        if self._sent is None:  # made in the loop that serves the requests
            self._sent = asyncio.Event()
            self._sent.set()
        return self._sent

    async def after_sends(self, deadline: float) -> None:
        """Return once no item waits for a slot, or at ``MAX_DEFER_S`` or ``deadline`` (loop time).

        For work that is not a judge call (storing, answering): the calls
        waiting for a slot freed a moment ago are sent before it runs.
        """
        # One turn of the loop at least: the item woken by a slot just released sends first.
        await asyncio.sleep(0)
        if self.sent.is_set():
            return
        until = min(asyncio.get_running_loop().time() + MAX_DEFER_S, deadline)
        try:
            async with asyncio.timeout_at(until):
                await self.sent.wait()
        except TimeoutError:
            pass

    @asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[None]:
        """A slot, awaited until ``deadline`` (loop time) at most; DeadlinePassed after.

        Leaving it normally, the caller's next steps (storing the result) wait
        for the items waiting for a slot to be sent (``after_sends``).
        """
        self.waiting += 1
        self.sent.clear()
        try:
            async with asyncio.timeout_at(deadline):
                await self.slots.acquire()
        except TimeoutError:
            raise DeadlinePassed from None
        finally:
            self.waiting -= 1
            if not self.waiting:
                self.sent.set()
        started = time.monotonic()
        try:
            yield
        finally:
            self.slots.release()
            self.latency_s = 0.9 * self.latency_s + 0.1 * (time.monotonic() - started)
        await self.after_sends(deadline - STORE_RESERVE_S)
