"""``anthropic:<model>`` policies: the Messages API, one sample a request.

The API has no ``n`` and no seed, so ``n`` samples are ``n`` requests
(:func:`judges.policies.base.plan_requests` plans them) and a sample's seed
is stored as none.
"""

from __future__ import annotations

import os
from typing import Any

import anthropic

from judges.backends._sdk_errors import translate
from judges.backends.anthropic import AnthropicBatchTransport
from judges.errors import JudgeConfigError, MissingCredentialsError, RefusedError
from judges.policies.base import Choice, Draw, Policy, PolicyConfig, SamplingParams
from judges.prompts import as_messages
from judges.tracing import note_response
from judges.types import Text, Usage


class AnthropicPolicy(Policy):
    """Reads ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL``."""

    provider = "anthropic"
    takes_seed = False

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__(config)
        api_key = os.environ.get("ANTHROPIC_API_KEY")
        if not api_key:
            raise MissingCredentialsError("anthropic", "ANTHROPIC_API_KEY")
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

    def params(self, prompt: Text, params: SamplingParams) -> dict[str, Any]:
        """The Messages request body of one sample (system turns go to ``system``)."""
        turns = as_messages(prompt)
        system = "\n\n".join(m.content for m in turns if m.role == "system")
        body: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": params.max_tokens,
            "messages": [
                {"role": m.role, "content": m.content} for m in turns if m.role != "system"
            ],
        }
        if system:
            body["system"] = system
        # Sampling options go in the body: not typed parameters in every SDK release.
        extra = dict(self.config.extra)
        if params.temperature is not None:
            extra["temperature"] = params.temperature
        if params.top_p is not None:
            extra["top_p"] = params.top_p
        if extra:
            body["extra_body"] = extra
        return body

    async def draw(self, prompt: Text, n: int, params: SamplingParams, seed: int | None) -> Draw:
        if n != 1:
            raise JudgeConfigError("anthropic policies draw one sample a request")
        try:
            message = note_response(
                await self._client.messages.create(**self.params(prompt, params))
            )
        except anthropic.AnthropicError as exc:
            raise translate(exc, anthropic, self.provider) from exc
        return draw_from_message(message)

    def batch_transport(self) -> AnthropicBatchTransport:
        """Message Batches over this policy's client."""
        return AnthropicBatchTransport(self._client)

    def batch_body(
        self, prompt: Text, n: int, params: SamplingParams, seed: int | None
    ) -> dict[str, Any]:
        """One batch request's ``params``: the live body, the sampling options in it."""
        if n != 1:
            raise JudgeConfigError("anthropic policies draw one sample a request")
        body = self.params(prompt, params)
        return {**body.pop("extra_body", {}), **body}

    def draw_from_batch(self, payload: Any, n: int) -> Draw:
        return draw_from_message(payload)

    async def aclose(self) -> None:
        await self._client.close()


def draw_from_message(message: Any) -> Draw:
    """A message's one sample; a refusal raises (with the usage of the request)."""
    usage = Usage(
        input_tokens=message.usage.input_tokens,
        output_tokens=message.usage.output_tokens,
        cache_read_tokens=getattr(message.usage, "cache_read_input_tokens", None) or 0,
        cache_write_tokens=getattr(message.usage, "cache_creation_input_tokens", None) or 0,
    )
    if message.stop_reason == "refusal":
        raise RefusedError("the model refused to answer", usage=usage)
    text = "".join(getattr(b, "text", "") for b in message.content if b.type == "text")
    return Draw((Choice(text, message.stop_reason),), usage, str(message.model))
