"""Anthropic judges through the official async SDK; the verdict comes as a forced tool call."""

from __future__ import annotations

import json
import os
from typing import Any

import anthropic

from judges.backends._sdk_errors import translate
from judges.base import Judge, RawAnswer
from judges.config import JudgeConfig
from judges.errors import JudgeError, MissingCredentialsError, RefusedError, UnparseableError
from judges.parsing import TEXT_FORMAT_INSTRUCTIONS, parse_verdict_object, parse_verdict_text
from judges.prompts import VERDICT_SCHEMA, VERDICT_TOOL_NAME, get_template
from judges.types import PairwiseAnswer, ShownPair, Usage

_VERDICT_TOOL: dict[str, Any] = {
    "name": VERDICT_TOOL_NAME,
    "description": "Record which response is better.",
    "input_schema": VERDICT_SCHEMA,
}


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
        )

    async def answer(self, shown: ShownPair, question: str | None = None) -> RawAnswer:
        system, user = get_template(self.config.template).render(shown, question)
        request: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "system": system,
        }
        if self.config.output == "structured":
            request["tools"] = [_VERDICT_TOOL]
            request["tool_choice"] = {"type": "tool", "name": VERDICT_TOOL_NAME}
        else:
            user = f"{user}\n\n{TEXT_FORMAT_INSTRUCTIONS}"
        request["messages"] = [{"role": "user", "content": user}]
        if self.config.temperature is not None:
            # Not a typed parameter in every SDK release; the API accepts it in the body.
            request["extra_body"] = {"temperature": self.config.temperature}
        try:
            message = await self._client.messages.create(**request)
        except anthropic.AnthropicError as exc:
            raise translate(exc, anthropic, self.provider) from exc
        return self._parse(message)

    def _parse(self, message: Any) -> RawAnswer:
        usage = Usage(
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            cache_read_tokens=getattr(message.usage, "cache_read_input_tokens", None) or 0,
            cache_write_tokens=getattr(message.usage, "cache_creation_input_tokens", None) or 0,
        )
        blocks = [block.model_dump(mode="json") for block in message.content]
        raw_output = json.dumps(blocks, ensure_ascii=False)
        try:
            answer = self._answer_from_blocks(blocks, raw_output, message.stop_reason)
        except JudgeError as exc:
            exc.usage = usage  # a failed call still cost tokens
            raise
        return RawAnswer(answer, raw_output, usage)

    def _answer_from_blocks(
        self, blocks: list[dict[str, Any]], raw_output: str, stop_reason: str | None
    ) -> PairwiseAnswer:
        if stop_reason == "refusal":
            raise RefusedError("the model refused to judge", raw_output=raw_output)
        if self.config.output == "text":
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            return parse_verdict_text(text)
        for block in blocks:
            if block.get("type") == "tool_use" and block.get("name") == VERDICT_TOOL_NAME:
                return parse_verdict_object(block.get("input"), raw_output)
        raise UnparseableError(
            f"no {VERDICT_TOOL_NAME} tool call in the answer (stop_reason={stop_reason})",
            raw_output=raw_output,
        )

    async def aclose(self) -> None:
        await self._client.close()
