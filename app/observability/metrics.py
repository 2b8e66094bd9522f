"""The ``referee_*`` Prometheus metrics, and the bounds on their label values.

Names follow the Prometheus conventions: a ``referee_`` prefix, base units
(seconds, USD) in the name, ``_total`` on counters. Each event is counted
where it happens once: a model call where its stored row is built
(:func:`app.labeling.calls.call_row`), a verdict where its row is built, a
retry in the judges' one retry policy (policy calls' retries too), a
policy (generation) call where its request's answer reaches the generator
(:meth:`app.labeling.rounds.generate.Generator`), a lease where it is
renewed or taken over, a request in the API's middleware.

Every label value is bounded, so no client can grow the number of series:
no ids, no free text. Providers, models and judges keep their names only
when the operator configured them (or a model is in the price table);
anything else is counted as ``other``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from prometheus_client import Counter, Histogram

from judges.errors import JudgeError
from judges.policies.base import PolicyCall, PolicyConfig, RequestOutcome
from judges.registry import JudgeRegistry
from judges.retry import add_retry_listener
from judges.types import Usage

OTHER = "other"
"""The label value that anything unknown or unbounded folds into."""

# Model calls last from a fraction of a second (a fake, a cached prompt) to minutes.
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

JUDGE_CALLS = Counter(
    "referee_judge_calls_total",
    "Model calls, every attempt, by outcome: ok or the error class of the failure.",
    ["provider", "model", "outcome"],
)
CALL_DURATION = Histogram(
    "referee_judge_call_duration_seconds",
    "Time a model call took (its request, not the wait for a slot), every attempt.",
    ["provider", "model"],
    buckets=CALL_BUCKETS,
)
TOKENS = Counter(
    "referee_judge_tokens_total",
    "Tokens of model calls by kind: input, output, cache_read, cache_write.",
    ["provider", "model", "kind"],
)
COST = Counter(
    "referee_judge_cost_usd_total",
    "What model calls cost, in US dollars (calls of unpriced models add nothing).",
    ["provider", "model"],
)
UNPRICED_CALLS = Counter(
    "referee_judge_unpriced_calls_total",
    "Model calls whose model has no price (a self-hosted server): their cost is unknown.",
    ["provider", "model"],
)
VERDICTS = Counter(
    "referee_verdicts_total",
    "Verdicts stored, by judge, winner (a, b, tie) and position consistency (true, false,"
    " none when one order was asked).",
    ["judge", "winner", "position_consistent"],
)
RETRIES = Counter(
    "referee_judge_retries_total",
    "Model calls tried again after a transient failure, by the failure's error class.",
    ["error_class"],
)
RATE_LIMITED = Counter(
    "referee_judge_rate_limited_total",
    "Model calls the provider refused for rate (HTTP 429, or 529 overloaded).",
    ["provider", "model"],
)
LEASE_RENEWALS = Counter(
    "referee_lease_renewals_total",
    "Leases renewed by a heartbeat: batch (a worker's claimed pairs), label (a request's pair).",
    ["kind"],
)
LEASE_TAKEOVERS = Counter(
    "referee_lease_takeovers_total",
    "Leases taken over from a holder that stopped renewing (it died or hung).",
    ["kind"],
)
GENERATION_CALLS = Counter(
    "referee_generation_calls_total",
    "Policy (generation) model calls, every attempt, by outcome: ok or the error class.",
    ["provider", "model", "outcome"],
)
GENERATION_DURATION = Histogram(
    "referee_generation_call_duration_seconds",
    "Time a policy call took (its request, not the wait for a slot), every attempt.",
    ["provider", "model"],
    buckets=CALL_BUCKETS,
)
GENERATION_TOKENS = Counter(
    "referee_generation_tokens_total",
    "Tokens of policy calls by kind: input, output, cache_read, cache_write.",
    ["provider", "model", "kind"],
)
GENERATION_COST = Counter(
    "referee_generation_cost_usd_total",
    "What policy calls cost, in US dollars (calls of unpriced models add nothing).",
    ["provider", "model"],
)
GENERATION_UNPRICED_CALLS = Counter(
    "referee_generation_unpriced_calls_total",
    "Policy calls whose model has no price (a self-hosted server): their cost is unknown.",
    ["provider", "model"],
)
HTTP_REQUESTS = Counter(
    "referee_http_requests_total",
    "HTTP requests, by method, route template (not the raw path) and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "referee_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by method and route template.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)

WINNERS = frozenset({"a", "b", "tie"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LEASE_KINDS = frozenset({"batch", "label"})
# The error classes of judges/errors.py and the ones the app stores for a run.
ERROR_CLASSES = frozenset(
    {
        "judge_error",
        "transient",
        "rate_limited",
        "timeout",
        "refused",
        "unparseable",
        "config",
        "missing_credentials",
        "model_unavailable",
        "unknown_judge",
        "context_overflow",
        "invalid_constitution",
        "invalid_template",
        "constitution_changed",
        "errored",
        "expired",
        "canceled",
        "invalid",
    }
)


def _never(provider: str, model: str) -> bool:
    return False


@dataclass
class Vocabulary:
    """The label values that keep their names; everything else is ``other``.

    Filled at start-up from the operator's configuration (the providers
    registered, the judges file, the default judge). A model also keeps its
    name when the price table knows it: that table is finite and maintained.
    """

    providers: set[str] = field(default_factory=set)
    judges: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    is_priced: Callable[[str, str], bool] = _never

    def configure(
        self,
        providers: Iterable[str],
        judges: Mapping[str, tuple[str, str] | None],
        is_priced: Callable[[str, str], bool] | None = None,
    ) -> None:
        """Learn the configured names: ``judges`` maps a judge label to its (provider, model)."""
        self.providers.update(providers)
        self.judges.update(judges)
        self.models.update(pm[1] for pm in judges.values() if pm is not None)
        if is_priced is not None:
            self.is_priced = is_priced

    def learn_model(self, provider: str, model: str) -> None:
        """A model the operator named on the command line (a policy to sample from)."""
        if provider in self.providers:
            self.models.add(model)

    def provider(self, value: str) -> str:
        return value if value in self.providers else OTHER

    def model(self, provider: str, value: str) -> str:
        if provider in self.providers and (value in self.models or self.is_priced(provider, value)):
            return value
        return OTHER

    def judge(self, value: str) -> str:
        """A configured judge by name, or a spec whose provider and model are known."""
        if value in self.judges:
            return value
        provider, _, model = value.partition(":")
        return value if self.model(provider, model) != OTHER else OTHER


VOCABULARY = Vocabulary()


def bounded(value: str | None, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


def count_call(row: Mapping[str, Any]) -> None:
    """One model call, from the judge_calls values stored for it."""
    provider = VOCABULARY.provider(row["provider"])
    model = VOCABULARY.model(row["provider"], row["model"])
    error = row["error_class"]
    outcome = "ok" if error is None else bounded(error, ERROR_CLASSES)
    JUDGE_CALLS.labels(provider, model, outcome).inc()
    CALL_DURATION.labels(provider, model).observe(max(row["latency_ms"], 0.0) / 1000)
    for kind in ("input", "output", "cache_read", "cache_write"):
        if tokens := row[f"{kind}_tokens"]:
            TOKENS.labels(provider, model, kind).inc(tokens)
    cost: Decimal | None = row["cost_usd"]
    if cost is None:
        UNPRICED_CALLS.labels(provider, model).inc()
    elif cost:
        COST.labels(provider, model).inc(float(cost))
    if error == "rate_limited":
        RATE_LIMITED.labels(provider, model).inc()


def count_generation(
    config: PolicyConfig,
    outcome: RequestOutcome,
    cost: Decimal | None,
    cost_of: Callable[[Usage], Decimal | None],
) -> None:
    """One policy request's calls: every attempt sent live, or a provider batch's one result.

    ``cost`` is the whole request's (every attempt's tokens), ``cost_of``
    prices one attempt's usage where a request took several.
    """
    provider = VOCABULARY.provider(config.provider)
    model = VOCABULARY.model(config.provider, config.model)
    calls = outcome.calls or (PolicyCall(outcome.error_class, outcome.latency_ms, outcome.usage),)
    for call in calls:
        outcome_label = (
            "ok" if call.error_class is None else bounded(call.error_class, ERROR_CLASSES)
        )
        GENERATION_CALLS.labels(provider, model, outcome_label).inc()
        GENERATION_DURATION.labels(provider, model).observe(max(call.latency_ms, 0.0) / 1000)
        usage = call.usage
        for kind, tokens in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens),
        ):
            if tokens:
                GENERATION_TOKENS.labels(provider, model, kind).inc(tokens)
        call_cost = cost if len(calls) == 1 else cost_of(usage)
        if call_cost is None:
            GENERATION_UNPRICED_CALLS.labels(provider, model).inc()
        elif call_cost:
            GENERATION_COST.labels(provider, model).inc(float(call_cost))


def count_verdict(judge: str, verdict: Mapping[str, Any] | None) -> None:
    """One stored verdict (nothing for a run that failed: its calls say why)."""
    if verdict is None:
        return
    consistent = verdict.get("position_consistent")
    VERDICTS.labels(
        VOCABULARY.judge(judge),
        bounded(verdict["winner"], WINNERS),
        "none" if consistent is None else str(bool(consistent)).lower(),
    ).inc()


def count_retry(error: BaseException | None) -> None:
    """A transient failure about to be tried again (the judges' retry listener)."""
    error_class = error.error_class if isinstance(error, JudgeError) else None
    RETRIES.labels(bounded(error_class, ERROR_CLASSES)).inc()


def count_lease(kind: str, *, renewed: int = 0, taken_over: int = 0) -> None:
    if renewed:
        LEASE_RENEWALS.labels(bounded(kind, LEASE_KINDS)).inc(renewed)
    if taken_over:
        LEASE_TAKEOVERS.labels(bounded(kind, LEASE_KINDS)).inc(taken_over)


def count_request(method: str, route: str | None, status: int, seconds: float) -> None:
    """One HTTP request; ``route`` is the matched template, None when nothing matched."""
    method = bounded(method, METHODS)
    template = route or OTHER
    HTTP_REQUESTS.labels(method, template, str(status) if 100 <= status < 600 else OTHER).inc()
    HTTP_DURATION.labels(method, template).observe(seconds)


def configure(
    registry: JudgeRegistry, default_judge: str | None, is_priced: Callable[[str, str], bool]
) -> None:
    """At start-up: learn the configured names, and count the judges' retries."""
    judges: dict[str, tuple[str, str] | None] = {
        name: (config.provider, config.model) for name, config in registry.named.items()
    }
    judges.update(dict.fromkeys(registry.juries))
    if default_judge is not None:
        judges[default_judge] = None
    VOCABULARY.configure(registry.providers, judges, is_priced)
    add_retry_listener(count_retry)


def _zero_known_series() -> None:
    """Series of a fixed label set start at 0, so a rate over them is 0 rather than no data."""
    for kind in LEASE_KINDS:
        LEASE_RENEWALS.labels(kind)
        LEASE_TAKEOVERS.labels(kind)
    for error_class in ("transient", "rate_limited", "timeout"):
        RETRIES.labels(error_class)


_zero_known_series()
