"""Human review queues, their items, assignments and answers (issue 18)."""

from __future__ import annotations

from app.store.models import Base

__all__ = ["Base"]
