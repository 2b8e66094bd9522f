"""Juries: aggregation, spec parsing, stored votes, export filter and review queue.

In process, members are scripted judges through the real registry
(``vote:<policy>`` answers by that policy, ``soft:<p>`` prefers the longer
response with probability p); end to end, members of both vendors are the
real SDKs against the fake provider, one policy per model name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, select

from app.keys import label_key
from app.store.db import sync_url
from app.store.models import Comparison, GoldLabel, JudgeCall, JuryVote, Verdict, utcnow
from judges import JudgeConfig, JudgeConfigError, JudgeRegistry, Pair, RefusedError, Winner
from judges.base import RawAnswer
from judges.jury import (
    JuryConfig,
    MemberVote,
    aggregate,
    judge_pair_with_jury,
    load_juries,
    parse_jury_spec,
)
from judges.testing import Script, ScriptedJudge, always_first, prefer_longer
from judges.types import PairOutcome, Position, PositionProbabilities, ShownPair
from judges.types import Verdict as V
from tests.fake_provider import FakeProvider

LONG, SHORT = "Paris is the capital of France.", "Lyon."
SPLIT = "jury:vote:longer,vote:longer,vote:shorter"  # 2-1 for a (the longer response)
UNANIMOUS = "jury:vote:longer,vote:longer,vote:longer"


def prefer_shorter(shown: ShownPair) -> Position:
    position = prefer_longer(shown)
    return {Position.FIRST: Position.SECOND, Position.SECOND: Position.FIRST}.get(
        position, position
    )


def refuse(_shown: ShownPair) -> Position:
    raise RefusedError("scripted refusal", raw_output="I will not judge this.")


POLICIES = {
    "longer": prefer_longer,
    "shorter": prefer_shorter,
    "biased": always_first,
    "tie": lambda _shown: Position.TIE,
    "broken": refuse,
}


class SoftJudge(ScriptedJudge):
    """Prefers the longer response with probability ``p`` (the model name), in both orders."""

    async def answer(self, shown: ShownPair, question: str | None = None) -> RawAnswer:
        raw = await super().answer(shown, question)
        p = float(self.config.model)
        probs = (
            PositionProbabilities(p, 1 - p, 0.0)
            if raw.answer.position is Position.FIRST
            else PositionProbabilities(1 - p, p, 0.0)
        )
        answer = dataclasses.replace(raw.answer, probabilities=probs)
        return RawAnswer(answer, raw.raw_output, raw.usage)


@pytest.fixture
def registry(registry: JudgeRegistry) -> JudgeRegistry:
    """The real registry with ``vote:<policy>`` and ``soft:<p>`` judges and a named jury."""
    registry.register(
        "vote", lambda config: ScriptedJudge(config, Script(policy=POLICIES[config.model]))
    )
    registry.register("soft", lambda config: SoftJudge(config, Script(policy=prefer_longer)))
    panel = registry.resolve_pairwise(SPLIT)
    assert isinstance(panel, JuryConfig)
    registry.add_jury(dataclasses.replace(panel, name="panel"))
    return registry


def member(label: str, winner: str | None, soft: float | None = None) -> MemberVote:
    config = JudgeConfig("vote", label)
    if winner is None:
        return MemberVote(config, PairOutcome((), None, "refused", "no"))
    verdict = V(Winner(winner), 1.0, True, soft, f"{label} says {winner}")
    return MemberVote(config, PairOutcome((), verdict))


def jury(n: int = 3, **options: Any) -> JuryConfig:
    return JuryConfig(tuple(JudgeConfig("vote", f"m{i}") for i in range(n)), **options)


class TestAggregation:
    def test_two_one_split(self) -> None:
        outcome = aggregate(jury(), [member("x", "a"), member("y", "a"), member("z", "b")])
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.A
        assert outcome.disagreement == pytest.approx(1 / 3)
        assert outcome.verdict.confidence == pytest.approx(2 / 3)
        assert outcome.verdict.position_consistent is True
        assert "x → a" in outcome.verdict.rationale
        assert "z → b" in outcome.verdict.rationale

    def test_unanimous(self) -> None:
        outcome = aggregate(jury(), [member("x", "b"), member("y", "b"), member("z", "b")])
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.B
        assert outcome.disagreement == 0

    def test_a_failed_member_is_kept_and_not_counted(self) -> None:
        votes = [member("x", "a"), member("y", "a"), member("z", None)]
        outcome = aggregate(jury(), votes)
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.A
        assert outcome.disagreement == 0
        assert outcome.votes == tuple(votes)

    def test_a_draw_is_a_tie(self) -> None:
        outcome = aggregate(jury(), [member("x", "a"), member("y", "b"), member("z", None)])
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.TIE
        assert outcome.disagreement == 0.5
        three_ways = aggregate(jury(), [member("x", "a"), member("y", "b"), member("z", "tie")])
        assert three_ways.verdict is not None
        assert three_ways.verdict.winner is Winner.TIE
        assert three_ways.disagreement == pytest.approx(2 / 3)

    def test_quorum_not_met_is_a_failure(self) -> None:
        outcome = aggregate(jury(), [member("x", "a"), member("y", None), member("z", None)])
        assert outcome.verdict is None
        assert outcome.error_class == "jury_quorum"
        assert "1 of 3 jury members answered, 2 needed" in (outcome.error_message or "")
        assert len(outcome.votes) == 3
        lenient = aggregate(
            jury(quorum=1), [member("x", "a"), member("y", None), member("z", None)]
        )
        assert lenient.verdict is not None
        assert lenient.verdict.winner is Winner.A

    def test_mean_probability(self) -> None:
        votes = [member("x", "a", 0.9), member("y", "a", 0.6), member("z", "b", 0.3)]
        outcome = aggregate(jury(aggregate="mean"), votes)
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.A
        assert outcome.p_a == pytest.approx(0.6)
        assert outcome.verdict.soft_preference == pytest.approx(0.6)
        assert outcome.verdict.confidence == pytest.approx(0.6)
        assert outcome.disagreement == pytest.approx(1 / 3)
        wide = aggregate(jury(aggregate="mean", tie_margin=0.15), votes)
        assert wide.verdict is not None
        assert wide.verdict.winner is Winner.TIE

    def test_mean_falls_back_to_votes_without_probabilities(self) -> None:
        """A member without log-probabilities counts its vote as P(a) 1, 0 or 1/2."""
        votes = [member("x", "b", 0.45), member("y", "b"), member("z", "a")]
        outcome = aggregate(jury(aggregate="mean"), votes)
        assert outcome.p_a == pytest.approx((0.45 + 0 + 1) / 3)
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.B
        assert outcome.verdict.soft_preference is None  # not every member had log-probabilities


class TestSpecs:
    def test_parse_inline(self) -> None:
        members, options = parse_jury_spec(
            "jury:anthropic:claude-haiku-4-5, openai:gpt-4o-mini,fast,aggregate=mean,quorum=2"
        )
        assert members == ["anthropic:claude-haiku-4-5", "openai:gpt-4o-mini", "fast"]
        assert options == {"aggregate": "mean", "quorum": "2"}

    def test_resolve_inline_and_named(self, registry: JudgeRegistry) -> None:
        inline = registry.resolve_pairwise(SPLIT + ",aggregate=mean,quorum=3")
        assert isinstance(inline, JuryConfig)
        assert [m.spec for m in inline.members] == ["vote:longer", "vote:longer", "vote:shorter"]
        assert (inline.aggregate, inline.required) == ("mean", 3)
        assert inline.spec == SPLIT + ",aggregate=mean,quorum=3"
        named = registry.resolve_pairwise("panel")
        assert isinstance(named, JuryConfig)
        assert named.label == "panel"

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("jury:vote:longer", "at least two members"),
            ("jury:vote:longer,vote:tie,aggregate=median", "'majority' or 'mean'"),
            ("jury:vote:longer,vote:tie,quorum=3", "quorum must be between 1 and 2"),
            ("jury:vote:longer,nobody", "'nobody'"),
            ("jury:vote:longer,panel", "a jury cannot sit on a jury"),
            ("jury:vote:longer,,vote:tie", "empty member"),
        ],
    )
    def test_bad_specs(self, registry: JudgeRegistry, spec: str, message: str) -> None:
        with pytest.raises(JudgeConfigError, match=message):
            registry.resolve_pairwise(spec)

    def test_a_jury_cannot_rate(self, registry: JudgeRegistry) -> None:
        with pytest.raises(JudgeConfigError, match="juries judge pairs"):
            registry.resolve("panel")

    def test_label_key_covers_members_and_rule(self, registry: JudgeRegistry) -> None:
        pair = {"prompt": "q", "response_a": LONG, "response_b": SHORT}

        def key(spec: str) -> str:
            return label_key(pair, registry.resolve_pairwise(spec))

        base = key(SPLIT)
        assert key("jury:vote:shorter,vote:longer,vote:longer") == base  # order is irrelevant
        assert key(SPLIT + ",quorum=2") == base  # the default quorum, spelled out
        assert key("jury:vote:longer,vote:tie,vote:shorter") != base
        assert key(SPLIT + ",aggregate=mean") != base
        assert key(SPLIT + ",quorum=3") != base
        changed = registry.resolve_pairwise(SPLIT)
        assert isinstance(changed, JuryConfig)
        hotter = dataclasses.replace(
            changed,
            members=(changed.members[0].with_options(temperature=1.0), *changed.members[1:]),
        )
        assert label_key(pair, hotter) != base

    def test_judges_file(self, tmp_path: Path) -> None:
        path = tmp_path / "judges.yaml"
        path.write_text(
            "judges:\n"
            "  fast: {spec: 'vote:longer', temperature: 0.5}\n"
            "  panel:\n"
            "    members: [fast, 'vote:shorter', 'vote:tie']\n"
            "    aggregate: mean\n"
            "    tie_margin: 0.1\n",
            encoding="utf-8",
        )
        from judges import load_named_judges

        named = load_named_judges(path)
        assert list(named) == ["fast"]
        panel = load_juries(path, named)["panel"]
        assert panel.members[0].temperature == 0.5
        assert panel.members[0].label == "fast"
        assert (panel.aggregate, panel.tie_margin, panel.label) == ("mean", 0.1, "panel")
        path.write_text("judges:\n  bad:\n    members: [fast, 'vote:x']\n", encoding="utf-8")
        with pytest.raises(JudgeConfigError, match=r"judges.yaml: jury 'bad': member 'fast'"):
            load_juries(path, {})


async def test_members_judge_in_both_orders(registry: JudgeRegistry) -> None:
    """Each member runs the both-orders protocol; a position-biased member votes tie."""
    config = registry.resolve_pairwise("jury:vote:longer,vote:biased,vote:shorter")
    assert isinstance(config, JuryConfig)
    outcome = await judge_pair_with_jury(registry.jury(config), Pair("q", LONG, SHORT))
    winners = [v.outcome.verdict.winner for v in outcome.votes if v.outcome.verdict]
    assert winners == [Winner.A, Winner.TIE, Winner.B]
    assert len(outcome.calls) == 6
    assert outcome.verdict is not None
    assert outcome.verdict.winner is Winner.TIE
    assert outcome.verdict.position_consistent is False  # the biased member flipped


def compare(api: TestClient, prompt: str, judge: str, status: int = 201) -> dict[str, Any]:
    body = {"prompt": prompt, "response_a": LONG, "response_b": SHORT, "judge": judge}
    response = api.post("/v1/comparisons", json=body)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def rows(database_url: str, model: type, **where: Any) -> list[Any]:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        statement = select(model).filter_by(**where).order_by(model.id)
        found = list(connection.execute(statement))
    engine.dispose()
    return found


class TestStored:
    def test_bad_juries_are_clear_errors(self, api: TestClient) -> None:
        unknown = compare(api, "q", "jury:vote:longer,nobody", status=400)
        assert "'nobody'" in unknown["error"]["message"]
        body = {"prompt": "q", "response": LONG, "judge": "panel"}
        rating = api.post("/v1/ratings", json=body)
        assert rating.status_code == 400
        assert "juries judge pairs" in rating.json()["error"]["message"]

    def test_split_verdict_with_every_vote(self, api: TestClient, database_url: str) -> None:
        result = compare(api, "split", SPLIT)
        verdict = result["verdict"]
        assert (verdict["winner"], verdict["disagreement"]) == ("a", pytest.approx(1 / 3))
        assert result["judge"] == SPLIT
        assert "jury" in result["judge_config"]
        votes = result["jury_votes"]
        assert [(v["member"], v["winner"]) for v in votes] == [
            ("vote:longer", "a"),
            ("vote:longer", "a"),
            ("vote:shorter", "b"),
        ]
        assert all(v["verdict_id"] == verdict["id"] for v in votes)
        calls = result["calls"]
        assert len(calls) == 6
        assert {c["provider"] for c in calls} == {"vote"}
        assert sorted((c["jury_vote_id"], c["order"]) for c in calls) == sorted(
            (v["id"], order) for v in votes for order in ("ab", "ba")
        )
        assert compare(api, "split", SPLIT, status=200)["reused"] is True

    def test_failing_member(self, api: TestClient, database_url: str) -> None:
        result = compare(api, "one fails", "jury:vote:longer,vote:longer,vote:broken")
        assert (result["verdict"]["winner"], result["verdict"]["disagreement"]) == ("a", 0)
        failed = result["jury_votes"][2]
        assert (failed["winner"], failed["error_class"]) == (None, "refused")
        failed_calls = [c for c in result["calls"] if c["jury_vote_id"] == failed["id"]]
        assert failed_calls
        assert all(c["error_class"] == "refused" for c in failed_calls)

    def test_quorum_not_met(self, api: TestClient, database_url: str) -> None:
        body = compare(api, "two fail", "jury:vote:longer,vote:broken,vote:broken", status=502)
        assert body["error"]["details"]["error_class"] == "jury_quorum"
        (comparison,) = rows(database_url, Comparison)
        assert (comparison.status, comparison.error_class) == ("failed", "jury_quorum")
        assert rows(database_url, Verdict) == []
        votes = rows(database_url, JuryVote)
        assert [v.winner for v in votes] == ["a", None, None]
        assert all(v.verdict_id is None for v in votes)
        assert len(rows(database_url, JudgeCall)) >= 6

    def test_mean_with_probabilities(self, api: TestClient) -> None:
        result = compare(api, "soft", "jury:soft:0.9,soft:0.7,vote:shorter,aggregate=mean")
        verdict = result["verdict"]
        assert verdict["winner"] == "a"
        assert verdict["confidence"] == pytest.approx((0.9 + 0.7 + 0) / 3)
        assert verdict["soft_preference"] is None  # vote:shorter has no probabilities
        assert [v["soft_preference"] for v in result["jury_votes"]] == [
            pytest.approx(0.9),
            pytest.approx(0.7),
            None,
        ]

    def test_named_jury_in_a_batch(self, api: TestClient) -> None:
        lines = [
            json.dumps({"id": f"p{i}", "prompt": f"q{i}", "response_a": LONG, "response_b": SHORT})
            for i in range(3)
        ]
        submitted = api.post(
            "/v1/batches?judge=panel",
            content="\n".join(lines),
            headers={"content-type": "application/x-ndjson"},
        )
        assert submitted.status_code == 202, submitted.text
        batch_id = submitted.json()["id"]
        for _ in range(200):
            state = api.get(f"/v1/batches/{batch_id}").json()
            if state["status"] == "done":
                break
            time.sleep(0.05)
        assert state["counts"]["labeled"] == 3
        page = api.get("/v1/comparisons", params={"batch_id": batch_id}).json()["items"]
        assert {c["judge"] for c in page} == {"panel"}
        assert all(len(c["jury_votes"]) == 3 for c in page)
        assert all(c["verdict"]["disagreement"] == pytest.approx(1 / 3) for c in page)
        listed = {j["name"]: j for j in api.get("/v1/judges").json()["named"]}
        assert listed["panel"]["spec"] == SPLIT
        assert listed["panel"]["options"]["quorum"] == 2


def export_lines(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/v1/exports/dpo", params={"allow_empty": True, **params})
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


class TestExportAndQueue:
    def test_max_disagreement(self, api: TestClient, database_url: str, tmp_path: Path) -> None:
        compare(api, "split", SPLIT)
        compare(api, "unanimous", UNANIMOUS)
        compare(api, "single", "vote:longer")
        every = export_lines(api, provenance=True)
        by_prompt = {row["prompt"][0]["content"]: row["disagreement"] for row in every}
        assert by_prompt == {"split": pytest.approx(1 / 3), "unanimous": 0, "single": None}
        kept = export_lines(api, max_disagreement=0.2)
        assert [row["prompt"][0]["content"] for row in kept] == ["unanimous"]
        assert len(export_lines(api, max_disagreement=0.34)) == 2
        assert api.get("/v1/exports/dpo", params={"max_disagreement": 1.5}).status_code == 422

        from typer.testing import CliRunner

        from app.cli import cli

        out = tmp_path / "dpo.jsonl"
        result = CliRunner().invoke(
            cli,
            ["export", "dpo", "--out", str(out), "--max-disagreement", "0"],
            env={"REFEREE_DATABASE_URL": database_url},
        )
        assert result.exit_code == 0, result.output
        lines = out.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["prompt"][0]["content"] for line in lines] == ["unanimous"]

    def test_review_queue(self, api: TestClient, database_url: str, tmp_path: Path) -> None:
        split = compare(api, "split", SPLIT)
        compare(api, "unanimous", UNANIMOUS)
        compare(api, "single", "vote:longer")
        three_way = compare(api, "three-way", "jury:vote:longer,vote:shorter,vote:tie")
        queue = api.get("/v1/reviews/queue", params={"min_disagreement": 0.33}).json()
        ids = [item["comparison_id"] for item in queue["items"]]
        assert ids == [split["id"], three_way["id"]]
        first = queue["items"][0]
        assert first["verdict"]["disagreement"] == pytest.approx(1 / 3)
        assert [v["winner"] for v in first["votes"]] == ["a", "a", "b"]
        only_top = api.get("/v1/reviews/queue", params={"min_disagreement": 0.5}).json()
        assert [i["comparison_id"] for i in only_top["items"]] == [three_way["id"]]
        paged = api.get("/v1/reviews/queue", params={"min_disagreement": 0.3, "limit": 1}).json()
        assert [i["comparison_id"] for i in paged["items"]] == [split["id"]]
        rest = api.get(
            "/v1/reviews/queue",
            params={"min_disagreement": 0.3, "cursor": paged["next_cursor"]},
        ).json()
        assert [i["comparison_id"] for i in rest["items"]] == [three_way["id"]]
        assert rest["next_cursor"] is None
        assert api.get("/v1/reviews/queue", params={"min_disagreement": 2}).status_code == 422

        # A pair a human has labeled leaves the queue.
        engine = create_engine(sync_url(database_url))
        with engine.begin() as connection:
            connection.execute(
                insert(GoldLabel).values(
                    pair_key="another pair",
                    dedupe_key="review-1",
                    winner="b",
                    source="review",
                    comparison_id=uuid.UUID(split["id"]),
                    created_at=utcnow(),
                )
            )
        engine.dispose()
        after = api.get("/v1/reviews/queue", params={"min_disagreement": 0.33}).json()
        assert [i["comparison_id"] for i in after["items"]] == [three_way["id"]]
        with_reviewed = api.get(
            "/v1/reviews/queue", params={"min_disagreement": 0.33, "include_reviewed": True}
        ).json()
        assert len(with_reviewed["items"]) == 2

        from typer.testing import CliRunner

        from app.cli import cli

        out = tmp_path / "review.jsonl"
        result = CliRunner().invoke(
            cli,
            ["review-queue", "--min-disagreement", "0.3", "--out", str(out)],
            env={"REFEREE_DATABASE_URL": database_url},
        )
        assert result.exit_code == 0, result.output
        (line,) = [json.loads(text) for text in out.read_text(encoding="utf-8").splitlines()]
        assert line["id"] == three_way["id"]
        assert (line["prompt"], line["response_a"], line["response_b"]) == (
            "three-way",
            LONG,
            SHORT,
        )
        assert line["metadata"]["jury"]["disagreement"] == pytest.approx(2 / 3)
        assert len(line["metadata"]["jury"]["votes"]) == 3


def test_label_with_a_jury_of_both_vendors(
    tmp_path: Path, database_url: str, provider: FakeProvider
) -> None:
    """`referee label --judge <jury>`: real SDKs, one policy per model, votes stored."""
    provider.configure(
        model_policies={
            "claude-haiku-4-5": "longer",
            "gpt-4o-mini": "longer",
            "gpt-4.1-nano": "shorter",
        }
    )
    judges = tmp_path / "judges.yaml"
    judges.write_text(
        "judges:\n"
        "  panel:\n"
        "    members: ['anthropic:claude-haiku-4-5', 'openai:gpt-4o-mini', "
        "'openai:gpt-4.1-nano']\n",
        encoding="utf-8",
    )
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": f"q{i}", "response_a": LONG, "response_b": SHORT})
            + "\n"
            for i in range(2)
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "REFEREE_DATABASE_URL": database_url, "REFEREE_JUDGES_FILE": str(judges)}
    dry = subprocess.run(
        [sys.executable, "-m", "app.cli", "label", str(pairs), "--judge", "panel", "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 2 pairs, 12 calls" in dry.stdout  # every member, both orders
    assert provider.requests() == []
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "label", str(pairs), "--judge", "panel"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(provider.requests()) == 12  # 2 pairs x 3 members x 2 orders
    verdicts = rows(database_url, Verdict)
    assert [(v.winner, v.disagreement) for v in verdicts] == [("a", pytest.approx(1 / 3))] * 2
    votes = rows(database_url, JuryVote)
    assert sorted({(v.member_spec, v.winner) for v in votes}) == [
        ("anthropic:claude-haiku-4-5", "a"),
        ("openai:gpt-4.1-nano", "b"),
        ("openai:gpt-4o-mini", "a"),
    ]
    calls = rows(database_url, JudgeCall)
    assert {(c.provider, c.model) for c in calls} == {
        ("anthropic", "claude-haiku-4-5"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4.1-nano"),
    }
    assert all(c.jury_vote_id is not None for c in calls)
    again = subprocess.run(
        [sys.executable, "-m", "app.cli", "label", str(pairs), "--judge", "panel"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert len(provider.requests()) == 12  # finished pairs are never judged again
