"""Human preferences for export: gold labels (reviews and imports) with their pairs' content."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Row, and_, case, func, or_, select

from app.store.models import Comparison, GoldLabel


def human_preferences(connection: Connection, chunk_rows: int) -> Iterator[Row[Any]]:
    """Every gold label with its pair's content, ordered so the label that counts comes last.

    Per pair (``pair_key``), as the report ranks them: a review outranks an
    import, and among several of one kind the newest counts. Rows: ``id``,
    ``pair_key``, ``winner``, ``source``, ``votes``, ``reviewer``, ``external_id``,
    ``prompt``, ``response_a``, ``response_b``. A label whose pair no comparison
    holds has no content and is left out. A pair several comparisons hold
    (several judges) comes once per comparison; the caller keeps the last.
    """
    rank = case((GoldLabel.source == "review", 1), else_=0)
    statement = (
        select(
            GoldLabel.id,
            GoldLabel.pair_key,
            GoldLabel.winner,
            GoldLabel.source,
            GoldLabel.votes,
            GoldLabel.reviewer,
            func.coalesce(GoldLabel.external_id, Comparison.external_id).label("external_id"),
            Comparison.prompt,
            Comparison.response_a,
            Comparison.response_b,
        )
        .join(
            Comparison,
            or_(
                Comparison.id == GoldLabel.comparison_id,
                and_(GoldLabel.comparison_id.is_(None), Comparison.pair_key == GoldLabel.pair_key),
            ),
        )
        .order_by(GoldLabel.pair_key, rank, GoldLabel.created_at, GoldLabel.id)
    )
    yield from connection.execute(statement.execution_options(yield_per=chunk_rows))
