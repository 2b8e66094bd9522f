"""OpenAI and OpenAI-compatible judges through the official async SDK.

Verdicts, ratings, critiques and revisions come through ``response_format``
with a strict JSON schema; with ``logprobs`` on, the alternatives at the
verdict token give a soft label for a comparison. Generation is a plain
chat completion.
A ``base_url`` (option or ``OPENAI_BASE_URL``) points it at any compatible
server: vLLM, Ollama, llama.cpp, TGI.

:class:`OpenAIBatchAPI` (the Batch API) sends the judge's own request bodies
and reads results with its own parser, so a batch verdict is made exactly
like a live one.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import openai
from openai.types.chat import ChatCompletion

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
from judges.parsing import probabilities_from_top_logprobs, winner_token_index
from judges.provider_batch import (
    BatchError,
    BatchOutcome,
    BatchRequest,
    BatchState,
    BatchTransport,
    ProviderBatchAPI,
    ResultKind,
)
from judges.templates import get_template, prior_turns
from judges.tracing import note_response
from judges.types import PairwiseAnswer, PositionProbabilities, ShownPair, Text, Usage

TOP_LOGPROBS = 5
# Self-hosted compatible servers usually ignore the key, but the SDK insists on one.
_PLACEHOLDER_KEY_FOR_SELF_HOSTED = "not-needed"
_OPENAI_ENDPOINT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
_OPENAI_ENDED = {"completed", "failed", "expired", "cancelled"}
# Per-request error codes of OpenAI's error file that mean "not attempted".
_OPENAI_NOT_RUN = {"batch_expired": ResultKind.EXPIRED, "batch_cancelled": ResultKind.CANCELED}


class OpenAIJudge(Judge):
    """``openai:<model>``. Reads ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``."""

    provider = "openai"
    supports_logprobs = True

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__(config)
        api_key = os.environ.get("OPENAI_API_KEY")
        if not api_key:
            if config.base_url is None:
                raise MissingCredentialsError("openai", "OPENAI_API_KEY")
            api_key = _PLACEHOLDER_KEY_FOR_SELF_HOSTED
        # max_retries=0: judges.retry is the only retry policy, so attempts don't multiply.
        # The SDK's aiohttp transport: with hundreds of calls in flight it costs
        # less per call than the default httpx one.
        self._client = openai.AsyncOpenAI(
            http_client=openai.DefaultAioHttpClient(),
            api_key=api_key,
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout_s,
        )

    async def answer(self, shown: ShownPair, question: str | None = None) -> RawAnswer:
        template = get_template(self.config.template)
        system, user = template.render(shown, question)
        completion = await self._send(self.verdict_body(system, user, template.shots(shown)))
        return self.verdict_from_completion(completion)

    def verdict_body(
        self, system: str, user: str, shots: Sequence[tuple[str, str]] = ()
    ) -> dict[str, Any]:
        """The chat completion body for one verdict call, as live and batch calls send it.

        ``shots`` are worked examples, (user, assistant) turns before the request.
        """
        request = self._request(system, user, VERDICT_FORMAT, logprobs=self.config.logprobs)
        messages = request["messages"]
        request["messages"] = [messages[0], *prior_turns(shots), *messages[1:]]
        return self._body(request)

    def verdict_from_completion(self, completion: Any) -> RawAnswer:
        """Parse one chat completion (live, or a batch's output line) into a verdict."""
        answer, raw_output, usage, choice = self._answer_from_completion(completion, VERDICT_FORMAT)
        if self.config.output == "structured":
            probabilities = _verdict_probabilities(choice, raw_output)
            if probabilities is not None:
                answer = PairwiseAnswer(answer.position, answer.rationale, probabilities)
        return RawAnswer(answer, raw_output, usage)

    async def ask(
        self, system: str, user: str, fmt: AnswerFormat[AnswerT]
    ) -> tuple[AnswerT, str, Usage]:
        """Make one call with ``fmt``'s strict JSON schema (or asking for its text format)."""
        # No logprobs: only a verdict's are read, so elsewhere they would only cost.
        answer, raw_output, usage, _ = await self._structured(system, user, fmt, logprobs=False)
        return answer, raw_output, usage

    async def generate(self, prompt: Text) -> RawGenerated:
        """Send the conversation as is; the message content is the response."""
        system, turns = GENERATE_V1.render(prompt)
        messages = [{"role": m.role, "content": m.content} for m in turns]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        choice, usage = await self._complete({"messages": messages})
        raw_output = choice.message.content or choice.message.refusal or ""
        try:
            _check_finished(choice, raw_output)
            answer = parse_generated(choice.message.content or "", raw_output)
        except JudgeError as exc:
            exc.usage = usage
            raise
        return RawGenerated(answer, raw_output, usage)

    async def _structured(
        self, system: str, user: str, fmt: AnswerFormat[AnswerT], *, logprobs: bool
    ) -> tuple[AnswerT, str, Usage, Any]:
        """Make one call asking for ``fmt``; return the answer, raw output, usage and choice."""
        completion = await self._send(
            self._body(self._request(system, user, fmt, logprobs=logprobs))
        )
        return self._answer_from_completion(completion, fmt)

    def _answer_from_completion(
        self, completion: Any, fmt: AnswerFormat[AnswerT]
    ) -> tuple[AnswerT, str, Usage, Any]:
        choice, usage = _first_choice(completion)
        raw_output = choice.message.content or choice.message.refusal or ""
        try:
            _check_finished(choice, raw_output)
            if self.config.output == "text":
                answer = fmt.parse_text(raw_output)
            else:
                answer = fmt.parse_json(raw_output)
        except JudgeError as exc:
            exc.usage = usage  # a failed call still cost tokens
            raise
        return answer, raw_output, usage, choice

    async def _complete(self, request: dict[str, Any]) -> tuple[Any, Usage]:
        """Send one chat completion request: its first choice and the usage."""
        return _first_choice(await self._send(self._body(request)))

    def _body(self, request: dict[str, Any]) -> dict[str, Any]:
        body = {"model": self.config.model, "max_tokens": self.config.max_tokens, **request}
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        return body

    async def _send(self, body: dict[str, Any]) -> Any:
        try:
            return note_response(await self._client.chat.completions.create(**body))
        except openai.OpenAIError as exc:
            raise translate(exc, openai, self.provider) from exc

    def _request(
        self, system: str, user: str, fmt: AnswerFormat[AnswerT], *, logprobs: bool
    ) -> dict[str, Any]:
        request: dict[str, Any] = {}
        if self.config.output == "structured":
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": fmt.schema_name, "strict": True, "schema": fmt.schema},
            }
        else:
            user = f"{user}\n\n{fmt.text_instructions}"
        request["messages"] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        if logprobs:
            request["logprobs"] = True
            request["top_logprobs"] = TOP_LOGPROBS
        return request

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client, shared with the batch API."""
        return self._client

    def provider_batch_api(self) -> ProviderBatchAPI:
        """This judge's provider batch API (asynchronous, half price)."""
        return OpenAIBatchAPI(self)

    async def aclose(self) -> None:
        await self._client.close()


def _check_finished(choice: Any, raw_output: str) -> None:
    """Refuse a refusal and a reply cut off at max_tokens, whatever was asked."""
    if choice.message.refusal:
        raise RefusedError(f"the model refused: {choice.message.refusal}", raw_output=raw_output)
    if choice.finish_reason == "length":
        raise UnparseableError("the answer was cut off at max_tokens", raw_output=raw_output)


def _first_choice(completion: Any) -> tuple[Any, Usage]:
    usage = _usage(completion.usage)
    if not completion.choices:
        raise UnparseableError("the answer has no choices", usage=usage)
    return completion.choices[0], usage


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cache_read_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
    )


def _verdict_probabilities(choice: Any, content: str) -> PositionProbabilities | None:
    logprobs = getattr(choice, "logprobs", None)
    tokens = getattr(logprobs, "content", None) if logprobs else None
    if not tokens:
        return None
    index = winner_token_index([t.token for t in tokens], content)
    if index is None:
        return None
    entry = tokens[index]
    alternatives = [(alt.token, alt.logprob) for alt in (entry.top_logprobs or [])]
    return probabilities_from_top_logprobs(alternatives or [(entry.token, entry.logprob)])


class OpenAIBatchTransport(BatchTransport):
    """The Batch API: a JSONL file of up to 50,000 requests; output and error files back."""

    max_requests = 50_000
    max_bytes = 190_000_000  # the documented limit is 200 MB

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client

    def request_bytes(self, request: BatchRequest) -> int:
        return len(_openai_line(request))

    async def submit(self, requests: Sequence[BatchRequest]) -> str:
        data = b"".join(_openai_line(r) for r in requests)
        try:
            uploaded = await self._client.files.create(
                file=("referee-batch.jsonl", data, "application/jsonl"), purpose="batch"
            )
            batch = await self._client.batches.create(
                input_file_id=uploaded.id, endpoint=_OPENAI_ENDPOINT, completion_window="24h"
            )
        except openai.OpenAIError as exc:
            raise translate(exc, openai, "openai") from exc
        return str(batch.id)

    async def state(self, batch_id: str) -> BatchState:
        try:
            batch = await self._client.batches.retrieve(batch_id)
        except openai.OpenAIError as exc:
            raise translate(exc, openai, "openai") from exc
        counts = batch.request_counts.model_dump() if batch.request_counts else {}
        failed = batch.status == "failed"
        listed = (batch.errors.data if batch.errors else None) or []
        errors = tuple(BatchError(e.code, e.message or "no message", e.line) for e in listed)
        return BatchState(batch.status in _OPENAI_ENDED, batch.status, counts, failed, errors)

    async def outcomes(self, batch_id: str) -> AsyncIterator[BatchOutcome]:
        try:
            batch = await self._client.batches.retrieve(batch_id)
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id is None:
                    continue
                content = await self._client.files.content(file_id)
                for line in content.text.splitlines():
                    if line.strip():
                        yield _outcome(json.loads(line))
        except openai.OpenAIError as exc:
            raise translate(exc, openai, "openai") from exc

    async def cancel(self, batch_id: str) -> None:
        try:
            await self._client.batches.cancel(batch_id)
        except openai.OpenAIError as exc:
            raise translate(exc, openai, "openai") from exc


def _outcome(line: dict[str, Any]) -> BatchOutcome:
    """One line of an output or error file; a succeeded one carries its chat completion."""
    custom_id = str(line.get("custom_id"))
    error = line.get("error") or {}
    not_run = _OPENAI_NOT_RUN.get(str(error.get("code")))
    if not_run is not None:
        return BatchOutcome(custom_id, not_run)
    response = line.get("response") or {}
    status = int(response.get("status_code") or 0)
    body = response.get("body")
    if status != 200 or not isinstance(body, dict):
        return BatchOutcome(custom_id, ResultKind.ERRORED, error=_openai_error(status, line))
    return BatchOutcome(custom_id, ResultKind.SUCCEEDED, payload=body)


class OpenAIBatchAPI(ProviderBatchAPI):
    """A judge's verdict requests through :class:`OpenAIBatchTransport`."""

    max_requests = OpenAIBatchTransport.max_requests
    max_bytes = OpenAIBatchTransport.max_bytes

    def __init__(self, judge: OpenAIJudge) -> None:
        super().__init__(judge, OpenAIBatchTransport(judge.client))
        self._judge = judge

    def pair_request(self, custom_id: str, shown: ShownPair) -> BatchRequest:
        template = get_template(self.judge.config.template)
        system, user = template.render(shown)
        body = self._judge.verdict_body(system, user, template.shots(shown))
        return BatchRequest(custom_id, body)

    def parse(self, payload: Any) -> RawAnswer:
        return self._judge.verdict_from_completion(ChatCompletion.model_validate(payload))


def _openai_line(request: BatchRequest) -> bytes:
    """One line of the input file: ``{custom_id, method, url, body}``, UTF-8, newline ended."""
    line = {
        "custom_id": request.custom_id,
        "method": "POST",
        "url": _OPENAI_ENDPOINT,
        "body": request.body,
    }
    return (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")


def _openai_error(status: int, line: dict[str, Any]) -> JudgeError:
    raw = json.dumps(line, ensure_ascii=False)
    message = f"openai batch request failed ({status or line.get('error')})"
    if status == 429:
        return RateLimitedError(message, raw_output=raw)
    if status >= 500 or status == 0:
        return TransientJudgeError(message, raw_output=raw)
    return JudgeConfigError(message, raw_output=raw)
