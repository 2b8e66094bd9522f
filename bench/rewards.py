"""Reward service throughput and overhead: POST /v1/rewards against a judge of fixed latency.

Two figures, with separate processes on loopback (the fake provider,
`referee serve` on a fresh SQLite or the database in REFEREE_DATABASE_URL,
and this client):

1. Training steps: each step scores ``--completions`` new completions (sent as
   ``--requests-per-step`` concurrent requests, as data-parallel ranks would),
   the judge takes ``--latency-ms`` per call, and the server keeps
   ``--in-flight`` calls going (REFEREE_REWARD_MAX_IN_FLIGHT). The ideal is
   in-flight ÷ latency completions per second; steps/s is reported against it.
   The fake provider and this client run on the same machine as the server:
   on a small one their CPU lowers the ratio too.
   One step of the same shape warms up first and is not counted. Printed
   with the target (ratio >= 0.9, issue 17), the load average before and
   after the steps, and the CPU per completion of the server, the fake
   provider and this client.
2. Overhead: sequential requests of ``--batch`` new completions (all in flight
   at once), each one's time minus the judge's latency, p50 and p99.

    python -m bench.rewards --steps 10 --overhead-requests 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from app.store import migrate
from bench.api_latency import free_port, wait_healthy
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"


def batch(size: int, run: str, step: int) -> dict[str, Any]:
    """``size`` completions never seen before (no cache hit), tagged with the run and step."""
    salt = uuid.uuid4().hex
    return {
        "scorer": {"judge": JUDGE},
        "items": [
            {
                "prompt": f"Question {step}-{i}: how do tides work?",
                "completion": f"The moon's gravity pulls the oceans ({salt} {i}).",
                "metadata": {"run": run, "step": step},
            }
            for i in range(size)
        ],
        "timeout_s": 120,
    }


def post(client: httpx.Client, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    response = client.post("/v1/rewards", json=body)
    elapsed = time.perf_counter() - started
    scores = response.json().get("scores") if response.status_code == 200 else None
    if scores is None or None in scores:
        raise RuntimeError(f"unexpected {response.status_code}: {response.text[:500]}")
    return elapsed


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None elsewhere or unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def steps(
    client: httpx.Client, args: argparse.Namespace, server_pid: int, provider_pid: int | None
) -> None:
    per_request = args.completions // args.requests_per_step
    with ThreadPoolExecutor(args.requests_per_step) as pool:
        # Warm up with one step of the same shape, not measured: the judge's SDK client is
        # built on first use and opens its connections in the first step, as a training run's
        # first step does once; the figure is the steady state of the steps after it.
        warm = [batch(per_request, "warm-up", 0) for _ in range(args.requests_per_step)]
        list(pool.map(lambda body: post(client, body), warm))
        load_before = load_average()
        pids = (server_pid, provider_pid, os.getpid())
        cpu_before: dict[int | None, float | None] = {pid: cpu_seconds(pid) for pid in pids}
        started = time.perf_counter()
        for step in range(args.steps):
            bodies = [batch(per_request, "bench", step) for _ in range(args.requests_per_step)]
            list(pool.map(lambda body: post(client, body), bodies))
        elapsed = time.perf_counter() - started
    cpu_after = {pid: cpu_seconds(pid) for pid in cpu_before}
    ideal = args.in_flight / (args.latency_ms / 1000) / args.completions
    measured = args.steps / elapsed
    print(
        f"steps: {args.steps} x {args.completions} completions in {args.requests_per_step}"
        f" concurrent requests, judge {args.latency_ms:.0f} ms, {args.in_flight} in flight:"
        f" {measured:.3f} steps/s, ideal {ideal:.3f}, ratio {measured / ideal:.3f}"
    )
    met = "met" if measured / ideal >= args.target else "not met"
    print(
        f"target: ratio >= {args.target:.2f}: {met} (load average {load_before} before the steps,"
        f" {load_average()} after, {os.cpu_count()} CPUs)"
    )
    completions: int = args.steps * args.completions

    def per_completion(pid: int | None) -> float | None:
        before, after = cpu_before.get(pid), cpu_after.get(pid)
        if before is None or after is None:
            return None
        return (after - before) / completions * 1000

    per_item = per_completion(server_pid)
    if per_item is not None:
        print(
            f"server CPU: {per_item:.2f} ms per completion (one core keeps up with"
            f" {1000 / per_item:.0f} completions/s; the ideal above needs"
            f" {args.in_flight / (args.latency_ms / 1000):.0f})"
        )
    provider_cpu, client_cpu = per_completion(provider_pid), per_completion(os.getpid())
    if provider_cpu is not None and client_cpu is not None:
        print(
            f"on the same CPUs: fake provider {provider_cpu:.2f} ms, this client"
            f" {client_cpu:.2f} ms per completion (their CPU competes with the server's)"
        )


def overhead(client: httpx.Client, args: argparse.Namespace) -> None:
    latency = args.overhead_latency_ms / 1000
    extra = sorted(
        (post(client, batch(args.batch, "overhead", n)) - latency) * 1000
        for n in range(args.overhead_requests)
    )
    p99 = extra[min(len(extra) - 1, int(len(extra) * 0.99))]
    print(
        f"overhead: {args.overhead_requests} sequential requests of {args.batch} completions,"
        f" judge {args.overhead_latency_ms:.0f} ms: p50 {statistics.median(extra):.1f} ms,"
        f" p99 {p99:.1f} ms over the judge's latency"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--completions", type=int, default=256)
    parser.add_argument("--requests-per-step", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    parser.add_argument("--in-flight", type=int, default=128)
    parser.add_argument(
        "--target", type=float, default=0.9, help="steps/s against the ideal (issue 17)"
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--overhead-requests", type=int, default=100)
    parser.add_argument("--overhead-latency-ms", type=float, default=250.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="referee-bench-"))
    database_url = os.environ.get("REFEREE_DATABASE_URL", f"sqlite:///{workdir / 'bench.db'}")
    migrate.upgrade(database_url)
    provider = FakeProvider.spawn(latency_ms=args.latency_ms, record=False)
    port = free_port()
    env = {
        **os.environ,
        "REFEREE_DATABASE_URL": database_url,
        "REFEREE_AUTH": "off",
        "REFEREE_REWARD_MAX_IN_FLIGHT": str(args.in_flight),
        "ANTHROPIC_BASE_URL": provider.anthropic_base_url,
        "ANTHROPIC_API_KEY": "bench",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    print(f"database: {database_url.split(':')[0]}")
    try:
        wait_healthy(url, timeout=120.0)
        with httpx.Client(base_url=url, timeout=300.0) as client:
            if args.steps:
                # The fake's process id, to count its CPU beside the server's (None if unknown).
                process = getattr(provider, "_proc", None)
                steps(client, args, server.pid, getattr(process, "pid", None))
            if args.overhead_requests:
                provider.configure(latency_ms=args.overhead_latency_ms)
                overhead(client, args)
    finally:
        server.terminate()
        server.wait(timeout=30)
        provider.close()


if __name__ == "__main__":
    main()
