"""The HTTP API on SQLite and PostgreSQL, judges through the real SDKs and the fake provider."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.labeling.admin import create_key
from app.settings import Settings
from judges import JudgeRegistry
from tests.conftest import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY, pair_body, serve_app
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"


class TestCreateComparison:
    def test_stores_a_verdict_with_both_orders(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """201 with the verdict and one call per order, each stored with its order."""
        provider.configure(policy="longer")
        response = api.post("/v1/comparisons", json=pair_body(judge=JUDGE, id="q1"))
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["verdict"]["winner"] == "a"
        assert body["verdict"]["position_consistent"] is True
        assert body["verdict"]["length_a"] > body["verdict"]["length_b"]
        assert sorted(c["order"] for c in body["calls"]) == ["ab", "ba"]
        assert {c["parsed"]["position"] for c in body["calls"]} == {"1", "2"}
        assert all(c["template_version"] == "pairwise-v1" for c in body["calls"])
        assert all(c["cost_usd"] and c["cost_usd"] > 0 for c in body["calls"])
        assert body["external_id"] == "q1"
        fetched = api.get(f"/v1/comparisons/{body['id']}").json()
        assert fetched["verdict"] == body["verdict"]

    def test_same_request_reuses_the_stored_verdict(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """The second identical request calls no model; force judges again."""
        first = api.post("/v1/comparisons", json=pair_body(judge=JUDGE)).json()
        again = api.post("/v1/comparisons", json=pair_body(judge=JUDGE))
        assert again.status_code == 200
        assert again.json()["reused"] is True
        assert again.json()["id"] == first["id"]
        assert len(provider.requests()) == 2
        forced = api.post("/v1/comparisons", json=pair_body(judge=JUDGE, force=True)).json()
        assert len(provider.requests()) == 4
        assert forced["id"] == first["id"]
        assert len(forced["previous_verdicts"]) == 1
        assert forced["verdict"]["id"] != first["verdict"]["id"]

    def test_a_different_judge_configuration_is_a_new_label(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """Another model is another label key, so another comparison."""
        first = api.post("/v1/comparisons", json=pair_body(judge=JUDGE)).json()
        other = api.post("/v1/comparisons", json=pair_body(judge="openai:gpt-4o-mini")).json()
        assert other["id"] != first["id"]
        assert other["judge_spec"] == "openai:gpt-4o-mini"

    def test_messages_and_assistant_messages_are_accepted(self, api: TestClient) -> None:
        """Conversation prompts and assistant-message responses keep their shape."""
        body = pair_body(
            judge=JUDGE,
            prompt=[{"role": "user", "content": "Hi"}],
            response_a={"role": "assistant", "content": "Hello! How can I help?"},
            response_b=[{"role": "assistant", "content": "Hi."}],
        )
        response = api.post("/v1/comparisons", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["prompt"] == [{"role": "user", "content": "Hi"}]
        assert response.json()["response_b"] == [{"role": "assistant", "content": "Hi."}]

    def test_position_biased_judge_is_a_marked_tie(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """A judge that always picks the first slot yields a tie, position_consistent false."""
        provider.configure(policy="first")
        body = api.post("/v1/comparisons", json=pair_body(judge=JUDGE)).json()
        assert body["verdict"]["winner"] == "tie"
        assert body["verdict"]["position_consistent"] is False

    def test_scripted_in_process_judge_through_the_registry(self, api: TestClient) -> None:
        """A judge plugged into the registry is used like a built-in one."""
        body = api.post("/v1/comparisons", json=pair_body(judge="scripted:longer")).json()
        assert body["verdict"]["winner"] == "a"


class TestBadInput:
    def test_missing_field_names_it(self, api: TestClient) -> None:
        """422 whose details point at the missing field."""
        body = pair_body(judge=JUDGE)
        del body["response_b"]
        response = api.post("/v1/comparisons", json=body)
        assert response.status_code == 422
        details = response.json()["error"]["details"]
        assert details["field"] == "body.response_b"
        assert "body.response_b" in [e["field"] for e in details["errors"]]

    def test_mistyped_field(self, api: TestClient) -> None:
        """A number where text belongs is a 422 naming the field."""
        response = api.post("/v1/comparisons", json=pair_body(judge=JUDGE, response_a=5))
        assert response.status_code == 422
        errors = response.json()["error"]["details"]["errors"]
        assert any(e["field"].startswith("body.response_a") for e in errors)

    def test_user_message_as_response_is_rejected(self, api: TestClient) -> None:
        """A response must be the assistant's."""
        bad = pair_body(judge=JUDGE, response_a={"role": "user", "content": "x"})
        assert api.post("/v1/comparisons", json=bad).status_code == 422

    def test_text_over_the_limit_is_413(
        self, settings: Settings, registry: JudgeRegistry, provider: FakeProvider
    ) -> None:
        """A text beyond REFEREE_MAX_TEXT_CHARS is refused before any model call."""
        small = settings.model_copy(update={"max_text_chars": 10})
        with serve_app(small, registry) as api:
            response = api.post("/v1/comparisons", json=pair_body(judge=JUDGE))
        assert response.status_code == 413
        assert response.json()["error"]["details"]["field"] == "prompt"
        assert provider.requests() == []

    def test_unknown_judge_lists_providers(self, api: TestClient) -> None:
        """400 naming the providers that exist."""
        response = api.post("/v1/comparisons", json=pair_body(judge="nosuch:model"))
        assert response.status_code == 400
        message = response.json()["error"]["message"]
        assert "anthropic" in message
        assert "openai" in message

    def test_missing_provider_key_is_503_naming_the_variable(
        self, api: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The server lacks a key: 503 that says which variable to set."""
        monkeypatch.delenv("OPENAI_API_KEY")
        response = api.post("/v1/comparisons", json=pair_body(judge="openai:gpt-4o"))
        assert response.status_code == 503
        assert "OPENAI_API_KEY" in response.json()["error"]["message"]

    def test_judge_failure_is_502_and_the_failed_calls_are_stored(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """No verdict is invented: the failure and its calls are kept, the reply is 502."""
        provider.configure(fail_rates={"500": 1.0})
        response = api.post("/v1/comparisons", json=pair_body(judge=JUDGE))
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["details"]["error_class"] == "transient"
        stored = api.get(f"/v1/comparisons/{error['details']['comparison_id']}").json()
        assert stored["status"] == "failed"
        assert stored["verdict"] is None
        assert len(stored["calls"]) == 8  # 2 orders x 4 attempts
        assert all(c["error_class"] == "transient" for c in stored["calls"])
        provider.configure(fail_rates={})
        retried = api.post("/v1/comparisons", json=pair_body(judge=JUDGE))
        assert retried.status_code == 201
        assert retried.json()["id"] == stored["id"]


class TestListing:
    def test_filters_and_cursor_pagination(self, api: TestClient, provider: FakeProvider) -> None:
        """Pages chain through next_cursor without gaps or repeats; filters narrow."""
        provider.configure(policy="longer")
        ids = []
        for n in range(5):
            body = pair_body(judge=JUDGE, prompt=f"q{n}", response_a="long answer", response_b="s")
            ids.append(api.post("/v1/comparisons", json=body).json()["id"])
        api.post("/v1/comparisons", json=pair_body(judge="scripted:x", response_a="s"))
        seen, cursor = [], None
        while True:
            params = {"judge": JUDGE, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = api.get("/v1/comparisons", params=params).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids
        winners_b = api.get("/v1/comparisons", params={"winner": "b"}).json()["items"]
        assert [item["judge"] for item in winners_b] == ["scripted:x"]
        future = api.get("/v1/comparisons", params={"created_after": "2999-01-01T00:00:00Z"})
        assert future.json()["items"] == []

    def test_bad_filter_values(self, api: TestClient) -> None:
        """Unknown winners and forged cursors are 422s."""
        assert api.get("/v1/comparisons", params={"winner": "c"}).status_code == 422
        assert api.get("/v1/comparisons", params={"cursor": "garbage"}).status_code == 422

    def test_unknown_id_is_404(self, api: TestClient) -> None:
        """A well-formed id that does not exist."""
        response = api.get("/v1/comparisons/00000000-0000-0000-0000-000000000000")
        assert response.status_code == 404


class TestMeta:
    def test_judges(self, api: TestClient) -> None:
        """The registered providers are listed."""
        assert {"anthropic", "openai", "scripted"} <= set(api.get("/v1/judges").json()["providers"])

    def test_healthz(self, api: TestClient) -> None:
        """Health checks the database."""
        assert api.get("/healthz").json() == {"status": "ok", "database": "ok"}

    def test_openapi_documents_routes_and_errors(self, api: TestClient) -> None:
        """The OpenAPI document lists every route with its error responses."""
        spec = api.get("/openapi.json").json()
        post = spec["paths"]["/v1/comparisons"]["post"]
        assert {"201", "400", "401", "413", "422", "502", "503"} <= set(post["responses"])
        assert "/v1/comparisons/{comparison_id}" in spec["paths"]
        assert "/v1/judges" in spec["paths"]
        assert "ErrorOut" in spec["components"]["schemas"]


class TestAccessControl:
    def test_keys_gate_v1_but_not_healthz(self, api: TestClient, settings: Settings) -> None:
        """/v1 needs a valid key; /healthz stays open. (tests/test_access.py has every route.)"""
        assert api.get("/v1/judges").status_code == 200  # the fixture's admin key
        wrong = {"Authorization": "Bearer ref_wrong"}
        assert api.get("/v1/judges", headers=wrong).status_code == 401
        _, key = asyncio.run(create_key(settings, "ci", ["read"]))
        assert api.get("/v1/judges", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert api.get("/healthz", headers=wrong).status_code == 200

    def test_keys_are_stored_hashed_and_provider_keys_nowhere(
        self, api: TestClient, settings: Settings
    ) -> None:
        """No plain API key and no provider key in any stored row or response."""
        _, key = asyncio.run(create_key(settings, "ci", ["label"]))
        headers = {"Authorization": f"Bearer {key}"}
        response = api.post("/v1/comparisons", json=pair_body(judge=JUDGE), headers=headers)
        assert response.status_code == 201
        for secret in (ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY):
            assert secret not in response.text
        engine = create_engine(settings.database_url.replace("postgresql:", "postgresql+psycopg:"))
        with engine.connect() as connection:
            for table in ("comparisons", "verdicts", "judge_calls", "api_keys"):
                dump = repr(connection.execute(text(f"SELECT * FROM {table}")).fetchall())
                for secret in (key, ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY):
                    assert secret not in dump, table
        engine.dispose()
