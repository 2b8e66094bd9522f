"""Feedback ingestion through the real service: one bulk JSONL upload, and concurrent single POSTs.

Starts `referee serve` in its own process on a fresh, migrated database
(SQLite by default) and, from this process on loopback:

(a) uploads one JSONL body of --rows feedback records (prompt and completion
    of 200–500 characters each, every record with an idempotency_key) to
    POST /v1/feedback with Content-Type: application/x-ndjson, and reports
    rows/s (target >= 5,000/s on SQLite); then uploads the same body again,
    which must add nothing (duplicates == rows), and reports its rate;
(b) sends --requests single-record POST /v1/feedback requests from
    --clients concurrent clients (aiohttp) and reports requests/s and the
    p50/p99 latency.

Server CPU and RSS (idle, and peak during the bulk upload) come from /proc
(Linux); client CPU is shown for phase (b) because the load generator
shares the machine with the server. Records include some non-ASCII text
(accents, CJK, emoji), as real chat traffic does.

    python -m bench.feedback_ingest --rows 100000 --requests 5000 --clients 32
    python -m bench.feedback_ingest --postgres        # scratch database, dropped afterwards
    python -m bench.feedback_ingest --database-url postgresql://postgres@127.0.0.1:5432/mydb

--postgres creates the scratch database from REFEREE_BENCH_POSTGRES_URL
(default postgresql://postgres@127.0.0.1:5432/postgres), as bench.workers does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import create_engine, text

from app.store import migrate
from app.store.db import sync_url
from bench.api_latency import free_port
from bench.export_speed import corpus
from bench.export_speed import text as slice_text

BULK_TARGET = 5000  # rows/s on SQLite
JSONL = "application/x-ndjson"
LABELS = (True, False, True, False, "up", "down", "👍", "thumbs_down")
SOURCES = ("chat-web", "chat-ios", "chat-android", "api")


def record(rng: random.Random, source: str, run: str, n: int, epoch: datetime) -> dict[str, Any]:
    """One realistic feedback record: prompt and completion of 200–500 characters."""
    prompt: Any = slice_text(rng, source, 200, 500)
    if rng.random() < 0.1:
        prompt = [
            {"role": "system", "content": "Answer briefly and cite sources."},
            {"role": "user", "content": prompt},
        ]
    completion: Any = slice_text(rng, source, 200, 500)
    if rng.random() < 0.1:
        completion = {"role": "assistant", "content": completion}
    return {
        "prompt": prompt,
        "completion": completion,
        "label": rng.choice(LABELS),
        "source": rng.choice(SOURCES),
        "user_id": f"user-{rng.randrange(20_000)}",
        "session_id": f"session-{n // 5}",
        "metadata": {"model": "assistant-2026-11", "latency_ms": rng.randrange(200, 4000)},
        "occurred_at": (epoch + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
        "idempotency_key": f"bench-{run}-{n}",
    }


# -- the server ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    process: subprocess.Popen[bytes]
    url: str

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far (Linux /proc; NaN elsewhere)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self, field: str = "VmRSS") -> float:
        """Resident (VmRSS) or peak resident (VmHWM) memory so far, from /proc (Linux)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return float("nan")
        line = next(x for x in status.splitlines() if x.startswith(f"{field}:"))
        return int(line.split()[1]) / 1024


def start_server(database_url: str, log: Path) -> Server:
    port = free_port()
    env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    server = Server(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 120  # start-up imports every judge SDK: slow on a busy machine
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    process.wait(timeout=30)
    raise SystemExit(f"referee serve did not start:\n{log.read_text()[-3000:]}")


# -- (a) bulk upload ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Upload:
    seconds: float
    server_cpu: float
    summary: dict[str, Any]


def upload(server: Server, body: bytes) -> Upload:
    cpu = server.cpu_seconds()
    started = time.perf_counter()
    response = httpx.post(
        f"{server.url}/v1/feedback",
        content=body,
        headers={"Content-Type": JSONL},
        timeout=httpx.Timeout(600.0, connect=10.0),
    )
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"bulk upload: {response.status_code} {response.text[:2000]}")
    summary = response.json()
    if summary["rejected"]:
        raise SystemExit(f"bulk upload rejected records: {summary['rejected'][:5]}")
    return Upload(seconds, server.cpu_seconds() - cpu, summary)


# -- (b) concurrent single POSTs ----------------------------------------------------------------


async def single_posts(url: str, bodies: list[bytes], clients: int) -> tuple[float, list[float]]:
    """Send each body as one POST from ``clients`` concurrent clients; elapsed s and latencies ms."""
    latencies: list[float] = []
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            for body in queue:
                started = time.perf_counter()
                async with session.post(f"{url}/v1/feedback", data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 201:
                        raise RuntimeError(f"POST /v1/feedback: {r.status} {await r.text()}")
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# -- databases ----------------------------------------------------------------------------------


def stored_rows(database_url: str) -> int:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        count = int(connection.execute(text("SELECT count(*) FROM feedback")).scalar_one())
    engine.dispose()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="records in the bulk upload")
    parser.add_argument("--requests", type=int, default=5000, help="single POSTs in phase (b)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in (b)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", help="an existing database to use (default: new SQLite)")
    where.add_argument(
        "--postgres",
        action="store_true",
        help="a scratch PostgreSQL database, created and dropped (REFEREE_BENCH_POSTGRES_URL)",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="referee-bench-"))
    scratch = None
    if args.postgres:
        from bench.workers import drop_database, scratch_database

        scratch = database_url = scratch_database()
    else:
        database_url = args.database_url or f"sqlite:///{workdir / 'feedback.db'}"
    backend = database_url.split(":")[0].split("+")[0]

    rng = random.Random(20261127)
    source = corpus(rng, 2_000_000)
    run = uuid.uuid4().hex[:8]  # fresh keys, so a reused --database-url still stores them all
    epoch = datetime(2026, 11, 1, tzinfo=UTC)
    lines = [
        json.dumps(record(rng, source, run, n, epoch), ensure_ascii=False) for n in range(args.rows)
    ]
    body = ("\n".join(lines) + "\n").encode()
    del lines
    warmup = 2 * args.clients
    singles = [
        json.dumps(record(rng, source, run, args.rows + n, epoch), ensure_ascii=False).encode()
        for n in range(warmup + args.requests)
    ]

    server = None
    try:
        migrate.upgrade(database_url)
        before = stored_rows(database_url)
        server = start_server(database_url, workdir / "serve.log")
        idle_rss = server.rss_mb()
        first = upload(server, body)
        bulk_rss = server.rss_mb("VmHWM")
        second = upload(server, body)
        asyncio.run(single_posts(server.url, singles[:warmup], args.clients))
        cpu = server.cpu_seconds()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        elapsed, latencies = asyncio.run(single_posts(server.url, singles[warmup:], args.clients))
        after_usage = resource.getrusage(resource.RUSAGE_SELF)
        singles_cpu = server.cpu_seconds() - cpu
        stored = stored_rows(database_url) - before
    finally:
        if server is not None:
            server.process.terminate()
            server.process.wait(timeout=30)
        if scratch is not None:
            drop_database(scratch)
        shutil.rmtree(workdir, ignore_errors=True)  # the SQLite file is ~150 MB at 100,000 rows

    expected = args.rows + warmup + args.requests
    client_cpu = (after_usage.ru_utime - usage.ru_utime) + (after_usage.ru_stime - usage.ru_stime)
    latencies.sort()
    rate = args.rows / first.seconds
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print()
    print(
        f"referee serve (1 process) on {backend}; {os.cpu_count()} CPUs shared with this client, "
        f"load average {load:.1f}"
    )
    print(
        f"(a) bulk JSONL, {args.rows} records, {len(body) / 2**20:.0f} MB body: "
        f"{rate:8,.0f} rows/s ({first.seconds:.2f} s; server CPU {first.server_cpu:.2f} s, "
        f"{1e6 * first.server_cpu / args.rows:.0f} µs/row); accepted {first.summary['accepted']}, "
        f"duplicates {first.summary['duplicates']} "
        f"-> target >= {BULK_TARGET}/s {'OK' if rate >= BULK_TARGET else 'BELOW TARGET'}"
        f"{'' if first.summary['accepted'] == args.rows else ' (ACCEPTED MISMATCH)'}"
    )
    print(
        f"    server RSS {idle_rss:.0f} MB idle, peak {bulk_rss:.0f} MB during the upload "
        f"(+{bulk_rss - idle_rss:.0f} MB for a {len(body) / 2**20:.0f} MB body)"
    )
    again = second.summary
    print(
        f"    same body again: {args.rows / second.seconds:8,.0f} rows/s ({second.seconds:.2f} s; "
        f"server CPU {second.server_cpu:.2f} s); accepted {again['accepted']}, duplicates "
        f"{again['duplicates']} -> "
        f"{'adds nothing' if again['accepted'] == 0 and again['duplicates'] == args.rows else 'MISMATCH'}"
    )
    print(
        f"(b) {args.requests} single POSTs, {args.clients} concurrent clients: "
        f"{args.requests / elapsed:7,.0f} requests/s ({elapsed:.2f} s); "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
        f"max {latencies[-1]:.1f} ms; server CPU {1000 * singles_cpu / args.requests:.2f} ms/request, "
        f"client CPU {1000 * client_cpu / args.requests:.2f} ms/request"
    )
    print(
        f"stored {stored} rows (expected {expected}: {'OK' if stored == expected else 'MISMATCH'})"
    )


if __name__ == "__main__":
    main()
