"""Streaming writers: JSONL, Parquet, and a Hugging Face ``save_to_disk`` folder.

Rows arrive one at a time and leave in bounded buffers, so memory does not
grow with the number of rows. The Hugging Face folder is built from the
Parquet files, which ``datasets`` reads in chunks into its Arrow cache.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

import orjson

from app.errors import BadRequestError
from app.export.finish import Kept
from app.export.options import ExportOptions, Format, Kind, Shape, Source

PARQUET_ROW_GROUP = 5000
WRITE_BUFFER = 1 << 20


class RowWriter(Protocol):
    def write(self, kept: Kept) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        # A large buffer: rows are small and many, and each write would be a system call.
        self._file: IO[bytes] = open(path, "wb", buffering=WRITE_BUFFER)  # noqa: SIM115 - closed in close()

    def write(self, kept: Kept) -> None:
        self._file.write(kept.line)

    def close(self) -> None:
        self._file.close()


class ParquetWriter:
    def __init__(self, path: Path, options: ExportOptions) -> None:
        import pyarrow.parquet as pq

        self._schema = arrow_schema(options)
        self._writer = pq.ParquetWriter(path, self._schema)
        self._buffer: list[dict[str, Any]] = []

    def write(self, kept: Kept) -> None:
        self._buffer.append(kept.row if kept.row is not None else orjson.loads(kept.line))
        if len(self._buffer) >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._buffer:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self._schema))
            self._buffer = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


def arrow_schema(options: ExportOptions) -> Any:
    """The exact column types, so every file of a kind and shape has one schema."""
    import pyarrow as pa

    message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    text = options.shape is Shape.TEXT
    value = pa.string() if text else message
    columns: list[tuple[str, Any]]
    if options.kind is Kind.DPO:
        columns = [("prompt", value), ("chosen", value), ("rejected", value)]
    elif options.kind is Kind.KTO:
        columns = [("prompt", value), ("completion", value), ("label", pa.bool_())]
    else:
        columns = [("text", pa.string())] if text else [("messages", message)]
    if options.provenance:
        columns += [
            ("id", pa.string()),
            ("external_id", pa.string()),
            ("source", pa.string()),
            ("judge", pa.string()),
            ("confidence", pa.float64()),
            ("disagreement", pa.float64()),
        ]
        if Source.HUMAN in options.sources:
            columns.append(("reviewers", pa.int64()))
    return pa.schema(columns)


class SplitWriters:
    """One writer per split, opened on the split's first row, inside a folder."""

    def __init__(self, folder: Path, options: ExportOptions, fmt: Format) -> None:
        self.folder = folder
        self.options = options
        self.file_format = Format.PARQUET if fmt is Format.HF else fmt
        self._writers: dict[str, RowWriter] = {}

    def path(self, split: str) -> Path:
        return self.folder / f"{split}.{self.file_format.value}"

    def write(self, kept: Kept) -> None:
        writer = self._writers.get(kept.split)
        if writer is None:
            writer = self._open(self.path(kept.split))
            self._writers[kept.split] = writer
        writer.write(kept)

    def _open(self, path: Path) -> RowWriter:
        if self.file_format is Format.PARQUET:
            return ParquetWriter(path, self.options)
        return JsonlWriter(path)

    @property
    def splits(self) -> list[str]:
        return list(self._writers) or ["train"]

    def __enter__(self) -> SplitWriters:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if not self._writers:
            # An empty export (when allowed) still leaves a train file with its schema.
            self._writers["train"] = self._open(self.path("train"))
        for writer in self._writers.values():
            writer.close()


def to_hf_folder(parquet_folder: Path, splits: list[str], out: Path) -> None:
    """Turn per-split Parquet files into a ``DatasetDict.save_to_disk`` folder at ``out``."""
    try:
        import datasets
    except ImportError:
        raise BadRequestError(
            "the hf format needs the datasets package: pip install 'referee[hf]'"
        ) from None
    datasets.disable_progress_bars()  # the CLI shows its own summary; no bars on stderr
    cache = parquet_folder / ".cache"
    dataset = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_parquet(
                str(parquet_folder / f"{split}.parquet"), cache_dir=str(cache)
            )
            for split in splits
        }
    )
    dataset.save_to_disk(str(out))
    shutil.rmtree(cache, ignore_errors=True)
