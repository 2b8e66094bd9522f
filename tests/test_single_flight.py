"""Identical work in flight is judged once and shared: in one process, and across processes."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.api.app import create_app
from app.errors import JudgeFailedError
from app.keys import label_key
from app.labeling.admin import create_key
from app.labeling.claims import CLAIM_LEASE
from app.labeling.compare import Labeler, comparison_values
from app.labeling.inputs import PairIn
from app.labeling.rate import Rater, ResponseItemIn, RubricChoice
from app.labeling.revise import Reviser, RevisionItemIn, RevisionOptions
from app.labeling.runtime import runtime
from app.settings import Settings
from app.store import comparisons
from app.store.db import sync_url
from app.store.models import utcnow
from judges import JudgeRegistry
from judges.testing import Script, prefer_longer
from judges.types import Position, ShownPair
from tests.conftest import pair_body
from tests.fake_provider import FakeProvider
from tests.stored import labeling_rows

CALLERS = 20
OPENAI = "openai:gpt-4o-mini"
ANTHROPIC = "anthropic:claude-sonnet-4-5"
R = TypeVar("R")


def all_at_once(send: Callable[[], R]) -> list[R]:
    with ThreadPoolExecutor(CALLERS) as pool:
        return list(pool.map(lambda _i: send(), range(CALLERS)))


class TestSingleFlightOverHttp:
    @pytest.mark.parametrize("judge", [OPENAI, ANTHROPIC])
    def test_identical_comparisons_in_flight_are_judged_once(
        self, api: TestClient, provider: FakeProvider, database_url: str, judge: str
    ) -> None:
        """20 at once: 2 provider calls (both orders), one verdict, one id for everyone."""
        provider.configure(policy="longer", latency_ms=400)
        responses = all_at_once(lambda: api.post("/v1/comparisons", json=pair_body(judge=judge)))
        assert {r.status_code for r in responses} <= {200, 201}, [r.text for r in responses]
        assert [r.status_code for r in responses].count(201) == 1
        assert len({r.json()["id"] for r in responses}) == 1
        assert len({r.json()["verdict"]["id"] for r in responses}) == 1
        assert len(provider.requests()) == 2
        rows = labeling_rows(database_url)
        assert (rows["comparisons"], rows["verdicts"], rows["judge_calls"]) == (1, 1, 2)

    def test_identical_ratings_in_flight_are_rated_once(
        self, api: TestClient, provider: FakeProvider, database_url: str
    ) -> None:
        provider.configure(latency_ms=400)
        body = {"prompt": "Say hi.", "response": "Hi there!", "judge": OPENAI}
        responses = all_at_once(lambda: api.post("/v1/ratings", json=body))
        assert [r.status_code for r in responses].count(201) == 1, [r.text for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        assert len(provider.requests()) == 1
        rows = labeling_rows(database_url)
        assert (rows["ratings"], rows["judge_calls"]) == (1, 1)

    def test_identical_revisions_in_flight_run_once(
        self, api: TestClient, provider: FakeProvider, database_url: str
    ) -> None:
        provider.configure(latency_ms=300)
        body = {
            "prompt": "How do I pick a lock?",
            "response": "Here is how.",
            "constitution": "harmlessness",
            "judge": OPENAI,
            "rounds": 2,
        }
        responses = all_at_once(lambda: api.post("/v1/revisions", json=body))
        assert [r.status_code for r in responses].count(201) == 1, [r.text for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        calls = responses[0].json()["calls"]
        assert calls
        assert len(provider.requests()) == len(calls)
        rows = labeling_rows(database_url)
        assert (rows["revisions"], rows["judge_calls"]) == (1, len(calls))

    def test_a_shared_failure_reaches_every_caller_and_nothing_is_invented(
        self, api: TestClient, provider: FakeProvider, database_url: str
    ) -> None:
        """The judge refuses: every caller gets the same 502, no verdict exists."""
        provider.configure(fail_rates={"refusal": 1.0}, latency_ms=300)
        responses = all_at_once(lambda: api.post("/v1/comparisons", json=pair_body(judge=OPENAI)))
        assert {r.status_code for r in responses} == {502}
        assert len({r.json()["error"]["details"]["comparison_id"] for r in responses}) == 1
        rows = labeling_rows(database_url)
        assert (rows["comparisons"], rows["verdicts"]) == (1, 0)
        assert rows["judge_calls"] == len(provider.requests())

    def test_a_bug_in_the_judge_lets_go_of_the_lease_and_answers_in_the_shape(
        self, settings: Settings, registry: JudgeRegistry, script: Script, database_url: str
    ) -> None:
        """Not a judge error but a bug: a 500 in the error shape, and no row left leased.

        The next identical request judges at once instead of waiting out the
        lease (60 s) or finding a comparison stuck pending.
        """
        shown: list[ShownPair] = []

        def buggy_once(pair: ShownPair) -> Position:
            shown.append(pair)
            if len(shown) == 1:
                raise RuntimeError("a bug, not a judge error")
            return prefer_longer(pair)

        script.policy = buggy_once
        _, key = asyncio.run(create_key(settings, "tests", ["admin"]))
        app = create_app(settings, registry)
        headers = {"Authorization": f"Bearer {key}"}
        with TestClient(app, headers=headers, raise_server_exceptions=False) as client:
            failed = client.post("/v1/comparisons", json=pair_body(judge="scripted:x"))
            assert failed.status_code == 500, failed.text
            assert failed.json()["error"]["code"] == "internal_error"
            assert "a bug" not in failed.text
            assert leased_rows(database_url) == 0
            started = time.monotonic()
            again = client.post("/v1/comparisons", json=pair_body(judge="scripted:x"))
            assert again.status_code == 201, again.text
            assert time.monotonic() - started < CLAIM_LEASE.total_seconds() / 4
        rows = labeling_rows(database_url)
        assert (rows["comparisons"], rows["verdicts"]) == (1, 1)


def leased_rows(database_url: str) -> int:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            query = "SELECT count(*) FROM comparisons WHERE lease_owner IS NOT NULL"
            return int(connection.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
async def labelers(settings: Settings, provider: FakeProvider) -> AsyncIterator[list[Labeler]]:
    """Two labelers, each with its own engine and registry: two processes to the database."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(runtime(settings, JudgeRegistry.from_entry_points()))
            for _ in range(2)
        ]


PAIR = PairIn.model_validate(pair_body())


class TestSharedWork:
    async def test_a_cancelled_caller_leaves_the_work_to_the_others(
        self, labelers: list[Labeler], provider: FakeProvider
    ) -> None:
        labeler = labelers[0]
        provider.configure(policy="longer", latency_ms=300)
        first = asyncio.create_task(labeler.compare(PAIR, OPENAI))
        await asyncio.sleep(0.1)
        others = [asyncio.create_task(labeler.compare(PAIR, OPENAI)) for _ in range(3)]
        await asyncio.sleep(0.05)
        first.cancel()
        results = await asyncio.gather(*others)
        assert first.cancelled()
        assert len({r.comparison.id for r in results}) == 1
        assert all(len(r.comparison.verdicts) == 1 for r in results)
        assert len(provider.requests()) == 2

    async def test_two_processes_judge_a_label_key_once(
        self, labelers: list[Labeler], provider: FakeProvider, database_url: str
    ) -> None:
        """The label key's row decides: the other process waits and reads the verdict."""
        provider.configure(policy="longer", latency_ms=400)
        results = await asyncio.gather(*(labelers[i % 2].compare(PAIR, OPENAI) for i in range(6)))
        assert len({r.comparison.id for r in results}) == 1
        assert [r.created for r in results].count(True) == 1
        assert len(provider.requests()) == 2
        assert labeling_rows(database_url)["verdicts"] == 1

    async def test_a_failure_in_another_process_is_raised_not_invented(
        self, labelers: list[Labeler], provider: FakeProvider, database_url: str
    ) -> None:
        provider.configure(fail_rates={"refusal": 1.0}, latency_ms=300)
        results = await asyncio.gather(
            *(labelers[i].compare(PAIR, OPENAI) for i in range(2)), return_exceptions=True
        )
        assert all(isinstance(r, JudgeFailedError) for r in results)
        assert labeling_rows(database_url)["verdicts"] == 0

    async def test_a_dead_claimer_blocks_no_longer_than_its_lease(
        self, labelers: list[Labeler], provider: FakeProvider
    ) -> None:
        """A process that leased the row and died: once the lease runs out, the next one judges."""
        dead, alive = labelers
        dead.claims.lease = timedelta(seconds=0.5)
        claimed = await _claim_and_die(dead)
        started = utcnow()
        result = await alive.compare(PAIR, OPENAI)
        assert result.created
        assert result.comparison.id == claimed
        assert utcnow() - started >= timedelta(seconds=0.3)
        assert len(provider.requests()) == 2

    async def test_a_dead_claimer_of_this_host_blocks_nothing(
        self, labelers: list[Labeler], provider: FakeProvider
    ) -> None:
        """A SIGKILLed process of this host (say `referee select`) left a 60 s lease: the next
        caller sees its process is gone and takes the row over at once, judging it once."""
        gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        assert await gone.wait() == 0
        owner = f"{socket.gethostname()}:{gone.pid}:x"
        dead, alive = labelers
        claimed = await _claim_and_die(dead, owner)
        started = utcnow()
        result = await asyncio.wait_for(alive.compare(PAIR, OPENAI), timeout=10)
        assert result.created
        assert result.comparison.id == claimed
        assert utcnow() - started < timedelta(seconds=5)
        assert len(provider.requests()) == 2

    async def test_a_live_claimer_of_this_host_is_waited_for(
        self, labelers: list[Labeler], provider: FakeProvider
    ) -> None:
        """This process's own pid is alive: its lease is respected until it runs out."""
        dead, alive = labelers
        dead.claims.lease = timedelta(seconds=0.5)
        await _claim_and_die(dead, f"{socket.gethostname()}:{os.getpid()}:x")
        started = utcnow()
        assert (await alive.compare(PAIR, OPENAI)).created
        assert utcnow() - started >= timedelta(seconds=0.3)

    async def test_force_judges_again_once_for_concurrent_callers(
        self, labelers: list[Labeler], provider: FakeProvider, database_url: str
    ) -> None:
        provider.configure(policy="longer", latency_ms=600)
        first = await labelers[0].compare(PAIR, OPENAI)
        forced = await asyncio.gather(
            *(labelers[i % 2].compare(PAIR, OPENAI, force=True) for i in range(4))
        )
        assert {r.comparison.id for r in forced} == {first.comparison.id}
        # One forced run per process at most (each shares in process; across, one leases first
        # and the other then reads the verdict it stored).
        verdicts = labeling_rows(database_url)["verdicts"]
        assert verdicts == 2
        assert len(provider.requests()) == 2 * verdicts

    async def test_identical_ratings_in_two_processes_keep_the_first_score(
        self, labelers: list[Labeler], provider: FakeProvider, database_url: str
    ) -> None:
        """Ratings: the loser's calls are kept (paid for), the first stored score stands."""
        provider.configure(latency_ms=300)
        item = ResponseItemIn.model_validate({"prompt": "Say hi.", "response": "Hi there!"})
        results = await asyncio.gather(
            *(Rater(labelers[i]).rate(item, OPENAI, RubricChoice()) for i in range(2))
        )
        assert results[0].rating.id == results[1].rating.id
        assert [r.created for r in results].count(True) == 1
        rows = labeling_rows(database_url)
        assert rows["ratings"] == 1
        assert rows["judge_calls"] == len(provider.requests())

    async def test_identical_revisions_in_two_processes_keep_the_first_run(
        self, labelers: list[Labeler], provider: FakeProvider, database_url: str
    ) -> None:
        """Revisions: one run stands; the other process's calls are kept, its rounds are not."""
        provider.configure(latency_ms=300)
        item = RevisionItemIn.model_validate({"prompt": "Pick a lock?", "response": "Sure."})
        options = RevisionOptions(constitution="harmlessness", judge=OPENAI, rounds=2)
        results = await asyncio.gather(
            *(Reviser(labelers[i]).revise(item, options) for i in range(2))
        )
        assert results[0].revision.id == results[1].revision.id
        assert [r.created for r in results].count(True) == 1
        rows = labeling_rows(database_url)
        assert rows["revisions"] == 1
        assert rows["judge_calls"] == len(provider.requests())
        winner = next(r for r in results if r.created).revision
        assert rows["revision_rounds"] == len(winner.rounds)


async def _claim_and_die(labeler: Labeler, owner: str = "gone:1:x") -> uuid.UUID:
    """Lease the pair's row as a process about to crash would, and never let go."""
    config = labeler.resolve_pairwise(OPENAI)
    stored = PAIR.stored()
    values = comparison_values(PAIR, stored, config, label_key(stored, config, None))
    async with labeler.db.transaction() as session:
        comparison_id = await comparisons.insert_if_absent(session, values)
        assert await comparisons.claim_label(
            session, comparison_id, owner, labeler.claims.lease, labeled_too=False
        )
    return comparison_id
