"""The Anthropic Message Batches API and the OpenAI Batch API, through the official SDKs.

Bodies come from the judges' own request builders and results go through
their own parsers, so a batch verdict is made exactly like a live one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import anthropic
import openai
from openai.types.chat import ChatCompletion

from judges.backends._sdk_errors import translate
from judges.base import RawAnswer
from judges.errors import JudgeConfigError, JudgeError, RateLimitedError, TransientJudgeError
from judges.formats import VERDICT_FORMAT
from judges.prompts import get_template
from judges.provider_batch import (
    BatchError,
    BatchRequest,
    BatchResult,
    BatchState,
    ProviderBatchAPI,
    ResultKind,
)
from judges.types import ShownPair

if TYPE_CHECKING:
    from judges.backends.anthropic import AnthropicJudge
    from judges.backends.openai import OpenAIJudge

# Error types a provider may give one request that another try could get past.
_TRANSIENT_ANTHROPIC = {"api_error", "overloaded_error", "timeout_error"}
_OPENAI_ENDPOINT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
_OPENAI_ENDED = {"completed", "failed", "expired", "cancelled"}
# Per-request error codes of OpenAI's error file that mean "not attempted".
_OPENAI_NOT_RUN = {"batch_expired": ResultKind.EXPIRED, "batch_cancelled": ResultKind.CANCELED}


class AnthropicBatchAPI(ProviderBatchAPI):
    """Message Batches: up to 100,000 requests a batch; results stream as JSONL."""

    max_requests = 100_000
    max_bytes = 250_000_000  # the documented limit is 256 MB

    def __init__(self, judge: AnthropicJudge) -> None:
        super().__init__(judge)
        self._judge = judge
        self._batches = judge.client.messages.batches

    def pair_request(self, custom_id: str, shown: ShownPair) -> BatchRequest:
        system, user = get_template(self.judge.config.template).render(shown)
        return BatchRequest(custom_id, self._judge.message_params(system, user, VERDICT_FORMAT))

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

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        try:
            stream = await self._batches.results(batch_id)
            async for line in stream:
                yield self._result(line.custom_id, line.result)
        except anthropic.AnthropicError as exc:
            raise translate(exc, anthropic, "anthropic") from exc

    def _result(self, custom_id: str, result: Any) -> BatchResult:
        kind = ResultKind(result.type)
        if kind is ResultKind.SUCCEEDED:
            try:
                answer = self._judge.answer_from_message(VERDICT_FORMAT, result.message)
            except JudgeError as exc:
                return BatchResult(custom_id, kind, error=exc)
            return BatchResult(custom_id, kind, raw=RawAnswer(*answer))
        if kind is ResultKind.ERRORED:
            return BatchResult(custom_id, kind, error=_anthropic_error(result.error))
        return BatchResult(custom_id, kind)

    async def cancel(self, batch_id: str) -> None:
        try:
            await self._batches.cancel(batch_id)
        except anthropic.AnthropicError as exc:
            raise translate(exc, anthropic, "anthropic") from exc


class OpenAIBatchAPI(ProviderBatchAPI):
    """The Batch API: a JSONL file of up to 50,000 requests; output and error files back."""

    max_requests = 50_000
    max_bytes = 190_000_000  # the documented limit is 200 MB

    def __init__(self, judge: OpenAIJudge) -> None:
        super().__init__(judge)
        self._judge = judge
        self._client = judge.client

    def pair_request(self, custom_id: str, shown: ShownPair) -> BatchRequest:
        system, user = get_template(self.judge.config.template).render(shown)
        return BatchRequest(custom_id, self._judge.verdict_body(system, user))

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

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        try:
            batch = await self._client.batches.retrieve(batch_id)
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id is None:
                    continue
                content = await self._client.files.content(file_id)
                for line in content.text.splitlines():
                    if line.strip():
                        yield self._result(json.loads(line))
        except openai.OpenAIError as exc:
            raise translate(exc, openai, "openai") from exc

    def _result(self, line: dict[str, Any]) -> BatchResult:
        custom_id = str(line.get("custom_id"))
        error = line.get("error") or {}
        not_run = _OPENAI_NOT_RUN.get(str(error.get("code")))
        if not_run is not None:
            return BatchResult(custom_id, not_run)
        response = line.get("response") or {}
        status = int(response.get("status_code") or 0)
        body = response.get("body")
        if status != 200 or not isinstance(body, dict):
            return BatchResult(custom_id, ResultKind.ERRORED, error=_openai_error(status, line))
        try:
            raw = self._judge.verdict_from_completion(ChatCompletion.model_validate(body))
        except JudgeError as exc:
            return BatchResult(custom_id, ResultKind.SUCCEEDED, error=exc)
        return BatchResult(custom_id, ResultKind.SUCCEEDED, raw=raw)

    async def cancel(self, batch_id: str) -> None:
        try:
            await self._client.batches.cancel(batch_id)
        except openai.OpenAIError as exc:
            raise translate(exc, openai, "openai") from exc


def _openai_line(request: BatchRequest) -> bytes:
    """One line of the input file: ``{custom_id, method, url, body}``, UTF-8, newline ended."""
    line = {
        "custom_id": request.custom_id,
        "method": "POST",
        "url": _OPENAI_ENDPOINT,
        "body": request.body,
    }
    return (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")


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


def _openai_error(status: int, line: dict[str, Any]) -> JudgeError:
    raw = json.dumps(line, ensure_ascii=False)
    message = f"openai batch request failed ({status or line.get('error')})"
    if status == 429:
        return RateLimitedError(message, raw_output=raw)
    if status >= 500 or status == 0:
        return TransientJudgeError(message, raw_output=raw)
    return JudgeConfigError(message, raw_output=raw)
