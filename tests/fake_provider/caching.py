"""Anthropic prompt caching, as the fake reports it.

A request whose system blocks carry ``cache_control`` has its prefix (the
tools, then the system text) cached when it is at least
``MIN_CACHEABLE_TOKENS`` long: the first such request writes it
(``cache_creation_input_tokens``), later ones with the same model and prefix
read it (``cache_read_input_tokens``); ``input_tokens`` is then the rest.
One minimum for every model keeps the fake simple; the real ones vary.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .outputs import JSON, dumps, estimate_tokens, request_text_len, text_of

MIN_CACHEABLE_TOKENS = 1024


def _marked(system: Any) -> bool:
    return isinstance(system, list) and any(
        isinstance(block, dict) and block.get("cache_control") for block in system
    )


def cache_usage(cache: set[str], body: JSON) -> dict[str, int]:
    """The usage fields of an Anthropic reply, with any cache read or write."""
    total = estimate_tokens(request_text_len(body))
    usage = {
        "input_tokens": total,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    system = body.get("system")
    if not _marked(system):
        return usage
    system_text = text_of(system)
    prefix = dumps(body.get("tools") or []) + system_text
    prefix_tokens = estimate_tokens(len(prefix))
    if prefix_tokens < MIN_CACHEABLE_TOKENS:
        return usage
    key = hashlib.sha256(f"{body.get('model')}\n{prefix}".encode()).hexdigest()
    field = "cache_read_input_tokens" if key in cache else "cache_creation_input_tokens"
    cache.add(key)
    usage[field] = prefix_tokens
    usage["input_tokens"] = estimate_tokens(request_text_len(body) - len(system_text))
    return usage
