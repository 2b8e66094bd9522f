"""Retries of transient judge failures, with tenacity.

The SDKs' own retries are switched off (``max_retries=0``) so that attempts
don't multiply: this policy is the only one. Backoff is exponential with
full jitter and never shorter than the provider's ``retry-after`` hint.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

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


def transient_retrying(
    max_attempts: int, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> AsyncRetrying:
    """Retry only :class:`TransientJudgeError`, at most ``max_attempts`` tries in all."""
    return AsyncRetrying(
        stop=stop_after_attempt(max_attempts),
        wait=wait_honouring_retry_after,
        retry=retry_if_exception_type(TransientJudgeError),
        before_sleep=_notify_retry,
        sleep=sleep,
        reraise=True,
    )
