"""Migrations: one head, up → down → up round-trips, and the models match the schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from app.store import migrate
from app.store.db import sync_url
from app.store.schema import metadata


def test_there_is_one_head(database_url: str) -> None:
    """Two heads would mean two diverging schema histories."""
    script = ScriptDirectory.from_config(migrate.alembic_config(database_url))
    assert len(script.get_heads()) == 1


def test_revision_files_are_date_prefixed() -> None:
    """Files sort in the order they were written."""
    files = [
        p.name for p in (migrate.MIGRATIONS_DIR / "versions").glob("*.py") if p.stem[0].isdigit()
    ]
    assert files
    assert all(name[:11].replace("_", "").isdigit() for name in files)


def test_upgrade_downgrade_upgrade_round_trips(database_url: str) -> None:
    """Down to nothing leaves no tables; up again gives the same schema."""
    engine = create_engine(sync_url(database_url))
    before = sorted(inspect(engine).get_table_names())
    migrate.downgrade(database_url, "base")
    assert [t for t in inspect(engine).get_table_names() if t != "alembic_version"] == []
    migrate.upgrade(database_url)
    assert sorted(inspect(engine).get_table_names()) == before
    assert migrate.is_up_to_date(database_url)
    engine.dispose()


def test_models_match_the_migrated_schema(database_url: str) -> None:
    """Autogenerate finds nothing to change: no model edit without a migration."""
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert diff == []
