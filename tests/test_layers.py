"""The layering rules of DESIGN.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules("judges"), ids=lambda p: p.name)
def test_judges_never_import_app_fastapi_or_sqlalchemy(path: Path) -> None:
    """judges/ is pure: no service, web or SQL code."""
    bad = {n for n in imports(path) if n.split(".")[0] in {"app", "fastapi", "sqlalchemy"}}
    assert not bad


@pytest.mark.parametrize(
    "path", [p for p in modules("app") if "api" not in p.parts], ids=lambda p: p.name
)
def test_only_the_api_imports_fastapi(path: Path) -> None:
    """Services and storage never import fastapi."""
    assert not {n for n in imports(path) if n.split(".")[0] in {"fastapi", "starlette"}}


@pytest.mark.parametrize(
    "path", [p for p in modules("app") if "store" not in p.parts], ids=lambda p: p.name
)
def test_sql_is_built_only_in_the_store(path: Path) -> None:
    """Outside app/store, SQLAlchemy appears only as the session type."""
    allowed = {"sqlalchemy.ext.asyncio"}
    assert not {n for n in imports(path) if n.startswith("sqlalchemy") and n not in allowed}


@pytest.mark.parametrize("path", modules("app") + modules("judges"), ids=lambda p: p.name)
def test_nothing_commits_outside_the_unit_of_work_owner(path: Path) -> None:
    """Only Database.transaction commits; helpers never call session.commit()."""
    source = path.read_text(encoding="utf-8")
    assert ".commit()" not in source
