"""The label worker's writer: judged pairs gather into few transactions, the first at once."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from app.labeling.batch import Progress
from app.labeling.compare import Labeler
from app.labeling.heap import SERVING_THRESHOLDS
from app.labeling.run import Backlog, LabelOptions, label_stream
from app.labeling.worker import WRITE_WAIT_S, Worker, WorkerOptions, WorkItem
from app.settings import Settings
from tests.fake_provider import FakeProvider
from tests.test_batch import JUDGE, pairs_file


def recording_worker() -> tuple[Worker, list[tuple[float, int]]]:
    """A worker whose writes are recorded (when, how many pairs) instead of stored."""
    worker = Worker(cast(Labeler, object()), WorkerOptions(concurrency=256))
    writes: list[tuple[float, int]] = []

    async def write(items: list[WorkItem]) -> None:
        if items:
            writes.append((time.perf_counter(), len(items)))

    worker._write = write  # type: ignore[method-assign]
    return worker, writes


class TestWriter:
    async def test_bursts_of_judged_pairs_are_stored_a_transaction_each(self) -> None:
        """300 pairs judged at once, then 300 more: one transaction each (64 a transaction
        before); the first burst is stored at once, the later one after one gathering wait."""
        worker, writes = recording_worker()
        started = time.perf_counter()
        for _ in range(300):
            worker._results.put_nowait(cast(WorkItem, object()))
        worker._unwritten = 300
        writer = asyncio.create_task(worker._write_loop())
        await worker.written.wait()
        second = time.perf_counter()
        for _ in range(300):
            worker._results.put_nowait(cast(WorkItem, object()))
        worker._unwritten = 300
        worker._results.put_nowait(None)
        await writer
        assert [n for _, n in writes] == [300, 300]
        assert writes[0][0] - started < WRITE_WAIT_S / 2  # the first verdicts are not held
        assert writes[1][0] - second >= WRITE_WAIT_S
        assert worker._unwritten == 0

    async def test_pairs_judged_over_time_are_stored_a_flush_per_wait(self) -> None:
        """A pair judged every 10 ms for 0.6 s: about one transaction per 0.1 s, not per 64
        pairs or per 0.05 s."""
        worker, writes = recording_worker()
        writer = asyncio.create_task(worker._write_loop())
        for _ in range(60):
            worker._unwritten += 1
            worker._results.put_nowait(cast(WorkItem, object()))
            await asyncio.sleep(0.01)
        worker._results.put_nowait(None)
        await writer
        assert sum(n for _, n in writes) == 60
        assert len(writes) <= 60 * 0.01 / WRITE_WAIT_S + 2


class TestFirstVerdictFirst:
    async def test_the_feeder_waits_while_the_first_judged_pair_is_being_stored(self) -> None:
        """Judged but not written yet: the next chunk waits for that write; later results
        waiting for the writer hold nothing up."""
        worker, writes = recording_worker()
        backlog = Backlog(cast(Labeler, object()), uuid.uuid4(), worker, bound=1000)
        await backlog.room(16)  # nothing judged yet: the chunk goes in at once
        worker._unwritten = 1
        worker._results.put_nowait(cast(WorkItem, object()))
        feeder = asyncio.create_task(backlog.room(32))
        await asyncio.sleep(0.02)
        assert not feeder.done()
        writer = asyncio.create_task(worker._write_loop())
        await asyncio.wait_for(feeder, 1.0)
        assert writes
        assert not worker.first_verdict_due
        worker._unwritten = 1  # a later result waiting for the writer
        await asyncio.wait_for(backlog.room(64), 0.01)
        worker._results.put_nowait(None)
        await writer


@contextmanager
def thresholds_seen(seen: list[tuple[int, int, int]]) -> Iterator[Callable[[Progress], None]]:
    yield lambda _progress: seen.append(gc.get_threshold())


class TestCollector:
    async def test_judging_collects_the_youngest_generation_less_often_then_restores(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        provider.configure(policy="longer", latency_ms=0)
        source = pairs_file(tmp_path / "pairs.jsonl", 5)
        seen: list[tuple[int, int, int]] = []
        before = gc.get_threshold()

        @contextmanager
        def view(_total: int) -> Iterator[Callable[[Progress], None]]:
            with thresholds_seen(seen) as update:
                yield update

        options: Any = LabelOptions(judge=JUDGE, origin=str(source), rejects_path=tmp_path / "r")
        settings = Settings(database_url=database_url, judges_file=None)
        with source.open("rb") as stream:
            summary = await label_stream(settings, stream, "pairs", options, view, print)
        assert summary.progress.done == 5
        assert seen
        assert set(seen) == {SERVING_THRESHOLDS}
        assert gc.get_threshold() == before
