"""Client-side request and token rate limits, shared by every task using one judge.

aiolimiter leaky buckets kept small on purpose: a bucket of a minute's quota
would let a fresh limiter burst it at once and trip the provider's own
sliding-window limit. Requests are spaced one at a time (60/rpm seconds
apart); tokens use a one-second bucket, since one request may be large.
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter


class RateLimits:
    """Requests-per-minute and tokens-per-minute limits; ``None`` means unlimited."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self._requests = AsyncLimiter(1, 60.0 / rpm) if rpm else None
        self._tokens = AsyncLimiter(tpm / 60.0, 1.0) if tpm else None

    async def acquire(self, estimated_tokens: int) -> None:
        """Wait until one more request of about ``estimated_tokens`` tokens fits both limits."""
        if self._requests is not None:
            await self._requests.acquire()
        if self._tokens is not None:
            # A request larger than one second's budget is admitted when the
            # bucket is empty rather than never.
            await self._tokens.acquire(min(float(estimated_tokens), self._tokens.max_rate))
