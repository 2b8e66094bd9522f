"""Several `referee worker` processes on one PostgreSQL batch, one killed with SIGKILL halfway.

Checks that every pair ends with exactly one verdict. The killed worker's
leases expire (--lease-seconds) and the others finish its pairs.

    python -m bench.workers --workers 4 --pairs 2000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.labeling.batch import enqueue
from app.labeling.jsonl import read_pairs
from app.labeling.runtime import runtime
from app.settings import Settings
from app.store import batches, migrate
from bench.label_throughput import MODEL, write_pairs
from tests.fake_provider import FakeProvider

ADMIN_URL = os.environ.get(
    "REFEREE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def scratch_database() -> str:
    admin = create_engine(
        make_url(ADMIN_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    name = f"referee_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


async def queue_batch(database_url: str, source: Path) -> uuid.UUID:
    async with runtime(Settings(database_url=database_url)) as labeler:
        config = labeler.resolve(f"anthropic:{MODEL}")
        async with labeler.db.transaction() as session:
            batch, _ = await batches.get_or_create(
                session, "bench-workers", str(source), config.label
            )
        with source.open(encoding="utf-8") as stream:
            await enqueue(labeler, batch.id, config, read_pairs(stream, str(source)), str(source))
        return batch.id


def count(database_url: str, sql: str) -> int:
    engine = create_engine(make_url(database_url).set(drivername="postgresql+psycopg"))
    with engine.connect() as connection:
        value = int(connection.execute(text(sql)).scalar_one())
    engine.dispose()
    return value


def drop_database(database_url: str) -> None:
    admin = create_engine(
        make_url(ADMIN_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(
            text(f'DROP DATABASE IF EXISTS "{make_url(database_url).database}" WITH (FORCE)')
        )
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--lease-seconds", type=float, default=6.0)
    args = parser.parse_args()

    database_url = scratch_database()
    migrate.upgrade(database_url)
    source = Path(tempfile.mkdtemp(prefix="referee-bench-")) / "pairs.jsonl"
    write_pairs(source, args.pairs)
    batch_id = asyncio.run(queue_batch(database_url, source))
    provider = FakeProvider.spawn(latency_ms=args.latency_ms, record=False, policy="longer")
    env = {
        **os.environ,
        "REFEREE_DATABASE_URL": database_url,
        "ANTHROPIC_BASE_URL": provider.anthropic_base_url,
        "ANTHROPIC_API_KEY": "bench",
    }
    command = [
        sys.executable,
        "-m",
        "app.cli",
        "worker",
        "--batch",
        str(batch_id),
        "--concurrency",
        "16",
        "--lease-seconds",
        str(args.lease_seconds),
    ]
    started = time.perf_counter()
    try:
        workers = [
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(args.workers)
        ]
        while count(database_url, "SELECT count(*) FROM verdicts") < args.pairs // 2:
            time.sleep(0.1)
        workers[0].send_signal(signal.SIGKILL)
        killed_at = count(database_url, "SELECT count(*) FROM verdicts")
        outputs = [w.communicate(timeout=600) for w in workers]
    finally:
        provider.close()
    elapsed = time.perf_counter() - started
    verdicts = count(database_url, "SELECT count(*) FROM verdicts")
    distinct = count(database_url, "SELECT count(DISTINCT comparison_id) FROM verdicts")
    labeled = count(database_url, "SELECT count(*) FROM comparisons WHERE status = 'labeled'")
    print(
        f"{args.workers} workers on PostgreSQL, {args.pairs} pairs, worker 1 SIGKILLed at {killed_at} verdicts"
    )
    for n, (out, _) in enumerate(outputs[1:], start=2):
        print(f"  worker {n}: {out.strip()}")
    print(
        f"verdicts {verdicts}, distinct pairs with a verdict {distinct}, labeled {labeled} "
        f"-> {'every pair exactly once' if verdicts == distinct == labeled == args.pairs else 'MISMATCH'} "
        f"({elapsed:.1f} s)"
    )


if __name__ == "__main__":
    main()
