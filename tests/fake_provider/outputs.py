"""Reading request text and building outputs: schema filling, strict checks, logprobs."""

from __future__ import annotations

import json
import re
from typing import Any

from .policies import LABELS, Verdict

JSON = dict[str, Any]

# Every character matches exactly one branch, so findall() partitions the
# string and the tokens always concatenate back to the original text.
_TOKEN_RE = re.compile(r"\w+|\s+|[^\w\s]")
_WINNER_PREFIX = '"winner":"'


def text_of(content: Any) -> str:
    # Both APIs accept either a plain string or a list of typed parts.
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def request_text_len(body: JSON) -> int:
    total = len(text_of(body.get("system")))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += len(text_of(message.get("content")))
    return total


def dumps(obj: object) -> str:
    # Compact separators mirror what the real APIs emit for structured output.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def estimate_tokens(text_len: int) -> int:
    # ~4 characters per token is the usual rule of thumb; never report 0
    # because the real APIs never do either.
    return max(1, text_len // 4)


def _resolve(node: JSON, root: JSON) -> JSON:
    # Pydantic emits nested models as {"$ref": "#/$defs/Name"}; follow local
    # refs only (remote refs never appear in LLM response schemas).
    seen = 0
    while "$ref" in node and seen < 32:
        ref = str(node["$ref"])
        target: Any = root
        for part in ref.removeprefix("#/").split("/"):
            if part:
                target = target[part]
        node = target
        seen += 1
    return node


def fill_schema(node: JSON, root: JSON | None = None) -> Any:
    """Produce a minimal value that validates against a JSON schema."""
    root = node if root is None else root
    node = _resolve(node, root)
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = node.get(key)
        if options:
            # Optional[X] is anyOf [X, null]; prefer the non-null branch so the
            # value is informative.
            non_null = [o for o in options if _resolve(o, root).get("type") != "null"]
            return fill_schema((non_null or options)[0], root)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in node):
        props: JSON = node.get("properties", {})
        return {name: fill_schema(props.get(name, {}), root) for name in node.get("required", [])}
    if kind == "array":
        count = int(node.get("minItems", 0))
        return [fill_schema(node.get("items", {}), root) for _ in range(count)]
    if kind == "string":
        return "fake"
    if kind == "integer":
        if "minimum" in node:
            return int(node["minimum"])
        if "exclusiveMinimum" in node:
            return int(node["exclusiveMinimum"]) + 1
        return 1
    if kind == "number":
        return node.get("minimum", 0.5)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return "fake"


def strict_schema_problem(node: Any, path: str = "#") -> str | None:
    """Return why OpenAI strict mode would reject this schema, or None.

    The real API answers 400 when a strict schema has an object without
    additionalProperties=false or with optional properties; reproducing that
    here makes such bugs fail in tests instead of in production.
    """
    if isinstance(node, list):
        for i, item in enumerate(node):
            problem = strict_schema_problem(item, f"{path}/{i}")
            if problem:
                return problem
        return None
    if not isinstance(node, dict):
        return None
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties") is not False:
            return f"{path}: 'additionalProperties' is required to be supplied and to be false"
        missing = set(node.get("properties", {})) - set(node.get("required", []))
        if missing:
            return f"{path}: 'required' must include every property; missing {sorted(missing)}"
    for key, value in node.items():
        if isinstance(value, (dict, list)):
            problem = strict_schema_problem(value, f"{path}/{key}")
            if problem:
                return problem
    return None


def verdict_object(verdict: Verdict, schema: JSON | None) -> JSON:
    """The pairwise answer, padded with any extra required schema fields."""
    obj: JSON = {"rationale": verdict.rationale, "winner": verdict.winner}
    if schema:
        # Extra required fields (e.g. a confidence score) are filled so the
        # caller's strict validation still passes; ours keep priority.
        for key, value in fill_schema(schema).items():
            obj.setdefault(key, value)
    return obj


def _entry(token: str, logprob: float, top: list[JSON]) -> JSON:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": top}


def _plain_entries(text: str, k: int) -> list[JSON]:
    entries = []
    for tok in _TOKEN_RE.findall(text):
        top = [{"token": tok, "logprob": 0.0, "bytes": list(tok.encode())}] if k > 0 else []
        entries.append(_entry(tok, 0.0, top))
    return entries


def logprob_content(content: str, verdict: Verdict | None, k: int) -> list[JSON]:
    """Tokenize the output; the winner value (if any) is a single token.

    Only the winner token carries a real distribution, which is what a
    logprob-based judge reads; everything else is certain (logprob 0).
    """
    at = content.rfind(_WINNER_PREFIX) if verdict is not None else -1
    if verdict is None or at < 0:
        return _plain_entries(content, k)
    start = at + len(_WINNER_PREFIX)
    end = start + len(verdict.winner)
    ranked = sorted(LABELS, key=lambda label: -verdict.probs[label])[:k]
    top = [
        {"token": label, "logprob": verdict.logprob(label), "bytes": list(label.encode())}
        for label in ranked
    ]
    winner = _entry(verdict.winner, verdict.logprob(verdict.winner), top)
    return [*_plain_entries(content[:start], k), winner, *_plain_entries(content[end:], k)]
