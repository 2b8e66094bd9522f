"""Production feedback: thumbs-up/down from live traffic, kept apart from machine labels.

Every record has an idempotency key: the client's, or else the hash of the
body, so an identical body is the same event. A retried POST or a
re-uploaded file therefore never counts twice, and a key reused for a
different body is refused rather than silently merged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.errors import InvalidInputError
from app.keys import content_key, digest
from app.labeling.inputs import Prompt, Response
from app.labeling.jsonl import LineError, Parsed
from app.labeling.text_rules import FeedbackText, IdempotencyKey, Metadata, UtcDatetime
from app.store import feedback as feedback_store
from app.store.db import Database
from app.store.models import Feedback

# Spellings of a thumbs-up/down that clients send; anything else is refused.
LABEL_SPELLINGS: dict[str, bool] = {
    "up": True,
    "thumbs_up": True,
    "👍": True,
    "down": False,
    "thumbs_down": False,
    "👎": False,
}
ACCEPTED_LABELS = "true, false, " + ", ".join(f'"{word}"' for word in LABEL_SPELLINGS)
# Rows written per transaction on bulk ingestion: a crash loses at most the
# uncommitted chunk, which a retry (deduplicated by key) writes again.
INGEST_CHUNK = 2000


class FeedbackIn(BaseModel):
    """A human's thumbs-up/down on one completion."""

    model_config = ConfigDict(extra="forbid")

    prompt: Prompt
    completion: Response
    label: bool = Field(description=f"Thumbs up or down: {ACCEPTED_LABELS}.")
    source: FeedbackText | None = Field(None, examples=["chat-web"])
    user_id: FeedbackText | None = None
    session_id: FeedbackText | None = None
    metadata: Metadata | None = Field(None, description="Free-form, stored as given.")
    occurred_at: UtcDatetime | None = Field(
        None, description="When the user gave it (with zone)."
    )
    idempotency_key: IdempotencyKey | None = Field(
        None,
        description="Retries with the same key count once; default: the body's hash.",
    )

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, value: object) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in LABEL_SPELLINGS:
            return LABEL_SPELLINGS[value.strip().lower()]
        raise ValueError(f"unknown label {value!r}; use one of {ACCEPTED_LABELS}")

    def row(self) -> dict[str, Any]:
        """The values to store, with the keys that deduplicate it."""
        body = self.model_dump(mode="json", exclude={"idempotency_key"})
        body_hash = digest(body)
        prompt, completion = body["prompt"], body["completion"]
        return {
            "idempotency_key": self.idempotency_key or f"body:{body_hash}",
            "body_hash": body_hash,
            "content_key": content_key(prompt, completion),
            "prompt": prompt,
            "completion": completion,
            "label": self.label,
            "source": self.source,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "meta": self.metadata,
            "occurred_at": self.occurred_at,
        }


@dataclass(slots=True)
class IngestSummary:
    """What a bulk ingestion did, line by line where it matters."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


class KeyReusedError(InvalidInputError):
    status_code = 409
    code = "idempotency_key_reused"


async def record_one(db: Database, item: FeedbackIn) -> tuple[Feedback, bool]:
    """Store one feedback; returns the row and whether it is new.

    The same key with the same body returns the stored row; the same key
    with another body is a 409, never an overwrite.
    """
    row = item.row()
    async with db.transaction() as session:
        stored, outcome = await feedback_store.insert_one(session, row)
    if outcome.conflict:
        raise KeyReusedError(
            f"idempotency key {row['idempotency_key']!r} was already used for a different body",
            idempotency_key=row["idempotency_key"],
        )
    return stored, outcome.inserted


async def ingest(db: Database, records: Iterable[Parsed[FeedbackIn] | LineError]) -> IngestSummary:
    """Store many feedback records in chunks; bad lines are reported, the rest stored.

    Reading and validating the next chunk runs in a thread while the
    previous one is written: SQLite works with the GIL released, so on two
    cores the two overlap, and the event loop stays free for other requests.
    Chunks are still written one after another, each in its own transaction.
    """
    summary = IngestSummary()
    iterator = iter(records)

    def prepare() -> tuple[list[dict[str, Any]], list[int]] | None:
        chunk = list(islice(iterator, INGEST_CHUNK))
        if not chunk:
            return None
        rows, lines = [], []
        for record in chunk:
            if isinstance(record, LineError):
                summary.rejected.append({"line": record.line, "reason": record.reason})
                continue
            rows.append(record.record.row())
            lines.append(record.line)
        return rows, lines

    async def write(rows: list[dict[str, Any]], lines: list[int]) -> None:
        async with db.transaction() as session:
            outcomes = await feedback_store.insert_many(session, rows)
        _count(summary, outcomes, rows, lines)

    writing: asyncio.Task[None] | None = None
    try:
        while (prepared := await asyncio.to_thread(prepare)) is not None:
            if writing is not None:
                await writing
            writing = asyncio.create_task(write(*prepared)) if prepared[0] else None
        if writing is not None:
            await writing
        # Bad lines are found while reading, key clashes while writing, the two
        # side by side: report them in line order.
        summary.rejected.sort(key=lambda item: item["line"])
    finally:
        if writing is not None and not writing.done():
            writing.cancel()
    return summary


def _count(
    summary: IngestSummary,
    outcomes: list[feedback_store.InsertOutcome],
    rows: list[dict[str, Any]],
    lines: list[int],
) -> None:
    for outcome, row, line in zip(outcomes, rows, lines, strict=True):
        if outcome.conflict:
            key = row["idempotency_key"]
            reason = f"idempotency key {key!r} was already used for a different body"
            summary.rejected.append({"line": line, "reason": reason})
        elif outcome.inserted:
            summary.accepted += 1
        else:
            summary.duplicates += 1
