"""Group commit: the writes that arrive while one transaction runs share the next one.

A training step's completions come back from the judge together; each in
its own transaction would queue them one by one (SQLite has one writer), and
the step would wait for the queue. Jobs submitted while a transaction is
open wait and run together in the following one, so a burst costs a few
commits instead of one per item.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.store.db import Database

T = TypeVar("T")
Job = Callable[[AsyncSession], Awaitable[Any]]
log = logging.getLogger("referee")


class GroupWriter:
    """Runs write jobs in shared transactions; each caller gets its own job's result."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[tuple[Job, asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, job: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``job`` in a transaction shared with the jobs queued beside it."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((job, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        # shield: a caller that stops waiting must not cancel the others' transaction.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queue:
            jobs, self._queue = self._queue, []
            try:
                results = await self._together(jobs)
            except Exception:
                log.debug("a grouped write failed; running its %d jobs one by one", len(jobs))
                for job in jobs:
                    await self._alone(*job)
                continue
            for (_, future), result in zip(jobs, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _together(self, jobs: list[tuple[Job, asyncio.Future[Any]]]) -> list[Any]:
        async with self.db.transaction() as session:
            return [await job(session) for job, _ in jobs]

    async def _alone(self, job: Job, future: asyncio.Future[Any]) -> None:
        try:
            async with self.db.transaction() as session:
                result = await job(session)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    async def wait_idle(self) -> None:
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)
