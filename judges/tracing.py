"""Model-call spans, named and attributed by the OpenTelemetry GenAI conventions.

:class:`CallSpan` is any model call (a policy's sampling request uses it as
is, see :func:`judges.policies.base.draw_with_retries`); :class:`ModelCallSpan`
adds a judge call's order and its answer as an evaluation event.

Only the OpenTelemetry *API* is used: it is a library's way to trace. With
no SDK configured (the service configures one only when ``OTEL_*`` variables
ask for it) every span is a non-recording no-op costing a few microseconds,
and :attr:`ModelCallSpan.trace_id` is ``None``.

A span covers one attempt, not the retried whole the conventions suggest:
each attempt is a stored call of its own (its tokens, error, response id),
and its trace id is stored with it. Prompts and responses are never put on
a span; the judge's explanation of an evaluation only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is true (it is model
text that often quotes what was judged).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, format_trace_id
from opentelemetry.util.types import AttributeValue

from judges.base import Judge
from judges.errors import JudgeError
from judges.types import Order, PairwiseAnswer, Position, RatingAnswer, Usage, Winner

TRACER = "judges"
OPERATION = "chat"
"""Every judge call is a chat-style request (Messages, Chat Completions, a local chat model)."""
TEXT_COMPLETION = "text_completion"
"""A plain-text prompt continued (a local policy whose tokenizer has no chat template)."""
EVALUATION_EVENT = "gen_ai.evaluation.result"
CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# The providers the conventions name keep their names; others ("local") are custom values.
_PROVIDERS = {"anthropic": "anthropic", "openai": "openai"}


def capture_content() -> bool:
    """Whether model text (an evaluation's explanation) may go on spans."""
    return os.environ.get(CAPTURE_CONTENT, "").strip().lower() in {"1", "true", "yes"}


def usage_attributes(provider: str, usage: Usage) -> dict[str, AttributeValue]:
    """A call's tokens as ``gen_ai.usage.*``; input tokens include the cached ones.

    Anthropic reports its input tokens without those read from or written
    to the cache; OpenAI's prompt tokens include them.
    """
    input_tokens = usage.input_tokens
    if provider == "anthropic":
        input_tokens += usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
    }


def evaluation_attributes(
    answer: Any, winner: Winner | None, explanation: str | None
) -> dict[str, AttributeValue] | None:
    """A ``gen_ai.evaluation.result`` event's attributes for an answer; None if it is no evaluation.

    A pairwise answer is labelled with the winner in the caller's a/b terms
    (its probability, where the backend gave log-probabilities, is the
    value); a rating's value is its score.
    """
    attributes: dict[str, AttributeValue]
    if isinstance(answer, PairwiseAnswer) and winner is not None:
        attributes = {"gen_ai.evaluation.name": "pairwise_preference"}
        attributes["gen_ai.evaluation.score.label"] = winner.value
        if answer.probabilities is not None:
            chosen = {
                Position.FIRST: answer.probabilities.first,
                Position.SECOND: answer.probabilities.second,
                Position.TIE: answer.probabilities.tie,
            }[answer.position]
            attributes["gen_ai.evaluation.score.value"] = chosen
    elif isinstance(answer, RatingAnswer):
        attributes = {"gen_ai.evaluation.name": "rubric_rating"}
        attributes["gen_ai.evaluation.score.value"] = answer.score
    else:
        return None
    if explanation is not None and capture_content():
        attributes["gen_ai.evaluation.explanation"] = explanation
    return attributes


def note_response(response: Any) -> Any:
    """Put a provider response's id and model on the current model-call span; return it as is.

    Backends call this on the SDK's response object; without a recording
    span it does nothing.
    """
    span = trace.get_current_span()
    if span.is_recording():
        for attribute, field in (("gen_ai.response.id", "id"), ("gen_ai.response.model", "model")):
            value = getattr(response, field, None)
            if isinstance(value, str) and value:
                span.set_attribute(attribute, value)
    return response


class CallSpan:
    """A CLIENT span around one model call (one attempt), current while the call runs.

    ``operation`` is the GenAI operation (``chat``, ``text_completion``);
    ``attributes`` are added to the conventions' own at the start.
    """

    def __init__(
        self,
        provider: str,
        model: str,
        operation: str = OPERATION,
        attributes: dict[str, AttributeValue] | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.operation = operation
        self.attributes = attributes
        self.trace_id: str | None = None
        """The trace's id as 32 hex digits while the span records; None when tracing is off."""
        self._span: trace.Span = trace.INVALID_SPAN
        self._scope: Any = None

    @property
    def recording(self) -> bool:
        return self._span.is_recording()

    def __enter__(self) -> Self:
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": self.operation,
            "gen_ai.provider.name": _PROVIDERS.get(self.provider, self.provider),
            "gen_ai.request.model": self.model,
        }
        if self.attributes:
            attributes.update(self.attributes)
        self._span = trace.get_tracer(TRACER).start_span(
            f"{self.operation} {self.model}", kind=SpanKind.CLIENT, attributes=attributes
        )
        if self._span.is_recording():
            self.trace_id = format_trace_id(self._span.get_span_context().trace_id)
        # The span's own exit below records errors: no exception event (its
        # message may carry model output) and no status from the library.
        self._scope = trace.use_span(
            self._span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        )
        self._scope.__enter__()
        return self

    def set_operation(self, operation: str) -> None:
        """The operation, where it is known only once the call is made (a local model's
        tokenizer decides between chat and plain text)."""
        if operation != self.operation and self._span.is_recording():
            self.operation = operation
            self._span.set_attribute("gen_ai.operation.name", operation)
            self._span.update_name(f"{operation} {self.model}")

    def set_attributes(self, attributes: dict[str, AttributeValue]) -> None:
        if self._span.is_recording():
            self._span.set_attributes(attributes)

    def set_usage(self, usage: Usage) -> None:
        if self._span.is_recording():
            self._span.set_attributes(usage_attributes(self.provider, usage))

    def add_event(self, name: str, attributes: dict[str, AttributeValue]) -> None:
        if self._span.is_recording():
            self._span.add_event(name, attributes)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and self._span.is_recording():
            error_type = exc.error_class if isinstance(exc, JudgeError) else type(exc).__qualname__
            self._span.set_attribute("error.type", error_type)
            self._span.set_status(Status(StatusCode.ERROR, error_type))
            if isinstance(exc, JudgeError) and exc.usage is not None:
                self._span.set_attributes(usage_attributes(self.provider, exc.usage))
        self._scope.__exit__(exc_type, exc, tb)


class ModelCallSpan(CallSpan):
    """A judge's model call: its order, and its answer as an evaluation event.

    ``to_winner`` maps a pairwise position in ``order`` to the caller's
    a/b (the protocol's one mapping function, handed in).
    """

    def __init__(
        self, judge: Judge, order: Order | None, to_winner: Callable[[Order, Position], Winner]
    ) -> None:
        super().__init__(
            judge.provider,
            judge.config.model,
            attributes={"referee.order": order.value} if order is not None else None,
        )
        self.order = order
        self.to_winner = to_winner

    def answered(self, raw: Any) -> Any:
        """Record a successful call's usage and evaluation; return ``raw`` as is."""
        if self._span.is_recording():
            self._span.set_attributes(usage_attributes(self.provider, raw.usage))
            answer = raw.answer
            winner = None
            if isinstance(answer, PairwiseAnswer) and self.order is not None:
                winner = self.to_winner(self.order, answer.position)
            event = evaluation_attributes(answer, winner, getattr(answer, "rationale", None))
            if event is not None:
                self._span.add_event(EVALUATION_EVENT, event)
        return raw
