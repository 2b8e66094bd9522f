"""Peak RSS of `referee label` against the input size: memory must stay flat.

Runs the whole command (enqueue, judge in both orders, store) on a small and
a large input against the fake provider at zero latency, and compares the
peak resident set sizes of the two processes.

    python -m bench.label_memory --small 10000 --large 200000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.store import migrate
from bench.label_throughput import MODEL, write_pairs
from tests.fake_provider import FakeProvider


def peak_rss_mb(pairs: int, provider: FakeProvider, workdir: Path) -> tuple[float, float]:
    database_url = f"sqlite:///{workdir / f'mem-{pairs}.db'}"
    migrate.upgrade(database_url)
    source = workdir / f"pairs-{pairs}.jsonl"
    write_pairs(source, pairs)
    env = {
        **os.environ,
        "REFEREE_DATABASE_URL": database_url,
        "ANTHROPIC_BASE_URL": provider.anthropic_base_url,
        "ANTHROPIC_API_KEY": "bench",
    }
    command = [
        sys.executable,
        "-c",
        "import resource, sys; from app.cli import cli\n"
        "try:\n    cli(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        "print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)",
        "label",
        str(source),
        "--judge",
        f"anthropic:{MODEL}",
        "--concurrency",
        "64",
    ]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"referee label failed: {result.stderr[-2000:]}")
    kb = next(
        int(line.split()[1]) for line in result.stderr.splitlines() if line.startswith("maxrss_kb")
    )
    return kb / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=200_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="referee-bench-"))
    provider = FakeProvider.spawn(record=False, policy="longer")
    try:
        small, small_s = peak_rss_mb(args.small, provider, workdir)
        print(f"{args.small:>8} lines: peak RSS {small:.0f} MB ({small_s:.0f} s)", flush=True)
        large, large_s = peak_rss_mb(args.large, provider, workdir)
        print(f"{args.large:>8} lines: peak RSS {large:.0f} MB ({large_s:.0f} s)")
    finally:
        provider.close()
    print(f"large / small = {large / small:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
