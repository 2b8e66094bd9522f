"""A round against its parent: matchups judged in both orders, the report counts them by hand.

The two rounds' generations are written straight into the store (the
answers are the test's script), so these tests pin the head-to-head and the
report alone, on both databases.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from app.keys import digest, prompt_messages
from app.labeling.compare import Labeler
from app.labeling.rounds.round_run import (
    RoundConflictError,
    RoundSpec,
    RoundTransport,
    compare_with_parent,
    open_round,
    prompt_set_key,
    round_params,
)
from app.labeling.runtime import runtime
from app.reports.metrics import Bootstrap
from app.reports.rounds import rounds_report
from app.settings import Settings
from app.store import generation, rounds
from app.store.generation import SampleResult
from judges import JudgeRegistry, Position, ShownPair
from judges.errors import RefusedError
from judges.prompts import render_text
from judges.testing import Script

JUDGE = "scripted:x"


def _policy(shown: ShownPair) -> Position:
    """Prefer the answer marked GOOD; refuse to judge one marked FAIL; otherwise a tie."""
    first, second = render_text(shown.first), render_text(shown.second)
    if "FAIL" in first + second:
        raise RefusedError("scripted refusal")
    if ("GOOD" in first) == ("GOOD" in second):
        return Position.TIE
    return Position.FIRST if "GOOD" in first else Position.SECOND


def key_of(prompt: Any) -> str:
    return digest(prompt_messages(prompt))


async def make_generation(
    labeler: Labeler, name: str, answers: dict[str, list[str | None]]
) -> uuid.UUID:
    """A finished generation: per prompt, each sample's text (None: the sample failed)."""
    n = max(len(texts) for texts in answers.values())
    async with labeler.db.transaction() as session:
        found, _ = await generation.get_or_create(
            session,
            {
                "name": name,
                "source": "test",
                "policy": "openai:policy",
                "policy_config": {},
                "checkpoint": None,
                "n": n,
                "params": {},
                "seed": None,
            },
        )
        rows = [{"prompt_key": key_of(p), "prompt": p} for p in answers]
        await generation.add_prompts(session, found, rows)
        claimed = await generation.claim(session, found.id, "t", 10_000, timedelta(minutes=1))
        await generation.take_ownership(session, "t", [c.sample_id for c in claimed])
        results = []
        for sample in claimed:
            text = answers[sample.prompt][sample.sample_index]
            results.append(
                SampleResult(
                    sample.sample_id,
                    text,
                    None,
                    None,
                    "m",
                    "stop",
                    1,
                    1,
                    None,
                    1.0,
                    1,
                    error_class=None if text is not None else "refused",
                )
            )
        await generation.write_samples(session, found.id, results)
    return found.id


async def make_round(
    labeler: Labeler,
    name: str,
    answers: dict[str, list[str | None]],
    parent: str | None = None,
) -> Any:
    spec = RoundSpec(name=name, policy="openai:policy", judge=JUDGE, n=2, parent=parent)
    config = labeler.resolve_pairwise(JUDGE)
    params = round_params(spec, {}, config, prompt_set_key([key_of(p) for p in answers]))
    found, created = await open_round(labeler, spec, params, config.label, "test", len(answers))
    assert created
    generation_id = await make_generation(labeler, f"round:{name}", answers)
    async with labeler.db.transaction() as session:
        await rounds.update_round(session, found.id, generation_id=generation_id, stage="compare")
        return await rounds.get(session, found.id)


# The parent's and the child's answers per prompt (first successful sample stands for the
# policy), and by hand: wins, losses, ties, failed, matchups, longer-wins (won, of).
CASES = [
    pytest.param(
        {"p1": ["old"], "p2": ["old GOOD"], "p3": ["same"], "p4": ["old"], "p5": ["only parent"]},
        {"p1": ["new GOOD"], "p2": ["new"], "p3": ["same"], "p4": ["new FAIL"], "p6": ["only me"]},
        dict(wins=1, losses=1, ties=1, failed=1, matchups=4, longer=(2, 2)),
        id="win-loss-identical-failed-and-unshared",
    ),
    pytest.param(
        {"p1": [None, "old"], "p2": ["old", "old"]},
        {"p1": [None, "new GOOD!"], "p2": [None, None]},
        dict(wins=1, losses=0, ties=0, failed=0, matchups=1, longer=(1, 1)),
        id="first-successful-sample-stands-for-the-policy",
    ),
]


@pytest.mark.parametrize(("parent", "child", "hand"), CASES)
def test_the_report_counts_the_stored_head_to_head(
    settings: Settings, registry: JudgeRegistry, script: Script, parent: Any, child: Any, hand: Any
) -> None:
    """Each shared prompt is one matchup judged in both orders; the report equals a hand count."""
    script.policy = _policy

    async def run() -> tuple[dict[str, Any], int, int]:
        async with runtime(settings, registry) as labeler:
            await make_round(labeler, "r1", parent)
            r2 = await make_round(labeler, "r2", child, parent="r1")
            await compare_with_parent(
                labeler, r2, labeler.resolve_pairwise(JUDGE), RoundTransport()
            )
            calls = len(script.shown)
            # Run again: nothing is queued twice; only the failed judgments are tried again.
            await compare_with_parent(
                labeler, r2, labeler.resolve_pairwise(JUDGE), RoundTransport()
            )
            retried = script.shown[calls:]
            unexpected = [
                s for s in retried if "FAIL" not in render_text(s.first) + render_text(s.second)
            ]
            async with labeler.db.transaction() as session:
                matchups = len(await rounds.matchup_outcomes(session, r2.id))
            report = await rounds_report(labeler.db, Bootstrap(resamples=100))
            return report, len(unexpected), matchups

    report, unexpected_calls, matchups = asyncio.run(run())
    assert unexpected_calls == 0
    assert matchups == hand["matchups"]
    first, second = report["rounds"]
    assert first["name"] == "r1"
    assert first["vs_parent"] is None
    h2h = second["vs_parent"]
    assert second["parent"]["name"] == "r1"
    counts = h2h["counts"]
    assert (counts["wins"], counts["losses"], counts["ties"], counts["failed"]) == (
        hand["wins"],
        hand["losses"],
        hand["ties"],
        hand["failed"],
    )
    verdicts = hand["wins"] + hand["losses"] + hand["ties"]
    assert h2h["win_rate"]["n"] == verdicts
    assert h2h["win_rate"]["value"] == pytest.approx(hand["wins"] / verdicts)
    assert h2h["tie_rate"]["value"] == pytest.approx(hand["ties"] / verdicts)
    won, of = hand["longer"]
    assert (h2h["length"]["longer_wins"]["value"], h2h["length"]["longer_wins"]["n"]) == (
        pytest.approx(won / of),
        of,
    )


def test_a_name_with_other_parameters_is_refused(
    settings: Settings, registry: JudgeRegistry
) -> None:
    """The same name with another n (or prompt set, judge, parent…) names what differs."""

    async def run() -> None:
        async with runtime(settings, registry) as labeler:
            config = labeler.resolve_pairwise(JUDGE)
            spec = RoundSpec(name="r1", policy="openai:policy", judge=JUDGE, n=2)
            params = round_params(spec, {}, config, prompt_set_key(["k1"]))
            assert (await open_round(labeler, spec, params, config.label, "f", 1))[1]
            again = await open_round(labeler, spec, params, config.label, "f", 1)
            assert again[1] is False
            other = RoundSpec(name="r1", policy="openai:policy", judge=JUDGE, n=4)
            with pytest.raises(RoundConflictError) as refused:
                await open_round(
                    labeler,
                    other,
                    round_params(other, {}, config, params["prompt_set"]),
                    config.label,
                    "f",
                    1,
                )
            assert "n: 2 → 4" in refused.value.message
            assert refused.value.status_code == 409
            moved = round_params(spec, {}, config, prompt_set_key(["k2"]))
            with pytest.raises(RoundConflictError, match="prompt_set: prompt set"):
                await open_round(labeler, spec, moved, config.label, "f", 1)

    asyncio.run(run())
