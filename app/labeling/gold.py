"""Gold labels: human preferences on pairs, imported from data sets or posted as reviews.

A gold label is keyed by the pair's content (``pair_key``), not by a
comparison: one human label applies to every judge's comparison of the same
pair, and it can be imported before any judge has seen the pair.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.errors import NotFoundError
from app.keys import digest, pair_key
from app.labeling.inputs import LabeledPairIn
from app.labeling.jsonl import LineError, ParsedLine
from app.labeling.text_rules import Reviewer, ReviewNote
from app.store import comparisons, gold
from app.store.db import Database
from app.store.models import GoldLabel, utcnow

IMPORT_CHUNK = 1000
GoldConflict = Literal["newest", "majority", "reject"]
GOLD_CONFLICT_POLICIES: tuple[GoldConflict, ...] = ("newest", "majority", "reject")
MERGES_KEPT = 50
"""Merged lines listed in a summary (all are counted): enough to see what happened."""


def resolve(labels: list[str], policy: GoldConflict) -> str | None:
    """The winner of a pair whose lines carry ``labels`` (file order); None: no gold label.

    ``newest``: the last line's label. ``majority``: the label most lines
    give; when two labels share the top count (a, b; or tie, tie, b, b)
    there is no majority and the pair gets no gold label. ``reject``: any
    disagreement leaves the pair without a gold label. Lines that agree
    give their label under every policy.
    """
    if len(set(labels)) == 1:
        return labels[0]
    if policy == "newest":
        return labels[-1]
    if policy == "majority":
        (top, count), *rest = Counter(labels).most_common()
        return None if rest and rest[0][1] == count else top
    return None


@dataclass(frozen=True, slots=True)
class Merge:
    """A line merged into an earlier line that holds the same pair."""

    line: int
    external_id: str | None
    into_line: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """A pair whose lines carry different human labels, and what the policy made of them."""

    lines: tuple[int, ...]
    labels: tuple[str, ...]
    winner: str | None


@dataclass(slots=True)
class _PairLabels:
    pair_key: str
    lines: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    votes: list[str] | None = None


@dataclass
class GoldLedger:
    """The pairs of one file, each seen once: repeated lines counted, human labels merged.

    A file often holds one pair on several lines (re-annotations, copies).
    They make one gold label, which keeps every line's id (``external_ids``,
    file order); when their labels disagree, ``votes`` holds each line's
    label (aligned with the ids) and ``policy`` settles the winner.
    Memory: 64 bits per distinct pair, plus the labels and ids of labeled
    pairs until they are stored.
    """

    policy: GoldConflict = "newest"
    lines: int = 0
    duplicates: int = 0
    merges: list[Merge] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    _first_line: dict[int, int] = field(default_factory=dict)
    _labeled: dict[str, _PairLabels] = field(default_factory=dict)

    def add(self, pair: LabeledPairIn, line: int) -> bool:
        """Record a line; True when an earlier line held the same pair (this one is merged)."""
        stored = pair.stored()
        key = pair_key(stored["prompt"], stored["response_a"], stored["response_b"])
        self.lines += 1
        first = self._first_line.setdefault(int(key[:16], 16), line)
        if pair.label is not None:
            entry = self._labeled.setdefault(key, _PairLabels(key))
            entry.lines.append(line)
            entry.labels.append(pair.label)
            entry.ids.append(pair.id)
            if entry.votes is None and pair.label_votes is not None:
                entry.votes = list(pair.label_votes)
        if first == line:
            return False
        self.duplicates += 1
        if len(self.merges) < MERGES_KEPT:
            self.merges.append(Merge(line, pair.id, first))
        return True

    def gold_rows(self, origin: str) -> Iterator[dict[str, Any]]:
        """One gold_labels row per labeled pair, disagreements settled by the policy and counted."""
        self.conflicts = []
        for entry in self._labeled.values():
            winner = resolve(entry.labels, self.policy)
            if len(set(entry.labels)) > 1:
                self.conflicts.append(Conflict(tuple(entry.lines), tuple(entry.labels), winner))
            if winner is not None:
                yield _gold_row(entry, winner, origin)

    def settle(self) -> None:
        """Work out the conflicts as storing would, storing nothing (``--dry-run``)."""
        for _row in self.gold_rows(""):
            pass

    @property
    def conflicts_without_gold(self) -> int:
        return sum(conflict.winner is None for conflict in self.conflicts)


def _gold_row(entry: _PairLabels, winner: str, origin: str) -> dict[str, Any]:
    # Lines that agree are one label repeated: the first line's annotator votes, as for a
    # single line (so its dedupe key, too, is what it always was). Lines that disagree: each
    # line's label, aligned with external_ids.
    merged = len(entry.lines) > 1
    votes = list(entry.labels) if len(set(entry.labels)) > 1 else entry.votes
    return {
        "pair_key": entry.pair_key,
        "dedupe_key": digest(
            {"pair": entry.pair_key, "winner": winner, "votes": votes, "source": "import"}
        ),
        "winner": winner,
        "source": "import",
        "origin": origin[:1024],
        # The first line that gave the winning label; external_ids lists every line's.
        "external_id": entry.ids[entry.labels.index(winner)],
        "external_ids": list(entry.ids) if merged else None,
        "comparison_id": None,
        "reviewer": None,
        "note": None,
        "votes": votes,
        "created_at": utcnow(),
    }


async def store_gold(database: Database, ledger: GoldLedger, origin: str) -> Counter[str]:
    """Write a ledger's gold labels, a chunk per transaction; count their winners, and "new"."""
    counts: Counter[str] = Counter()
    rows = ledger.gold_rows(origin)
    while chunk := list(islice(rows, IMPORT_CHUNK)):
        counts.update(row["winner"] for row in chunk)
        async with database.transaction() as session:
            counts["new"] += await gold.insert_imports(session, chunk)
    return counts


def describe_merges(ledger: GoldLedger, limit: int = 10) -> str | None:
    """Which lines were merged into which, ids included; None when none were."""
    if not ledger.duplicates:
        return None
    shown = [
        f"line {m.line}{f' (id {m.external_id})' if m.external_id else ''} into line {m.into_line}"
        for m in ledger.merges[:limit]
    ]
    more = ledger.duplicates - len(shown)
    return "merged: " + ", ".join(shown) + (f", and {more} more" if more else "")


def describe_conflicts(ledger: GoldLedger, limit: int = 10) -> list[str]:
    """The pairs whose lines disagree, and what ``--gold-conflict`` made of each."""
    if not ledger.conflicts:
        return []
    count = len(ledger.conflicts)
    lines = [
        f"{count} pair{'s' if count > 1 else ''} with conflicting gold labels, settled by "
        f"--gold-conflict {ledger.policy}; {ledger.conflicts_without_gold} left without gold"
    ]
    for conflict in ledger.conflicts[:limit]:
        where = ", ".join(map(str, conflict.lines))
        what = ", ".join(conflict.labels)
        lines.append(f"  lines {where}: {what} -> {conflict.winner or 'no gold label'}")
    if count > limit:
        lines.append(f"  and {count - limit} more")
    return lines


@dataclass
class GoldImportSummary:
    """What ``referee gold import`` did with a file."""

    records: int = 0
    labeled: int = 0
    """Gold labels written or found stored: one per pair whose label the policy keeps."""
    new: int = 0
    unlabeled: int = 0
    winners: Counter[str] = field(default_factory=Counter)
    rejected: list[LineError] = field(default_factory=list)
    ledger: GoldLedger = field(default_factory=GoldLedger)


async def import_gold(
    database: Database,
    records: Iterable[ParsedLine | LineError],
    origin: str,
    policy: GoldConflict = "newest",
) -> GoldImportSummary:
    """Store the human labels a file carries, without judging: one gold label per pair."""
    summary = GoldImportSummary(ledger=GoldLedger(policy))
    for record in records:
        if isinstance(record, LineError):
            summary.rejected.append(record)
            continue
        summary.records += 1
        summary.unlabeled += record.pair.label is None
        summary.ledger.add(record.pair, record.line)
    counts = await store_gold(database, summary.ledger, origin)
    summary.new = counts.pop("new", 0)
    summary.winners = counts
    summary.labeled = sum(counts.values())
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
