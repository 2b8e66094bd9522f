"""Throughput of `referee generate` against a bare loop of the same SDK calls.

Both run against one fake provider in its own process on loopback, in the same run:

- the bare loop sends one OpenAI chat completion with ``n`` per prompt through
  AsyncOpenAI (the same aiohttp transport the policy uses) with the same number
  in flight, storing nothing;
- `referee generate` samples ``n`` answers for each prompt with `--concurrency`
  requests in flight (one request per prompt: the API's native ``n``), storing
  every sample with its provenance and every distinct candidate.

    python -m bench.generation --prompts 4000 --latency-ms 1000 --in-flight 256 -n 4

REFEREE_DATABASE_URL picks the database (default: a fresh SQLite file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

from app.store import migrate
from tests.fake_provider import FakeProvider

MODEL = "gpt-4o-mini"
TEMPERATURE = 1.0
MAX_TOKENS = 256


def write_prompts(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            prompt = f"Question number {i}: explain something briefly."
            out.write(json.dumps({"id": f"q{i}", "prompt": prompt}) + "\n")


async def bare_loop(base_url: str, prompts: int, n: int, in_flight: int) -> float:
    client = openai.AsyncOpenAI(
        api_key="bench",
        base_url=base_url,
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(),
    )
    semaphore = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with semaphore:
            await client.chat.completions.create(
                model=MODEL,
                messages=[
                    {"role": "user", "content": f"Question number {i}: explain something briefly."}
                ],
                n=n,
                max_tokens=MAX_TOKENS,
                temperature=TEMPERATURE,
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(prompts)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=4000)
    parser.add_argument("-n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    parser.add_argument("--in-flight", type=int, default=256, help="requests in flight")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="referee-bench-"))
    database_url = os.environ.get("REFEREE_DATABASE_URL", f"sqlite:///{workdir / 'bench.db'}")
    migrate.upgrade(database_url)
    source = workdir / "prompts.jsonl"
    write_prompts(source, args.prompts)
    provider = FakeProvider.spawn(latency_ms=args.latency_ms, record=False)
    try:
        bare_elapsed = asyncio.run(
            bare_loop(provider.openai_base_url, args.prompts, args.n, args.in_flight)
        )
        env = {
            **os.environ,
            "REFEREE_DATABASE_URL": database_url,
            "OPENAI_BASE_URL": provider.openai_base_url,
            "OPENAI_API_KEY": "bench",
        }
        command = [
            *(sys.executable, "-m", "app.cli", "generate", str(source)),
            *("--policy", f"openai:{MODEL}", "-n", str(args.n)),
            *("--temperature", str(TEMPERATURE), "--max-tokens", str(MAX_TOKENS)),
            *("--concurrency", str(args.in_flight)),
        ]
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        whole_elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"referee generate failed: {result.stderr[-2000:]}")
    finally:
        provider.close()

    samples = args.prompts * args.n
    bare_rate, whole_rate = samples / bare_elapsed, samples / whole_elapsed
    print(
        f"database: {database_url.split(':')[0]}; {args.prompts} prompts x n={args.n}, "
        f"{args.latency_ms:.0f} ms/request, {args.in_flight} requests in flight"
    )
    print(f"bare SDK loop    : {bare_rate:8.1f} samples/s ({bare_elapsed:.1f} s)")
    print(
        f"referee generate : {whole_rate:8.1f} samples/s ({whole_elapsed:.1f} s, whole process "
        f"incl. start-up and storing the prompts); /bare {whole_rate / bare_rate:.3f}"
    )
    phase = re.search(r"drew (\d+) samples in \d+ requests in ([\d.]+) s", result.stdout)
    if phase:
        phase_rate = int(phase.group(1)) / float(phase.group(2))
        print(
            f"sampling phase alone (after start-up and storing the prompts): "
            f"{phase_rate:.1f} samples/s; /bare {phase_rate / bare_rate:.3f}"
        )
    print(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "")


if __name__ == "__main__":
    main()
