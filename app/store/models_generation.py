"""Generation jobs and the candidates a policy sampled (issue 16)."""

from __future__ import annotations

from app.store.models import Base

__all__ = ["Base"]
