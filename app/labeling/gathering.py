"""Finished results stored in batches: what finishes within a short wait shares one transaction.

The label worker and generation both hand finished work to one writer task
through a queue. A transaction per result costs more than the work itself
once hundreds are in flight, and a ``wait_for`` per result costs a timer
each; so the writer takes one result, sleeps once, and drains what arrived
meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")
WAIT_S = 0.1
"""How long a finished result waits for others to be stored with it."""


def _one(_item: object) -> int:
    return 1


async def gathered(
    results: asyncio.Queue[T | None],
    *,
    limit: int,
    weight: Callable[[T], int] = _one,
    first_at_once: bool = False,
    wait_s: float = WAIT_S,
) -> AsyncIterator[list[T]]:
    """Batches of ``results`` (each at most ``limit`` by ``weight``, past its first item).

    A ``None`` in the queue ends it, after the batch holding it (which may be
    empty). ``first_at_once``: the first batch is not held for the wait, so
    the first result is stored as soon as it is there.
    """
    first = True
    while True:
        head = await results.get()
        if head is not None and not (first and first_at_once):
            await asyncio.sleep(wait_s)
        first = False
        items = [head]
        size = 0 if head is None else weight(head)
        while size < limit and not results.empty():
            item = results.get_nowait()
            items.append(item)
            size += 0 if item is None else weight(item)
        yield [item for item in items if item is not None]
        if None in items:
            return
