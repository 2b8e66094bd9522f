"""The judge error hierarchy.

Provider SDK errors are translated into these classes at the backend edge,
so the rest of the system decides on our terms: only
:class:`TransientJudgeError` is retried; every other failure is final and is
stored as a failed call, never turned into a label.
"""

from __future__ import annotations

from judges.types import Usage


class JudgeError(Exception):
    """Base of every judge failure.

    ``raw_output`` keeps what the model said (if anything) so a failed call
    can be stored and inspected.
    """

    error_class = "judge_error"

    def __init__(
        self,
        message: str,
        *,
        raw_output: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.raw_output = raw_output
        self.usage = usage or Usage()


class TransientJudgeError(JudgeError):
    """A failure that may pass: rate limits, overload, 5xx, timeouts, connection drops."""

    error_class = "transient"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        raw_output: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message, raw_output=raw_output, usage=usage)
        self.retry_after = retry_after


class RateLimitedError(TransientJudgeError):
    """The provider answered 429 (or overloaded); ``retry_after`` is its hint in seconds."""

    error_class = "rate_limited"


class JudgeTimeoutError(TransientJudgeError):
    """The call did not finish within the configured timeout."""

    error_class = "timeout"


class RefusedError(JudgeError):
    """The model declined to judge (a refusal stop reason or refusal message)."""

    error_class = "refused"


class UnparseableError(JudgeError):
    """The model answered, but not in the structured form we asked for."""

    error_class = "unparseable"


class JudgeConfigError(JudgeError):
    """The judge cannot be built or called as configured (unknown provider, bad option, 4xx)."""

    error_class = "config"


class MissingCredentialsError(JudgeConfigError):
    """A provider key is not set; the message names the environment variable."""

    error_class = "missing_credentials"

    def __init__(self, provider: str, env_var: str) -> None:
        super().__init__(
            f"{provider} judges need an API key: set the {env_var} environment variable "
            f"(and {provider.upper()}_BASE_URL for a compatible server)."
        )
        self.env_var = env_var


class ModelUnavailableError(JudgeConfigError):
    """A local model cannot be loaded (not a folder, and not downloadable here).

    The message says what was tried and lists the ways out.
    """

    error_class = "model_unavailable"


class UnknownJudgeError(JudgeConfigError):
    """The judge spec names a provider or a judge nobody registered."""

    error_class = "unknown_judge"

    def __init__(self, spec: str, known: list[str]) -> None:
        super().__init__(
            f"unknown judge {spec!r}: known providers are {', '.join(sorted(known)) or 'none'} "
            "(write a judge as provider:model, e.g. anthropic:claude-sonnet-4-5)"
        )
        self.known = sorted(known)
