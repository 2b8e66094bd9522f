"""judges.retry: the bare first attempt then tenacity behave exactly as tenacity alone.

Every script of attempt outcomes is run through ``transient_retrying`` and
through tenacity's own retrying with the same policy; the attempts made,
the waits asked for (retry-after included), the retry listeners' calls and
the final error must be the same.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from judges.errors import RateLimitedError, TransientJudgeError, UnparseableError
from judges.retry import _tenacity_retrying, add_retry_listener, transient_retrying

OK = "ok"


def transient(n: int) -> TransientJudgeError:
    return TransientJudgeError(f"overloaded {n}")


def limited(n: int) -> RateLimitedError:
    return RateLimitedError(f"429 {n}", retry_after=3.0)


def unparseable(n: int) -> UnparseableError:
    return UnparseableError(f"no verdict {n}")


def cancelled(n: int) -> BaseException:
    return asyncio.CancelledError()


Outcome = Callable[[int], BaseException] | str

SCRIPTS: list[tuple[str, int, list[Outcome]]] = [
    ("success at once", 4, [OK]),
    ("one attempt allowed, success", 1, [OK]),
    ("transient then success", 4, [transient, OK]),
    ("rate limited then success (retry-after floors the wait)", 4, [limited, OK]),
    ("two transient then success", 4, [transient, limited, OK]),
    ("transient until the limit", 3, [transient, transient, transient]),
    ("one attempt allowed, transient", 1, [transient]),
    ("not transient at once", 4, [unparseable]),
    ("transient then not transient", 4, [transient, unparseable]),
    ("cancelled at once", 4, [cancelled]),
    ("transient then cancelled", 4, [limited, cancelled]),
]


async def drive(
    retrying: Any, outcomes: list[Outcome], waits: list[float]
) -> tuple[list[int], str]:
    """Run the ``async for attempt in …: with attempt:`` loop the judges use."""
    attempts: list[int] = []
    try:
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                attempts.append(number)
                outcome = outcomes[number - 1]
                if outcome != OK:
                    assert callable(outcome)
                    raise outcome(number)
        return attempts, OK
    except BaseException as exc:  # the final error, whatever it is
        return attempts, f"{type(exc).__name__}: {exc}"


def run(
    make: Callable[[int, Callable[[float], Awaitable[None]]], Any],
    max_attempts: int,
    outcomes: list[Outcome],
) -> tuple[list[int], list[float], list[str], str]:
    waits: list[float] = []
    retried: list[str] = []

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 9))

    def listener(error: BaseException | None) -> None:
        retried.append(str(error))

    add_retry_listener(listener)
    random.seed(17)  # the jitter: the same draws for both runs
    try:
        attempts, final = asyncio.run(drive(make(max_attempts, sleep), outcomes, waits))
    finally:
        from judges import retry

        retry._listeners.remove(listener)
    return attempts, waits, retried, final


@pytest.mark.parametrize(("name", "max_attempts", "outcomes"), SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_first_attempt_fast_path_is_tenacity(
    name: str, max_attempts: int, outcomes: list[Outcome]
) -> None:
    fast = run(transient_retrying, max_attempts, outcomes)
    reference = run(_tenacity_retrying, max_attempts, outcomes)
    assert fast == reference
    attempts, waits, retried, final = fast
    # And the script means what its name says: one wait and one listener call before
    # each retry, the last outcome run is the result.
    assert attempts == list(range(1, min(len(outcomes), max_attempts) + 1))
    assert len(waits) == len(retried) == len(attempts) - 1
    assert (final == OK) == (outcomes[len(attempts) - 1] == OK)
    if any(o is limited for o in outcomes[: len(attempts) - 1]):
        assert max(waits) >= 3.0  # the provider's retry-after is the floor


def test_a_success_never_builds_tenacity(monkeypatch: pytest.MonkeyPatch) -> None:
    from judges import retry

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tenacity built for a call that succeeded at once")

    monkeypatch.setattr(retry, "_tenacity_retrying", refuse)
    assert run(transient_retrying, 4, [OK])[3] == OK
    assert run(transient_retrying, 4, [unparseable])[3] == "UnparseableError: no verdict 1"
