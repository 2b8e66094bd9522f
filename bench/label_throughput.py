"""Throughput and CPU overhead of `referee label` against a bare loop of the same SDK calls.

Both run against one fake provider in its own process on loopback, in the same run:

- the bare loop sends 2 × N Anthropic calls through AsyncAnthropic with the same
  number in flight (no storage, no protocol);
- `referee label` judges N pairs in both orders with `--concurrency` requests in
  flight, storing everything.

    python -m bench.label_throughput --pairs 5000 --latency-ms 1000 --in-flight 256
    python -m bench.label_throughput --pairs 2000 --latency-ms 0 --in-flight 64   # CPU per pair

REFEREE_DATABASE_URL picks the database (default: a fresh SQLite file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anthropic

from app.store import migrate
from tests.fake_provider import FakeProvider

MODEL = "claude-sonnet-4-6"


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


async def bare_loop(base_url: str, calls: int, in_flight: int) -> float:
    client = anthropic.AsyncAnthropic(api_key="bench", base_url=base_url, max_retries=0)
    semaphore = asyncio.Semaphore(in_flight)
    tool = {
        "name": "record_verdict",
        "description": "Record which response is better.",
        "input_schema": {
            "type": "object",
            "properties": {
                "rationale": {"type": "string"},
                "winner": {"type": "string", "enum": ["1", "2", "tie"]},
            },
            "required": ["rationale", "winner"],
            "additionalProperties": False,
        },
    }

    async def one(i: int) -> None:
        async with semaphore:
            await client.messages.create(
                model=MODEL,
                max_tokens=256,
                messages=[
                    {
                        "role": "user",
                        "content": f"<response_1>\nx{i}\n</response_1>\n<response_2>\ny\n</response_2>",
                    }
                ],
                tools=[tool],  # type: ignore[list-item]
                tool_choice={"type": "tool", "name": "record_verdict"},
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def cpu_seconds_of(function: object) -> float:
    before = resource.getrusage(resource.RUSAGE_SELF)
    function()  # type: ignore[operator]
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    parser.add_argument("--in-flight", type=int, default=256, help="requests in flight")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="referee-bench-"))
    database_url = os.environ.get("REFEREE_DATABASE_URL", f"sqlite:///{workdir / 'bench.db'}")
    migrate.upgrade(database_url)
    source = workdir / "pairs.jsonl"
    write_pairs(source, args.pairs)
    provider = FakeProvider.spawn(latency_ms=args.latency_ms, record=False, policy="longer")
    try:
        box: dict[str, float] = {}
        bare_cpu = cpu_seconds_of(
            lambda: box.update(
                t=asyncio.run(
                    bare_loop(provider.anthropic_base_url, 2 * args.pairs, args.in_flight)
                )
            )
        )
        bare_elapsed = box["t"]
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
            str(args.in_flight),
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        label_elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise SystemExit(f"referee label failed: {result.stderr[-2000:]}")
        label_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    finally:
        provider.close()

    ideal = args.in_flight / 2 / (args.latency_ms / 1000) if args.latency_ms else float("inf")
    bare_rate, label_rate = args.pairs / bare_elapsed, args.pairs / label_elapsed
    print(
        f"database: {database_url.split(':')[0]}; {args.pairs} pairs, {args.latency_ms:.0f} ms/call, {args.in_flight} requests in flight"
    )
    print(
        f"bare SDK loop : {bare_rate:7.1f} pairs/s ({bare_elapsed:.1f} s), CPU {1000 * bare_cpu / args.pairs:.2f} ms per 2 calls"
    )
    print(
        f"referee label : {label_rate:7.1f} pairs/s ({label_elapsed:.1f} s, whole process incl. start-up and enqueue), "
        f"CPU {1000 * label_cpu / args.pairs:.2f} ms per pair"
    )
    if args.latency_ms:
        print(
            f"ideal {ideal:.1f} pairs/s; label/ideal {label_rate / ideal:.3f}, bare/ideal {bare_rate / ideal:.3f}, "
            f"label/bare {label_rate / bare_rate:.3f}"
        )
    phase = re.search(r"judged (\d+) pairs in ([\d.]+) s", result.stdout)
    if phase and args.latency_ms:
        phase_rate = int(phase.group(1)) / float(phase.group(2))
        print(
            f"judging phase alone (after start-up and enqueue): {phase_rate:.1f} pairs/s; "
            f"/ideal {phase_rate / ideal:.3f}, /bare {phase_rate / bare_rate:.3f}"
        )
    print(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "")


if __name__ == "__main__":
    main()
