"""Engines and transactions.

Users write plain URLs (``sqlite:///referee.db``, ``postgresql://…``); the
service runs on async drivers (aiosqlite, psycopg) and Alembic on their sync
twins. Engines are built by whoever starts the process, never at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import orjson
from sqlalchemy import Table, event, select, text, update
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
from app.store.models import utcnow

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


# Per connection; the pool holds a handful.
SQLITE_CACHE_KIB = 16 * 1024


def json_text(value: Any) -> str:
    """JSON columns through orjson: several times faster than the json module on bulk writes."""
    return orjson.dumps(value).decode()


def configure_sqlite(dbapi_connection: Any, _record: object) -> None:
    # WAL lets readers run beside the writer; the busy timeout makes a
    # second writer wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Inserts land in several indexes with random keys (ids, hashes); a page
    # cache larger than the 2 MB default keeps their upper levels in memory.
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
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


async def lock_status(session: AsyncSession, model: Any, row_id: uuid.UUID) -> str:
    """A rating's or revision's status, its row locked for the rest of the transaction.

    An UPDATE rather than a SELECT … FOR UPDATE: on SQLite too it takes the
    write lock, so the status read is the latest committed one.
    """
    statement = (
        update(model).where(model.id == row_id).values(updated_at=utcnow()).returning(model.status)
    )
    status: str = (await session.execute(statement)).scalar_one()
    return status


async def insert_many_ignoring(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]], unique: str
) -> int | None:
    """``INSERT … ON CONFLICT (unique) DO NOTHING`` for many rows, straight to the driver.

    SQLAlchemy's own executemany spends more per row than the database does
    (parameter compilation, batching into multi-row VALUES). Here the
    statement is compiled once and each value goes through its column
    type's own bind processor, so stored formats are exactly SQLAlchemy's,
    then the driver's executemany runs it. All rows must have the same keys.

    Returns how many rows were inserted where the driver counts an
    executemany's rows, else None. A count equal to ``len(rows)`` means no
    row met a conflict, so every row is stored with the values given (its
    own id): a caller need not read the ids back.
    """
    if not rows:
        return 0
    dialect = session.get_bind().dialect
    names = list(rows[0])
    statement = insert_for(session)(table).on_conflict_do_nothing(index_elements=[unique])
    compiled = statement.compile(dialect=dialect, column_keys=names)
    processors = {
        name: table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    }
    order = list(compiled.positiontup or names)
    plan = [(name, processors[name]) for name in order]
    params: list[Any] = [
        tuple(process(row[name]) if process else row[name] for name, process in plan)
        for row in rows
    ]
    if not compiled.positional:
        params = [dict(zip(order, values, strict=True)) for values in params]
    connection = await session.connection()
    result = await connection.exec_driver_sql(str(compiled), params)
    if not dialect.supports_sane_multi_rowcount or result.rowcount < 0:
        return None
    return result.rowcount


# The SQLite databases whose write turn the current task holds (see Database._turn).
_TURNS_HELD: ContextVar[frozenset[int]] = ContextVar("referee_sqlite_turns", default=frozenset())


class Database:
    """One engine and its session factory; the owner of a unit of work opens a transaction."""

    def __init__(self, raw_url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        url = async_url(raw_url)
        self.raw_url = raw_url
        self.dialect = _backend(url)
        options: dict[str, Any] = {"echo": echo, "json_serializer": json_text}
        if self.dialect == "postgresql":
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", configure_sqlite)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # One lock per event loop: a Database may outlive a loop (tests, CLI runs).
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error."""
        async with self._turn(), self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """On SQLite, one transaction of this process at a time, in arrival order.

        SQLite has one writer. Left to itself, a second writer sleeps in the
        busy handler with growing back-offs (up to 100 ms a try), so under
        concurrent requests a few of them wait seconds while the database
        idles. Queueing in process is fair and wastes nothing. Re-entrant
        within a task, so a transaction opened inside another cannot
        deadlock. Other processes still meet the busy timeout.
        """
        held = _TURNS_HELD.get()
        if self.dialect != "sqlite" or id(self) in held:
            yield
            return
        loop = asyncio.get_running_loop()
        lock = self._turns.get(loop)
        if lock is None:
            lock = self._turns[loop] = asyncio.Lock()
        async with lock:
            token = _TURNS_HELD.set(held | {id(self)})
            try:
                yield
            finally:
                with contextlib.suppress(ValueError):
                    # Reset fails when the generator is closed in another context.
                    _TURNS_HELD.reset(token)

    async def ping(self) -> None:
        """Round-trip to the database; raises if it is unreachable."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
