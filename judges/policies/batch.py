"""Policies through the providers' batch APIs: the same requests, asynchronously, at half price.

A policy whose provider has a batch API (:class:`SupportsPolicyBatch`)
builds each request body exactly as its live ``draw`` sends it and parses a
succeeded answer with the same code; submitting, polling and reading the
results go through the provider's :class:`~judges.provider_batch.BatchTransport`,
shared with the judges' batch mode. A request's ``custom_id`` names its
prompt, first sample index and ``n``, so results in any order join back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from judges.errors import JudgeConfigError, JudgeError
from judges.policies.base import Draw, PlannedRequest, Policy, SamplingParams
from judges.provider_batch import BatchRequest, BatchTransport, ResultKind
from judges.types import Text


@runtime_checkable
class SupportsPolicyBatch(Protocol):
    """A policy whose provider has a batch API."""

    def batch_transport(self) -> BatchTransport:
        """The provider's batch endpoints over this policy's client."""

    def batch_body(
        self, prompt: Text, n: int, params: SamplingParams, seed: int | None
    ) -> dict[str, Any]:
        """The body the live request for ``n`` samples sends."""

    def draw_from_batch(self, payload: Any, n: int) -> Draw:
        """A succeeded request's answer as the live path parses it (or raises)."""


@dataclass(frozen=True, slots=True)
class DrawResult:
    """One request's result: its draw, or the error it ended in (never a made-up text)."""

    custom_id: str
    kind: ResultKind
    draw: Draw | None = None
    error: JudgeError | None = None


def request_id(key: str, plan: PlannedRequest) -> str:
    """``<key>-<first index>-<n>``: a-z, 0-9 and ``-``, as every provider accepts."""
    return f"{key}-{plan.first_index}-{plan.n}"


def parse_request_id(custom_id: str) -> tuple[str, PlannedRequest]:
    """The key and plan a :func:`request_id` names (ValueError if it names none)."""
    key, first, n = custom_id.rsplit("-", 2)
    return key, PlannedRequest(int(first), int(n))


class PolicyBatchAPI:
    """A configured policy's requests through its provider's batch API."""

    def __init__(self, policy: Policy) -> None:
        if not isinstance(policy, SupportsPolicyBatch):
            raise JudgeConfigError(
                f"{policy.provider} policies have no provider batch API "
                "(provider-batch mode works with anthropic: and openai: policies)"
            )
        if policy.config.base_url is not None:
            # Self-hosted compatible servers rarely implement /v1/batches.
            raise JudgeConfigError(
                "provider-batch mode needs the provider itself, not a base_url server"
            )
        self.policy = policy
        self._batching: SupportsPolicyBatch = policy
        self.transport = policy.batch_transport()

    def request(
        self,
        key: str,
        prompt: Text,
        plan: PlannedRequest,
        params: SamplingParams,
        seed: int | None,
    ) -> BatchRequest:
        body = self._batching.batch_body(prompt, plan.n, params, seed)
        return BatchRequest(request_id(key, plan), body)

    async def results(self, batch_id: str) -> AsyncIterator[DrawResult]:
        """Every result of an ended batch, parsed; results in the provider's order."""
        async for outcome in self.transport.outcomes(batch_id):
            if outcome.kind is not ResultKind.SUCCEEDED or outcome.error is not None:
                yield DrawResult(outcome.custom_id, outcome.kind, error=outcome.error)
                continue
            try:
                _, plan = parse_request_id(outcome.custom_id)
                draw = self._batching.draw_from_batch(outcome.payload, plan.n)
            except JudgeError as exc:
                yield DrawResult(outcome.custom_id, outcome.kind, error=exc)
                continue
            yield DrawResult(outcome.custom_id, outcome.kind, draw=draw)
