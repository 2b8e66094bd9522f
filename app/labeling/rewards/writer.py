"""Group commit: what finishes while one write runs is stored together in the next.

A training step's completions come back from the judge together; each in
its own transaction would queue them one by one (SQLite has one writer), and
the step would wait for the queue. Entries submitted while a write is under
way wait and go together into the following one, in one transaction and a
few statements (``flush`` stores a list and returns one result per entry).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.store.db import Database

EntryT = TypeVar("EntryT")
ResultT = TypeVar("ResultT")
log = logging.getLogger("referee")


class GroupWriter(Generic[EntryT, ResultT]):
    """Stores entries in shared transactions; each caller gets its own entry's result."""

    def __init__(
        self,
        db: Database,
        flush: Callable[[AsyncSession, list[EntryT]], Awaitable[list[ResultT]]],
    ) -> None:
        self.db = db
        self.flush = flush
        self._queue: list[tuple[EntryT, asyncio.Future[ResultT]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, entry: EntryT) -> ResultT:
        """Store ``entry`` with the entries queued beside it; its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._queue.append((entry, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        # shield: a caller that stops waiting must not cancel the others' transaction.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queue:
            group, self._queue = self._queue, []
            try:
                results = await self._write([entry for entry, _ in group])
            except Exception:
                log.debug("a grouped write failed; writing its %d entries one by one", len(group))
                for entry, future in group:
                    await self._alone(entry, future)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _write(self, entries: list[EntryT]) -> list[ResultT]:
        async with self.db.transaction() as session:
            return await self.flush(session, entries)

    async def _alone(self, entry: EntryT, future: asyncio.Future[ResultT]) -> None:
        try:
            [result] = await self._write([entry])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)
