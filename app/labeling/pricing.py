"""Call costs from the maintained ``genai-prices`` table.

Unknown models (a self-hosted server, a fake) have no price: their cost is
``None``, never a made-up zero.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from judges.types import Usage


@lru_cache(maxsize=256)
def _is_priced(provider: str, model: str) -> bool:
    try:
        calc_price(
            PriceUsage(input_tokens=1, output_tokens=1), model_ref=model, provider_id=provider
        )
    except LookupError:
        return False
    return True


def call_cost(provider: str, model: str, usage: Usage) -> Decimal | None:
    """USD cost of one call, or ``None`` when the model is not in the price table."""
    if not _is_priced(provider, model):
        return None
    price = calc_price(
        PriceUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        ),
        model_ref=model,
        provider_id=provider,
    )
    return Decimal(price.total_price)
