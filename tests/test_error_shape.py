"""One error shape, body limits and hostile bodies at the framework level (issue 13, items 9-11).

Every 4xx and 5xx is ``{"error": {"code", "message", "details"}}``; a body
over its limit is refused while it is read, before authentication and
parsing; a body that is not UTF-8, not JSON, nested 10,000 deep or not an
object is a 4xx naming it; and none of these calls a judge or stores a row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from app.api.app import create_app
from app.settings import Settings
from app.store.db import Database, sync_url
from app.store.models import ApiKey, Base
from judges import JudgeRegistry
from judges.testing import Script
from tests.conftest import pair_body, serve_app
from tests.fake_provider import FakeProvider

JUDGE = "scripted:x"
JSON = {"content-type": "application/json"}
JSONL = {"content-type": "application/x-ndjson"}
DEEP = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
HUGE_INTEGER = b'{"prompt": "p", "response_a": "a", "response_b": "b", "metadata": {"n": 1%s}}' % (
    b"0" * 5000
)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The one shape: exactly code, message and details, as JSON."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], dict)
    return error


def stored_rows(database_url: str) -> dict[str, int]:
    """Rows in every table but the API keys (the fixture's own)."""
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        counts = {
            table.name: connection.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
            if table.name != ApiKey.__tablename__
        }
    engine.dispose()
    return {name: n for name, n in counts.items() if n}


# (method, path, body, headers, status, code, field): bodies no route may accept.
HOSTILE_BODIES = [
    ("POST", "/v1/comparisons", b"{not json", JSON, 400, "invalid_json", "body"),
    ("POST", "/v1/comparisons", b'{"prompt": "\xff\xfe"}', JSON, 400, "invalid_encoding", "body"),
    ("POST", "/v1/comparisons", DEEP, JSON, 400, "invalid_json", "body"),
    ("POST", "/v1/comparisons", DEEP_OBJECT, JSON, 400, "invalid_json", "body"),
    ("POST", "/v1/comparisons", HUGE_INTEGER, JSON, 400, "invalid_json", "body"),
    ("POST", "/v1/comparisons", b"[1, 2]", JSON, 422, "invalid_input", "body"),
    ("POST", "/v1/comparisons", b'"a string"', JSON, 422, "invalid_input", "body"),
    ("POST", "/v1/comparisons", b"null", JSON, 422, "invalid_input", "body"),
    ("POST", "/v1/comparisons", b"", JSON, 422, "invalid_input", "body"),
    ("POST", "/v1/ratings", DEEP, JSON, 400, "invalid_json", "body"),
    ("POST", "/v1/ratings", b"7", JSON, 422, "invalid_input", "body"),
    ("POST", "/v1/revisions", b"\xc3\x28", JSON, 400, "invalid_encoding", "body"),
    ("POST", "/v1/revisions", b"[]", JSON, 422, "invalid_input", "body"),
    ("POST", "/v1/feedback", b"{not json", JSON, 400, "invalid_json", "body"),
    ("POST", "/v1/feedback", DEEP_OBJECT, JSON, 400, "invalid_json", "body"),
    ("POST", "/v1/feedback", b'{"prompt": "\xff"}', JSON, 400, "invalid_encoding", "body"),
    ("POST", "/v1/feedback", HUGE_INTEGER, JSON, 400, "invalid_json", "body"),
    ("POST", "/v1/feedback", b"", JSON, 422, "invalid_input", "body"),
    ("POST", "/v1/feedback", b"  \n", JSONL, 422, "invalid_input", "body"),
    ("POST", "/v1/feedback", b"[]", JSON, 422, "invalid_input", "body"),
    ("POST", "/v1/feedback", b'{"a": 1}\n\xff\n', JSONL, 400, "invalid_encoding", "body"),
    ("POST", "/v1/batches?judge=scripted:x", b"\xff\xfe", JSONL, 400, "invalid_encoding", "body"),
    ("POST", "/v1/batches?judge=scripted:x", b"", JSONL, 422, "invalid_input", "body"),
]


class TestOneShape:
    @pytest.mark.parametrize(
        ("method", "path", "body", "headers", "status", "code", "field"), HOSTILE_BODIES
    )
    def test_hostile_bodies_are_4xx_naming_the_body_and_cost_nothing(
        self,
        api: TestClient,
        provider: FakeProvider,
        script: Script,
        database_url: str,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        status: int,
        code: str,
        field: str,
    ) -> None:
        """Not UTF-8, not JSON, 10,000 deep, not an object, empty: a 4xx; no call, no row."""
        response = api.request(method, path, content=body, headers=headers)
        error = assert_error(response, status, code)
        assert error["details"]["field"] == field
        assert provider.requests() == []
        assert (script.shown, script.rated, script.critiqued) == ([], [], [])
        assert stored_rows(database_url) == {}

    def test_validation_errors_name_every_field(self, api: TestClient) -> None:
        """A 422 lists each field at fault under details.errors, the first also as details.field."""
        response = api.post("/v1/comparisons", json={"prompt": 5, "judge": JUDGE})
        error = assert_error(response, 422, "invalid_input")
        fields = [e["field"] for e in error["details"]["errors"]]
        assert error["details"]["field"] == fields[0]
        assert {"body.prompt", "body.response_a", "body.response_b"} <= set(fields)
        assert error["message"].startswith(fields[0])
        assert all(set(e) == {"field", "message", "type"} for e in error["details"]["errors"])

    def test_query_and_path_errors_name_their_place(self, api: TestClient) -> None:
        """A bad query parameter is query.<name>; a bad path parameter path.<name>."""
        query = api.get("/v1/comparisons", params={"limit": "many"})
        assert assert_error(query, 422, "invalid_input")["details"]["field"] == "query.limit"
        path = api.get("/v1/comparisons/not-a-uuid")
        assert assert_error(path, 422, "invalid_input")["details"]["field"] == (
            "path.comparison_id"
        )

    def test_a_huge_invalid_body_is_not_echoed(self, api: TestClient) -> None:
        """A 422 on a megabyte value answers in a few hundred bytes: the input is never echoed."""
        huge = "x" * 1_000_000
        for body in (
            {"prompt": "q", "completion": "a", "label": huge},
            {"prompt": [{"role": huge, "content": huge}], "response_a": "a", "response_b": "b"},
        ):
            path = "/v1/feedback" if "label" in body else "/v1/comparisons"
            response = api.post(path, json=body)
            assert_error(response, 422, "invalid_input")
            assert len(response.content) < 5_000

    @pytest.mark.parametrize(
        ("method", "path", "status", "code"),
        [
            ("GET", "/v1/no-such-route", 404, "not_found"),
            ("GET", "/nowhere", 404, "not_found"),
            ("DELETE", "/v1/comparisons", 405, "method_not_allowed"),
            ("PUT", "/healthz", 405, "method_not_allowed"),
            ("GET", "/v1/comparisons/00000000-0000-0000-0000-000000000000", 404, "not_found"),
        ],
    )
    def test_framework_errors_share_the_shape(
        self, api: TestClient, method: str, path: str, status: int, code: str
    ) -> None:
        """Unknown paths and wrong methods are not Starlette's plain {"detail": …}."""
        response = api.request(method, path)
        assert_error(response, status, code)
        if status == 405:
            assert response.headers["allow"]

    def test_unhandled_exception_is_500_without_a_traceback(
        self, settings: Settings, registry: JudgeRegistry, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A bug is a 500 in the shape; the traceback goes to the log, not to the client."""
        app = create_app(settings, registry)
        secret = "db-password-in-a-traceback"

        @app.get("/v1/boom")
        async def boom() -> None:
            raise RuntimeError(secret)

        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/v1/boom")
        error = assert_error(response, 500, "internal_error")
        assert secret not in response.text
        assert "Traceback" not in response.text
        assert error["details"] == {}
        assert any(secret in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


class TestHealth:
    def test_a_database_that_does_not_answer_is_503_in_the_shape(
        self, api: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """/healthz tells a monitor the database is down with a 503, not a 500."""
        assert api.get("/healthz").status_code == 200

        async def refused(_db: Database) -> None:
            raise ConnectionRefusedError("connection refused")

        monkeypatch.setattr(Database, "ping", refused)
        assert_error(api.get("/healthz"), 503, "database_unavailable")


def limited(settings: Settings, **update: int) -> Settings:
    return settings.model_copy(update=update)


@pytest.fixture
def small_api(
    settings: Settings, registry: JudgeRegistry, provider: FakeProvider
) -> Iterator[TestClient]:
    """The app with 1 MB bodies, 2 MB uploads and small field caps."""
    small = limited(
        settings,
        max_body_mb=1,
        max_upload_mb=2,
        max_metadata_kb=1,
        max_rubric_chars=50,
        max_text_chars=1000,
    )
    with serve_app(small, registry) as client:
        yield client


def chunks(body: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


class TestBodyLimits:
    @pytest.mark.parametrize(
        ("path", "headers", "limit_mb", "setting"),
        [
            ("/v1/comparisons", JSON, 1, "REFEREE_MAX_BODY_MB"),
            ("/v1/ratings", JSON, 1, "REFEREE_MAX_BODY_MB"),
            ("/v1/batches", JSONL, 2, "REFEREE_MAX_UPLOAD_MB"),
            ("/v1/feedback", JSONL, 2, "REFEREE_MAX_UPLOAD_MB"),
        ],
    )
    def test_over_the_limit_is_413_declared_or_streamed(
        self,
        small_api: TestClient,
        provider: FakeProvider,
        database_url: str,
        path: str,
        headers: dict[str, str],
        limit_mb: int,
        setting: str,
    ) -> None:
        """By Content-Length before reading, or while a chunked body streams in; nothing kept."""
        body = b'{"prompt": "' + b"x" * (limit_mb * 1024 * 1024) + b'"}'
        declared = small_api.post(path, content=body, headers=headers)
        streamed = small_api.post(path, content=chunks(body), headers=headers)
        assert "content-length" not in streamed.request.headers
        for response in (declared, streamed):
            error = assert_error(response, 413, "body_too_large")
            assert setting in error["message"]
            assert error["details"]["setting"] == setting
            assert error["details"]["limit_bytes"] == limit_mb * 1024 * 1024
        assert provider.requests() == []
        assert stored_rows(database_url) == {}

    def test_the_limit_comes_before_authentication(
        self, settings: Settings, registry: JudgeRegistry
    ) -> None:
        """Without a key a 50 MB body is a 413, refused before it is read, not parsed into a 401."""
        app = create_app(settings, registry)
        body = b"[" + b"1," * (25 * 1024 * 1024) + b"1]"
        with TestClient(app) as client:
            anonymous = client.post("/v1/comparisons", content=body, headers=JSON)
            nowhere = client.post("/v1/judges", content=body, headers=JSON)
            small = client.post("/v1/comparisons", json=pair_body(judge=JUDGE))
        assert_error(anonymous, 413, "body_too_large")
        assert_error(nowhere, 413, "body_too_large")
        assert_error(small, 401, "unauthorized")

    def test_under_the_limits_is_served(self, small_api: TestClient) -> None:
        """A body just under the limit gets through to the route."""
        body = pair_body(judge=JUDGE, prompt="p" * 900)
        assert small_api.post("/v1/comparisons", json=body).status_code == 201

    def test_a_single_feedback_record_has_the_ordinary_limit(
        self, small_api: TestClient, database_url: str
    ) -> None:
        """One JSON object on the upload route is still held to REFEREE_MAX_BODY_MB."""
        record = {"prompt": "q", "completion": "a", "label": "up", "pad": "x" * 1_500_000}
        response = small_api.post("/v1/feedback", content=json.dumps(record), headers=JSON)
        error = assert_error(response, 413, "body_too_large")
        assert "REFEREE_MAX_BODY_MB" in error["message"]
        assert stored_rows(database_url) == {}


class TestFieldCaps:
    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            ("/v1/comparisons", pair_body(judge=JUDGE, metadata={"k": "v" * 2000}), "metadata"),
            (
                "/v1/ratings",
                {"prompt": "q", "response": "a", "judge": JUDGE, "metadata": {"k": "v" * 2000}},
                "metadata",
            ),
            (
                "/v1/ratings",
                {"prompt": "q", "response": "a", "judge": JUDGE, "rubric_text": "r" * 51},
                "rubric_text",
            ),
            (
                "/v1/revisions",
                {
                    "prompt": "q",
                    "response": "a",
                    "constitution": "harmlessness",
                    "judge": JUDGE,
                    "metadata": {"k": "v" * 2000},
                },
                "metadata",
            ),
            (
                "/v1/feedback",
                {"prompt": "q", "completion": "a" * 1001, "label": "up"},
                "completion",
            ),
            ("/v1/feedback", {"prompt": "q" * 1001, "completion": "a", "label": "up"}, "prompt"),
            (
                "/v1/feedback",
                {"prompt": "q", "completion": "a", "label": "up", "metadata": {"k": "v" * 2000}},
                "metadata",
            ),
        ],
    )
    def test_a_field_over_its_cap_is_413_naming_it_before_any_call(
        self,
        small_api: TestClient,
        provider: FakeProvider,
        script: Script,
        database_url: str,
        path: str,
        body: dict[str, Any],
        field: str,
    ) -> None:
        """Metadata, rubric_text and feedback texts are capped from the settings."""
        error = assert_error(small_api.post(path, json=body), 413, "text_too_large")
        assert error["details"]["field"] == field
        assert field in error["message"]
        assert (script.shown, script.rated, script.critiqued) == ([], [], [])
        assert provider.requests() == []
        assert stored_rows(database_url) == {}

    def test_bulk_feedback_rejects_the_record_over_a_cap_and_keeps_the_rest(
        self, small_api: TestClient, database_url: str
    ) -> None:
        """In an upload the oversized record is a rejected line naming the field."""
        records = [
            {"prompt": "q1", "completion": "a", "label": "up"},
            {"prompt": "q2", "completion": "a" * 1001, "label": "up"},
        ]
        body = "".join(json.dumps(r) + "\n" for r in records)
        summary = small_api.post("/v1/feedback", content=body, headers=JSONL).json()
        assert summary["accepted"] == 1
        [rejected] = summary["rejected"]
        assert rejected["line"] == 2
        assert "completion" in rejected["reason"]
        assert stored_rows(database_url) == {"feedback": 1}


class TestOpenAPI:
    def test_every_error_response_is_documented_with_error_out(self, api: TestClient) -> None:
        """No HTTPValidationError left; each route lists the errors it can return, as ErrorOut."""
        spec = api.get("/openapi.json").json()
        assert "HTTPValidationError" not in json.dumps(spec)
        error_ref = "#/components/schemas/ErrorOut"
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                where = f"{method.upper()} {path}"
                responses = operation["responses"]
                for status, response in responses.items():
                    if int(status) >= 400:
                        schema = response["content"]["application/json"]["schema"]
                        assert schema == {"$ref": error_ref}, (where, status)
                if path.startswith("/v1/"):
                    assert "401" in responses, where
                if operation.get("parameters") or "requestBody" in operation:
                    assert "422" in responses, where
                if "requestBody" in operation:
                    assert {"400", "413"} <= set(responses), where

    def test_error_out_describes_the_shape(self, api: TestClient) -> None:
        """ErrorOut is {"error": {"code", "message", "details"}}, all required but details."""
        schemas = api.get("/openapi.json").json()["components"]["schemas"]
        assert schemas["ErrorOut"]["required"] == ["error"]
        assert set(schemas["ErrorBody"]["properties"]) == {"code", "message", "details"}
        assert set(schemas["ErrorBody"]["required"]) == {"code", "message"}
