"""Client-side rate limit against a provider that enforces one.

The fake provider answers 429 above --rpm requests in any 60 s window; the
judge is configured for the same --rpm. Reports the achieved request rate
and the number of 429s.

    python -m bench.rate_limit --rpm 600 --pairs 700
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.store import migrate
from bench.label_throughput import MODEL, write_pairs
from tests.fake_provider import FakeProvider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rpm", type=float, default=600.0)
    parser.add_argument("--pairs", type=int, default=700)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="referee-bench-"))
    database_url = os.environ.get("REFEREE_DATABASE_URL", f"sqlite:///{workdir / 'bench.db'}")
    migrate.upgrade(database_url)
    source = workdir / "pairs.jsonl"
    write_pairs(source, args.pairs)
    provider = FakeProvider.spawn(
        rpm_limit=int(args.rpm), latency_ms=50, record=False, retry_after=1
    )
    try:
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
            "label",
            str(source),
            "--judge",
            f"anthropic:{MODEL}",
            "--concurrency",
            "64",
            "--rpm",
            str(args.rpm),
        ]
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        stats = provider.stats()
    finally:
        provider.close()
    if result.returncode != 0:
        raise SystemExit(f"referee label failed: {result.stderr[-2000:]}")
    total = int(stats["total"])
    limited = int(stats["rpm_limited"])
    # Requests are only sent in the judging phase; time that, not start-up and enqueue.
    phase = re.search(r"judged \d+ pairs in ([\d.]+) s", result.stdout)
    window = float(phase.group(1)) if phase else elapsed
    print(
        f"configured {args.rpm:.0f} requests/min on both sides; {args.pairs} pairs, {total} requests"
    )
    print(
        f"achieved {60 * total / window:.1f} requests/min over {window:.1f} s "
        f"({60 * total / window / args.rpm:.3f} of the limit); 429s from the provider: {limited}"
    )


if __name__ == "__main__":
    main()
