"""Anthropic prompt caching of the judge's fixed preamble.

The preamble (the tool definition and the system text: instructions, and
whatever a template puts there) is the same for every call of a labeling
run, so it is marked ``cache_control: ephemeral`` when it is long enough
for the model to cache: the first call writes the cache (1.25x the input
price), later ones read it (0.1x). Below the model's minimum the provider
ignores the mark, so nothing is marked there.

Token counts are estimated at 4 characters a token. Claude's tokenizer
gives fewer characters a token for English prose (about 3.5) and fewer
still for JSON, so the estimate errs low: a preamble is marked only when
it is surely long enough, never on a guess that would fail silently.
"""

from __future__ import annotations

import json
from typing import Any

CHARS_PER_TOKEN = 4
# Minimum cacheable prompt length by model family, from Anthropic's prompt
# caching guide; the first prefix that matches wins, so specific ones come first.
MIN_CACHEABLE_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-5", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-7", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-sonnet-4-6", 2048),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
    ("claude-haiku-3", 2048),
    ("claude-opus-4", 1024),
    ("claude-sonnet-4", 1024),
    ("claude-3-7-sonnet", 1024),
    ("claude-sonnet-3-7", 1024),
)
# A model not in the table: the largest known minimum, so nothing is marked on a guess.
DEFAULT_MIN_CACHEABLE_TOKENS = 4096
EPHEMERAL = {"type": "ephemeral"}


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix, in tokens, that ``model`` caches."""
    for prefix, tokens in MIN_CACHEABLE_TOKENS:
        if model.startswith(prefix):
            return tokens
    return DEFAULT_MIN_CACHEABLE_TOKENS


def preamble_tokens(system: str, tools: list[dict[str, Any]]) -> int:
    """A low estimate of the tokens in the cached prefix (tools, then system)."""
    characters = len(system) + sum(len(json.dumps(tool)) for tool in tools)
    return characters // CHARS_PER_TOKEN


def cacheable(model: str, system: str, tools: list[dict[str, Any]]) -> bool:
    """Whether the preamble is surely long enough for ``model`` to cache it."""
    return preamble_tokens(system, tools) >= min_cacheable_tokens(model)


def system_blocks(model: str, system: str, tools: list[dict[str, Any]]) -> str | list[Any]:
    """The ``system`` field: a cache-marked text block when cacheable, else the plain text."""
    if not cacheable(model, system, tools):
        return system
    return [{"type": "text", "text": system, "cache_control": dict(EPHEMERAL)}]
