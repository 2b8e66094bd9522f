"""The reward service's shared capacity: sends come first, bounded, and nothing leaks.

While items wait for a slot, an item leaving its slot stores its result
only once the waiting call has been sent; that wait is bounded; the count
of waiting items and the admission count return to zero however a wait or
a request ends (a deadline, a cancelled request at any point).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from app.labeling.compare import Labeler
from app.labeling.rewards import RewardRequest, RewardService
from app.labeling.rewards import capacity as capacity_module
from app.labeling.rewards.capacity import Capacity, DeadlinePassed
from app.settings import Settings
from app.store.db import Database
from judges import JudgeRegistry
from judges.testing import Script
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"


def far() -> float:
    return asyncio.get_running_loop().time() + 60


async def test_waiting_calls_are_sent_before_finished_ones_are_stored() -> None:
    """Two calls answered together, two items waiting: both are sent before either is stored."""
    capacity = Capacity(in_flight=2, queued=10)
    events: list[str] = []
    answered = asyncio.Event()
    both_sent = asyncio.Event()

    async def item(name: str) -> None:
        async with capacity.slot(far()):
            events.append(f"{name} sent")
            if len(events) == 2:
                both_sent.set()
            await answered.wait()  # the two first calls are answered in the same turn
        events.append(f"{name} stored")

    first = [asyncio.create_task(item(name)) for name in ("a", "b")]
    await both_sent.wait()
    waiting = [asyncio.create_task(item(name)) for name in ("c", "d")]
    await asyncio.sleep(0)
    assert capacity.waiting == 2
    answered.set()
    await asyncio.gather(*first, *waiting)
    assert events[:4] == ["a sent", "b sent", "c sent", "d sent"]
    assert sorted(events[4:]) == ["a stored", "b stored", "c stored", "d stored"]
    assert capacity.waiting == 0


@pytest.mark.parametrize("bound", ["max defer", "deadline"])
async def test_storing_waits_for_sends_only_so_long(
    bound: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue that does not drain delays the bookkeeping by MAX_DEFER_S or to the deadline."""
    monkeypatch.setattr(capacity_module, "MAX_DEFER_S", 0.05 if bound == "max defer" else 60)
    capacity = Capacity(in_flight=1, queued=10)
    loop = asyncio.get_running_loop()
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with capacity.slot(far()):
            holding.set()
            await release.wait()

    async def wait_for_slot() -> None:
        async with capacity.slot(far()):
            pass

    holder = asyncio.create_task(hold())
    await holding.wait()
    waiter = asyncio.create_task(wait_for_slot())
    await asyncio.sleep(0)
    assert capacity.waiting == 1
    started = loop.time()
    await capacity.after_sends(started + (60 if bound == "max defer" else 0.05))
    assert 0.04 <= loop.time() - started < 1.0
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiter), timeout=5)
    assert capacity.waiting == 0


async def test_the_waiting_count_returns_to_zero_after_deadlines_and_cancels() -> None:
    capacity = Capacity(in_flight=1, queued=10)
    loop = asyncio.get_running_loop()
    release = asyncio.Event()

    async def hold() -> None:
        async with capacity.slot(far()):
            await release.wait()

    async def late() -> None:
        async with capacity.slot(loop.time() + 0.02):
            raise AssertionError("a slot after the deadline")

    async def cancelled() -> None:
        async with capacity.slot(far()):
            raise AssertionError("a slot for a cancelled item")

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    gone = asyncio.create_task(cancelled())
    await asyncio.sleep(0)
    assert capacity.waiting == 1
    assert not capacity.sent.is_set()
    with pytest.raises(DeadlinePassed):
        await late()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert capacity.waiting == 0
    assert capacity.sent.is_set()
    release.set()
    await holder
    assert not capacity.slots.locked()


async def test_a_request_cancelled_anywhere_leaves_nothing_admitted(
    database_url: str, registry: JudgeRegistry, script: Script
) -> None:
    """Cancel a request at points from before its first call to after its last.

    Items started go on and store their result (counted out when they
    finish); items never started are counted out at once. Some cancel must
    land while the request is starting its items, or the test proves nothing.
    """
    db = Database(database_url)
    service = RewardService(Labeler(db, registry, Settings(database_url=database_url)))
    size = 40
    started_counts = []
    # Cancelled before the first call, k turns after it (while the items are being
    # started, one a turn), and after all of them.
    for after_first_call in (None, 0, 1, 2, 5, 10, 20, 1000):
        items: list[dict[str, Any]] = [
            {"prompt": "Say something.", "completion": f"answer {n} ({after_first_call})"}
            for n in range(size)
        ]
        body = {"scorer": {"judge": "scripted:rater"}, "items": items}
        judged_before = len(script.rated)
        task = asyncio.create_task(service.score(RewardRequest.model_validate(body)))
        if after_first_call is not None:
            # Turn by turn on purpose: the cancel must land between two items' starts.
            while len(script.rated) == judged_before and not task.done():  # noqa: ASYNC110
                await asyncio.sleep(0)
            for _ in range(after_first_call):
                await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await service.aclose()
        assert service.capacity.pending == 0, after_first_call
        assert service.capacity.waiting == 0, after_first_call
        started_counts.append(len(script.rated) - judged_before)
    await db.dispose()
    assert any(0 < started < size for started in started_counts), started_counts


async def test_requests_arriving_together_get_slots_in_arrival_order(
    database_url: str, registry: JudgeRegistry, provider: FakeProvider
) -> None:
    """Two requests that fill the slots each: the first finishes a judge latency before the second.

    Had their items been started in turns, both would hold half the slots and
    both would finish after two latencies.
    """
    latency = 1.0
    provider.configure(latency_ms=latency * 1000)
    size = 32  # enough that starting one request's items spans many turns of the loop
    settings = Settings(database_url=database_url, judges_file=None, reward_max_in_flight=size)
    db = Database(database_url)
    service = RewardService(Labeler(db, registry, settings))
    loop = asyncio.get_running_loop()

    def request(name: str) -> RewardRequest:
        items = [{"prompt": "Say something.", "completion": f"{name} {n}"} for n in range(size)]
        return RewardRequest.model_validate({"scorer": {"judge": JUDGE}, "items": items})

    async def timed(body: RewardRequest) -> float:
        batch = await service.score(body)
        assert batch.counts()["scored"] == size
        return loop.time()

    # The judge's SDK client is built on first use: not part of what is timed.
    await service.score(request("warm-up"))
    started = loop.time()
    first, second = await asyncio.gather(timed(request("first")), timed(request("second")))
    await service.aclose()
    await db.dispose()
    assert first - started < 1.5 * latency
    assert second - started >= 2 * latency
