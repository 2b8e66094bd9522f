"""The policy contract: draw ``n`` samples for a prompt in one request.

A backend implements :meth:`Policy.draw`. One that the provider lets ask
for several samples in one request (OpenAI's ``n``, a local model's
``num_return_sequences``) says so with ``native_n`` and ``max_n``; one that
cannot (Anthropic) draws one sample a request, and :func:`plan_requests`
makes that ``n`` requests. Retries, rate limits and the request slots go
through :func:`draw_with_retries` for every backend alike, and so does
tracing: each attempt is a CLIENT span by the OpenTelemetry GenAI
conventions (:class:`judges.tracing.CallSpan`), a no-op until the service
installs an SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from judges.config import DTYPES, parse_spec
from judges.errors import JudgeConfigError, JudgeError
from judges.limits import RateLimits
from judges.prompts import render_text
from judges.retry import transient_retrying
from judges.tracing import OPERATION, CallSpan
from judges.types import Text, Usage

PROMPT_OVERHEAD_TOKENS = 16


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to sample: ``None`` leaves a parameter to the provider's default."""

    temperature: float | None = 1.0
    top_p: float | None = None
    max_tokens: int = 1024

    def as_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """A fully resolved policy: which model, reached how."""

    provider: str
    model: str
    base_url: str | None = None
    timeout_s: float = 120.0
    max_attempts: int = 4
    rpm: float | None = None
    tpm: float | None = None
    device: str | None = None
    """Local models: ``cuda``, ``cuda:1``, ``mps``, ``cpu``; ``None`` picks the best."""
    dtype: str | None = None
    """Local models: one of :data:`judges.config.DTYPES`."""
    batch_size: int = 8
    """Local models: requests gathered into one ``generate`` call."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Sent as is in every request body (say vLLM's ``top_k`` or ``min_p``)."""

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.model}"

    def provenance(self) -> dict[str, Any]:
        """What is stored with a generation besides the spec: where and how it was sampled."""
        stored: dict[str, Any] = {"base_url": self.base_url, "extra": self.extra}
        if self.provider == "local":
            stored.update(device=self.device, dtype=self.dtype, batch_size=self.batch_size)
        return stored


_OPTIONS = {f.name for f in fields(PolicyConfig)} - {"provider", "model"}


def policy_config(spec: str, **options: Any) -> PolicyConfig:
    """``provider:model`` plus options, each checked; a bad one raises JudgeConfigError."""
    provider, model = parse_spec(spec)
    unknown = set(options) - _OPTIONS
    if unknown:
        raise JudgeConfigError(
            f"unknown policy option(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_OPTIONS))}"
        )
    for key in ("max_attempts", "batch_size"):
        value = options.get(key)
        if key in options and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise JudgeConfigError(f"policy option {key!r} must be a positive integer")
    if options.get("dtype") not in (None, *DTYPES):
        raise JudgeConfigError(f"policy option 'dtype' must be one of {', '.join(DTYPES)}")
    if not isinstance(options.get("extra", {}), dict):
        raise JudgeConfigError("policy option 'extra' must be a mapping")
    return replace(PolicyConfig(provider, model), **options)


@dataclass(frozen=True, slots=True)
class Choice:
    """One sample: its text and why the model stopped (the provider's own word).

    A sample the model refused within a request of several has no text and
    its error instead; the request's other samples stand.
    """

    text: str | None
    finish_reason: str | None
    error_class: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Draw:
    """One request's answer: its samples in order, the usage of the whole request, the model."""

    choices: tuple[Choice, ...]
    usage: Usage
    model: str
    seed: int | None = None
    """The seed the sampler actually used where it differs from the one asked
    (a local model's batch shares one generator); None: the request's."""


class Policy(ABC):
    """A configured policy. Built once per run and shared by all tasks."""

    provider: ClassVar[str]
    native_n: ClassVar[bool] = False
    """Whether one request may return several samples."""
    max_n: ClassVar[int] = 1
    """Samples one request may ask for at most."""
    takes_seed: ClassVar[bool] = True
    """Whether the provider accepts a sampling seed (Anthropic's API has none)."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self.limits = RateLimits(config.rpm, config.tpm)

    @property
    def operation(self) -> str:
        """The GenAI operation a request is: ``chat``, or ``text_completion`` for a plain
        prompt continued (a local model without a chat template, once it is loaded)."""
        return OPERATION

    @abstractmethod
    async def draw(self, prompt: Text, n: int, params: SamplingParams, seed: int | None) -> Draw:
        """Sample ``n`` answers to ``prompt`` (a string, or a conversation sent as is).

        ``n`` is at most :attr:`max_n`. Raises a :class:`judges.errors.JudgeError`
        subclass on any failure, with the usage of a request that was made.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections."""


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """Samples ``first_index`` … ``first_index + n - 1`` of one prompt, in one request."""

    first_index: int
    n: int


def plan_requests(indexes: Sequence[int], policy: Policy) -> list[PlannedRequest]:
    """Group a prompt's sample indexes into requests: runs of consecutive indexes share
    one request up to ``max_n`` where the policy has a native ``n``; else one request each."""
    plans: list[PlannedRequest] = []
    for index in sorted(indexes):
        last = plans[-1] if plans else None
        if (
            policy.native_n
            and last is not None
            and last.first_index + last.n == index
            and last.n < policy.max_n
        ):
            plans[-1] = PlannedRequest(last.first_index, last.n + 1)
        else:
            plans.append(PlannedRequest(index, 1))
    return plans


def request_seed(base: int | None, plan: PlannedRequest, policy: Policy) -> int | None:
    """The seed a request sends: the base seed plus its first sample index (None: no seed)."""
    if base is None or not policy.takes_seed:
        return None
    return base + plan.first_index


def usage_shares(usage: Usage, texts: Sequence[str | None]) -> list[Usage]:
    """One request's usage shared out over its samples, adding up to the request's.

    The prompt was read once: its tokens go to the first sample. Completion
    tokens are shared in proportion to each text's length (largest remainder).
    """
    if not texts:
        return []
    weights = [max(1, len(t or "")) for t in texts]
    total = sum(weights)
    exact = [usage.output_tokens * w / total for w in weights]
    shares = [int(x) for x in exact]
    leftover = usage.output_tokens - sum(shares)
    for i in sorted(range(len(texts)), key=lambda i: shares[i] - exact[i])[:leftover]:
        shares[i] += 1
    first = Usage(
        input_tokens=usage.input_tokens,
        output_tokens=shares[0],
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        truncated_tokens=usage.truncated_tokens,
    )
    return [first, *(Usage(output_tokens=s) for s in shares[1:])]


@dataclass(frozen=True, slots=True)
class PolicyCall:
    """One attempt of a request as it was sent: its failure (None: answered), time, tokens."""

    error_class: str | None
    latency_ms: float
    usage: Usage
    trace_id: str | None = None
    """The trace of the attempt's span (32 hex digits); None when tracing is off."""


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """A request after its retries: the draw, or the final error; every attempt's usage."""

    plan: PlannedRequest
    seed: int | None
    draw: Draw | None
    attempts: int
    latency_ms: float
    usage: Usage
    """Tokens of every attempt (failed ones too): what the request cost."""
    error_class: str | None = None
    error_message: str | None = None
    calls: tuple[PolicyCall, ...] = ()
    """Every attempt sent live, in order (none for a provider batch's result)."""

    @property
    def trace_id(self) -> str | None:
        """The trace of the last attempt, whose answer or failure is stored."""
        return self.calls[-1].trace_id if self.calls else None


def estimate_tokens(prompt: Text, n: int, params: SamplingParams) -> int:
    """A cheap estimate of one request's tokens, for the tokens-per-minute limit."""
    return len(render_text(prompt)) // 4 + PROMPT_OVERHEAD_TOKENS + n * params.max_tokens


async def draw_with_retries(
    policy: Policy,
    prompt: Text,
    plan: PlannedRequest,
    params: SamplingParams,
    seed: int | None,
    *,
    slots: asyncio.Semaphore | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    proceed: Callable[[], bool] = lambda: True,
) -> RequestOutcome | None:
    """Make one request, retrying transient failures (judges.retry), under the rate limits.

    ``slots`` bounds the requests in flight; an attempt holds a slot only
    while its request is out. A final failure is returned, never raised,
    and no text is made up for it. ``proceed`` is asked right before each
    attempt is sent: when it says no (the run is stopping), nothing is sent
    and None is returned.
    """
    calls: list[PolicyCall] = []
    attempts = 0
    latency = 0.0
    try:
        async for attempt in transient_retrying(policy.config.max_attempts, sleep):
            with attempt:
                attempts = attempt.retry_state.attempt_number
                await policy.limits.acquire(estimate_tokens(prompt, plan.n, params))
                async with slots or contextlib.nullcontext():
                    if not proceed():
                        return None
                    span = CallSpan(policy.config.provider, policy.config.model, policy.operation)
                    started = time.perf_counter()
                    try:
                        with span:
                            if span.recording:
                                span.set_attributes(_request_attributes(plan.n, params, seed))
                            try:
                                draw = await policy.draw(prompt, plan.n, params, seed)
                            finally:
                                span.set_operation(policy.operation)
                            _note_draw(span, draw)
                    except JudgeError as exc:
                        latency = (time.perf_counter() - started) * 1000
                        calls.append(PolicyCall(exc.error_class, latency, exc.usage, span.trace_id))
                        raise
                    latency = (time.perf_counter() - started) * 1000
                    calls.append(PolicyCall(None, latency, draw.usage, span.trace_id))
    except JudgeError as exc:
        return RequestOutcome(
            plan,
            seed,
            None,
            attempts,
            latency,
            _sum([c.usage for c in calls]),
            exc.error_class,
            exc.message,
            tuple(calls),
        )
    usage = _sum([c.usage for c in calls])
    return RequestOutcome(plan, seed, draw, attempts, latency, usage, calls=tuple(calls))


def _request_attributes(n: int, params: SamplingParams, seed: int | None) -> dict[str, Any]:
    """The GenAI request attributes of a sampling request (none left unset)."""
    attributes: dict[str, Any] = {"gen_ai.request.max_tokens": params.max_tokens}
    if n != 1:
        attributes["gen_ai.request.choice.count"] = n
    if params.temperature is not None:
        attributes["gen_ai.request.temperature"] = params.temperature
    if params.top_p is not None:
        attributes["gen_ai.request.top_p"] = params.top_p
    if seed is not None:
        attributes["gen_ai.request.seed"] = seed
    return attributes


def _note_draw(span: CallSpan, draw: Draw) -> None:
    """A draw's usage, model and finish reasons on its span (never its text)."""
    if not span.recording:
        return
    span.set_usage(draw.usage)
    attributes: dict[str, Any] = {
        "gen_ai.response.finish_reasons": [c.finish_reason or "" for c in draw.choices]
    }
    if draw.model:
        attributes["gen_ai.response.model"] = draw.model
    span.set_attributes(attributes)


def _sum(usages: list[Usage]) -> Usage:
    return Usage(
        input_tokens=sum(u.input_tokens for u in usages),
        output_tokens=sum(u.output_tokens for u in usages),
        cache_read_tokens=sum(u.cache_read_tokens for u in usages),
        cache_write_tokens=sum(u.cache_write_tokens for u in usages),
        truncated_tokens=sum(u.truncated_tokens for u in usages),
    )
