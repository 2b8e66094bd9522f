"""Call costs from the maintained ``genai-prices`` table.

Unknown models (a self-hosted server, a fake) have no price: their cost is
``None``, never a made-up zero. The table knows both discounts: the
providers' batch APIs (``processing: batch``, half the standard rates, cache
multipliers stacking on it) and Anthropic prompt caching (a cache write at
1.25x the input price, a read at 0.1x).
"""

from __future__ import annotations

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
    """USD cost of one call (at batch-API rates with ``batch``), or ``None`` when unpriced."""
    if not _is_priced(provider, model):
        return None
    price = calc_price(
        price_usage(provider, usage),
        model_ref=model,
        provider_id=provider,
        price_context=BATCH_CONTEXT if batch else None,
    )
    return Decimal(price.total_price)
