"""Domain errors. Each carries its HTTP status; one handler in app/api renders them.

Services raise these; they never raise HTTP exceptions. The CLI prints the
message as one clean line.
"""

from __future__ import annotations

from typing import Any


class RefereeError(Exception):
    """Base of every error a user can cause or needs to act on."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, headers: dict[str, str] | None = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        # HTTP response headers the error implies (WWW-Authenticate, Retry-After).
        self.headers = headers or {}


class NotFoundError(RefereeError):
    status_code = 404
    code = "not_found"


class BadRequestError(RefereeError):
    status_code = 400
    code = "bad_request"


class UnknownJudgeSpecError(BadRequestError):
    code = "unknown_judge"


class InvalidInputError(RefereeError):
    """Input that parses but breaks a rule; ``details`` names the field (and line)."""

    status_code = 422
    code = "invalid_input"


class TextTooLargeError(RefereeError):
    status_code = 413
    code = "text_too_large"


class BodyTooLargeError(RefereeError):
    status_code = 413
    code = "body_too_large"


class UnauthorizedError(RefereeError):
    status_code = 401
    code = "unauthorized"


class ForbiddenError(RefereeError):
    """A valid key that lacks the scope a route needs."""

    status_code = 403
    code = "forbidden"


class TooManyRequestsError(RefereeError):
    """A limit that frees up with time (a budget, a concurrency cap): send Retry-After."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int, **details: Any) -> None:
        super().__init__(
            message, headers={"Retry-After": str(max(1, retry_after_s))}, **details
        )


class JudgeUnavailableError(RefereeError):
    """The judge cannot be used here (missing provider key): a server-side configuration issue."""

    status_code = 503
    code = "judge_unavailable"


class JudgeFailedError(RefereeError):
    """The judge failed after retries; the failed calls are stored, no verdict is."""

    status_code = 502
    code = "judge_failed"


class ProviderBatchFailedError(RefereeError):
    """A provider refused whole batch submissions; their pairs are pending again, none judged."""

    status_code = 502
    code = "provider_batch_failed"


class SchemaOutdatedError(RefereeError):
    status_code = 503
    code = "schema_outdated"
