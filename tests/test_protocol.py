"""The both-orders protocol: no input and no pair of raw answers can flip a label."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from judges import (
    CallRecord,
    Order,
    Pair,
    PairwiseAnswer,
    Position,
    PositionProbabilities,
    RateLimitedError,
    RefusedError,
    Usage,
    Winner,
    combine,
    config_from_spec,
    judge_pair,
    show,
    winner_from_position,
)
from judges.testing import Script, ScriptedJudge, always_first, prefer_containing

positions = st.sampled_from(list(Position))
texts = st.text(max_size=40)
probabilities = st.tuples(st.floats(0.01, 1.0), st.floats(0.01, 1.0), st.floats(0.0, 1.0)).map(
    lambda t: PositionProbabilities(*(x / sum(t) for x in t))
)


def record(
    order: Order, position: Position, probs: PositionProbabilities | None = None
) -> CallRecord:
    return CallRecord(
        order=order,
        attempt=1,
        model="m",
        template_version="t",
        parameters={},
        raw_output="",
        usage=Usage(),
        latency_ms=0.0,
        answer=PairwiseAnswer(position, "r", probs),
    )


def swapped(winner: Winner) -> Winner:
    return {Winner.A: Winner.B, Winner.B: Winner.A, Winner.TIE: Winner.TIE}[winner]


class TestWinnerFromPosition:
    def test_table(self) -> None:
        """The mapping, spelled out: first means a in AB and b in BA."""
        assert winner_from_position(Order.AB, Position.FIRST) is Winner.A
        assert winner_from_position(Order.AB, Position.SECOND) is Winner.B
        assert winner_from_position(Order.BA, Position.FIRST) is Winner.B
        assert winner_from_position(Order.BA, Position.SECOND) is Winner.A
        assert winner_from_position(Order.BA, Position.TIE) is Winner.TIE

    @given(positions)
    def test_the_winner_is_the_response_that_was_in_that_position(self, position: Position) -> None:
        """Whatever the order, the mapped winner names the text the judge saw in that slot."""
        pair = Pair("p", "text-a", "text-b")
        for order in Order:
            shown = show(pair, order)
            winner = winner_from_position(order, position)
            if position is Position.TIE:
                assert winner is Winner.TIE
                continue
            chosen_text = shown.first if position is Position.FIRST else shown.second
            expected = pair.response_a if winner is Winner.A else pair.response_b
            assert chosen_text == expected


class TestCombine:
    @given(positions, positions)
    def test_swapping_the_answers_orders_flips_the_verdict_symmetrically(
        self, ab: Position, ba: Position
    ) -> None:
        """Relabelling a↔b (the same answers given about the swapped pair) mirrors the winner."""
        verdict = combine([record(Order.AB, ab), record(Order.BA, ba)])
        mirrored = combine([record(Order.BA, ab), record(Order.AB, ba)])
        assert mirrored.winner is swapped(verdict.winner)
        assert mirrored.position_consistent == verdict.position_consistent

    @given(positions, positions)
    def test_a_wins_only_if_both_orders_named_a(self, ab: Position, ba: Position) -> None:
        """A non-tie winner needs both calls to point at the same caller response."""
        verdict = combine([record(Order.AB, ab), record(Order.BA, ba)])
        mapped = {winner_from_position(Order.AB, ab), winner_from_position(Order.BA, ba)}
        if verdict.winner is not Winner.TIE:
            assert mapped == {verdict.winner}
            assert verdict.position_consistent is True
        assert verdict.position_consistent == (len(mapped) == 1)

    def test_always_first_is_a_position_biased_tie(self) -> None:
        """A judge that always answers 1 gives a tie marked inconsistent."""
        verdict = combine([record(Order.AB, Position.FIRST), record(Order.BA, Position.FIRST)])
        assert verdict.winner is Winner.TIE
        assert verdict.position_consistent is False
        assert verdict.rationale.startswith("Position-biased")

    def test_single_order_has_unknown_consistency(self) -> None:
        """With one order there is nothing to be consistent with."""
        verdict = combine([record(Order.BA, Position.SECOND)])
        assert verdict.winner is Winner.A
        assert verdict.position_consistent is None
        assert verdict.confidence == 1.0

    @given(probabilities, probabilities)
    def test_soft_preference_is_the_order_average_of_p_a(
        self, ab: PositionProbabilities, ba: PositionProbabilities
    ) -> None:
        """P(a) is read from slot 1 in AB and slot 2 in BA, then averaged."""
        verdict = combine(
            [record(Order.AB, Position.FIRST, ab), record(Order.BA, Position.SECOND, ba)]
        )
        expected = (ab.first / (ab.first + ab.second) + ba.second / (ba.first + ba.second)) / 2
        assert verdict.soft_preference == pytest.approx(expected)
        mirrored = combine(
            [record(Order.BA, Position.FIRST, ab), record(Order.AB, Position.SECOND, ba)]
        )
        assert mirrored.soft_preference == pytest.approx(1 - expected)

    def test_soft_preference_needs_every_call_to_have_probabilities(self) -> None:
        """Half the evidence is no soft label."""
        probs = PositionProbabilities(0.8, 0.15, 0.05)
        verdict = combine(
            [record(Order.AB, Position.FIRST, probs), record(Order.BA, Position.SECOND)]
        )
        assert verdict.soft_preference is None


class TestJudgePair:
    @given(texts, texts, texts)
    def test_a_content_judge_never_flips_when_the_caller_swaps_a_and_b(
        self, prompt: str, text_x: str, text_y: str
    ) -> None:
        """For any pair, judging (x, y) and (y, x) gives mirrored verdicts."""
        judge = ScriptedJudge(config_from_spec("scripted:m"), Script(prefer_containing("★")))
        x, y = text_x + "★", text_y.replace("★", "")
        forward = asyncio.run(judge_pair(judge, Pair(prompt, x, y))).verdict
        backward = asyncio.run(judge_pair(judge, Pair(prompt, y, x))).verdict
        assert forward is not None
        assert backward is not None
        assert forward.winner is Winner.A
        assert backward.winner is Winner.B

    async def test_both_orders_are_asked_concurrently(self) -> None:
        """The two calls overlap in time rather than running one after the other."""
        in_flight = 0
        peak = 0

        class Slow(ScriptedJudge):
            async def answer(self, shown, question=None):  # type: ignore[no-untyped-def]
                nonlocal in_flight, peak
                in_flight += 1
                peak = max(peak, in_flight)
                await asyncio.sleep(0.05)
                in_flight -= 1
                return await super().answer(shown, question)

        outcome = await judge_pair(Slow(config_from_spec("scripted:m")), Pair("p", "aa", "b"))
        assert peak == 2
        assert {c.order for c in outcome.calls} == {Order.AB, Order.BA}

    async def test_transient_failures_are_retried_and_recorded(self) -> None:
        """A 429 then success: two records for that order, the verdict stands."""
        script = Script(failures=[RateLimitedError("slow down", retry_after=0.01)])
        judge = ScriptedJudge(config_from_spec("scripted:m"), script)
        outcome = await judge_pair(judge, Pair("p", "longer answer", "short"))
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.A
        assert sorted(c.attempt for c in outcome.calls) == [1, 1, 2]
        assert [c.error_class for c in outcome.calls if not c.succeeded] == ["rate_limited"]

    async def test_a_refusal_is_not_retried_and_gives_no_verdict(self) -> None:
        """Permanent failures end the order at once; no label is invented."""
        script = Script(failures=[RefusedError("no")])
        judge = ScriptedJudge(config_from_spec("scripted:m"), script)
        outcome = await judge_pair(judge, Pair("p", "x", "y"))
        assert outcome.verdict is None
        assert outcome.error_class == "refused"
        assert len(outcome.calls) == 2

    async def test_transient_failures_stop_at_max_attempts(self) -> None:
        """After max_attempts the last failure is final."""
        script = Script(failures=[RateLimitedError("x", retry_after=0.0) for _ in range(10)])
        judge = ScriptedJudge(
            config_from_spec("scripted:m", max_attempts=2, order="single"), script
        )
        outcome = await judge_pair(judge, Pair("p", "x", "y"))
        assert outcome.verdict is None
        assert [c.attempt for c in outcome.calls] == [1, 2]

    async def test_position_biased_judge_gives_tie(self) -> None:
        """Through the real protocol, always-first yields a position-biased tie."""
        judge = ScriptedJudge(config_from_spec("scripted:m"), Script(always_first))
        outcome = await judge_pair(judge, Pair("p", "x", "y"))
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.TIE
        assert outcome.verdict.position_consistent is False
