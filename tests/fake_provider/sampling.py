"""Sampled candidates: what the fake answers a policy asked to generate.

A free-text request with a temperature above zero is a policy sampling
answers (judges ask at temperature 0): each sample gets its own text,
seeded so runs repeat. With the request's ``seed`` (OpenAI), a sample's text
depends only on (server seed, request seed, prompt, choice index); without
one (Anthropic has no seed) it comes from the server's sampling stream.
``candidate_variants`` caps the distinct texts per prompt, so tests can make
identical samples on purpose.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from .outputs import estimate_tokens

_WORDS = [
    "answer",
    "clearly",
    "step",
    "first",
    "then",
    "consider",
    "because",
    "therefore",
    "the",
    "policy",
    "samples",
    "another",
    "response",
    "with",
    "some",
    "detail",
    "and",
    "an",
    "example",
    "to",
    "make",
    "it",
    "useful",
]


@dataclass(frozen=True, slots=True)
class Sampled:
    text: str
    finish_reason: str
    """``stop``, or ``length`` when ``max_tokens`` cut the text."""


def is_sampling(body: dict[str, Any]) -> bool:
    """A free-text request at a temperature above zero: a policy drawing samples."""
    temperature = body.get("temperature")
    return isinstance(temperature, (int, float)) and temperature > 0


def sample(
    *,
    server_seed: int,
    request_seed: Any,
    prompt: str,
    index: int,
    variants: int | None,
    rng: random.Random,
    max_tokens: Any,
) -> Sampled:
    """The ``index``-th sample of one request."""
    if isinstance(request_seed, int):
        key = f"{server_seed}|{request_seed}|{index}|{prompt}"
        draw = int.from_bytes(hashlib.sha256(key.encode("utf-8", "replace")).digest()[:8], "big")
    else:
        draw = rng.getrandbits(64)
    variant = draw % variants if variants else draw
    words = [_WORDS[(variant >> shift) % len(_WORDS)] for shift in range(0, 40, 4)]
    length = 1 + variant % 7  # texts of different lengths, for length statistics
    topic = prompt.strip().split("\n")[0][:40]
    text = f"Candidate {variant:x} on {topic!r}: " + " ".join(words * length) + "."
    if isinstance(max_tokens, int) and estimate_tokens(len(text)) > max_tokens:
        return Sampled(text[: max(1, max_tokens * 4)], "length")
    return Sampled(text, "stop")
