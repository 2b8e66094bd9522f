"""Retries of transient judge failures, with tenacity.

The SDKs' own retries are switched off (``max_retries=0``) so that attempts
don't multiply: this policy is the only one. Backoff is exponential with
full jitter and never shorter than the provider's ``retry-after`` hint.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from judges.errors import TransientJudgeError

_exponential = wait_random_exponential(multiplier=0.5, max=60)

RetryListener = Callable[[BaseException | None], None]
"""Told the error each time a transient failure is about to be tried again."""
_listeners: list[RetryListener] = []


def add_retry_listener(listener: RetryListener) -> None:
    """Observe retries (the service counts them); adding a listener twice adds it once."""
    if listener not in _listeners:
        _listeners.append(listener)


def _notify_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    for listener in _listeners:
        listener(error)


def wait_honouring_retry_after(state: RetryCallState) -> float:
    """Exponential jittered backoff, floored at the provider's retry-after hint."""
    delay: float = _exponential(state)
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, TransientJudgeError) and exc.retry_after is not None:
        # A little jitter on top keeps tasks throttled together from
        # retrying in lock-step when capacity frees up.
        delay = max(delay, exc.retry_after + random.uniform(0, 0.25))
    return delay


def _tenacity_retrying(
    max_attempts: int, sleep: Callable[[float], Awaitable[None]]
) -> AsyncRetrying:
    return AsyncRetrying(
        stop=stop_after_attempt(max_attempts),
        wait=wait_honouring_retry_after,
        retry=retry_if_exception_type(TransientJudgeError),
        before_sleep=_notify_retry,
        sleep=sleep,
        reraise=True,
    )


@dataclass(frozen=True, slots=True)
class _FirstState:
    attempt_number: int = 1


class _FirstAttempt:
    """Attempt 1, as tenacity's attempt manager: ``with attempt:`` and ``attempt.retry_state``.

    Keeps a transient failure (to be retried) and lets any other error out.
    """

    retry_state = _FirstState()

    def __init__(self, retryable: bool) -> None:
        self.retryable = retryable
        self.failure: TransientJudgeError | None = None

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self.retryable and isinstance(exc, TransientJudgeError):
            self.failure = exc
            return True
        return False


class TransientRetrying:
    """Attempts of one call: ``async for attempt in …: with attempt: …``, as tenacity's.

    Most calls succeed at once, and building tenacity's retry state costs
    about a tenth of a millisecond of CPU a call, a tenth of what a call
    costs in all where hundreds are in flight. So the first attempt runs
    bare, and only a transient failure hands the call to tenacity: its first
    attempt replays that failure, so the waits (retry-after included), the
    retry listeners, the attempt limit and the final error are tenacity's.
    """

    def __init__(self, max_attempts: int, sleep: Callable[[float], Awaitable[None]]) -> None:
        self.max_attempts = max_attempts
        self.sleep = sleep
        self._first: _FirstAttempt | None = None
        self._rest: AsyncRetrying | None = None

    def __aiter__(self) -> TransientRetrying:
        return self

    async def __anext__(self) -> Any:
        if self._first is None:
            self._first = _FirstAttempt(retryable=self.max_attempts > 1)
            return self._first
        if self._rest is None:
            failure = self._first.failure
            if failure is None:
                raise StopAsyncIteration
            self._rest = _tenacity_retrying(self.max_attempts, self.sleep).__aiter__()
            with await self._rest.__anext__():  # tenacity's attempt 1: the failure seen
                raise failure
        return await self._rest.__anext__()


def transient_retrying(
    max_attempts: int, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> TransientRetrying:
    """Retry only :class:`TransientJudgeError`, at most ``max_attempts`` tries in all."""
    return TransientRetrying(max_attempts, sleep)
