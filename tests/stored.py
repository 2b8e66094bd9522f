"""What a test database holds of labeling work: to assert a refused request stored nothing."""

from __future__ import annotations

from sqlalchemy import create_engine, func, select

from app.store.db import sync_url
from app.store.models import Base

LABELING_TABLES = (
    "comparisons",
    "verdicts",
    "jury_votes",
    "judge_calls",
    "ratings",
    "revisions",
    "revision_rounds",
    "batches",
    "provider_batches",
)


def labeling_rows(database_url: str) -> dict[str, int]:
    """Rows per labeling table (API keys and the like are not labeling work)."""
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            return {
                name: connection.execute(
                    select(func.count()).select_from(Base.metadata.tables[name])
                ).scalar_one()
                for name in LABELING_TABLES
            }
    finally:
        engine.dispose()


def nothing_stored(database_url: str) -> bool:
    return not any(labeling_rows(database_url).values())
