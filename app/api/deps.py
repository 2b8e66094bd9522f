"""Request dependencies: the labeler built in the lifespan, and access control.

Which scope each route needs is the table :data:`ROUTE_ACCESS`, one line per
route, so access can be audited in one place. A /v1 route missing from it
needs ``admin`` (fail closed); tests/test_access.py checks every route of the
app against the table and every scope.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import UnauthorizedError
from app.labeling.access import (
    BudgetGates,
    Scope,
    acting_key,
    authenticate,
    authorize,
    check_budget,
)
from app.labeling.compare import Labeler
from app.observability.logs import note
from app.store.db import Database

_bearer = HTTPBearer(auto_error=False, description="An API key from `referee keys create`.")


@dataclass(frozen=True)
class Access:
    scope: Scope
    spends: bool = False
    """The route may call models: the key's daily budget is checked first."""


READ = Access("read")
LABEL = Access("label")
PAID = Access("label", spends=True)
REVIEW = Access("review")
ADMIN = Access("admin")

ROUTE_ACCESS: dict[tuple[str, str], Access] = {
    ("GET", "/v1/judges"): READ,
    ("GET", "/v1/constitutions"): READ,
    ("GET", "/v1/constitutions/{constitution_id}"): READ,
    ("GET", "/v1/templates"): READ,
    ("POST", "/v1/comparisons"): PAID,
    ("GET", "/v1/comparisons"): READ,
    ("GET", "/v1/comparisons/{comparison_id}"): READ,
    ("POST", "/v1/comparisons/{comparison_id}/reviews"): REVIEW,
    ("POST", "/v1/ratings"): PAID,
    ("GET", "/v1/ratings/{rating_id}"): READ,
    ("POST", "/v1/revisions"): PAID,
    ("GET", "/v1/revisions/{revision_id}"): READ,
    ("POST", "/v1/batches"): PAID,
    ("GET", "/v1/batches/{batch_id}"): READ,
    ("POST", "/v1/batches/{batch_id}/cancel"): LABEL,
    ("POST", "/v1/feedback"): LABEL,
    ("GET", "/v1/exports/{kind}"): READ,
    ("GET", "/v1/reviews/queue"): READ,
    ("POST", "/v1/review-queues"): ADMIN,
    ("GET", "/v1/review-queues"): REVIEW,
    ("GET", "/v1/review-queues/{queue_id}"): REVIEW,
    ("POST", "/v1/review-queues/{queue_id}/next"): REVIEW,
    ("POST", "/v1/review-queues/{queue_id}/answers"): REVIEW,
    ("POST", "/v1/review-queues/{queue_id}/undo"): REVIEW,
    ("GET", "/v1/review-queues/{queue_id}/agreement"): REVIEW,
    ("GET", "/v1/reports/summary"): READ,
    ("GET", "/v1/reports/batches/{batch_id}"): READ,
    # The review page signs people in with a key (a session cookie); the key needs these.
    ("GET", "/review"): REVIEW,
    ("POST", "/review/sign-in"): REVIEW,
    ("POST", "/review/sign-out"): REVIEW,
    ("GET", "/review/queues/{queue_id}"): REVIEW,
    ("POST", "/review/queues/{queue_id}/answer"): REVIEW,
    ("POST", "/review/queues/{queue_id}/undo"): REVIEW,
    ("POST", "/v1/rewards"): PAID,
    ("POST", "/v1/generations"): PAID,
    ("GET", "/v1/generations"): READ,
    ("GET", "/v1/generations/{generation_id}"): READ,
    ("POST", "/v1/rounds"): PAID,
    ("GET", "/v1/rounds"): READ,
    ("GET", "/v1/rounds/{name}"): READ,
    ("POST", "/get_reward"): PAID,
    # Prometheus text, not JSON (app.api.metrics); absent when REFEREE_METRICS_PORT is set.
    ("GET", "/metrics"): READ,
}


def get_labeler(request: Request) -> Labeler:
    labeler: Labeler = request.app.state.labeler
    return labeler


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def route_access(request: Request) -> Access:
    """The matched route's line of :data:`ROUTE_ACCESS`; ``admin`` for a route it lacks."""
    route = request.scope.get("route")
    path = str(getattr(route, "path_format", ""))
    return ROUTE_ACCESS.get((request.method, path), ADMIN)


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def basic_key(request: Request) -> str | None:
    """The key sent as the password of HTTP Basic auth, for clients that can only put
    credentials in the URL (``http://referee:KEY@host/get_reward``: OpenRLHF's aiohttp)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


async def require_access(
    request: Request,
    db: Annotated[Database, Depends(get_db)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AsyncIterator[None]:
    """Every /v1 route: a valid key with the route's scope, and budget left if the route pays.

    REFEREE_AUTH=off skips the key, and serves only connections that arrived
    on a loopback address: a second guard behind `referee serve` refusing to
    bind elsewhere. A paid request of a key with a budget holds the key's
    gate until it ends, so its calls are billed before the next one checks.
    """
    if get_labeler(request).settings.auth == "off":
        server = request.scope.get("server")
        if not is_loopback(server[0] if server else None):
            raise UnauthorizedError(
                "REFEREE_AUTH=off serves loopback connections only",
                headers={"WWW-Authenticate": "Bearer"},
            )
        yield
        return
    caller = await authenticate(db, credentials.credentials if credentials else basic_key(request))
    access = route_access(request)
    authorize(caller, access.scope)
    acting_key.set(caller.key_id)
    note(key=caller.name)  # the key's name on the request's log line, never its secret
    if not access.spends or caller.daily_budget_usd is None:
        yield
        return
    async with budget_gates(request).lock(caller):
        await check_budget(db, caller)
        yield


def budget_gates(request: Request) -> BudgetGates:
    gates: BudgetGates | None = getattr(request.app.state, "budget_gates", None)
    if gates is None:  # no await since the lookup: one instance per app
        gates = request.app.state.budget_gates = BudgetGates()
    return gates


LabelerDep = Annotated[Labeler, Depends(get_labeler)]
DatabaseDep = Annotated[Database, Depends(get_db)]
