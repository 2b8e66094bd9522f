"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, the fake provider, the app.

Every database test runs twice, once per backend. PostgreSQL comes from
REFEREE_TEST_POSTGRES_URL (default: the local server, database ``postgres``);
one scratch database is created per session, built by the real migrations,
and emptied between tests. Set REFEREE_TEST_SKIP_POSTGRES=1 on a machine
without PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.api.app import create_app
from app.labeling.admin import create_key
from app.settings import Settings
from app.store import migrate
from app.store.models import Base
from judges import JudgeRegistry
from judges.testing import Script, ScriptedJudge
from tests.fake_provider import FakeProvider

POSTGRES_ADMIN_URL = os.environ.get(
    "REFEREE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SKIP_POSTGRES = os.environ.get("REFEREE_TEST_SKIP_POSTGRES") == "1"
ANTHROPIC_TEST_KEY = "sk-ant-test-" + "0123456789abcdef"
OPENAI_TEST_KEY = "sk-openai-test-" + "fedcba9876543210"


TEST_DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _tests_data_untouched() -> Iterator[None]:
    """No test writes into tests/data: ``referee label`` writes FILE.rejects.jsonl beside
    its input unless --rejects says where, so pass a tmp path or copy the file first."""
    before = set(TEST_DATA.rglob("*"))
    yield
    written = sorted(str(path) for path in set(TEST_DATA.rglob("*")) - before)
    assert not written, f"the test wrote into tests/data: {written}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A scratch PostgreSQL database for this test session, migrated to head."""
    admin_url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg")
    name = f"referee_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or the emptied PostgreSQL scratch db."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'referee.db'}"
        migrate.upgrade(url)
        return url
    if SKIP_POSTGRES:
        pytest.skip("REFEREE_TEST_SKIP_POSTGRES=1")
    url = str(request.getfixturevalue("postgres_url"))
    _empty_postgres(url)
    return url


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture
def provider(fake_provider_server: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> FakeProvider:
    """The fake provider, reset, with both SDKs pointed at it through their env vars."""
    fake_provider_server.reset()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_provider_server.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_TEST_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider_server.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_TEST_KEY)
    return fake_provider_server


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, judges_file=None)


@pytest.fixture
def script() -> Script:
    """What the in-process ``scripted:`` judge will do; tests change it."""
    return Script()


@pytest.fixture
def registry(script: Script) -> JudgeRegistry:
    """The real registry (entry points) plus the in-process scripted judge."""
    registry = JudgeRegistry.from_entry_points()
    registry.register("scripted", lambda config: ScriptedJudge(config, script))
    return registry


@contextmanager
def serve_app(settings: Settings, registry: JudgeRegistry | None = None) -> Iterator[TestClient]:
    """The app through its lifespan, with a fresh admin key sent on every request.

    Auth is required by default, so the client carries ``Authorization:
    Bearer …``; a test about access passes its own header or builds its own client.
    """
    _, key = asyncio.run(create_key(settings, "tests", ["admin"]))
    app = create_app(settings, registry)
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


@pytest.fixture
def api(
    settings: Settings, registry: JudgeRegistry, provider: FakeProvider
) -> Iterator[TestClient]:
    """The app, started through its lifespan, against the test database and fake provider."""
    with serve_app(settings, registry) as client:
        yield client


def pair_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "prompt": "What is the capital of France?",
        "response_a": "Paris is the capital of France.",
        "response_b": "Lyon.",
    }
    body.update(overrides)
    return body
