"""Which rows an export has already written, in a temporary file rather than in memory.

De-duplication needs every row seen so far. A set in memory grows with the
export (about 120 bytes a row: 300 MB at 2.5 million rows); a SQLite table
of 64-bit digests in a temporary file keeps the process flat however many
rows go out (its page cache is capped), checked a chunk at a time.

64 bits: two different rows share a digest with odds near n²/2⁶⁵ — about
one in 370,000 for ten million rows — and the cost of that rare collision
is one row left out, never a wrong row written.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

# SQLite's default limit on host parameters is 32,766; stay well under it.
LOOKUP_CHUNK = 5000
# The page cache the table may use: a bound on memory, and enough to keep
# the upper levels of the index hot.
CACHE_KIB = 8 * 1024


class SeenDigests:
    """A set of byte digests on disk; ``add_new`` says which of a chunk are new."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="referee-export-")
        path = Path(self._folder.name) / "seen.db"
        self._db = sqlite3.connect(path)
        # A scratch table: no journal, no fsync; it dies with the export.
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        # The digest is the rowid: the fastest key SQLite has.
        self._db.execute("CREATE TABLE seen (digest INTEGER PRIMARY KEY)")

    def add_new(self, digests: Sequence[int]) -> list[bool]:
        """For each digest, whether it was not seen before (earlier in the list included)."""
        known: set[int] = set()
        for start in range(0, len(digests), LOOKUP_CHUNK):
            part = digests[start : start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(part))
            query = f"SELECT digest FROM seen WHERE digest IN ({marks})"
            known.update(row[0] for row in self._db.execute(query, part))
        fresh: list[bool] = []
        new: list[tuple[int]] = []
        for digest in digests:
            is_new = digest not in known
            fresh.append(is_new)
            if is_new:
                known.add(digest)
                new.append((digest,))
        # One transaction per chunk: in autocommit every row would be its own write.
        with self._db:
            self._db.executemany("INSERT INTO seen VALUES (?)", new)
        return fresh

    def close(self) -> None:
        self._db.close()
        self._folder.cleanup()

    def __enter__(self) -> SeenDigests:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()
