"""RLAIF rounds: policy, checkpoint, prompts, strategy, judge and parent (issue 16)."""

from __future__ import annotations

from app.store.models import Base

__all__ = ["Base"]
