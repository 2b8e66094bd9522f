"""Call costs from the maintained ``genai-prices`` table.

Unknown models (a self-hosted server, a fake) have no price: their cost is
``None``, never a made-up zero. The table knows both discounts: the
providers' batch APIs (``processing: batch``, half the standard rates, cache
multipliers stacking on it) and Anthropic prompt caching (a cache write at
1.25x the input price, a read at 0.1x).

Working out one call's price through the table takes about 0.15 ms (its
usage decomposition and checks), more than the rest of storing the call.
Where a model's price is linear in the token counts (no tiers), its rates
are read from the table once a minute and applied per call; the table
itself prices every other call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from judges.types import Usage

BATCH_CONTEXT = {"processing": "batch"}


@lru_cache(maxsize=256)
def _is_priced(provider: str, model: str) -> bool:
    try:
        calc_price(
            PriceUsage(input_tokens=1, output_tokens=1), model_ref=model, provider_id=provider
        )
    except LookupError:
        return False
    return True


def is_priced(provider: str, model: str) -> bool:
    """Whether the price table knows the model (a finite, maintained list)."""
    return _is_priced(provider, model)


def price_usage(provider: str, usage: Usage) -> PriceUsage:
    """Our usage in the price table's terms, where input tokens include the cached ones.

    Anthropic reports ``input_tokens`` without the tokens read from or
    written to the cache; OpenAI's ``prompt_tokens`` include its cached
    tokens. Stored calls keep each provider's own figures.
    """
    input_tokens = usage.input_tokens
    if provider == "anthropic":
        input_tokens += usage.cache_read_tokens + usage.cache_write_tokens
    return PriceUsage(
        input_tokens=input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )


def call_cost(provider: str, model: str, usage: Usage, *, batch: bool = False) -> Decimal | None:
    """USD cost of one call (at batch-API rates with ``batch``), or ``None`` when unpriced.

    Priced as at the start of the current minute (UTC): the table's prices
    change by date, and by time of day for off-peak rates.
    """
    if not _is_priced(provider, model):
        return None
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    rates = _linear_rates(provider, model, batch, minute)
    if rates is not None and rates.covers(usage):
        return rates.cost(usage)
    return _table_cost(provider, model, usage, batch, minute)


def _table_cost(provider: str, model: str, usage: Usage, batch: bool, when: datetime) -> Decimal:
    price = calc_price(
        price_usage(provider, usage),
        model_ref=model,
        provider_id=provider,
        genai_request_timestamp=when,
        price_context=BATCH_CONTEXT if batch else None,
    )
    return Decimal(price.total_price)


# Far above any one call's counts: a tier, or any other departure from straight
# lines up to here, makes the table's price there differ from the rates'.
_PROBE = Usage(
    input_tokens=2_000_000,
    output_tokens=1_000_000,
    cache_read_tokens=500_000,
    cache_write_tokens=300_000,
)


@dataclass(frozen=True, slots=True)
class _Rates:
    """USD per token of each count, as the table prices them (cached counts beside input)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal

    def covers(self, usage: Usage) -> bool:
        """Whether the usage lies within the range the rates were checked over."""
        return all(
            getattr(usage, name) <= getattr(_PROBE, name)
            for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
        )

    def cost(self, usage: Usage) -> Decimal:
        return (
            self.input * usage.input_tokens
            + self.output * usage.output_tokens
            + self.cache_read * usage.cache_read_tokens
            + self.cache_write * usage.cache_write_tokens
        )


@lru_cache(maxsize=1024)
def _linear_rates(provider: str, model: str, batch: bool, minute: datetime) -> _Rates | None:
    """The model's per-token rates at ``minute``, or None when its price is not linear."""

    def table(tokens: int, output: int = 0, cache_read: int = 0, cache_write: int = 0) -> Decimal:
        usage = Usage(tokens, output, cache_read, cache_write)
        return _table_cost(provider, model, usage, batch, minute)

    base = table(1)
    rates = _Rates(
        input=base - table(0),
        output=table(0, output=1) - table(0),
        cache_read=table(1, cache_read=1) - base,
        cache_write=table(1, cache_write=1) - base,
    )
    if table(0) != 0:
        return None
    probe = table(
        _PROBE.input_tokens,
        _PROBE.output_tokens,
        _PROBE.cache_read_tokens,
        _PROBE.cache_write_tokens,
    )
    return rates if rates.cost(_PROBE) == probe else None
