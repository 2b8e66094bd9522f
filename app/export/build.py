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

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple

import orjson

from app.errors import InvalidInputError
from app.export.human import human_rows
from app.export.options import ExportOptions, Kind, Shape, Source, SplitBy
from app.export.rows import Row, dpo_row, kto_row, sft_row, spliced_dpo_line
from app.keys import content_key
from app.store.exports import Reader, VerdictQuery


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
    contradictions: int = 0
    """KTO: (prompt, completion) pairs labeled both desirable and undesirable."""
    contradiction_rows_dropped: int = 0
    """KTO: rows of those pairs left out by the export's contradiction rule."""
    lineage: list[dict[str, Any]] = field(default_factory=list)
    """A round export: the round, its parent, its parent's parent, … (for the card)."""

    @property
    def rows(self) -> int:
        return sum(self.splits.values())

    @property
    def consistency_rate(self) -> float | None:
        return self.consistent / self.two_order if self.two_order else None

    @property
    def tie_rate(self) -> float | None:
        return self.ties / self.verdicts if self.verdicts else None

    def count_verdicts(self, records: list[Any]) -> None:
        """Count a chunk of verdicts: one tally per distinct kind, not per field and row."""
        kinds = Counter(
            (r.winner == "tie", r.position_consistent, r.judge, r.template_version, r.constitution)
            for r in records
        )
        for (tie, consistent, judge, template, constitution), count in kinds.items():
            self.verdicts += count
            self.ties += tie * count
            if consistent is not None:
                self.two_order += count
                self.consistent += consistent * count
            self.judges[judge] += count
            self.templates[template] += count
            if constitution is not None:
                self.constitutions[constitution] += count


class Candidate(NamedTuple):
    """A row before de-duplication and splitting, with where it came from.

    A named tuple rather than a frozen dataclass: one is built per exported
    row, and a tuple builds several times faster.
    """

    row: Row | None
    """None when only ``encoded`` was built (see rows.spliced_dpo_line)."""
    row_id: str
    prompt: Any
    source: Source
    external_id: str | None = None
    judge: str | None = None
    confidence: float | None = None
    encoded: bytes | None = None
    """The row as JSON, when it was built as bytes directly."""
    disagreement: float | None = None
    """A jury verdict's disagreement among its members."""
    reviewers: int | None = None
    """Human preferences: how many people decided the pair."""


def candidates(
    reader: Reader, options: ExportOptions, query: VerdictQuery, stats: Stats
) -> Iterator[Candidate]:
    """Every candidate row of the export's kind, source by source."""
    if options.run is not None:
        yield from _from_rewards(reader, options, options.run, stats)
        return
    if options.round is not None:
        yield from _from_round(reader, options, options.round, stats)
        return
    for source in options.chosen_sources:
        if source is Source.VERDICTS:
            yield from _from_verdicts(reader, options, query, stats)
        elif source is Source.RATINGS:
            yield from _from_ratings(reader, options, query, stats)
        elif source is Source.REVISIONS:
            yield from _from_revisions(reader, options, query, stats)
        elif source is Source.HUMAN:
            yield from _from_humans(reader, options, stats)
        else:
            yield from _from_feedback(reader, options, query)


def _from_round(
    reader: Reader, options: ExportOptions, name: str, stats: Stats
) -> Iterator[Candidate]:
    """A round's pairs as its strategy selected them: chosen ≻ rejected per prompt."""
    stats.lineage = reader.round_lineage(name)
    if not stats.lineage:
        raise InvalidInputError(f"no round named {name!r}", field="round")
    found = stats.lineage[0]
    if found["selection_run_id"] is None:
        return
    for pair in reader.round_pairs(found["selection_run_id"]):
        stats.judges[found["judge"]] += 1
        yield Candidate(
            dpo_row(pair.prompt, pair.chosen, pair.rejected, options.shape),
            f"{found['name']}:{pair.id}",
            pair.prompt,
            Source.ROUND,
            pair.external_id,
            found["judge"],
        )


def _from_humans(reader: Reader, options: ExportOptions, stats: Stats) -> Iterator[Candidate]:
    """Human preferences (app.export.human): one DPO row per pair a person decided."""
    for found in human_rows(reader.human_preferences(), options.shape):
        stats.verdicts += 1
        if found is None:
            stats.ties += 1
            continue
        yield Candidate(
            found.row,
            found.row_id,
            found.prompt,
            Source.HUMAN,
            found.external_id,
            found.reviewer,
            found.agreement,
            reviewers=found.reviewers,
        )


def _from_verdicts(
    reader: Reader,
    options: ExportOptions,
    query: VerdictQuery,
    stats: Stats,
) -> Iterator[Candidate]:
    kind, shape = options.kind, options.shape
    # DPO rows in the message shape can be spliced from the stored JSON text
    # without decoding it (unless the split needs to read each prompt).
    splice = (
        kind is Kind.DPO
        and shape is Shape.CONVERSATIONAL
        and not (options.test_size and options.split_by is SplitBy.PROMPT)
    )
    records = reader.verdicts(query, json_text=splice)
    while chunk := list(islice(records, reader.chunk_rows)):
        failing = _failing_losers(reader, options, chunk)
        stats.count_verdicts(chunk)
        # One loop with no call per record beyond the row builders: this runs
        # once per exported row, so every layer shows in the export's speed.
        for record in chunk:
            winner = record.winner
            if winner == "tie":
                continue
            chosen, rejected = _sides(record)
            prompt = record.prompt
            if record.json_text:
                line = spliced_dpo_line(prompt, chosen, rejected)
                if line is not None:
                    yield Candidate(
                        None,
                        record.id,
                        None,
                        Source.VERDICTS,
                        record.external_id,
                        record.judge,
                        record.confidence,
                        line,
                        record.disagreement,
                    )
                    continue
                prompt, chosen, rejected = (orjson.loads(t) for t in (prompt, chosen, rejected))
            if kind is Kind.DPO:
                row = dpo_row(prompt, chosen, rejected, shape)
            elif kind is Kind.SFT:
                row = sft_row(prompt, chosen, shape)
            else:
                row = kto_row(prompt, chosen, True, shape)
            yield Candidate(
                row,
                record.id,
                prompt,
                Source.VERDICTS,
                record.external_id,
                record.judge,
                record.confidence,
                disagreement=record.disagreement,
            )
            if kind is Kind.KTO:
                loser = _undesirable_loser(record, rejected, options, failing, stats)
                if loser is not None:
                    yield loser


def _sides(record: Any) -> tuple[Any, Any]:
    if record.winner == "a":
        return record.response_a, record.response_b
    return record.response_b, record.response_a


def _failing_losers(reader: Reader, options: ExportOptions, chunk: list[Any]) -> set[str]:
    if options.kind is not Kind.KTO:
        return set()
    keys = [content_key(r.prompt, _sides(r)[1]) for r in chunk if r.winner != "tie"]
    return reader.failing_rated(keys)


def _undesirable_loser(
    record: Any, rejected: Any, options: ExportOptions, failing: set[str], stats: Stats
) -> Candidate | None:
    """The loser as an undesirable KTO row, when the rule in this module's docstring allows."""
    confident = (
        record.position_consistent is True
        and (record.confidence or 0) >= options.loser_min_confidence
    )
    if not confident and content_key(record.prompt, rejected) not in failing:
        stats.losers_left_out += 1
        return None
    return Candidate(
        kto_row(record.prompt, rejected, False, options.shape),
        record.id,
        record.prompt,
        Source.VERDICTS,
        record.external_id,
        record.judge,
        record.confidence,
        disagreement=record.disagreement,
    )


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


def _from_rewards(
    reader: Reader, options: ExportOptions, run: str, stats: Stats
) -> Iterator[Candidate]:
    """A training run's rewards: KTO desirable when the scorer passed it; SFT those only."""
    for record in reader.reward_items(run):
        if options.kind is Kind.SFT and not record.passed:
            continue
        stats.judges[record.judge] += 1
        stats.templates[f"reward:{record.scorer}"] += 1
        if options.kind is Kind.SFT:
            row = sft_row(record.prompt, record.completion, options.shape)
        else:
            row = kto_row(record.prompt, record.completion, bool(record.passed), options.shape)
        yield Candidate(
            row,
            row_id=str(record.id),
            prompt=record.prompt,
            source=Source.REWARDS,
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
