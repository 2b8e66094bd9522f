"""Translate the official SDKs' exceptions into the judge error hierarchy.

The Anthropic and OpenAI SDKs are generated from the same template and share
their exception shapes (``APIStatusError.status_code``, ``.response``,
``APIConnectionError``, ``APITimeoutError``), so one translation serves both.
"""

from __future__ import annotations

from types import ModuleType

from judges.errors import (
    JudgeConfigError,
    JudgeError,
    JudgeTimeoutError,
    RateLimitedError,
    TransientJudgeError,
)

_RETRYABLE_STATUSES = {408, 409, 425}
_RATE_LIMIT_STATUSES = {429, 529}


def retry_after_seconds(headers: object) -> float | None:
    """Read ``retry-after-ms`` or ``retry-after`` (seconds) from response headers."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


def translate(exc: BaseException, sdk: ModuleType, provider: str) -> JudgeError:
    """Map an SDK exception to our classes; unknown SDK errors are config errors."""
    if isinstance(exc, sdk.APITimeoutError):
        return JudgeTimeoutError(f"{provider} call timed out")
    if isinstance(exc, sdk.APIConnectionError):
        return TransientJudgeError(f"{provider} connection failed: {exc}")
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        text = _body_text(exc)
        retry_after = retry_after_seconds(exc.response.headers)
        if status in _RATE_LIMIT_STATUSES:
            return RateLimitedError(
                f"{provider} rate limited ({status})", retry_after=retry_after, raw_output=text
            )
        if status >= 500 or status in _RETRYABLE_STATUSES:
            return TransientJudgeError(
                f"{provider} server error {status}", retry_after=retry_after, raw_output=text
            )
        if status in (401, 403):
            return JudgeConfigError(
                f"{provider} rejected the credentials ({status}): check the API key",
                raw_output=text,
            )
        return JudgeConfigError(f"{provider} rejected the request ({status})", raw_output=text)
    return JudgeConfigError(f"{provider} client error: {type(exc).__name__}: {exc}")


def _body_text(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    try:
        return str(response.text) if response is not None else None
    except Exception:  # a streamed or closed body has no text; the status says enough
        return None
