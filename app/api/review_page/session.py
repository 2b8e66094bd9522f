"""Who is reviewing: sign-in with an API key, a signed session cookie, CSRF tokens.

The cookie holds the key's id and the session's CSRF token, signed (and
timed) with REFEREE_SESSION_SECRET, never the key itself. Every request
looks the key up again, so revoking the key, or taking its ``review``
scope away, ends its sessions at once. The cookie is HttpOnly,
SameSite=Strict, scoped to /review, and Secure when the page is served over
https. Each state-changing form carries the session's CSRF token; the
sign-in form carries a token bound to a short-lived pre-session cookie, so
another site cannot sign a browser in under its own key either.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.api.deps import get_db, route_access
from app.errors import ForbiddenError
from app.labeling.access import Caller, authenticate, authorize
from app.settings import Settings
from app.store import api_keys

SESSION_COOKIE = "referee_review"
SIGNIN_COOKIE = "referee_review_signin"
COOKIE_PATH = "/review"
SIGNIN_MAX_AGE_S = 3600
# Signed-out sessions remembered per process; past this, the oldest expired ones are dropped.
MAX_ENDED_SESSIONS = 100_000
_SALT = "referee.review.session"
_SIGNIN_SALT = "referee.review.signin"


@dataclass(frozen=True)
class Reviewer:
    """A signed-in reviewer: the key's name is the reviewer's name."""

    key_id: int
    name: str
    csrf: str


class Sessions:
    """Issues and reads the signed cookies; one per app, built from the settings."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.session_secret
        # Unset: a random secret for this process; its sessions end when it restarts.
        key = secret.get_secret_value() if secret is not None else secrets.token_urlsafe(32)
        self._signer = URLSafeTimedSerializer(key, salt=_SALT)
        self._signin = URLSafeTimedSerializer(key, salt=_SIGNIN_SALT)
        self.max_age_s = int(settings.review_session_hours * 3600)
        # Sessions signed out here, until they would have expired anyway: session id -> when.
        self._ended: dict[str, float] = {}

    def issue(self, response: Response, request: Request, key_id: int) -> None:
        token = self._signer.dumps({"k": key_id, "c": secrets.token_urlsafe(24)})
        _set_cookie(response, request, SESSION_COOKIE, token, self.max_age_s)
        response.delete_cookie(SIGNIN_COOKIE, path=COOKIE_PATH)

    def read(self, request: Request) -> tuple[int, str] | None:
        value = _loads(self._signer, request.cookies.get(SESSION_COOKIE), self.max_age_s)
        if not isinstance(value, dict):
            return None
        key_id, csrf = value.get("k"), value.get("c")
        if not isinstance(key_id, int) or not isinstance(csrf, str) or csrf in self._ended:
            return None
        return key_id, csrf

    def end(self, response: Response, reviewer: Reviewer | None) -> None:
        """Sign-out: the browser drops the cookie, and this process refuses it from now on."""
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        if reviewer is None:
            return
        now = time.monotonic()
        if len(self._ended) >= MAX_ENDED_SESSIONS:
            self._ended = {k: t for k, t in self._ended.items() if now - t < self.max_age_s}
        if len(self._ended) < MAX_ENDED_SESSIONS:
            self._ended[reviewer.csrf] = now

    def new_signin(self) -> tuple[str, str]:
        """The sign-in form's CSRF token, and the signed cookie value it is checked against."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self._signin.dumps(nonce)

    def set_signin(self, response: Response, request: Request, cookie: str) -> None:
        _set_cookie(response, request, SIGNIN_COOKIE, cookie, SIGNIN_MAX_AGE_S)

    def signin_token_ok(self, request: Request, submitted: str) -> bool:
        nonce = _loads(self._signin, request.cookies.get(SIGNIN_COOKIE), SIGNIN_MAX_AGE_S)
        return isinstance(nonce, str) and _same(nonce, submitted)


def _loads(signer: URLSafeTimedSerializer, value: str | None, max_age_s: int) -> Any:
    if not value or len(value) > 1024:
        return None
    try:
        return signer.loads(value, max_age=max_age_s)
    except BadSignature:  # also SignatureExpired
        return None


def _set_cookie(response: Response, request: Request, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.review_sessions
    return found


async def current_reviewer(request: Request) -> Reviewer | None:
    """The reviewer this request's cookie signs in, still holding the route's scope; else None."""
    read = sessions(request).read(request)
    if read is None:
        return None
    key_id, csrf = read
    async with get_db(request).transaction() as session:
        row = await api_keys.get(session, key_id)
    if row is None or row.revoked_at is not None:
        return None
    caller = Caller(row.id, row.name, frozenset(row.scopes), row.daily_budget_usd)
    try:
        authorize(caller, route_access(request).scope)
    except ForbiddenError:
        return None
    return Reviewer(row.id, row.name, csrf)


async def sign_in(request: Request, plain: str) -> Caller:
    """The key typed into the sign-in form, checked as a bearer key is, with the route's scope."""
    caller = await authenticate(get_db(request), plain.strip() or None)
    authorize(caller, route_access(request).scope)
    return caller


def csrf_ok(reviewer: Reviewer, submitted: str) -> bool:
    return _same(reviewer.csrf, submitted)


def _same(expected: str, submitted: str) -> bool:
    # compare_digest refuses non-ASCII str; a submitted token may be anything.
    return hmac.compare_digest(expected.encode(), submitted.encode("utf-8", "replace"))
