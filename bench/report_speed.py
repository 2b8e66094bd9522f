"""How long the judge-quality report takes, and its peak memory, against the number of comparisons.

Seeds a migrated database with --rows comparisons by bulk loading
(bench/seed.py: PostgreSQL COPY, SQLite executemany; pairs judged by two
judges, some by a three-member jury, most with a gold label, every verdict
with its two calls and a cost), then times `referee report --json` as a
fresh process (the real CLI, start-up included), reads its peak RSS from
the kernel (wait4's rusage of that very child), and checks the report
counted every comparison.

    python -m bench.report_speed --rows 1000000                  # PostgreSQL and SQLite
    python -m bench.report_speed --rows 1000000 --backend postgresql --reuse
    python -m bench.report_speed --rows 1000000 --backend sqlite --sqlite-file /tmp/r.db --reuse

PostgreSQL: a scratch database (--pg-database, dropped and created again
unless --reuse finds it already holding --rows comparisons) on --pg-url,
vacuumed before the report as autovacuum leaves it after a bulk load.

Target (issue 20): at 1,000,000 comparisons on PostgreSQL, at most 10 s and
300 MB peak RSS; the same figures are printed for SQLite. The report is
counted by GROUP BY queries in the database, so memory stays flat in the
number of comparisons; time grows with the rows the database scans.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from app.store import migrate
from bench.seed import SeedStats, seed

TARGET_S = 10.0
TARGET_MB = 300.0


@dataclass(frozen=True, slots=True)
class Run:
    backend: str
    seconds: float
    peak_mb: float
    report: dict[str, Any]


def report_once(url: str, backend: str, args: tuple[str, ...]) -> Run:
    """`referee report --json` in a fresh process: wall time, its own peak RSS, the report."""
    env = {**os.environ, "REFEREE_DATABASE_URL": url}
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "report", "--json", *args],
            stdout=stdout,
            stderr=stderr,
            env=env,
        )
        # wait4: the rusage of this child alone (RUSAGE_CHILDREN would be the max over all).
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"referee report failed ({backend}): {stderr.read().decode()}")
        report = json.loads(stdout.read())
    # ru_maxrss is in KiB on Linux.
    return Run(backend, seconds, usage.ru_maxrss / 1024, report)


def seed_apart(url: str, rows: int) -> SeedStats:
    """:func:`bench.seed.seed` in a process of its own, so this one stays small.

    Linux counts the memory a child had before its exec (a copy of this
    process) in the peak RSS wait4 reports for it: after seeding here
    (hundreds of MB for a million rows), the report's figure was this
    process's size, not the report's.
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(seed, url, rows).result()


def counted(report: dict[str, Any]) -> int:
    return sum(block["counts"]["comparisons"] for block in report["judges"])


def postgres_database(base: str, name: str, rows: int, reuse: bool) -> tuple[str, bool]:
    """The scratch database's URL, and whether it must be seeded (created empty if so)."""
    url = make_url(base).set(database=name)
    admin = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    target = url.set(drivername="postgresql").render_as_string(hide_password=False)
    if reuse:
        try:
            with psycopg.connect(target) as connection:
                row = connection.execute("SELECT count(*) FROM comparisons").fetchone()
            if row is not None and int(row[0]) >= rows:
                return url.render_as_string(hide_password=False), False
        except psycopg.Error:
            pass
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return url.render_as_string(hide_password=False), True


def sqlite_database(file: Path | None, folder: str, rows: int, reuse: bool) -> tuple[str, bool]:
    """The SQLite database's URL, and whether it must be seeded (its file removed if so)."""
    path = file if file is not None else Path(folder) / "referee.db"
    if reuse and path.exists():
        with sqlite3.connect(path) as connection:
            try:
                (found,) = connection.execute("SELECT count(*) FROM comparisons").fetchone()
            except sqlite3.Error:
                found = 0
        if found >= rows:
            return f"sqlite:///{path}", False
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    return f"sqlite:///{path}", True


def steady_state(url: str) -> None:
    """VACUUM ANALYZE, as autovacuum leaves a table some time after a bulk load.

    Until then PostgreSQL's visibility map is empty and an index-only scan
    (the report's pair-level queries read ix_comparisons_report alone)
    visits the table's pages as well.
    """
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def line(run: Run, rows: int) -> str:
    time_ok = run.seconds <= TARGET_S
    memory_ok = run.peak_mb <= TARGET_MB
    agreement = run.report["judges"][0]["agreement"]["with_ties"]
    return (
        f"{run.backend}: referee report --json over {counted(run.report):,} comparisons: "
        f"{run.seconds:.2f} s (target <= {TARGET_S:.0f} s: {'met' if time_ok else 'NOT MET'}), "
        f"peak RSS {run.peak_mb:.0f} MB (target <= {TARGET_MB:.0f} MB: "
        f"{'met' if memory_ok else 'NOT MET'}); "
        f"{len(run.report['judges'])} judges, agreement of {run.report['judges'][0]['judge']} "
        f"{agreement['value']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="comparisons to seed")
    parser.add_argument(
        "--backend", choices=("postgresql", "sqlite", "both"), default="both", help="databases"
    )
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--pg-database", default="referee_report_bench")
    parser.add_argument(
        "--sqlite-file",
        type=Path,
        help="the SQLite database's file (default: a temporary one, dropped at the end)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a scratch database (PostgreSQL, or --sqlite-file) already seeded",
    )
    parser.add_argument("--repeat", type=int, default=1, help="report runs (the best is kept)")
    args = parser.parse_args()
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    results: list[Run] = []
    with tempfile.TemporaryDirectory() as folder:
        for backend in backends:
            if backend == "postgresql":
                url, fresh = postgres_database(args.pg_url, args.pg_database, args.rows, args.reuse)
            else:
                url, fresh = sqlite_database(args.sqlite_file, folder, args.rows, args.reuse)
            if fresh:
                stats = seed_apart(url, args.rows)
                print(f"{backend}: {stats.line()}", flush=True)
            # Up to date even if a migration landed since the seeding (a shared checkout).
            migrate.upgrade(url)
            if backend == "postgresql":
                steady_state(url)
            runs = [report_once(url, backend, ()) for _ in range(max(1, args.repeat))]
            best = min(runs, key=lambda run: run.seconds)
            seeded = counted(best.report)
            if seeded < args.rows:
                raise SystemExit(f"{backend}: the report counted {seeded} of {args.rows}")
            results.append(best)
            print(line(best, args.rows), flush=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
