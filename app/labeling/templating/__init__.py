"""What a pair is judged with: its criteria resolved, its category's template, checked to fit.

Every way in (``POST /v1/comparisons``, ``referee label``, batch uploads)
goes through :func:`prepare` before a label key is made, so the key holds
the criteria text (not a name whose entry may change) and the template the
pair is judged under, and nothing a template cannot show reaches a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from app.errors import InvalidInputError, TextTooLargeError
from app.labeling.inputs import PairIn
from judges import JudgeConfigError
from judges.config import JudgeConfig
from judges.jury import JuryConfig, PairJudgeConfig
from judges.templates import get_template, template_scan

PairT = TypeVar("PairT", bound=PairIn)


def resolve_criteria(pair: PairT, max_chars: int) -> PairT:
    """The pair with a named criteria entry replaced by its text; too long a text is a 413."""
    if pair.criteria is None:
        return pair
    named = template_scan().criteria.get(pair.criteria.strip())
    criteria = named if named is not None else pair.criteria
    if not criteria.strip():
        raise InvalidInputError("criteria is empty; leave it out instead", field="criteria")
    if len(criteria) > max_chars:
        raise TextTooLargeError(
            f"criteria has {len(criteria)} characters; the limit is {max_chars} "
            "(REFEREE_MAX_CRITERIA_CHARS)",
            field="criteria",
        )
    return pair if criteria == pair.criteria else pair.model_copy(update={"criteria": criteria})


def routed(config: PairJudgeConfig, metadata: dict[str, Any] | None) -> PairJudgeConfig:
    """The judge (each jury member) with the template its routes give this pair's category."""
    if isinstance(config, JuryConfig):
        return replace(config, members=tuple(m.routed(metadata) for m in config.members))
    return config.routed(metadata)


def members(config: PairJudgeConfig) -> tuple[JudgeConfig, ...]:
    return config.members if isinstance(config, JuryConfig) else (config,)


def check_fits(config: PairJudgeConfig, pair: PairIn) -> None:
    """Refuse criteria or a reference that the judge's template has no words for (422)."""
    for member in members(config):
        template = get_template(member.template)
        missing = template.missing(
            criteria=pair.criteria is not None, reference=pair.reference is not None
        )
        if missing:
            raise InvalidInputError(
                f"template {template.ref!r} has no {missing[0]!r} section, so it cannot show "
                f"this pair's {missing[0]}; judge it with a template that has one "
                "(e.g. pairwise-v2; see GET /v1/templates)",
                field=missing[0],
            )


def prepare(pair: PairT, config: PairJudgeConfig, max_chars: int) -> tuple[PairT, PairJudgeConfig]:
    """The pair (criteria resolved) and the judge it is judged with (routed), checked to fit."""
    pair = resolve_criteria(pair, max_chars)
    config = routed(config, pair.metadata)
    check_fits(config, pair)
    return pair, config


def with_criteria(
    convert: Callable[[dict[str, Any]], dict[str, Any]], criteria: str | None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A line converter that gives ``criteria`` to every line that carries none of its own."""
    if criteria is None:
        return convert

    def converted(document: dict[str, Any]) -> dict[str, Any]:
        line = convert(document)
        return line if line.get("criteria") is not None else {**line, "criteria": criteria}

    return converted


def with_template(config: PairJudgeConfig, template: str) -> PairJudgeConfig:
    """The judge (every jury member) asked with ``template`` (an id or ref); 400 when unknown."""
    try:
        return config.with_options(template=template)
    except JudgeConfigError as exc:
        raise InvalidInputError(exc.message, field="template") from None


def matching(
    config: PairJudgeConfig, stored: dict[str, Any], metadata: dict[str, Any] | None
) -> PairJudgeConfig | None:
    """The judge a queued pair was keyed with: as configured, routed, or with its stored template.

    ``stored`` is the pair's stored judge fingerprint; None when no variant matches.
    """
    # Tried in order and built only when the one before does not match: the
    # worker asks this for every pair it claims, and most match as configured.
    if config.fingerprint() == stored:
        return config
    candidate = routed(config, metadata)
    if candidate.fingerprint() == stored:
        return candidate
    if isinstance(config, JudgeConfig) and isinstance(stored.get("template"), str):
        try:
            candidate = replace(config, template=stored["template"])
        except JudgeConfigError:
            return None  # the template changed since the pair was queued
        if candidate.fingerprint() == stored:
            return candidate
    return None
