"""Strategy runs that turn a prompt's candidates into one preference (issue 16)."""

from __future__ import annotations

from app.store.models import Base

__all__ = ["Base"]
