"""Schema migrations through Alembic, configured in code.

``referee db upgrade`` runs them; ``referee serve`` checks that the schema is
at the head revision and refuses (or, with REFEREE_AUTO_MIGRATE, upgrades).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, inspect, pool, text

import migrations
from app.store.db import sync_url

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (and Mako, which it pulls in) is imported by the functions that migrate:
# every command checks the schema, and most never migrate. The check reads the
# revision files and the version table itself (Alembic's import alone is about
# 0.1 s of start-up).

MIGRATIONS_DIR = Path(migrations.__file__).parent
VERSION_TABLE = "alembic_version"


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
    """The revisions no other revision revises: what Alembic's ``get_heads`` finds.

    Read from the revision files' ``revision`` and ``down_revision`` without
    importing Alembic or the files (a test holds the two equal). The URL
    plays no part: the revisions are the code's.
    """
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = _revision_of(path)
        if found is not None:
            revision, down_revisions = found
            revisions.add(revision)
            revised.update(down_revisions)
    return revisions - revised


# A revision file's own lines ``revision: str = "0007"`` and ``down_revision = ...``.
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\b[^=\n]*=(.*)$", re.MULTILINE)


def _revision_of(path: Path) -> tuple[str, set[str]] | None:
    """A revision file's id and the ids it revises; None for a file that is no revision."""
    source = path.read_text(encoding="utf-8")
    try:  # one line each, as Alembic writes them: no need to parse the whole file
        values = {
            name: ast.literal_eval(value.strip()) for name, value in _ASSIGNMENT.findall(source)
        }
    except (SyntaxError, ValueError):  # a value over several lines, say a long merge
        values = _module_assignments(source, path)
    revision, down = values.get("revision"), values.get("down_revision")
    if not isinstance(revision, str):
        return None
    if isinstance(down, str):
        return revision, {down}
    if isinstance(down, tuple | list):  # a merge revises several
        return revision, {str(each) for each in down}
    return revision, set()


def _module_assignments(source: str, path: Path) -> dict[str, object]:
    values: dict[str, object] = {}
    for statement in ast.parse(source, str(path)).body:
        targets: list[ast.expr]
        if isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        elif isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                values[target.id] = ast.literal_eval(value)
    return values


def current_revisions(database_url: str) -> set[str]:
    """The revisions the database's version table records (none before the first upgrade)."""
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(VERSION_TABLE):
                return set()
            rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
            return set(rows.scalars())
    finally:
        engine.dispose()


def is_up_to_date(database_url: str) -> bool:
    return current_revisions(database_url) == head_revisions(database_url)
