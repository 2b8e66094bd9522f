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
file, their votes counted in a scratch SQLite table (memory stays flat),
and the candidates replayed in their order. Votes are
counted before de-duplication: three verdicts preferring a completion and
one rejecting it are three to one.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import BinaryIO

import orjson

from app.export.build import Candidate, Stats
from app.export.options import ContradictionRule, Source

CHUNK = 2000
# The scratch database's page cache: a bound on memory (see app/export/seen.py).
CACHE_KIB = 8 * 1024
# Keys are hex digests: raw digest bytes could hold a newline and split a spooled line.
KEY_CHARS = 32
Votes = dict[bytes, tuple[int, int]]


def resolve_contradictions(
    found: Iterator[Candidate], rule: ContradictionRule, stats: Stats
) -> Iterator[Candidate]:
    """The KTO candidates in their order, less those ``rule`` leaves out; counted in ``stats``."""
    with tempfile.TemporaryDirectory(prefix="referee-kto-") as folder:
        db = sqlite3.connect(Path(folder) / "votes.db")
        try:
            with open(Path(folder) / "rows.jsonl", "w+b") as spool:
                _spool(db, spool, found)
                stats.contradictions += _find_contradictions(db)
                spool.seek(0)
                dropped = 0
                for candidate, keep in _replay(db, spool, rule, stats.contradictions > 0):
                    if keep:
                        yield candidate
                    else:
                        dropped += 1
                stats.contradiction_rows_dropped += dropped
        finally:
            db.close()


def _spool(db: sqlite3.Connection, spool: BinaryIO, found: Iterator[Candidate]) -> None:
    """Each candidate as one line (key, label, candidate) in the file; its vote in the table."""
    # A scratch database that dies with the export: no journal, no fsync.
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    db.execute("CREATE TABLE votes (key BLOB, label INTEGER)")
    while chunk := list(islice(found, CHUNK)):
        votes = [(_key(c), int(_label(c))) for c in chunk]
        spool.writelines(
            key + b"%d" % label + _encode(c) for (key, label), c in zip(votes, chunk, strict=True)
        )
        with db:
            db.executemany("INSERT INTO votes VALUES (?, ?)", votes)


def _find_contradictions(db: sqlite3.Connection) -> int:
    """Fill ``decided`` with each contradicting key's votes; return how many keys."""
    with db:
        db.execute(
            "CREATE TABLE decided (key BLOB PRIMARY KEY, up INTEGER, down INTEGER) WITHOUT ROWID"
        )
        db.execute(
            "INSERT INTO decided SELECT key, SUM(label), COUNT(*) - SUM(label) FROM votes "
            "GROUP BY key HAVING SUM(label) > 0 AND SUM(label) < COUNT(*)"
        )
    (count,) = db.execute("SELECT COUNT(*) FROM decided").fetchone()
    return int(count)


def _replay(
    db: sqlite3.Connection, spool: BinaryIO, rule: ContradictionRule, any_contradiction: bool
) -> Iterator[tuple[Candidate, bool]]:
    while lines := list(islice(spool, CHUNK)):
        votes = _votes(db, {line[:KEY_CHARS] for line in lines}) if any_contradiction else {}
        for line in lines:
            label = line[KEY_CHARS : KEY_CHARS + 1] == b"1"
            vote = votes.get(line[:KEY_CHARS])
            yield _decode(line[KEY_CHARS + 1 :]), vote is None or _keeps(rule, label, *vote)


def _votes(db: sqlite3.Connection, keys: set[bytes]) -> Votes:
    """The contradicting keys among ``keys``, with their (up, down) votes."""
    marks = ",".join("?" * len(keys))
    query = f"SELECT key, up, down FROM decided WHERE key IN ({marks})"
    return {key: (up, down) for key, up, down in db.execute(query, list(keys))}


def _keeps(rule: ContradictionRule, label: bool, up: int, down: int) -> bool:
    if rule is ContradictionRule.KEEP:
        return True
    if rule is ContradictionRule.MAJORITY and up != down:
        return label == (up > down)
    return False


def _key(candidate: Candidate) -> bytes:
    # 128 bits of BLAKE2b: short enough to store and compare cheaply, and a
    # collision (which could drop good rows) is out of reach for any export.
    row = candidate.row
    assert row is not None  # KTO rows are always built as dicts
    content = orjson.dumps([row["prompt"], row["completion"]])
    return hashlib.blake2b(content, digest_size=KEY_CHARS // 2).hexdigest().encode()


def _label(candidate: Candidate) -> bool:
    assert candidate.row is not None
    return bool(candidate.row["label"])


def _encode(c: Candidate) -> bytes:
    # One line: orjson escapes newlines inside strings, so "\n" ends the record.
    fields = [c.row, c.row_id, c.prompt, c.source.value, c.external_id, c.judge, c.confidence]
    return orjson.dumps([*fields, c.disagreement], option=orjson.OPT_APPEND_NEWLINE)


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
