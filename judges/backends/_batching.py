"""A micro-batcher: concurrent awaits gathered into one call that runs in a worker thread.

A model in process is fastest when it reads many sequences per forward
pass, but judges are called one pair at a time by many tasks. Each call
puts its item on a queue and awaits a future; one consumer task takes
up to ``max_size`` items (waiting at most ``max_wait_s`` for a batch to
fill) and runs them with :func:`asyncio.to_thread`, so the event loop
stays free while the model works.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

_Entry = tuple[ItemT, "asyncio.Future[ResultT]"]


class MicroBatcher(Generic[ItemT, ResultT]):
    """Gathers concurrent :meth:`submit` calls into batches for ``run``.

    ``run`` receives a list of items and returns one result per item, in
    order; a result that is an exception is raised to that item's caller
    alone. An exception raised by ``run`` itself reaches every caller of
    the batch.
    """

    def __init__(
        self,
        run: Callable[[list[ItemT]], Sequence[ResultT | BaseException]],
        max_size: int,
        max_wait_s: float = 0.005,
    ) -> None:
        self._run = run
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Entry[ItemT, ResultT]] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: ItemT) -> ResultT:
        """Queue ``item`` and wait for its result."""
        queue = self._queue_for_this_loop()
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        await queue.put((item, future))
        return await future

    async def aclose(self) -> None:
        """Stop the consumer; callers still waiting for a result are cancelled."""
        consumer, queue, loop = self._consumer, self._queue, self._loop
        self._consumer, self._queue, self._loop = None, None, None
        if consumer is None or queue is None or loop is not asyncio.get_running_loop():
            return  # a consumer of a finished loop went with it
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        while not queue.empty():
            _, future = queue.get_nowait()
            future.cancel()

    def _queue_for_this_loop(self) -> asyncio.Queue[_Entry[ItemT, ResultT]]:
        # One judge may outlive an event loop (a CLI command and a test each
        # run their own): the queue and its consumer belong to the current loop.
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:
            self._queue, self._loop = asyncio.Queue(), loop
            self._consumer = loop.create_task(self._consume(self._queue))
        return self._queue

    async def _consume(self, queue: asyncio.Queue[_Entry[ItemT, ResultT]]) -> None:
        while True:
            batch: list[_Entry[ItemT, ResultT]] = []
            try:
                await self._next_batch(queue, batch)
                await self._settle([(item, f) for item, f in batch if not f.done()])
            except asyncio.CancelledError:
                for _, future in batch:  # taken off the queue: nobody else will answer them
                    future.cancel()
                raise

    async def _settle(self, live: list[_Entry[ItemT, ResultT]]) -> None:
        """Run one batch in a worker thread and hand each caller its result."""
        if not live:
            return
        try:
            results = await asyncio.to_thread(self._run, [item for item, _ in live])
        except Exception as exc:  # handed to every caller of the batch, not swallowed
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(live, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _next_batch(
        self, queue: asyncio.Queue[_Entry[ItemT, ResultT]], batch: list[_Entry[ItemT, ResultT]]
    ) -> None:
        """Fill ``batch``: the first waiting item, then what else comes within ``max_wait_s``."""
        batch.append(await queue.get())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_size:
            try:
                batch.append(queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
