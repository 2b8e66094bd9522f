"""Batch labeling: resumable exactly once, faults accounted for, workers, budgets, HTTP batches."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.labeling.batch import enqueue
from app.labeling.jsonl import read_pairs
from app.labeling.runtime import runtime
from app.labeling.worker import Worker, WorkerOptions
from app.settings import Settings
from app.store import batches
from app.store.db import sync_url
from app.store.migrate import upgrade
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"


def pairs_file(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            long, short = f"a long and careful answer {i} " * 2, f"short {i}"
            a, b = (long, short) if i % 2 else (short, long)
            out.write(
                json.dumps(
                    {"id": f"p{i}", "prompt": f"question {i}", "response_a": a, "response_b": b}
                )
                + "\n"
            )
    return path


def label_cmd(path: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "label", str(path), "--judge", JUDGE, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(sync_url(url))
    with engine.connect() as connection:
        result = [tuple(r) for r in connection.execute(text(sql)).fetchall()]
    engine.dispose()
    return result


VERDICTS = (
    "SELECT c.external_id, v.winner FROM comparisons c JOIN verdicts v ON v.comparison_id = c.id "
    "ORDER BY c.external_id"
)


@pytest.fixture
def env(database_url: str, provider: FakeProvider) -> dict[str, str]:
    return {**os.environ, "REFEREE_DATABASE_URL": database_url}


class TestResume:
    def test_sigkill_then_rerun_equals_an_uninterrupted_run(
        self, tmp_path: Path, env: dict[str, str], database_url: str, provider: FakeProvider
    ) -> None:
        """Killed mid-run and run again: every pair once, the same verdicts as a clean run."""
        provider.configure(policy="longer", latency_ms=150)
        source = pairs_file(tmp_path / "pairs.jsonl", 40)
        run = label_cmd(source, env, "--concurrency", "4")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = (
                rows(database_url, "SELECT count(*) FROM verdicts")[0][0]
                if _ready(database_url)
                else 0
            )
            if isinstance(done, int) and done >= 6:
                break
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
        run.wait()
        interrupted = rows(database_url, "SELECT count(*) FROM verdicts")[0][0]
        assert 0 < interrupted < 40  # it really was cut short
        resumed = label_cmd(source, env, "--concurrency", "4")
        _out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        stored = rows(database_url, VERDICTS)
        assert len(stored) == 40
        assert len({key for key, _ in stored}) == 40  # no pair stored twice
        clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
        upgrade(clean_url)
        clean = label_cmd(source, {**env, "REFEREE_DATABASE_URL": clean_url}, "--concurrency", "8")
        clean.communicate(timeout=120)
        assert rows(clean_url, VERDICTS) == stored

    def test_ctrl_c_stops_cleanly_and_says_how_to_resume(
        self, tmp_path: Path, env: dict[str, str], database_url: str, provider: FakeProvider
    ) -> None:
        """SIGINT: pairs in flight are stored, the rest stay pending, the message says resume."""
        provider.configure(policy="longer", latency_ms=200)
        source = pairs_file(tmp_path / "pairs.jsonl", 60)
        run = label_cmd(source, env, "--concurrency", "4")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            _ready(database_url) and rows(database_url, "SELECT count(*) FROM verdicts")[0][0] >= 4
        ):
            time.sleep(0.05)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
        assert "interrupted" in err
        assert "Run the same command again to resume" in err
        assert "Traceback" not in err
        status = dict(
            rows(database_url, "SELECT status, count(*) FROM comparisons GROUP BY status")
        )
        assert status.get("pending", 0) > 0
        assert rows(
            database_url, "SELECT count(*) FROM comparisons WHERE lease_owner IS NOT NULL"
        ) == [(0,)]
        assert rows(database_url, "SELECT count(*) FROM verdicts")[0][0] == status["labeled"]

    def test_dry_run_spends_and_stores_nothing(
        self, tmp_path: Path, env: dict[str, str], database_url: str, provider: FakeProvider
    ) -> None:
        """--dry-run prints tokens and cost, calls no model, writes no row."""
        source = pairs_file(tmp_path / "pairs.jsonl", 5)
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "label", str(source), "--judge", JUDGE, "--dry-run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "5 pairs, 10 calls" in result.stdout
        assert "estimated cost $" in result.stdout
        assert provider.requests() == []
        assert rows(database_url, "SELECT count(*) FROM comparisons")[0][0] == 0

    def test_max_cost_stops_cleanly_and_resumes(
        self, tmp_path: Path, env: dict[str, str], database_url: str, provider: FakeProvider
    ) -> None:
        """A tiny budget stops the run with pairs left; the same command resumes."""
        source = pairs_file(tmp_path / "pairs.jsonl", 30)
        first = label_cmd(source, env, "--concurrency", "1", "--max-cost", "0.005")
        _, err = first.communicate(timeout=120)
        assert "budget" in err
        assert "resume" in err
        labeled = rows(database_url, "SELECT count(*) FROM verdicts")[0][0]
        assert 0 < labeled < 30
        second = label_cmd(source, env, "--concurrency", "4")
        second.communicate(timeout=120)
        assert rows(database_url, "SELECT count(*) FROM verdicts")[0][0] == 30


def _ready(url: str) -> bool:
    try:
        rows(url, "SELECT 1 FROM verdicts LIMIT 1")
    except Exception:
        return False
    return True


class TestFaults:
    def test_injected_faults_end_labeled_or_failed_and_retry_failed_completes(
        self, tmp_path: Path, env: dict[str, str], database_url: str, provider: FakeProvider
    ) -> None:
        """10% 500s, 5% 429s, 2% hangs, 2% malformed: the counts add up; --retry-failed finishes."""
        provider.configure(
            policy="longer",
            seed=7,
            retry_after=0.05,
            hang_seconds=30,
            fail_rates={"500": 0.10, "429": 0.05, "hang": 0.02, "malformed": 0.02},
        )
        judges_file = tmp_path / "judges.yaml"
        judges_file.write_text(
            f"judges:\n  flaky:\n    spec: {JUDGE}\n    timeout_s: 0.5\n    max_attempts: 2\n"
        )
        env = {**env, "REFEREE_JUDGES_FILE": str(judges_file)}
        source = pairs_file(tmp_path / "pairs.jsonl", 60)
        command = [
            sys.executable,
            "-m",
            "app.cli",
            "label",
            str(source),
            "--judge",
            "flaky",
            "--concurrency",
            "16",
        ]
        first = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=180, check=False
        )
        status = dict(
            rows(database_url, "SELECT status, count(*) FROM comparisons GROUP BY status")
        )
        assert sum(status.values()) == 60
        assert set(status) <= {"labeled", "failed"}
        assert status.get("failed", 0) > 0, "the faults should have failed some pairs"
        assert first.returncode == 1
        assert "--retry-failed" in first.stderr
        classes = {
            r[0]
            for r in rows(database_url, "SELECT error_class FROM comparisons WHERE status='failed'")
        }
        assert classes <= {"transient", "rate_limited", "timeout", "unparseable"}
        verdicts = rows(database_url, "SELECT count(*) FROM verdicts")[0][0]
        assert verdicts == status["labeled"]
        provider.configure(fail_rates={})
        retry = subprocess.run(
            [*command, "--retry-failed"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert retry.returncode == 0, retry.stderr
        assert dict(
            rows(database_url, "SELECT status, count(*) FROM comparisons GROUP BY status")
        ) == {"labeled": 60}
        assert rows(database_url, "SELECT count(*) FROM verdicts")[0][0] == 60


class TestBadLines:
    def test_an_oversized_line_is_rejected_with_its_line_and_the_rest_proceed(
        self, tmp_path: Path, env: dict[str, str], database_url: str, provider: FakeProvider
    ) -> None:
        """A text over REFEREE_MAX_TEXT_CHARS rejects that line only, into the rejects file."""
        source = pairs_file(tmp_path / "pairs.jsonl", 3)
        with source.open("a") as out:
            out.write(
                json.dumps({"prompt": "x" * 500, "response_a": "a", "response_b": "b"}) + "\n"
            )
        run = label_cmd(source, {**env, "REFEREE_MAX_TEXT_CHARS": "200"})
        _, err = run.communicate(timeout=120)
        assert run.returncode == 1
        assert f"{source}:4: field 'prompt': prompt has 500 characters" in err
        rejects = (tmp_path / "pairs.jsonl.rejects.jsonl").read_text().splitlines()
        assert [json.loads(r)["line"] for r in rejects] == [4]
        assert rows(database_url, "SELECT count(*) FROM verdicts")[0][0] == 3


class TestWorkers:
    async def test_concurrent_workers_label_each_pair_once(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """Three workers on one batch: disjoint claims, every pair exactly one verdict."""
        provider.configure(policy="longer", latency_ms=20)
        settings = Settings(database_url=database_url)
        source = pairs_file(tmp_path / "pairs.jsonl", 60)
        async with runtime(settings) as labeler:
            config = labeler.resolve(JUDGE)
            async with labeler.db.transaction() as session:
                batch, _ = await batches.get_or_create(session, "w", "test", config.label)
            with source.open() as stream:
                await enqueue(labeler, batch.id, config, read_pairs(stream, "t"), "t")
            workers = [Worker(labeler, WorkerOptions(concurrency=8), batch.id) for _ in range(3)]
            results = await asyncio.gather(*(w.run() for w in workers))
        assert sum(p.done for p in results) == 60
        assert all(p.done > 0 for p in results) or "sqlite" in database_url
        assert rows(
            database_url, "SELECT count(*), count(DISTINCT comparison_id) FROM verdicts"
        ) == [(60, 60)]

    async def test_an_expired_lease_passes_to_another_worker(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """Rows leased by a dead worker are claimed again once the lease runs out."""
        settings = Settings(database_url=database_url)
        source = pairs_file(tmp_path / "pairs.jsonl", 5)
        async with runtime(settings) as labeler:
            config = labeler.resolve(JUDGE)
            async with labeler.db.transaction() as session:
                batch, _ = await batches.get_or_create(session, "l", "test", config.label)
            with source.open() as stream:
                await enqueue(labeler, batch.id, config, read_pairs(stream, "t"), "t")
            async with labeler.db.transaction() as session:
                dead = await batches.claim(session, batch.id, "gone:1:x", 5, timedelta(seconds=0.5))
            assert len(dead) == 5
            async with labeler.db.transaction() as session:
                assert (
                    await batches.claim(session, batch.id, "other", 5, timedelta(seconds=60)) == []
                )
            await asyncio.sleep(0.6)
            progress = await Worker(labeler, WorkerOptions(concurrency=4), batch.id).run()
        assert progress.done == 5

    async def test_a_worker_that_cannot_build_the_judge_stops_and_fails_nothing(
        self,
        tmp_path: Path,
        database_url: str,
        provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A missing provider key on the worker leaves the pairs pending for another worker."""
        settings = Settings(database_url=database_url)
        async with runtime(settings) as labeler:
            config = labeler.resolve(JUDGE)
            async with labeler.db.transaction() as session:
                batch, _ = await batches.get_or_create(session, "k", "test", config.label)
            with pairs_file(tmp_path / "p.jsonl", 3).open() as stream:
                await enqueue(labeler, batch.id, config, read_pairs(stream, "t"), "t")
        monkeypatch.delenv("ANTHROPIC_API_KEY")
        async with runtime(settings) as labeler:
            progress = await Worker(labeler, WorkerOptions(concurrency=2), batch.id).run()
        assert progress.done == 0
        assert progress.stop_reason is not None
        assert "ANTHROPIC_API_KEY" in progress.stop_reason
        assert (
            rows(database_url, "SELECT status, lease_owner FROM comparisons")
            == [("pending", None)] * 3
        )

    async def test_a_late_result_from_a_lost_lease_is_discarded(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """The write guard keeps a pair from being stored twice."""
        settings = Settings(database_url=database_url)
        async with runtime(settings) as labeler:
            config = labeler.resolve(JUDGE)
            async with labeler.db.transaction() as session:
                batch, _ = await batches.get_or_create(session, "g", "test", config.label)
            with pairs_file(tmp_path / "p.jsonl", 1).open() as stream:
                await enqueue(labeler, batch.id, config, read_pairs(stream, "t"), "t")
            async with labeler.db.transaction() as session:
                (row,) = await batches.claim(session, batch.id, "slow", 1, timedelta(seconds=60))
                await batches.release(session, ["slow"])
                (row,) = await batches.claim(session, batch.id, "fast", 1, timedelta(seconds=60))
                assert await batches.take_ownership(session, "slow", [row.id]) == set()
                assert await batches.take_ownership(session, "fast", [row.id]) == {row.id}


class TestHttpBatches:
    def test_submit_watch_and_list_results(self, api: TestClient, provider: FakeProvider) -> None:
        """A JSONL upload is queued (202), worked off in the background, results by batch."""
        provider.configure(policy="longer")
        lines = [
            json.dumps({"prompt": f"q{i}", "response_a": "long answer here", "response_b": "s"})
            for i in range(6)
        ]
        body = "\n".join([*lines[:3], "{broken", *lines[3:]])
        response = api.post(
            f"/v1/batches?judge={JUDGE}",
            content=body,
            headers={"content-type": "application/x-ndjson"},
        )
        assert response.status_code == 202, response.text
        submitted = response.json()
        assert submitted["submitted"] == 6
        assert submitted["rejected"] == [{"line": 4, "reason": submitted["rejected"][0]["reason"]}]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = api.get(f"/v1/batches/{submitted['id']}").json()
            if state["status"] == "done":
                break
            time.sleep(0.1)
        assert state["counts"]["labeled"] == 6
        assert state["progress"] == 1.0
        results = api.get("/v1/comparisons", params={"batch_id": submitted["id"]}).json()["items"]
        assert len(results) == 6
        assert {r["verdict"]["winner"] for r in results} == {"a"}

    def test_json_array_and_cancel(self, api: TestClient, provider: FakeProvider) -> None:
        """A JSON array is accepted; cancel stops pending pairs and keeps finished ones."""
        provider.configure(policy="longer", latency_ms=300)
        items = [{"prompt": f"c{i}", "response_a": "x", "response_b": "yy"} for i in range(40)]
        submitted = api.post(f"/v1/batches?judge={JUDGE}", json=items).json()
        cancelled = api.post(f"/v1/batches/{submitted['id']}/cancel").json()
        assert cancelled["status"] == "cancelled"
        assert cancelled["counts"]["pending"] == 0
        assert cancelled["counts"]["cancelled"] > 0
        assert api.get("/v1/batches/00000000-0000-0000-0000-000000000000").status_code == 404
