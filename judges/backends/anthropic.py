"""Anthropic judges through the official async SDK, live and through the Message Batches API.

Every structured answer (verdict, rating, critique, revision) comes as a
forced tool call through :meth:`AnthropicJudge.ask`; generation is a plain
Messages call. :class:`AnthropicBatchAPI` sends the judge's own request
bodies and reads results with its own parser, so a batch verdict is made
exactly like a live one.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anthropic
from anthropic.types import ContentBlock

try:
    # The SDK's own constructor of Message.content's blocks. Not public API: a
    # release without it reads every reply through the SDK's whole parse instead.
    from anthropic._models import construct_type as _construct_block
except ImportError:  # pragma: no cover - depends on the installed SDK
    _construct_block: Callable[..., object] | None = None  # type: ignore[no-redef]

from judges.backends._caching import cacheable, preamble_tokens, system_blocks
from judges.backends._sdk_errors import translate
from judges.base import Judge, RawAnswer, RawGenerated
from judges.cai.parsing import parse_generated
from judges.cai.prompts import GENERATE_V1
from judges.config import JudgeConfig
from judges.errors import (
    JudgeConfigError,
    JudgeError,
    MissingCredentialsError,
    RateLimitedError,
    RefusedError,
    TransientJudgeError,
    UnparseableError,
)
from judges.formats import VERDICT_FORMAT, AnswerFormat, AnswerT
from judges.provider_batch import (
    BatchOutcome,
    BatchRequest,
    BatchState,
    BatchTransport,
    ProviderBatchAPI,
    ResultKind,
)
from judges.templates import get_template, prior_turns
from judges.tracing import note_response
from judges.types import ShownPair, Text, Usage

# Error types a provider may give one request that another try could get past.
_TRANSIENT_ANTHROPIC = {"api_error", "overloaded_error", "timeout_error"}


class AnthropicJudge(Judge):
    """``anthropic:<model>``. Reads ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL``."""

    provider = "anthropic"

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__(config)
        api_key = os.environ.get("ANTHROPIC_API_KEY")
        if not api_key:
            raise MissingCredentialsError("anthropic", "ANTHROPIC_API_KEY")
        # max_retries=0: judges.retry is the only retry policy, so attempts don't multiply.
        # The SDK's aiohttp transport: with hundreds of calls in flight it costs
        # less per call than the default httpx one.
        self._client = anthropic.AsyncAnthropic(
            http_client=anthropic.DefaultAioHttpClient(),
            api_key=api_key,
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout_s,
            # judges.tracing makes the call's GenAI span (one per attempt, with the
            # verdict's evaluation event); the SDK's own would be a second span of it.
            open_telemetry=False,
        )

    async def answer(self, shown: ShownPair, question: str | None = None) -> RawAnswer:
        template = get_template(self.config.template)
        system, user = template.render(shown, question)
        params = self.message_params(system, user, VERDICT_FORMAT, template.shots(shown))
        return RawAnswer(*self.answer_from_message(VERDICT_FORMAT, await self._send(params)))

    async def ask(
        self, system: str, user: str, fmt: AnswerFormat[AnswerT]
    ) -> tuple[AnswerT, str, Usage]:
        """Make one call forcing ``fmt``'s tool (or asking for its text format)."""
        return self.answer_from_message(
            fmt, await self._send(self.message_params(system, user, fmt))
        )

    def message_params(
        self,
        system: str,
        user: str,
        fmt: AnswerFormat[Any],
        shots: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        """The Messages request body for one structured call, as live and batch calls send it.

        ``shots`` are worked examples, (user, assistant) turns before the request.

        The system preamble carries ``cache_control`` when it is long enough
        for the model to cache (see :func:`cacheable`).
        """
        request: dict[str, Any] = {}
        if self.config.output == "structured":
            request["tools"] = [_tool(fmt)]
            request["tool_choice"] = {"type": "tool", "name": fmt.tool_name}
        else:
            user = f"{user}\n\n{fmt.text_instructions}"
        request["system"] = system_blocks(self.config.model, system, request.get("tools", []))
        request["messages"] = [*prior_turns(shots), {"role": "user", "content": user}]
        return self._params(request)

    def answer_from_message(
        self, fmt: AnswerFormat[AnswerT], message: Any
    ) -> tuple[AnswerT, str, Usage]:
        """Parse one Messages reply (live, or a batch's succeeded result) into ``fmt``."""
        reply = message if isinstance(message, Reply) else Reply.of_message(message)
        raw_output = reply.raw_output()
        try:
            answer = self._answer_from_blocks(fmt, reply.blocks, raw_output, reply.stop_reason)
        except JudgeError as exc:
            exc.usage = reply.usage  # a failed call still cost tokens
            raise
        return answer, raw_output, reply.usage

    async def generate(self, prompt: Text) -> RawGenerated:
        """Send the conversation as is; the text blocks of the reply, joined, are the response."""
        system, turns = GENERATE_V1.render(prompt)
        request: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in turns]
        }
        if system is not None:
            request["system"] = system
        reply = await self._send(self._params(request))
        blocks, raw_output, usage = reply.blocks, reply.raw_output(), reply.usage
        stop_reason = reply.stop_reason
        try:
            if stop_reason == "refusal":
                raise RefusedError("the model refused to answer", raw_output=raw_output)
            if stop_reason == "max_tokens":
                raise UnparseableError(
                    "the response was cut off at max_tokens", raw_output=raw_output
                )
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            answer = parse_generated(text, raw_output)
        except JudgeError as exc:
            exc.usage = usage
            raise
        return RawGenerated(answer, raw_output, usage)

    def _params(self, request: dict[str, Any]) -> dict[str, Any]:
        params = {"model": self.config.model, "max_tokens": self.config.max_tokens, **request}
        if self.config.temperature is not None:
            params["temperature"] = self.config.temperature
        return params

    async def _send(self, params: dict[str, Any]) -> Reply:
        """Send one Messages request body; SDK errors become judge errors.

        The SDK sends it and reads the reply (``with_raw_response``), but the
        reply is not made into the SDK's whole ``Message`` model: a judge reads
        its content blocks, usage, stop reason, id and model, and building the
        rest cost more CPU per call than anything else after the request.
        The blocks still go through the SDK's own models, so the stored raw
        output is the same JSON. A reply of another shape is left to the SDK.
        """
        params = dict(params)
        if "temperature" in params:
            # Not a typed parameter in every SDK release; the API accepts it in the body.
            params["extra_body"] = {"temperature": params.pop("temperature")}
        try:
            response = await self._client.messages.with_raw_response.create(**params)
            reply = Reply.of_body(await response.read())
            if reply is None:
                reply = Reply.of_message(await response.parse())
        except anthropic.AnthropicError as exc:
            raise translate(exc, anthropic, self.provider) from exc
        note_response(reply)
        return reply

    def _answer_from_blocks(
        self,
        fmt: AnswerFormat[AnswerT],
        blocks: list[dict[str, Any]],
        raw_output: str,
        stop_reason: str | None,
    ) -> AnswerT:
        if stop_reason == "refusal":
            raise RefusedError("the model refused to judge", raw_output=raw_output)
        if self.config.output == "text":
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            return fmt.parse_text(text)
        for block in blocks:
            if block.get("type") == "tool_use" and block.get("name") == fmt.tool_name:
                return fmt.parse_object(block.get("input"), raw_output)
        raise UnparseableError(
            f"no {fmt.tool_name} tool call in the answer (stop_reason={stop_reason})",
            raw_output=raw_output,
        )

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The SDK client, shared with the batch API."""
        return self._client

    def provider_batch_api(self) -> ProviderBatchAPI:
        """This judge's provider batch API (asynchronous, half price)."""
        return AnthropicBatchAPI(self)

    async def aclose(self) -> None:
        await self._client.close()


def _tool(fmt: AnswerFormat[Any]) -> dict[str, Any]:
    return {"name": fmt.tool_name, "description": fmt.description, "input_schema": fmt.schema}


def cached_preamble_tokens(config: JudgeConfig) -> int:
    """Estimated tokens of the verdict preamble that calls with ``config`` cache, 0 if none.

    The preamble is the verdict tool and the template's system text; it is
    cached only when :func:`judges.backends._caching.cacheable` says it is
    long enough for the model.
    """
    if config.provider != "anthropic":
        return 0
    tools = [_tool(VERDICT_FORMAT)] if config.output == "structured" else []
    system = get_template(config.template).system
    if not cacheable(config.model, system, tools):
        return 0
    return preamble_tokens(system, tools)


@dataclass(frozen=True, slots=True)
class Reply:
    """What a judge reads of one Messages reply.

    ``blocks`` are the content blocks as the SDK's models dump them (their
    JSON is the stored raw output); ``id`` and ``model`` go on the call's span.
    """

    id: str | None
    model: str | None
    stop_reason: str | None
    blocks: list[dict[str, Any]]
    usage: Usage

    def raw_output(self) -> str:
        return json.dumps(self.blocks, ensure_ascii=False)

    @classmethod
    def of_message(cls, message: Any) -> Reply:
        """From the SDK's ``Message`` (a batch result, or a reply of an unusual shape)."""
        blocks = [block.model_dump(mode="json") for block in message.content]
        return cls(message.id, message.model, message.stop_reason, blocks, _usage(message.usage))

    @classmethod
    def of_body(cls, body: bytes) -> Reply | None:
        """From the reply's JSON body; None unless it has the documented fields and types."""
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        content, usage = data.get("content"), data.get("usage")
        if not (isinstance(content, list) and isinstance(usage, dict)):
            return None
        tokens = [usage.get(name) for name in _TOKEN_FIELDS]
        if not all(isinstance(count, int) or count is None for count in tokens):
            return None
        input_tokens, output_tokens, cache_read, cache_write = tokens
        if input_tokens is None or output_tokens is None:
            return None
        texts = [data.get(name) for name in ("id", "model", "stop_reason")]
        if not all(isinstance(text, str) or text is None for text in texts):
            return None
        blocks = [block for block in map(_block, content) if block is not None]
        if len(blocks) != len(content):
            return None
        reply_id, model, stop_reason = texts
        usage_ = Usage(input_tokens, output_tokens, cache_read or 0, cache_write or 0)
        return cls(reply_id, model, stop_reason, blocks, usage_)


# Usage's token counts, in the order of judges.types.Usage's fields.
_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def _block(value: object) -> dict[str, Any] | None:
    """One content block as the SDK's model of it dumps (defaults included), or None.

    The SDK's own constructor for the block, as it builds ``Message.content``;
    None for a value no model matches (the SDK then parses the whole reply).
    """
    if _construct_block is None:
        return None
    block = _construct_block(type_=ContentBlock, value=value)
    if not isinstance(block, anthropic.BaseModel):
        return None
    dumped: dict[str, Any] = block.model_dump(mode="json")
    return dumped


def _usage(usage: Any) -> Usage:
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=getattr(usage, "cache_read_input_tokens", None) or 0,
        cache_write_tokens=getattr(usage, "cache_creation_input_tokens", None) or 0,
    )


class AnthropicBatchTransport(BatchTransport):
    """Message Batches: up to 100,000 requests a batch; results stream as JSONL."""

    max_requests = 100_000
    max_bytes = 250_000_000  # the documented limit is 256 MB

    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        self._batches = client.messages.batches

    def request_bytes(self, request: BatchRequest) -> int:
        # ASCII-escaped JSON is never shorter than the UTF-8 the SDK sends; +1 for the comma.
        return len(json.dumps({"custom_id": request.custom_id, "params": request.body})) + 1

    async def submit(self, requests: Sequence[BatchRequest]) -> str:
        body: Any = [{"custom_id": r.custom_id, "params": r.body} for r in requests]
        try:
            batch = await self._batches.create(requests=body)
        except anthropic.AnthropicError as exc:
            raise translate(exc, anthropic, "anthropic") from exc
        return str(batch.id)

    async def state(self, batch_id: str) -> BatchState:
        try:
            batch = await self._batches.retrieve(batch_id)
        except anthropic.AnthropicError as exc:
            raise translate(exc, anthropic, "anthropic") from exc
        counts = batch.request_counts.model_dump()
        # No whole-batch failure here: every request of an ended batch has its
        # own result (a cancelled or expired batch's unfinished ones are judged live).
        return BatchState(batch.processing_status == "ended", batch.processing_status, counts)

    async def outcomes(self, batch_id: str) -> AsyncIterator[BatchOutcome]:
        try:
            stream = await self._batches.results(batch_id)
            async for line in stream:
                yield _outcome(line.custom_id, line.result)
        except anthropic.AnthropicError as exc:
            raise translate(exc, anthropic, "anthropic") from exc

    async def cancel(self, batch_id: str) -> None:
        try:
            await self._batches.cancel(batch_id)
        except anthropic.AnthropicError as exc:
            raise translate(exc, anthropic, "anthropic") from exc


def _outcome(custom_id: str, result: Any) -> BatchOutcome:
    kind = ResultKind(result.type)
    if kind is ResultKind.SUCCEEDED:
        return BatchOutcome(custom_id, kind, payload=result.message)
    if kind is ResultKind.ERRORED:
        return BatchOutcome(custom_id, kind, error=_anthropic_error(result.error))
    return BatchOutcome(custom_id, kind)


class AnthropicBatchAPI(ProviderBatchAPI):
    """A judge's verdict requests through :class:`AnthropicBatchTransport`."""

    max_requests = AnthropicBatchTransport.max_requests
    max_bytes = AnthropicBatchTransport.max_bytes

    def __init__(self, judge: AnthropicJudge) -> None:
        super().__init__(judge, AnthropicBatchTransport(judge.client))
        self._judge = judge

    def pair_request(self, custom_id: str, shown: ShownPair) -> BatchRequest:
        template = get_template(self.judge.config.template)
        system, user = template.render(shown)
        body = self._judge.message_params(system, user, VERDICT_FORMAT, template.shots(shown))
        return BatchRequest(custom_id, body)

    def parse(self, payload: Any) -> RawAnswer:
        return RawAnswer(*self._judge.answer_from_message(VERDICT_FORMAT, payload))


def _anthropic_error(error: Any) -> JudgeError:
    """An errored request's error in our classes: server trouble is transient, the rest final."""
    detail = getattr(error, "error", None)
    kind = str(getattr(detail, "type", "api_error"))
    message = f"anthropic batch request {kind}: {getattr(detail, 'message', '')}"
    raw = json.dumps(error.model_dump(mode="json")) if hasattr(error, "model_dump") else None
    if kind == "rate_limit_error":
        return RateLimitedError(message, raw_output=raw)
    if kind in _TRANSIENT_ANTHROPIC:
        return TransientJudgeError(message, raw_output=raw)
    return JudgeConfigError(message, raw_output=raw)
