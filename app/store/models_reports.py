"""Indexes the judge-quality report reads through (app.store.reports).

``ix_comparisons_report`` holds every column of a comparison the report's
pair-level queries need (judge, batch, pair key, time, id): the judges'
agreement, the gold summary and the call costs read it alone (an
index-only scan on PostgreSQL, a covering index on SQLite) instead of the
comparisons table, whose rows carry the prompts and responses. The judge
leads, so a report of one judge reads its own entries only.
"""

from __future__ import annotations

from sqlalchemy import Index

from app.store.models import Base, Comparison

__all__ = ["REPORT_INDEX", "Base"]

REPORT_INDEX = Index(
    "ix_comparisons_report",
    Comparison.judge,
    Comparison.batch_id,
    Comparison.pair_key,
    Comparison.created_at,
    Comparison.id,
)
