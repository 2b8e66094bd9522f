"""Gold labels: human preferences on pairs, imported from data sets or posted as reviews.

A gold label is keyed by the pair's content (``pair_key``), not by a
comparison: one human label applies to every judge's comparison of the same
pair, and it can be imported before any judge has seen the pair.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.errors import NotFoundError
from app.labeling.inputs import LabeledPairIn
from app.labeling.jsonl import LineError, ParsedLine
from app.labeling.keys import digest, pair_key
from app.labeling.text_rules import Reviewer, ReviewNote
from app.store import comparisons, gold
from app.store.db import Database
from app.store.models import GoldLabel, utcnow

IMPORT_CHUNK = 1000


def import_row(pair: LabeledPairIn, origin: str) -> dict[str, Any] | None:
    """The gold_labels row for a pair that carries a human label; None when it carries none."""
    if pair.label is None:
        return None
    stored = pair.stored()
    key = pair_key(stored["prompt"], stored["response_a"], stored["response_b"])
    votes = list(pair.label_votes) if pair.label_votes is not None else None
    return {
        "pair_key": key,
        "dedupe_key": digest(
            {"pair": key, "winner": pair.label, "votes": votes, "source": "import"}
        ),
        "winner": pair.label,
        "source": "import",
        "origin": origin[:1024],
        "external_id": pair.id,
        "comparison_id": None,
        "reviewer": None,
        "note": None,
        "votes": votes,
        "created_at": utcnow(),
    }


@dataclass
class GoldImportSummary:
    """What ``referee gold import`` did with a file."""

    records: int = 0
    labeled: int = 0
    new: int = 0
    unlabeled: int = 0
    winners: Counter[str] = field(default_factory=Counter)
    rejected: list[LineError] = field(default_factory=list)


async def import_gold(
    database: Database, records: Iterable[ParsedLine | LineError], origin: str
) -> GoldImportSummary:
    """Store the human labels a file carries, without judging; a chunk per transaction."""
    summary = GoldImportSummary()
    iterator = iter(records)
    while chunk := list(islice(iterator, IMPORT_CHUNK)):
        rows = []
        for record in chunk:
            if isinstance(record, LineError):
                summary.rejected.append(record)
                continue
            summary.records += 1
            row = import_row(record.pair, origin)
            if row is None:
                summary.unlabeled += 1
                continue
            summary.winners[row["winner"]] += 1
            rows.append(row)
        summary.labeled += len(rows)
        async with database.transaction() as session:
            summary.new += await gold.insert_imports(session, rows)
    return summary


class ReviewIn(BaseModel):
    """A human's verdict on a stored comparison."""

    model_config = ConfigDict(extra="forbid")

    winner: Literal["a", "b", "tie"] = Field(description="Which response the reviewer prefers.")
    reviewer: Reviewer | None = Field(None, description="Who reviewed.")
    note: ReviewNote | None = Field(None, description="Why, in the reviewer's words.")


async def add_review(database: Database, comparison_id: uuid.UUID, review: ReviewIn) -> GoldLabel:
    """Store a review as a gold label on the comparison's pair; 404 when there is no comparison."""
    async with database.transaction() as session:
        found = await comparisons.get(session, comparison_id)
        if found is None:
            raise NotFoundError(f"no comparison {comparison_id}")
        key = found.pair_key or pair_key(found.prompt, found.response_a, found.response_b)
        return await gold.add_review(
            session,
            {
                "pair_key": key,
                "dedupe_key": uuid.uuid4().hex,
                "winner": review.winner,
                "source": "review",
                "comparison_id": comparison_id,
                "reviewer": review.reviewer,
                "note": review.note,
                "created_at": utcnow(),
            },
        )
