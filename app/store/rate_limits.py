"""The fleet's rate-limit timelines in PostgreSQL: one short statement per request.

Each reservation is a single ``INSERT … ON CONFLICT DO UPDATE … RETURNING``
in its own transaction: the row lock is held for that statement only, so
no process ever holds the budget, and one that dies mid-wait leaves the
row as any other would. Times come from the database's clock.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from judges.limits import Reservation

_NOW = "extract(epoch FROM clock_timestamp())::float8"

RESERVE = text(
    f"""
    INSERT INTO rate_limits AS r (key, requests_tat, tokens_tat, paused_until)
    VALUES (:key, {_NOW} + :requests_s, {_NOW} + :tokens_s, 0)
    ON CONFLICT (key) DO UPDATE SET
        requests_tat = greatest(r.requests_tat, {_NOW}, r.paused_until) + :requests_s,
        tokens_tat = greatest(r.tokens_tat, {_NOW}, r.paused_until) + :tokens_s
    RETURNING r.requests_tat, r.tokens_tat, r.paused_until, {_NOW} AS now
    """
)

PAUSE = text(
    f"""
    INSERT INTO rate_limits AS r (key, requests_tat, tokens_tat, paused_until)
    VALUES (:key, 0, 0, {_NOW} + :seconds)
    ON CONFLICT (key) DO UPDATE SET
        paused_until = greatest(r.paused_until, {_NOW} + :seconds)
    """
)


class PostgresBudget:
    """:class:`judges.limits.BudgetStore` over the ``rate_limits`` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def reserve(self, key: str, requests_s: float, tokens_s: float) -> Reservation:
        params = {"key": key, "requests_s": requests_s, "tokens_s": tokens_s}
        async with self.engine.begin() as connection:
            row = (await connection.execute(RESERVE, params)).one()
        return Reservation(float(row[0]), float(row[1]), float(row[2]), float(row[3]))

    async def pause(self, key: str, seconds: float) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(PAUSE, {"key": key, "seconds": seconds})
