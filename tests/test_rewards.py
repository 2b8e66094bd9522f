"""Rewards for training loops: POST /v1/rewards and POST /get_reward, on both databases."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from app.labeling.admin import create_key
from app.settings import Settings
from app.store.db import sync_url
from app.store.models_rewards import RewardItem
from judges import JudgeRegistry
from judges.errors import RefusedError
from judges.prompts import RATING_TOOL_NAME
from judges.rubrics import get_rubric
from judges.testing import Script, rate_by_length
from tests.conftest import serve_app
from tests.fake_provider import FakeProvider
from tests.test_cli import referee
from tests.test_local_judges import record_batches, reference_reward
from tests.tiny_models import build_reward_model

JUDGE = "anthropic:claude-sonnet-4-6"
SCRIPTED = "scripted:rater"


def items(*completions: str, **metadata: Any) -> list[dict[str, Any]]:
    return [
        {
            "prompt": "Say something.",
            "completion": c,
            **({"metadata": metadata} if metadata else {}),
        }
        for c in completions
    ]


def reward_rows(database_url: str) -> list[Any]:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        rows = list(connection.execute(select(RewardItem)).all())
    engine.dispose()
    return rows


def by_length(completion: str) -> float:
    """What the scripted rater gives a completion, on [0, 1]."""
    rubric = get_rubric(None)
    score = rate_by_length("", completion, rubric)
    return (score - rubric.scale_min) / (rubric.scale_max - rubric.scale_min)


class TestScores:
    def test_scores_come_in_input_order_with_a_reason_for_each_null(
        self, api: TestClient, script: Script, database_url: str
    ) -> None:
        """Each item's score sits at its own index; an empty completion is null, 'invalid'."""
        completions = ["x" * 45, "short", "   ", "y" * 90, "x" * 45]
        response = api.post(
            "/v1/rewards",
            json={"scorer": {"judge": SCRIPTED}, "items": items(*completions, run="r", step=1)},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        expected = [by_length(c) for c in completions]
        expected[2] = None
        assert body["scores"] == expected
        assert [i["status"] for i in body["items"]] == ["scored"] * 2 + ["invalid"] + ["scored"] * 2
        assert body["items"][2]["reason"] == "invalid_input"
        assert "items[2].completion" in body["items"][2]["message"]
        # The repeated completion was judged once; every item has its own stored row.
        assert len(script.rated) == 3
        assert len({i["id"] for i in body["items"]}) == 5
        assert len(reward_rows(database_url)) == 5

    def test_a_failed_judge_is_null_with_its_error_class(
        self, api: TestClient, script: Script
    ) -> None:
        """A refusal is stored as a failed rating; the reward is null, never a made-up score."""
        script.failures = [RefusedError("no")]
        body = api.post(
            "/v1/rewards", json={"scorer": {"judge": SCRIPTED}, "items": items("fine answer")}
        ).json()
        assert body["scores"] == [None]
        assert body["items"][0]["status"] == "failed"
        assert body["items"][0]["reason"] == "refused"
        assert body["items"][0]["rating_id"] is not None
        # The retry judges it again and scores it, in the same stored row.
        again = api.post(
            "/v1/rewards", json={"scorer": {"judge": SCRIPTED}, "items": items("fine answer")}
        ).json()
        assert again["scores"] == [by_length("fine answer")]
        assert again["items"][0]["id"] == body["items"][0]["id"]

    def test_the_rubric_scale_maps_onto_zero_to_one(self, api: TestClient) -> None:
        scorer = {"judge": SCRIPTED, "scale_min": 0, "scale_max": 4, "threshold": 2}
        body = api.post("/v1/rewards", json={"scorer": scorer, "items": items("a" * 25)}).json()
        assert body["scores"] == [0.5]
        assert body["items"][0]["raw_score"] == 2
        assert body["items"][0]["passed"] is True

    def test_pairwise_is_the_probability_of_beating_the_reference(
        self, api: TestClient, script: Script
    ) -> None:
        """The scripted judge prefers the longer answer in both orders: 1 above, 0 below."""
        body = {
            "scorer": {"judge": SCRIPTED, "kind": "pairwise"},
            "items": [
                {"prompt": "Q?", "completion": "a long and careful answer", "reference": "meh"},
                {"prompt": "Q?", "completion": "no", "reference": "a long reference answer"},
            ],
        }
        result = api.post("/v1/rewards", json=body).json()
        assert result["scores"] == [1.0, 0.0]
        assert [i["passed"] for i in result["items"]] == [True, False]
        assert all(i["comparison_id"] for i in result["items"])
        assert len(script.shown) == 4  # both orders of each pair

    def test_pairwise_needs_a_reference(self, api: TestClient, script: Script) -> None:
        """An item without one is its own null; the item beside it is judged."""
        with_reference = {"prompt": "Say something.", "completion": "a", "reference": "b"}
        body = {
            "scorer": {"judge": SCRIPTED, "kind": "pairwise"},
            "items": [with_reference, *items("b")],
        }
        response = api.post("/v1/rewards", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["scores"][0] is not None
        assert answer["scores"][1] is None
        assert answer["items"][1]["status"] == "invalid"
        assert "items[1].reference" in answer["items"][1]["message"]
        assert len(script.shown) == 2  # both orders of the one pair

    def test_an_api_judge_is_not_a_reward_model(self, api: TestClient) -> None:
        body = {"scorer": {"judge": JUDGE, "kind": "reward_model"}, "items": items("a")}
        response = api.post("/v1/rewards", json=body)
        assert response.status_code == 422
        assert response.json()["error"]["details"]["field"] == "scorer.judge"

    def test_an_item_breaking_an_input_rule_is_its_own_null(
        self, settings: Settings, registry: JudgeRegistry, script: Script, database_url: str
    ) -> None:
        """Each kind of per-item failure nulls that item only, naming its field; every item
        is stored (its text escaped), and the good items beside it are scored."""
        good = {"prompt": "Say something.", "completion": "a fine answer", "metadata": {"run": "r"}}
        cases: list[tuple[Any, str]] = [
            ({"prompt": "p", "completion": "nul \x00 here"}, "items[{i}].completion"),
            ({"prompt": "p", "completion": "lone \ud800 surrogate"}, "items[{i}].completion"),
            ({"prompt": [{"role": "user", "content": "x\x00"}], "completion": "c"}, ".prompt.0"),
            (
                {"prompt": "p", "completion": [{"role": "assistant", "content": "\x00"}]},
                "items[{i}].completion.0.content",
            ),
            ({"prompt": "p", "completion": "z" * 81}, "items[{i}].completion"),
            ({"prompt": "p" * 81, "completion": "c"}, "items[{i}].prompt"),
            ({"prompt": "p", "completion": "c", "metadata": {"k": math.nan}}, ".metadata"),
            ({"prompt": "p", "completion": "c", "metadata": {"k": "v" * 2000}}, ".metadata"),
            ({"prompt": "p", "completion": "c", "metadata": {"run": 5}}, ".metadata.run"),
            ({"prompt": "p", "completion": "c", "metadata": {"step": -1}}, ".metadata.step"),
            ({"prompt": "p", "completion": "c", "metadata": {"step": True}}, ".metadata.step"),
            ({"prompt": "p", "completion": "c", "metadata": {"step": "3"}}, ".metadata.step"),
            ({"prompt": "p"}, "items[{i}].completion"),
            ({"prompt": "p", "completion": "c", "extra": 1}, "items[{i}].extra"),
            ("not an object", "items[{i}]"),
        ]
        bounded = settings.model_copy(update={"max_text_chars": 80, "max_metadata_kb": 1})
        body_items = [good, *(case for case, _ in cases), good]
        with serve_app(bounded, registry) as client:
            payload = json.dumps({"scorer": {"judge": SCRIPTED}, "items": body_items})  # NaN too
            response = client.post(
                "/v1/rewards", content=payload, headers={"content-type": "application/json"}
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["scores"][0] == body["scores"][-1] == by_length("a fine answer")
        for i, (_, field) in enumerate(cases, start=1):
            item = body["items"][i]
            assert body["scores"][i] is None
            assert item["status"] == "invalid", (i, item)
            assert item["reason"] in {"invalid_input", "text_too_large"}
            assert f"items[{i}]" in item["message"], (i, item["message"])
            assert field.format(i=i) in item["message"], (i, item["message"])
        assert body["counts"] == {"scored": 2, "invalid": len(cases), "cached": 0}
        assert len(script.rated) == 1  # nothing invalid reached the judge
        rows = reward_rows(database_url)
        assert len(rows) == len(body_items)
        nul = next(r for r in rows if "nul" in str(r.completion))
        assert nul.status == "invalid"
        assert "\x00" not in nul.completion

    def test_run_and_step_of_an_invalid_item_are_kept_when_valid(
        self, api: TestClient, database_url: str
    ) -> None:
        item = {"prompt": "p", "completion": "bad \x00", "metadata": {"run": "r9", "step": 4}}
        response = api.post("/v1/rewards", json={"scorer": {"judge": SCRIPTED}, "items": [item]})
        assert response.json()["items"][0]["status"] == "invalid"
        [row] = reward_rows(database_url)
        assert (row.run, row.step) == ("r9", 4)

    @pytest.mark.parametrize(
        "body",
        [
            [],
            {"scorer": {"judge": SCRIPTED}, "items": "not a list"},
            {"scorer": {"judge": SCRIPTED}, "items": []},
            {"scorer": {"judge": SCRIPTED, "kind": "nope"}, "items": [{"prompt": "p"}]},
            {"items": [{"prompt": "p", "completion": "c"}]},
            {"scorer": {"judge": SCRIPTED}, "items": [{"prompt": "p", "completion": "c"}], "x": 1},
        ],
    )
    def test_a_malformed_request_is_still_refused(self, api: TestClient, body: Any) -> None:
        assert api.post("/v1/rewards", json=body).status_code == 422

    def test_too_many_items_is_refused_before_any_call(
        self, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        with serve_app(settings.model_copy(update={"max_reward_items": 2}), registry) as client:
            body = {"scorer": {"judge": SCRIPTED}, "items": items("a", "b", "c")}
            response = client.post("/v1/rewards", json=body)
        assert response.status_code == 422
        assert "REFEREE_MAX_REWARD_ITEMS" in response.json()["error"]["message"]
        assert script.rated == []


class TestUnderLoad:
    def test_a_deadline_shorter_than_the_judge_gives_nulls_on_time(
        self, settings: Settings, registry: JudgeRegistry, provider: FakeProvider
    ) -> None:
        """Late items are null with reason 'deadline' by timeout_s; unsent ones are never sent."""
        capped = settings.model_copy(update={"reward_max_in_flight": 1})
        with serve_app(capped, registry) as client:
            # The first use of a judge builds its SDK client: not what is measured here.
            client.post("/v1/rewards", json={"scorer": {"judge": JUDGE}, "items": items("warm")})
            provider.configure(latency_ms=1500)
            started = time.monotonic()
            response = client.post(
                "/v1/rewards",
                json={"scorer": {"judge": JUDGE}, "items": items("a", "b", "c"), "timeout_s": 0.4},
            )
            elapsed = time.monotonic() - started
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["scores"] == [None, None, None]
            assert {i["reason"] for i in body["items"]} == {"deadline"}
            # Well before the judge could answer (1.5 s), whatever the machine's load.
            assert elapsed < 1.0, body
        # One slot: one call was under way at the deadline (and finished); two never left.
        assert len(provider.requests()) == 1 + 1

    def test_a_cached_request_answers_at_once_while_calls_wait_for_slots(
        self, settings: Settings, registry: JudgeRegistry, provider: FakeProvider
    ) -> None:
        """Storing waits for queued sends (bounded), but a request with nothing to judge never."""
        capped = settings.model_copy(update={"reward_max_in_flight": 1})
        with serve_app(capped, registry) as client:
            cached = {"scorer": {"judge": JUDGE}, "items": items("a", "b")}
            assert client.post("/v1/rewards", json=cached).status_code == 200
            provider.configure(latency_ms=1500)
            busy = threading.Thread(
                target=lambda: client.post(
                    "/v1/rewards", json={"scorer": {"judge": JUDGE}, "items": items("x", "y")}
                )
            )
            busy.start()
            for _ in range(200):  # "x" is out and holds the one slot: "y" waits for it
                if len(provider.requests()) == 3:
                    break
                time.sleep(0.01)
            started = time.monotonic()
            again = client.post("/v1/rewards", json=cached)
            elapsed = time.monotonic() - started
            busy.join()
        assert again.json()["counts"]["cached"] == 2
        # Two deferred steps would take 2 x MAX_DEFER_S (0.5 s) while "y" waits.
        assert elapsed < 0.4

    def test_cached_items_are_not_judged_again(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        provider.configure(outputs={RATING_TOOL_NAME: {"rationale": "ok", "score": 8}})
        first = api.post(
            "/v1/rewards", json={"scorer": {"judge": JUDGE}, "items": items("a", "b", "c")}
        ).json()
        assert len(provider.requests()) == 3
        second = api.post(
            "/v1/rewards", json={"scorer": {"judge": JUDGE}, "items": items("c", "a", "b", "d")}
        ).json()
        assert len(provider.requests()) == 4
        assert second["counts"]["cached"] == 3
        assert [i["cached"] for i in second["items"]] == [True, True, True, False]
        assert second["scores"] == [first["scores"][2], *first["scores"][:2], 7 / 9]

    def test_a_retried_batch_never_counts_twice(
        self, api: TestClient, script: Script, database_url: str
    ) -> None:
        """The same request again finds the same rows; another step or key adds new ones."""
        body = {"scorer": {"judge": SCRIPTED}, "items": items("a", "b", "a", run="r", step=4)}
        first = api.post("/v1/rewards", json=body).json()
        again = api.post("/v1/rewards", json=body).json()
        assert [i["id"] for i in again["items"]] == [i["id"] for i in first["items"]]
        assert len(reward_rows(database_url)) == 3
        next_step = {**body, "items": items("a", "b", "a", run="r", step=5)}
        other = api.post("/v1/rewards", json=next_step).json()
        keyed = api.post("/v1/rewards", json={**body, "idempotency_key": "call-2"}).json()
        assert not {i["id"] for i in other["items"]} & {i["id"] for i in first["items"]}
        assert not {i["id"] for i in keyed["items"]} & {i["id"] for i in first["items"]}
        assert len(reward_rows(database_url)) == 9
        assert len(script.rated) == 2  # the content was judged once, whatever the rows

    def test_a_full_queue_is_429_with_retry_after(
        self, settings: Settings, registry: JudgeRegistry, provider: FakeProvider
    ) -> None:
        """Beyond REFEREE_REWARD_MAX_QUEUED the answer is 429 at once, never a timeout."""
        provider.configure(latency_ms=1000)
        small = settings.model_copy(update={"reward_max_queued": 2})
        with serve_app(small, registry) as client:
            first: list[Any] = []
            busy = threading.Thread(
                target=lambda: first.append(
                    client.post(
                        "/v1/rewards",
                        json={"scorer": {"judge": JUDGE}, "items": items("a", "b")},
                    )
                )
            )
            busy.start()
            for _ in range(100):
                if provider.requests():
                    break
                time.sleep(0.02)
            started = time.monotonic()
            refused = client.post(
                "/v1/rewards", json={"scorer": {"judge": JUDGE}, "items": items("c")}
            )
            assert time.monotonic() - started < 0.5
            busy.join()
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "too_many_requests"
        assert first[0].status_code == 200
        assert first[0].json()["counts"]["scored"] == 2


class TestOpenRLHF:
    def test_get_reward_answers_as_openrlhf_reads_it(self, api: TestClient) -> None:
        """{"query","prompts","labels"} in; {"rewards","scores","extra_logs"} out, in order."""
        prompts = ["<|user|>\nHi</s><|assistant|>\n", "<|user|>\nBye</s><|assistant|>\n"]
        responses = ["hello there, friend</s>", "ok</s>"]
        body = {
            "query": [p + r for p, r in zip(prompts, responses, strict=True)],
            "prompts": prompts,
            "labels": ["", ""],
        }
        result = api.post("/get_reward", params={"judge": SCRIPTED, "run": "o1"}, json=body)
        assert result.status_code == 200, result.text
        answer = result.json()
        assert set(answer) == {"rewards", "scores", "extra_logs"}
        assert answer["rewards"] == [by_length(r) for r in responses]
        assert answer["scores"] == answer["rewards"]
        assert all(len(v) == 2 for v in answer["extra_logs"].values())

    def test_an_unscored_query_is_a_503_openrlhf_retries(
        self, api: TestClient, script: Script
    ) -> None:
        script.failures = [RefusedError("no")]
        body = {"query": ["p: answer"], "prompts": ["p: "]}
        result = api.post("/get_reward", params={"judge": SCRIPTED}, json=body)
        assert result.status_code == 503
        assert result.json()["error"]["details"]["unscored"][0]["reason"] == "refused"
        again = api.post("/get_reward", params={"judge": SCRIPTED}, json=body)
        assert again.json()["rewards"] == [by_length("answer")]

    def test_the_scorer_comes_from_the_settings(
        self, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        configured = settings.model_copy(
            update={"openrlhf_scorer": {"judge": SCRIPTED, "scale_max": 5, "threshold": 3}}
        )
        with serve_app(configured, registry) as client:
            result = client.post("/get_reward", json={"query": ["p" + "a" * 20], "prompts": ["p"]})
        assert result.status_code == 200, result.text
        assert result.json()["rewards"] == [0.5]

    def test_a_query_breaking_an_input_rule_leaves_the_others_scored(
        self, api: TestClient, script: Script, database_url: str
    ) -> None:
        """A NUL in one completion: a 422 naming that query (no retry mends it), the other
        query scored and stored, so OpenRLHF's retry finds it in the cache."""
        body = {"query": ["p: fine answer", "p: bad \x00", "p: \ud800"], "prompts": ["p: "] * 3}
        result = api.post(
            "/get_reward",
            params={"judge": SCRIPTED, "run": "o2"},
            content=json.dumps(body),  # ASCII-escaped: the lone surrogate as JSON carries it
            headers={"content-type": "application/json"},
        )
        assert result.status_code == 422, result.text
        error = result.json()["error"]
        assert error["code"] == "rewards_invalid"
        assert [u["index"] for u in error["details"]["unscored"]] == [1, 2]
        assert error["details"]["unscored"][0]["message"].startswith("query[1]: ")
        assert error["details"]["unscored"][1]["message"].startswith("query[2]: ")
        rows = reward_rows(database_url)
        assert sorted(r.status for r in rows) == ["invalid", "invalid", "scored"]
        assert {r.run for r in rows} == {"o2"}
        again = api.post(
            "/get_reward",
            params={"judge": SCRIPTED},
            json={**body, "query": body["query"][:1], "prompts": ["p: "]},
        )
        assert again.json()["rewards"] == [by_length("fine answer")]
        assert len(script.rated) == 1

    def test_mismatched_lists_name_the_field(self, api: TestClient) -> None:
        result = api.post(
            "/get_reward", params={"judge": SCRIPTED}, json={"query": ["a", "b"], "prompts": ["a"]}
        )
        assert result.status_code == 422
        assert result.json()["error"]["details"]["field"] == "prompts"

    def test_a_key_in_the_url_reaches_get_reward(self, api: TestClient, settings: Settings) -> None:
        """OpenRLHF's client sends no header: `http://referee:KEY@host/get_reward` is Basic auth."""
        _, key = asyncio.run(create_key(settings, "trainer", ["label"]))
        body = {"query": ["p: answer"], "prompts": ["p: "]}
        url = "/get_reward?judge=" + SCRIPTED
        basic = "Basic " + base64.b64encode(f"referee:{key}".encode()).decode()
        assert api.post(url, json=body, headers={"Authorization": basic}).status_code == 200
        wrong = "Basic " + base64.b64encode(b"referee:nope").decode()
        assert api.post(url, json=body, headers={"Authorization": wrong}).status_code == 401


class TestExportByRun:
    def test_export_kto_and_sft_of_a_run(
        self, api: TestClient, database_url: str, tmp_path: Path
    ) -> None:
        """A run's rewards become KTO rows (passed = desirable) and SFT rows (passed only)."""
        scorer = {"judge": SCRIPTED, "threshold": 5}
        good, bad = "g" * 60, "b" * 10  # rated 7 and 2 on 1-10
        api.post("/v1/rewards", json={"scorer": scorer, "items": items(good, bad, run="grpo-1")})
        api.post("/v1/rewards", json={"scorer": scorer, "items": items("x" * 80, run="other")})
        env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
        kto, sft = tmp_path / "kto.jsonl", tmp_path / "sft.jsonl"
        for kind, out in (("kto", kto), ("sft", sft)):
            done = referee(
                "export", kind, "--run", "grpo-1", "--shape", "text", "--out", str(out), env=env
            )
            assert done.returncode == 0, done.stderr
        kto_rows = [json.loads(line) for line in kto.read_text().splitlines()]
        assert sorted((r["completion"], r["label"]) for r in kto_rows) == [
            (bad, False),
            (good, True),
        ]
        sft_rows = [json.loads(line) for line in sft.read_text().splitlines()]
        assert [r["text"] for r in sft_rows] == [f"user: Say something.\n\nassistant: {good}"]
        missing = referee(
            "export", "kto", "--run", "nope", "--out", str(tmp_path / "n.jsonl"), env=env
        )
        assert missing.returncode != 0
        assert "run 'nope' has no scored rewards" in missing.stderr

    def test_export_of_a_run_over_http(self, api: TestClient) -> None:
        """GET /v1/exports/kto?run=RUN streams the rows `referee export kto --run RUN` writes."""
        scorer = {"judge": SCRIPTED, "threshold": 5}
        good, bad = "g" * 60, "b" * 10
        api.post("/v1/rewards", json={"scorer": scorer, "items": items(good, bad, run="grpo-2")})
        api.post("/v1/rewards", json={"scorer": scorer, "items": items("x" * 80, run="other")})
        response = api.get("/v1/exports/kto", params={"run": "grpo-2", "shape": "text"})
        assert response.status_code == 200, response.text
        rows = [json.loads(line) for line in response.text.splitlines()]
        assert sorted((r["completion"], r["label"]) for r in rows) == [(bad, False), (good, True)]
        dpo = api.get("/v1/exports/dpo", params={"run": "grpo-2"})
        assert dpo.status_code == 422
        assert dpo.json()["error"]["details"]["field"] == "run"
        filtered = api.get("/v1/exports/kto", params={"run": "grpo-2", "min_confidence": 0.5})
        assert filtered.status_code == 422


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_reward_model(tmp_path_factory.mktemp("rm") / "rm")


class TestRewardModel:
    def test_raw_score_and_its_sigmoid_micro_batched(
        self, settings: Settings, registry: JudgeRegistry, reward_model: Path
    ) -> None:
        """The model's own score is raw_score, sigmoid(raw) the reward; items share passes."""
        spec = f"local:{reward_model}"
        judge = registry.judge(registry.resolve(spec))
        sizes = record_batches(judge)  # type: ignore[arg-type]
        completions = [f"answer number {i}" for i in range(6)]
        allowed = settings.model_copy(update={"allow_adhoc_local": True})
        with serve_app(allowed, registry) as client:
            body = {"scorer": {"judge": spec, "kind": "reward_model"}, "items": items(*completions)}
            result = client.post("/v1/rewards", json=body).json()
            raw = client.post(
                "/v1/rewards",
                json={**body, "scorer": {**body["scorer"], "output": "raw"}},
            ).json()
        for completion, item in zip(completions, result["items"], strict=True):
            expected = reference_reward(reward_model, "Say something.", completion)
            assert item["raw_score"] == pytest.approx(expected, abs=1e-4)
            assert item["score"] == pytest.approx(1 / (1 + math.exp(-expected)), abs=1e-6)
        assert raw["scores"] == pytest.approx([i["raw_score"] for i in result["items"]])
        assert sum(sizes) == 6
        assert max(sizes) > 1

    def test_an_adhoc_local_model_needs_the_operators_consent(
        self, api: TestClient, reward_model: Path
    ) -> None:
        body = {"scorer": {"judge": f"local:{reward_model}", "kind": "reward_model"}}
        response = api.post("/v1/rewards", json={**body, "items": items("a")})
        assert response.status_code == 403
        assert "REFEREE_ALLOW_ADHOC_LOCAL" in response.text
