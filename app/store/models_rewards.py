"""Rewards scored for training loops, with the caller's run and step (issue 17)."""

from __future__ import annotations

from app.store.models import Base

__all__ = ["Base"]
