"""POST /v1/generations and the reads: candidates with provenance, bounds checked before paying."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.conftest import pair_body, serve_app
from tests.fake_provider import FakeProvider
from tests.test_access import bearer, new_key

BODY: dict[str, Any] = {
    "policy": "openai:gpt-4o-mini",
    "prompts": [
        {"id": "q1", "prompt": "Name a prime.", "metadata": {"topic": "math"}},
        {"prompt": [{"role": "user", "content": "Say hi."}]},
    ],
    "n": 3,
    "checkpoint": "step-100",
    "temperature": 0.7,
    "seed": 11,
}


class TestCreate:
    def test_samples_are_stored_and_returned_with_provenance(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """One request per prompt (native n); candidates, sample provenance and counts back."""
        response = api.post("/v1/generations", json=BODY)
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["policy"], body["checkpoint"], body["n"], body["seed"]) == (
            "openai:gpt-4o-mini",
            "step-100",
            3,
            11,
        )
        assert body["params"] == {"temperature": 0.7, "top_p": None, "max_tokens": 1024}
        assert body["counts"] == {"done": 6}
        assert body["status"] == "done"
        assert [p["id"] for p in body["prompts"]] == ["q1", None]
        first = body["prompts"][0]
        assert first["metadata"] == {"topic": "math"}
        assert sum(c["count"] for c in first["candidates"]) == 3
        assert [s["sample_index"] for s in first["samples"]] == [0, 1, 2]
        assert {s["finish_reason"] for s in first["samples"]} == {"stop"}
        assert len(provider.requests()) == 2
        again = api.post("/v1/generations", json=BODY)
        assert again.json()["id"] == body["id"]
        assert len(provider.requests()) == 2  # nothing pending: nothing drawn again
        fetched = api.get(f"/v1/generations/{body['id']}", params={"limit": 1})
        assert fetched.status_code == 200
        assert fetched.json()["total_prompts"] == 2
        assert len(fetched.json()["prompts"]) == 1
        listed = api.get("/v1/generations").json()
        assert [g["id"] for g in listed] == [body["id"]]

    @pytest.mark.parametrize(
        ("change", "status", "field"),
        [
            ({"n": 17}, 422, "n"),
            ({"max_tokens": 5000}, 422, "max_tokens"),
            ({"prompts": [{"prompt": "x"}] * 1001}, 422, "prompts"),
            ({"prompts": [{"prompt": "  "}]}, 422, "prompts[0].prompt"),
            ({"prompts": [{"prompt": "x" * 200_001}]}, 413, "prompts[0].prompt"),
            ({"policy": "local:/models/policy"}, 403, "policy"),
            ({"policy": "nowhere:model"}, 400, "policy"),
            ({"policy": "openai"}, 400, "policy"),
        ],
    )
    def test_bounds_are_checked_before_anything_is_paid_or_stored(
        self,
        api: TestClient,
        provider: FakeProvider,
        change: dict[str, Any],
        status: int,
        field: str,
    ) -> None:
        """Each bound (REFEREE_MAX_*), a bad prompt or policy: a 4xx naming the field, no call."""
        response = api.post("/v1/generations", json={**BODY, **change})
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["details"].get("field") == field
        assert provider.requests() == []
        assert api.get("/v1/generations").json() == []

    def test_unknown_generation_is_a_404(self, api: TestClient) -> None:
        """A generation id nobody stored."""
        response = api.get("/v1/generations/00000000-0000-0000-0000-000000000000")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_a_read_key_cannot_generate(settings: Settings, provider: FakeProvider) -> None:
    """Sampling spends money: the label scope; reading needs read."""
    import asyncio

    from app.labeling.admin import create_key

    _, key = asyncio.run(create_key(settings, "reader", ["read"]))
    with serve_app(settings) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.post("/v1/generations", json=BODY, headers=headers).status_code == 403
        assert client.get("/v1/generations", headers=headers).status_code == 200
    assert provider.requests() == []


class TestBudget:
    def test_generation_spend_counts_against_the_key_that_submitted_it(
        self, api: TestClient, settings: Settings, provider: FakeProvider
    ) -> None:
        """A key whose generation spent its budget: 429 on generations, rounds and comparisons."""
        _key_id, key = new_key(settings, "label", "read", budget="0.000001")
        first = api.post("/v1/generations", json=BODY, headers=bearer(key))
        assert first.status_code == 201, first.text
        calls = len(provider.requests())
        other = {**BODY, "prompts": [{"prompt": "Another question?"}]}
        refused = api.post("/v1/generations", json=other, headers=bearer(key))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["details"]["spent_usd"] > 0
        round_body = {
            "name": "r1",
            "policy": "openai:gpt-4o-mini",
            "prompts": [{"prompt": "q"}],
            "judge": "openai:gpt-4o-mini",
            "n": 2,
        }
        assert api.post("/v1/rounds", json=round_body, headers=bearer(key)).status_code == 429
        pair = pair_body(judge="openai:gpt-4o-mini")
        assert api.post("/v1/comparisons", json=pair, headers=bearer(key)).status_code == 429
        assert len(provider.requests()) == calls
        # Another key's budget is its own: the admin key still generates.
        assert api.post("/v1/generations", json=other).status_code == 201
