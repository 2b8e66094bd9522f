"""Throughput of `referee generate` against a bare loop of the same SDK calls.

Both run against one fake provider in its own process on loopback, in the same run,
each in a fresh process of its own, on the same event loop (uvloop where installed,
as `referee generate` uses):

- the bare loop sends one OpenAI chat completion with ``n`` per prompt through
  AsyncOpenAI (the same aiohttp transport the policy uses) with the same number
  in flight, storing nothing; its process imports only the SDK, so its garbage
  collector has no more to walk than a user's script would;
- `referee generate` samples ``n`` answers for each prompt with `--concurrency`
  requests in flight (one request per prompt: the API's native ``n``), storing
  every sample with its provenance and every distinct candidate.

The loop is timed from its first request to its last answer. `referee generate`
is compared twice: its sampling phase (first claim to the last sample stored),
and the whole command as a user runs it (interpreter start-up, imports, reading
and storing the prompts, exit), against the same loop time. With ``--rounds``
the two alternate and the medians are compared. CPU seconds per 1,000 samples
are printed too: on a machine that other work shares, they move less than the
wall-clock rates.

    python -m bench.generation --prompts 4000 --latency-ms 1000 --in-flight 256 -n 4

REFEREE_DATABASE_URL picks the database (default: a fresh SQLite file per round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "gpt-4o-mini"
TEMPERATURE = 1.0
MAX_TOKENS = 256
TARGET = 0.95


def prompt_text(i: int) -> str:
    return f"Question number {i}: explain something briefly."


def write_prompts(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            out.write(json.dumps({"id": f"q{i}", "prompt": prompt_text(i)}) + "\n")


async def bare_loop(base_url: str, prompts: int, n: int, in_flight: int) -> float:
    import openai  # here: the parent process never needs the SDK

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
                messages=[{"role": "user", "content": prompt_text(i)}],
                n=n,
                max_tokens=MAX_TOKENS,
                temperature=TEMPERATURE,
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(prompts)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def run_on_referee_loop(coroutine: Any) -> Any:
    """The event loop `referee generate` runs on (app.cli.console.run_fast)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def bare_main(base_url: str, prompts: int, n: int, in_flight: int) -> None:
    """The bare loop's own process: prints its sampling time as JSON."""
    elapsed = run_on_referee_loop(bare_loop(base_url, prompts, n, in_flight))
    print(json.dumps({"elapsed_s": elapsed}))


@dataclass
class Timed:
    whole_s: float
    cpu_s: float
    stdout: str


def timed(command: list[str], env: dict[str, str]) -> Timed:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    whole = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} … failed: {result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(whole, cpu, result.stdout)


@dataclass
class Round:
    bare_s: float
    bare_cpu_s: float
    whole_s: float
    phase_s: float
    referee_cpu_s: float


def one_round(args: argparse.Namespace, base_url: str, workdir: Path, index: int) -> Round:
    from app.store import migrate

    database_url = os.environ.get("REFEREE_DATABASE_URL")
    if database_url is None:
        database_url = f"sqlite:///{workdir / f'bench-{index}.db'}"
    migrate.upgrade(database_url)
    source = workdir / "prompts.jsonl"
    bare = timed(
        [
            *(sys.executable, "-m", "bench.generation", "--bare-loop", base_url),
            *("--prompts", str(args.prompts), "-n", str(args.n)),
            *("--in-flight", str(args.in_flight)),
        ],
        dict(os.environ),
    )
    env = {
        **os.environ,
        "REFEREE_DATABASE_URL": database_url,
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "bench",
    }
    command = [
        *(sys.executable, "-m", "app.cli", "generate", str(source)),
        *("--policy", f"openai:{MODEL}", "-n", str(args.n)),
        *("--temperature", str(TEMPERATURE), "--max-tokens", str(MAX_TOKENS)),
        *("--concurrency", str(args.in_flight), "--name", f"bench-{workdir.name}-{index}"),
    ]
    referee = timed(command, env)
    phase = re.search(r"drew (\d+) samples in \d+ requests in ([\d.]+) s", referee.stdout)
    if phase is None or int(phase.group(1)) != args.prompts * args.n:
        raise SystemExit(f"referee generate did not draw every sample: {referee.stdout[-1000:]}")
    return Round(
        bare_s=json.loads(bare.stdout)["elapsed_s"],
        bare_cpu_s=bare.cpu_s,
        whole_s=referee.whole_s,
        phase_s=float(phase.group(2)),
        referee_cpu_s=referee.cpu_s,
    )


def verdict(ratio: float) -> str:
    return f"{ratio:.3f} (target {TARGET}: {'met' if ratio >= TARGET else 'NOT met'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=4000)
    parser.add_argument("-n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    parser.add_argument("--in-flight", type=int, default=256, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=1, help="alternate loop and command")
    parser.add_argument("--bare-loop", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_loop:
        bare_main(args.bare_loop, args.prompts, args.n, args.in_flight)
        return

    from tests.fake_provider import FakeProvider

    workdir = Path(tempfile.mkdtemp(prefix="referee-bench-"))
    write_prompts(workdir / "prompts.jsonl", args.prompts)
    load_before = os.getloadavg()
    provider = FakeProvider.spawn(latency_ms=args.latency_ms, record=False)
    try:
        rounds = [one_round(args, provider.openai_base_url, workdir, i) for i in range(args.rounds)]
    finally:
        provider.close()
    load_after = os.getloadavg()

    samples = args.prompts * args.n

    def median(values: list[float]) -> float:
        return statistics.median(values)

    bare = median([r.bare_s for r in rounds])
    whole = median([r.whole_s for r in rounds])
    phase = median([r.phase_s for r in rounds])
    ideal = args.in_flight * args.n / (args.latency_ms / 1000) if args.latency_ms else None
    print(
        f"{args.prompts} prompts x n={args.n}, {args.latency_ms:.0f} ms/request, "
        f"{args.in_flight} requests in flight; database "
        f"{os.environ.get('REFEREE_DATABASE_URL', 'sqlite').split(':')[0]}; "
        f"{len(rounds)} round(s), medians; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after" + (f"; ideal {ideal:.0f} samples/s" if ideal else "")
    )
    print(f"bare SDK loop            : {samples / bare:8.1f} samples/s ({bare:.1f} s)")
    print(
        f"referee generate, phase  : {samples / phase:8.1f} samples/s ({phase:.1f} s, first claim "
        f"to last sample stored); /bare {verdict(bare / phase)}"
    )
    print(
        f"referee generate, whole  : {samples / whole:8.1f} samples/s ({whole:.1f} s, the process "
        f"incl. start-up, storing the prompts and exit); /bare {verdict(bare / whole)}"
    )
    bare_cpu = median([r.bare_cpu_s for r in rounds])
    referee_cpu = median([r.referee_cpu_s for r in rounds])
    print(
        f"CPU per 1,000 samples    : bare loop {1000 * bare_cpu / samples:.3f} s (its process), "
        f"referee generate {1000 * referee_cpu / samples:.3f} s (the whole process)"
    )


if __name__ == "__main__":
    main()
