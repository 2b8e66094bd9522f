"""Engines and transactions.

Users write plain URLs (``sqlite:///referee.db``, ``postgresql://…``); the
service runs on async drivers (aiosqlite, psycopg) and Alembic on their sync
twins. Engines are built by whoever starts the process, never at import.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.errors import BadRequestError

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def _backend(url: URL) -> str:
    backend = url.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise BadRequestError(
            f"unsupported database {url.drivername!r}: use sqlite:///path or postgresql://…"
        )
    return backend


def async_url(raw: str) -> URL:
    url = make_url(raw)
    return url.set(drivername=_ASYNC_DRIVERS[_backend(url)])


def sync_url(raw: str) -> URL:
    url = make_url(raw)
    return url.set(drivername=_SYNC_DRIVERS[_backend(url)])


def configure_sqlite(dbapi_connection: Any, _record: object) -> None:
    # WAL lets readers run beside the writer; the busy timeout makes a
    # second writer wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing`` on both backends."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def insert_if_absent(session: AsyncSession, model: Any, values: dict[str, Any]) -> uuid.UUID:
    """Insert a row of a table keyed by ``label_key`` unless the key exists; return its id.

    ``ON CONFLICT DO NOTHING`` makes two concurrent identical requests
    converge on one row instead of failing or duplicating.
    """
    row = {"id": uuid.uuid4(), **values}
    statement = insert_for(session)(model).values(**row)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["label_key"]))
    existing = await session.scalar(select(model.id).where(model.label_key == values["label_key"]))
    assert existing is not None  # inserted just now or already there
    found: uuid.UUID = existing
    return found


class Database:
    """One engine and its session factory; the owner of a unit of work opens a transaction."""

    def __init__(self, raw_url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        url = async_url(raw_url)
        self.raw_url = raw_url
        self.dialect = _backend(url)
        options: dict[str, Any] = {"echo": echo}
        if self.dialect == "postgresql":
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", configure_sqlite)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Round-trip to the database; raises if it is unreachable."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
