"""Label keys: the content hash that makes a label reusable and a batch resumable.

The key covers what the judge sees and how it is asked (the judge
fingerprint includes the template version) and the constitution version;
not the caller's id or metadata, which do not change the verdict.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

from judges.jury import PairJudgeConfig

KEY_SCHEMA_VERSION = 1


def label_key(
    stored_pair: dict[str, Any], judge: PairJudgeConfig, constitution: str | None = None
) -> str:
    document = {
        "v": KEY_SCHEMA_VERSION,
        "pair": stored_pair,
        "judge": judge.fingerprint(),
        "constitution": constitution,
    }
    return document_key(document)


def document_key(document: dict[str, Any]) -> str:
    """The key of a stored label: SHA-256 of the document's canonical JSON.

    Written with the json module (sorted keys, no spaces) and left so: a
    different encoding would change every key and stop existing batches
    from resuming.
    """
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def digest(document: Any) -> str:
    """SHA-256 of a JSON value with sorted keys, through orjson: for hashes made per row in bulk."""
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def content_key(prompt: Any, response: Any) -> str:
    """Hash of a prompt and one response as stored, whatever shape each was sent in.

    Joins production feedback, ratings and pairwise verdicts about the same
    answer: ``"hi"`` and ``[{"role": "user", "content": "hi"}]`` are one prompt.
    """
    return digest({"prompt": prompt_messages(prompt), "response": response_content(response)})


def pair_key(prompt: Any, response_a: Any, response_b: Any) -> str:
    """Hash of a pair as stored (prompt, response a, response b), whatever the judge.

    Gold labels are keyed by it, so a human's label meets every judge's
    comparison of the same pair; shapes are normalised as in ``content_key``.
    Migration 0006 backfills stored comparisons with the same formula.
    """
    return digest(
        {
            "prompt": prompt_messages(prompt),
            "a": response_content(response_a),
            "b": response_content(response_b),
        }
    )


def prompt_messages(prompt: Any) -> list[dict[str, str]]:
    """A stored prompt (string or messages) as a list of role/content messages."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def response_content(response: Any) -> str:
    """A stored response (string, assistant message, or a one-message list) as its text."""
    if isinstance(response, str):
        return response
    if isinstance(response, list):
        response = response[0]
    content: str = response["content"]
    return content
