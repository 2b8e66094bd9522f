"""Over HTTP, in-process (``local:``) judges run only when the judges file names them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.labeling.runtime import runtime
from app.settings import Settings
from judges import JudgeConfig, JudgeRegistry
from judges.testing import Script, ScriptedJudge
from tests.conftest import pair_body
from tests.fake_provider import FakeProvider
from tests.stored import nothing_stored

APPROVED = JudgeConfig(provider="local", model="/models/approved", name="approved")
OPENAI = "openai:gpt-4o-mini"
ITEM = {"prompt": "Say hi.", "response": "Hi there!"}


@pytest.fixture
def loaded() -> list[str]:
    """The models the ``local`` provider was asked to load."""
    return []


@pytest.fixture
def registry(registry: JudgeRegistry, script: Script, loaded: list[str]) -> JudgeRegistry:
    """The real registry, its ``local`` provider recording loads, one local judge named."""

    def load(config: JudgeConfig) -> ScriptedJudge:
        loaded.append(config.model)
        return ScriptedJudge(config, script)

    registry.register("local", load)
    registry.add_named(APPROVED)
    return registry


REFUSED: list[tuple[str, str, dict[str, Any]]] = [
    ("comparison, a server path", "/v1/comparisons", {"json": pair_body(judge="local:/etc")}),
    ("comparison, a Hub id", "/v1/comparisons", {"json": pair_body(judge="local:some/hub-id")}),
    (
        "inline jury member",
        "/v1/comparisons",
        {"json": pair_body(judge=f"jury:{OPENAI},local:/etc")},
    ),
    ("rating", "/v1/ratings", {"json": {**ITEM, "judge": "local:/etc"}}),
    (
        "revision judge",
        "/v1/revisions",
        {"json": {**ITEM, "constitution": "harmlessness", "judge": "local:/etc"}},
    ),
    (
        "revision generator",
        "/v1/revisions",
        {
            "json": {
                "prompt": "Say hi.",
                "constitution": "harmlessness",
                "judge": OPENAI,
                "generator": "local:some/hub-id",
            }
        },
    ),
    (
        "batch",
        "/v1/batches?judge=local:some/hub-id",
        {
            "content": '{"prompt": "p", "response_a": "a", "response_b": "bb"}\n',
            "headers": {"content-type": "application/x-ndjson"},
        },
    ),
]


class TestAdHocLocalJudges:
    @pytest.mark.parametrize(("case", "path", "request_kw"), REFUSED, ids=[r[0] for r in REFUSED])
    def test_an_unnamed_local_judge_is_refused_before_anything_loads(
        self,
        api: TestClient,
        provider: FakeProvider,
        database_url: str,
        loaded: list[str],
        case: str,
        path: str,
        request_kw: dict[str, Any],
    ) -> None:
        """4xx naming the setting; no model loaded, no provider call, nothing stored."""
        response = api.post(path, **request_kw)
        assert 400 <= response.status_code < 500, response.text
        error = response.json()["error"]
        assert "REFEREE_ALLOW_ADHOC_LOCAL" in error["message"]
        assert error["details"]["setting"] == "REFEREE_ALLOW_ADHOC_LOCAL"
        assert loaded == []
        assert provider.requests() == []
        assert nothing_stored(database_url)

    def test_a_local_judge_named_in_the_judges_file_runs(
        self, api: TestClient, loaded: list[str]
    ) -> None:
        response = api.post("/v1/comparisons", json=pair_body(judge="approved"))
        assert response.status_code == 201, response.text
        assert loaded == ["/models/approved"]

    def test_a_named_local_judge_may_sit_on_an_inline_jury(
        self, api: TestClient, loaded: list[str]
    ) -> None:
        response = api.post("/v1/comparisons", json=pair_body(judge=f"jury:approved,{OPENAI}"))
        assert response.status_code == 201, response.text
        assert loaded == ["/models/approved"]

    async def test_the_cli_may_name_any_local_judge(
        self, settings: Settings, registry: JudgeRegistry, loaded: list[str]
    ) -> None:
        """The CLI's labeler is the operator's: an ad-hoc local spec loads."""
        async with runtime(settings, registry) as labeler:
            labeler.judge_for(labeler.resolve("local:/models/mine"))
        assert loaded == ["/models/mine"]


class TestOperatorAllowsAdHocLocalJudges:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"allow_adhoc_local": True})

    def test_any_local_judge_loads(self, api: TestClient, loaded: list[str]) -> None:
        """REFEREE_ALLOW_ADHOC_LOCAL=true: a Hub id a client names loads."""
        response = api.post("/v1/comparisons", json=pair_body(judge="local:some/hub-id"))
        assert response.status_code == 201, response.text
        assert loaded == ["some/hub-id"]


class TestNothingLoadsForABadBody:
    @pytest.mark.parametrize(
        "body",
        ["{not json\n", '{"prompt": "p"}\n', "", "\u0000\n"],
        ids=["broken-json", "missing-fields", "empty", "nul-line"],
    )
    def test_a_batch_without_a_good_record_loads_no_judge(
        self, api: TestClient, database_url: str, loaded: list[str], body: str
    ) -> None:
        """The body is read before the judge is built: a bad upload loads no model."""
        response = api.post(
            "/v1/batches?judge=approved",
            content=body.encode(),
            headers={"content-type": "application/x-ndjson"},
        )
        assert 400 <= response.status_code < 500, response.text
        assert loaded == []
        assert nothing_stored(database_url)
