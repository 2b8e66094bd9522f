"""`referee label` as a whole command against a bare SDK loop, and its time to first verdict.

Everything runs against one fake provider in its own process on loopback, in the same run:

- the bare loop (bench.bare_judge_loop, a process of its own on uvloop, importing
  only the SDK) sends the judge's own 2 × N Messages bodies (both orders of every
  pair, built before timing by the judge's template and request builder) through
  AsyncAnthropic with the same number in flight; no storage, no protocol, timed
  from its first request (the target's figure), and also as a whole process from
  launch to exit (its own ``import anthropic`` and reading its bodies), printed
  beside it for comparison;
- `referee label` judges N pairs in both orders with `--concurrency` requests in
  flight, storing everything, timed as a whole process: start-up, enqueue, judging;
- time to first verdict: `referee label` on a generated 1,000,000-line file, from
  launch until a verdict row is in the database (then it is stopped with Ctrl-C),
  with its peak RSS at that moment.

Each database gets a bare loop run just before its `referee label` run, and the
figures are printed with their targets (whole command ≥ 0.95 of the bare loop,
first verdict ≤ 2 s) and whether they are met.

    python -m bench.label_throughput                       # SQLite and PostgreSQL
    python -m bench.label_throughput --databases sqlite --first-verdict-lines 0
    python -m bench.label_throughput --pairs 2000 --latency-ms 0 --in-flight 64   # CPU per pair

PostgreSQL: a scratch database is created (and dropped) on the server of
--postgres (default REFEREE_DATABASE_URL when it is PostgreSQL, else the local
server), so earlier runs' rows are never reused.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.store import migrate
from app.store.db import sync_url
from judges import JudgeRegistry
from judges.formats import VERDICT_FORMAT
from judges.templates import get_template
from judges.types import ShownPair
from tests.fake_provider import FakeProvider
from tests.fake_provider.runner import SpawnedProvider

MODEL = "claude-sonnet-4-6"
WHOLE_TARGET = 0.95
FIRST_VERDICT_TARGET_S = 2.0
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def write_pairs(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            out.write(
                json.dumps(
                    {
                        "id": f"b{i}",
                        "prompt": f"Question number {i}: explain something briefly.",
                        "response_a": f"A reasonably detailed answer to question {i}. " * 3,
                        "response_b": f"Short answer {i}.",
                    }
                )
                + "\n"
            )


def write_many_pairs(path: Path, n: int) -> None:
    """The same lines as write_pairs, formatted without a json.dumps per line (1M in seconds)."""
    with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
        for i in range(n):
            long = f"A reasonably detailed answer to question {i}. " * 3
            out.write(
                f'{{"id": "b{i}", "prompt": "Question number {i}: explain something briefly.", '
                f'"response_a": "{long}", "response_b": "Short answer {i}."}}\n'
            )


def judge_bodies(source: Path, out: Path) -> int:
    """The Messages bodies ``referee label`` sends for ``source``: both orders of each pair.

    Built by the judge's own template and request builder, so the bare loop
    makes the same calls (same system blocks, tool, prompt and responses).
    """
    os.environ.setdefault("ANTHROPIC_API_KEY", "bench")
    registry = JudgeRegistry.from_entry_points()
    judge = registry.judge(registry.resolve(f"anthropic:{MODEL}"))
    template = get_template(judge.config.template)
    count = 0
    with source.open(encoding="utf-8") as lines, out.open("w", encoding="utf-8") as bodies:
        for line in lines:
            pair = json.loads(line)
            for first, second in (("response_a", "response_b"), ("response_b", "response_a")):
                shown = ShownPair(pair["prompt"], pair[first], pair[second])
                system, user = template.render(shown, None)
                body = judge.message_params(system, user, VERDICT_FORMAT, template.shots(shown))  # type: ignore[attr-defined]
                if "temperature" in body:  # as the judge sends it (see its _send)
                    body["extra_body"] = {"temperature": body.pop("temperature")}
                bodies.write(json.dumps(body) + "\n")
                count += 1
    return count


@dataclass
class Bare:
    """The bare loop timed two ways: from its first request (strict), and as a whole process."""

    seconds: float
    """From its first request to its last answer, inside its process."""
    cpu_s: float
    """CPU over those seconds."""
    process_s: float
    """From launch to exit: ``import anthropic``, reading its bodies, the loop, closing."""
    process_cpu_s: float


def bare_loop(base_url: str, bodies: Path, in_flight: int) -> Bare:
    """The bare loop over ``bodies`` in a process of its own, timed inside and from outside."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "bench.bare_judge_loop", str(bodies), base_url, str(in_flight)],
        capture_output=True,
        text=True,
        check=False,
    )
    process_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"the bare loop failed: {result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return Bare(
        float(figures["seconds"]),
        float(figures["cpu_seconds"]),
        process_s,
        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    )


@contextmanager
def scratch_database(kind: str, workdir: Path, postgres: str) -> Iterator[str]:
    """A fresh migrated database: a new SQLite file, or a new database on the server."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        migrate.upgrade(url)
        yield url
        return
    admin_url = sync_url(postgres)
    name = f"referee_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def label_command(source: Path, in_flight: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "app.cli",
        "label",
        str(source),
        "--judge",
        f"anthropic:{MODEL}",
        "--concurrency",
        str(in_flight),
        "--rejects",
        str(source) + ".rejects",
    ]


def label_env(database_url: str, provider: SpawnedProvider) -> dict[str, str]:
    return {
        **os.environ,
        "REFEREE_DATABASE_URL": database_url,
        "ANTHROPIC_BASE_URL": provider.anthropic_base_url,
        "ANTHROPIC_API_KEY": "bench",
    }


@dataclass
class Whole:
    bare: Bare
    label_s: float
    label_cpu_s: float
    phase: tuple[int, float] | None
    """Pairs and seconds of the judging as the command reports it."""
    last_line: str


def whole_command(
    provider: SpawnedProvider, database_url: str, source: Path, pairs: int, in_flight: int
) -> Whole:
    bodies = source.with_suffix(".bodies.jsonl")
    judge_bodies(source, bodies)
    bare = bare_loop(provider.anthropic_base_url, bodies, in_flight)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        label_command(source, in_flight),
        env=label_env(database_url, provider),
        capture_output=True,
        text=True,
        check=False,
    )
    label_elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"referee label failed: {result.stderr[-2000:]}")
    found = re.search(r"judged (\d+) pairs in ([\d.]+) s", result.stdout)
    lines = result.stdout.strip().splitlines()
    return Whole(
        bare,
        label_elapsed,
        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        (int(found.group(1)), float(found.group(2))) if found else None,
        lines[-1] if lines else "",
    )


@dataclass
class FirstVerdict:
    seconds: float
    """From launch until the bench saw a verdict row."""
    first_row_s: float
    """From launch until the first pair was stored (start-up: imports, database, judge)."""
    first_verdict_s: float
    """From launch until the first verdict was stored, by its own timestamp."""
    peak_rss_mb: float


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def first_verdict(
    provider: SpawnedProvider, database_url: str, source: Path, in_flight: int
) -> FirstVerdict:
    """Time to first verdict from launch, split at the first stored pair, and peak RSS then."""
    engine = create_engine(sync_url(database_url))
    launched = datetime.now(UTC).replace(tzinfo=None)
    started = time.perf_counter()
    run = subprocess.Popen(
        label_command(source, in_flight),
        env=label_env(database_url, provider),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # a pipe nobody reads would block it once full
    )
    try:
        with engine.connect() as connection:
            while run.poll() is None:
                if connection.execute(text("SELECT 1 FROM verdicts LIMIT 1")).first():
                    break
                connection.rollback()  # a fresh snapshot on the next look
                time.sleep(0.005)
        seconds = time.perf_counter() - started
        if run.poll() is not None:
            raise SystemExit(f"referee label ended (exit {run.returncode}) before a verdict")
        status = Path(f"/proc/{run.pid}/status").read_text()
        peak = re.search(r"VmHWM:\s+(\d+) kB", status)
        run.send_signal(signal.SIGINT)  # a clean stop: what is stored stays stored
        run.communicate(timeout=120)
        with engine.connect() as connection:
            row = connection.execute(text("SELECT min(created_at) FROM comparisons")).scalar_one()
            verdict = connection.execute(text("SELECT min(created_at) FROM verdicts")).scalar_one()
    finally:
        if run.poll() is None:
            run.kill()
        engine.dispose()

    def since_launch(value: datetime | str) -> float:
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
        return (_naive_utc(when) - launched).total_seconds()

    return FirstVerdict(
        seconds,
        since_launch(row),
        since_launch(verdict),
        int(peak.group(1)) / 1024 if peak else float("nan"),
    )


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report_whole(kind: str, whole: Whole, args: argparse.Namespace) -> None:
    bare = whole.bare
    bare_rate, label_rate = args.pairs / bare.seconds, args.pairs / whole.label_s
    process_rate = args.pairs / bare.process_s
    ratio = label_rate / bare_rate

    def cpu(seconds: float) -> str:
        return f"CPU {1000 * seconds / args.pairs:.2f} ms per pair"

    print(f"[{kind}] {args.pairs} pairs, {args.latency_ms:.0f} ms/call, {args.in_flight} in flight")
    print(
        f"  bare SDK loop, from its first request : {bare_rate:7.1f} pairs/s "
        f"({bare.seconds:.1f} s), {cpu(bare.cpu_s)} (its 2 calls)"
    )
    print(
        f"  bare SDK loop, as a whole process     : {process_rate:7.1f} pairs/s "
        f"({bare.process_s:.1f} s, launch to exit incl. import anthropic and reading its "
        f"bodies), {cpu(bare.process_cpu_s)}"
    )
    print(
        f"  referee label, as a whole process     : {label_rate:7.1f} pairs/s "
        f"({whole.label_s:.1f} s, launch to exit incl. start-up and enqueue), "
        f"{cpu(whole.label_cpu_s)}"
    )
    if args.latency_ms:
        ideal = args.in_flight / 2 / (args.latency_ms / 1000)
        print(
            f"  ideal {ideal:.1f} pairs/s; label/ideal {label_rate / ideal:.3f}, "
            f"bare/ideal {bare_rate / ideal:.3f}"
        )
    if whole.phase:
        phase_rate = whole.phase[0] / whole.phase[1]
        print(
            f"  judging as the command reports it: {phase_rate:.1f} pairs/s "
            f"({whole.phase[1]:.1f} s; /bare {phase_rate / bare_rate:.3f}); "
            f"outside it (start-up, exit): {whole.label_s - whole.phase[1]:.1f} s"
        )
    print(f"  referee label said: {whole.last_line}")
    print(
        f"  whole process / bare whole process: {label_rate / process_rate:.3f} "
        "(both launch to exit; for comparison)"
    )
    print(
        f"  whole command / bare loop: {ratio:.3f} (target >= {WHOLE_TARGET}): "
        f"{verdict(ratio >= WHOLE_TARGET)} (the bare loop timed from its first request)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    parser.add_argument("--in-flight", type=int, default=256, help="requests in flight")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres",
        default=None,
        help="a PostgreSQL server URL to make scratch databases on "
        "(default: REFEREE_DATABASE_URL if PostgreSQL, else the local server)",
    )
    parser.add_argument("--first-verdict-lines", type=int, default=1_000_000)
    parser.add_argument(
        "--first-verdict-latency-ms",
        type=float,
        default=0.0,
        help="the provider's latency while timing the first verdict (our own overhead at 0)",
    )
    args = parser.parse_args()
    configured = os.environ.get("REFEREE_DATABASE_URL", "")
    postgres = args.postgres or (configured if configured.startswith("postgres") else None)
    postgres = postgres or LOCAL_POSTGRES
    kinds = [kind.strip() for kind in args.databases.split(",") if kind.strip()]

    workdir = Path(tempfile.mkdtemp(prefix="referee-bench-"))
    source = workdir / "pairs.jsonl"
    write_pairs(source, args.pairs)
    big = workdir / "million.jsonl"
    if args.first_verdict_lines:
        write_many_pairs(big, args.first_verdict_lines)
    print(f"load average at start: {os.getloadavg()}")
    provider = FakeProvider.spawn(latency_ms=args.latency_ms, record=False, policy="longer")
    try:
        for kind in kinds:
            if args.pairs:
                with scratch_database(kind, workdir, postgres) as url:
                    whole = whole_command(provider, url, source, args.pairs, args.in_flight)
                report_whole(kind, whole, args)
            if args.first_verdict_lines:
                provider.configure(latency_ms=args.first_verdict_latency_ms)
                with scratch_database(kind, workdir, postgres) as url:
                    first = first_verdict(provider, url, big, args.in_flight)
                provider.configure(latency_ms=args.latency_ms)
                print(
                    f"[{kind}] first verdict on a {args.first_verdict_lines}-line file "
                    f"({args.first_verdict_latency_ms:.0f} ms/call): {first.seconds:.2f} s from "
                    f"launch (target <= {FIRST_VERDICT_TARGET_S:.0f} s): "
                    f"{verdict(first.seconds <= FIRST_VERDICT_TARGET_S)}; first pair stored at "
                    f"{first.first_row_s:.2f} s (start-up before it), first verdict stamped at "
                    f"{first.first_verdict_s:.2f} s; peak RSS {first.peak_rss_mb:.0f} MB"
                )
    finally:
        provider.close()
        big.unlink(missing_ok=True)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
