"""Stream training rows for each kind out of the stored labels, counting as they pass.

DPO: each current verdict with a winner gives (prompt, chosen, rejected);
ties give nothing (there is no chosen response).

KTO (the rule the docs state):
- a rating gives its response, desirable when the score reaches the
  rubric's threshold;
- production feedback gives its completion with the user's thumbs;
- a verdict gives its winner as desirable, and its loser as undesirable
  only when the loser's own rating failed its threshold, or the verdict is
  position-consistent with confidence ≥ ``loser_min_confidence``. A loser
  of a weak or one-order verdict may still be a good answer, so it is left
  out rather than taught as bad.

SFT: the preferred answers: verdict winners, passing ratings, thumbs-up.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from app.export.options import ExportOptions, Kind, Source
from app.export.rows import Row, dpo_row, fingerprint, in_test_split, kto_row, sft_row
from app.labeling.keys import content_key
from app.store.exports import FETCH_CHUNK, Reader, VerdictQuery

# KTO rows of one label held back while waiting for the other (see interleave_labels).
INTERLEAVE_LIMIT = 10_000


@dataclass(slots=True)
class Stats:
    """What went into an export, for the summary and the dataset card."""

    verdicts: int = 0
    ties: int = 0
    two_order: int = 0
    consistent: int = 0
    judges: Counter[str] = field(default_factory=Counter)
    templates: Counter[str] = field(default_factory=Counter)
    constitutions: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    splits: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    desirable: int = 0
    undesirable: int = 0
    losers_left_out: int = 0

    @property
    def rows(self) -> int:
        return sum(self.splits.values())

    @property
    def consistency_rate(self) -> float | None:
        return self.consistent / self.two_order if self.two_order else None

    @property
    def tie_rate(self) -> float | None:
        return self.ties / self.verdicts if self.verdicts else None

    def count_verdict(self, record: Any) -> None:
        self.verdicts += 1
        self.ties += record.winner == "tie"
        if record.position_consistent is not None:
            self.two_order += 1
            self.consistent += bool(record.position_consistent)
        self.judges[record.judge] += 1
        self.templates[record.template_version] += 1
        if record.constitution is not None:
            self.constitutions[record.constitution] += 1


@dataclass(frozen=True, slots=True)
class Candidate:
    """A row before de-duplication and splitting, with where it came from."""

    row: Row
    row_id: str
    prompt: Any
    source: Source
    external_id: str | None = None
    judge: str | None = None
    confidence: float | None = None


def candidates(
    reader: Reader, options: ExportOptions, query: VerdictQuery, stats: Stats
) -> Iterator[Candidate]:
    """Every candidate row of the export's kind, source by source."""
    for source in options.chosen_sources:
        if source is Source.VERDICTS:
            yield from _from_verdicts(reader, options, query, stats)
        elif source is Source.RATINGS:
            yield from _from_ratings(reader, options, query, stats)
        elif source is Source.REVISIONS:
            yield from _from_revisions(reader, options, query, stats)
        else:
            yield from _from_feedback(reader, options, query)


def _from_verdicts(
    reader: Reader,
    options: ExportOptions,
    query: VerdictQuery,
    stats: Stats,
) -> Iterator[Candidate]:
    records = reader.verdicts(query)
    while chunk := list(islice(records, FETCH_CHUNK)):
        failing = _failing_losers(reader, options, chunk)
        for record in chunk:
            stats.count_verdict(record)
            if record.winner == "tie":
                continue
            yield from _verdict_rows(record, options, failing, stats)


def _sides(record: Any) -> tuple[Any, Any]:
    if record.winner == "a":
        return record.response_a, record.response_b
    return record.response_b, record.response_a


def _failing_losers(reader: Reader, options: ExportOptions, chunk: list[Any]) -> set[str]:
    if options.kind is not Kind.KTO:
        return set()
    keys = [content_key(r.prompt, _sides(r)[1]) for r in chunk if r.winner != "tie"]
    return reader.failing_rated(keys)


def _verdict_rows(
    record: Any, options: ExportOptions, failing: set[str], stats: Stats
) -> Iterator[Candidate]:
    chosen, rejected = _sides(record)
    common = {
        "row_id": str(record.id),
        "prompt": record.prompt,
        "source": Source.VERDICTS,
        "external_id": record.external_id,
        "judge": record.judge,
        "confidence": record.confidence,
    }
    if options.kind is Kind.DPO:
        yield Candidate(dpo_row(record.prompt, chosen, rejected, options.shape), **common)
        return
    if options.kind is Kind.SFT:
        yield Candidate(sft_row(record.prompt, chosen, options.shape), **common)
        return
    yield Candidate(kto_row(record.prompt, chosen, True, options.shape), **common)
    confident = (
        record.position_consistent is True
        and (record.confidence or 0) >= options.loser_min_confidence
    )
    if confident or content_key(record.prompt, rejected) in failing:
        yield Candidate(kto_row(record.prompt, rejected, False, options.shape), **common)
    else:
        stats.losers_left_out += 1


def _from_ratings(
    reader: Reader, options: ExportOptions, query: VerdictQuery, stats: Stats
) -> Iterator[Candidate]:
    for record in reader.ratings(query.judges, query.since, query.until):
        if options.kind is Kind.SFT and not record.passed:
            continue
        stats.judges[record.judge] += 1
        stats.templates[f"{record.template_version} / {record.rubric_version}"] += 1
        if options.kind is Kind.SFT:
            row = sft_row(record.prompt, record.response, options.shape)
        else:
            row = kto_row(record.prompt, record.response, bool(record.passed), options.shape)
        yield Candidate(
            row,
            row_id=str(record.id),
            prompt=record.prompt,
            source=Source.RATINGS,
            external_id=record.external_id,
            judge=record.judge,
        )


def _from_revisions(
    reader: Reader, options: ExportOptions, query: VerdictQuery, stats: Stats
) -> Iterator[Candidate]:
    """Revision ≻ original for DPO; revision good and original bad for KTO; final for SFT.

    A run whose critique found nothing to fix has no pair: it gives its
    original as an SFT row (it passed the critique) and nothing else.
    """
    for record in reader.revisions(query):
        stats.judges[record.judge] += 1
        stats.constitutions[record.constitution] += 1
        common = {
            "row_id": str(record.id),
            "prompt": record.prompt,
            "source": Source.REVISIONS,
            "external_id": record.external_id,
            "judge": record.judge,
        }
        revised, original = record.final_response, record.response
        if options.kind is Kind.SFT:
            final = revised if record.revised else original
            yield Candidate(sft_row(record.prompt, final, options.shape), **common)
        elif not record.revised:
            continue
        elif options.kind is Kind.DPO:
            yield Candidate(dpo_row(record.prompt, revised, original, options.shape), **common)
        else:
            yield Candidate(kto_row(record.prompt, revised, True, options.shape), **common)
            yield Candidate(kto_row(record.prompt, original, False, options.shape), **common)


def _from_feedback(
    reader: Reader, options: ExportOptions, query: VerdictQuery
) -> Iterator[Candidate]:
    for record in reader.feedback(query.since, query.until):
        if options.kind is Kind.SFT and not record.label:
            continue
        if options.kind is Kind.SFT:
            row = sft_row(record.prompt, record.completion, options.shape)
        else:
            row = kto_row(record.prompt, record.completion, record.label, options.shape)
        yield Candidate(
            row,
            row_id=str(record.id),
            prompt=record.prompt,
            source=Source.FEEDBACK,
            external_id=record.idempotency_key,
        )


def finished_rows(
    found: Iterator[Candidate], options: ExportOptions, stats: Stats
) -> Iterator[tuple[str, Row]]:
    """(split, row) for each candidate kept, in the order a trainer should see them."""
    rows = _kept_rows(found, options, stats)
    return interleave_labels(rows) if options.kind is Kind.KTO else rows


def interleave_labels(
    rows: Iterator[tuple[str, Row]], limit: int = INTERLEAVE_LIMIT
) -> Iterator[tuple[str, Row]]:
    """Alternate desirable and undesirable KTO rows, holding at most ``limit`` back per side.

    Sources arrive in blocks (all ratings, then all feedback…), and a KTO
    batch that holds only one label learns no contrast; alternating mixes
    them without reading the whole export into memory.
    """
    waiting: dict[bool, deque[tuple[str, Row]]] = {True: deque(), False: deque()}
    for item in rows:
        label = bool(item[1]["label"])
        waiting[label].append(item)
        other = waiting[not label]
        if other:
            yield other.popleft()
            yield waiting[label].popleft()
        elif len(waiting[label]) > limit:
            yield waiting[label].popleft()
    for side in (True, False):
        yield from waiting[side]


def _kept_rows(
    found: Iterator[Candidate], options: ExportOptions, stats: Stats
) -> Iterator[tuple[str, Row]]:
    """(split, row) for each candidate kept: duplicates dropped, provenance added on request."""
    seen: set[bytes] = set()
    for candidate in found:
        row = candidate.row
        if options.deduplicate:
            digest = fingerprint(row)
            if digest in seen:
                stats.duplicates += 1
                continue
            seen.add(digest)
        split = (
            "test"
            if in_test_split(
                candidate.row_id, candidate.prompt, options.test_size, options.split_by
            )
            else "train"
        )
        stats.splits[split] += 1
        stats.sources[candidate.source.value] += 1
        if options.kind is Kind.KTO:
            stats.desirable += bool(row["label"])
            stats.undesirable += not row["label"]
        if options.provenance:
            row = {
                **row,
                "id": candidate.row_id,
                "external_id": candidate.external_id,
                "source": candidate.source.value,
                "judge": candidate.judge,
                "confidence": candidate.confidence,
            }
        yield split, row
