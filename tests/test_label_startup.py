"""Start-up of `referee label`: what it imports before its first call, and what it does not.

A provider's SDK is imported when a judge of it is built; a command's module
when the command runs; the migration machinery when a migration runs (the
schema check reads the version table itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from app.cli import Commands, cli
from app.store import migrate
from app.store.db import sync_url
from app.store.migrate import upgrade
from tests.fake_provider import FakeProvider
from tests.test_batch import pairs_file

# redis only when REFEREE_REDIS_URL asks for the fleet's budgets in it.
SDKS = ("anthropic", "openai", "torch", "transformers", "pyarrow", "numpy", "plotly", "redis")


# What `referee label` must not import (a whole live run of an OpenAI judge, start-up to
# summary): each is loaded only by the command, option or setting that needs it.
NOT_FOR_LABEL = {
    "anthropic": "the other provider's SDK: built judges import their own",
    "torch": "local judges",
    "transformers": "local judges",
    "numpy": "reports and local judges",
    "scipy": "reports",
    "pandas": "reports",
    "pyarrow": "export to Parquet",
    "plotly": "report charts",
    "redis": "REFEREE_REDIS_URL's shared rate budgets",
    "alembic": "migrations: the schema check reads the version table itself",
    "mako": "Alembic's templates",
    "rich.markdown": "typer's --help rendering",
    "markdown_it": "rich.markdown",
    "jinja2": "dataset cards",
    "fastapi": "referee serve",
    "uvicorn": "referee serve",
    "opentelemetry.sdk": "traces, when OTEL_* variables ask for them",
    "psutil": "the OpenTelemetry SDK's resources",
    "app.reports": "referee report",
    "app.export": "referee export",
    "app.labeling.rounds": "referee round",
    "app.labeling.rewards": "reward-model data",
    "app.labeling.review": "review queues",
    "app.store.schema": "every table's module (migrations and schema tests)",
    **{
        f"app.cli.{name}": "another command"
        for name in (
            "constitutions",
            "data",
            "generate",
            "keys",
            "rate",
            "report",
            "review",
            "revise",
            "round",
            "select",
            "service",
            "templates",
        )
    },
}


def imported_after(code: str, modules: tuple[str, ...] = SDKS) -> list[str]:
    """The heavy ``modules`` a fresh interpreter holds after running ``code``."""
    report = f"print(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    probe = f"import sys, json\n{code}\n{report}"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "OPENAI_API_KEY": "sk-test"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


class TestLazyProviders:
    def test_the_registry_imports_no_sdk_until_a_judge_is_built(self) -> None:
        """Building the registry loads no provider; building an OpenAI judge loads only openai."""
        registry = "from judges import JudgeRegistry\nr = JudgeRegistry.from_entry_points()"
        assert imported_after(registry) == []
        built = f"{registry}\nr.judge(r.resolve('openai:gpt-4o-mini'))"
        assert imported_after(built) == ["openai"]

    def test_label_help_imports_no_sdk(self) -> None:
        """`referee label --help` reads no SDK, model library or data frame package."""
        code = (
            "from app.cli import cli\n"
            "try:\n    cli(['label', '--help'])\nexcept SystemExit:\n    pass"
        )
        assert imported_after(code) == []

    def test_help_imports_no_migration_machinery(self) -> None:
        """Alembic is loaded by the schema check or a migration, not by parsing a command."""
        code = (
            "from app.cli import cli\n"
            "try:\n    cli(['label', '--help'])\nexcept SystemExit:\n    pass"
        )
        assert imported_after(code, ("alembic", "mako", "redis")) == []

    def test_a_live_run_of_an_openai_judge_never_imports_anthropic(
        self, tmp_path: Path, provider: FakeProvider
    ) -> None:
        """The whole live run, start-up to summary, with only the judge's own SDK."""
        url = f"sqlite:///{tmp_path / 'referee.db'}"
        upgrade(url)
        source = pairs_file(tmp_path / "pairs.jsonl", 3)
        code = (
            "import os\nfrom app.cli import cli\n"
            f"os.environ['REFEREE_DATABASE_URL'] = {url!r}\n"
            "try:\n"
            f"    cli(['label', {str(source)!r}, '--judge', 'openai:gpt-4o-mini'])\n"
            "except SystemExit as exit:\n"
            "    assert not exit.code, exit.code"
        )
        assert imported_after(code) == ["openai"]

    def test_a_live_run_imports_nothing_another_command_or_option_needs(
        self, tmp_path: Path, provider: FakeProvider
    ) -> None:
        """A run of `referee label`: none of NOT_FOR_LABEL, whatever imports it (table above)."""
        url = f"sqlite:///{tmp_path / 'referee.db'}"
        upgrade(url)
        source = pairs_file(tmp_path / "pairs.jsonl", 3)
        code = (
            "import os\nfrom app.cli import main\n"
            f"os.environ['REFEREE_DATABASE_URL'] = {url!r}\n"
            f"sys.argv = ['referee', 'label', {str(source)!r}, '--judge', 'openai:gpt-4o-mini']\n"
            "try:\n    main()\n"
            "except SystemExit as exit:\n"
            "    assert not exit.code, exit.code"
        )
        assert imported_after(code, tuple(NOT_FOR_LABEL)) == []


class TestLazyCommands:
    def test_a_command_imports_no_other_commands_module(self) -> None:
        """`referee label --help` builds label alone: no other command's module is imported."""
        others = tuple(name for name in NOT_FOR_LABEL if name.startswith("app.cli."))
        code = (
            "from app.cli import cli\n"
            "try:\n    cli(['label', '--help'])\nexcept SystemExit:\n    pass"
        )
        assert imported_after(code, others) == []

    def test_a_mistyped_command_is_suggested_without_importing_any(self) -> None:
        """The "did you mean" hint reads the names, not the commands."""
        code = (
            "from app.cli import cli\n"
            "try:\n    cli(['lable'], standalone_mode=False)\n"
            "except Exception as error:\n    print(error, file=sys.stderr)"
        )
        modules = tuple(f"app.cli.{module}" for module, _ in Commands.commands_at.values())
        assert imported_after(code, modules) == []

    @pytest.mark.parametrize("name", list(Commands.commands_at))
    def test_every_command_is_built_under_its_name(self, name: str) -> None:
        """Each name leads to a command of that name (a typo in the table fails here)."""
        import typer.main

        group = typer.main.get_command(cli)
        with group.make_context("referee", [name, "--help"], resilient_parsing=True) as ctx:
            command = group.get_command(ctx, name)  # type: ignore[attr-defined]
        assert command is not None
        assert command.name == name


def run_main(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``code`` (which sets sys.argv and may patch), then ``main()``; what ``seen`` holds."""
    program = (
        "import gc, json, sys, contextlib\nseen = {}\n"
        f"{code}\n"
        "from app.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    seen['exit'] = exit.code\n"
        "seen['enabled at exit'] = gc.isenabled()\n"
        "print(json.dumps(seen))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return seen


class TestStartupCollector:
    """main() pauses the cyclic collector for start-up; every command's work runs with it on."""

    def test_label_starts_with_it_paused_and_judges_with_it_on(
        self, tmp_path: Path, provider: FakeProvider
    ) -> None:
        url = f"sqlite:///{tmp_path / 'referee.db'}"
        upgrade(url)
        source = pairs_file(tmp_path / "pairs.jsonl", 3)
        code = (
            "import app.labeling.run as run, app.cli.label as label_cli\n"
            "build, view = run.judge_config, label_cli.progress_view\n"
            "def judge_config(*args):\n"
            "    seen['building the judge'] = gc.isenabled()\n"
            "    return build(*args)\n"
            "@contextlib.contextmanager\n"
            "def progress_view(total):\n"
            "    with view(total) as update:\n"
            "        seen['judging'] = gc.isenabled()\n"
            "        yield update\n"
            "run.judge_config, label_cli.progress_view = judge_config, progress_view\n"
            f"sys.argv = ['referee', 'label', {str(source)!r}, '--judge', 'openai:gpt-4o-mini']"
        )
        seen = run_main(code, {"REFEREE_DATABASE_URL": url})
        assert seen == {
            "building the judge": False,
            "judging": True,
            "exit": 0,
            "enabled at exit": True,
        }

    def test_a_dry_run_estimates_with_it_on(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'referee.db'}"
        upgrade(url)
        source = pairs_file(tmp_path / "pairs.jsonl", 3)
        code = (
            "import app.labeling.run as run\n"
            "estimate = run.estimate\n"
            "async def estimating(*args):\n"
            "    seen['estimating'] = gc.isenabled()\n"
            "    return await estimate(*args)\n"
            "run.estimate = estimating\n"
            f"sys.argv = ['referee', 'label', {str(source)!r}, '--judge', 'openai:gpt-4o-mini',"
            " '--dry-run']"
        )
        seen = run_main(code, {"REFEREE_DATABASE_URL": url, "OPENAI_API_KEY": "sk-test"})
        assert seen == {"estimating": True, "exit": 0, "enabled at exit": True}

    def test_other_commands_run_with_it_on(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'referee.db'}"
        upgrade(url)
        code = (
            "from app.store import migrate\n"
            "current = migrate.current_revisions\n"
            "def reading(url):\n"
            "    seen['working'] = gc.isenabled()\n"
            "    return current(url)\n"
            "migrate.current_revisions = reading\n"
            "sys.argv = ['referee', 'db', 'current']"
        )
        seen = run_main(code, {"REFEREE_DATABASE_URL": url})
        assert seen == {"working": True, "exit": 0, "enabled at exit": True}


class TestSchemaCheck:
    """The schema check, without Alembic, finds what Alembic finds."""

    def test_the_heads_are_alembics(self) -> None:
        script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
        assert migrate.head_revisions("sqlite://") == set(script.get_heads())

    def test_a_merge_written_over_several_lines_is_read(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        versions = tmp_path / "versions"
        versions.mkdir()
        (versions / "a.py").write_text('revision = "a"\ndown_revision = None\n')
        (versions / "b.py").write_text('revision = "b"\ndown_revision = "a"\n')
        (versions / "c.py").write_text('revision: str = "c"\ndown_revision: str = "a"\n')
        (versions / "m.py").write_text(
            'revision: str = "m"\ndown_revision: tuple[str, str] = (\n    "b",\n    "c",\n)\n'
        )
        (versions / "__init__.py").write_text('"""No revision: skipped, as Alembic does."""\n')
        monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
        assert migrate.head_revisions("sqlite://") == {"m"}
        assert set(ScriptDirectory(str(tmp_path)).get_heads()) == {"m"}

    def test_the_current_revisions_are_alembics(self, database_url: str, tmp_path: Path) -> None:
        """Migrated (SQLite and PostgreSQL), part-way, and never migrated."""
        part_way = f"sqlite:///{tmp_path / 'part.db'}"
        upgrade(part_way, "0010")
        never = f"sqlite:///{tmp_path / 'empty.db'}"
        for url in (database_url, part_way, never):
            engine = create_engine(sync_url(url))
            with engine.connect() as connection:
                alembics = set(MigrationContext.configure(connection).get_current_heads())
            engine.dispose()
            assert migrate.current_revisions(url) == alembics
        assert migrate.current_revisions(part_way) == {"0010"}
        assert migrate.current_revisions(never) == set()
        assert migrate.is_up_to_date(database_url)
        assert not migrate.is_up_to_date(part_way)
