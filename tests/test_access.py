"""Access: auth that fails closed, scopes per route, per-key daily budgets.

The route table test walks every route the app serves, so a route added
later is checked without anyone remembering to add it here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi import APIRouter, Depends, FastAPI, routing
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from app.api.app import create_app
from app.api.deps import ROUTE_ACCESS, is_loopback, require_access
from app.cli import cli
from app.cli.keys import ScopeName
from app.labeling.access import SCOPES, next_utc_midnight
from app.labeling.admin import create_key, list_keys, revoke_key
from app.settings import Settings
from app.store import migrate
from app.store.db import sync_url
from tests.conftest import pair_body
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"
PAID_ROUTES = {
    ("POST", "/v1/comparisons"),
    ("POST", "/v1/ratings"),
    ("POST", "/v1/revisions"),
    ("POST", "/v1/batches"),
    ("POST", "/v1/rounds"),
    ("POST", "/v1/generations"),
    ("POST", "/v1/rewards"),
}
PATH_VALUES = {"constitution_id": "hhh", "kind": "dpo"}


def v1_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves under /v1, however its routers are nested."""
    found: set[tuple[str, str]] = set()
    for context in routing.iter_route_contexts(app.routes):
        path = context.path_format or ""
        if path.startswith("/v1/"):
            found.update((method, path) for method in context.methods or ())
    return sorted(found)


def expected_scope(method: str, path: str) -> str:
    """The rule from the issue, written independently of app.api.deps.ROUTE_ACCESS."""
    if path.startswith("/v1/review-queues"):  # issue 18: making a queue is admin's
        return "admin" if (method, path) == ("POST", "/v1/review-queues") else "review"
    if method == "GET":
        return "read"
    if path.endswith("/reviews"):
        return "review"
    return "label"


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m[1], str(uuid.uuid4())), path)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def without_key(api: TestClient) -> Iterator[TestClient]:
    """The fixture's client with its default admin key taken off for a while."""
    saved = api.headers.pop("Authorization")
    try:
        yield api
    finally:
        api.headers["Authorization"] = saved


def new_key(settings: Settings, *scopes: str, budget: str | None = None) -> tuple[int, str]:
    return asyncio.run(
        create_key(settings, "-".join(scopes), scopes, Decimal(budget) if budget else None)  # type: ignore[arg-type]
    )


def assert_unauthorized(response_status: int, headers: dict[str, str], message: str) -> None:
    assert response_status == 401
    assert headers.get("www-authenticate", "").startswith("Bearer")
    assert "referee keys create" in message


class TestRouteTable:
    def test_every_v1_route_has_a_line_in_the_access_table(self, api: TestClient) -> None:
        """A route missing from ROUTE_ACCESS would need admin; every route must say its scope."""
        routes = v1_routes(api.app)  # type: ignore[arg-type]
        assert routes, "no /v1 route found: the route walk is broken"
        assert set(routes) == {line for line in ROUTE_ACCESS if line[1].startswith("/v1/")}
        spec_paths = api.get("/openapi.json").json()["paths"]
        assert {
            (m.upper(), p) for p, ops in spec_paths.items() for m in ops if p.startswith("/v1/")
        } == set(routes)
        for method, path in routes:
            access = ROUTE_ACCESS[(method, path)]
            assert access.scope == expected_scope(method, path), (method, path)
            assert access.spends == ((method, path) in PAID_ROUTES), (method, path)

    def test_every_route_times_every_kind_of_key(self, api: TestClient, settings: Settings) -> None:
        """Each /v1 route: no, unknown or revoked key → 401; a key without its scope → 403."""
        keys = {scope: new_key(settings, scope)[1] for scope in SCOPES}
        revoked_id, revoked = new_key(settings, "admin")
        assert asyncio.run(revoke_key(settings, revoked_id))
        problems: list[str] = []
        for method, path in v1_routes(api.app):  # type: ignore[arg-type]
            url, needed = concrete(path), expected_scope(method, path)
            with without_key(api):
                cases = {"no key": api.request(method, url)}
            cases["unknown key"] = api.request(method, url, headers=bearer("ref_" + "x" * 43))
            cases["revoked key"] = api.request(method, url, headers=bearer(revoked))
            for case, response in cases.items():
                error = response.json()["error"] if response.status_code == 401 else {}
                if (
                    response.status_code != 401
                    or "Bearer" not in response.headers.get("www-authenticate", "")
                    or "referee keys create" not in error.get("message", "")
                ):
                    problems.append(f"{method} {path} {case}: {response.status_code}")
            for scope, key in keys.items():
                response = api.request(method, url, headers=bearer(key))
                allowed = scope in (needed, "admin")
                if allowed and response.status_code in (401, 403):
                    problems.append(f"{method} {path} {scope}: refused {response.status_code}")
                if not allowed and (
                    response.status_code != 403
                    or response.json()["error"]["details"]["required_scope"] != needed
                    or repr(needed) not in response.json()["error"]["message"]
                ):
                    problems.append(f"{method} {path} {scope}: {response.status_code}, not 403")
        assert problems == []

    def test_a_route_missing_from_the_table_needs_admin(
        self, api: TestClient, settings: Settings
    ) -> None:
        """Fail closed: a /v1 route nobody gave a scope is for admin keys only."""
        extra = APIRouter(prefix="/v1/extra")
        extra.add_api_route("", lambda: {"ok": True}, methods=["GET"])
        api.app.include_router(extra, dependencies=[Depends(require_access)])  # type: ignore[attr-defined]
        _, reader = new_key(settings, "read")
        response = api.get("/v1/extra", headers=bearer(reader))
        assert response.status_code == 403
        assert response.json()["error"]["details"]["required_scope"] == "admin"
        assert api.get("/v1/extra").json() == {"ok": True}

    @pytest.mark.parametrize(
        ("host", "loopback"),
        [
            ("127.0.0.1", True),
            ("127.8.8.8", True),
            ("::1", True),
            ("localhost", True),
            ("0.0.0.0", False),
            ("::", False),
            ("10.0.0.1", False),
            ("example.com", False),
            ("", False),
            (None, False),
        ],
    )
    def test_loopback_addresses(self, host: str | None, loopback: bool) -> None:
        """Only addresses that cannot be reached from another machine count as loopback."""
        assert is_loopback(host) is loopback

    def test_every_review_page_route_has_a_review_line(self, api: TestClient) -> None:
        """/review signs people in with a key: each of its routes needs ``review``, and is
        left out of OpenAPI (HTML forms, not the JSON API)."""
        found = {
            (method, context.path_format)
            for context in routing.iter_route_contexts(api.app.routes)  # type: ignore[attr-defined]
            if (context.path_format or "").startswith("/review")
            and not (context.path_format or "").startswith("/review/static")
            for method in context.methods or ()
        }
        lines = {line for line in ROUTE_ACCESS if line[1].startswith("/review")}
        assert found
        assert found == lines
        assert all(ROUTE_ACCESS[line].scope == "review" for line in lines)
        assert not [p for p in api.get("/openapi.json").json()["paths"] if p.startswith("/review")]

    def test_review_page_without_a_session_shows_the_sign_in_form_only(
        self, api: TestClient, settings: Settings
    ) -> None:
        """A bearer key does not sign the page in; without a session GET /review is the form,
        and every other page route sends the browser there or refuses, showing no data."""
        key = new_key(settings, "review")[1]
        for headers in ({}, bearer(key)):
            with without_key(api):
                home = api.get("/review", headers=headers)
                assert home.status_code == 200
                assert 'action="/review/sign-in"' in home.text
                assert "Sign out" not in home.text
                for method, path in ROUTE_ACCESS:
                    if path.startswith("/review/queues"):
                        url = concrete(path)
                        response = api.request(method, url, headers=headers, follow_redirects=False)
                        assert response.status_code == 303, (method, path)
                        assert response.headers["location"] == "/review"

    def test_health_and_openapi_stay_open(self, api: TestClient) -> None:
        """/healthz and /openapi.json need no key."""
        with without_key(api):
            assert api.get("/healthz").status_code == 200
            assert api.get("/openapi.json").status_code == 200


class TestFailsClosed:
    def test_no_key_in_the_table_is_401(self, settings: Settings, provider: FakeProvider) -> None:
        """An empty key table does not open the API (it did before)."""
        with TestClient(create_app(settings)) as client:
            response = client.get("/v1/judges")
            assert_unauthorized(
                response.status_code, dict(response.headers), response.json()["error"]["message"]
            )
            response = client.get("/v1/judges", headers=bearer("ref_anything"))
            assert response.status_code == 401

    def test_revoking_the_last_key_leaves_the_api_closed(
        self, settings: Settings, provider: FakeProvider
    ) -> None:
        """After a leak, revoking the only key closes the API to everyone, the revoked key too."""
        key_id, key = new_key(settings, "admin")
        with TestClient(create_app(settings)) as client:
            assert client.get("/v1/judges", headers=bearer(key)).status_code == 200
            assert asyncio.run(revoke_key(settings, key_id))
            assert [k.revoked_at is not None for k in asyncio.run(list_keys(settings))] == [True]
            for headers in (bearer(key), {}):
                response = client.get("/v1/comparisons", headers=headers)
                assert_unauthorized(
                    response.status_code,
                    dict(response.headers),
                    response.json()["error"]["message"],
                )

    def test_auth_off_serves_loopback_only(self, database_url: str, provider: FakeProvider) -> None:
        """REFEREE_AUTH=off: no key on 127.0.0.1; a connection to another address is refused."""
        settings = Settings(database_url=database_url, judges_file=None, auth="off")
        app = create_app(settings)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            assert client.get("/v1/judges").status_code == 200
        with TestClient(app, base_url="http://10.1.2.3") as client:
            assert client.get("/v1/judges").status_code == 401

    def test_auth_is_a_setting_that_defaults_to_required(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """REFEREE_AUTH is required unless set to off; anything else is a settings error."""
        monkeypatch.delenv("REFEREE_AUTH", raising=False)
        assert Settings().auth == "required"
        monkeypatch.setenv("REFEREE_AUTH", "open")
        with pytest.raises(ValueError, match="auth"):
            Settings()


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


class TestServe:
    def test_auth_off_is_refused_on_a_public_address(self, tmp_path: Path) -> None:
        """`referee serve --host 0.0.0.0` with REFEREE_AUTH=off exits, naming loopback."""
        env = {
            **os.environ,
            "REFEREE_AUTH": "off",
            "REFEREE_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
        }
        result = run_cli("serve", "--host", "0.0.0.0", "--port", "0", env=env)
        assert result.returncode == 2
        assert "loopback" in result.stderr

    @pytest.mark.parametrize("mode", ["required", "off"])
    def test_serve_logs_its_auth_mode(self, tmp_path: Path, mode: str) -> None:
        """`referee serve` says which auth mode it runs in before it serves (its first log line)."""
        url = f"sqlite:///{tmp_path / 'r.db'}"
        migrate.upgrade(url)
        env = {**os.environ, "REFEREE_AUTH": mode, "REFEREE_DATABASE_URL": url}
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert process.stdout is not None
            # Piped, every line is JSON; the mode is said before uvicorn starts.
            events = (json.loads(line)["event"] for line in process.stdout)
            first = next(e for e in events if e.startswith("auth: ") or "Uvicorn" in e)
        finally:
            process.terminate()
            process.wait(timeout=30)
        assert first.startswith(f"auth: {mode}")


class TestKeysCommand:
    def test_create_with_scopes_and_budget_then_list(self, database_url: str) -> None:
        """`referee keys create NAME --scope … --daily-budget` stores both; list shows them."""
        runner = CliRunner()
        env = {"REFEREE_DATABASE_URL": database_url}
        args = ["keys", "create", "trainer", "--scope", "label", "--scope", "read"]
        result = runner.invoke(cli, [*args, "--daily-budget", "5"], env=env)
        assert result.exit_code == 0, result.output
        assert re.search(r"\(read label, \$5/day\): ref_\S{43}", result.output)
        listed = runner.invoke(cli, ["keys", "list"], env=env)
        assert "trainer" in listed.output
        assert re.search(r"trainer\s+ref_\S+\s+label,read\s+\$5/day\s+active", listed.output)

    def test_an_unknown_scope_is_refused(self, database_url: str) -> None:
        """A misspelt scope is a usage error naming the choices; no key is made."""
        env = {"REFEREE_DATABASE_URL": database_url}
        result = CliRunner().invoke(cli, ["keys", "create", "x", "--scope", "write"], env=env)
        assert result.exit_code == 2
        assert "read" in result.output
        assert "admin" in result.output
        assert asyncio.run(list_keys(Settings(database_url=database_url))) == []

    def test_the_cli_offers_exactly_the_scopes(self) -> None:
        """The CLI's choices and the scopes the server checks are the same set."""
        assert [s.value for s in ScopeName] == list(SCOPES)


class TestBudgets:
    def test_a_spent_budget_is_429_before_any_call(
        self, api: TestClient, settings: Settings, provider: FakeProvider
    ) -> None:
        """Once a key's calls today cost its budget, paid routes answer 429 and call nothing."""
        key_id, key = new_key(settings, "label", "read", budget="0.000001")
        first = api.post("/v1/comparisons", json=pair_body(judge=JUDGE), headers=bearer(key))
        assert first.status_code == 201, first.text
        calls = len(provider.requests())
        assert calls == 2
        again = pair_body(judge=JUDGE, prompt="Another question?")
        refused = api.post("/v1/comparisons", json=again, headers=bearer(key))
        assert refused.status_code == 429
        assert refused.json()["error"]["details"]["daily_budget_usd"] == pytest.approx(1e-6)
        to_midnight = (next_utc_midnight(datetime.now(UTC)) - datetime.now(UTC)).total_seconds()
        assert abs(int(refused.headers["retry-after"]) - to_midnight) <= 5
        assert len(provider.requests()) == calls
        # Reading costs nothing and stays open; another key's budget is its own.
        assert api.get("/v1/comparisons", headers=bearer(key)).status_code == 200
        assert api.post("/v1/comparisons", json=again).status_code == 201
        engine = create_engine(sync_url(settings.database_url))
        with engine.connect() as connection:
            owners = Counter(
                connection.execute(text("SELECT api_key_id FROM judge_calls")).scalars()
            )
        engine.dispose()
        assert owners.pop(key_id) == 2
        assert [count for owner, count in owners.items() if owner is not None] == [2]

    def test_concurrent_requests_of_one_key_overshoot_by_one_request_at_most(
        self, api: TestClient, settings: Settings, provider: FakeProvider
    ) -> None:
        """10 different comparisons at once from a key whose budget one request spends.

        Without a per-key gate each passes the check before any is billed (20
        calls); with it, one request is judged and the other nine get 429.
        """
        provider.configure(latency_ms=200)
        _key_id, key = new_key(settings, "label", budget="0.000001")

        def send(i: int) -> int:
            body = pair_body(judge=JUDGE, prompt=f"Question {i}?")
            return api.post("/v1/comparisons", json=body, headers=bearer(key)).status_code

        with ThreadPoolExecutor(10) as pool:
            statuses = list(pool.map(send, range(10)))
        assert sorted(statuses) == [201] + [429] * 9, statuses
        assert len(provider.requests()) == 2

    def test_a_batch_bills_its_key_and_stops_when_the_budget_is_spent(
        self, database_url: str, provider: FakeProvider
    ) -> None:
        """Calls of a batch's background worker count against the submitting key; it stops.

        The worker checks the stored spend before each claim, so it may finish
        the pairs in flight and in the write window (one pair here) past the budget.
        """
        provider.configure(latency_ms=200)
        settings = Settings(database_url=database_url, judges_file=None, api_worker_concurrency=1)
        key_id, key = new_key(settings, "label", "read", budget="0.000001")
        items = [pair_body(prompt=f"q{i}?") for i in range(8)]
        with TestClient(create_app(settings), headers=bearer(key)) as client:
            submitted = client.post(f"/v1/batches?judge={JUDGE}", json=items)
            assert submitted.status_code == 202, submitted.text
            wait_until_settled(database_url, provider)
            state = client.get(f"/v1/batches/{submitted.json()['id']}").json()
            refused = client.post(f"/v1/batches?judge={JUDGE}", json=items[:1])
        assert refused.status_code == 429
        assert state["counts"]["pending"] >= len(items) - 3, state
        assert len(provider.requests()) <= 2 * 3
        engine = create_engine(sync_url(database_url))
        with engine.connect() as connection:
            owners = set(connection.execute(text("SELECT api_key_id FROM judge_calls")).scalars())
            batch_key = connection.execute(text("SELECT api_key_id FROM batches")).scalar_one()
        engine.dispose()
        assert owners == {key_id}
        assert batch_key == key_id


def wait_until_settled(database_url: str, provider: FakeProvider, timeout: float = 30) -> None:
    """Until the provider saw calls, none for a second, and no pair is leased any more."""
    engine = create_engine(sync_url(database_url))
    seen, quiet_since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            time.sleep(0.1)
            count = len(provider.requests())
            if count != seen:
                seen, quiet_since = count, time.monotonic()
                continue
            with engine.connect() as connection:
                leased = connection.execute(
                    text("SELECT count(*) FROM comparisons WHERE lease_owner IS NOT NULL")
                ).scalar_one()
            if count and not leased and time.monotonic() - quiet_since > 1:
                return
    finally:
        engine.dispose()
    raise AssertionError("the batch worker did not settle")


def test_keys_from_before_scopes_become_admin(database_url: str) -> None:
    """The migration gives keys that could do everything the admin scope, so they keep working."""
    migrate.downgrade(database_url, "0009")
    engine = create_engine(sync_url(database_url))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_keys (name, prefix, key_hash, created_at)"
                " VALUES ('old', 'ref_old', :hash, :now)"
            ),
            {"hash": "0" * 64, "now": datetime.now(UTC)},
        )
    migrate.upgrade(database_url)
    with engine.connect() as connection:
        scopes = connection.execute(text("SELECT scopes FROM api_keys")).scalar_one()
    engine.dispose()
    assert (json.loads(scopes) if isinstance(scopes, str) else scopes) == ["admin"]
