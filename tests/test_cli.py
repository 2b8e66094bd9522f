"""The referee command line, run as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from app.store import migrate
from app.store.db import sync_url
from app.store.models import Comparison, JudgeCall
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"


def referee(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=120,
        check=False,
    )


@pytest.fixture
def env(database_url: str, provider: FakeProvider) -> dict[str, str]:
    return {**os.environ, "REFEREE_DATABASE_URL": database_url}


def count(database_url: str, model: type) -> int:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        n = connection.execute(select(func.count()).select_from(model)).scalar_one()
    engine.dispose()
    return int(n)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pair_line(n: int) -> str:
    return json.dumps(
        {"id": f"p{n}", "prompt": f"q{n}", "response_a": "long answer", "response_b": "s"}
    )


class TestLabel:
    def test_labels_a_file_and_reports_bad_lines(
        self, tmp_path: Path, env: dict[str, str], database_url: str, provider: FakeProvider
    ) -> None:
        """A malformed line names file and line; the lines before and after are stored."""
        provider.configure(policy="longer")
        source = write_lines(
            tmp_path / "pairs.jsonl",
            [pair_line(1), '{"prompt": "x", "response_a": "y"', pair_line(2), '{"prompt": "x"}'],
        )
        result = referee("label", str(source), "--judge", JUDGE, env=env)
        assert result.returncode == 1, result.stderr
        assert f"{source}:2: invalid JSON" in result.stderr
        assert f"{source}:4: field 'response_a': Field required" in result.stderr
        assert "Traceback" not in result.stderr
        assert count(database_url, Comparison) == 2
        assert count(database_url, JudgeCall) == 4

    def test_second_run_reuses_and_stdin_works(
        self, tmp_path: Path, env: dict[str, str], database_url: str, provider: FakeProvider
    ) -> None:
        """Running the same input again calls no model; '-' reads stdin."""
        lines = "\n".join([pair_line(1), pair_line(2)]) + "\n"
        first = referee("label", "-", "--judge", JUDGE, env=env, stdin=lines)
        assert first.returncode == 0, first.stderr
        second = referee("label", "-", "--judge", JUDGE, env=env, stdin=lines)
        assert second.returncode == 0
        assert "this run judged 0 pairs" in second.stdout
        assert len(provider.requests()) == 4

    def test_same_result_as_the_api(
        self, tmp_path: Path, env: dict[str, str], database_url: str, provider: FakeProvider
    ) -> None:
        """CLI and HTTP share one use case, so the stored verdict is identical."""
        from app.settings import Settings
        from tests.conftest import serve_app

        referee("label", "-", "--judge", JUDGE, env=env, stdin=pair_line(7) + "\n")
        with serve_app(Settings(database_url=database_url)) as api:
            body = json.loads(pair_line(7))
            response = api.post("/v1/comparisons", json={**body, "judge": JUDGE})
        assert response.status_code == 200
        assert response.json()["reused"] is True

    def test_unknown_judge_is_one_clean_line(self, env: dict[str, str]) -> None:
        """User errors print one line and no traceback."""
        result = referee("label", "-", "--judge", "nope:x", env=env, stdin="")
        assert result.returncode == 2
        assert "unknown judge 'nope:x'" in result.stderr
        assert "Traceback" not in result.stderr


class TestDatabase:
    def test_serve_refuses_an_outdated_schema(self, tmp_path: Path) -> None:
        """`referee serve` on an empty database names the command to run."""
        env = {**os.environ, "REFEREE_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
        result = referee("serve", "--port", "0", env=env)
        assert result.returncode == 2
        assert "referee db upgrade" in result.stderr

    def test_db_upgrade(self, tmp_path: Path) -> None:
        """`referee db upgrade` brings a new database to the head revision."""
        url = f"sqlite:///{tmp_path / 'new.db'}"
        result = referee("db", "upgrade", env={**os.environ, "REFEREE_DATABASE_URL": url})
        assert result.returncode == 0, result.stderr
        assert migrate.is_up_to_date(url)

    def test_help_has_examples(self) -> None:
        """--help shows runnable examples."""
        result = referee("label", "--help", env=dict(os.environ))
        assert "referee label pairs.jsonl --judge" in result.stdout
