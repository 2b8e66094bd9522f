"""Fleet-wide rate limits: --rpm/--tpm as one budget for every process on a judge (issue 20).

Each "process" here is a runtime of its own (its own registry, database
engine or Redis client, limiter instances), as two `referee worker`
processes would be; the requests are counted where the provider receives
them. The dead-process test runs a real subprocess and kills it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import create_engine, text

from app.labeling.batch import enqueue
from app.labeling.fleet_limits import shown_url
from app.labeling.jsonl import read_pairs
from app.labeling.runtime import runtime
from app.settings import Settings
from app.store import batches, migrate
from app.store.db import sync_url
from app.store.redis_limits import KEY_PREFIX
from judges.base import Judge
from judges.limits import FleetLimits, RateLimits, limit_key
from judges.protocol import call_with_retries
from judges.types import Order, ShownPair
from tests.conftest import ANTHROPIC_TEST_KEY, SKIP_POSTGRES
from tests.fake_provider import FakeProvider

REDIS_URL = os.environ.get("REFEREE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[1]
PAIR = ShownPair("What is 2+2?", "4", "5")


def redis_reachable() -> bool:
    try:
        return bool(Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except (RedisError, OSError):
        return False


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgres),
        "redis",
    ]
)
def fleet_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose processes share budgets: PostgreSQL by default, or Redis (on SQLite)."""
    if request.param == "redis":
        if not redis_reachable():
            pytest.skip(f"no Redis at {REDIS_URL}")
        url = f"sqlite:///{tmp_path / 'referee.db'}"
        migrate.upgrade(url)
        return Settings(database_url=url, judges_file=None, redis_url=REDIS_URL)
    if SKIP_POSTGRES:
        pytest.skip("REFEREE_TEST_SKIP_POSTGRES=1")
    return Settings(database_url=str(request.getfixturevalue("postgres_url")), judges_file=None)


def model_name() -> str:
    """A model of its own per test: budgets persist (in the database, or Redis for a minute)."""
    return f"claude-fleet-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def fleet_member(settings: Settings, model: str, **limits: float) -> AsyncIterator[Judge]:
    """One process's judge on ``model``: a runtime of its own, its own limiter instances."""
    async with runtime(settings) as labeler:
        config = labeler.resolve(f"anthropic:{model}").with_options(**limits)
        judge = labeler.registry.judge(config)
        async with labeler.registry.holding(judge):
            yield judge


async def calls(judge: Judge, n: int) -> None:
    outcomes = await asyncio.gather(*(call_with_retries(judge, PAIR, Order.AB) for _ in range(n)))
    assert all(records[-1].error_class is None for records in outcomes)


async def until_paused(judge: Judge) -> None:
    """Wait until the judge's process has seen the 429 (a poll: the limiter keeps no event)."""
    while judge.limits.paused_for == 0:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def arrivals(provider: FakeProvider, model: str) -> list[float]:
    return sorted(r["received_at"] for r in provider.requests() if r["body"].get("model") == model)


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The most requests the provider saw in any window of ``seconds`` (a sliding count)."""
    most, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_two_processes_share_one_budget(
    fleet_settings: Settings, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1200 rpm is 20 requests a second for both together, not 20 each."""
    model = model_name()
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_TEST_KEY)
    async with fleet_member(fleet_settings, model, rpm=1200) as first:
        # The other process holds another API key: the budget is the model's, not the key's.
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-other-" + "f" * 16)
        async with fleet_member(fleet_settings, model, rpm=1200) as second:
            assert first.limits is not second.limits
            assert isinstance(first.limits, FleetLimits)
            await asyncio.gather(calls(first, 20), calls(second, 20))
    times = arrivals(provider, model)
    assert len(times) == 40
    # 40 requests at 20 a second take about two seconds (two limiters of their own would send
    # all 40 within one). A loaded machine delays some requests into the next second: the
    # slots are paced exactly, the arrivals by a few requests' worth of scheduling jitter.
    assert most_in_any_window(times, 1.0) <= 24, times
    assert times[-1] - times[0] >= 1.8


async def test_a_429_seen_by_one_process_pauses_the_other(
    fleet_settings: Settings, provider: FakeProvider
) -> None:
    model = model_name()
    provider.configure(fail_next=["429"], retry_after=2)
    async with (
        fleet_member(fleet_settings, model, rpm=6000) as first,
        fleet_member(fleet_settings, model, rpm=6000) as second,
    ):
        answered_429 = asyncio.create_task(calls(first, 1))
        await until_paused(first)  # the fleet is told before the process pauses
        asked = time.monotonic()
        assert second.limits.paused_for == 0  # the other process learns it from the store only
        await calls(second, 1)
        await answered_429
    log = [r for r in provider.requests() if r["body"].get("model") == model]
    assert [r["status"] for r in log] == [429, 200, 200]
    limited = log[0]["received_at"]
    assert asked < limited + 1.0  # the second process asked well within the pause…
    assert all(r["received_at"] >= limited + 2.0 - 0.1 for r in log[1:])  # …and waited


async def test_without_a_limit_a_judge_keeps_the_process_local_limiter(
    fleet_settings: Settings, provider: FakeProvider
) -> None:
    async with fleet_member(fleet_settings, model_name()) as judge:
        assert type(judge.limits) is RateLimits
        await judge.limits.cool_down(30)  # its 429s are retried alone, as they always were
        assert judge.limits.paused_for == 0


async def test_on_sqlite_the_limiter_is_the_process_and_a_429_pauses_its_tasks(
    tmp_path: Path, provider: FakeProvider
) -> None:
    url = f"sqlite:///{tmp_path / 'referee.db'}"
    migrate.upgrade(url)
    model = model_name()
    provider.configure(fail_next=["429"], retry_after=1)
    async with fleet_member(Settings(database_url=url, judges_file=None), model, rpm=6000) as judge:
        assert type(judge.limits) is RateLimits
        first = asyncio.create_task(calls(judge, 1))
        await until_paused(judge)
        await calls(judge, 1)
        await first
    log = [r for r in provider.requests() if r["body"].get("model") == model]
    assert log[0]["status"] == 429
    assert all(r["received_at"] >= log[0]["received_at"] + 1.0 - 0.1 for r in log[1:])


def stored_keys(settings: Settings) -> list[str]:
    if settings.redis_url:
        client = Redis.from_url(settings.redis_url.get_secret_value())
        return [k.decode() for k in client.scan_iter(f"{KEY_PREFIX}*")]
    engine = create_engine(sync_url(settings.database_url))
    with engine.connect() as connection:
        keys = list(connection.execute(text("SELECT key FROM rate_limits")).scalars())
    engine.dispose()
    return keys


async def test_limits_are_kept_by_model_and_endpoint_never_by_key(
    fleet_settings: Settings, provider: FakeProvider
) -> None:
    model = model_name()
    async with fleet_member(fleet_settings, model, rpm=600, tpm=100_000) as judge:
        await calls(judge, 1)
        assert isinstance(judge.limits, FleetLimits)
        assert judge.limits.key == limit_key(judge.config) == f"anthropic:{model}@default"
    keys = [k for k in stored_keys(fleet_settings) if model in k]
    assert len(keys) == 1
    assert ANTHROPIC_TEST_KEY not in keys[0]
    assert "sk-" not in keys[0]


DEAD_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from app.labeling.fleet_limits import shared_limits
    from app.settings import Settings
    from app.store.db import Database
    from judges import JudgeRegistry
    from judges.config import config_from_spec

    async def main() -> None:
        settings = Settings()
        db = Database(settings.database_url)
        registry = JudgeRegistry()
        async with shared_limits(settings, db, registry) as budgets:
            limits = budgets.limits_for(config_from_spec(sys.argv[1], rpm=60))
            while True:
                await limits.acquire(100)
                print("acquired", flush=True)

    asyncio.run(main())
    """
)


def kill_while_waiting(settings: Settings, spec: str) -> None:
    """Run a process that takes a slot a second on ``spec``, and SIGKILL it mid-wait."""
    env = {
        **os.environ,
        "REFEREE_DATABASE_URL": settings.database_url,
        "REFEREE_REDIS_URL": settings.redis_url.get_secret_value() if settings.redis_url else "",
    }
    holder = subprocess.Popen(
        [sys.executable, "-c", DEAD_HOLDER, spec],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "acquired"
        assert holder.stdout.readline().strip() == "acquired"  # now waiting for the third
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


async def test_a_dead_process_holds_nothing(
    fleet_settings: Settings, provider: FakeProvider
) -> None:
    """A process killed while it waits for its next slot (rpm 60: one a second) leaves the
    budget as any slot passing would: the next process waits at most that one slot."""
    spec = f"anthropic:{model_name()}"
    kill_while_waiting(fleet_settings, spec)
    async with runtime(fleet_settings) as labeler:
        limits = labeler.registry.judge(labeler.resolve(spec).with_options(rpm=60)).limits
        started = time.monotonic()
        await limits.acquire(100)
        await limits.acquire(100)
        waited = time.monotonic() - started
    # At most the dead process's one reserved slot, then our own first and second slots.
    assert waited <= 3 * 1.01 + 0.5
    if not fleet_settings.redis_url:
        engine = create_engine(sync_url(fleet_settings.database_url))
        with engine.connect() as connection:
            held = connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE relation = 'rate_limits'::regclass")
            ).scalar_one()
        engine.dispose()
        assert held == 0


def referee(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "url", "says"),
    [
        ("worker", "bogus://127.0.0.1:6379/0", "is not a Redis URL"),
        ("worker", "redis://:hunter2@127.0.0.1:1/0", "cannot reach Redis"),
        ("worker", "redis://127.0.0.1:6379/notanumber", "is not a Redis URL"),
        ("serve", "redis://:hunter2@127.0.0.1:1/0", "cannot reach Redis"),
    ],
)
def test_a_bad_redis_url_is_one_clear_error(
    tmp_path: Path, command: str, url: str, says: str
) -> None:
    database = f"sqlite:///{tmp_path / 'referee.db'}"
    migrate.upgrade(database)
    env = {**os.environ, "REFEREE_DATABASE_URL": database, "REFEREE_REDIS_URL": url}
    result = referee(command, env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "REFEREE_REDIS_URL" in result.stderr, result.stderr
    assert says in result.stderr, result.stderr
    assert "hunter2" not in result.stderr


def test_error_messages_mask_the_redis_password() -> None:
    assert shown_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert shown_url("redis://host:6379/0") == "redis://host:6379/0"


async def test_referee_workers_with_rpm_share_it(
    postgres_url: str, provider: FakeProvider, tmp_path: Path
) -> None:
    """Two `referee worker --rpm 1200` processes on one batch: 20 requests a second together.

    120 requests take six seconds, so the two overlap once both have started
    (two limits of their own would send 40 a second meanwhile)."""
    if SKIP_POSTGRES:
        pytest.skip("REFEREE_TEST_SKIP_POSTGRES=1")
    model = model_name()
    source = tmp_path / "pairs.jsonl"
    lines = (
        {"prompt": f"Question {i}?", "response_a": f"Answer {i}.", "response_b": f"Reply {i}!"}
        for i in range(60)
    )
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    settings = Settings(database_url=postgres_url, judges_file=None)
    async with runtime(settings) as labeler:
        config = labeler.resolve(f"anthropic:{model}")
        async with labeler.db.transaction() as session:
            batch, _ = await batches.get_or_create(session, model, str(source), config.label)
        with source.open(encoding="utf-8") as stream:
            await enqueue(labeler, batch.id, config, read_pairs(stream, str(source)), str(source))
    env = {**os.environ, "REFEREE_DATABASE_URL": postgres_url}
    command = ["worker", "--batch", str(batch.id), "--concurrency", "16", "--rpm", "1200"]
    workers = await asyncio.gather(*(asyncio.to_thread(referee, *command, env=env) for _ in "ab"))
    assert all(w.returncode == 0 for w in workers), [w.stderr for w in workers]
    times = arrivals(provider, model)
    assert len(times) == 120  # both orders of 60 pairs
    assert most_in_any_window(times, 1.0) <= 24, times
    assert times[-1] - times[0] >= 5.5
    assert all(w.stdout.startswith("worker judged") for w in workers)
