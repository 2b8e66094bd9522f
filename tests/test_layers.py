"""The layering rules of DESIGN.md, checked on the source.

The layers of ``app``, top to bottom. A module imports its own layer and
the layers :data:`MAY_IMPORT` lists for it, and nothing else of ``app``::

    app.cli        the shells. The CLI may import the API (``referee serve``
    app.api        starts it); the API never imports the CLI.
        |
    app.labeling   the use cases, and the runtime that builds them
        |
    app.export     streaming DPO/KTO/SFT writers   } siblings: neither
    app.reports    judge-quality reports           } imports the other
        |
    app.store      the only code that builds SQL
        |
    app.observability  metrics, traces, logs: every layer above records into it
        |
    foundation     app (the package), app.settings, app.errors, app.keys
        |
    judges         pure: imports nothing of app (nor fastapi, nor sqlalchemy)

Every import is an arrow: at module level, inside a function, and under
``TYPE_CHECKING``. Over ``app/`` and ``judges/`` the arrows make no cycle,
and no module reaches a private ``_name`` outside the scope that owns it.
Migrations import only the store and the foundation.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "judges")

FOUNDATION = "foundation"
FOUNDATION_MODULES = {"app", "app.settings", "app.errors", "app.keys"}
OBS = "app.observability"
MAY_IMPORT: dict[str, set[str]] = {
    "app.cli": {
        "app.api",
        "app.labeling",
        "app.export",
        "app.reports",
        "app.store",
        OBS,
        FOUNDATION,
    },
    "app.api": {"app.labeling", "app.export", "app.reports", "app.store", OBS, FOUNDATION},
    "app.labeling": {"app.export", "app.store", OBS, FOUNDATION},
    "app.export": {"app.store", OBS, FOUNDATION},
    "app.reports": {"app.store", OBS, FOUNDATION},
    "app.store": {OBS, FOUNDATION},
    # Metrics, traces and logs: recorded into from every layer above, so it
    # reaches nothing of theirs (what it reads from the database is handed in).
    OBS: {FOUNDATION},
    # Client adapters for training loops: importable with only an HTTP client,
    # so they reach nothing of the server.
    "app.integrations": set(),
    FOUNDATION: set(),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def package_of(module: str) -> str:
    """The package a module lives in (a package's own ``__init__`` lives in itself)."""
    return module if is_package(module) else module.rpartition(".")[0]


@dataclass(frozen=True)
class Import:
    """One dotted path a module reaches: a module, or ``module.name``."""

    target: str
    line: int


def _imports_in(module: str, node: ast.AST) -> Iterator[Import]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield Import(alias.name, node.lineno)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package_of(module).split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        yield Import(base, node.lineno)
        for alias in node.names:
            yield Import(f"{base}.{alias.name}", node.lineno)


def imports_of(module: str) -> Iterator[Import]:
    """Every import anywhere in the module (functions and TYPE_CHECKING too), made absolute."""
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        yield from _imports_in(module, node)


def internal(target: str) -> str | None:
    """The module of ours a dotted path lands in (its longest known prefix), if any."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if (candidate := ".".join(parts[:end])) in MODULES:
            return candidate
    return None


def module_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (not the parent packages Python also runs)."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = {internal(imp.target) for imp in imports_of(module)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, as ``[a, b, a]``, or None."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def layer_of(module: str) -> str:
    if module.split(".")[0] == "judges":
        return "judges"
    if module in FOUNDATION_MODULES:
        return FOUNDATION
    if (top := ".".join(module.split(".")[:2])) in MAY_IMPORT:
        return top
    raise AssertionError(f"{module} is in no layer: add it to MAY_IMPORT or FOUNDATION_MODULES")


def layer_violations(module: str, reached: list[Import]) -> list[str]:
    """The imports of ``module`` that point up or sideways, as ``line N: target (layer)``."""
    mine = layer_of(module)
    allowed = {mine, "judges", *MAY_IMPORT[mine]}
    return sorted(
        {
            f"line {imp.line}: {target} ({layer_of(target)})"
            for imp in reached
            if (target := internal(imp.target)) is not None and layer_of(target) not in allowed
        }
    )


def reaches_private(importer: str, path: str) -> bool:
    """Whether ``path`` is private to a scope ``importer`` is outside of.

    A ``_module`` (or a ``_name`` in a package's ``__init__``) is private to
    that package and its subpackages; a ``_name`` defined in a module is
    private to that module. Dunder names are not private.
    """
    parts = path.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:i])
            if owner in MODULES and not is_package(owner):
                return importer != owner
            own = package_of(importer)
            return not (own == owner or own.startswith(owner + "."))
    return False


def reached_paths(module: str) -> Iterator[Import]:
    """Paths of ours the module reaches: its imports, and attributes of modules it imported."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        reached = list(_imports_in(module, node))
        yield from (imp for imp in reached if imp.target.split(".")[0] in PACKAGES)
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                bound[alias.asname or root] = alias.name if alias.asname else root
        elif isinstance(node, ast.ImportFrom):
            for alias, imp in zip(node.names, reached[1:], strict=True):
                if imp.target in MODULES:
                    bound[alias.asname or alias.name] = imp.target
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (chain := _dotted(node)) and chain[0] in bound:
            path = ".".join([bound[chain[0]], *chain[1:]])
            if path.split(".")[0] in PACKAGES:
                yield Import(path, node.lineno)


def _dotted(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def third_party(path: Path) -> set[str]:
    """The absolute module names a file imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


class TestLayers:
    """Every import arrow points down the layers drawn in the module docstring."""

    @pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("app")))
    def test_app_imports_only_its_layer_and_the_ones_below(self, module: str) -> None:
        """An app module imports its own layer, judges, and the layers MAY_IMPORT lists."""
        assert not layer_violations(module, list(imports_of(module)))

    @pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("judges")))
    def test_judges_never_import_app(self, module: str) -> None:
        """judges/ is pure: it knows nothing of the service that uses it."""
        assert not [imp for imp in imports_of(module) if imp.target.split(".")[0] == "app"]

    def test_every_layer_in_the_rules_has_modules(self) -> None:
        """A renamed folder cannot leave a rule behind that silently checks nothing."""
        assert {layer_of(m) for m in MODULES if m.startswith("app")} == set(MAY_IMPORT)

    @pytest.mark.parametrize(
        ("module", "target", "allowed"),
        [
            ("app.cli", "app.api.deps", True),
            ("app.api.app", "app.labeling.runtime", True),
            ("app.labeling.compare", "app.store.db", True),
            ("app.export.rows", "app.keys", True),
            ("app.store.db", "app.errors", True),
            ("app.api.app", "app.cli", False),
            ("app.store.db", "app.labeling.compare", False),
            ("app.export.rows", "app.labeling.compare", False),
            ("app.reports.build", "app.export.run", False),
            ("app.settings", "app.store.db", False),
            ("app.labeling.calls", "app.observability.metrics", True),
            ("app.observability.metrics", "app.store.db", False),
        ],
    )
    def test_the_rule_on_examples(self, module: str, target: str, allowed: bool) -> None:
        """The layer table decides the textbook cases as drawn."""
        assert (not layer_violations(module, [Import(target, 1)])) is allowed

    @pytest.mark.parametrize("path", files("migrations"), ids=rel)
    def test_migrations_import_only_the_store_and_the_foundation(self, path: Path) -> None:
        """A migration never depends on use-case code, which goes on changing after it ships."""
        ours = [internal(n) for n in third_party(path) if n.split(".")[0] == "app"]
        assert all(m is not None and layer_of(m) in {"app.store", FOUNDATION} for m in ours)


class TestNoImportCycles:
    """Modules import in a tree: no circle, even through a function body or TYPE_CHECKING."""

    def test_the_module_graph_is_acyclic(self) -> None:
        """The module graph over app/ and judges/ has no cycle."""
        assert find_cycle(module_graph()) is None

    def test_a_cycle_is_found_and_named(self) -> None:
        """The checker names the modules of a cycle."""
        cycle = find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
        assert cycle is not None
        assert set(cycle) == {"a", "b", "c"}

    def test_the_graph_holds_imports_inside_functions_and_type_checking(self) -> None:
        """Lazy and typing-only imports are arrows too: run or type-checked, they circle alike."""
        nested = {
            (module, target)
            for module, path in MODULES.items()
            for node in ast.parse(path.read_text(encoding="utf-8")).body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.If)
            for inner in ast.walk(node)
            if isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0
            if (target := internal(inner.module)) is not None and target != module
        }
        assert nested
        graph = module_graph()
        assert {(m, t) for m, t in nested if t not in graph[m]} == set()


class TestPrivateNames:
    """No module reaches another scope's private ``_name``."""

    @pytest.mark.parametrize("module", sorted(MODULES))
    def test_private_names_stay_in_their_scope(self, module: str) -> None:
        """``_module`` only from inside its package; a module's ``_name`` only by that module."""
        bad = {
            f"line {r.line}: {r.target}"
            for r in reached_paths(module)
            if reaches_private(module, r.target)
        }
        assert not sorted(bad)

    @pytest.mark.parametrize(
        ("module", "path", "allowed"),
        [
            ("judges.cai.constitutions", "judges.cai._schema.parse_constitution", True),
            ("judges.cai.importers", "judges.cai._schema", True),
            ("judges.backends.anthropic", "judges.backends._caching.cacheable", True),
            ("judges.protocol", "judges.types.Pair", True),
            ("judges.base", "judges.cai._schema.ConstitutionError", False),
            ("judges.jury", "judges.protocol._helper", False),
            ("app.labeling.compare", "judges.backends._sdk_errors.translate", False),
            ("app.labeling.compare", "app.store.db._engine", False),
        ],
    )
    def test_the_rule_on_examples(self, module: str, path: str, allowed: bool) -> None:
        """The scope rule decides the textbook cases as stated."""
        assert (not reaches_private(module, path)) is allowed


@pytest.mark.parametrize("path", files("judges"), ids=rel)
def test_judges_never_import_fastapi_or_sqlalchemy(path: Path) -> None:
    """judges/ is pure: no web or SQL code."""
    bad = {n for n in third_party(path) if n.split(".")[0] in {"fastapi", "sqlalchemy"}}
    assert not bad


@pytest.mark.parametrize("path", [p for p in files("app") if "api" not in p.parts], ids=rel)
def test_only_the_api_imports_fastapi(path: Path) -> None:
    """Services and storage never import fastapi."""
    assert not {n for n in third_party(path) if n.split(".")[0] in {"fastapi", "starlette"}}


@pytest.mark.parametrize("path", [p for p in files("app") if "store" not in p.parts], ids=rel)
def test_sql_is_built_only_in_the_store(path: Path) -> None:
    """Outside app/store, SQLAlchemy appears only as the session type."""
    allowed = {"sqlalchemy.ext.asyncio"}
    assert not {n for n in third_party(path) if n.startswith("sqlalchemy") and n not in allowed}


@pytest.mark.parametrize("path", files("app") + files("judges"), ids=rel)
def test_nothing_commits_outside_the_unit_of_work_owner(path: Path) -> None:
    """Only Database.transaction commits; helpers never call session.commit()."""
    source = path.read_text(encoding="utf-8")
    assert ".commit()" not in source
