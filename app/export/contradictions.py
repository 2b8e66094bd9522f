"""KTO rows whose (prompt, completion) is labeled both desirable and undesirable.

The same completion can win one pair and lose another, pass one rubric and
fail another, or get a thumbs up from one user and a thumbs down from the
next. Exported as they are, a trainer is told to raise and to lower the
same completion's likelihood at once. The rule (``--kto-contradictions``):

- ``drop`` (the default): every row of a contradicting (prompt, completion)
  is left out; the data does not say which label is right.
- ``majority``: the label most of its rows carry is kept, the others are
  left out; an even split is dropped as under ``drop``.
- ``keep``: all rows go out as before; they are still counted.

Rows are compared in the export's shape, so the same text sent once as a
string and once as messages is one completion. A contradiction is only
known once every row is read, so the candidates are spooled to a scratch
SQLite file (memory stays flat) and replayed in their order. Votes are
counted before de-duplication: three verdicts preferring a completion and
one rejecting it are three to one.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import orjson

from app.export.build import Candidate, Stats
from app.export.options import ContradictionRule, Source

SPOOL_CHUNK = 2000
# The scratch file's page cache: a bound on memory (see app/export/seen.py).
CACHE_KIB = 8 * 1024


def resolve_contradictions(
    found: Iterator[Candidate], rule: ContradictionRule, stats: Stats
) -> Iterator[Candidate]:
    """The KTO candidates in their order, less those ``rule`` leaves out; counted in ``stats``."""
    with tempfile.TemporaryDirectory(prefix="referee-kto-") as folder:
        db = sqlite3.connect(Path(folder) / "spool.db")
        try:
            _spool(db, found)
            stats.contradictions += _find_contradictions(db)
            dropped = 0
            for candidate, keep in _replay(db, rule):
                if keep:
                    yield candidate
                else:
                    dropped += 1
            stats.contradiction_rows_dropped += dropped
        finally:
            db.close()


def _spool(db: sqlite3.Connection, found: Iterator[Candidate]) -> None:
    # A scratch file that dies with the export: no journal, no fsync.
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    db.execute("CREATE TABLE spool (seq INTEGER PRIMARY KEY, key BLOB, label INTEGER, data BLOB)")
    while chunk := list(islice(found, SPOOL_CHUNK)):
        with db:
            db.executemany(
                "INSERT INTO spool (key, label, data) VALUES (?, ?, ?)",
                [(_key(c), int(_label(c)), _encode(c)) for c in chunk],
            )
    db.execute("CREATE INDEX spool_key ON spool (key)")


def _find_contradictions(db: sqlite3.Connection) -> int:
    """Fill ``decided`` with each contradicting key's votes; return how many keys."""
    with db:
        db.execute("CREATE TABLE decided (key BLOB PRIMARY KEY, up INTEGER, down INTEGER)")
        db.execute(
            "INSERT INTO decided SELECT key, SUM(label), COUNT(*) - SUM(label) FROM spool "
            "GROUP BY key HAVING SUM(label) > 0 AND SUM(label) < COUNT(*)"
        )
    (count,) = db.execute("SELECT COUNT(*) FROM decided").fetchone()
    return int(count)


def _replay(db: sqlite3.Connection, rule: ContradictionRule) -> Iterator[tuple[Candidate, bool]]:
    rows = db.execute(
        "SELECT s.data, s.label, d.up, d.down FROM spool s "
        "LEFT JOIN decided d ON d.key = s.key ORDER BY s.seq"
    )
    for data, label, up, down in rows:
        yield _decode(data), _keeps(rule, bool(label), up, down)


def _keeps(rule: ContradictionRule, label: bool, up: int | None, down: int | None) -> bool:
    if up is None or down is None or rule is ContradictionRule.KEEP:
        return True
    if rule is ContradictionRule.MAJORITY and up != down:
        return label == (up > down)
    return False


def _key(candidate: Candidate) -> bytes:
    # The full (prompt, completion) text, not a hash: a collision here would
    # silently drop good rows, and the scratch file is on disk anyway.
    row = candidate.row
    assert row is not None  # KTO rows are always built as dicts
    return orjson.dumps([row["prompt"], row["completion"]])


def _label(candidate: Candidate) -> bool:
    assert candidate.row is not None
    return bool(candidate.row["label"])


def _encode(c: Candidate) -> bytes:
    return orjson.dumps(
        [
            c.row,
            c.row_id,
            c.prompt,
            c.source.value,
            c.external_id,
            c.judge,
            c.confidence,
            c.disagreement,
        ]
    )


def _decode(data: bytes) -> Candidate:
    row, row_id, prompt, source, external_id, judge, confidence, disagreement = orjson.loads(data)
    return Candidate(
        row,
        row_id,
        prompt,
        Source(source),
        external_id,
        judge,
        confidence,
        disagreement=disagreement,
    )
