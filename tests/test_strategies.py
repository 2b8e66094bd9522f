"""Selection strategies: the pure decisions, then the use case on both databases."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from app.errors import InvalidInputError, NotFoundError
from app.labeling.rate import RubricChoice
from app.labeling.rounds import select as select_module
from app.labeling.rounds import strategies
from app.labeling.rounds.bradley_terry import fit, votes
from app.labeling.rounds.select import SelectOptions, SelectSummary, select_preferences
from app.labeling.runtime import runtime
from app.settings import Settings
from app.store import generation as generations
from app.store import selection
from app.store.db import Database, sync_url
from app.store.models import Comparison, Rating
from app.store.models_selection import Selection
from app.store.selection import PromptSelection
from judges import JudgeRegistry
from judges.errors import RefusedError
from judges.prompts import render_text
from judges.rubrics import Rubric
from judges.testing import Script
from judges.types import Position, ShownPair, Text
from tests.fake_provider import FakeProvider
from tests.test_cli import referee

JUDGE = "scripted:judge"
ANTHROPIC = "anthropic:claude-sonnet-4-6"


# ---------------------------------------------------------------- pure decisions


class TestScores:
    def test_top_and_bottom_are_chosen_and_rejected(self) -> None:
        decision = strategies.best_vs_worst([5, 9, 2, 7], [10, 10, 10, 10], margin=1)
        assert (decision.chosen, decision.rejected, decision.margin) == (1, 2, 7)
        assert decision.selected
        assert decision.skip_reason is None

    @pytest.mark.parametrize(
        ("scores", "lengths", "chosen", "rejected"),
        [
            ([9, 9, 1], [30, 20, 5], 1, 2),  # equal tops: the shorter is chosen
            ([9, 1, 1], [5, 20, 30], 0, 2),  # equal bottoms: the longer is rejected
            ([9, 9, 1, 1], [20, 20, 30, 30], 0, 2),  # equal lengths too: the first
        ],
    )
    def test_ties_at_the_ends_lean_against_length(
        self, scores: list[float], lengths: list[int], chosen: int, rejected: int
    ) -> None:
        decision = strategies.best_vs_worst(scores, lengths, margin=1)
        assert (decision.chosen, decision.rejected) == (chosen, rejected)

    @pytest.mark.parametrize(("scores", "margin"), [([5, 6, 5], 2), ([7, 7], 1), ([3, 3.5], 1)])
    def test_a_gap_below_the_margin_is_skipped(self, scores: list[float], margin: float) -> None:
        decision = strategies.best_vs_worst(scores, [1] * len(scores), margin)
        assert decision.skip_reason == strategies.BELOW_MARGIN
        assert decision.chosen is None
        assert decision.rejected is None
        assert "below the margin" in decision.reason

    def test_one_candidate_is_too_few(self) -> None:
        assert strategies.best_vs_worst([5], [1], 1).skip_reason == strategies.TOO_FEW

    def test_wins_count_a_tie_as_half(self) -> None:
        wins = strategies.win_counts(3, [(0, 1, "a"), (0, 2, "tie"), (1, 2, "b")])
        assert wins == [1.5, 0.0, 1.5]

    def test_all_pairs_takes_most_wins_against_fewest(self) -> None:
        verdicts = [(0, 1, "b"), (0, 2, "a"), (1, 2, "a")]
        decision = strategies.all_pairs(verdicts, [1, 1, 1], margin=1)
        assert (decision.chosen, decision.rejected) == (1, 2)
        assert decision.details["scores"] == [1.0, 2.0, 0.0]


class TestTournamentSampling:
    @pytest.mark.parametrize("n", [2, 3, 5, 8])
    def test_first_pairs_connect_every_candidate(self, n: int) -> None:
        plan = strategies.Tournament(n, budget=100, seed="s")
        pairs = plan.first_pairs()
        assert len(pairs) == (1 if n == 2 else n)
        assert all(i < j for i, j in pairs)
        assert {c for pair in pairs for c in pair} == set(range(n))

    def test_the_same_seed_gives_the_same_pairs(self) -> None:
        first = strategies.Tournament(8, 16, "7:prompt").first_pairs()
        assert strategies.Tournament(8, 16, "7:prompt").first_pairs() == first
        assert strategies.Tournament(8, 16, "8:prompt").first_pairs() != first

    def test_a_budget_below_n_minus_one_is_not_feasible(self) -> None:
        assert not strategies.Tournament(5, 3, "s").feasible()
        assert strategies.Tournament(5, 4, "s").feasible()
        assert len(strategies.Tournament(5, 4, "s").first_pairs()) == 4

    @pytest.mark.parametrize("budget", [7, 10, 16, 28, 40])
    def test_the_budget_is_never_exceeded_and_no_pair_repeats(self, budget: int) -> None:
        """Small budgets are spent in full; large ones stop once top and bottom met everyone."""
        plan = strategies.Tournament(8, budget, "s")
        judged: list[tuple[int, int]] = []
        pairs = plan.first_pairs()
        while pairs:
            judged += pairs
            verdicts = [(i, j, "a") for i, j in judged]  # 0 best, 7 worst
            pairs = plan.next_pairs(fit(8, votes(verdicts)))
        assert len(judged) == len(set(judged))
        assert len(judged) == budget if budget <= 16 else len(judged) <= 28
        if budget > 16:
            for end in (0, 7):
                assert {c for pair in judged if end in pair for c in pair} == set(range(8))

    def test_later_pairs_test_the_top_and_the_bottom(self) -> None:
        plan = strategies.Tournament(6, 20, "s")
        first = plan.first_pairs()
        verdicts = [(i, j, "a" if i < j else "b") for i, j in first]  # 0 best, 5 worst
        current = fit(6, votes(verdicts))
        top, bottom = current.ranking(plan.order)[0], current.ranking(plan.order)[-1]
        for pair in plan.next_pairs(current):
            assert top in pair or bottom in pair
            assert pair not in first


class TestTournamentDecision:
    def test_a_consistent_judge_separates(self) -> None:
        pairs = list(itertools.combinations(range(4), 2))
        verdicts = [(i, j, "a") for i, j in pairs]  # 0 > 1 > 2 > 3
        decision = strategies.tournament(verdicts, [1] * 4, 0.95, [0, 1, 2, 3])
        assert (decision.chosen, decision.rejected) == (0, 3)
        assert decision.details["p_chosen_above_rejected"] >= 0.95

    def test_ties_everywhere_are_inseparable(self) -> None:
        pairs = list(itertools.combinations(range(4), 2))
        decision = strategies.tournament(
            [(i, j, "tie") for i, j in pairs], [1] * 4, 0.95, [0, 1, 2, 3]
        )
        assert decision.skip_reason == strategies.INSEPARABLE
        assert decision.chosen is None

    def test_one_win_in_each_direction_is_inseparable(self) -> None:
        decision = strategies.tournament(
            [(0, 1, "a"), (1, 2, "a"), (0, 2, "b")], [1] * 3, 0.95, [0, 1, 2]
        )
        assert decision.skip_reason == strategies.INSEPARABLE


# ---------------------------------------------------------------- the use case

QUALITY = re.compile(r"quality (\d+)")


def quality(text: Text) -> int:
    found = QUALITY.search(render_text(text))
    assert found is not None, text
    return int(found.group(1))


def prefer_quality(shown: ShownPair) -> Position:
    first, second = quality(shown.first), quality(shown.second)
    if first == second:
        return Position.TIE
    return Position.FIRST if first > second else Position.SECOND


def rate_quality(_prompt: Text, response: Text, _rubric: Rubric) -> int:
    return quality(response)


def always_tie(_shown: ShownPair) -> Position:
    return Position.TIE


async def store_generation(
    database_url: str, prompts: dict[str, Sequence[str]], name: str = "g1"
) -> uuid.UUID:
    """A finished generation: each prompt's samples (equal texts become one candidate)."""
    db = Database(database_url)
    n = max(len(texts) for texts in prompts.values())
    values = {
        "name": name,
        "source": "test",
        "policy": "scripted:policy",
        "policy_config": {},
        "checkpoint": "step-1",
        "n": n,
        "params": {},
        "seed": 1,
        "api_key_id": None,
    }
    async with db.transaction() as session:
        found, _ = await generations.get_or_create(session, values)
        rows = [
            {"prompt_key": generations.text_key(p), "prompt": p, "source_line": line}
            for line, p in enumerate(prompts, 1)
        ]
        await generations.add_prompts(session, found, rows)
        claimed = await generations.claim(session, found.id, "test", 10_000, timedelta(minutes=1))
    results = [sample(c, prompts[c.prompt]) for c in claimed]
    async with db.transaction() as session:
        await generations.take_ownership(session, "test", [c.sample_id for c in claimed])
        await generations.write_samples(session, found.id, results)
    await db.dispose()
    return found.id


def sample(claimed: generations.ClaimedSample, texts: Sequence[str]) -> generations.SampleResult:
    """The scripted text for a sample index; indexes past the prompt's texts failed."""
    text = texts[claimed.sample_index] if claimed.sample_index < len(texts) else None
    return generations.SampleResult(
        sample_id=claimed.sample_id,
        text=text,
        request_id=None,
        seed=1,
        model="m",
        finish_reason="stop" if text is not None else None,
        input_tokens=1,
        output_tokens=1,
        cost_usd=None,
        latency_ms=1.0,
        attempts=1,
        error_class=None if text is not None else "RefusedError",
    )


def answers(*qualities: int) -> list[str]:
    return [f"Answer {k} of quality {q}." + " more" * k for k, q in enumerate(qualities)]


async def run_select(
    settings: Settings,
    registry: JudgeRegistry,
    generation: uuid.UUID | str,
    strategy: str,
    **options: Any,
) -> SelectSummary:
    async with runtime(settings, registry) as labeler:
        return await select_preferences(
            labeler, generation, strategy, JUDGE, SelectOptions(**options)
        )


async def stored(database_url: str, run_id: uuid.UUID, **kwargs: Any) -> list[PromptSelection]:
    db = Database(database_url)
    async with db.transaction() as session:
        found = await selection.preferences(session, run_id, **kwargs)
    await db.dispose()
    return found


def statuses(database_url: str) -> list[str]:
    """Every comparison's status."""
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        found = list(connection.execute(select(Comparison.status)).scalars())
    engine.dispose()
    return found


def count_rows(database_url: str, model: Any) -> int:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        found = connection.execute(select(func.count()).select_from(model)).scalar_one()
    engine.dispose()
    return int(found)


class TestBestVsWorst:
    async def test_picks_the_top_and_bottom_rating(
        self, database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        """Scripted ratings 4, 9, 2, 6: chosen is the 9, rejected the 2, both stored with scores."""
        script.rater = rate_quality
        texts = answers(4, 9, 2, 6)
        generation = await store_generation(database_url, {"Explain tides.": texts})
        summary = await run_select(settings, registry, generation, "best-vs-worst")
        assert (summary.selected, summary.judged, summary.done) == (1, 4, True)
        [found] = await stored(database_url, summary.run_id)
        assert found.status == "selected"
        assert found.skip_reason is None
        assert found.chosen is not None
        assert found.rejected is not None
        assert (found.chosen.text, found.chosen.score) == (texts[1], 9)
        assert (found.rejected.text, found.rejected.score) == (texts[2], 2)
        assert (found.margin, found.strategy, found.judge) == (7, "best-vs-worst", JUDGE)
        assert found.prompt == "Explain tides."
        assert len(found.details["judgments"]) == 4
        assert {j["rating_id"] for j in found.details["judgments"]} <= {
            str(r.id) for r in await _ratings(database_url)
        }

    async def test_below_the_margin_is_skipped_with_the_reason(
        self, database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        script.rater = rate_quality
        generation = await store_generation(database_url, {"p": answers(5, 6, 5)})
        summary = await run_select(settings, registry, generation, "best-vs-worst", margin=2)
        assert summary.outcomes == {strategies.BELOW_MARGIN: 1}
        [found] = await stored(database_url, summary.run_id)
        assert (found.status, found.chosen, found.rejected) == ("skipped", None, None)
        assert found.margin == 1
        assert "below the margin 2" in found.reason
        assert await stored(database_url, summary.run_id, selected_only=True) == []

    async def test_a_failed_rating_skips_the_prompt_and_a_rerun_retries_it(
        self, database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        """A refusal never becomes a score; the second run rates again and selects."""
        script.rater = rate_quality
        script.failures = [RefusedError("no")]
        generation = await store_generation(database_url, {"p": answers(3, 8)})
        first = await run_select(settings, registry, generation, "best-vs-worst", concurrency=1)
        assert first.outcomes == {strategies.JUDGE_FAILED: 1}
        assert not first.done
        [failed] = await stored(database_url, first.run_id)
        assert failed.chosen is None
        assert failed.details["failures"][0]["error_class"] == "refused"
        second = await run_select(settings, registry, generation, "best-vs-worst", concurrency=1)
        assert second.run_id == first.run_id
        assert (second.outcomes, second.judged, second.reused, second.done) == (
            {"selected": 1},
            1,
            1,
            True,
        )
        [found] = await stored(database_url, second.run_id)
        assert found.details["judgments"]
        assert "failures" not in found.details
        assert count_rows(database_url, Selection) == 1


async def _ratings(database_url: str) -> list[Rating]:
    db = Database(database_url)
    async with db.transaction() as session:
        found = list((await session.execute(select(Rating))).scalars())
    await db.dispose()
    return found


class TestAllPairs:
    @pytest.mark.parametrize("n", [2, 3, 4])
    async def test_makes_n_times_n_minus_one_calls(
        self,
        n: int,
        database_url: str,
        settings: Settings,
        registry: JudgeRegistry,
        script: Script,
    ) -> None:
        """Every pair in both orders; the best candidate wins every pair it is in."""
        script.policy = prefer_quality
        texts = answers(*range(n))
        generation = await store_generation(database_url, {"p": texts})
        summary = await run_select(settings, registry, generation, "all-pairs")
        assert len(script.shown) == n * (n - 1)
        assert count_rows(database_url, Comparison) == n * (n - 1) // 2
        [found] = await stored(database_url, summary.run_id)
        assert found.chosen is not None
        assert found.rejected is not None
        assert (found.chosen.text, found.rejected.text) == (texts[-1], texts[0])
        assert found.chosen.score == n - 1
        assert found.rejected.score == 0

    async def test_identical_samples_are_one_candidate(
        self, database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        """Four samples, two of them equal: three candidates, six calls, counts kept."""
        script.policy = prefer_quality
        a, b, c = answers(1, 5, 3)
        generation = await store_generation(database_url, {"p": [a, b, b, c]})
        summary = await run_select(settings, registry, generation, "all-pairs")
        assert len(script.shown) == 6
        [found] = await stored(database_url, summary.run_id)
        assert found.chosen is not None
        assert (found.chosen.text, found.chosen.count) == (b, 2)

    async def test_a_prompt_with_one_candidate_is_too_few(
        self,
        database_url: str,
        settings: Settings,
        registry: JudgeRegistry,
        script: Script,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Read one prompt per page here: every page is decided, in file order."""
        monkeypatch.setattr(select_module, "PAGE_PROMPTS", 1)
        [a] = answers(1)
        generation = await store_generation(database_url, {"p": [a, a], "q": answers(1, 2)})
        summary = await run_select(settings, registry, generation, "all-pairs")
        assert summary.outcomes == {"selected": 1, strategies.TOO_FEW: 1}
        assert summary.prompts == 2
        assert len(script.shown) == 2

    async def test_resume_after_a_crash_duplicates_nothing(
        self, database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        """The run dies on its 9th call; the re-run pays only for what was not stored."""
        prompts = {f"prompt {k}": answers(1, 4, 2) for k in range(3)}  # 3 pairs each
        generation = await store_generation(database_url, prompts)
        calls = 0

        def crash_on_ninth(shown: ShownPair) -> Position:
            nonlocal calls
            calls += 1
            if calls == 9:
                raise RuntimeError("killed")
            return prefer_quality(shown)

        script.policy = crash_on_ninth
        with pytest.raises(RuntimeError, match="killed"):
            await run_select(settings, registry, generation, "all-pairs", concurrency=1)
        labeled_before = statuses(database_url).count("labeled")
        decided_before = count_rows(database_url, Selection)
        assert labeled_before >= 4
        assert decided_before >= 1
        script.policy = prefer_quality
        script.shown.clear()
        summary = await run_select(settings, registry, generation, "all-pairs", concurrency=1)
        assert summary.outcomes == {"selected": 3}
        assert summary.done
        assert summary.decided_now == 3 - decided_before
        assert count_rows(database_url, Comparison) == 9
        assert count_rows(database_url, Selection) == 3
        # Pairs judged before the crash are not judged again; the rest once, in both orders.
        assert len(script.shown) == 2 * (9 - labeled_before)
        again = await run_select(settings, registry, generation, "all-pairs", concurrency=1)
        assert (again.decided_now, again.judged, again.run_id) == (0, 0, summary.run_id)

    async def test_another_margin_is_another_run(
        self, database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        """Options are part of the run's key; the verdicts are shared, so no call is repeated."""
        script.policy = prefer_quality
        generation = await store_generation(database_url, {"p": answers(1, 2, 3)})
        first = await run_select(settings, registry, generation, "all-pairs")
        second = await run_select(settings, registry, generation, "all-pairs", margin=3)
        assert first.run_id != second.run_id
        assert (second.judged, second.reused) == (0, 3)
        assert second.outcomes == {strategies.BELOW_MARGIN: 1}


class TestTournament:
    async def test_selects_the_best_and_worst_within_budget(
        self, database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        script.policy = prefer_quality
        texts = answers(3, 7, 1, 5, 6, 2)
        generation = await store_generation(database_url, {"p": texts})
        summary = await run_select(settings, registry, generation, "tournament", budget=9)
        assert len(script.shown) <= 2 * 9
        [found] = await stored(database_url, summary.run_id)
        assert found.chosen is not None
        assert found.rejected is not None
        assert (found.chosen.text, found.rejected.text) == (texts[1], texts[2])
        assert found.details["p_chosen_above_rejected"] >= 0.95
        assert found.details["budget"] == 9

    async def test_inseparable_when_the_judge_always_ties(
        self, database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        script.policy = always_tie
        generation = await store_generation(database_url, {"p": answers(1, 2, 3, 4)})
        summary = await run_select(settings, registry, generation, "tournament")
        assert summary.outcomes == {strategies.INSEPARABLE: 1}
        [found] = await stored(database_url, summary.run_id)
        assert found.chosen is None
        assert "below 0.95" in found.reason

    async def test_a_budget_that_cannot_connect_the_candidates_is_skipped(
        self, database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        generation = await store_generation(database_url, {"p": answers(1, 2, 3, 4)})
        summary = await run_select(settings, registry, generation, "tournament", budget=2)
        assert summary.outcomes == {strategies.BUDGET_TOO_SMALL: 1}
        assert script.shown == []


class TestRefusals:
    async def test_unknown_generation_and_bad_options_call_no_model(
        self, database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        generation = await store_generation(database_url, {"p": answers(1, 2)})
        with pytest.raises(NotFoundError):
            await run_select(settings, registry, "nope", "all-pairs")
        for strategy, options in [
            ("best-of-n", {}),
            ("all-pairs", {"margin": 0}),
            ("tournament", {"confidence": 1.5}),
            ("tournament", {"budget": 0}),
        ]:
            with pytest.raises(InvalidInputError):
                await run_select(settings, registry, generation, strategy, **options)
        with pytest.raises(InvalidInputError, match="rubric"):
            await run_select(
                settings, registry, generation, "best-vs-worst", rubric=RubricChoice("nope")
            )
        assert script.shown == []
        assert script.rated == []

    async def test_by_name_as_well_as_id(
        self, database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
    ) -> None:
        script.policy = prefer_quality
        await store_generation(database_url, {"p": answers(1, 2)}, name="round-1")
        summary = await run_select(settings, registry, "round-1", "all-pairs")
        assert summary.selected == 1


def test_the_run_is_the_same_for_concurrent_callers(
    database_url: str, settings: Settings, registry: JudgeRegistry, script: Script
) -> None:
    """Two selections at once on one generation store one decision per prompt."""
    script.policy = prefer_quality
    generation = asyncio.run(
        store_generation(database_url, {f"p{k}": answers(1, 3, 2) for k in range(4)})
    )

    async def both() -> list[SelectSummary]:
        async with runtime(settings, registry) as labeler:
            return list(
                await asyncio.gather(
                    *(select_preferences(labeler, generation, "all-pairs", JUDGE) for _ in "ab")
                )
            )

    first, second = asyncio.run(both())
    assert first.run_id == second.run_id
    assert first.decided_now + second.decided_now == 4
    assert count_rows(database_url, Selection) == 4
    assert count_rows(database_url, Comparison) == 12


class TestCommand:
    def test_select_over_the_real_sdk_prints_the_outcome(
        self, database_url: str, provider: FakeProvider
    ) -> None:
        """`referee select` with the fake provider (prefers the longer answer) and its re-run."""
        provider.configure(policy="longer")
        texts = answers(1, 1, 1)  # the last is the longest, the first the shortest
        generation = asyncio.run(store_generation(database_url, {"p": texts}))
        env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
        args = ("select", str(generation), "--strategy", "all-pairs", "-j", ANTHROPIC)
        first = referee(*args, env=env)
        assert first.returncode == 0, first.stderr
        assert "1 prompts, 1 selected, 0 skipped; 1 decided now, 3 judged, 0 reused" in first.stdout
        assert len(provider.requests()) == 6
        again = referee(*args, env=env)
        assert "1 selected, 0 skipped; 0 decided now, 0 judged" in again.stdout
        assert len(provider.requests()) == 6

    def test_a_bad_strategy_is_one_clean_line(
        self, database_url: str, provider: FakeProvider
    ) -> None:
        generation = asyncio.run(store_generation(database_url, {"p": answers(1, 2)}))
        env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
        result = referee("select", str(generation), "--strategy", "best", "-j", ANTHROPIC, env=env)
        assert result.returncode == 2
        assert result.stderr.strip().startswith("error: unknown strategy 'best'")
        assert "Traceback" not in result.stderr
        assert provider.requests() == []
