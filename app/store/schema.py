"""Every table of the schema: the models and the modules that add to them.

Alembic's environment and the schema test read :data:`metadata` from here,
so a table in any model module is migrated and checked.
"""

from __future__ import annotations

from app.store import (  # noqa: F401  (imported for their tables)
    models_generation,
    models_rate_limits,
    models_reports,
    models_review,
    models_rewards,
    models_rounds,
    models_selection,
    models_tracing,
)
from app.store.models import Base

metadata = Base.metadata
