"""POST /v1/rounds runs a round in the background; GET shows it; a changed re-run is a 409."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from app.settings import Settings
from tests.conftest import serve_app
from tests.fake_provider import FakeProvider

PROMPTS = [{"id": f"q{i}", "prompt": f"question {i}"} for i in range(3)]


def body(name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "policy": "openai:policy-model",
        "prompts": PROMPTS,
        "judge": "openai:gpt-4o-mini",
        "n": 3,
        "strategy": "all-pairs",
        "seed": 7,
        **overrides,
    }


def wait_done(api: TestClient, name: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found: dict[str, Any] = api.get(f"/v1/rounds/{name}").json()
        if found["stage"] == "done":
            return found
        time.sleep(0.1)
    raise AssertionError(f"round {name} did not finish")


def test_rounds_over_http(api: TestClient, provider: FakeProvider) -> None:
    """202 at once, done in the background; the parent's head-to-head; a re-run costs nothing."""
    provider.configure(policy="longer")
    started = api.post("/v1/rounds", json=body("r1", checkpoint="sft"))
    assert started.status_code == 202, started.text
    assert started.json()["name"] == "r1"
    first = wait_done(api, "r1")
    assert first["samples"] == {"done": 9}
    assert first["selections"] == {"selected": 3}
    second = api.post("/v1/rounds", json=body("r2", parent="r1", seed=8))
    assert second.status_code == 202, second.text
    found = wait_done(api, "r2")
    assert found["lineage"] == ["r2", "r1"]
    assert found["head_to_head"] == {"labeled": 3}
    requests = len(provider.requests())
    again = api.post("/v1/rounds", json=body("r2", parent="r1", seed=8))
    assert again.status_code == 202
    assert wait_done(api, "r2")["head_to_head"] == {"labeled": 3}
    assert len(provider.requests()) == requests
    listed = api.get("/v1/rounds").json()
    assert [(r["name"], r["parent"]) for r in listed] == [("r1", None), ("r2", "r1")]


def test_a_changed_rerun_is_a_409_naming_the_difference(
    api: TestClient, provider: FakeProvider
) -> None:
    """The same name with another n is refused before anything is stored or sampled."""
    provider.configure(policy="longer")
    assert api.post("/v1/rounds", json=body("r1")).status_code == 202
    wait_done(api, "r1")
    requests = len(provider.requests())
    refused = api.post("/v1/rounds", json=body("r1", n=4))
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "round_conflict"
    assert "n: 3 → 4" in error["message"]
    assert len(provider.requests()) == requests


def test_the_bounds_are_checked_before_anything_is_stored(
    api: TestClient, provider: FakeProvider
) -> None:
    """n above REFEREE_MAX_GENERATION_N, a budget above n(n-1)/2: 422, no round, no call."""
    for overrides, field in (
        ({"n": 10_000}, "n"),
        ({"strategy": "tournament", "budget": 4}, "budget"),
        ({"name": "x" * 201}, "name"),
    ):
        response = api.post("/v1/rounds", json={**body("r1"), **overrides})
        assert response.status_code == 422, response.text
        assert field in str(response.json()["error"])
    assert api.get("/v1/rounds").json() == []
    assert provider.requests() == []


def test_rounds_running_at_once_are_bounded_and_a_repeat_resumes(
    database_url: str, provider: FakeProvider
) -> None:
    """REFEREE_MAX_RUNNING_ROUNDS=1: a second round is a 429 while one runs; the same
    request again joins the running round (no second run); after it, the next starts."""
    provider.configure(policy="longer", latency_ms=300)
    settings = Settings(database_url=database_url, judges_file=None, max_running_rounds=1)
    with serve_app(settings) as api:
        assert api.post("/v1/rounds", json=body("r1")).status_code == 202
        busy = api.post("/v1/rounds", json=body("r2", seed=8))
        assert busy.status_code == 429, busy.text
        assert busy.json()["error"]["details"]["max_running_rounds"] == 1
        assert int(busy.headers["retry-after"]) >= 1
        assert api.get("/v1/rounds/r2").status_code == 404  # refused before it was stored
        again = api.post("/v1/rounds", json=body("r1"))
        assert again.status_code == 202, again.text
        assert wait_done(api, "r1")["samples"] == {"done": 9}
        provider.configure(latency_ms=0)
        assert api.post("/v1/rounds", json=body("r2", seed=8)).status_code == 202
        assert wait_done(api, "r2")["samples"] == {"done": 9}
    # One generation request per prompt and round: the repeat of r1 drew nothing twice.
    drawn = [r for r in provider.requests() if "policy-model" in str(r)]
    assert len(drawn) == 2 * len(PROMPTS), len(drawn)
