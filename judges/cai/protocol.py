"""Constitutional AI: critique → revision loops, initial responses, principle-based preferences.

Every model call goes through the same retry loop as comparisons and
ratings (:func:`judges.protocol.retrying_calls`), so rate limits, slots
and failed attempts behave the same. A call about one response has no
order (``order=None``); its parameters name the constitution (by
:attr:`~judges.cai.constitutions.Constitution.ref`), the principle, the round
and the step, so every stored call says what it was asked under.

A failure never turns into a made-up critique, revision or verdict: the
outcome keeps the calls made and the work finished, and carries the error.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from judges.base import Judge, RawCall
from judges.cai.constitutions import Constitution, Principle
from judges.cai.prompts import CRITIQUE_V1, GENERATE_V1, REVISION_V1
from judges.protocol import (
    CallSite,
    estimate_text_tokens,
    judge_pair,
    retrying_calls,
    single_response_options,
)
from judges.types import (
    CallRecord,
    CritiqueAnswer,
    GeneratedText,
    GenerationOutcome,
    Pair,
    PairOutcome,
    RevisionAnswer,
    RevisionOutcome,
    RevisionRound,
    Text,
    Verdict,
    Winner,
)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Loop:
    """What every call of one revision loop shares."""

    judge: Judge
    prompt: Text
    constitution: Constitution
    slots: asyncio.Semaphore | None
    sleep: Sleep

    def site(self, template: str, principle: Principle, index: int, step: str) -> CallSite:
        parameters = {
            **single_response_options(self.judge),
            "constitution": self.constitution.ref,
            "principle": principle.id,
            "round": index,
            "step": step,
        }
        return CallSite(None, template, parameters)

    async def call(
        self, ask: Callable[[], Awaitable[RawCall]], site: CallSite, sent: list[Text]
    ) -> list[CallRecord]:
        estimate = estimate_text_tokens([self.prompt, *sent], self.judge.config.max_tokens)
        return await retrying_calls(
            self.judge, ask, site, estimate, slots=self.slots, sleep=self.sleep
        )


async def revise_response(
    judge: Judge,
    prompt: Text,
    response: Text,
    constitution: Constitution,
    *,
    rounds: int = 1,
    principle_id: str | None = None,
    seed: int | str = 0,
    slots: asyncio.Semaphore | None = None,
    sleep: Sleep = asyncio.sleep,
) -> RevisionOutcome:
    """Critique and revise ``response`` for up to ``rounds`` rounds under ``constitution``.

    Each round uses the principle named by ``principle_id`` or, without
    one, a principle sampled with the seed ``f"{seed}:{round}"`` (the same
    seed gives the same principles). A round critiques the current
    response (the constitution's critique examples as few-shot); a
    critique that finds nothing to fix ends the loop without a revision,
    otherwise the revision (preamble stripped) is what the next round
    critiques. A failed call ends the loop: the outcome keeps the rounds
    finished before it, no ``final``, and the error. Raises
    :class:`ValueError` when ``rounds`` < 1 and
    :class:`~judges.errors.JudgeConfigError` for an unknown
    ``principle_id``, before any call.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    named = constitution.principle(principle_id) if principle_id is not None else None
    loop = _Loop(judge, prompt, constitution, slots, sleep)
    calls: list[CallRecord] = []
    finished: list[RevisionRound] = []
    current = response
    for index in range(rounds):
        principle = named or constitution.sample_principles(f"{seed}:{index}", 1)[0]
        done = await _one_round(loop, current, principle, index, calls)
        if done is None:
            failure = calls[-1]
            return RevisionOutcome(
                calls=tuple(calls),
                rounds=tuple(finished),
                final=None,
                error_class=failure.error_class,
                error_message=failure.error_message,
            )
        finished.append(done)
        if done.revision is None:
            break
        current = done.revision
    final = next((r.revision for r in reversed(finished) if r.revision is not None), None)
    return RevisionOutcome(calls=tuple(calls), rounds=tuple(finished), final=final)


async def _one_round(
    loop: _Loop, response: Text, principle: Principle, index: int, calls: list[CallRecord]
) -> RevisionRound | None:
    """Critique, then revise if the critique asks for it; ``None`` when a call failed.

    Every attempt is appended to ``calls``.
    """
    examples = loop.constitution.critique_examples
    records = await loop.call(
        lambda: loop.judge.critique(loop.prompt, response, principle, examples),
        loop.site(CRITIQUE_V1.version, principle, index, "critique"),
        [response, principle.critique_request],
    )
    calls.extend(records)
    answer = records[-1].answer
    if not isinstance(answer, CritiqueAnswer):
        return None
    critique = answer.critique
    if not answer.needs_revision:
        return RevisionRound(index, principle.id, critique, False, None)
    records = await loop.call(
        lambda: loop.judge.revise(loop.prompt, response, principle, critique, examples),
        loop.site(REVISION_V1.version, principle, index, "revision"),
        [response, critique, principle.revision_request],
    )
    calls.extend(records)
    revision = records[-1].answer
    if not isinstance(revision, RevisionAnswer):
        return None
    return RevisionRound(index, principle.id, critique, True, revision.revision)


async def generate_response(
    judge: Judge,
    prompt: Text,
    *,
    slots: asyncio.Semaphore | None = None,
    sleep: Sleep = asyncio.sleep,
) -> GenerationOutcome:
    """Have ``judge`` write a response to ``prompt``, retrying transient failures.

    Every attempt is in ``calls`` (step ``generate``); a final failure
    gives no text, only its error.
    """
    parameters = {**single_response_options(judge), "step": "generate"}
    records = await retrying_calls(
        judge,
        lambda: judge.generate(prompt),
        CallSite(None, GENERATE_V1.version, parameters),
        estimate_text_tokens([prompt], judge.config.max_tokens),
        slots=slots,
        sleep=sleep,
    )
    final = records[-1]
    if isinstance(final.answer, GeneratedText):
        return GenerationOutcome(calls=tuple(records), text=final.answer.text)
    return GenerationOutcome(
        calls=tuple(records),
        text=None,
        error_class=final.error_class,
        error_message=final.error_message,
    )


async def judge_pair_with_principles(
    judge: Judge,
    pair: Pair,
    constitution: Constitution,
    *,
    k: int = 1,
    seed: int | str = 0,
    slots: asyncio.Semaphore | None = None,
) -> PairOutcome:
    """Judge ``pair`` under ``k`` principles sampled with ``seed`` (RL-CAI), and average.

    Each principle's preference question replaces the template's question,
    in every order the judge's policy asks for. With ``k=1`` the verdict is
    that principle's; with more, see :func:`ensemble_verdicts`. Any failed
    principle means no verdict (the first failure's error), with every
    call kept. ``extra`` names the constitution, the principles in order
    and each one's winner and P(a); each call's parameters name its
    principle and the constitution.
    """
    principles = constitution.sample_principles(seed, k)
    # Shown only by templates that ask for a constitution's examples (constitution_examples).
    pair = dataclasses.replace(pair, examples=constitution.preference_examples)
    outcomes = await asyncio.gather(
        *(judge_pair(judge, pair, p.preference_question, slots=slots) for p in principles)
    )
    calls = tuple(
        _tagged(call, constitution, principle)
        for principle, outcome in zip(principles, outcomes, strict=True)
        for call in outcome.calls
    )
    extra: dict[str, Any] = {
        "constitution": constitution.ref,
        "principles": [p.id for p in principles],
        "per_principle": [
            _per_principle(p, o.verdict) for p, o in zip(principles, outcomes, strict=True)
        ],
    }
    verdicts = [(p.id, o.verdict) for p, o in zip(principles, outcomes, strict=True) if o.verdict]
    if len(verdicts) < len(principles):
        failed = next(o for o in outcomes if o.verdict is None)
        return PairOutcome(
            calls=calls,
            verdict=None,
            error_class=failed.error_class,
            error_message=failed.error_message,
            extra=extra,
        )
    verdict = verdicts[0][1] if len(verdicts) == 1 else ensemble_verdicts(verdicts)
    return PairOutcome(calls=calls, verdict=verdict, extra=extra)


def preference_for_a(verdict: Verdict) -> float:
    """P(a ≻ b) of one verdict: its soft preference, else 1, 0 or 0.5 for a, b or a tie."""
    if verdict.soft_preference is not None:
        return verdict.soft_preference
    return {Winner.A: 1.0, Winner.B: 0.0, Winner.TIE: 0.5}[verdict.winner]


# Averages of probabilities that should cancel exactly (0.7 and 0.3) may
# miss 0.5 by a rounding error; that is still a tie.
_TIE_TOLERANCE = 1e-9


def ensemble_verdicts(verdicts: Sequence[tuple[str, Verdict]]) -> Verdict:
    """Average several principles' verdicts on one pair into one.

    P(a) is the mean of :func:`preference_for_a` over the principles: a
    above 0.5, b below, a tie at 0.5; confidence is max(P, 1 - P).
    ``position_consistent`` is true only if every verdict was (``None`` if
    none was asked in both orders); ``soft_preference`` is the mean only
    when every verdict had one. The rationale lists each principle's
    winner.
    """
    if not verdicts:
        raise ValueError("ensemble_verdicts() needs at least one verdict")
    p_a = fmean(preference_for_a(v) for _, v in verdicts)
    winner = Winner.A if p_a > 0.5 else Winner.B
    if abs(p_a - 0.5) <= _TIE_TOLERANCE:
        winner = Winner.TIE
    consistency = {v.position_consistent for _, v in verdicts}
    consistent = False if False in consistency else (True if True in consistency else None)
    soft = [v.soft_preference for _, v in verdicts]
    listed = "; ".join(
        f"{pid} → {v.winner.value} (P(a)={preference_for_a(v):.2f})" for pid, v in verdicts
    )
    return Verdict(
        winner=winner,
        confidence=max(p_a, 1.0 - p_a),
        position_consistent=consistent,
        soft_preference=fmean(s for s in soft if s is not None) if None not in soft else None,
        rationale=f"{len(verdicts)} principles, mean P(a)={p_a:.2f}: {listed}.",
    )


def _per_principle(principle: Principle, verdict: Verdict | None) -> dict[str, Any]:
    if verdict is None:
        return {"principle": principle.id, "winner": None, "p_a": None}
    return {
        "principle": principle.id,
        "winner": verdict.winner.value,
        "p_a": preference_for_a(verdict),
    }


def _tagged(call: CallRecord, constitution: Constitution, principle: Principle) -> CallRecord:
    parameters = {**call.parameters, "constitution": constitution.ref, "principle": principle.id}
    return dataclasses.replace(call, parameters=parameters)
