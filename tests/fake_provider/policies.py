"""Verdict policies: how the fake judge picks a winner for a pairwise prompt.

Kept free of any HTTP concerns so the decision logic can be unit-tested and
reused by both API front-ends (Anthropic and OpenAI) without duplication.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

LABELS: tuple[str, str, str] = ("1", "2", "tie")
POLICIES: frozenset[str] = frozenset(
    {"first", "second", "longer", "shorter", "contains", "tie", "random", "gold"}
)

# Probability mass given to "tie" when p_first drives the distribution: small
# but non-zero so ln() stays finite and callers see all three labels.
P_TIE_WITH_P_FIRST = 0.001
# Keeps every probability strictly inside (0, 1) so logprobs are finite.
_EPS = 1e-6

# Non-greedy and DOTALL so multi-line responses are captured whole; the fences
# are searched independently so their order in the prompt does not matter.
_RESPONSE_RE = {
    "1": re.compile(r"<response_1>(.*?)</response_1>", re.DOTALL),
    "2": re.compile(r"<response_2>(.*?)</response_2>", re.DOTALL),
}


def _strip_one_newline(text: str) -> str:
    # Prompts put the fence tags on their own lines; only that one newline is
    # formatting, anything further is part of the judged response.
    if text.startswith("\n"):
        text = text[1:]
    if text.endswith("\n"):
        text = text[:-1]
    return text


def extract_responses(text: str) -> tuple[str, str] | None:
    """Return (shown-first, shown-second) response texts, or None if absent."""
    # Cheap substring test first: generic requests skip the regex entirely.
    if "<response_1>" not in text or "<response_2>" not in text:
        return None
    m1 = _RESPONSE_RE["1"].search(text)
    m2 = _RESPONSE_RE["2"].search(text)
    if m1 is None or m2 is None:
        return None
    return _strip_one_newline(m1.group(1)), _strip_one_newline(m2.group(1))


@dataclass(frozen=True)
class Verdict:
    winner: str  # "1" | "2" | "tie"
    probs: dict[str, float]  # label -> probability, sums to 1
    rationale: str

    def logprob(self, label: str) -> float:
        return math.log(self.probs[label])


def _pick(
    policy: str, arg: str | None, r1: str, r2: str, p_first: float, rng: random.Random
) -> str:
    if policy == "first":
        return "1"
    if policy == "second":
        return "2"
    if policy == "tie":
        return "tie"
    if policy in ("longer", "shorter"):
        if len(r1) == len(r2):
            return "tie"
        first_longer = len(r1) > len(r2)
        return "1" if first_longer == (policy == "longer") else "2"
    if policy == "contains":
        needle = arg or ""
        in1, in2 = needle in r1, needle in r2
        if in1 == in2:  # neither or both: no signal to prefer one
            return "tie"
        return "1" if in1 else "2"
    if policy == "random":
        return "1" if rng.random() < p_first else "2"
    raise ValueError(f"unknown policy {policy!r}")


def _p_first_distribution(p_first: float) -> dict[str, float]:
    p1 = min(max(p_first, _EPS), 1.0 - P_TIE_WITH_P_FIRST - _EPS)
    return {"1": p1, "2": 1.0 - p1 - P_TIE_WITH_P_FIRST, "tie": P_TIE_WITH_P_FIRST}


def _peaked_distribution(picked: str) -> dict[str, float]:
    return {label: (0.9 if label == picked else 0.05) for label in LABELS}


_RATIONALES = {
    "1": "Response 1 is better ({policy} policy).",
    "2": "Response 2 is better ({policy} policy).",
    "tie": "Both responses are equally good ({policy} policy).",
}


def decide(
    policy: str,
    policy_arg: str | None,
    p_first: float | None,
    r1: str,
    r2: str,
    rng: random.Random,
) -> Verdict:
    """Pick a winner and the label distribution reported through logprobs."""
    picked = _pick(policy, policy_arg, r1, r2, 0.5 if p_first is None else p_first, rng)
    if p_first is None:
        probs = _peaked_distribution(picked)
    else:
        probs = _p_first_distribution(p_first)
        # An explicit p_first describes the judge's belief; deterministic
        # policies follow it so logprobs and the verdict never disagree.
        # "random" keeps its sampled pick to model a noisy judge.
        if policy != "random":
            picked = max(LABELS, key=lambda label: probs[label])
    return Verdict(picked, probs, _RATIONALES[picked].format(policy=policy))


# ------------------------------------------------------------------- "gold"
# The judge that knows the human answer: the test scripts, per pair of
# response texts, which one the humans preferred (computed from the data file
# by the test itself), and the fake picks it with probability p_gold. The
# draw is seeded by the pair, not by arrival order, so both orders of a pair
# get the same decision and concurrency cannot change the outcome.

_FLIP = {"1": "2", "2": "1", "tie": "tie"}
_GOLD_WINNERS = {"a": "1", "b": "2", "tie": "tie"}


def gold_key(first: str, second: str) -> str:
    """The key of a pair of response texts, shown first and second (whitespace-trimmed)."""
    return hashlib.sha256(f"{first.strip()}\x00{second.strip()}".encode()).hexdigest()


def gold_answers(pairs: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """The ``gold`` setting for (response a text, response b text, human winner a|b|tie)."""
    return {gold_key(a, b): _GOLD_WINNERS[winner] for a, b, winner in pairs}


def _gold_label(gold: dict[str, str], first: str, second: str) -> str | None:
    label = gold.get(gold_key(first, second))
    if label is None and (flipped := gold.get(gold_key(second, first))) is not None:
        label = _FLIP[flipped]
    return label


def decide_gold(gold: dict[str, str], p_gold: float, seed: int, r1: str, r2: str) -> Verdict:
    """The human's answer with probability ``p_gold``, else a wrong one, the same in both orders."""
    # Decide in one canonical orientation (texts sorted), then map to the shown order.
    swapped = r1.strip() > r2.strip()
    c1, c2 = (r2, r1) if swapped else (r1, r2)
    label = _gold_label(gold, c1, c2)
    if label is None:
        return Verdict("tie", _peaked_distribution("tie"), "No gold answer scripted for this pair.")
    rng = random.Random(f"{seed}|{gold_key(c1, c2)}")
    if rng.random() >= p_gold:
        # Wrong: the other response, or for a human tie either response.
        label = rng.choice(["1", "2"]) if label == "tie" else _FLIP[label]
    picked = _FLIP[label] if swapped else label
    return Verdict(picked, _peaked_distribution(picked), _RATIONALES[picked].format(policy="gold"))
