"""The both-orders pairwise protocol, and single-response ratings.

A swap bug (mapping "the first response won" to the wrong caller response)
silently flips chosen and rejected, so the mapping lives in exactly one
function, :func:`winner_from_position`, and everything else goes through it.

Every model call (pairwise, rating, and the Constitutional AI calls of
:mod:`judges.cai.protocol`) goes through one retry loop (:func:`retrying_calls`),
so rate limits, slots and the recording of failed attempts behave the
same for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from judges.base import Judge, RawCall
from judges.errors import JudgeError, RateLimitedError
from judges.prompts import RATING_V1, render_text
from judges.retry import transient_retrying
from judges.rubrics import Rubric
from judges.templates import PairwiseTemplate, get_template
from judges.tracing import ModelCallSpan
from judges.types import (
    CallRecord,
    Order,
    Pair,
    PairOutcome,
    PairwiseAnswer,
    Position,
    PositionProbabilities,
    Rating,
    RatingAnswer,
    RatingOutcome,
    ShownPair,
    Text,
    Usage,
    Verdict,
    Winner,
)

# The template's instructions, roughly, in tokens.
PROMPT_OVERHEAD_TOKENS = 250


def show(pair: Pair, order: Order) -> ShownPair:
    """Lay a pair out in the given order."""
    a, b = pair.response_a, pair.response_b
    first, second = (a, b) if order is Order.AB else (b, a)
    return ShownPair(pair.prompt, first, second, pair.criteria, pair.reference, pair.examples)


def winner_from_position(order: Order, position: Position) -> Winner:
    """Map a position the judge chose, in the order it was shown, to the caller's a/b."""
    if position is Position.TIE:
        return Winner.TIE
    first_is_a = order is Order.AB
    if (position is Position.FIRST) == first_is_a:
        return Winner.A
    return Winner.B


def _winner_probabilities(order: Order, probs: PositionProbabilities) -> dict[Winner, float]:
    return {
        winner_from_position(order, Position.FIRST): probs.first,
        winner_from_position(order, Position.SECOND): probs.second,
        Winner.TIE: probs.tie,
    }


def combine(calls: list[CallRecord]) -> Verdict:
    """Turn the successful calls for one pair (one per order) into a verdict.

    Both orders agree → that winner. They disagree → a tie with
    ``position_consistent=False``. Log-probabilities, where every call has
    them, are averaged over orders into P(a ≻ b).
    """
    answered = [
        (c.order, c.answer)
        for c in calls
        if c.order is not None and isinstance(c.answer, PairwiseAnswer)
    ]
    if not answered:
        raise ValueError("combine() needs at least one successful call")
    votes = [winner_from_position(order, answer.position) for order, answer in answered]
    if len(set(votes)) == 1:
        winner = votes[0]
        consistent: bool | None = True if len(votes) > 1 else None
    else:
        winner, consistent = Winner.TIE, False

    distributions = [
        _winner_probabilities(order, answer.probabilities)
        for order, answer in answered
        if answer.probabilities is not None
    ]
    soft_preference: float | None = None
    if distributions and len(distributions) == len(answered):
        p_a = fmean(d[Winner.A] / ((d[Winner.A] + d[Winner.B]) or 1.0) for d in distributions)
        soft_preference = p_a
        confidence: float | None = fmean(d[winner] for d in distributions)
    else:
        confidence = sum(vote is winner for vote in votes) / len(votes)

    rationale = answered[0][1].rationale
    if consistent is False:
        flips = ", ".join(
            f"{order.value}→{vote.value}" for (order, _), vote in zip(answered, votes, strict=True)
        )
        rationale = f"Position-biased: the verdict changed with the order ({flips}). {rationale}"
    return Verdict(
        winner=winner,
        confidence=confidence,
        position_consistent=consistent,
        soft_preference=soft_preference,
        rationale=rationale,
    )


def orders_for(judge: Judge, pair: Pair) -> list[Order]:
    """Both orders, or one order chosen from the pair's content (stable across runs).

    A position-free judge (a reward model) is asked once, in the a|b order:
    a second order would only repeat the same two scores.
    """
    if judge.position_free:
        return [Order.AB]
    if judge.config.order == "both":
        return [Order.AB, Order.BA]
    digest = hashlib.sha256(repr(pair).encode()).digest()
    return [Order.AB if digest[0] % 2 == 0 else Order.BA]


@dataclass(frozen=True, slots=True)
class CallSite:
    """What every attempt of one call records alike: its order (if any), template and parameters."""

    order: Order | None
    template_version: str
    parameters: dict[str, Any]


async def retrying_calls(
    judge: Judge,
    ask: Callable[[], Awaitable[RawCall]],
    site: CallSite,
    estimated_tokens: int,
    *,
    slots: asyncio.Semaphore | None,
    sleep: Callable[[float], Awaitable[None]],
) -> list[CallRecord]:
    """Run ``ask`` until it succeeds or fails for good; every attempt becomes a record.

    The last record is the success or the final failure, so failed attempts
    are stored rather than forgotten. ``slots`` bounds the requests in
    flight; an attempt holds a slot only while its request is out, not
    while it backs off.
    """
    records: list[CallRecord] = []
    try:
        async for attempt in transient_retrying(judge.config.max_attempts, sleep):
            with attempt:
                number = attempt.retry_state.attempt_number
                await judge.limits.acquire(estimated_tokens)
                started = time.perf_counter()
                span = ModelCallSpan(judge, site.order, winner_from_position)
                try:
                    async with slots or contextlib.nullcontext():
                        started = time.perf_counter()  # latency is the call's, not the wait's
                        with span:
                            raw = span.answered(await ask())
                except JudgeError as exc:
                    records.append(_failed_record(judge, site, number, started, exc, span.trace_id))
                    if isinstance(exc, RateLimitedError):  # every task (and process) waits
                        await judge.limits.cool_down(exc.retry_after)
                    raise
                records.append(_record(judge, site, number, started, raw, span.trace_id))
    except JudgeError:
        pass  # the failure is the last record; the caller turns it into a stored failure
    return records


async def call_with_retries(
    judge: Judge,
    shown: ShownPair,
    order: Order,
    question: str | None = None,
    *,
    slots: asyncio.Semaphore | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[CallRecord]:
    """Call the judge for one order, retrying transient failures.

    Returns every attempt as a record, the last one being the success or the
    final failure. ``slots`` bounds the requests in flight.
    """
    config = judge.config
    return await retrying_calls(
        judge,
        lambda: judge.answer(shown, question),
        CallSite(order, config.template, config.parameters()),
        estimate_tokens(shown, config.max_tokens, _template_of(judge)),
        slots=slots,
        sleep=sleep,
    )


async def rate_response(
    judge: Judge,
    prompt: Text,
    response: Text,
    rubric: Rubric,
    *,
    slots: asyncio.Semaphore | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RatingOutcome:
    """Rate one response against a rubric, retrying transient failures.

    Every attempt is in ``calls`` (``order`` is ``None``). A final failure
    gives no rating, only its error class and message: a score is never
    made up. ``slots`` bounds the requests in flight, shared with any
    other calls using it.
    """
    records = await retrying_calls(
        judge,
        lambda: judge.rate(prompt, response, rubric),
        CallSite(None, RATING_V1.version, rating_parameters(judge, rubric)),
        estimate_rating_tokens(prompt, response, rubric, judge.config.max_tokens),
        slots=slots,
        sleep=sleep,
    )
    calls, final = tuple(records), records[-1]
    if isinstance(final.answer, RatingAnswer):
        score = final.answer.score
        rating = Rating(score=score, passed=rubric.passes(score), rationale=final.answer.rationale)
        return RatingOutcome(calls=calls, rating=rating)
    return RatingOutcome(
        calls=calls, rating=None, error_class=final.error_class, error_message=final.error_message
    )


def rating_parameters(judge: Judge, rubric: Rubric) -> dict[str, Any]:
    """The parameters stored with a rating call: the judge's options plus the rubric version."""
    return {**single_response_options(judge), "rubric": rubric.version}


def single_response_options(judge: Judge) -> dict[str, Any]:
    """The judge's options that play a part in a call about one response.

    The pairwise-only options (template, order, logprobs) are left out:
    they would misstate how a rating, critique, revision or generation was
    made.
    """
    options = judge.config.parameters()
    for pairwise_only in ("template", "order", "logprobs"):
        options.pop(pairwise_only, None)
    return options


def estimate_tokens(
    shown: ShownPair, max_tokens: int, template: PairwiseTemplate | None = None
) -> int:
    """A cheap upper-ish estimate of one call's tokens for the tokens-per-minute limit.

    With ``template``, the worked examples it sends as earlier turns count too.
    """
    parts = (shown.criteria, shown.reference)
    texts = [shown.prompt, shown.first, shown.second, *(p for p in parts if p is not None)]
    shots = template.shot_tokens(shown) if template is not None else 0
    return estimate_text_tokens(texts, max_tokens) + shots


def _template_of(judge: Judge) -> PairwiseTemplate | None:
    """The judge's template, for an estimate; None when unknown (the call itself then fails)."""
    try:
        return get_template(judge.config.template)
    except JudgeError:
        return None


def estimate_rating_tokens(prompt: Text, response: Text, rubric: Rubric, max_tokens: int) -> int:
    """Like :func:`estimate_tokens`, for one rating call (the rubric's text is sent too)."""
    return estimate_text_tokens([prompt, response, rubric.text], max_tokens)


def estimate_text_tokens(texts: list[Text], max_tokens: int) -> int:
    """Like :func:`estimate_tokens`, for a call that sends ``texts`` and the usual instructions."""
    characters = sum(len(render_text(t)) for t in texts)
    return characters // 4 + PROMPT_OVERHEAD_TOKENS + min(max_tokens, 256)


def _record(
    judge: Judge, site: CallSite, attempt: int, started: float, raw: RawCall, trace_id: str | None
) -> CallRecord:
    return CallRecord(
        order=site.order,
        attempt=attempt,
        model=judge.config.model,
        template_version=site.template_version,
        parameters=dict(site.parameters),  # records are stored apart; don't share one dict
        raw_output=raw.raw_output,
        usage=raw.usage,
        latency_ms=(time.perf_counter() - started) * 1000,
        answer=raw.answer,
        trace_id=trace_id,
    )


def _failed_record(
    judge: Judge,
    site: CallSite,
    attempt: int,
    started: float,
    exc: JudgeError,
    trace_id: str | None,
) -> CallRecord:
    return CallRecord(
        order=site.order,
        attempt=attempt,
        model=judge.config.model,
        template_version=site.template_version,
        parameters=dict(site.parameters),
        raw_output=exc.raw_output,
        usage=exc.usage or Usage(),
        latency_ms=(time.perf_counter() - started) * 1000,
        error_class=exc.error_class,
        error_message=exc.message,
        trace_id=trace_id,
    )


async def judge_pair(
    judge: Judge,
    pair: Pair,
    question: str | None = None,
    *,
    slots: asyncio.Semaphore | None = None,
) -> PairOutcome:
    """Judge a pair in every order the judge's policy asks for, concurrently.

    If any order ends in a failure, there is no verdict: a one-order answer
    from a both-orders judge would hide position bias. ``slots`` (shared by
    many pairs) bounds the requests in flight, so an order that finishes
    early frees its slot for another pair instead of idling until its twin
    is done.
    """
    orders = orders_for(judge, pair)
    per_order = await asyncio.gather(
        *(
            call_with_retries(judge, show(pair, order), order, question, slots=slots)
            for order in orders
        )
    )
    return outcome_of(per_order)


def outcome_of(per_order: Sequence[Sequence[CallRecord]]) -> PairOutcome:
    """The pair's outcome from each order's attempts (the last one counts), in order.

    Any order whose last attempt failed leaves the pair without a verdict.
    """
    calls = tuple(record for records in per_order for record in records)
    finals = [records[-1] for records in per_order]
    failed = [record for record in finals if not record.succeeded]
    if failed:
        return PairOutcome(
            calls=calls,
            verdict=None,
            error_class=failed[0].error_class,
            error_message=failed[0].error_message,
        )
    return PairOutcome(calls=calls, verdict=combine(finals))
