"""Seed a migrated database with synthetic labeled comparisons, fast: bulk loading, not the API.

What one call writes, for ``comparisons`` rows (pairs judged by each of
``judges`` judges, so ``comparisons / judges`` pairs):

- batches of one judge, each ``batch_rows`` comparisons apart in creation order;
- comparisons, most labeled, ``pending`` of them pending (no verdict, for
  claim queries) and about 1% failed (``error_class`` set, no verdict);
- for each labeled comparison a current verdict (a, b, or a tie when the two
  orders disagreed) and, for ``superseded`` of them, an older verdict it
  replaced; every verdict with its two judge calls (orders ab and ba, tokens
  and a cost);
- ``jury`` of the comparisons judged by a three-member jury instead: a verdict
  with its disagreement, three votes, and each vote's two calls;
- a gold label (an import) for ``gold`` of the pairs, keyed by the pair.

The row shapes are those of bench/export_speed.py and bench/report_speed.py
(prompts of text or messages, keys computed as the app computes them).

PostgreSQL: one transaction of ``COPY … FROM STDIN`` per table and chunk
(psycopg ``cursor.copy``). Into empty tables, their secondary indexes are
dropped first and built again at the end (one sort each instead of ten
million random inserts), still inside the transaction, so a failure leaves
the database as it was; foreign-key triggers are skipped when the role may
(superuser: ``session_replication_role = replica``), as every reference is
written consistently here. Then ``ANALYZE``, as autovacuum would. SQLite:
``executemany`` in one transaction with syncing off, and no ``ANALYZE`` (the app
never runs it there).

    python -m bench.seed --url postgresql://postgres@127.0.0.1:5432/scale --comparisons 1000000

    from bench.seed import seed
    stats = seed("sqlite:///x.db", 20_000)
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from app.keys import digest, pair_key
from app.store import migrate, review_pending
from app.store.db import sync_url

JUDGES = ("anthropic:claude-sonnet-4-6", "openai:gpt-5-mini", "anthropic:claude-haiku-4-5")
JURY = "panel-of-three"
JURY_MEMBERS = ("anthropic:claude-haiku-4-5", "openai:gpt-5-mini", "openai:gpt-4o-mini")
BATCH_ROWS = 100_000
CHUNK_PAIRS = 20_000
TEMPLATE = "pairwise-v3"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PRICE_PER_TOKEN = 0.000003

# Column order of each table as written (the COPY column list, the INSERT's).
COLUMNS: dict[str, tuple[str, ...]] = {
    "batches": (
        "id",
        "name",
        "source",
        "judge",
        "status",
        "submitted",
        "rejected",
        "created_at",
        "updated_at",
    ),
    "comparisons": (
        "id",
        "label_key",
        "pair_key",
        "external_id",
        "prompt",
        "response_a",
        "response_b",
        "metadata",
        "judge",
        "judge_spec",
        "judge_config",
        "template_version",
        "status",
        "error_class",
        "batch_id",
        "source_line",
        "created_at",
        "updated_at",
    ),
    "verdicts": (
        "id",
        "comparison_id",
        "winner",
        "confidence",
        "position_consistent",
        "soft_preference",
        "rationale",
        "length_a",
        "length_b",
        "disagreement",
        "created_at",
    ),
    "jury_votes": (
        "id",
        "comparison_id",
        "verdict_id",
        "member",
        "member_spec",
        "member_config",
        "winner",
        "confidence",
        "position_consistent",
        "rationale",
        "created_at",
    ),
    "judge_calls": (
        "id",
        "comparison_id",
        "verdict_id",
        "jury_vote_id",
        "shown_order",
        "attempt",
        "provider",
        "model",
        "template_version",
        "parameters",
        "parsed",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "latency_ms",
        "created_at",
    ),
    "gold_labels": (
        "id",
        "pair_key",
        "dedupe_key",
        "winner",
        "source",
        "origin",
        "created_at",
    ),
}
# Parents first: the order rows are loaded in, and the tables whose ids are set here.
TABLES = tuple(COLUMNS)
SERIAL_TABLES = ("verdicts", "jury_votes", "judge_calls", "gold_labels")
# Which columns hold JSON (written as JSON text), UUIDs, datetimes and booleans, for SQLite.
JSON_COLUMNS = {
    "prompt",
    "response_a",
    "response_b",
    "metadata",
    "judge_config",
    "member_config",
    "parameters",
    "parsed",
}


@dataclass(slots=True)
class SeedStats:
    """How many rows of each table one ``seed`` wrote, and how long it took."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    seconds: float = 0.0
    tag: str = ""
    """The run's token: in every key, batch name and external id this run wrote."""

    def line(self) -> str:
        counts = ", ".join(f"{n:,} {t}" for t, n in self.rows.items())
        return f"seeded {counts} in {self.seconds:.1f} s"


@dataclass(frozen=True, slots=True)
class Shape:
    """What to seed (see the module docstring)."""

    comparisons: int
    judges: int = 2
    pending: float = 0.01
    superseded: float = 0.1
    jury: float = 0.05
    gold: float = 1.0
    calls: bool = True
    text_chars: tuple[int, int] = (150, 450)
    batch_rows: int = BATCH_ROWS


class Generator:
    """Rows of every table for a range of pairs, as tuples in COLUMNS order."""

    def __init__(self, shape: Shape, ids: dict[str, int], rng: random.Random, tag: str) -> None:
        self.shape = shape
        self.ids = ids  # the last id used per serial table; advanced as rows are made
        self.rng = rng
        self.tag = tag
        self.texts = _text_pool(rng, shape.text_chars)
        self.judges = JUDGES[: max(1, min(shape.judges, len(JUDGES)))]
        self.batches: dict[tuple[str, int], uuid.UUID] = {}

    def _next(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def batch(self, judge: str, number: int, out: dict[str, list[tuple[Any, ...]]]) -> uuid.UUID:
        key = (judge, number)
        if key not in self.batches:
            batch_id = self._uuid()
            self.batches[key] = batch_id
            moment = EPOCH
            out["batches"].append(
                (
                    batch_id,
                    f"seed-{self.tag}-{judge}-{number}",
                    f"bench/seed {self.tag}",
                    judge,
                    "done",
                    0,
                    0,
                    moment,
                    moment,
                )
            )
        return self.batches[key]

    def pairs(self, start: int, stop: int) -> dict[str, list[tuple[Any, ...]]]:
        out: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
        for pair in range(start, stop):
            self._pair(pair, out)
        return out

    def _pair(self, pair: int, out: dict[str, list[tuple[Any, ...]]]) -> None:
        rng, shape, texts = self.rng, self.shape, self.texts
        rnd, n = rng.random, len(texts)
        question = f"[{self.tag} {pair}] {texts[int(rnd() * n)]}"
        prompt: Any = question
        if rng.random() < 0.2:
            prompt = [
                {"role": "system", "content": "You are a careful assistant."},
                {"role": "user", "content": question},
            ]
        a, b = texts[int(rnd() * n)], texts[int(rnd() * n)]
        response_a: Any = a if rng.random() < 0.85 else {"role": "assistant", "content": a}
        response_b: Any = b if rng.random() < 0.85 else {"role": "assistant", "content": b}
        key = pair_key(prompt, response_a, response_b)
        prompt_json = orjson.dumps(prompt).decode()
        a_json, b_json = orjson.dumps(response_a).decode(), orjson.dumps(response_b).decode()
        truth = rng.choice("aab")  # what a careful human would say; judges mostly agree
        if rng.random() < shape.gold:
            moment = EPOCH + timedelta(seconds=pair)
            out["gold_labels"].append(
                (
                    self._next("gold_labels"),
                    key,
                    digest(["seed", self.tag, key, truth]),
                    truth,
                    "import",
                    f"bench/seed {self.tag}",
                    moment,
                )
            )
        is_jury = rng.random() < shape.jury
        # A jury takes the first judge's place, so every pair makes len(judges) comparisons.
        judges = (JURY, *self.judges[1:]) if is_jury else self.judges
        for slot, judge in enumerate(judges):
            index = pair * len(self.judges) + slot
            comparison_id = self._uuid()
            created = EPOCH + timedelta(seconds=index)
            roll = rng.random()
            status = "pending" if roll < shape.pending else "labeled"
            error = None
            if status == "labeled" and rng.random() < 0.01:
                status, error = "failed", "RateLimitError"
            batch_id = self.batch(judge, index // shape.batch_rows, out)
            out["comparisons"].append(
                (
                    comparison_id,
                    digest(["seed", self.tag, index]),
                    key,
                    f"seed-{self.tag}-{pair}",
                    prompt_json,
                    a_json,
                    b_json,
                    '{"source":"bench.seed"}',
                    judge,
                    "jury" if judge == JURY else judge,
                    '{"temperature":0,"max_tokens":1024}',
                    TEMPLATE,
                    status,
                    error,
                    batch_id,
                    pair + 1,
                    created,
                    created,
                )
            )
            if status != "labeled":
                continue
            lengths = (len(a), len(b))
            if judge == JURY:
                self._jury(comparison_id, truth, lengths, created, out)
                continue
            if rng.random() < shape.superseded:
                old = "b" if truth == "a" else "a"
                self._verdict(comparison_id, judge, old, lengths, created, out)
            winner = truth if rng.random() < 0.7 else rng.choice("ab")
            self._verdict(comparison_id, judge, winner, lengths, created, out)

    def _verdict(
        self,
        comparison_id: uuid.UUID,
        judge: str,
        winner: str,
        lengths: tuple[int, int],
        created: datetime,
        out: dict[str, list[tuple[Any, ...]]],
        disagreement: float | None = None,
    ) -> int:
        rng = self.rng
        consistent = rng.random() < 0.85
        if not consistent:
            winner = "tie"
        verdict_id = self._next("verdicts")
        moment = created + timedelta(milliseconds=500)
        out["verdicts"].append(
            (
                verdict_id,
                comparison_id,
                winner,
                round(rng.uniform(0.5, 1.0), 3) if consistent else 0.0,
                consistent,
                round(rng.uniform(-1, 1), 3),
                "Response A is more complete." if winner == "a" else "B is clearer.",
                lengths[0],
                lengths[1],
                disagreement,
                moment,
            )
        )
        if self.shape.calls and disagreement is None:
            self._calls(comparison_id, verdict_id, None, judge, winner, consistent, moment, out)
        return verdict_id

    def _calls(
        self,
        comparison_id: uuid.UUID,
        verdict_id: int | None,
        vote_id: int | None,
        judge: str,
        winner: str,
        consistent: bool,
        moment: datetime,
        out: dict[str, list[tuple[Any, ...]]],
    ) -> None:
        provider, model = judge.split(":", 1)
        first = "1" if winner in ("a", "tie") else "2"
        # Shown as ba, a consistent judge names the other position for the same response.
        second = ("2" if first == "1" else "1") if consistent else first
        for order, position in (("ab", first), ("ba", second)):
            # One draw for both counts: random calls are most of the generator's time.
            draw = self.rng.random()
            tokens_in, tokens_out = 400 + int(draw * 800), 20 + int(draw * 7919) % 180
            out["judge_calls"].append(
                (
                    self._next("judge_calls"),
                    comparison_id,
                    verdict_id,
                    vote_id,
                    order,
                    1,
                    provider,
                    model,
                    TEMPLATE,
                    '{"temperature":0}',
                    f'{{"position":"{position}"}}',
                    tokens_in,
                    tokens_out,
                    0,
                    0,
                    round((tokens_in + 4 * tokens_out) * PRICE_PER_TOKEN, 8),
                    300.0 + tokens_out * 10,
                    moment,
                )
            )

    def _jury(
        self,
        comparison_id: uuid.UUID,
        truth: str,
        lengths: tuple[int, int],
        created: datetime,
        out: dict[str, list[tuple[Any, ...]]],
    ) -> None:
        rng = self.rng
        votes = [truth if rng.random() < 0.7 else rng.choice("ab") for _ in JURY_MEMBERS]
        top = max(votes.count(v) for v in set(votes))
        winner = max(set(votes), key=votes.count) if top > 1 else "tie"
        disagreement = round(1 - top / len(votes), 4)
        verdict_id = self._verdict(
            comparison_id, JURY, winner, lengths, created, out, disagreement=disagreement
        )
        moment = created + timedelta(milliseconds=500)
        for member, vote in zip(JURY_MEMBERS, votes, strict=True):
            vote_id = self._next("jury_votes")
            out["jury_votes"].append(
                (
                    vote_id,
                    comparison_id,
                    verdict_id,
                    member,
                    member,
                    '{"temperature":0}',
                    vote,
                    round(rng.uniform(0.5, 1.0), 3),
                    True,
                    "",
                    moment,
                )
            )
            if self.shape.calls:
                self._calls(comparison_id, None, vote_id, member, vote, True, moment, out)


def _text_pool(rng: random.Random, chars: tuple[int, int], size: int = 4096) -> list[str]:
    """Prose-like texts with some punctuation, newlines, quotes and non-ASCII, reused by index."""
    syllables = ["ka", "lo", "mi", "ne", "ra", "su", "ti", "vo", "ex", "an", "or", "str", "qu"]
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(2000)]
    words += ["the", "a", "of", "to", "and", "in", "is", "that", "café", "東京", '"quoted"']
    pool = []
    for _ in range(size):
        target = rng.randint(*chars)
        parts: list[str] = []
        length = 0
        while length < target:
            sentence = " ".join(rng.choices(words, k=rng.randint(5, 18)))
            sentence = sentence[0].upper() + sentence[1:] + rng.choice([". ", "? ", ".\n"])
            parts.append(sentence)
            length += len(sentence)
        pool.append("".join(parts)[:target])
    return pool


# -- writing ------------------------------------------------------------------------------------


def _postgres_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class _Postgres:
    def __init__(self, url: str, rebuild_indexes: bool) -> None:
        self.connection = psycopg.connect(_postgres_dsn(url))
        self.rebuild_indexes = rebuild_indexes
        self.dropped: list[str] = []

    def start(self) -> dict[str, int]:
        cursor = self.connection.cursor()
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cursor.fetchone()
        if row is not None and row[0]:
            # Every reference here points at a row written earlier in this transaction.
            cursor.execute("SET session_replication_role = replica")
        empty = all(_pg_scalar(cursor, f"SELECT NOT EXISTS (SELECT FROM {t})") for t in TABLES)
        if self.rebuild_indexes and empty:
            cursor.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s) "
                "AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conname = i.indexname)",
                (list(TABLES),),
            )
            for name, definition in cursor.fetchall():
                self.dropped.append(definition)
                cursor.execute(f'DROP INDEX "{name}"')
        return {
            t: int(_pg_scalar(cursor, f"SELECT coalesce(max(id), 0) FROM {t}"))
            for t in SERIAL_TABLES
        }

    def write(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns = ", ".join(f'"{c}"' for c in COLUMNS[table])
        with self.connection.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def finish(self, progress: Callable[[str], None]) -> None:
        cursor = self.connection.cursor()
        for definition in self.dropped:
            started = time.perf_counter()
            cursor.execute(definition)
            progress(f"  {definition.split(' ON ')[0]} ({time.perf_counter() - started:.0f} s)")
        for table in SERIAL_TABLES:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        self.connection.commit()
        self.connection.autocommit = True
        for table in TABLES:
            cursor.execute(f"ANALYZE {table}")

    def close(self) -> None:
        self.connection.close()


def _pg_scalar(cursor: psycopg.Cursor[Any], sql: str) -> Any:
    cursor.execute(sql)
    row = cursor.fetchone()
    assert row is not None
    return row[0]


class _Sqlite:
    def __init__(self, url: str) -> None:
        database = make_url(url).database
        if not database:
            raise SystemExit(f"{url}: an in-memory SQLite database cannot be seeded from here")
        self.connection = sqlite3.connect(database, isolation_level=None)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=OFF",
            "cache_size=-262144",
            "temp_store=MEMORY",
        ):
            self.connection.execute(f"PRAGMA {pragma}")
        self.connection.execute("BEGIN")

    def start(self) -> dict[str, int]:
        ids = {}
        for table in SERIAL_TABLES:
            (top,) = self.connection.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()
            ids[table] = int(top)
        return ids

    def write(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns = COLUMNS[table]
        marks = ", ".join("?" * len(columns))
        names = ", ".join(f'"{c}"' for c in columns)
        self.connection.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})", map(_sqlite_row, rows)
        )

    def finish(self, progress: Callable[[str], None]) -> None:
        # No ANALYZE: the app never runs it on SQLite (PostgreSQL's autovacuum does), so
        # plans here are the ones a user's database gets.
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()


def _sqlite_value(value: Any) -> Any:
    # As SQLAlchemy stores them on SQLite: UUIDs as 32 hex digits, datetimes as text.
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _sqlite_row(row: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(_sqlite_value(v) for v in row)


def seed(
    url: str,
    comparisons: int,
    *,
    judges: int = 2,
    pending: float = 0.01,
    superseded: float = 0.1,
    jury: float = 0.05,
    gold: float = 1.0,
    calls: bool = True,
    text_chars: tuple[int, int] = (150, 450),
    batch_rows: int = BATCH_ROWS,
    rebuild_indexes: bool = True,
    upgrade: bool = True,
    random_seed: int = 20261206,
    progress: Callable[[str], None] = lambda _line: None,
) -> SeedStats:
    """Add about ``comparisons`` comparisons (whole pairs) and their rows to the database at ``url``.

    ``upgrade`` migrates the database to head first. Keys carry a random tag,
    so seeding the same database twice adds rows instead of colliding.
    """
    if comparisons < 1:
        raise ValueError("comparisons must be at least 1")
    if upgrade:
        migrate.upgrade(url)
    shape = Shape(
        comparisons, judges, pending, superseded, jury, gold, calls, text_chars, batch_rows
    )
    rng = random.Random(random_seed)
    tag = hashlib.sha256(uuid.uuid4().bytes).hexdigest()[:8]
    backend = make_url(url).get_backend_name()
    writer: _Postgres | _Sqlite = (
        _Sqlite(url) if backend == "sqlite" else _Postgres(url, rebuild_indexes)
    )
    stats = SeedStats(tag=tag)
    started = time.perf_counter()
    try:
        generator = Generator(shape, writer.start(), rng, tag)
        pairs = -(-comparisons // len(generator.judges))
        for start in range(0, pairs, CHUNK_PAIRS):
            rows = generator.pairs(start, min(start + CHUNK_PAIRS, pairs))
            for table in TABLES:
                writer.write(table, rows[table])
                stats.rows[table] += len(rows[table])
            done = stats.rows["comparisons"]
            elapsed = time.perf_counter() - started
            progress(f"  {done:,} comparisons ({elapsed:.0f} s, {done / elapsed:,.0f}/s)")
        progress("  committing (indexes, ANALYZE)")
        writer.finish(progress)
    finally:
        writer.close()
    # Rows loaded around the store's writes: the review queue's work list is filled from them.
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            for statement in review_pending.refill_statements():
                connection.execute(statement)
    finally:
        engine.dispose()
    stats.seconds = time.perf_counter() - started
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="database URL (migrated to head first)")
    parser.add_argument("--comparisons", type=int, required=True)
    parser.add_argument("--judges", type=int, default=2, help="judges per pair (1-3)")
    parser.add_argument("--pending", type=float, default=0.01, help="share left pending")
    parser.add_argument("--superseded", type=float, default=0.1, help="share re-judged once")
    parser.add_argument("--jury", type=float, default=0.05, help="share of pairs judged by a jury")
    parser.add_argument("--gold", type=float, default=1.0, help="share of pairs with a gold label")
    parser.add_argument("--no-calls", action="store_true", help="no judge_calls rows")
    parser.add_argument(
        "--text-chars", type=int, nargs=2, default=(150, 450), metavar=("MIN", "MAX")
    )
    args = parser.parse_args()
    stats = seed(
        args.url,
        args.comparisons,
        judges=args.judges,
        pending=args.pending,
        superseded=args.superseded,
        jury=args.jury,
        gold=args.gold,
        calls=not args.no_calls,
        text_chars=tuple(args.text_chars),
        progress=lambda line: print(line, flush=True),
    )
    print(f"{stats.line()} (tag {stats.tag})")


if __name__ == "__main__":
    main()
