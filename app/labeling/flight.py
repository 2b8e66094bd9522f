"""Single flight: identical work in flight in this process runs once, and its callers share it.

Twenty identical requests arriving together would otherwise each pay for
the same judgment. The first caller starts the work as a task of its own;
the others wait for that task. A waiter that is cancelled (a client that
hung up) leaves the work running for the rest, and a failure reaches every
waiter as the same exception: nothing is invented for anyone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, TypeAlias, TypeVar

T = TypeVar("T")
Work: TypeAlias = Callable[[], Coroutine[Any, Any, T]]
log = logging.getLogger("referee")


class SingleFlight:
    """Runs at most one task per key at a time; callers with the same key share its result.

    Keys should name the kind of work too (``("rating", label_key)``): one
    instance serves every use case of a labeler.
    """

    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Task[Any]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    async def run(self, key: Hashable, work: Work[T]) -> tuple[T, bool]:
        """The work's result, and whether this caller started it (False: it joined)."""
        task = self._tasks.get(key)
        started = task is None
        if task is None:
            task = asyncio.get_running_loop().create_task(work())
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # shield: cancelling this caller must not cancel the work the others wait for.
        return await asyncio.shield(task), started

    def _finished(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so a failure nobody waits for any more is not reported
            # as "never retrieved"; the waiters still get it raised.
            log.debug("shared work %r failed: %r", key, task.exception())

    async def wait_idle(self) -> None:
        """Wait for the work in flight (whose callers may all have gone) to finish."""
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
