"""Starlette app speaking the Anthropic Messages and OpenAI Chat Completions APIs.

Per-request work is kept to a dict lookup, one regex and a small JSON dump so
the fake is never the bottleneck of a benchmark; latency is simulated by
awaiting (never blocking) so hundreds of slow requests overlap on one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .batches import FakeBatches
from .caching import cache_usage
from .outputs import (
    JSON,
    dumps,
    estimate_tokens,
    fill_schema,
    last_user_text,
    logprob_content,
    request_text_len,
    strict_schema_problem,
    verdict_object,
)
from .policies import Verdict, decide, decide_gold, extract_responses
from .sampling import Sampled, is_sampling, sample
from .state import RPM_FAULT, Admission, ProviderState

MALFORMED_TEXT = "I think the first one is better."
REFUSAL_TEXT = "I can't help with that."

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_ANTHROPIC_ERROR_MESSAGES = {
    429: "Number of requests has exceeded your rate limit (fake provider).",
    500: "Internal server error (fake provider).",
    529: "Overloaded (fake provider).",
}
_OPENAI_ERROR_TYPES = {400: "invalid_request_error", 429: "rate_limit_error"}


class BadRequest(Exception):
    """A request the real API would reject with 400."""


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _free_text(obj: Any, verdict: Verdict | None) -> str:
    # A string scripted as outputs["text"] is the reply itself (e.g. a
    # "Score: 7" answer). Pairwise prompts get the verdict JSON even as free
    # text, so a prompt-only judge still parses; other free text is a stub.
    if isinstance(obj, str):
        return obj
    return dumps(obj) if verdict is not None or obj else "This is a fake response."


class FakeProviderApp:
    """Holds the state and the route handlers; `.app` is the ASGI app."""

    def __init__(self, baseline: dict[str, Any] | None = None) -> None:
        self.state = ProviderState(baseline)
        # Set when the server shuts down: wakes requests sleeping for latency
        # or a "hang" so they answer at once instead of being cancelled, and
        # shutdown stays fast and quiet. (3.10+ Events bind their loop lazily.)
        self._closing = asyncio.Event()
        self.app = Starlette(
            routes=[
                Route("/v1/messages", self._anthropic, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                *FakeBatches(self).routes(),
                Route("/_control/config", self._config, methods=["GET", "POST"]),
                Route("/_control/reset", self._reset, methods=["POST"]),
                Route("/_control/requests", self._requests, methods=["GET"]),
                Route("/_control/stats", self._stats, methods=["GET"]),
                Route("/_control/health", self._health, methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------------ common

    def begin_shutdown(self) -> None:
        """Release all simulated waits; call on the server's event loop."""
        self._closing.set()

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0 or self._closing.is_set():
            return
        # TimeoutError is the normal case: the full simulated delay elapsed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    def _structured(
        self, text: str, schema: JSON | None, name: str, model: str | None = None
    ) -> tuple[Any, Verdict | None]:
        s = self.state.settings
        pair = extract_responses(text)
        if pair is not None:
            # A model listed in model_policies (several judges of one jury) has its own policy.
            policy = s.model_policies.get(model, s.policy) if model else s.policy
            verdict = (
                decide_gold(s.gold, s.p_gold, s.seed, pair[0], pair[1])
                if policy == "gold"
                else decide(
                    policy, s.policy_arg, s.p_first, pair[0], pair[1], self.state.policy_rng
                )
            )
            return verdict_object(verdict, schema), verdict
        if name in s.outputs:
            # Deep copy: the response must not alias mutable control state.
            return copy.deepcopy(s.outputs[name]), None
        return (fill_schema(schema) if schema else {}), None

    async def _serve(
        self,
        api: str,
        request: Request,
        check: Callable[[JSON], None],
        answer: Callable[[JSON, str | None], JSON],
        error: Callable[[Admission, str], Response],
    ) -> Response:
        state = self.state
        body: Any = None
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise BadRequest("request body must be a JSON object")
            if not isinstance(body.get("messages"), list) or not body.get("model"):
                raise BadRequest("'model' and 'messages' are required")
            if api == "anthropic" and not isinstance(body.get("max_tokens"), int):
                raise BadRequest("max_tokens: Field required")
            check(body)
        except (ValueError, BadRequest) as exc:
            adm = state.count(api, Admission(None, 400))
            self._record(api, request, body if isinstance(body, dict) else None, adm)
            return error(adm, str(exc))
        adm = state.admit(api)
        self._record(api, request, body, adm)
        state.enter()
        try:
            s = state.settings
            await self._pause(s.latency_ms / 1000.0)
            if adm.status != 200:
                return error(adm, "")
            if adm.fault == "hang":
                await self._pause(s.hang_seconds)
            return JSONResponse(answer(body, adm.fault), headers={"request-id": _new_id("req_")})
        finally:
            state.leave()

    def _record(self, api: str, request: Request, body: JSON | None, adm: Admission) -> None:
        if self.state.settings.record:
            self.state.log.append(
                {
                    "api": api,
                    "path": request.url.path,
                    "body": body,
                    "headers": dict(request.headers.items()),
                    "fault": adm.fault,
                    "status": adm.status,
                    # Arrival time (monotonic, seconds): lets tests check client-side pacing.
                    "received_at": time.monotonic(),
                }
            )

    @staticmethod
    def _error_headers(adm: Admission) -> dict[str, str]:
        if adm.retry_after is None:
            return {}
        value = adm.retry_after
        return {"retry-after": str(int(value)) if value == int(value) else str(value)}

    # --------------------------------------------------------------- anthropic

    def _anthropic_error(self, adm: Admission, message: str) -> Response:
        kind = _ANTHROPIC_ERROR_TYPES.get(adm.status, "api_error")
        payload = {
            "type": "error",
            "error": {
                "type": kind,
                "message": message or _ANTHROPIC_ERROR_MESSAGES.get(adm.status, kind),
            },
            "request_id": _new_id("req_"),
        }
        return JSONResponse(payload, status_code=adm.status, headers=self._error_headers(adm))

    def _anthropic_check(self, body: JSON) -> None:
        self._pick_tool(body)

    @staticmethod
    def _pick_tool(body: JSON) -> JSON | None:
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
        choice = body.get("tool_choice") or {}
        kind = choice.get("type", "auto") if isinstance(choice, dict) else "auto"
        if kind == "none" or not tools:
            return None
        if kind == "tool":
            for tool in tools:
                if tool.get("name") == choice.get("name"):
                    return tool
            raise BadRequest(f"tool_choice names unknown tool {choice.get('name')!r}")
        # auto/any: a model answering a judge prompt would call the only tool.
        return tools[0]

    def _anthropic_answer(self, body: JSON, fault: str | None) -> JSON:
        stop_details: JSON | None = None
        if fault == "malformed":
            content: list[JSON] = [{"type": "text", "text": MALFORMED_TEXT}]
            stop = "end_turn"
        elif fault == "refusal":
            content = [{"type": "text", "text": REFUSAL_TEXT}]
            stop = "refusal"
            stop_details = {"type": "refusal", "category": None, "explanation": None}
        else:
            text = last_user_text(body["messages"])
            tool = self._pick_tool(body)
            fmt = (body.get("output_config") or {}).get("format") or {}
            if tool is not None:
                obj, _ = self._structured(
                    text, tool["input_schema"], str(tool.get("name")), body["model"]
                )
                content = [
                    {
                        "type": "tool_use",
                        "id": _new_id("toolu_"),
                        "name": tool["name"],
                        "input": obj,
                    }
                ]
                stop = "tool_use"
            elif fmt.get("type") == "json_schema":
                # Native structured outputs (SDK `messages.parse`): JSON as text.
                schema = fmt.get("schema") or {}
                obj, _ = self._structured(
                    text, schema, str(schema.get("title", "output")), body["model"]
                )
                content = [{"type": "text", "text": dumps(obj)}]
                stop = "end_turn"
            else:
                obj, verdict = self._structured(text, None, "text", body["model"])
                reply = _free_text(obj, verdict)
                stop = "end_turn"
                drawn = self._samples(body, text, obj, verdict, 1)
                if drawn:
                    reply = drawn[0].text
                    stop = "max_tokens" if drawn[0].finish_reason == "length" else "end_turn"
                content = [{"type": "text", "text": reply}]
        out_len = sum(
            len(b["text"]) if b["type"] == "text" else len(dumps(b["input"])) for b in content
        )
        return {
            "id": _new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "stop_details": stop_details,
            "usage": {
                **cache_usage(self.state.prompt_cache, body),
                "output_tokens": estimate_tokens(out_len),
            },
        }

    async def _anthropic(self, request: Request) -> Response:
        return await self._serve(
            "anthropic",
            request,
            self._anthropic_check,
            self._anthropic_answer,
            self._anthropic_error,
        )

    async def _count_tokens(self, request: Request) -> Response:
        body = json.loads(await request.body())
        return JSONResponse({"input_tokens": estimate_tokens(request_text_len(body))})

    # ------------------------------------------------------------------ openai

    def _openai_error(self, adm: Admission, message: str) -> Response:
        # "requests" is what OpenAI reports for an RPM limit; injected 429s use
        # the generic rate-limit type; 5xx (incl. the "529" fault) are server errors.
        kind = (
            "requests"
            if adm.fault == RPM_FAULT
            else _OPENAI_ERROR_TYPES.get(adm.status, "server_error")
        )
        default = (
            "Rate limit reached (fake provider)."
            if adm.status == 429
            else "The server had an error (fake provider)."
        )
        payload = {
            "error": {"message": message or default, "type": kind, "param": None, "code": None}
        }
        return JSONResponse(payload, status_code=adm.status, headers=self._error_headers(adm))

    @staticmethod
    def _openai_check(body: JSON) -> None:
        fmt = body.get("response_format") or {}
        if fmt.get("type") != "json_schema":
            return
        spec = fmt.get("json_schema") or {}
        if spec.get("strict"):
            problem = strict_schema_problem(spec.get("schema") or {})
            if problem:
                raise BadRequest(
                    f"Invalid schema for response_format '{spec.get('name')}': {problem}"
                )

    def _openai_answer(self, body: JSON, fault: str | None) -> JSON:
        content: str | None
        refusal: str | None = None
        verdict: Verdict | None = None
        if fault == "malformed":
            content = MALFORMED_TEXT
        elif fault == "refusal":
            content, refusal = None, REFUSAL_TEXT
        else:
            text = last_user_text(body["messages"])
            fmt = body.get("response_format") or {}
            if fmt.get("type") == "json_schema":
                spec = fmt.get("json_schema") or {}
                schema = spec.get("schema") or {}
                obj, verdict = self._structured(
                    text, schema, str(spec.get("name", "output")), body["model"]
                )
                content = dumps(obj)
            else:
                as_json = fmt.get("type") == "json_object"
                obj, verdict = self._structured(
                    text, None, "json_object" if as_json else "text", body["model"]
                )
                content = dumps(obj) if as_json else _free_text(obj, verdict)
                if not fmt:
                    drawn = self._samples(body, text, obj, verdict, _n_of(body))
                    if drawn:
                        return self._openai_samples(body, drawn)
        logprobs: JSON | None = None
        if body.get("logprobs"):
            k = int(body.get("top_logprobs") or 0)
            logprobs = {
                "content": None if content is None else logprob_content(content, verdict, k),
                "refusal": None if refusal is None else logprob_content(refusal, None, k),
            }
        out_tokens = estimate_tokens(len(content if content is not None else refusal or ""))
        in_tokens = estimate_tokens(request_text_len(body))
        return {
            "id": _new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": refusal,
                        "annotations": [],
                    },
                    "finish_reason": "stop",
                    "logprobs": logprobs,
                }
            ]
            * _n_of(body),  # n identical choices: the answer is deterministic here
            "usage": {
                "prompt_tokens": in_tokens,
                "completion_tokens": out_tokens,
                "total_tokens": in_tokens + out_tokens,
            },
            "system_fingerprint": "fp_fake",
        }

    def _samples(
        self, body: JSON, text: str, obj: Any, verdict: Verdict | None, n: int
    ) -> list[Sampled]:
        """Sampled candidates for a policy's request (sampling.py); [] for any other request."""
        if verdict is not None or isinstance(obj, str) or not is_sampling(body):
            return []
        s = self.state.settings
        return [
            sample(
                server_seed=s.seed,
                request_seed=body.get("seed"),
                prompt=text,
                index=index,
                variants=s.candidate_variants,
                rng=self.state.sample_rng,
                max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
            )
            for index in range(n)
        ]

    def _openai_samples(self, body: JSON, drawn: list[Sampled]) -> JSON:
        """A chat completion of ``n`` sampled choices; the prompt is billed once."""
        in_tokens = estimate_tokens(request_text_len(body))
        out_tokens = sum(estimate_tokens(len(d.text)) for d in drawn)
        choices = [
            {
                "index": index,
                "message": {"role": "assistant", "content": d.text, "refusal": None},
                "finish_reason": d.finish_reason,
                "logprobs": None,
            }
            for index, d in enumerate(drawn)
        ]
        return {
            "id": _new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
            "usage": {
                "prompt_tokens": in_tokens,
                "completion_tokens": out_tokens,
                "total_tokens": in_tokens + out_tokens,
            },
            "system_fingerprint": "fp_fake",
        }

    async def _openai(self, request: Request) -> Response:
        return await self._serve(
            "openai", request, self._openai_check, self._openai_answer, self._openai_error
        )

    # ----------------------------------------------------------------- control

    async def _config(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                update = json.loads(await request.body() or b"{}")
                if not isinstance(update, dict):
                    raise ValueError("config body must be a JSON object")
                self.state.configure(update)
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.state.settings.to_json())

    async def _reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse(self.state.settings.to_json())

    async def _requests(self, request: Request) -> Response:
        return JSONResponse(self.state.log)

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats_json())

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})


def _n_of(body: JSON) -> int:
    """OpenAI's ``n`` (choices to return), 1 when absent or not a positive integer."""
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


def create_app(baseline: dict[str, Any] | None = None) -> Starlette:
    return FakeProviderApp(baseline).app
