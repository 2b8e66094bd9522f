"""Who is asking: API keys, their scopes and daily budgets, and whom a model call is billed to.

The HTTP layer decides which scope a route needs; this module checks a key
against it. Services never see FastAPI: the key acting for the current
request travels in :data:`acting_key`.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Literal, get_args

from app.errors import ForbiddenError, TooManyRequestsError, UnauthorizedError
from app.store import api_keys, batches
from app.store.db import Database

Scope = Literal["read", "label", "review", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
MAKE_A_KEY = "an operator makes one with `referee keys create NAME --scope …`"

acting_key: ContextVar[int | None] = ContextVar("referee_acting_key", default=None)
"""The API key the current request acts for; None with auth off and outside HTTP.

Set by the HTTP auth dependency, read where judge-call rows are built
(:func:`app.labeling.calls.call_row`) and where batches are created. A task
started while handling a request inherits it (contextvars are copied into
new tasks), so the in-process workers of a batch bill that batch's key.
"""


@dataclass(frozen=True)
class Caller:
    """An authenticated key, as much of it as a request needs."""

    key_id: int
    name: str
    scopes: frozenset[str]
    daily_budget_usd: Decimal | None


async def authenticate(db: Database, plain: str | None) -> Caller:
    """The active key with this plain text; 401 for none, an unknown or a revoked one."""
    if not plain:
        raise UnauthorizedError(
            f"an API key is required: send `Authorization: Bearer <key>`; {MAKE_A_KEY}",
            headers={"WWW-Authenticate": "Bearer"},
        )
    async with db.transaction() as session:
        row = await api_keys.find_active(session, plain)
    if row is None:
        raise UnauthorizedError(
            f"this API key is unknown or revoked; {MAKE_A_KEY}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return Caller(row.id, row.name, frozenset(row.scopes), row.daily_budget_usd)


def authorize(caller: Caller, scope: Scope) -> None:
    """403 naming the missing scope unless the key has it (or ``admin``)."""
    if scope in caller.scopes or "admin" in caller.scopes:
        return
    raise ForbiddenError(
        f"API key {caller.name!r} lacks the {scope!r} scope this route needs"
        f" (it has: {', '.join(sorted(caller.scopes)) or 'none'})",
        required_scope=scope,
        key_scopes=sorted(caller.scopes),
    )


def next_utc_midnight(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)


async def check_budget(db: Database, caller: Caller, now: datetime | None = None) -> None:
    """429 with Retry-After (seconds to next UTC midnight) once today's spend reaches the budget.

    Checked before a request makes any model call, from the cost stored with
    each call: a request that starts under budget may end a little over it,
    and the next one is refused (:class:`BudgetGates` keeps a key's requests
    from passing the check together).
    """
    if caller.daily_budget_usd is None:
        return
    now = now or datetime.now(UTC)
    midnight = next_utc_midnight(now)
    async with db.transaction() as session:
        spent = await api_keys.spent_since(session, caller.key_id, midnight - timedelta(days=1))
    if spent < caller.daily_budget_usd:
        return
    raise TooManyRequestsError(
        f"API key {caller.name!r} has spent its daily budget of ${caller.daily_budget_usd}"
        f" (${spent:.4f} today); it renews at 00:00 UTC",
        retry_after_s=int((midnight - now).total_seconds()) + 1,
        daily_budget_usd=float(caller.daily_budget_usd),
        spent_usd=float(spent),
    )


class BudgetGates:
    """One lock per budgeted key: its paid requests in this process run one at a time.

    The budget is checked against the cost stored with each call, so requests
    that passed the check together would all be paid before any is billed.
    Holding the key's lock from the check to the end of the request bounds a
    key's overshoot to one request per server process (a batch's background
    calls: the pairs in flight when the spend crosses the budget). Keys with
    no budget never wait here.
    """

    def __init__(self) -> None:
        # Weak: a key's lock lives only while a request holds or awaits it.
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, caller: Caller) -> asyncio.Lock:
        lock = self._locks.get(caller.key_id)
        if lock is None:
            lock = self._locks[caller.key_id] = asyncio.Lock()
        return lock


async def batch_payer(db: Database, batch_id: uuid.UUID) -> Caller | None:
    """The key that submitted a batch over HTTP, billed for its calls; None for other batches."""
    async with db.transaction() as session:
        batch = await batches.get(session, batch_id)
        key_id = batch.api_key_id if batch is not None else None
        row = await api_keys.get(session, key_id) if key_id is not None else None
    if row is None:
        return None
    return Caller(row.id, row.name, frozenset(row.scopes), row.daily_budget_usd)


async def check_payer(db: Database, payer: Caller) -> None:
    """Before a batch worker claims more pairs: its key is not revoked and has budget left."""
    async with db.transaction() as session:
        row = await api_keys.get(session, payer.key_id)
    if row is None or row.revoked_at is not None:
        raise UnauthorizedError(f"API key {payer.name!r} that submitted the batch is revoked")
    await check_budget(db, payer)
