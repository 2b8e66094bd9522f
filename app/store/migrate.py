"""Schema migrations through Alembic, configured in code.

``referee db upgrade`` runs them; ``referee serve`` checks that the schema is
at the head revision and refuses (or, with REFEREE_AUTO_MIGRATE, upgrades).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, pool

import migrations
from app.store.db import sync_url

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (and Mako, which it pulls in) is imported by the functions that use it:
# every command checks the schema, and most never migrate.

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Date-prefixed revision files sort in the order they were written.
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["url"] = sync_url(database_url).render_as_string(hide_password=False)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def head_revisions(database_url: str) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


def current_revisions(database_url: str) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def is_up_to_date(database_url: str) -> bool:
    return current_revisions(database_url) == head_revisions(database_url)
