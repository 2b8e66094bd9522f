"""Median latency of POST /v1/comparisons against the fake provider at a fixed per-call latency.

Both orders are sent concurrently, so with 100 ms per model call the median
should sit near 100 ms, not 200. Everything runs as separate processes on
loopback: the fake provider, `referee serve` on a fresh SQLite (or the
database in REFEREE_DATABASE_URL), and this client.

    python -m bench.api_latency --requests 200 --latency-ms 100
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.store import migrate
from tests.fake_provider import FakeProvider


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("referee serve did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="referee-bench-"))
    database_url = os.environ.get("REFEREE_DATABASE_URL", f"sqlite:///{workdir / 'bench.db'}")
    migrate.upgrade(database_url)
    provider = FakeProvider.spawn(latency_ms=args.latency_ms, record=False)
    port = free_port()
    env = {
        **os.environ,
        "REFEREE_DATABASE_URL": database_url,
        "ANTHROPIC_BASE_URL": provider.anthropic_base_url,
        "ANTHROPIC_API_KEY": "bench",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        timings = []
        with httpx.Client(base_url=url, timeout=30.0) as client:
            for n in range(args.requests):
                body = {
                    "prompt": f"bench question {n} {time.time_ns()}",
                    "response_a": "a fairly long and helpful answer",
                    "response_b": "short",
                    "judge": "anthropic:claude-sonnet-4-6",
                }
                started = time.perf_counter()
                response = client.post("/v1/comparisons", json=body)
                timings.append((time.perf_counter() - started) * 1000)
                if response.status_code != 201:
                    raise RuntimeError(f"unexpected {response.status_code}: {response.text}")
        timings.sort()
        p90 = timings[int(len(timings) * 0.9)]
        print(
            f"POST /v1/comparisons, {args.requests} sequential requests, "
            f"{args.latency_ms:.0f} ms per model call, both orders, "
            f"{database_url.split(':')[0]}: median {statistics.median(timings):.1f} ms, "
            f"p90 {p90:.1f} ms, min {timings[0]:.1f} ms"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        provider.close()


if __name__ == "__main__":
    main()
