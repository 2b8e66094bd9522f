"""Streaming enqueue: judging starts on the first chunk, kills mid-enqueue resume exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.labeling.batch import ENQUEUE_CHUNK, FIRST_CHUNK, Progress, enqueue
from app.labeling.jsonl import LineError, read_pairs
from app.labeling.run import LabelOptions, label_stream
from app.labeling.runtime import runtime
from app.settings import Settings
from app.store import batches
from tests.fake_provider import FakeProvider
from tests.test_batch import JUDGE, pairs_file, rows


@pytest.fixture
def env(database_url: str, provider: FakeProvider) -> dict[str, str]:
    return {**os.environ, "REFEREE_DATABASE_URL": database_url}


@contextmanager
def quiet(_total: int) -> Iterator[Callable[[Progress], None]]:
    yield lambda _progress: None


def chunk_ends(lines: int) -> list[int]:
    """The line counts after which enqueue commits a chunk (first chunk small, then doubling)."""
    ends, size, at = [], FIRST_CHUNK, 0
    while at < lines:
        at = min(at + size, lines)
        ends.append(at)
        size = min(2 * size, ENQUEUE_CHUNK)
    return ends


class TestJudgingBesideEnqueue:
    async def test_first_verdicts_are_stored_before_the_last_lines_are_read(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """Verdicts exist before the file's later rows are built; a budget stop still stores
        the whole file, as a run that enqueued first did."""
        provider.configure(policy="longer", latency_ms=0)
        source = pairs_file(tmp_path / "pairs.jsonl", 3000)
        options = LabelOptions(
            judge=JUDGE,
            concurrency=2,
            max_cost=Decimal("0.004"),
            origin=str(source),
            rejects_path=tmp_path / "rejects.jsonl",
        )
        settings = Settings(database_url=database_url, judges_file=None)
        with source.open("rb") as stream:
            summary = await label_stream(settings, stream, "pairs", options, quiet, print)
        assert summary.progress.stop_reason is not None
        assert "budget" in summary.progress.stop_reason
        assert summary.submitted == 3000
        assert rows(database_url, "SELECT count(*) FROM comparisons") == [(3000,)]
        judged = rows(database_url, "SELECT count(*) FROM verdicts")[0][0]
        assert isinstance(judged, int)
        assert 0 < judged < 3000
        # Rows are stamped as their lines are read: many were read after the first verdict.
        later = rows(
            database_url,
            "SELECT count(*) FROM comparisons "
            "WHERE created_at > (SELECT min(created_at) FROM verdicts)",
        )[0][0]
        assert isinstance(later, int)
        assert later > 1000


class TestKilledWhileEnqueueing:
    def test_sigkill_mid_enqueue_then_rerun_stores_and_judges_each_pair_once(
        self, tmp_path: Path, env: dict[str, str], database_url: str, provider: FakeProvider
    ) -> None:
        """Half the file piped in, killed once some chunks are stored; the full file again:
        every pair stored once and judged once, none lost."""
        provider.configure(policy="longer", latency_ms=300)
        lines = pairs_file(tmp_path / "pairs.jsonl", 400).read_text().splitlines(keepends=True)
        command = [sys.executable, "-m", "app.cli", "label", "-", "--judge", JUDGE]
        command += ["--concurrency", "8", "--rejects", str(tmp_path / "rejects.jsonl")]
        run = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert run.stdin is not None
        # The rest of the file is never written: the run is still enqueueing when killed.
        run.stdin.write("".join(lines[:200]))
        run.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if rows(database_url, "SELECT count(*) FROM comparisons")[0][0]:
                break
            time.sleep(0.02)
        run.send_signal(signal.SIGKILL)
        run.wait()
        stored = rows(database_url, "SELECT count(*) FROM comparisons")[0][0]
        assert isinstance(stored, int)
        assert 0 < stored <= 200
        provider.configure(latency_ms=0)
        rerun = subprocess.run(
            command,
            env=env,
            input="".join(lines),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert rerun.returncode == 0, rerun.stderr
        assert rows(
            database_url, "SELECT count(*), count(DISTINCT external_id) FROM comparisons"
        ) == [(400, 400)]
        assert rows(database_url, "SELECT DISTINCT status FROM comparisons") == [("labeled",)]
        assert rows(
            database_url, "SELECT count(*), count(DISTINCT comparison_id) FROM verdicts"
        ) == [(400, 400)]


class TestRejectsAcrossChunks:
    async def test_rejects_keep_their_line_numbers_across_chunk_boundaries(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """Bad lines on both sides of every chunk boundary are rejected with their own line
        numbers; every good line is stored with its own."""
        total = 1600
        ends = chunk_ends(total)
        assert len(ends) > 5  # the file spans the small first chunks and the full ones
        bad = {1, total} | {n for end in ends for n in (end, end + 1) if n <= total}
        blank = 1550  # a blank line counts as a line but is no record
        with (tmp_path / "pairs.jsonl").open("w", encoding="utf-8") as out:
            for n in range(1, total + 1):
                if n == blank:
                    out.write("\n")
                elif n in bad:
                    out.write('{"prompt": "q", "response_a": 3}\n')
                else:
                    body = {"id": f"l{n}", "prompt": f"q{n}", "response_a": "a", "response_b": "b"}
                    out.write(json.dumps(body) + "\n")
        settings = Settings(database_url=database_url, judges_file=None)
        errors: list[LineError] = []
        stored: list[int] = []
        async with runtime(settings) as labeler:
            config = labeler.resolve(JUDGE)
            async with labeler.db.transaction() as session:
                batch, _ = await batches.get_or_create(session, "r", "test", config.label)
            with (tmp_path / "pairs.jsonl").open("rb") as stream:
                result = await enqueue(
                    labeler,
                    batch.id,
                    config,
                    read_pairs(stream, "pairs.jsonl"),
                    "pairs.jsonl",
                    errors.append,
                    on_stored=stored.append,
                )
        assert sorted(e.line for e in errors) == sorted(bad)
        assert all(str(e).startswith(f"pairs.jsonl:{e.line}: field ") for e in errors)
        good = [n for n in range(1, total + 1) if n not in bad and n != blank]
        assert result.new == len(good)
        assert sum(stored) == len(good)
        assert len(stored) == len(ends)  # one commit per chunk
        found = rows(database_url, "SELECT external_id, source_line FROM comparisons")
        assert sorted((line, key) for key, line in found) == [(n, f"l{n}") for n in good]


class TestBacklogBound:
    async def test_pending_rows_never_exceed_the_bound_while_a_slow_judge_works(
        self,
        tmp_path: Path,
        database_url: str,
        provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The file is many times the bound: every chunk is stored only when the pending rows
        (counted in the chunk's own transaction) stay within it, and every pair is still judged
        once. Unbounded, the whole file was pending before the first few verdicts."""
        from app.labeling import batch as batch_module
        from app.labeling import run as run_module

        provider.configure(policy="longer", latency_ms=5)
        monkeypatch.setattr(batch_module, "ENQUEUE_CHUNK", 50)
        monkeypatch.setattr(run_module, "MIN_BACKLOG", 100)
        bound = run_module.backlog_bound(4)
        assert bound == 100
        peaks: list[int] = []
        store_pending = batches.enqueue

        async def counting(session: Any, new_rows: Sequence[dict[str, Any]]) -> int:
            stored = await store_pending(session, new_rows)
            if new_rows:
                peaks.append(await batches.pending_count(session, new_rows[0]["batch_id"]))
            return stored

        monkeypatch.setattr(batches, "enqueue", counting)
        source = pairs_file(tmp_path / "pairs.jsonl", 600)
        options = LabelOptions(
            judge=JUDGE, concurrency=4, origin=str(source), rejects_path=tmp_path / "r.jsonl"
        )
        settings = Settings(database_url=database_url, judges_file=None)
        with source.open("rb") as stream:
            summary = await label_stream(settings, stream, "pairs", options, quiet, print)
        assert summary.submitted == 600
        assert len(peaks) > 600 // 50  # the first chunks are smaller
        assert max(peaks) <= bound
        assert rows(
            database_url, "SELECT count(*), count(DISTINCT comparison_id) FROM verdicts"
        ) == [(600, 600)]
        assert rows(database_url, "SELECT DISTINCT status FROM comparisons") == [("labeled",)]

    async def test_a_file_within_the_bound_is_stored_without_counting(
        self,
        tmp_path: Path,
        database_url: str,
        provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The run's own tally (pending before it, plus stored, less judged) is within the
        bound: the chunks are stored without a count query in front of them."""
        provider.configure(policy="longer", latency_ms=0)
        counts: list[int] = []
        count_pending = batches.pending_count

        async def counted(session: Any, batch_id: Any) -> int:
            counts.append(await count_pending(session, batch_id))
            return counts[-1]

        monkeypatch.setattr(batches, "pending_count", counted)
        source = pairs_file(tmp_path / "pairs.jsonl", 300)
        options = LabelOptions(
            judge=JUDGE, concurrency=4, origin=str(source), rejects_path=tmp_path / "r.jsonl"
        )
        settings = Settings(database_url=database_url, judges_file=None)
        with source.open("rb") as stream:
            summary = await label_stream(settings, stream, "pairs", options, quiet, print)
        assert summary.progress.done == 300
        assert counts == []
