"""Rate limits as one budget for every process working on a judge (issue 20).

Chosen at start-up: through Redis when ``REFEREE_REDIS_URL`` is set, else
through PostgreSQL when the database is PostgreSQL, else (SQLite, whose
database one process owns) the process-local limiter. The registry builds
each limited judge's limits here (:meth:`JudgeRegistry.share_limits`), so
the judges package stays free of databases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from app.errors import RefereeError
from app.settings import Settings
from app.store.db import Database
from app.store.rate_limits import PostgresBudget
from judges import JudgeRegistry
from judges.config import JudgeConfig
from judges.limits import BudgetStore, FleetLimits, RateLimits, limit_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

CONNECT_TIMEOUT_S = 5.0


class RateLimitStoreError(RefereeError):
    """The shared rate-limit store cannot be reached as configured."""

    status_code = 503
    code = "rate_limits_unavailable"


def shown_url(url: str) -> str:
    """The URL with any password masked, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def connect_redis(url: str) -> Redis:
    """A checked Redis client, or one clear error naming the setting (never a traceback)."""
    # Imported here: redis (and what it pulls in) would cost every command's start-up.
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    try:
        database = urlsplit(url).path.strip("/")
        if urlsplit(url).scheme in ("redis", "rediss") and database and not database.isdigit():
            # redis-py would quietly use database 0.
            raise ValueError(f"the database {database!r} is not a number")
        client = Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S)
    except ValueError as exc:
        raise RateLimitStoreError(
            f"REFEREE_REDIS_URL={shown_url(url)!r} is not a Redis URL ({exc}); "
            "use redis://host:6379/0, rediss://… or unix://…"
        ) from None
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise RateLimitStoreError(
            f"REFEREE_REDIS_URL={shown_url(url)!r}: cannot reach Redis ({exc})"
        ) from None
    return client


class FleetBudgets:
    """Builds each judge's limits over one store; judges with the same limits share one."""

    def __init__(self, store: BudgetStore | None) -> None:
        self.store = store
        self._limits: dict[tuple[str, float | None, float | None], RateLimits] = {}

    def limits_for(self, config: JudgeConfig) -> RateLimits:
        if self.store is None:
            return RateLimits(config.rpm, config.tpm)
        identity = (limit_key(config), config.rpm, config.tpm)
        limits = self._limits.get(identity)
        if limits is None:
            limits = FleetLimits(self.store, identity[0], config.rpm, config.tpm)
            self._limits[identity] = limits
        return limits


@asynccontextmanager
async def shared_limits(
    settings: Settings, db: Database, registry: JudgeRegistry
) -> AsyncIterator[FleetBudgets]:
    """Give ``registry`` the fleet's budgets for as long as the block runs."""
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    client = await connect_redis(redis_url) if redis_url else None
    store: BudgetStore | None = None
    if client is not None:
        from app.store.redis_limits import RedisBudget

        store = RedisBudget(client)
    elif db.engine.dialect.name == "postgresql":
        store = PostgresBudget(db.engine)
    budgets = FleetBudgets(store)
    registry.share_limits(budgets.limits_for)
    try:
        yield budgets
    finally:
        if client is not None:
            await client.aclose()


async def check_redis(settings: Settings) -> None:
    """At start-up of the server: a bad REFEREE_REDIS_URL is one clear error."""
    if settings.redis_url:
        client = await connect_redis(settings.redis_url.get_secret_value())
        await client.aclose()
