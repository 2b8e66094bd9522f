"""Every multiplier of one request's calls is bounded by a setting, checked before any call.

Ratings have no multiplier a client controls (one judge, one call, retries
set by the operator), so they do not appear here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.conftest import pair_body
from tests.fake_provider import FakeProvider
from tests.stored import labeling_rows, nothing_stored

JUDGE = "openai:gpt-4o-mini"
NDJSON = {"content-type": "application/x-ndjson"}
BATCH_LINE = '{"prompt": "p", "response_a": "a", "response_b": "bb"}\n'


def jury(members: int) -> str:
    return "jury:" + ",".join(f"openai:model-{i}" for i in range(members))


OVER: list[tuple[str, str, dict[str, Any], str, str]] = [
    (
        "comparison jury members",
        "/v1/comparisons",
        {"json": pair_body(judge=jury(9))},
        "judge",
        "REFEREE_MAX_JURY_MEMBERS",
    ),
    (
        "comparison principles",
        "/v1/comparisons",
        {"json": pair_body(judge=JUDGE, constitution="harmlessness", principles=16)},
        "principles",
        "REFEREE_MAX_PRINCIPLES",
    ),
    (
        "batch jury members",
        f"/v1/batches?judge={jury(9)}",
        {"content": BATCH_LINE, "headers": NDJSON},
        "judge",
        "REFEREE_MAX_JURY_MEMBERS",
    ),
    (
        "batch principles",
        f"/v1/batches?judge={JUDGE}&constitution=harmlessness&principles=16",
        {"content": BATCH_LINE, "headers": NDJSON},
        "principles",
        "REFEREE_MAX_PRINCIPLES",
    ),
    (
        "revision rounds",
        "/v1/revisions",
        {
            "json": {
                "prompt": "Say hi.",
                "response": "Hi.",
                "constitution": "harmlessness",
                "judge": JUDGE,
                "rounds": 9,
            }
        },
        "rounds",
        "REFEREE_MAX_REVISION_ROUNDS",
    ),
]


class TestCostBounds:
    @pytest.mark.parametrize(
        ("case", "path", "request_kw", "field", "setting"), OVER, ids=[o[0] for o in OVER]
    )
    def test_a_request_over_a_bound_is_refused_before_any_call(
        self,
        api: TestClient,
        provider: FakeProvider,
        database_url: str,
        case: str,
        path: str,
        request_kw: dict[str, Any],
        field: str,
        setting: str,
    ) -> None:
        """422 naming the limit and its setting; no provider request, nothing stored."""
        response = api.post(path, **request_kw)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert setting in error["message"]
        assert "limit of 8" in error["message"]
        assert error["details"]["field"] == field
        assert error["details"]["limit"] == 8
        assert provider.requests() == []
        assert nothing_stored(database_url)

    def test_a_request_at_the_bounds_is_judged(
        self, api: TestClient, provider: FakeProvider, database_url: str
    ) -> None:
        """8 principles for a jury of 2: 2 members, 8 principles, 2 orders make 32 calls."""
        body = pair_body(judge=jury(2), constitution="harmlessness", principles=8)
        response = api.post("/v1/comparisons", json=body)
        assert response.status_code == 201, response.text
        assert len(provider.requests()) == 32
        assert labeling_rows(database_url)["verdicts"] == 1


class TestBoundsFromSettings:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"max_jury_members": 2, "max_principles": 1})

    def test_the_settings_move_the_bounds(
        self, api: TestClient, provider: FakeProvider, database_url: str
    ) -> None:
        too_big = api.post("/v1/comparisons", json=pair_body(judge=jury(3)))
        principles = api.post(
            "/v1/comparisons",
            json=pair_body(judge=JUDGE, constitution="harmlessness", principles=2),
        )
        assert too_big.status_code == 422
        assert "limit of 2" in too_big.json()["error"]["message"]
        assert principles.status_code == 422
        assert "limit of 1" in principles.json()["error"]["message"]
        assert provider.requests() == []
        assert nothing_stored(database_url)


class TestBatchUploadBounds:
    """One POST /v1/batches: its record count and each line's metadata are bounded too."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"max_batch_pairs": 3, "max_metadata_kb": 1})

    @pytest.mark.parametrize("shape", ["jsonl", "array"])
    def test_more_records_than_the_limit_store_nothing(
        self, api: TestClient, provider: FakeProvider, database_url: str, shape: str
    ) -> None:
        lines = [{"prompt": f"p{i}", "response_a": "a", "response_b": "bb"} for i in range(4)]
        body = (
            "".join(json.dumps(line) + "\n" for line in lines)
            if shape == "jsonl"
            else json.dumps(lines)
        )
        response = api.post(f"/v1/batches?judge={JUDGE}", content=body, headers=NDJSON)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert "REFEREE_MAX_BATCH_PAIRS" in error["message"]
        assert error["details"]["limit"] == 3
        assert error["details"]["field"] == "body"
        assert provider.requests() == []
        assert nothing_stored(database_url)

    def test_records_at_the_limit_are_queued(self, api: TestClient) -> None:
        body = "".join(
            json.dumps({"prompt": f"p{i}", "response_a": "a", "response_b": "bb"}) + "\n"
            for i in range(3)
        )
        response = api.post(f"/v1/batches?judge={JUDGE}", content=body, headers=NDJSON)
        assert response.status_code == 202, response.text
        assert response.json()["submitted"] == 3

    def test_a_line_with_metadata_over_the_cap_is_that_lines_reject(
        self, api: TestClient, database_url: str
    ) -> None:
        big = {"prompt": "p1", "response_a": "a", "response_b": "bb", "metadata": {"x": "y" * 2000}}
        small = {"prompt": "p2", "response_a": "a", "response_b": "bb", "metadata": {"x": "y"}}
        body = json.dumps(big) + "\n" + json.dumps(small) + "\n"
        response = api.post(f"/v1/batches?judge={JUDGE}", content=body, headers=NDJSON)
        assert response.status_code == 202, response.text
        out = response.json()
        assert out["submitted"] == 1
        [reject] = out["rejected"]
        assert reject["line"] == 1
        assert "metadata" in reject["reason"]
        assert "REFEREE_MAX_METADATA_KB" in reject["reason"]
        assert labeling_rows(database_url)["comparisons"] == 1
