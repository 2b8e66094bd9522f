"""Serving the metrics: the text a scrape gets, on the API or on a port of its own.

A scrape reads the process's counters and histograms (or, when
``PROMETHEUS_MULTIPROC_DIR`` is set because the server runs several
processes, every process's files) plus one number read from the database at
that moment: the pending pairs per judge. That query is async and belongs
to the event loop that owns the database, while prometheus_client renders
in a thread, so the collector hands it to the loop and waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterator, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from app.observability.metrics import VOCABULARY

log = logging.getLogger("referee.metrics")

PendingSource = Callable[[], Awaitable[Mapping[str, int]]]
"""Pending pairs per judge label, read from the database."""

CONTENT_TYPE = CONTENT_TYPE_LATEST
PENDING_TIMEOUT_S = 5.0


class _Forward(Collector):
    """The metrics of another registry (the process's, or the multiprocess files')."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


class PendingPairs(Collector):
    """``referee_pending_pairs``: pairs waiting to be judged, per judge, read at scrape time."""

    def __init__(self, source: PendingSource, loop: asyncio.AbstractEventLoop) -> None:
        self.source = source
        self.loop = loop

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "referee_pending_pairs",
            "Pairs queued for judging and not judged yet, per judge (read at scrape time).",
            labels=["judge"],
        )
        future = asyncio.run_coroutine_threadsafe(self._read(), self.loop)
        try:
            counts = future.result(PENDING_TIMEOUT_S)
        except Exception as exc:  # logged, not raised: the scrape serves every other metric
            future.cancel()
            log.warning("pending pairs not read for the metrics: %r", exc)
            return
        folded = Tally[str]()
        for judge, count in counts.items():
            folded[VOCABULARY.judge(judge)] += count
        for judge, count in sorted(folded.items()):
            family.add_metric([judge], count)
        yield family

    async def _read(self) -> Mapping[str, int]:
        return await self.source()


def process_registry() -> CollectorRegistry:
    """This process's metrics, or every server process's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
        return registry
    return REGISTRY


class Exposition:
    """What one endpoint serves: the process's metrics and the pending pairs of its database."""

    def __init__(self, pending: PendingSource | None, loop: asyncio.AbstractEventLoop) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Forward(process_registry()))
        if pending is not None:
            self.registry.register(PendingPairs(pending, loop))
        self._server: WSGIServer | None = None

    async def render(self) -> bytes:
        """The text format, rendered off the loop (the pending-pairs read runs on it)."""
        return await asyncio.to_thread(generate_latest, self.registry)

    def serve(self, host: str, port: int) -> None:
        """Serve on ``host:port`` from a thread until :meth:`close` (any path, no key)."""
        self._server, _thread = start_http_server(port, host, self.registry)

    async def aclose(self) -> None:
        """Stop serving; off the loop, as a scrape in progress may be waiting on it."""
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.shutdown)
            server.server_close()
