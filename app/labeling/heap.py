"""The cyclic garbage collector while hundreds of model calls are in flight.

The server, ``referee label``/``worker`` and ``referee generate`` keep a few
hundred calls' SDK objects alive for a call's latency. What the server
builds before it serves (modules, the app, the labeler's judges, engine and
templates: about 400,000 objects) lives as long as the process, yet each
full collection walked all of it again: tens of milliseconds in the middle
of requests. It is frozen (moved out of the collector's generations) once
startup is done. The youngest generation is collected after 50,000 new
objects instead of 700: a reward step keeps a few hundred judge calls'
objects alive for a second, and at 700 they were scanned and promoted again
and again (about 0.25 ms of CPU per completion scored, against 0.06 ms at
50,000). Both are undone at shutdown, so that an app made and dropped again
(in tests) can still be collected.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

SERVING_THRESHOLDS = (50_000, 20, 100)
"""The youngest generation is collected after 50,000 new objects, not Python's default 700."""


@contextmanager
def serving_collector() -> Iterator[None]:
    """Freeze what exists now, and collect less often, for the duration of the block."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@contextmanager
def busy_collector() -> Iterator[None]:
    """Collect less often (:data:`SERVING_THRESHOLDS`) for the duration of the block.

    For a command that judges or samples: what it built at start-up it has
    already frozen itself; this only spares the calls in flight from being
    scanned and promoted again and again. Restored afterwards.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(*SERVING_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
