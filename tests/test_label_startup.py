"""Start-up of `referee label`: a provider's SDK is imported when a judge of it is built."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.store.migrate import upgrade
from tests.fake_provider import FakeProvider
from tests.test_batch import pairs_file

# redis only when REFEREE_REDIS_URL asks for the fleet's budgets in it.
SDKS = ("anthropic", "openai", "torch", "transformers", "pyarrow", "numpy", "plotly", "redis")


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
