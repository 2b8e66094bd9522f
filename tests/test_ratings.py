"""Ratings through the service: POST /v1/ratings and `referee rate`, on both databases."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from app.store.db import sync_url
from app.store.models import JudgeCall, Rating
from judges.prompts import RATING_TOOL_NAME
from tests.fake_provider import FakeProvider
from tests.test_cli import referee, write_lines

JUDGE = "anthropic:claude-sonnet-4-6"


def rating_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": "How do I boil an egg?",
        "response": "Simmer it for nine minutes, then cool it in cold water.",
        "judge": JUDGE,
    }
    body.update(overrides)
    return body


def score_with(provider: FakeProvider, score: int, rationale: str = "scripted") -> None:
    provider.configure(outputs={RATING_TOOL_NAME: {"rationale": rationale, "score": score}})


def stored_ratings(database_url: str) -> list[Rating]:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        rows = list(connection.execute(select(Rating)).all())
    engine.dispose()
    return rows  # type: ignore[return-value]


class TestRatingsApi:
    def test_rates_with_the_real_sdk_and_stores_provenance(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """The score comes back from the model; the call is stored with its rubric version."""
        score_with(provider, 8, "clear and correct")
        response = api.post("/v1/ratings", json=rating_body())
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["score"], body["passed"], body["rationale"]) == (8, True, "clear and correct")
        assert body["rubric"]["id"] == "helpfulness"
        assert body["rubric"]["version"].startswith("helpfulness-")
        [call] = body["calls"]
        assert call["order"] is None
        assert call["parsed"] == {"score": 8, "rationale": "clear and correct"}
        assert call["parameters"]["rubric"] == body["rubric"]["version"]
        assert call["input_tokens"] > 0
        sent = json.dumps(provider.requests()[-1])
        assert "Simmer it for nine minutes" in sent

    def test_below_threshold_is_bad_and_same_request_is_reused(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """Score 3 fails the default threshold of 7; asking again calls no model."""
        score_with(provider, 3)
        first = api.post("/v1/ratings", json=rating_body())
        assert first.json()["passed"] is False
        again = api.post("/v1/ratings", json=rating_body())
        assert again.status_code == 200
        assert again.json()["reused"] is True
        assert len(provider.requests()) == 1

    def test_a_different_threshold_is_a_different_rating(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """The threshold is part of the key, so good/bad always follows the requested one."""
        score_with(provider, 5)
        assert api.post("/v1/ratings", json=rating_body()).json()["passed"] is False
        lenient = api.post("/v1/ratings", json=rating_body(threshold=5))
        assert lenient.status_code == 201
        assert lenient.json()["passed"] is True

    def test_custom_rubric_and_scale(self, api: TestClient, provider: FakeProvider) -> None:
        """Custom criteria and a 1-5 scale are sent to the judge and stored."""
        score_with(provider, 4)
        response = api.post(
            "/v1/ratings",
            json=rating_body(rubric_text="Is it one sentence?", scale_max=5, threshold=4),
        )
        assert response.status_code == 201, response.text
        rubric = response.json()["rubric"]
        assert (rubric["id"], rubric["scale_max"], rubric["threshold"]) == ("custom", 5, 4.0)
        assert "Is it one sentence?" in json.dumps(provider.requests()[-1])

    def test_out_of_scale_score_is_stored_as_a_failure(
        self, api: TestClient, provider: FakeProvider, database_url: str
    ) -> None:
        """A score of 11 on a 1-10 scale is unparseable: 502, no score, the call kept."""
        score_with(provider, 11)
        response = api.post("/v1/ratings", json=rating_body())
        assert response.status_code == 502
        assert response.json()["error"]["details"]["error_class"] == "unparseable"
        [rating] = stored_ratings(database_url)
        assert (rating.status, rating.score, rating.passed) == ("failed", None, None)
        fetched = api.get(f"/v1/ratings/{rating.id}").json()
        assert fetched["calls"][0]["raw_output"]

    def test_a_failed_rating_is_rated_again(self, api: TestClient, provider: FakeProvider) -> None:
        """After a failure the same request calls the model again and stores the score."""
        provider.configure(fail_next=["500", "500", "500", "500", "500"])
        score_with(provider, 9)
        first = api.post("/v1/ratings", json=rating_body())
        assert first.status_code == 502
        second = api.post("/v1/ratings", json=rating_body())
        assert second.status_code == 201
        assert second.json()["score"] == 9
        assert second.json()["id"] == first.json()["error"]["details"]["rating_id"]

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"rubric": "kindness"}, "unknown rubric 'kindness'"),
            ({"scale_min": 5, "scale_max": 5}, "scale"),
            ({"threshold": 42}, "threshold"),
            ({"rubric": "helpfulness", "rubric_text": "x"}, "not both"),
        ],
    )
    def test_bad_rubrics_are_clear_errors(
        self, api: TestClient, overrides: dict[str, Any], message: str
    ) -> None:
        """An unknown rubric or an impossible scale is a 422 naming the problem."""
        response = api.post("/v1/ratings", json=rating_body(**overrides))
        assert response.status_code == 422
        assert message in response.json()["error"]["message"]

    def test_unknown_rating_is_404(self, api: TestClient) -> None:
        """A rating id that does not exist is a 404."""
        response = api.get("/v1/ratings/00000000-0000-0000-0000-000000000000")
        assert response.status_code == 404


class TestRateCommand:
    def test_rpm_spaces_the_requests(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """--rpm 300 sends one request every 0.2 s even with four lines in flight."""
        env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
        score_with(provider, 7)
        lines = [json.dumps({"prompt": f"q{n}", "response": f"a{n}"}) for n in range(4)]
        source = write_lines(tmp_path / "answers.jsonl", lines)
        result = referee("rate", str(source), "--judge", JUDGE, "--rpm", "300", env=env)
        assert result.returncode == 0, result.stderr
        arrivals = sorted(r["received_at"] for r in provider.requests())
        assert len(arrivals) == 4
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert min(gaps) > 0.15, gaps

    def test_rates_a_file_resumes_and_reports_bad_lines(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """Good lines are rated once; a second run reuses them; a bad line names its line."""
        env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
        score_with(provider, 7)
        source = write_lines(
            tmp_path / "answers.jsonl",
            [
                json.dumps({"id": "r1", "prompt": "q1", "response": "a1"}),
                json.dumps({"prompt": "q2"}),
                json.dumps({"id": "r3", "prompt": "q3", "response": "a3"}),
            ],
        )
        first = referee("rate", str(source), "--judge", JUDGE, env=env)
        assert first.returncode == 1, first.stderr
        assert f"{source}:2: field 'response': Field required" in first.stderr
        assert "2 rated, 0 already rated, 0 failed" in first.stdout
        second = referee("rate", str(source), "--judge", JUDGE, env=env)
        assert "0 rated, 2 already rated" in second.stdout
        assert len(provider.requests()) == 2
        assert sorted(r.external_id for r in stored_ratings(database_url)) == ["r1", "r3"]
        engine = create_engine(sync_url(database_url))
        with engine.connect() as connection:
            calls = connection.execute(select(JudgeCall.rating_id)).scalars().all()
        engine.dispose()
        assert len(calls) == 2
        assert all(calls)
