"""Read-only queries behind the exports, streamed on a synchronous connection.

Exports read hundreds of thousands of rows in one pass. A synchronous
driver fetching in chunks (``yield_per``) costs a fraction of what the
async session costs per row and keeps memory flat; an export holds no
transaction open for writers beyond its own snapshot. A one-off export (the
CLI) opens an engine of its own; a server shares one bounded engine among
its exports (app/export/streams.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    Text,
    and_,
    cast,
    create_engine,
    event,
    select,
    true,
)
from sqlalchemy.engine import Row

from app.store import human_preferences, rewards, rounds
from app.store.comparisons import is_current_verdict
from app.store.db import configure_sqlite, sync_url
from app.store.models import Batch, Comparison, Feedback, Rating, Revision, Verdict

FETCH_CHUNK = 2000

# The engine type callers outside the store hold (they never build SQL with it).
ReadEngine = Engine


# Each export reads on two connections (see Reader).
CONNECTIONS_PER_EXPORT = 2
# How export connections show in pg_stat_activity, so operators can tell them apart.
APPLICATION_NAME = "referee-export"


def read_engine(raw_url: str, *, pool_size: int | None = None) -> Engine:
    """A synchronous engine for streaming reads.

    ``pool_size`` makes a hard bound (no overflow): a server's one shared
    export engine can never hold more connections than that, however many
    clients ask. Without it, SQLAlchemy's default pool, for a one-off export.
    """
    url = sync_url(raw_url)
    # orjson parses the JSON columns (prompts, responses) several times faster.
    options: dict[str, Any] = {"json_deserializer": orjson.loads}
    if pool_size is not None:
        options.update(pool_size=pool_size, max_overflow=0)
    if url.get_backend_name() == "postgresql":
        options.update(pool_pre_ping=True, connect_args={"application_name": APPLICATION_NAME})
    engine = create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", configure_sqlite)
    return engine


@dataclass(frozen=True, slots=True)
class VerdictQuery:
    """Which current verdicts to read. ``None`` means no restriction."""

    judges: tuple[str, ...] = ()
    batch_ids: tuple[uuid.UUID, ...] = ()
    min_confidence: float | None = None
    consistent_only: bool = False
    max_length_ratio: float | None = None
    max_disagreement: float | None = None
    since: datetime | None = None
    until: datetime | None = None


class VerdictRecord(NamedTuple):
    """A current verdict and its pair, as exports read it."""

    id: str
    external_id: str | None
    prompt: Any
    response_a: Any
    response_b: Any
    judge: str
    template_version: str
    constitution: str | None
    winner: str
    confidence: float | None
    position_consistent: bool | None
    disagreement: float | None
    """A jury verdict's; None for a single judge's."""
    json_text: bool = False
    """True: prompt and responses are their stored JSON text, not decoded (see verdicts)."""


def _verdict_select(query: VerdictQuery, *, json_text: bool = False) -> Select[Any]:
    """The current verdicts ``query`` asks for; ``json_text``: the pair's JSON as text (cast)."""
    pair = [Comparison.prompt, Comparison.response_a, Comparison.response_b]
    statement = select(
        Comparison.id,
        Comparison.external_id,
        *(cast(column, Text) if json_text else column for column in pair),
        Comparison.judge,
        Comparison.template_version,
        Comparison.constitution,
        Verdict.winner,
        Verdict.confidence,
        Verdict.position_consistent,
        Verdict.disagreement,
    ).join(Verdict, and_(Verdict.comparison_id == Comparison.id, is_current_verdict()))
    conditions: list[ColumnElement[bool]] = []
    if query.judges:
        conditions.append(Comparison.judge.in_(query.judges))
    if query.batch_ids:
        conditions.append(Comparison.batch_id.in_(query.batch_ids))
    if query.min_confidence is not None:
        conditions.append(Verdict.confidence >= query.min_confidence)
    if query.consistent_only:
        conditions.append(Verdict.position_consistent.is_(true()))
    if query.max_length_ratio is not None:
        ratio = query.max_length_ratio
        conditions.append(Verdict.length_a <= ratio * Verdict.length_b)
        conditions.append(Verdict.length_b <= ratio * Verdict.length_a)
    if query.max_disagreement is not None:
        # NULL (a single judge's verdict) fails the comparison: only juries pass.
        conditions.append(Verdict.disagreement <= query.max_disagreement)
    if query.since is not None:
        conditions.append(Verdict.created_at >= query.since)
    if query.until is not None:
        conditions.append(Verdict.created_at < query.until)
    return statement.where(*conditions).order_by(Verdict.id)


def _uuid_text(hex32: str) -> str:
    """A UUID stored as 32 hex digits (SQLite), in the canonical 8-4-4-4-12 form."""
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


class Reader:
    """Two read connections on one engine: one streams the main query, one answers look-ups.

    Look-ups (a loser's own rating) run while the main result is still
    being fetched in chunks; a second connection keeps them apart.
    ``chunk_rows`` is how many rows are fetched (and held) at a time.
    """

    def __init__(
        self, engine: Engine, *, chunk_rows: int = FETCH_CHUNK, owns_engine: bool = False
    ) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        self.chunk_rows = chunk_rows
        self._main = engine.connect()
        try:
            self._lookups = engine.connect()
        except BaseException:
            self._main.close()
            raise

    @classmethod
    def open(cls, database_url: str) -> Reader:
        """A reader on an engine of its own, disposed on close (a one-off export)."""
        engine = read_engine(database_url)
        try:
            return cls(engine, owns_engine=True)
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        """Return both connections (ending their read transactions)."""
        try:
            self._main.close()
            self._lookups.close()
        finally:
            if self._owns_engine:
                self._engine.dispose()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def verdicts(self, query: VerdictQuery, *, json_text: bool = False) -> Iterator[VerdictRecord]:
        """Current verdicts (one per comparison) with their pair, oldest first.

        ``json_text`` asks for the prompt and responses as stored JSON text
        where the database keeps them so (SQLite), for a caller that can
        splice them into output as they are; records say which they carry.
        """
        statement = _verdict_select(query)
        if self._engine.dialect.name == "sqlite":
            yield from self._sqlite_verdicts(statement, json_text)
            return
        if json_text:
            # JSONB's text output of a string is the JSON string orjson would write (the
            # same escapes, UTF-8 kept): spliced as on SQLite, with no decoding per row.
            statement = _verdict_select(query, json_text=True)
        # A server-side cursor (yield_per streams on psycopg): memory flat in the rows.
        result = self._main.execute(statement.execution_options(yield_per=self.chunk_rows))
        for row in result:
            yield VerdictRecord._make((str(row[0]), *row[1:], json_text))

    def _stream(self, statement: Select[Any]) -> Iterator[Row[Any]]:
        # Options on the statement, not the connection: Connection.execution_options
        # changes the connection for every later query, the raw-cursor one included.
        yield from self._main.execute(statement.execution_options(yield_per=self.chunk_rows))

    def _sqlite_verdicts(self, statement: Select[Any], json_text: bool) -> Iterator[VerdictRecord]:
        # Straight from the driver's cursor: JSON as text, the UUID as 32 hex
        # digits, booleans as 0/1. Skipping SQLAlchemy's per-row work is most
        # of an export's cost at millions of rows.
        result = self._main.execute(statement)
        loads: Any = (lambda text: text) if json_text else orjson.loads
        try:
            while rows := result.cursor.fetchmany(self.chunk_rows):
                for row in rows:
                    consistent = row[10]
                    yield VerdictRecord(
                        _uuid_text(row[0]),
                        row[1],
                        loads(row[2]),
                        loads(row[3]),
                        loads(row[4]),
                        row[5],
                        row[6],
                        row[7],
                        row[8],
                        row[9],
                        None if consistent is None else bool(consistent),
                        row[11],
                        json_text,
                    )
        finally:
            result.close()

    def ratings(
        self, judges: Sequence[str], since: datetime | None, until: datetime | None
    ) -> Iterator[Row[Any]]:
        """Scored ratings, oldest first."""
        statement = select(
            Rating.id,
            Rating.external_id,
            Rating.prompt,
            Rating.response,
            Rating.passed,
            Rating.score,
            Rating.judge,
            Rating.rubric_version,
            Rating.template_version,
            Rating.created_at,
        ).where(Rating.status == "rated")
        if judges:
            statement = statement.where(Rating.judge.in_(judges))
        statement = _time_range(statement, Rating.created_at, since, until)
        statement = statement.order_by(Rating.created_at, Rating.id)
        yield from self._stream(statement)

    def feedback(self, since: datetime | None, until: datetime | None) -> Iterator[Row[Any]]:
        """Production feedback, oldest first."""
        statement = select(
            Feedback.id,
            Feedback.idempotency_key,
            Feedback.prompt,
            Feedback.completion,
            Feedback.label,
            Feedback.source,
            Feedback.created_at,
        )
        statement = _time_range(statement, Feedback.created_at, since, until)
        statement = statement.order_by(Feedback.created_at, Feedback.id)
        yield from self._stream(statement)

    def revisions(self, query: VerdictQuery) -> Iterator[Row[Any]]:
        """Finished critique → revision runs, oldest first (judge, batch and time filters)."""
        statement = select(
            Revision.id,
            Revision.external_id,
            Revision.prompt,
            Revision.response,
            Revision.revised,
            Revision.final_response,
            Revision.judge,
            Revision.constitution,
            Revision.created_at,
        ).where(Revision.status == "done")
        if query.judges:
            statement = statement.where(Revision.judge.in_(query.judges))
        if query.batch_ids:
            statement = statement.where(Revision.batch_id.in_(query.batch_ids))
        statement = _time_range(statement, Revision.created_at, query.since, query.until)
        statement = statement.order_by(Revision.created_at, Revision.id)
        yield from self._stream(statement)

    def failing_rated(self, content_keys: Sequence[str]) -> set[str]:
        """Which of these (prompt, response) keys have a rating below its threshold."""
        if not content_keys:
            return set()
        statement = select(Rating.content_key).where(
            Rating.content_key.in_(content_keys), Rating.passed.is_(False)
        )
        return set(self._lookups.execute(statement).scalars())

    def known_judges(self) -> list[str]:
        """Every judge with a stored comparison or rating."""
        names = set(self._lookups.execute(select(Comparison.judge).distinct()).scalars())
        names |= set(self._lookups.execute(select(Rating.judge).distinct()).scalars())
        names |= set(self._lookups.execute(select(Revision.judge).distinct()).scalars())
        return sorted(names)

    def round_lineage(self, name: str) -> list[dict[str, Any]]:
        """A round and its parent chain (app.store.rounds.lineage_rows); empty when unknown."""
        return rounds.lineage_rows(self._lookups, name)

    def human_preferences(self) -> Iterator[Row[Any]]:
        """Gold labels with their pairs (app.store.human_preferences), streamed."""
        return human_preferences.human_preferences(self._main, self.chunk_rows)

    def round_pairs(self, selection_run_id: uuid.UUID) -> Iterator[Row[Any]]:
        """A round's chosen/rejected pairs (app.store.rounds.selected_pairs), streamed."""
        return rounds.selected_pairs(self._main, selection_run_id, self.chunk_rows)

    def reward_items(self, run: str) -> Iterator[Row[Any]]:
        """A training run's scored rewards (app.store.rewards.run_items), streamed."""
        return rewards.run_items(self._main, run, self.chunk_rows)

    def batch_ids(self, references: Sequence[str]) -> dict[str, uuid.UUID]:
        """Batch ids for references that are a batch's id or name; unknown ones are absent."""
        as_ids = []
        for reference in references:
            try:
                as_ids.append(uuid.UUID(reference))
            except ValueError:
                continue
        statement = select(Batch.id, Batch.name).where(
            Batch.name.in_(references) | Batch.id.in_(as_ids)
        )
        found: dict[str, uuid.UUID] = {}
        for batch_id, name in self._lookups.execute(statement):
            found[name] = batch_id
            found[str(batch_id)] = batch_id
        return found


def _time_range(
    statement: Select[Any], column: Any, since: datetime | None, until: datetime | None
) -> Select[Any]:
    if since is not None:
        statement = statement.where(column >= since)
    if until is not None:
        statement = statement.where(column < until)
    return statement
