"""Juries: a panel of judges whose verdicts on a pair are aggregated into one.

A jury is declared in the judges file::

    judges:
      haiku: {spec: anthropic:claude-haiku-4-5}
      panel:
        members: [haiku, openai:gpt-4o-mini, openai:gpt-4.1-nano]
        aggregate: majority     # or mean
        quorum: 2               # default: more than half of the members
        tie_margin: 0.0         # mean only: |P(a) - 1/2| <= margin is a tie

or inline, members and options separated by commas::

    jury:anthropic:claude-haiku-4-5,openai:gpt-4o-mini,openai:gpt-4.1-nano,aggregate=mean

A member is a ``provider:model`` spec or the name of a judge in the file.

Each member judges the pair through the normal protocol (both orders, its
own calls, its own position consistency), concurrently. Then:

- A member that failed is kept as a failed vote and not counted. Fewer
  counted votes than the quorum make the jury fail: no label is made up.
- ``majority``: the vote (``a``, ``b`` or ``tie``) most counted members
  gave; a draw between the leading votes is a ``tie``. Confidence is the
  share of counted votes for the winner.
- ``mean``: the mean of the members' P(a ≻ b) (see :func:`vote_p_a`);
  above ½ + ``tie_margin`` is ``a``, below ½ - ``tie_margin`` is ``b``,
  else ``tie``. Confidence is max(P(a), 1 - P(a)).
- ``disagreement`` (both rules) is 1 - (the count of the most common
  vote) / (counted votes): 0 when all agree, ⅓ for a 2-1 split of three,
  ½ for a 1-1 split, at most ⅔ (three different votes).
- The jury is position-consistent when every counted member that was
  asked in both orders was; its soft preference is the mean of the
  members' only when every counted member has one (log-probabilities).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import fmean
from typing import Any, Literal, TypeAlias

from judges.base import Judge
from judges.config import JudgeConfig, config_from_spec, read_judges_file
from judges.errors import JudgeConfigError
from judges.protocol import judge_pair
from judges.types import Pair, PairOutcome, Verdict, Winner

JURY_PROVIDER = "jury"
Aggregate = Literal["majority", "mean"]
AGGREGATES: tuple[Aggregate, ...] = ("majority", "mean")
JURY_OPTIONS = ("aggregate", "quorum", "tie_margin")
QUORUM_ERROR = "jury_quorum"
MAX_SPEC_CHARS = 256  # what the database stores of a judge's name and spec


@dataclass(frozen=True, slots=True)
class JuryConfig:
    """A resolved jury: its members' configurations and how their votes are aggregated."""

    members: tuple[JudgeConfig, ...]
    aggregate: Aggregate = "majority"
    quorum: int | None = None
    """Counted votes needed for a verdict; ``None`` means more than half of the members."""
    tie_margin: float = 0.0
    name: str | None = None

    def __post_init__(self) -> None:
        where = f"jury {self.name!r}" if self.name else "jury"
        if len(self.members) < 2:
            raise JudgeConfigError(f"{where}: needs at least two members")
        if self.aggregate not in AGGREGATES:
            raise JudgeConfigError(f"{where}: aggregate must be 'majority' or 'mean'")
        if self.quorum is not None and not 1 <= self.quorum <= len(self.members):
            raise JudgeConfigError(
                f"{where}: quorum must be between 1 and {len(self.members)} (its members)"
            )
        if not 0 <= self.tie_margin < 0.5:
            raise JudgeConfigError(f"{where}: tie_margin must be in [0, 0.5)")
        if len(self.spec) > MAX_SPEC_CHARS:
            raise JudgeConfigError(
                f"{where}: its spec is over {MAX_SPEC_CHARS} characters; "
                "name the members in the judges file and use the names"
            )

    @property
    def provider(self) -> str:
        return JURY_PROVIDER

    @property
    def required(self) -> int:
        """The quorum in effect."""
        return self.quorum if self.quorum is not None else len(self.members) // 2 + 1

    @property
    def spec(self) -> str:
        """The inline spec that gives this jury: ``jury:`` members, then non-default options."""
        items = [m.label for m in self.members]
        if self.aggregate != "majority":
            items.append(f"aggregate={self.aggregate}")
        if self.quorum is not None:
            items.append(f"quorum={self.quorum}")
        if self.tie_margin:
            items.append(f"tie_margin={self.tie_margin}")
        return f"{JURY_PROVIDER}:{','.join(items)}"

    @property
    def label(self) -> str:
        """How the jury is shown to people: its configured name or its spec."""
        return self.name or self.spec

    @property
    def template(self) -> str:
        """The members' prompt template versions, ``+``-joined when they differ."""
        return "+".join(sorted({m.template for m in self.members}))

    def fingerprint(self) -> dict[str, Any]:
        """Every member's fingerprint and the aggregation rule, for the label key.

        Members are sorted: the same panel listed in another order gives
        the same verdicts and so the same key.
        """
        members = sorted(
            (m.fingerprint() for m in self.members),
            key=lambda f: json.dumps(f, sort_keys=True, default=str),
        )
        rule: dict[str, Any] = {
            "aggregate": self.aggregate,
            "quorum": self.required,
            "members": members,
        }
        if self.aggregate == "mean":
            rule["tie_margin"] = self.tie_margin
        return {"jury": rule}

    def parameters(self) -> dict[str, Any]:
        """The jury's options, as listed to people."""
        return {
            "members": [m.label for m in self.members],
            "aggregate": self.aggregate,
            "quorum": self.required,
            "tie_margin": self.tie_margin,
        }

    def with_options(self, **options: Any) -> JuryConfig:
        """Apply judge options (say, rate limits) to every member."""
        return replace(self, members=tuple(m.with_options(**options) for m in self.members))


PairJudgeConfig: TypeAlias = JudgeConfig | JuryConfig
"""Whatever can judge a pair: one judge or a jury."""


def is_jury_spec(text: str) -> bool:
    """Whether ``text`` is an inline jury spec (``jury:…``)."""
    return text.strip().lower().startswith(f"{JURY_PROVIDER}:")


def parse_jury_spec(text: str) -> tuple[list[str], dict[str, str]]:
    """Split ``jury:m1,m2,…,option=value`` into member references and options.

    An item ``name=value`` whose name is a jury option is an option;
    every other item is a member (a spec or a judge's name).
    """
    _, _, body = text.strip().partition(":")
    members: list[str] = []
    options: dict[str, str] = {}
    for item in (part.strip() for part in body.split(",")):
        if not item:
            raise JudgeConfigError(f"jury spec {text!r} has an empty member")
        key, sep, value = item.partition("=")
        if sep and key.strip() in JURY_OPTIONS:
            options[key.strip()] = value.strip()
        else:
            members.append(item)
    return members, options


def jury_from_options(
    members: Sequence[JudgeConfig], options: Mapping[str, Any], name: str | None = None
) -> JuryConfig:
    """A jury from resolved members and its options (text from a spec, or YAML values)."""
    unknown = set(options) - set(JURY_OPTIONS)
    if unknown:
        raise JudgeConfigError(
            f"unknown jury option(s) {', '.join(sorted(unknown))}; known: {', '.join(JURY_OPTIONS)}"
        )
    rule = str(options.get("aggregate", "majority"))
    if rule not in AGGREGATES:
        raise JudgeConfigError(f"jury option aggregate must be 'majority' or 'mean', got {rule!r}")
    try:
        quorum = options.get("quorum")
        return JuryConfig(
            members=tuple(members),
            aggregate="mean" if rule == "mean" else "majority",
            quorum=None if quorum is None else int(quorum),
            tie_margin=float(options.get("tie_margin", 0.0)),
            name=name,
        )
    except (TypeError, ValueError) as exc:
        raise JudgeConfigError(f"jury option: {exc}") from None


def load_juries(path: Path, named: Mapping[str, JudgeConfig]) -> dict[str, JuryConfig]:
    """Read the juries (entries with ``members``) of a judges file; members may be named judges."""
    entries = read_judges_file(path)
    juries: dict[str, JuryConfig] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or "members" not in entry:
            continue
        where = f"{path}: jury {name!r}"
        references = entry["members"]
        if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
            raise JudgeConfigError(f"{where}: 'members' must be a list of specs or judge names")
        try:
            members = [member_config(r, named) for r in references]
            options = {k: v for k, v in entry.items() if k != "members"}
            juries[str(name)] = jury_from_options(members, options, str(name))
        except JudgeConfigError as exc:
            raise JudgeConfigError(f"{where}: {exc.message}") from None
    return juries


def member_config(reference: str, named: Mapping[str, JudgeConfig]) -> JudgeConfig:
    """A member's configuration: a named judge, or a ``provider:model`` spec."""
    found = named.get(reference)
    if found is not None:
        return found
    if is_jury_spec(reference):
        raise JudgeConfigError(f"member {reference!r}: a jury cannot sit on a jury")
    if ":" not in reference:
        raise JudgeConfigError(
            f"member {reference!r} is neither provider:model nor a named judge "
            f"(named: {', '.join(sorted(named)) or 'none'})"
        )
    return config_from_spec(reference)


@dataclass(frozen=True, slots=True)
class Jury:
    """A jury ready to judge: its configuration and one judge per member."""

    config: JuryConfig
    members: tuple[Judge, ...]


@dataclass(frozen=True, slots=True)
class MemberVote:
    """One member's part in a jury run: its configuration and what judging the pair gave."""

    config: JudgeConfig
    outcome: PairOutcome

    @property
    def counted(self) -> bool:
        """A failed member's vote is kept but not counted."""
        return self.outcome.verdict is not None


@dataclass(frozen=True, slots=True)
class JuryOutcome(PairOutcome):
    """A pair outcome whose calls are every member's, with each member's vote.

    ``verdict`` is the jury's (``None`` when too few members answered);
    ``p_a`` the mean of the counted members' P(a ≻ b).
    """

    votes: tuple[MemberVote, ...] = ()
    disagreement: float | None = None
    p_a: float | None = None


def vote_p_a(verdict: Verdict) -> float:
    """A member's P(a ≻ b): its soft preference (from log-probabilities) where it has one,
    else its vote as 1 (a), 0 (b) or ½ (tie)."""
    if verdict.soft_preference is not None:
        return verdict.soft_preference
    return {Winner.A: 1.0, Winner.B: 0.0, Winner.TIE: 0.5}[verdict.winner]


def disagreement(winners: Sequence[Winner]) -> float:
    """1 - (count of the most common vote) / (votes): 0 when all agree."""
    if not winners:
        raise ValueError("disagreement() needs at least one vote")
    return 1 - Counter(winners).most_common(1)[0][1] / len(winners)


def majority(winners: Sequence[Winner]) -> tuple[Winner, float]:
    """The most common vote and its share; a draw between the leading votes is a tie."""
    ranked = Counter(winners).most_common()
    top, count = ranked[0]
    if len(ranked) > 1 and ranked[1][1] == count:
        return Winner.TIE, sum(w is Winner.TIE for w in winners) / len(winners)
    return top, count / len(winners)


def mean_winner(p_a: float, tie_margin: float) -> Winner:
    """``a`` above ½ + margin, ``b`` below ½ - margin, else ``tie``."""
    if p_a > 0.5 + tie_margin:
        return Winner.A
    if p_a < 0.5 - tie_margin:
        return Winner.B
    return Winner.TIE


def aggregate(config: JuryConfig, votes: Sequence[MemberVote]) -> JuryOutcome:
    """The jury's outcome from its members' votes, by the rule in this module's docstring."""
    calls = tuple(call for vote in votes for call in vote.outcome.calls)
    counted = [v.outcome.verdict for v in votes if v.outcome.verdict is not None]
    if len(counted) < config.required:
        failures = "; ".join(
            f"{v.config.label}: {v.outcome.error_class}: {v.outcome.error_message}"
            for v in votes
            if not v.counted
        )
        return JuryOutcome(
            calls=calls,
            verdict=None,
            error_class=QUORUM_ERROR,
            error_message=(
                f"{len(counted)} of {len(votes)} jury members answered, "
                f"{config.required} needed ({failures})"
            ),
            votes=tuple(votes),
        )
    winners = [v.winner for v in counted]
    p_a = fmean(vote_p_a(v) for v in counted)
    if config.aggregate == "majority":
        winner, confidence = majority(winners)
    else:
        winner, confidence = mean_winner(p_a, config.tie_margin), max(p_a, 1 - p_a)
    soft = [v.soft_preference for v in counted]
    two_order = [v.position_consistent for v in counted if v.position_consistent is not None]
    verdict = Verdict(
        winner=winner,
        confidence=confidence,
        position_consistent=all(two_order) if two_order else None,
        soft_preference=fmean(s for s in soft if s is not None) if None not in soft else None,
        rationale=_rationale(config, votes, p_a),
    )
    return JuryOutcome(
        calls=calls,
        verdict=verdict,
        votes=tuple(votes),
        disagreement=disagreement(winners),
        p_a=p_a,
    )


def _rationale(config: JuryConfig, votes: Sequence[MemberVote], p_a: float) -> str:
    """Who voted what, in one line; each member's own rationale is stored with its vote."""
    cast = ", ".join(
        f"{v.config.label} → {v.outcome.verdict.winner.value}"
        if v.outcome.verdict is not None
        else f"{v.config.label} failed ({v.outcome.error_class})"
        for v in votes
    )
    rule = "majority" if config.aggregate == "majority" else f"mean P(a) {p_a:.3f}"
    return f"Jury ({rule}): {cast}."


async def run_jury(
    jury: Jury, judge_member: Callable[[Judge], Awaitable[PairOutcome]]
) -> JuryOutcome:
    """Have every member judge (``judge_member``, concurrently), then aggregate their votes."""
    outcomes = await asyncio.gather(*(judge_member(member) for member in jury.members))
    votes = [
        MemberVote(member.config, outcome)
        for member, outcome in zip(jury.members, outcomes, strict=True)
    ]
    return aggregate(jury.config, votes)


async def judge_pair_with_jury(
    jury: Jury, pair: Pair, *, slots: asyncio.Semaphore | None = None
) -> JuryOutcome:
    """Judge a pair with every member through :func:`judges.protocol.judge_pair`, then aggregate."""
    return await run_jury(jury, lambda member: judge_pair(member, pair, slots=slots))
