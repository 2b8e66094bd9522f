"""Page latency at scale: GET /v1/comparisons and /v1/reviews/queue over a million comparisons.

Seeds (once, by bench.seed: bulk loading, not the API) a PostgreSQL database
of --comparisons comparisons with verdicts, calls, jury votes and gold
labels, migrates it to head, starts `referee serve` on it as its own process
and sends sequential requests from this one, timing each on the client (wall
time on loopback, authentication included):

- the first page of /v1/comparisons (limit 50, each with its verdicts and calls);
- deep pages: the cursor of a random position anywhere in the table;
- a page of one judge from a random position, and a page of one batch;
- /v1/reviews/queue (split juries, limit 50): the first page, a later page
  from a random cursor, and the first page with reviewed pairs included.

Each line prints p50 and p95 against the target (p95 <= 50 ms) and met/not met,
and the server process's CPU time per request (the database's is not in it):
on a loaded machine wall times stretch with the load, CPU time much less.

    python -m bench.scale --postgres postgresql://postgres@127.0.0.1:5432/postgres \\
        --comparisons 1000000 --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select
from sqlalchemy import text as sql_text
from sqlalchemy.engine import make_url

from app.api.routes.comparisons import _encode as encode_cursor
from app.labeling.admin import create_key
from app.settings import Settings
from app.store import migrate
from app.store.models import Batch, Comparison, Verdict
from bench.api_latency import free_port, wait_healthy
from bench.seed import seed

TARGET_P95_MS = 50.0
LIMIT = 50


def database(admin_url: str, comparisons: int, name: str | None = None) -> str:
    """A database of ``comparisons`` on the server, seeded the first time (one transaction)."""
    admin = make_url(admin_url).set(drivername="postgresql+psycopg")
    name = name or f"referee_bench_scale_{comparisons}"
    url = admin.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        found = connection.execute(
            sql_text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).first()
        if found is None:
            connection.execute(sql_text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        seeded = connection.execute(select(func.count()).select_from(Comparison)).scalar_one()
    engine.dispose()
    if seeded:
        print(f"database: {name} ({seeded:,} comparisons, cached)")
    else:
        print(f"database: seeding {name} with {comparisons:,} comparisons ...", flush=True)
        stats = seed(url, comparisons, progress=lambda line: print(line, flush=True))
        print(f"  {stats.line()}")
    return url


class Positions:
    """Random places to page from, read from the database (as a client's cursors would be)."""

    def __init__(self, url: str, rng: random.Random, count: int) -> None:
        engine = create_engine(url)
        with engine.connect() as connection:
            total = connection.execute(select(func.count()).select_from(Comparison)).scalar_one()
            # Sampled rows anywhere in the table, as the cursors of clients deep in it.
            rows = connection.execute(
                sql_text(
                    "SELECT created_at, id FROM comparisons TABLESAMPLE SYSTEM (:pct) LIMIT :n"
                ),
                {"pct": min(100.0, 100.0 * count * 20 / max(total, 1)), "n": count},
            ).all()
            self.cursors = [encode_cursor(created_at, cid) for created_at, cid in rows]
            verdicts = connection.execute(
                sql_text("SELECT id FROM verdicts TABLESAMPLE SYSTEM (:pct) LIMIT :n"),
                {"pct": min(100.0, 100.0 * count * 20 / max(total, 1)), "n": count},
            ).all()
            self.verdict_ids = [int(v) for (v,) in verdicts]
            self.judge = connection.execute(
                select(Comparison.judge).where(Comparison.judge != "panel-of-three").limit(1)
            ).scalar_one()
            self.batch_id = str(
                connection.execute(select(Batch.id).order_by(Batch.name).limit(1)).scalar_one()
            )
            self.total = int(total)
            self.jury_verdicts = connection.execute(
                select(func.count()).where(Verdict.disagreement.is_not(None))
            ).scalar_one()
        engine.dispose()
        rng.shuffle(self.cursors)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc): steadier than wall time under load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(
    client: httpx.Client, requests: int, params: Callable[[int], dict[str, Any]], path: str
) -> tuple[list[float], int]:
    """Wall times in ms of ``requests`` sequential GETs, and the items of the last answer."""
    timings, items = [], 0
    for n in range(requests):
        started = time.perf_counter()
        response = client.get(path, params=params(n))
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(
                f"GET {path} {params(n)}: {response.status_code} {response.text[:300]}"
            )
        items = len(response.json()["items"])
    return timings, items


def line(name: str, timings: list[float], items: int, cpu_ms: float) -> bool:
    ordered = sorted(timings)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    met = p95 <= TARGET_P95_MS
    print(
        f"{name:<42} p50 {statistics.median(ordered):6.1f} ms  p95 {p95:6.1f} ms  "
        f"server CPU {cpu_ms:5.1f} ms/request  ({len(ordered)} requests, {items} items a page)"
        f"  target p95 <= {TARGET_P95_MS:.0f} ms: {'met' if met else 'NOT MET'}"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", required=True, metavar="URL", help="a PostgreSQL server")
    parser.add_argument("--comparisons", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="per measured kind")
    parser.add_argument(
        "--database",
        metavar="NAME",
        help="the benchmark database (reused when seeded); default referee_bench_scale_<N>",
    )
    args = parser.parse_args()

    url = database(args.postgres, args.comparisons, args.database)
    rng = random.Random(7)
    positions = Positions(url, rng, args.requests)
    settings = Settings(database_url=url, judges_file=None)
    _, key = asyncio.run(create_key(settings, "bench-scale", ["read"]))
    port = free_port()
    env = {**os.environ, "REFEREE_DATABASE_URL": url}
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        # Start-up (imports, the schema check) takes tens of seconds on a loaded machine.
        wait_healthy(base, timeout=180.0)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, timeout=60.0, headers=headers) as client:
            # Warm the server's pools and caches (and the page cache) before timing.
            timed(client, 20, lambda n: {"limit": LIMIT}, "/v1/comparisons")
            cursors = positions.cursors
            verdicts = positions.verdict_ids
            load = os.getloadavg()[0]
            kinds: list[tuple[str, str, Callable[[int], dict[str, Any]]]] = [
                ("/v1/comparisons first page", "/v1/comparisons", lambda n: {"limit": LIMIT}),
                (
                    "/v1/comparisons deep page (random cursor)",
                    "/v1/comparisons",
                    lambda n: {"limit": LIMIT, "cursor": cursors[n % len(cursors)]},
                ),
                (
                    "/v1/comparisons one judge, random cursor",
                    "/v1/comparisons",
                    lambda n: {
                        "limit": LIMIT,
                        "judge": positions.judge,
                        "cursor": cursors[n % len(cursors)],
                    },
                ),
                (
                    "/v1/comparisons one batch",
                    "/v1/comparisons",
                    lambda n: {"limit": LIMIT, "batch_id": positions.batch_id},
                ),
                (
                    "/v1/reviews/queue first page",
                    "/v1/reviews/queue",
                    lambda n: {"limit": LIMIT, "min_disagreement": 0.3},
                ),
                (
                    "/v1/reviews/queue later page (random)",
                    "/v1/reviews/queue",
                    lambda n: {
                        "limit": LIMIT,
                        "min_disagreement": 0.3,
                        "cursor": str(verdicts[n % len(verdicts)]),
                    },
                ),
                (
                    "/v1/reviews/queue include_reviewed",
                    "/v1/reviews/queue",
                    lambda n: {"limit": LIMIT, "min_disagreement": 0.3, "include_reviewed": True},
                ),
            ]
            print(
                f"PostgreSQL, {positions.total:,} comparisons ({positions.jury_verdicts:,} jury "
                f"verdicts), referee serve on loopback, sequential requests, "
                f"{os.cpu_count()} CPUs, load average {load:.1f} at start"
            )
            for name, path, params in kinds:
                before = cpu_seconds(server.pid)
                timings, items = timed(client, args.requests, params, path)
                cpu_ms = (cpu_seconds(server.pid) - before) * 1000 / args.requests
                results.append(line(name, timings, items, cpu_ms))
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"all p95 within {TARGET_P95_MS:.0f} ms: {'met' if all(results) else 'NOT MET'}")


if __name__ == "__main__":
    main()
