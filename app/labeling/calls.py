"""One stored judge call, from the record the judges package returns."""

from __future__ import annotations

import dataclasses
from typing import Any

from app.labeling.access import acting_key
from app.labeling.pricing import call_cost
from app.observability import metrics
from app.store.models_tracing import trace_id
from judges import CallRecord, JudgeConfig, PairwiseAnswer


def parsed_answer(answer: Any) -> dict[str, Any] | None:
    """The parsed answer as JSON: a position (pairwise), or the answer's own fields.

    Ratings, critiques, revisions and generated texts are flat dataclasses;
    a pairwise answer carries positions and optional probabilities.
    """
    if answer is None:
        return None
    if not isinstance(answer, PairwiseAnswer):
        fields: dict[str, Any] = dataclasses.asdict(answer)
        return fields
    probabilities = answer.probabilities
    return {
        "position": answer.position.value,
        "rationale": answer.rationale,
        "probabilities": (
            None
            if probabilities is None
            else {"1": probabilities.first, "2": probabilities.second, "tie": probabilities.tie}
        ),
    }


def call_row(config: JudgeConfig, call: CallRecord) -> dict[str, Any]:
    """The judge_calls values for one call; the caller adds the comparison or rating id.

    Every stored call is built here once, so the call is counted here too.
    """
    row = {
        "order": call.order.value if call.order is not None else None,
        "attempt": call.attempt,
        "provider": config.provider,
        "model": call.model,
        "template_version": call.template_version,
        "parameters": call.parameters,
        "raw_output": call.raw_output,
        "parsed": parsed_answer(call.answer),
        "input_tokens": call.usage.input_tokens,
        "output_tokens": call.usage.output_tokens,
        "cache_read_tokens": call.usage.cache_read_tokens,
        "cache_write_tokens": call.usage.cache_write_tokens,
        # Calls made through a provider's batch API name it, and cost half.
        "cost_usd": call_cost(
            config.provider, call.model, call.usage, batch="provider_batch" in call.parameters
        ),
        "latency_ms": call.latency_ms,
        "error_class": call.error_class,
        "error_message": call.error_message,
        # Whose budget the call spends: the API key of the request (or batch) that made it.
        "api_key_id": acting_key.get(),
        trace_id.name: call.trace_id,
    }
    metrics.count_call(row)
    return row
