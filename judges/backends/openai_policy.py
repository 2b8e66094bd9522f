"""``openai:<model>`` policies: chat completions with the API's native ``n``.

One request asks for up to :data:`MAX_N` samples (``n``), so a prompt's
samples cost one request and one read of the prompt. A ``base_url`` (or
``OPENAI_BASE_URL``) points it at any compatible server; vLLM serving the
checkpoint being trained is the usual one, and honours ``n`` and ``seed``.
"""

from __future__ import annotations

import os
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from judges.backends._sdk_errors import translate
from judges.backends.openai import OpenAIBatchTransport
from judges.errors import MissingCredentialsError, RefusedError, UnparseableError
from judges.policies.base import Choice, Draw, Policy, PolicyConfig, SamplingParams
from judges.prompts import as_messages
from judges.tracing import note_response
from judges.types import Text, Usage

# The API's documented bound on ``n``.
MAX_N = 128
_PLACEHOLDER_KEY_FOR_SELF_HOSTED = "not-needed"


class OpenAIPolicy(Policy):
    """Reads ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` (a self-hosted server needs no key)."""

    provider = "openai"
    native_n = True
    max_n = MAX_N

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__(config)
        api_key = os.environ.get("OPENAI_API_KEY")
        if not api_key:
            if config.base_url is None and not os.environ.get("OPENAI_BASE_URL"):
                raise MissingCredentialsError("openai", "OPENAI_API_KEY")
            api_key = _PLACEHOLDER_KEY_FOR_SELF_HOSTED
        # max_retries=0: judges.retry is the only retry policy, so attempts don't multiply.
        self._client = openai.AsyncOpenAI(
            http_client=openai.DefaultAioHttpClient(),
            api_key=api_key,
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout_s,
        )

    def body(
        self, prompt: Text, n: int, params: SamplingParams, seed: int | None
    ) -> dict[str, Any]:
        """The chat completion body of one request for ``n`` samples."""
        body: dict[str, Any] = {
            **self.config.extra,
            "model": self.config.model,
            "messages": [{"role": m.role, "content": m.content} for m in as_messages(prompt)],
            "n": n,
            "max_tokens": params.max_tokens,
        }
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if seed is not None:
            body["seed"] = seed
        return body

    async def draw(self, prompt: Text, n: int, params: SamplingParams, seed: int | None) -> Draw:
        try:
            completion = note_response(
                await self._client.chat.completions.create(**self.body(prompt, n, params, seed))
            )
        except openai.OpenAIError as exc:
            raise translate(exc, openai, self.provider) from exc
        return draw_from_completion(completion, n)

    def batch_transport(self) -> OpenAIBatchTransport:
        """The Batch API over this policy's client."""
        return OpenAIBatchTransport(self._client)

    def batch_body(
        self, prompt: Text, n: int, params: SamplingParams, seed: int | None
    ) -> dict[str, Any]:
        """One batch line's ``body``: the live request's, ``n`` and all."""
        return self.body(prompt, n, params, seed)

    def draw_from_batch(self, payload: Any, n: int) -> Draw:
        return draw_from_completion(ChatCompletion.model_validate(payload), n)

    async def aclose(self) -> None:
        await self._client.close()


def draw_from_completion(completion: Any, n: int) -> Draw:
    """The samples of a chat completion, in choice order; a refusal or a short answer raises."""
    usage = _usage(completion.usage)
    choices = sorted(completion.choices or [], key=lambda c: c.index)
    if len(choices) != n:
        raise UnparseableError(
            f"asked for {n} samples, the server returned {len(choices)} choices", usage=usage
        )
    drawn = []
    for choice in choices:
        message = choice.message
        if message.refusal:
            refused = RefusedError(f"the model refused: {message.refusal}")
            drawn.append(Choice(None, choice.finish_reason, refused.error_class, refused.message))
        else:
            drawn.append(Choice(message.content or "", choice.finish_reason))
    return Draw(tuple(drawn), usage, str(completion.model))


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cache_read_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
    )
