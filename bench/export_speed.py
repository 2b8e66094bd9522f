"""Export speed against the database's own dump, and peak RSS against the row count.

Builds (once, cached under --workdir by row count and schema revision) a
migrated SQLite database of --rows labeled comparisons with ~1 KB prompts
and responses, their current verdicts (a, b and some ties) and, for one
comparison in ten, an older superseded verdict. Then, each in a fresh
process on a warm page cache:

- `referee export dpo --out X.jsonl` (the real CLI): rows/s over the whole
  process, start-up included, its CPU time and its peak RSS (GNU
  `/usr/bin/time -v`, or else getrusage in a fresh wrapper process);
- the `sqlite3` shell dumping the same columns of the same rows as JSON
  (`sqlite3 -json DB "SELECT …"`: the export's own query, compiled from
  app.store.exports, with ties left out) to a file: rows/s.

Both outputs are checked to hold exactly the expected rows. CPU seconds are
printed beside wall time: on a shared machine their ratio is the steadier one.

Targets: export / sqlite3 >= 0.5, and peak RSS < 300 MB at --rows and at
--rss-rows alike (memory flat in the number of rows).

    python -m bench.export_speed --rows 200000 --rss-rows 20000

Needs the sqlite3 shell (Debian/Ubuntu: apt-get install -y sqlite3).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import re
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

from sqlalchemy import create_engine, event, func, insert, select
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url

from app.store import exports, migrate
from app.store.exports import VerdictQuery
from app.store.models import Base, Verdict
from bench.seed import seed

COMPARISONS = Base.metadata.tables["comparisons"]
VERDICTS = Base.metadata.tables["verdicts"]
DATA_VERSION = 1  # bump when the generated data changes, to rebuild cached databases
INSERT_CHUNK = 5000
JUDGES = ("anthropic:claude-sonnet-4-6", "openai:gpt-5-mini", "anthropic:claude-haiku-4-5")
TIME = "/usr/bin/time"
RSS_TARGET_MB = 300
RATIO_TARGET = 0.5
# PostgreSQL (issue 20): peak RSS at --rows within this factor of the smallest --rss-rows.
PG_RSS_RATIO = 1.5
# Shorter texts than the SQLite data (a 10M-row database stays near 10 GB).
PG_TEXT_CHARS = (80, 240)


# -- data ---------------------------------------------------------------------------------------


def corpus(rng: random.Random, chars: int = 4_000_000) -> str:
    """Prose-like text with some punctuation, quotes, newlines and non-ASCII, for slicing."""
    syllables = ["ka", "lo", "mi", "ne", "ra", "su", "ti", "vo", "ex", "an", "or", "str", "qu"]
    vocabulary = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(3000)] + [
        "the",
        "a",
        "of",
        "to",
        "and",
        "in",
        "is",
        "that",
        "for",
        "it",
    ] * 40
    extras = [
        "café",
        "naïve",
        "über",
        "東京",
        "数据",
        "→",
        "✓",
        "😀",
        '"quoted"',
        "x<y",
        "C:\\path",
    ]
    parts: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choices(vocabulary, k=rng.randint(6, 22)))
        if rng.random() < 0.15:
            sentence += " " + rng.choice(extras)
        sentence = (
            sentence[0].upper() + sentence[1:] + rng.choice([". ", ". ", "? ", ".\n", ":\n- "])
        )
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)


def text(rng: random.Random, source: str, low: int = 700, high: int = 1300) -> str:
    length = rng.randint(low, high)
    start = rng.randrange(0, len(source) - length)
    return source[start : start + length]


def comparison_rows(
    rng: random.Random, source: str, start: int, count: int, epoch: datetime
) -> tuple[list[dict[str, Any]], list[tuple[int, str, str]]]:
    """Comparison rows and, for each, (index, text of a, text of b) to size its verdicts."""
    rows, texts = [], []
    for i in range(start, start + count):
        question = text(rng, source)
        prompt: Any = f"[{i}] {question}"
        if rng.random() < 0.2:
            prompt = [
                {"role": "system", "content": "You are a careful assistant."},
                {"role": "user", "content": prompt},
            ]
        a, b = text(rng, source), text(rng, source)
        response_a: Any = a if rng.random() < 0.85 else {"role": "assistant", "content": a}
        response_b: Any = b if rng.random() < 0.85 else {"role": "assistant", "content": b}
        judge = JUDGES[i % len(JUDGES)]
        moment = epoch + timedelta(seconds=i)
        rows.append(
            {
                "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "label_key": hashlib.sha256(f"bench-{i}".encode()).hexdigest(),
                "external_id": f"pair-{i}",
                "prompt": prompt,
                "response_a": response_a,
                "response_b": response_b,
                "meta": {"source": "bench", "n": i},
                "judge": judge,
                "judge_spec": judge,
                "judge_config": {"spec": judge, "temperature": 0, "max_tokens": 1024},
                "template_version": "pairwise-v3",
                "status": "labeled",
                "created_at": moment,
                "updated_at": moment,
            }
        )
        texts.append((i, a, b))
    return rows, texts


def verdict_row(
    rng: random.Random,
    verdict_id: int,
    comparison_id: uuid.UUID,
    a: str,
    b: str,
    winner: str,
    moment: datetime,
) -> dict[str, Any]:
    consistent = rng.random()
    return {
        "id": verdict_id,
        "comparison_id": comparison_id,
        "winner": winner,
        "confidence": round(rng.uniform(0.5, 1.0), 3),
        "position_consistent": True if consistent < 0.8 else False if consistent < 0.95 else None,
        "soft_preference": round(rng.uniform(-1, 1), 3),
        "rationale": "Response A is more complete." if winner == "a" else "B is clearer.",
        "length_a": len(a),
        "length_b": len(b),
        "created_at": moment,
    }


def database_path(workdir: Path, rows: int) -> Path:
    head = "-".join(sorted(migrate.head_revisions("sqlite://")))
    return workdir / f"export-{rows}-v{DATA_VERSION}-{head}.db"


def build_database(path: Path, rows: int) -> None:
    """Migrate a fresh file and fill it with set-based Core inserts; renamed into place at the end."""
    partial = path.with_suffix(".partial")
    for stale in (partial, partial.with_name(partial.name + "-wal")):
        stale.unlink(missing_ok=True)
    url = f"sqlite:///{partial}"
    migrate.upgrade(url)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _fast(dbapi_connection: Any, _record: object) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    rng = random.Random(20261127)
    source = corpus(rng)
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    verdict_id = 0
    started = time.perf_counter()
    with engine.begin() as connection:
        for start in range(0, rows, INSERT_CHUNK):
            count = min(INSERT_CHUNK, rows - start)
            comparisons, texts = comparison_rows(rng, source, start, count, epoch)
            verdicts = []
            for row, (i, a, b) in zip(comparisons, texts, strict=True):
                moment = epoch + timedelta(seconds=i, milliseconds=500)
                pick = rng.random()
                winner = "a" if pick < 0.45 else "b" if pick < 0.9 else "tie"
                if rng.random() < 0.1:
                    # Re-judged: an older verdict with another winner that the export must skip.
                    verdict_id += 1
                    old = "b" if winner == "a" else "a"
                    verdicts.append(verdict_row(rng, verdict_id, row["id"], a, b, old, moment))
                verdict_id += 1
                verdicts.append(verdict_row(rng, verdict_id, row["id"], a, b, winner, moment))
            connection.execute(insert(COMPARISONS), comparisons)
            connection.execute(insert(VERDICTS), verdicts)
            done = start + count
            if done % 50_000 == 0 or done == rows:
                print(f"  built {done}/{rows} comparisons ({time.perf_counter() - started:.0f} s)")
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    partial.rename(path)


def ensure_database(workdir: Path, rows: int) -> Path:
    path = database_path(workdir, rows)
    if path.exists():
        print(f"database: {path} (cached)")
    else:
        print(f"database: building {path} ...")
        started = time.perf_counter()
        build_database(path, rows)
        print(f"  built in {time.perf_counter() - started:.0f} s")
    return path


def warm(path: Path) -> None:
    """Read the file once so both contenders start from the same warm page cache."""
    with path.open("rb") as stream:
        while stream.read(1 << 24):
            pass


# -- the dump query -----------------------------------------------------------------------------


def dump_sql() -> str:
    """The export's own query (columns, current-verdict NOT EXISTS, order), ties left out."""
    statement = exports._verdict_select(VerdictQuery()).where(Verdict.winner != "tie")
    compiled = statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    return " ".join(str(compiled).split())


def expected_rows(path: Path) -> tuple[int, int]:
    """(non-tie current verdicts, all verdicts), counted with the same query."""
    engine = create_engine(f"sqlite:///{path}")
    statement = exports._verdict_select(VerdictQuery()).where(Verdict.winner != "tie")
    with engine.connect() as connection:
        rows = connection.execute(
            select(func.count()).select_from(statement.order_by(None).subquery())
        ).scalar_one()
        verdicts = connection.execute(select(func.count()).select_from(VERDICTS)).scalar_one()
    engine.dispose()
    return int(rows), int(verdicts)


# -- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    cpu_seconds: float
    rss_mb: float
    output_bytes: int
    output_lines: int
    stdout: str = ""


def measured(command: list[str], out: Path, env: dict[str, str], stdout_to_out: bool) -> Run:
    """Run a command in a fresh process; wall time, peak RSS and the output's size."""
    if Path(TIME).exists():
        wrapped = [TIME, "-v", *command]
    else:
        # Without GNU time: a fresh wrapper whose only child is the command.
        wrapped = [
            sys.executable,
            "-c",
            "import resource, subprocess, sys\n"
            "code = subprocess.call(sys.argv[1:])\n"
            "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(f'User time (seconds): {usage.ru_utime}', file=sys.stderr)\n"
            "print(f'System time (seconds): {usage.ru_stime}', file=sys.stderr)\n"
            "print(f'Maximum resident set size (kbytes): {usage.ru_maxrss}', file=sys.stderr)\n"
            "sys.exit(code)",
            *command,
        ]
    out.unlink(missing_ok=True)
    with open(out, "wb") if stdout_to_out else contextlib.nullcontext(subprocess.PIPE) as sink:
        started = time.perf_counter()
        result = subprocess.run(wrapped, env=env, stdout=sink, stderr=subprocess.PIPE, check=False)
        seconds = time.perf_counter() - started
    stderr = result.stderr.decode(errors="replace")
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[:4])} … failed ({result.returncode}):\n{stderr[-3000:]}"
        )
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    rss_mb = int(match.group(1)) / 1024 if match else float("nan")
    cpu = sum(
        float(m.group(1))
        for m in re.finditer(r"(?:User|System) time \(seconds\): ([\d.]+)", stderr)
    )
    lines = 0
    with out.open("rb") as stream:
        while block := stream.read(1 << 24):
            lines += block.count(b"\n")
    size = out.stat().st_size
    out.unlink()
    printed = "" if stdout_to_out else result.stdout.decode(errors="replace")
    return Run(seconds, cpu, rss_mb, size, lines, printed)


def export_run(path: Path | str, workdir: Path) -> Run:
    """``referee export dpo`` of a SQLite file (a path) or of a database URL."""
    out = workdir / "export-out.jsonl"
    url = path if isinstance(path, str) else f"sqlite:///{path}"
    env = {**os.environ, "REFEREE_DATABASE_URL": url}
    command = [sys.executable, "-m", "app.cli", "export", "dpo", "--out", str(out), "--overwrite"]
    return measured(command, out, env, stdout_to_out=False)


def sqlite3_run(sqlite3: str, path: Path, workdir: Path, sql: str) -> Run:
    out = workdir / "sqlite3-out.json"
    return measured([sqlite3, "-json", str(path), sql], out, dict(os.environ), stdout_to_out=True)


def startup_seconds() -> float:
    """The CLI's fixed cost: interpreter, imports, a no-op command."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "app.cli", "export", "--help"],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def median_run(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda r: r.seconds)
    middle = ordered[len(ordered) // 2]
    return Run(
        statistics.median(r.seconds for r in runs),
        statistics.median(r.cpu_seconds for r in runs),
        max(r.rss_mb for r in runs),
        middle.output_bytes,
        middle.output_lines,
        middle.stdout,
    )


# -- PostgreSQL ---------------------------------------------------------------------------------


def postgres_database(admin_url: str, rows: int) -> str:
    """The URL of a database of ``rows`` comparisons on the server, seeded by bench.seed if new.

    Seeding is one transaction, so a database with comparisons is a finished one.
    """
    admin = make_url(admin_url).set(drivername="postgresql+psycopg")
    name = f"referee_bench_export_{rows}_v{DATA_VERSION}"
    url = admin.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = connection.execute(
            sql_text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).first()
        if exists is None:
            connection.execute(sql_text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        seeded = connection.execute(select(func.count()).select_from(COMPARISONS)).scalar_one()
    engine.dispose()
    if seeded:
        print(f"database: {name} ({seeded:,} comparisons, cached)")
        return url
    print(f"database: seeding {name} with {rows:,} comparisons (bench.seed) ...", flush=True)
    stats = seed(
        url,
        rows,
        calls=False,
        gold=0.0,
        text_chars=PG_TEXT_CHARS,
        progress=lambda line: print(line, flush=True),
    )
    print(f"  {stats.line()}")
    return url


def postgres_dump_sql() -> str:
    """The export's own query for PostgreSQL, ties left out, on one line (\\copy needs one)."""
    statement = exports._verdict_select(VerdictQuery()).where(Verdict.winner != "tie")
    dialect = create_engine("postgresql+psycopg://").dialect
    compiled = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return " ".join(str(compiled).split())


def postgres_counts(url: str) -> tuple[int, int]:
    """(non-tie current verdicts, all verdicts)."""
    engine = create_engine(url)
    statement = exports._verdict_select(VerdictQuery()).where(Verdict.winner != "tie")
    with engine.connect() as connection:
        rows = connection.execute(
            select(func.count()).select_from(statement.order_by(None).subquery())
        ).scalar_one()
        verdicts = connection.execute(select(func.count()).select_from(VERDICTS)).scalar_one()
    engine.dispose()
    return int(rows), int(verdicts)


def psql_run(psql: str, url: str, workdir: Path, sql: str) -> Run:
    out = workdir / "psql-out.tsv"
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    command = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn, "-c", f"\\copy ({sql}) TO '{out}'"]
    return measured(command, out, dict(os.environ), stdout_to_out=False)


def export_written(run: Run) -> tuple[int, int]:
    """(rows written, duplicates dropped) from the export's summary line."""
    found = re.search(r"wrote (\d+) dpo rows", run.stdout)
    dropped = re.search(r"(\d+) duplicates dropped", run.stdout)
    if found is None:
        raise SystemExit(f"no summary in the export's output: {run.stdout[-500:]!r}")
    return int(found.group(1)), int(dropped.group(1)) if dropped else 0


def postgres_main(args: argparse.Namespace) -> None:
    """Export vs psql \\copy on PostgreSQL; peak RSS at --rows against the smallest --rss-rows."""
    psql = shutil.which("psql")
    if psql is None:
        raise SystemExit("the psql client is not installed; it is this benchmark's baseline")
    args.workdir.mkdir(parents=True, exist_ok=True)
    sql = postgres_dump_sql()
    if args.show_sql:
        print(sql)
    sizes = sorted({*args.rss_rows, args.rows})
    urls = {rows: postgres_database(args.postgres, rows) for rows in sizes}
    load = os.getloadavg()[0]
    results: dict[int, tuple[int, Run, Run | None]] = {}
    for rows in sizes:
        expected, verdicts = postgres_counts(urls[rows])
        export_runs, dump_runs = [], []
        repeat = args.repeat if rows == args.rows else 1
        for n in range(repeat):
            export_runs.append(export_run(urls[rows], args.workdir))
            written, dropped = export_written(export_runs[-1])
            if export_runs[-1].output_lines != written or written + dropped != expected:
                raise SystemExit(
                    f"export wrote {export_runs[-1].output_lines} lines ({written} + {dropped} "
                    f"duplicates), expected {expected} rows read"
                )
            line = (
                f"  {rows:,} comparisons, run {n + 1}/{repeat}: export "
                f"{export_runs[-1].seconds:.1f} s ({export_runs[-1].cpu_seconds:.1f} s CPU, "
                f"{export_runs[-1].rss_mb:.0f} MB)"
            )
            if rows == args.rows:
                dump_runs.append(psql_run(psql, urls[rows], args.workdir, sql))
                if dump_runs[-1].output_lines != expected:
                    raise SystemExit(
                        f"psql wrote {dump_runs[-1].output_lines}, expected {expected}"
                    )
                line += f", psql \\copy {dump_runs[-1].seconds:.1f} s"
            print(line, flush=True)
        dump = median_run(dump_runs) if dump_runs else None
        results[rows] = (expected, median_run(export_runs), dump)
        if rows == args.rows:
            print(f"  {rows:,} comparisons: {verdicts:,} verdicts, {expected:,} current non-tie")

    expected, export, dump = results[args.rows]
    assert dump is not None
    export_rate, dump_rate = expected / export.seconds, expected / dump.seconds
    print()
    print(
        f"PostgreSQL, {args.rows:,} comparisons -> {expected:,} current non-tie verdicts read "
        f"({export_written(export)[0]:,} DPO rows after de-duplication); median of "
        f"{args.repeat}, {os.cpu_count()} CPUs, load average {load:.1f} at start"
    )
    print(
        f"referee export dpo : {export_rate:9,.0f} rows/s ({export.seconds:.1f} s whole process, "
        f"{export.cpu_seconds:.1f} s CPU, {export.output_bytes / 2**20:,.0f} MB JSONL), "
        f"peak RSS {export.rss_mb:.0f} MB"
    )
    print(
        f"psql \\copy (text)  : {dump_rate:9,.0f} rows/s ({dump.seconds:.1f} s, "
        f"{dump.cpu_seconds:.1f} s CPU in psql, {dump.output_bytes / 2**20:,.0f} MB), "
        f"peak RSS {dump.rss_mb:.0f} MB"
    )
    print(f"export / psql \\copy = {export_rate / dump_rate:.2f}")
    smallest = min(sizes)
    if smallest != args.rows:
        base = results[smallest][1]
        for rows in sizes:
            print(f"peak RSS at {rows:>10,} comparisons: {results[rows][1].rss_mb:5.0f} MB")
        ratio = export.rss_mb / base.rss_mb
        print(
            f"peak RSS {args.rows:,} / {smallest:,} = {ratio:.2f} (target <= {PG_RSS_RATIO}) "
            f"{'met' if ratio <= PG_RSS_RATIO else 'NOT MET'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000, help="comparisons in the database")
    parser.add_argument(
        "--rss-rows",
        type=int,
        nargs="*",
        default=[20_000],
        help="smaller databases whose export peak RSS is compared (none: skip)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the median counts")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "referee-bench-export",
        help="where built databases are cached and outputs written",
    )
    parser.add_argument("--show-sql", action="store_true", help="print the baseline's query")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="a PostgreSQL server (any database on it): databases of --rows and --rss-rows "
        "comparisons are made and seeded there (bench.seed) once, and the baseline is psql \\copy",
    )
    args = parser.parse_args()
    if args.postgres:
        postgres_main(args)
        return

    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        raise SystemExit(
            "the sqlite3 command-line shell is not installed; it is the baseline this benchmark "
            "compares against. Install it (Debian/Ubuntu: apt-get install -y sqlite3) and re-run."
        )
    shell_version = subprocess.run(
        [sqlite3, "-version"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    args.workdir.mkdir(parents=True, exist_ok=True)
    sql = dump_sql()
    if args.show_sql:
        print(sql)

    path = ensure_database(args.workdir, args.rows)
    expected, verdicts = expected_rows(path)
    warm(path)
    startup = startup_seconds()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    export_runs, dump_runs = [], []
    for n in range(args.repeat):
        export_runs.append(export_run(path, args.workdir))
        dump_runs.append(sqlite3_run(sqlite3, path, args.workdir, sql))
        print(
            f"  run {n + 1}/{args.repeat}: export {export_runs[-1].seconds:.2f} s "
            f"({export_runs[-1].cpu_seconds:.2f} s CPU, {export_runs[-1].rss_mb:.0f} MB), "
            f"sqlite3 {dump_runs[-1].seconds:.2f} s ({dump_runs[-1].cpu_seconds:.2f} s CPU)",
            flush=True,
        )
    export, dump = median_run(export_runs), median_run(dump_runs)
    # sqlite3 -json writes "[{…},\n{…},\n…}]\n": one line per row.
    for name, run in (("export", export), ("sqlite3", dump)):
        if run.output_lines != expected:
            raise SystemExit(f"{name} wrote {run.output_lines} rows, expected {expected}")

    small: list[tuple[int, Run]] = []
    for rows in args.rss_rows:
        small_path = ensure_database(args.workdir, rows)
        warm(small_path)
        small.append((rows, export_run(small_path, args.workdir)))

    export_rate, dump_rate = expected / export.seconds, expected / dump.seconds
    ratio = export_rate / dump_rate
    size_mb = path.stat().st_size / 2**20
    print()
    print(
        f"SQLite {size_mb:.0f} MB: {args.rows} comparisons, {verdicts} verdicts "
        f"({verdicts - args.rows} superseded), {expected} current non-tie -> {expected} DPO rows; "
        f"median of {args.repeat}, warm page cache, {os.cpu_count()} CPUs, load average {load:.1f} at start"
    )
    print(
        f"referee export dpo : {export_rate:9,.0f} rows/s ({export.seconds:.2f} s whole process, "
        f"{startup:.2f} s of it CLI start-up; {export.cpu_seconds:.2f} s CPU; "
        f"{export.output_bytes / 2**20:.0f} MB JSONL), peak RSS {export.rss_mb:.0f} MB"
    )
    print(
        f"sqlite3 {shell_version} -json: {dump_rate:9,.0f} rows/s ({dump.seconds:.2f} s; "
        f"{dump.cpu_seconds:.2f} s CPU; {dump.output_bytes / 2**20:.0f} MB JSON), "
        f"peak RSS {dump.rss_mb:.0f} MB"
    )
    print(
        f"export / sqlite3 = {ratio:.2f} (target >= {RATIO_TARGET}) "
        f"{'OK' if ratio >= RATIO_TARGET else 'BELOW TARGET'}; "
        f"in CPU seconds {dump.cpu_seconds / export.cpu_seconds:.2f} (steadier on a busy machine)"
    )
    for rows, run in small:
        print(
            f"peak RSS at {rows:>8} comparisons: {run.rss_mb:4.0f} MB "
            f"({run.output_lines / run.seconds:,.0f} rows/s)"
        )
    print(
        f"peak RSS at {args.rows:>8} comparisons: {export.rss_mb:4.0f} MB "
        f"(target < {RSS_TARGET_MB} MB) {'OK' if export.rss_mb < RSS_TARGET_MB else 'ABOVE TARGET'}"
    )
    if small:
        rows, run = min(small)
        growth = (export.rss_mb - run.rss_mb) / (export.output_lines - run.output_lines) * 2**20
        line = f"RSS {args.rows} / {rows} = {export.rss_mb / run.rss_mb:.2f} (flat: close to 1)"
        # Below a few fetch chunks the fixed buffers are still filling: no slope from there.
        if growth > 0 and run.output_lines >= 5 * exports.FETCH_CHUNK:
            reach = (RSS_TARGET_MB - export.rss_mb) / growth * 2**20 + export.output_lines
            line += f"; growth {growth:.0f} bytes/row, {RSS_TARGET_MB} MB reached near {reach:,.0f} rows"
        print(line)


if __name__ == "__main__":
    main()
