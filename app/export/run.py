"""Export use cases: to a file or folder (CLI), or as a JSONL stream (HTTP).

A folder export is written into a hidden staging folder beside the target
and renamed into place at the end, so a crash or an error never leaves a
half-written dataset where a trainer would pick it up.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import BadRequestError, InvalidInputError, NotFoundError
from app.export.build import Stats, candidates
from app.export.card import kto_weights, render_card
from app.export.finish import Kept, finished_rows
from app.export.options import ExportOptions, Filters, Format, Kind, output_format
from app.export.writers import SplitWriters, to_hf_folder
from app.store.exports import ReadEngine, Reader, VerdictQuery

FILE_SUFFIXES = {".jsonl": Format.JSONL, ".parquet": Format.PARQUET}
# Rows an HTTP export fetches and holds at a time: its memory is a few such
# chunks whatever the client does (the CLI reads in larger chunks, for speed).
STREAM_CHUNK_ROWS = 50
# Lines go out in blocks of about this size: one send, and one thread hop, per block.
STREAM_BLOCK_BYTES = 64 * 1024


class EmptyExportError(NotFoundError):
    code = "empty_export"


def empty_reason(options: ExportOptions, stats: Stats) -> str:
    """Why an export has no rows, in terms of what the user did (or did not) ask for."""
    if options.run is not None:
        return f"run {options.run!r} has no scored rewards (metadata.run of POST /v1/rewards)"
    if options.round is not None and stats.lineage:
        return (
            f"round {options.round!r} has no chosen/rejected pair "
            f"(it is at its {stats.lineage[0]['stage']} stage)"
        )
    if options.kind is Kind.DPO and stats.verdicts and stats.ties == stats.verdicts:
        return (
            f"all {stats.verdicts} labeled comparisons are ties; ties are not exported as "
            "DPO pairs (a tie has no chosen response)"
        )
    if options.filters == Filters():
        return f"nothing to export: no stored label makes a {options.kind.value} row"
    return "no rows match the export's filters"


class OutputExistsError(BadRequestError):
    code = "output_exists"


@dataclass(slots=True)
class ExportResult:
    path: Path
    format: Format
    stats: Stats
    files: dict[str, str] = field(default_factory=dict)

    @property
    def kto_weights(self) -> tuple[float, float]:
        return kto_weights(self.stats.desirable, self.stats.undesirable)


def resolve_query(reader: Reader, filters: Filters) -> VerdictQuery:
    """The database query for some filters; unknown judges or batches are errors, not empty sets."""
    if filters.judges:
        known = reader.known_judges()
        unknown = [j for j in filters.judges if j not in known]
        if unknown:
            raise InvalidInputError(
                f"no labels from judge {', '.join(map(repr, unknown))}; "
                f"judges in this database: {', '.join(known) or 'none'}",
                field="judge",
            )
    batch_ids: tuple[uuid.UUID, ...] = ()
    if filters.batches:
        found = reader.batch_ids(filters.batches)
        missing = [b for b in filters.batches if b not in found]
        if missing:
            raise InvalidInputError(
                f"no batch named or numbered {', '.join(map(repr, missing))}", field="batch"
            )
        batch_ids = tuple(dict.fromkeys(found[b] for b in filters.batches))
    return VerdictQuery(
        judges=filters.judges,
        batch_ids=batch_ids,
        min_confidence=filters.min_confidence,
        consistent_only=filters.consistent_only,
        max_length_ratio=filters.max_length_ratio,
        max_disagreement=filters.max_disagreement,
        since=filters.since,
        until=filters.until,
    )


def _check_target(out: Path, fmt: Format, options: ExportOptions, overwrite: bool) -> bool:
    """Whether ``out`` names a single file; raises on a target that cannot be written."""
    single_file = out.suffix in FILE_SUFFIXES
    if single_file:
        if FILE_SUFFIXES[out.suffix] is not fmt:
            raise InvalidInputError(
                f"{out} has the suffix {out.suffix} but the format is {fmt.value}; "
                "give a folder or a matching suffix",
                field="out",
            )
        if options.test_size:
            raise InvalidInputError(
                "a test split needs a folder output (train and test files), not a single file",
                field="out",
            )
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it", path=str(out))
    return single_file


def export_to_path(
    database_url: str,
    options: ExportOptions,
    out: Path,
    requested_format: str | None = None,
    *,
    overwrite: bool = False,
    allow_empty: bool = False,
) -> ExportResult:
    """Write the export to ``out``: a file (``.jsonl``/``.parquet``) or a dataset folder."""
    options.check()
    fmt = output_format(out, requested_format)
    single_file = _check_target(out, fmt, options, overwrite)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    files = staging / "files"
    files.mkdir(parents=True)
    try:
        stats, writers = _write_splits(database_url, options, fmt, files)
        if stats.rows == 0 and not allow_empty:
            raise EmptyExportError(
                f"{empty_reason(options, stats)}; nothing was written "
                "(pass --allow-empty to write an empty dataset)"
            )
        result = ExportResult(out, fmt, stats)
        result.files = {split: writers.path(split).name for split in writers.splits}
        if single_file:
            finished = writers.path("train")
        else:
            finished = files
            if fmt is Format.HF:
                finished = staging / "dataset"
                to_hf_folder(files, writers.splits, finished)
            card = render_card(options, fmt, stats, result.files)
            (finished / "README.md").write_text(card, encoding="utf-8")
        _replace(finished, out)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_splits(
    database_url: str, options: ExportOptions, fmt: Format, folder: Path
) -> tuple[Stats, SplitWriters]:
    stats = Stats()
    with Reader.open(database_url) as reader:
        query = resolve_query(reader, options.filters)
        found = candidates(reader, options, query, stats)
        with SplitWriters(folder, options, fmt) as writers:
            for kept in finished_rows(found, options, stats):
                writers.write(kept)
    return stats, writers


def _replace(finished: Path, out: Path) -> None:
    """Move the finished file or folder to ``out``, replacing what is there."""
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)
    finished.rename(out)


def stream_jsonl(
    engine: ReadEngine, options: ExportOptions, *, allow_empty: bool = False
) -> ExportLines:
    """The export as JSONL, checked and started before the first byte is sent.

    The first row is read eagerly so that bad filters and an empty result
    are errors with a status code, not a cut-off 200 stream. Reads two
    connections from ``engine`` until the lines are closed.
    """
    options.check()
    reader = Reader(engine, chunk_rows=STREAM_CHUNK_ROWS)
    try:
        query = resolve_query(reader, options.filters)
        stats = Stats()
        found = candidates(reader, options, query, stats)
        rows = finished_rows(found, options, stats, chunk=STREAM_CHUNK_ROWS)
        first = next(rows, None)
    except BaseException:
        reader.close()
        raise
    if first is None and not allow_empty:
        reader.close()
        raise EmptyExportError(empty_reason(options, stats))
    return ExportLines(first, rows, reader.close)


class ExportLines:
    """An export's JSONL lines in blocks of about ``STREAM_BLOCK_BYTES``, read as they are taken.

    ``close`` ends the read at once and runs what was attached (the
    reader's release, a server's slot); it runs by itself at the end of the
    rows, and when the object is collected unclosed, so an abandoned export
    never keeps its connections.
    """

    def __init__(self, first: Kept | None, rows: Iterator[Kept], close: Callable[[], None]) -> None:
        self._rows = itertools.chain(() if first is None else (first,), rows)
        self._closers = [close]
        self._finalizer = weakref.finalize(self, _close_all, rows, self._closers)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after the read is closed (at once if it is already)."""
        if self._finalizer.alive:
            self._closers.append(callback)
        else:
            callback()

    def __iter__(self) -> ExportLines:
        return self

    def __next__(self) -> bytes:
        block = bytearray()
        for kept in self._rows:
            block += kept.line
            if len(block) >= STREAM_BLOCK_BYTES:
                return bytes(block)
        self.close()
        if not block:
            raise StopIteration
        return bytes(block)

    def close(self) -> None:
        self._finalizer()


def _close_all(rows: Iterator[Kept], closers: list[Callable[[], None]]) -> None:
    # The row generator first (it closes the cursors under it), then the
    # closers in order; an exit stack runs every one even when one fails.
    with contextlib.ExitStack() as stack:
        for close in reversed(closers):
            stack.callback(close)
        close_rows = getattr(rows, "close", None)
        if close_rows is not None:
            stack.callback(close_rows)


def is_kind(value: str) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        raise InvalidInputError(f"unknown export kind {value!r}; use dpo, kto or sft") from None
