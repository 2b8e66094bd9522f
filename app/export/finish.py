"""The last steps of an export: de-duplicate, split, add provenance, order for the trainer.

Each kept row is serialized here once, to the JSONL line it becomes; the
same bytes give the de-duplication digest when no provenance columns are
added (they are then identical to the row's content).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from itertools import islice
from typing import NamedTuple

import orjson

from app.export.build import Candidate, Stats
from app.export.contradictions import resolve_contradictions
from app.export.options import ExportOptions, Kind, Source
from app.export.rows import Row, in_test_split
from app.export.seen import SeenDigests

CHUNK = 2000
# KTO rows of one label held back while waiting for the other (see interleave_labels).
INTERLEAVE_LIMIT = 10_000


class Kept(NamedTuple):
    split: str
    row: Row | None
    """None when the row was built as JSON only; decode ``line`` for it."""
    line: bytes
    """The row as one JSONL line, newline included."""


def finished_rows(
    found: Iterator[Candidate], options: ExportOptions, stats: Stats, *, chunk: int = CHUNK
) -> Iterator[Kept]:
    """Each candidate kept, with its split and line, in the order a trainer should see them.

    ``chunk`` candidates are held (and checked for duplicates) at a time.
    """
    if options.kind is Kind.KTO:
        found = resolve_contradictions(found, options.kto_contradictions, stats)
    rows = _kept_rows(found, options, stats, chunk)
    return interleave_labels(rows) if options.kind is Kind.KTO else rows


def _kept_rows(
    found: Iterator[Candidate], options: ExportOptions, stats: Stats, chunk_size: int
) -> Iterator[Kept]:
    seen = SeenDigests() if options.deduplicate else None
    splits: Counter[str] = Counter()
    sources: Counter[Source] = Counter()
    desirable = duplicates = 0
    try:
        while chunk := list(islice(found, chunk_size)):
            encoded = [c.encoded or orjson.dumps(c.row) for c in chunk]
            # Python's own hash of bytes (64-bit SipHash) is fast and stable
            # within one process, which is all one export needs.
            fresh = (
                seen.add_new([hash(content) for content in encoded])
                if seen is not None
                else [True] * len(chunk)
            )
            for candidate, content, is_new in zip(chunk, encoded, fresh, strict=True):
                if not is_new:
                    duplicates += 1
                    continue
                kept = _finish(candidate, content, options)
                splits[kept.split] += 1
                sources[candidate.source] += 1
                if options.kind is Kind.KTO and _label(kept):
                    desirable += 1
                yield kept
    finally:
        if seen is not None:
            seen.close()
        # Tallied locally and added once: attribute look-ups per row add up.
        stats.duplicates += duplicates
        stats.splits.update(splits)
        stats.sources.update({source.value: n for source, n in sources.items()})
        if options.kind is Kind.KTO:
            stats.desirable += desirable
            stats.undesirable += sum(splits.values()) - desirable


def _finish(candidate: Candidate, content: bytes, options: ExportOptions) -> Kept:
    split = (
        "test"
        if options.test_size
        and in_test_split(candidate.row_id, candidate.prompt, options.test_size, options.split_by)
        else "train"
    )
    if not options.provenance:
        return Kept(split, candidate.row, content + b"\n")
    row = {
        **(candidate.row if candidate.row is not None else orjson.loads(content)),
        "id": candidate.row_id,
        "external_id": candidate.external_id,
        "source": candidate.source.value,
        "judge": candidate.judge,
        "confidence": candidate.confidence,
        "disagreement": candidate.disagreement,
        **({"reviewers": candidate.reviewers} if Source.HUMAN in options.sources else {}),
    }
    return Kept(split, row, orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))


def _label(kept: Kept) -> bool:
    # KTO rows are always built as dicts (only DPO rows are spliced as JSON).
    assert kept.row is not None
    return bool(kept.row["label"])


def interleave_labels(rows: Iterator[Kept], limit: int = INTERLEAVE_LIMIT) -> Iterator[Kept]:
    """Alternate desirable and undesirable KTO rows, holding at most ``limit`` back per side.

    Sources arrive in blocks (all ratings, then all feedback…), and a KTO
    batch that holds only one label learns no contrast; alternating mixes
    them without reading the whole export into memory.
    """
    waiting: dict[bool, deque[Kept]] = {True: deque(), False: deque()}
    for item in rows:
        label = _label(item)
        waiting[label].append(item)
        other = waiting[not label]
        if other:
            yield other.popleft()
            yield waiting[label].popleft()
        elif len(waiting[label]) > limit:
            yield waiting[label].popleft()
    for side in (True, False):
        yield from waiting[side]
