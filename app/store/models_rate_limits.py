"""Fleet-wide rate limits on PostgreSQL: one GCRA row per judge limit identity (issue 20).

Times are seconds since the epoch in the database's clock, so processes on
several machines never compare their own clocks. A row holds no lock and
no owner: a process that dies leaves nothing but a timeline that time passes.
"""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from app.store.models import Base

__all__ = ["Base", "RateLimit"]


class RateLimit(Base):
    """The shared timelines of one limit key (provider, model, endpoint; never an API key)."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    requests_tat: Mapped[float] = mapped_column(Float, default=0.0)
    """When the next request may leave (the theoretical arrival time of GCRA)."""
    tokens_tat: Mapped[float] = mapped_column(Float, default=0.0)
    """The same for tokens; a one-second bucket ahead of it may leave early."""
    paused_until: Mapped[float] = mapped_column(Float, default=0.0)
    """A provider 429 seen by any process: no reservation starts before this."""
