"""What an export asks for: kind, shape, filters, split and output, checked up front."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from app.errors import InvalidInputError

E = TypeVar("E", bound=enum.StrEnum)


class Kind(enum.StrEnum):
    DPO = "dpo"
    KTO = "kto"
    SFT = "sft"


class Shape(enum.StrEnum):
    CONVERSATIONAL = "conversational"
    """prompt: list of messages; chosen/rejected/completion: one assistant message in a list."""
    TEXT = "text"
    """Every column a plain string."""


class Format(enum.StrEnum):
    JSONL = "jsonl"
    PARQUET = "parquet"
    HF = "hf"


class Source(enum.StrEnum):
    VERDICTS = "verdicts"
    RATINGS = "ratings"
    FEEDBACK = "feedback"
    REVISIONS = "revisions"
    REWARDS = "rewards"
    """Rewards a training run asked for (``--run``); never a default source."""
    HUMAN = "human"
    """Human preferences (reviews and imported gold labels) as DPO pairs; never a default."""
    ROUND = "round"
    """A round's selected pairs: exported with ``--round NAME``, never named as a source."""


class SplitBy(enum.StrEnum):
    ID = "id"
    PROMPT = "prompt"


class ContradictionRule(enum.StrEnum):
    """What a KTO export does with a (prompt, completion) labeled both ways (see contradictions)."""

    DROP = "drop"
    MAJORITY = "majority"
    KEEP = "keep"


DEFAULT_SOURCES: dict[Kind, tuple[Source, ...]] = {
    Kind.DPO: (Source.VERDICTS, Source.REVISIONS),
    Kind.KTO: (Source.RATINGS, Source.FEEDBACK, Source.VERDICTS, Source.REVISIONS),
    Kind.SFT: (Source.VERDICTS, Source.RATINGS, Source.FEEDBACK, Source.REVISIONS),
}
# A pairwise loser counts as undesirable for KTO only when the verdict is
# position-consistent and at least this confident (or its own rating fails).
DEFAULT_LOSER_MIN_CONFIDENCE = 0.75


@dataclass(frozen=True, slots=True)
class Filters:
    """Which stored labels go in. Empty tuples and ``None`` restrict nothing."""

    judges: tuple[str, ...] = ()
    batches: tuple[str, ...] = ()
    min_confidence: float | None = None
    consistent_only: bool = False
    max_length_ratio: float | None = None
    max_disagreement: float | None = None
    """Jury verdicts whose members disagree at most this much; leaves out single judges'."""
    since: datetime | None = None
    until: datetime | None = None

    def check(self) -> None:
        if self.min_confidence is not None and not 0 <= self.min_confidence <= 1:
            raise InvalidInputError(
                f"min_confidence must be between 0 and 1, got {self.min_confidence}",
                field="min_confidence",
            )
        if self.max_disagreement is not None and not 0 <= self.max_disagreement <= 1:
            raise InvalidInputError(
                f"max_disagreement must be between 0 and 1, got {self.max_disagreement}",
                field="max_disagreement",
            )
        if self.max_length_ratio is not None and self.max_length_ratio < 1:
            raise InvalidInputError(
                "max_length_ratio is longer/shorter and must be at least 1, "
                f"got {self.max_length_ratio}",
                field="max_length_ratio",
            )
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise InvalidInputError(
                    f"{name} needs a time zone, e.g. 2026-11-27T00:00:00Z", field=name
                )
        if self.since and self.until and self.since >= self.until:
            raise InvalidInputError("since must be before until", field="since")

    def describe(self) -> dict[str, object]:
        """The filters that restrict something, for the dataset card."""
        described: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value in ((), None, False):
                continue
            described[name] = (
                list(value)
                if isinstance(value, tuple)
                else str(value)
                if isinstance(value, datetime)
                else value
            )
        return described


@dataclass(frozen=True, slots=True)
class ExportOptions:
    kind: Kind
    shape: Shape = Shape.CONVERSATIONAL
    filters: Filters = field(default_factory=Filters)
    sources: tuple[Source, ...] = ()
    loser_min_confidence: float = DEFAULT_LOSER_MIN_CONFIDENCE
    provenance: bool = False
    deduplicate: bool = True
    test_size: float = 0.0
    split_by: SplitBy = SplitBy.ID
    kto_contradictions: ContradictionRule = ContradictionRule.DROP
    run: str | None = None
    """KTO/SFT: the rewards stored for this training run (metadata.run), instead of labels."""
    round: str | None = None
    """Export this round's chosen/rejected pairs (DPO) instead of the stored verdicts."""

    @property
    def chosen_sources(self) -> tuple[Source, ...]:
        return self.sources or DEFAULT_SOURCES[self.kind]

    def check(self) -> None:
        self.filters.check()
        if Source.ROUND in self.sources:
            raise InvalidInputError(
                "a round's pairs are exported with export dpo --round NAME: use --round NAME",
                field="sources",
            )
        pairwise = {Source.VERDICTS, Source.REVISIONS, Source.HUMAN}
        if self.kind is Kind.DPO and not set(self.sources) <= pairwise:
            raise InvalidInputError(
                "DPO rows come from pairwise verdicts and revisions (revision over original) "
                "only; use --source verdicts and/or --source revisions",
                field="sources",
            )
        if Source.HUMAN in self.sources:
            self._check_human()
        if self.round is not None:
            self._check_round()
        if self.run is not None:
            self._check_run()
        elif Source.REWARDS in self.sources:
            raise InvalidInputError(
                "rewards are exported per training run: use --run RUN", field="sources"
            )
        if not 0 <= self.test_size < 1:
            raise InvalidInputError(
                f"test_size is a fraction in [0, 1), got {self.test_size}", field="test_size"
            )
        if not 0 <= self.loser_min_confidence <= 1:
            raise InvalidInputError(
                f"loser_min_confidence must be between 0 and 1, got {self.loser_min_confidence}",
                field="loser_min_confidence",
            )

    def _check_human(self) -> None:
        if self.kind is not Kind.DPO or self.sources != (Source.HUMAN,):
            raise InvalidInputError(
                "--source human exports human preferences alone, as DPO pairs: "
                "use export dpo --source human",
                field="sources",
            )
        if self.filters != Filters():
            raise InvalidInputError(
                "--source human exports every pair a person decided; "
                "the verdict filters do not apply to it",
                field="sources",
            )

    def _check_round(self) -> None:
        if self.kind is not Kind.DPO:
            raise InvalidInputError(
                "a round exports DPO pairs (its chosen and rejected): use export dpo --round",
                field="round",
            )
        if self.sources or self.filters != Filters():
            raise InvalidInputError(
                "--round exports the round's pairs as its strategy selected them; "
                "--source and the verdict filters do not apply to it",
                field="round",
            )

    def _check_run(self) -> None:
        if self.kind is Kind.DPO:
            raise InvalidInputError(
                "a run's rewards score single completions: export kto or sft --run",
                field="run",
            )
        if self.sources or self.filters != Filters():
            raise InvalidInputError(
                "--run exports the rewards stored for the run as they were scored; "
                "--source and the label filters do not apply to it",
                field="run",
            )


def parse_enum(kind: type[E], value: str, field_name: str) -> E:
    """An enum member from user text, or an error that lists the accepted values."""
    try:
        return kind(value)
    except ValueError:
        accepted = ", ".join(member.value for member in kind)
        raise InvalidInputError(
            f"unknown {field_name} {value!r}; use one of: {accepted}", field=field_name
        ) from None


def output_format(path: Path, requested: str | None) -> Format:
    """The format asked for, or the one a file suffix implies (a folder defaults to JSONL)."""
    if requested is not None:
        return parse_enum(Format, requested, "format")
    if path.suffix == ".parquet":
        return Format.PARQUET
    return Format.JSONL
