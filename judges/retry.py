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
        sleep=sleep,
        reraise=True,
    )
