"""The bare SDK loop of bench.label_throughput, run as a script of its own.

It sends the Messages request bodies in a JSON-lines file (the judge's own
bodies, both orders of every pair, built before timing) through
AsyncAnthropic with a number in flight, on the event loop ``referee label``
uses, and prints the seconds from its first request to its last answer and
its CPU seconds. A fresh process that imports only the SDK is what a user's
script is; timing it inside the bench would charge it the bench's imports.

    python -m bench.bare_judge_loop BODIES BASE_URL IN_FLIGHT
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any

import anthropic
import uvloop


async def send_all(bodies: list[dict[str, Any]], base_url: str, in_flight: int) -> float:
    # The judge's client settings (aiohttp transport); the SDK's retries stand in
    # for the judge's own, so a dropped keep-alive connection does not end the run.
    client = anthropic.AsyncAnthropic(
        http_client=anthropic.DefaultAioHttpClient(),
        api_key="bench",
        base_url=base_url,
        max_retries=2,
        timeout=60.0,
    )
    semaphore = asyncio.Semaphore(in_flight)

    async def one(body: dict[str, Any]) -> None:
        async with semaphore:
            await client.messages.create(**body)

    started = time.perf_counter()
    await asyncio.gather(*(one(body) for body in bodies))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def main() -> None:
    path, base_url, in_flight = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(path, encoding="utf-8") as lines:
        bodies = [json.loads(line) for line in lines]
    before = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = uvloop.run(send_all(bodies, base_url, in_flight))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "calls": len(bodies)}))


if __name__ == "__main__":
    main()
