"""Schemathesis against the app's own OpenAPI: no 5xx, and every response as documented.

Every operation runs the examples, coverage and fuzzing phases with the
checks ``not_a_server_error``, ``status_code_conformance`` and
``response_schema_conformance``, authenticated with an admin key, against
the real app on SQLite and PostgreSQL with the in-process scripted judge as
the default, so a generated comparison is judged without any network. The
budget is bounded per operation (fewer examples on PostgreSQL, whose
round trips cost more), which keeps the whole run to a few minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from schemathesis.python import asgi

from app.api.app import create_app
from app.labeling.admin import create_key
from app.settings import Settings
from judges import JudgeRegistry
from tests.fake_provider import FakeProvider

CHECKS = ("not_a_server_error", "status_code_conformance", "response_schema_conformance")
# Examples per operation and phase: SQLite is cheap, PostgreSQL pays a round trip per query.
MAX_EXAMPLES = {"sqlite": 40, "postgresql": 10}


def schemathesis_config(key: str, backend: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {key}"},
            "seed": 13,
            # Each request's deadline: a hung request fails the run instead of stalling it.
            "request-timeout": 30,
            "generation": {
                "max-examples": MAX_EXAMPLES[backend],
                # Shrinking a failure can take minutes; the failing case is shown unshrunk.
                "no-shrink": True,
                "deterministic": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


@pytest.fixture
def api_schema(database_url: str, registry: JudgeRegistry, provider: FakeProvider) -> Iterator[Any]:
    """The app's schema, loaded through its ASGI interface with the lifespan started."""
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    settings = Settings(database_url=database_url, judges_file=None, default_judge="scripted:x")
    _, key = asyncio.run(create_key(settings, "schemathesis", ["admin"]))
    app = create_app(settings, registry)
    yield schemathesis.openapi.from_asgi(
        "/openapi.json", app, config=schemathesis_config(key, backend)
    )
    # Schemathesis keeps each app's lifespan running for reuse; end it with the database.
    asgi.shutdown_lifespans()


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32 renames each operation's subtest through the node's
    # private `_nodeid`, which pytest 9.2 no longer has: give it one to rename.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_api_conforms_to_its_openapi(case: schemathesis.Case) -> None:
    """No input makes a 5xx; each status and body is the one the OpenAPI documents."""
    case.call_and_validate()
