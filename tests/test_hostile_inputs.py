"""Every route against every class of hostile input, on SQLite and PostgreSQL.

Each route has a valid request (``VALID``), itself checked to succeed; every
string, number, time, cursor, id and JSON value in it is then replaced, one
at a time, by each bad value of its kind. Every such request must get a 4xx
in the one error shape, naming the field, with no row written to any table
and no request reaching the (fake) model provider. The routes come from the
app's OpenAPI document, so a new route without an entry here fails.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, select

from app.api.app import create_app
from app.labeling.jsonl import LineError, ParsedLine, read_pairs
from app.settings import Settings
from app.store import migrate
from app.store.limits import column_length
from app.store.models import Base
from judges import JudgeRegistry
from tests.conftest import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY, SKIP_POSTGRES, serve_app
from tests.conftest import _empty_postgres as empty_postgres
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"
NIL = "00000000-0000-0000-0000-000000000000"
METADATA = {"category": "geo", "tags": ["a", "b"], "nested": {"level": {"x": 1, "ok": True}}}


@dataclass(frozen=True)
class Call:
    """One request: ``path`` is the route's template, filled from ``path_params``."""

    method: str
    path: str
    path_params: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    raw_query: str | None = None
    content: bytes | None = None
    ok: tuple[int, ...] = (200, 201, 202)

    def url(self) -> str:
        path = self.path
        for name, value in self.path_params.items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        pairs = [
            f"{quote(k)}={quote(str(item), safe='')}"
            for k, v in self.params.items()
            for item in (v if isinstance(v, list) else [v])
        ]
        query = "&".join([*pairs, *([self.raw_query] if self.raw_query else [])])
        return f"{path}?{query}" if query else path

    def send(self, client: TestClient) -> Any:
        if self.content is not None:
            headers = {"content-type": "application/json"}
            return client.request(self.method, self.url(), content=self.content, headers=headers)
        if self.body is not None:
            # allow_nan: NaN and Infinity go out as the literals a hostile client sends.
            content = json.dumps(self.body, allow_nan=True).encode("utf-8", "surrogatepass")
            headers = {"content-type": "application/json"}
            return client.request(self.method, self.url(), content=content, headers=headers)
        return client.request(self.method, self.url())


PAIR = {
    "id": "pair-1",
    "prompt": "What is the capital of France?",
    "response_a": "Paris is the capital of France.",
    "response_b": "Lyon.",
    "metadata": METADATA,
}
CONVERSATION = {
    "prompt": [{"role": "user", "content": "Hi there"}],
    "response_a": {"role": "assistant", "content": "Hello! How can I help?"},
    "response_b": [{"role": "assistant", "content": "Hi."}],
}
FEEDBACK = {
    "prompt": "Is the sky blue?",
    "completion": "Yes, on a clear day.",
    "label": "up",
    "source": "chat-web",
    "user_id": "u1",
    "session_id": "s1",
    "metadata": METADATA,
    "occurred_at": "2026-11-27T10:00:00Z",
    "idempotency_key": "k-1",
}
REPORT_PARAMS = {"resamples": 10, "confidence": 0.9, "seed": 1, "bins": 5}

VALID: dict[tuple[str, str], list[Call]] = {
    ("POST", "/v1/generations"): [
        Call(
            "POST",
            "/v1/generations",
            body={
                "policy": "openai:gpt-4o-mini",
                "prompts": [
                    {"id": "g-1", "prompt": "Name a prime.", "metadata": METADATA},
                    {"prompt": CONVERSATION["prompt"]},
                ],
                "n": 2,
                "checkpoint": "step-100",
                "temperature": 0.7,
                "top_p": 0.9,
                "max_tokens": 64,
                "seed": 1,
                "name": "gen-1",
            },
        )
    ],
    ("GET", "/v1/generations"): [Call("GET", "/v1/generations", params={"limit": 5})],
    ("GET", "/v1/generations/{generation_id}"): [
        Call(
            "GET",
            "/v1/generations/{generation_id}",
            {"generation_id": NIL},
            params={"offset": 0, "limit": 10},
            ok=(404,),
        )
    ],
    # A parent that does not exist: every check passes, then 404 before anything is stored.
    ("POST", "/v1/rounds"): [
        Call(
            "POST",
            "/v1/rounds",
            body={
                "name": "round-2",
                "policy": "openai:gpt-4o-mini",
                "prompts": [{"id": "r-1", "prompt": "Name a prime.", "metadata": METADATA}],
                "judge": JUDGE,
                "n": 3,
                "strategy": "tournament",
                "checkpoint": "step-200",
                "parent": "round-1",
                "temperature": 0.7,
                "top_p": 0.9,
                "max_tokens": 64,
                "seed": 1,
                "margin": 0.5,
                "budget": 2,
            },
            ok=(404,),
        )
    ],
    ("GET", "/v1/rounds"): [Call("GET", "/v1/rounds", params={"limit": 5})],
    ("GET", "/v1/rounds/{name}"): [
        Call("GET", "/v1/rounds/{name}", {"name": "round-1"}, ok=(404,))
    ],
    ("GET", "/healthz"): [Call("GET", "/healthz")],
    ("GET", "/v1/judges"): [Call("GET", "/v1/judges")],
    ("POST", "/v1/comparisons"): [
        Call("POST", "/v1/comparisons", body={**PAIR, "judge": JUDGE, "force": False}),
        Call("POST", "/v1/comparisons", body={**CONVERSATION, "judge": JUDGE}),
        # Values exactly at their columns' lengths are stored (on PostgreSQL too).
        Call(
            "POST",
            "/v1/comparisons",
            body={
                **PAIR,
                "id": "i" * column_length("comparisons", "external_id"),
                "judge": "anthropic:" + "m" * (column_length("comparisons", "judge_spec") - 10),
            },
        ),
        Call(
            "POST",
            "/v1/comparisons",
            body={**PAIR, "judge": JUDGE, "constitution": "harmlessness", "principles": 1},
        ),
        # A named criteria entry and a reference answer (the default template shows both).
        Call(
            "POST",
            "/v1/comparisons",
            body={**PAIR, "judge": JUDGE, "criteria": "concise", "reference": "Paris."},
        ),
    ],
    ("GET", "/v1/comparisons"): [
        Call(
            "GET",
            "/v1/comparisons",
            params={
                "judge": JUDGE,
                "winner": "a",
                "status": "labeled",
                "batch_id": NIL,
                "created_after": "2020-01-01T00:00:00Z",
                "created_before": "2030-01-01T00:00:00+02:00",
                "cursor": base64.urlsafe_b64encode(
                    f"2020-01-01T00:00:00+00:00|{NIL}".encode()
                ).decode(),
                "limit": 10,
            },
        )
    ],
    ("GET", "/v1/comparisons/{comparison_id}"): [
        Call("GET", "/v1/comparisons/{comparison_id}", {"comparison_id": NIL}, ok=(404,))
    ],
    ("POST", "/v1/comparisons/{comparison_id}/reviews"): [
        Call(
            "POST",
            "/v1/comparisons/{comparison_id}/reviews",
            {"comparison_id": NIL},
            body={"winner": "a", "reviewer": "ann", "note": "A is right."},
            ok=(404,),
        )
    ],
    ("POST", "/v1/batches"): [
        Call("POST", "/v1/batches", params={"judge": JUDGE, "name": "nightly"}, body=[PAIR]),
        Call(
            "POST",
            "/v1/batches",
            params={
                "judge": JUDGE,
                "constitution": "harmlessness",
                "principles": 1,
                "mode": "live",
                "poll_interval": 5,
            },
            body=[CONVERSATION],
        ),
    ],
    ("GET", "/v1/batches/{batch_id}"): [
        Call("GET", "/v1/batches/{batch_id}", {"batch_id": NIL}, ok=(404,))
    ],
    ("POST", "/v1/batches/{batch_id}/cancel"): [
        Call("POST", "/v1/batches/{batch_id}/cancel", {"batch_id": NIL}, ok=(404,))
    ],
    ("POST", "/v1/ratings"): [
        Call(
            "POST",
            "/v1/ratings",
            body={
                "id": "r-1",
                "prompt": "Explain DNS.",
                "response": "DNS maps names to addresses.",
                "metadata": METADATA,
                "judge": JUDGE,
                "rubric": "helpfulness",
                "scale_min": 1,
                "scale_max": 10,
                "threshold": 7.5,
            },
        ),
        Call(
            "POST",
            "/v1/ratings",
            body={
                "prompt": CONVERSATION["prompt"],
                "response": CONVERSATION["response_a"],
                "judge": JUDGE,
                "rubric_text": "Be kind.",
            },
        ),
    ],
    ("GET", "/v1/ratings/{rating_id}"): [
        Call("GET", "/v1/ratings/{rating_id}", {"rating_id": NIL}, ok=(404,))
    ],
    ("POST", "/v1/revisions"): [
        Call(
            "POST",
            "/v1/revisions",
            body={
                "id": "v-1",
                "prompt": "How do I clean a bathroom?",
                "response": "Mix bleach and ammonia.",
                "metadata": METADATA,
                "constitution": "harmlessness",
                "judge": JUDGE,
                "rounds": 1,
                "seed": "s",
            },
        ),
        Call(
            "POST",
            "/v1/revisions",
            body={
                "prompt": [{"role": "user", "content": "How do I clean a bathroom?"}],
                "constitution": "harmlessness",
                "judge": JUDGE,
                "generator": JUDGE,
                "principle": "general-harm",
            },
        ),
    ],
    ("GET", "/v1/revisions/{revision_id}"): [
        Call("GET", "/v1/revisions/{revision_id}", {"revision_id": NIL}, ok=(404,))
    ],
    ("GET", "/v1/constitutions"): [Call("GET", "/v1/constitutions")],
    ("GET", "/v1/templates"): [Call("GET", "/v1/templates")],
    ("GET", "/v1/constitutions/{constitution_id}"): [
        Call("GET", "/v1/constitutions/{constitution_id}", {"constitution_id": "harmlessness"})
    ],
    ("POST", "/v1/feedback"): [
        Call("POST", "/v1/feedback", body=FEEDBACK),
        Call("POST", "/v1/feedback", body=[{**FEEDBACK, "idempotency_key": "k-2"}]),
    ],
    ("GET", "/v1/exports/{kind}"): [
        Call(
            "GET",
            "/v1/exports/{kind}",
            {"kind": "dpo"},
            params={
                "shape": "conversational",
                "judge": [JUDGE],
                "batch": ["nightly"],
                "min_confidence": 0.5,
                "consistent_only": "true",
                "max_length_ratio": 3,
                "max_disagreement": 0.5,
                "since": "2020-01-01T00:00:00Z",
                "until": "2030-01-01T00:00:00Z",
                "loser_min_confidence": 0.8,
                "provenance": "false",
                "deduplicate": "true",
                "allow_empty": "true",
            },
            ok=(200, 422),  # 422: no batch "nightly" yet; the point is it parses
        ),
        Call(
            "GET",
            "/v1/exports/{kind}",
            {"kind": "kto"},
            params={"source": ["verdicts", "feedback"], "allow_empty": "true"},
        ),
        Call(
            "GET",
            "/v1/exports/{kind}",
            {"kind": "kto"},
            params={"run": "run-1", "allow_empty": "1"},
        ),
    ],
    ("GET", "/v1/reviews/queue"): [
        Call(
            "GET",
            "/v1/reviews/queue",
            params={
                "min_disagreement": 0.3,
                "judge": JUDGE,
                "batch_id": NIL,
                "include_reviewed": "false",
                "cursor": "12",
                "limit": 5,
            },
        )
    ],
    ("POST", "/v1/review-queues"): [
        Call(
            "POST",
            "/v1/review-queues",
            body={
                "name": "hard-1",
                "kind": "disagreement",
                "overlap": 2,
                "guidelines": "# Guide\nPrefer the *correct* answer.",
                "show_machine": False,
                "threshold": 0.3,
            },
            ok=(201,),
        ),
        Call(
            "POST",
            "/v1/review-queues",
            body={"name": "audit-1", "kind": "audit", "batch": "nightly", "size": 10, "seed": 3},
            ok=(201, 404),  # 404 until the POST /v1/batches case has made "nightly"
        ),
        Call(
            "POST",
            "/v1/review-queues",
            body={"name": "audit-2", "kind": "audit", "batch_id": NIL, "size": 10},
            ok=(404,),
        ),
    ],
    ("GET", "/v1/review-queues"): [Call("GET", "/v1/review-queues")],
    ("GET", "/v1/review-queues/{queue_id}"): [
        Call("GET", "/v1/review-queues/{queue_id}", {"queue_id": NIL}, ok=(404,))
    ],
    ("POST", "/v1/review-queues/{queue_id}/next"): [
        Call("POST", "/v1/review-queues/{queue_id}/next", {"queue_id": NIL}, ok=(404,))
    ],
    ("POST", "/v1/review-queues/{queue_id}/answers"): [
        Call(
            "POST",
            "/v1/review-queues/{queue_id}/answers",
            {"queue_id": NIL},
            body={"assignment_id": 1, "choice": "left", "note": "A cites a source."},
            ok=(404,),
        )
    ],
    ("POST", "/v1/review-queues/{queue_id}/undo"): [
        Call("POST", "/v1/review-queues/{queue_id}/undo", {"queue_id": NIL}, ok=(404,))
    ],
    ("GET", "/v1/review-queues/{queue_id}/agreement"): [
        Call("GET", "/v1/review-queues/{queue_id}/agreement", {"queue_id": NIL}, ok=(404,))
    ],
    ("GET", "/v1/reports/summary"): [
        Call("GET", "/v1/reports/summary", params={"judge": JUDGE, **REPORT_PARAMS}),
        Call("GET", "/v1/reports/summary", params={"batch": NIL}, ok=(404,)),
    ],
    ("GET", "/v1/reports/batches/{batch_id}"): [
        Call(
            "GET",
            "/v1/reports/batches/{batch_id}",
            {"batch_id": NIL},
            params=REPORT_PARAMS,
            ok=(404,),
        )
    ],
    ("POST", "/v1/rewards"): [
        Call(
            "POST",
            "/v1/rewards",
            body={
                "scorer": {
                    "judge": JUDGE,
                    "kind": "rubric",
                    "rubric": "helpfulness",
                    "scale_min": 1,
                    "scale_max": 10,
                    "threshold": 7.0,
                    "output": "sigmoid",
                },
                "items": [
                    {
                        "prompt": "What is the capital of France?",
                        "completion": "Paris.",
                        "reference": "Paris is the capital of France.",
                        "metadata": {**METADATA, "run": "run-1", "step": 3},
                    },
                    {"prompt": CONVERSATION["prompt"], "completion": CONVERSATION["response_a"]},
                ],
                "timeout_s": 30.0,
                "idempotency_key": "rewards-1",
            },
        ),
        Call(
            "POST",
            "/v1/rewards",
            body={
                "scorer": {"judge": JUDGE, "kind": "pairwise"},
                "items": [{"prompt": PAIR["prompt"], "completion": "Paris.", "reference": "Lyon."}],
            },
        ),
        Call(
            "POST",
            "/v1/rewards",
            body={
                "scorer": {"judge": JUDGE, "rubric_text": "Is it correct?"},
                "items": [{"prompt": PAIR["prompt"], "completion": "Lyon."}],
            },
        ),
    ],
    ("POST", "/get_reward"): [
        Call(
            "POST",
            "/get_reward",
            params={
                "judge": JUDGE,
                "kind": "rubric",
                "rubric": "helpfulness",
                "run": "run-1",
                "step": 1,
                "timeout_s": 30.0,
            },
            body={
                "query": ["What is 2+2? Four."],
                "prompts": ["What is 2+2?"],
                "labels": ["4"],
            },
        )
    ],
}

# --- The catalogue of bad values -------------------------------------------------------------

NUL = "bad\x00value"
SURROGATE = "bad\ud800value"
LONG_TEXT = "x" * 300_001  # over every column and over REFEREE_MAX_TEXT_CHARS
LONG_PARAM = "x" * 5_000
INT_OVERFLOWS = (2**31, -(2**31) - 1, 10**30)
NEGATIVE_IN_RANGE = {"scale_min", "scale_max"}  # a scale may start below zero
# Body fields stored in a String(n) column: one character over n must be refused.
COLUMNS = {
    "id": ("comparisons", "external_id"),
    "judge": ("comparisons", "judge_spec"),
    "generator": ("revisions", "generator"),
    "constitution": ("revisions", "constitution_id"),
    "principle": ("revisions", "principle"),
    "seed": ("revisions", "seed"),
    "rubric": ("ratings", "rubric"),
    "reviewer": ("gold_labels", "reviewer"),
    "source": ("feedback", "source"),
    "user_id": ("feedback", "user_id"),
    "session_id": ("feedback", "session_id"),
    "idempotency_key": ("feedback", "idempotency_key"),
}
BAD_METADATA: dict[str, Any] = {
    "metadata-string": "not an object",
    "metadata-list": [1, 2],
    "metadata-nul-key": {"ok": {"k\x00": 1}},
    "metadata-nul-value": {"ok": ["v\x00"]},
    "metadata-surrogate-key": {"\udc80": 1},
    "metadata-surrogate-value": {"deep": {"er": "\ud83d"}},
    "metadata-nan": {"score": float("nan")},
    "metadata-infinity": {"deep": [float("inf")]},
    "metadata-too-deep": json.loads("[" * 100 + "]" * 100),
}


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode()


FORGED_CURSORS = {
    "superscript-two": "²",
    "5000-digits": "9" * 5_000,
    "negative": "-1",
    "past-int64": str(2**63),
    "not-base64": "!!!***",
    "base64-junk": b64("junk"),
    "base64-nul": b64("\x00|\x00"),
    "base64-surrogate": b64("\udcff|x"),
    "base64-naive-time": b64(f"0001-01-01T00:00:00|{NIL}"),
    "base64-before-year-1": b64(f"0001-01-01T00:00:00+14:00|{NIL}"),
    "base64-after-9999": b64(f"9999-12-31T23:59:59-14:00|{NIL}"),
    "base64-bad-uuid": b64("2026-01-01T00:00:00+00:00|not-a-uuid"),
}
BAD_BY_TYPE: dict[str, dict[str, str]] = {
    "string": {"nul": NUL, "too-long": LONG_PARAM},
    "enum": {"unknown": "nosuch", "nul": NUL},
    "uuid": {"not-uuid": "not-a-uuid", "nul": NUL, "superscript": "²"},
    "date-time": {
        "naive": "2026-01-01T00:00:00",
        "date-only": "0001-01-01",
        "before-year-1-in-utc": "0001-01-01T00:00:00+14:00",
        "after-9999-in-utc": "9999-12-31T23:59:59-14:00",
        "words": "yesterday",
    },
    "integer": {
        "negative": "-1",
        "past-int64": str(2**63),
        "5000-digits": "9" * 5_000,
        "fraction": "1.5",
        "words": "many",
    },
    "number": {"nan": "nan", "inf": "inf", "-inf": "-inf", "1e999": "1e999", "words": "high"},
    "boolean": {"words": "maybe"},
}
# Extreme but real instants: they may be accepted, but never with a 5xx.
EDGE_TIMES = {"edge-max": "9999-12-31T23:59:59+14:00", "edge-min": "0001-01-01T00:00:00Z"}


@dataclass(frozen=True)
class Case:
    name: str
    call: Call
    field: str
    """What the error must name: the parameter, the body's top-level field, or ``body``."""
    strict: bool = True
    """False: a value that may be valid; only a 5xx fails."""

    @property
    def id(self) -> str:
        return f"{self.call.method} {self.call.path} {self.name}"


def _openapi() -> dict[str, Any]:
    return create_app(Settings(database_url="sqlite://", judges_file=None)).openapi()


OPENAPI = _openapi()


def _kind(schema: dict[str, Any]) -> tuple[str, bool]:
    """The bad-value class of a parameter's schema, and whether it is a list."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    schema = options[0]
    if schema.get("type") == "array":
        return _kind(schema["items"])[0], True
    if "enum" in schema or "$ref" in schema:
        return "enum", False
    return schema.get("format", schema.get("type", "string")), False


def _parameter_cases(base: Call) -> Iterator[Case]:
    operation = OPENAPI["paths"][base.path][base.method.lower()]
    for parameter in operation.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        kind, many = _kind(parameter["schema"])
        values = dict(BAD_BY_TYPE.get(kind, BAD_BY_TYPE["string"]))
        if name == "cursor":
            values = FORGED_CURSORS
        for label, value in values.items():
            if where == "path":
                call = replace(base, path_params={**base.path_params, name: value})
            else:
                call = replace(base, params={**base.params, name: [value] if many else value})
            yield Case(f"{where}:{name}:{label}", call, name)
        if where == "query" and kind in ("string", "enum"):
            # Starlette decodes a query's bytes with replacement characters, so
            # this arrives as valid text: it may be accepted, never with a 5xx.
            rest = {k: v for k, v in base.params.items() if k != name}
            call = replace(base, params=rest, raw_query=f"{name}=%FF%FE")
            yield Case(f"query:{name}:not-utf8", call, name, strict=False)
        if kind == "date-time":
            for label, value in EDGE_TIMES.items():
                call = replace(base, params={**base.params, name: value})
                yield Case(f"query:{name}:{label}", call, name, strict=False)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict) and "metadata" not in path[-1:]:
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list) and path[-1:] != ("metadata",):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _set(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = list(document) if isinstance(document, list) else dict(document)
    copy[path[0]] = _set(document[path[0]], path[1:], value)
    return copy


def _bad_values(name: str, value: Any) -> dict[str, Any]:
    if name == "metadata":
        return BAD_METADATA
    if isinstance(value, bool):
        return {"words": "maybe", "object": {"x": 1}}
    if isinstance(value, int):
        bad: dict[str, Any] = {f"int-{v}": v for v in INT_OVERFLOWS} | {"words": "many"}
        return bad if name in NEGATIVE_IN_RANGE else {**bad, "negative": -1}
    if isinstance(value, float):
        return {"nan": float("nan"), "infinity": float("inf"), "words": "high"}
    bad = {"nul": NUL, "surrogate": SURROGATE, "too-long": LONG_TEXT, "object": {"x": 1}}
    if name in COLUMNS:
        table, column = COLUMNS[name]
        bad["one-over-column"] = "x" * (column_length(table, column) + 1)
    return bad


def _body_cases(base: Call) -> Iterator[Case]:
    for path, value in _leaves(base.body):
        keys = [p for p in path if isinstance(p, str)]
        field_name = keys[0] if keys else "body"
        for label, bad in _bad_values(keys[-1] if keys else "", value).items():
            where = ".".join(str(p) for p in path)
            call = replace(base, body=_set(base.body, path, bad))
            yield Case(f"body:{where}:{label}", call, field_name)
    for label, content in BODY_LEVEL.items():
        yield Case(f"body:{label}", replace(base, body=None, content=content), "body")


BODY_LEVEL = {
    "not-utf8": b'{"prompt": "caf\xe9 \xff\xfe"}',
    "nested-10000-deep": b"[" * 10_000 + b"]" * 10_000,
    "not-json": b"{'prompt': nope",
    "50-mb": b'{"prompt": "' + b"x" * (50 * 1024 * 1024) + b'"}',
}


def _growing_jury() -> str:
    """An inline jury spec at the column's length whose canonical form is one longer."""
    tail = ",anthropic:b,tie_margin=.1,aggregate=mean"  # written out: tie_margin=0.1
    limit = column_length("comparisons", "judge_spec")
    return "jury:anthropic:" + "m" * (limit - len("jury:anthropic:") - len(tail)) + tail


def _extra_cases() -> Iterator[Case]:
    """Values the catalogue does not derive from a request's shape."""
    for base in VALID[("POST", "/v1/comparisons")][:1]:
        call = replace(base, body={**base.body, "judge": _growing_jury()})
        yield Case("body:judge:jury-longer-once-written-out", call, "judge")
    for base in VALID[("POST", "/v1/batches")][:1]:
        yield Case("body:empty", replace(base, body=None, content=b""), "body")
        yield Case("body:empty-array", replace(base, body=[]), "body")
        yield Case("body:not-objects", replace(base, body=[1, "two", None]), "body")


def _cases() -> list[Case]:
    cases: dict[str, Case] = {c.id: c for c in _extra_cases()}
    for bases in VALID.values():
        for base in bases:
            generated = [*_parameter_cases(base)]
            if base.body is not None:
                generated += _body_cases(base)
            for case in generated:
                cases.setdefault(case.id, case)
    return list(cases.values())


CASES = _cases()


# --- The app under attack, once per database ------------------------------------------------


@dataclass
class Target:
    client: TestClient
    engine: Engine
    provider: FakeProvider

    def rows(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {
                table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in Base.metadata.sorted_tables
            }


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def target(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_provider_server: FakeProvider,
) -> Iterator[Target]:
    """One app per database for the whole module: ~600 requests each stay within seconds.

    Each case counts the rows of every table before and after, so cases
    need no empty database of their own.
    """
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('hostile')) / 'referee.db'}"
        migrate.upgrade(url)
    else:
        if SKIP_POSTGRES:
            pytest.skip("REFEREE_TEST_SKIP_POSTGRES=1")
        url = str(request.getfixturevalue("postgres_url"))
        empty_postgres(url)
    fake_provider_server.reset()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ANTHROPIC_BASE_URL", fake_provider_server.anthropic_base_url)
        env.setenv("ANTHROPIC_API_KEY", ANTHROPIC_TEST_KEY)
        env.setenv("OPENAI_BASE_URL", fake_provider_server.openai_base_url)
        env.setenv("OPENAI_API_KEY", OPENAI_TEST_KEY)
        settings = Settings(database_url=url, judges_file=None)
        engine = create_engine(url)
        try:
            with serve_app(settings, JudgeRegistry.from_entry_points()) as client:
                yield Target(client, engine, fake_provider_server)
        finally:
            engine.dispose()


def test_every_route_has_a_valid_request() -> None:
    """A route the table does not cover fails here, so none escapes the catalogue."""
    routes = {
        (method.upper(), path)
        for path, operations in OPENAPI["paths"].items()
        for method in operations
    }
    assert routes == set(VALID)


@pytest.mark.parametrize(
    "body_route", [r for r, calls in VALID.items() if any(c.body is not None for c in calls)]
)
def test_the_valid_bodies_use_every_field(body_route: tuple[str, str]) -> None:
    """Each top-level field of a route's body appears in one of its valid requests."""
    schema = OPENAPI["paths"][body_route[1]][body_route[0].lower()].get("requestBody")
    ref = json.dumps(schema or {})
    if '"$ref"' not in ref:
        return  # a raw body (batches, feedback) declares no fields to cover
    name = ref.split('"$ref": "#/components/schemas/')[1].split('"')[0]
    fields = set(OPENAPI["components"]["schemas"][name]["properties"])
    used = {key for call in VALID[body_route] for key in call.body}
    assert fields <= used


@pytest.mark.parametrize(
    "call", [c for calls in VALID.values() for c in calls], ids=lambda c: f"{c.method} {c.url()}"
)
def test_the_valid_requests_succeed(target: Target, call: Call) -> None:
    """The base of every mutation is accepted, so a 4xx below is the bad value's doing."""
    response = call.send(target.client)
    assert response.status_code in call.ok, response.text[:2000]
    if call.path == "/v1/batches":
        _wait_for_batch(target.client, response.json()["id"])


def _wait_for_batch(client: TestClient, batch_id: str) -> None:
    # Its workers call the provider in the background: done before the cases run.
    for _ in range(200):
        if client.get(f"/v1/batches/{batch_id}").json()["counts"]["pending"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish")


# Routes answering item by item (a trainer needs one answer per completion): a bad value
# inside one item is that item's `invalid` null naming its field, stored as such; nothing
# is judged for it. The body fields whose values are items:
PER_ITEM = {
    ("POST", "/v1/rewards"): {"items"},
    ("POST", "/get_reward"): {"query", "prompts", "labels"},
}


def _check_item_refused(target: Target, case: Case, before: dict[str, int], response: Any) -> None:
    assert target.provider.requests() == []
    added = {t for t, n in target.rows().items() if n != before[t]}
    assert added <= {"reward_items"}, added
    index = int(case.name.split(":")[1].split(".")[1])
    if case.call.path == "/get_reward":
        assert response.status_code == 422, response.text[:2000]
        [unscored] = response.json()["error"]["details"]["unscored"]
        assert (unscored["index"], unscored["status"]) == (index, "invalid")
        assert f"{case.field}[{index}]" in unscored["message"], unscored
        return
    assert response.status_code == 200, response.text[:2000]
    item = response.json()["items"][index]
    assert (item["score"], item["status"]) == (None, "invalid"), item
    assert f"items[{index}]" in item["message"], item


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_value_is_a_4xx_naming_the_field(target: Target, case: Case) -> None:
    """A 4xx in the error shape naming the field; no row written, no model called."""
    before = target.rows()
    target.provider.reset()
    response = case.call.send(target.client)
    assert response.status_code < 500, response.text[:2000]
    if not case.strict:
        return
    if case.field in PER_ITEM.get((case.call.method, case.call.path), ()) and (
        response.status_code != 422 or "unscored" in response.text
    ):
        _check_item_refused(target, case, before, response)
        return
    assert target.rows() == before
    assert target.provider.requests() == []
    assert 400 <= response.status_code < 500, response.text[:2000]
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "details"} <= set(body["error"]), body
    assert case.field in json.dumps(body["error"]), body


FILE_FIELDS = ("id", "prompt", "response_a", "response_b")


@pytest.mark.parametrize(
    ("field_name", "label", "bad"),
    [(f, "nul", NUL) for f in FILE_FIELDS]
    + [(f, "surrogate", SURROGATE) for f in FILE_FIELDS]
    + [("id", "one-over-column", "x" * (column_length("comparisons", "external_id") + 1))]
    + [("metadata", label, bad) for label, bad in BAD_METADATA.items()],
)
def test_file_lines_meet_the_same_rules(field_name: str, label: str, bad: Any) -> None:
    """`referee label` and uploads validate through the same models: the line names the field."""
    good = json.dumps({**PAIR, "id": "ok"})
    line = json.dumps({**PAIR, field_name: bad}, allow_nan=True)
    records = list(read_pairs(io.StringIO(f"{good}\n{line}\n"), "pairs.jsonl"))
    assert isinstance(records[0], ParsedLine)
    assert isinstance(records[1], LineError), label
    assert records[1].line == 2
    assert field_name in records[1].reason
