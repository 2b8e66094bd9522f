"""Four `referee worker` processes sharing one --rpm budget against a provider enforcing it.

The fake provider answers 429 above --rpm requests in any sliding 60 s
window; every worker runs with the same --rpm, which the fleet shares
(through PostgreSQL, then through Redis with REFEREE_REDIS_URL; the queue
is PostgreSQL in both). Each run is measured over --seconds from the
provider's first request, then the workers are stopped (SIGTERM: they
finish what is in flight). Prints requests/minute combined, the share
answered 429, the target and met/not met, and the load average.

    python -m bench.fleet_rate                      # both backends, 60 s each
    python -m bench.fleet_rate --backend redis --seconds 120
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
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

from app.store import migrate
from app.store.redis_limits import KEY_PREFIX
from bench.label_throughput import MODEL, write_pairs
from bench.workers import drop_database, queue_batch, scratch_database
from tests.fake_provider import FakeProvider
from tests.fake_provider.runner import SpawnedProvider

REDIS_URL = os.environ.get("REFEREE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TARGET_LOW, TARGET_HIGH, TARGET_429_SHARE = 570.0, 600.0, 0.01


@dataclass(frozen=True)
class Run:
    backend: str
    requests: int
    limited: int
    seconds: float

    @property
    def per_minute(self) -> float:
        return 60.0 * self.requests / self.seconds

    @property
    def share_429(self) -> float:
        return self.limited / self.requests if self.requests else 0.0

    def met(self, rpm: float) -> bool:
        low, high = TARGET_LOW * rpm / 600.0, TARGET_HIGH * rpm / 600.0
        return low <= self.per_minute <= high and self.share_429 <= TARGET_429_SHARE


def measure(backend: str, args: argparse.Namespace) -> Run:
    began = time.perf_counter()
    database_url = scratch_database()
    try:
        migrate.upgrade(database_url)
        source = Path(tempfile.mkdtemp(prefix="referee-bench-")) / "pairs.jsonl"
        # Two requests a pair; enough pairs that no worker runs dry within the window.
        write_pairs(source, int(args.rpm * (args.warmup + args.seconds + 30) / 60 / 2 * 1.3))
        batch_id = asyncio.run(queue_batch(database_url, source))
        env = {**os.environ, "REFEREE_DATABASE_URL": database_url, "ANTHROPIC_API_KEY": "bench"}
        env.pop("REFEREE_REDIS_URL", None)
        if backend == "redis":
            env["REFEREE_REDIS_URL"] = REDIS_URL
            client = Redis.from_url(REDIS_URL)
            client.delete(f"{KEY_PREFIX}anthropic:{MODEL}@default")  # a fresh budget
            client.close()
        provider = FakeProvider.spawn(
            rpm_limit=int(args.rpm), latency_ms=args.latency_ms, record=True, policy="longer"
        )
        env["ANTHROPIC_BASE_URL"] = provider.anthropic_base_url
        print(f"{backend}: queued in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        try:
            return run_workers(backend, args, env, provider, str(batch_id))
        finally:
            provider.close()
            print(f"{backend}: done in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    finally:
        drop_database(database_url)


def stopped(worker: subprocess.Popen[str]) -> str:
    """The worker's stderr once it has exited; killed if it takes longer than a few seconds."""
    try:
        return worker.communicate(timeout=15)[1]
    except subprocess.TimeoutExpired:
        worker.kill()  # the database is dropped next: its leases do not matter
        return worker.communicate()[1]


def run_workers(
    backend: str,
    args: argparse.Namespace,
    env: dict[str, str],
    provider: SpawnedProvider,
    batch: str,
) -> Run:
    command = [sys.executable, "-m", "app.cli", "worker", "--batch", batch]
    command += ["--concurrency", str(args.concurrency), "--rpm", str(args.rpm)]
    workers = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(args.workers)
    ]
    started = False
    try:
        deadline = time.monotonic() + 120
        while not (started := provider.stats()["total"] > 0):
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                break
            time.sleep(0.2)
        if started:
            print(
                f"{backend}: first request after {time.monotonic() - deadline + 120:.0f} s",
                file=sys.stderr,
            )
            time.sleep(args.warmup + args.seconds + 1)
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)  # finish what is in flight, release the leases
        outputs = [stopped(w) for w in workers]
    for w, err in zip(workers, outputs, strict=True):
        if not started or w.returncode not in (0, -signal.SIGKILL):
            raise SystemExit(f"{backend}: a worker failed ({w.returncode}): {err[-2000:]}")
    log = sorted(provider.requests(), key=lambda r: r["received_at"])
    # Steady state: the workers start one after another in the first seconds.
    start = log[0]["received_at"] + args.warmup
    window = [r for r in log if start <= r["received_at"] < start + args.seconds]
    limited = sum(1 for r in window if r["status"] == 429)
    return Run(backend, len(window), limited, args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["postgresql", "redis", "both"], default="both")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rpm", type=float, default=600.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured per backend")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds after the first request not measured"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()

    backends = ["postgresql", "redis"] if args.backend == "both" else [args.backend]
    runs = [measure(backend, args) for backend in backends]
    low, high = TARGET_LOW * args.rpm / 600.0, TARGET_HIGH * args.rpm / 600.0
    print(
        f"{args.workers} `referee worker` processes, each --rpm {args.rpm:.0f} (one shared "
        f"budget), against a fake provider enforcing {args.rpm:.0f}/min over a sliding 60 s "
        f"window; {args.seconds:.0f} s measured from {args.warmup:.0f} s after its first request"
    )
    for run in runs:
        print(
            f"  {run.backend:<10} {run.per_minute:6.1f} requests/min combined "
            f"({run.requests} in {run.seconds:.0f} s), answered 429: {run.limited} "
            f"({100 * run.share_429:.2f}%) -> {'met' if run.met(args.rpm) else 'NOT MET'}"
        )
    print(
        f"target: {low:.0f}-{high:.0f} requests/min combined, at most "
        f"{100 * TARGET_429_SHARE:.0f}% answered 429; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
