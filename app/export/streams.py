"""Exports served by a long-running process: one bounded engine and a cap on exports in flight.

An export holds two connections and a read transaction for as long as its
client takes to read it. A server therefore streams at most
``max_concurrent`` exports, on one shared engine whose pool holds exactly
their connections and never overflows; one more request is refused (429)
before it touches the database. The HTTP layer cuts off a client that
stops reading (``idle_timeout_s``), which closes the export and frees its
slot.
"""

from __future__ import annotations

import math
import threading

from app.errors import TooManyRequestsError
from app.export.options import ExportOptions
from app.export.run import ExportLines, stream_jsonl
from app.store.exports import CONNECTIONS_PER_EXPORT, ReadEngine, read_engine


class Slot:
    """One claimed export slot; ``release`` may be called any number of times, from any thread."""

    def __init__(self, streams: ExportStreams) -> None:
        self._streams: ExportStreams | None = streams
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            streams, self._streams = self._streams, None
        if streams is not None:
            streams._free()


class ExportStreams:
    """The exports a server is streaming, on its shared read engine."""

    def __init__(self, engine: ReadEngine, *, max_concurrent: int, idle_timeout_s: float) -> None:
        self.engine = engine
        self.max_concurrent = max_concurrent
        self.idle_timeout_s = idle_timeout_s
        self._active = 0
        # Slots are released from worker threads (an export closed there).
        self._lock = threading.Lock()

    @classmethod
    def start(
        cls, database_url: str, *, max_concurrent: int, idle_timeout_s: float
    ) -> ExportStreams:
        pool_size = CONNECTIONS_PER_EXPORT * max_concurrent
        engine = read_engine(database_url, pool_size=pool_size)
        return cls(engine, max_concurrent=max_concurrent, idle_timeout_s=idle_timeout_s)

    @property
    def active(self) -> int:
        return self._active

    def claim(self) -> Slot:
        """A slot for one export, or 429 when all are taken (no database work either way)."""
        with self._lock:
            if self._active >= self.max_concurrent:
                raise TooManyRequestsError(
                    f"{self.max_concurrent} exports are already streaming, the most this "
                    "server serves at once (REFEREE_MAX_CONCURRENT_EXPORTS); retry later",
                    # A stalled reader's slot frees within the idle timeout.
                    retry_after_s=math.ceil(self.idle_timeout_s),
                    limit=self.max_concurrent,
                )
            self._active += 1
        return Slot(self)

    def _free(self) -> None:
        with self._lock:
            self._active -= 1

    def open(self, options: ExportOptions, slot: Slot, *, allow_empty: bool) -> ExportLines:
        """Start an export in ``slot``, freed when its lines are closed or it fails to start."""
        try:
            lines = stream_jsonl(self.engine, options, allow_empty=allow_empty)
        except BaseException:
            slot.release()
            raise
        lines.on_close(slot.release)
        return lines

    def close(self) -> None:
        self.engine.dispose()
