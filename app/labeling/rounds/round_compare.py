"""A round against its parent: their answers on shared prompts, judged in both orders.

On each prompt both rounds sampled (same prompt key), the round's answer
and the parent's (each the first sample that succeeded, see
app.store.rounds.representative_answers) become one pair, ``response_a`` the
round's, queued in the round's head-to-head batch and judged there by the
round's judge through the pairwise protocol, like any batch: keyed by
content, so a re-run judges nothing twice, and a failure is stored as one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from app.labeling.batch import Accepted, Progress, Screen, enqueue, release_dead_local_leases
from app.labeling.compare import Labeler
from app.labeling.inputs import LabeledPairIn
from app.labeling.jsonl import LineError, ParsedLine
from app.labeling.worker import Worker, WorkerOptions
from app.store import batches, rounds
from app.store.models_rounds import Round
from judges.jury import PairJudgeConfig


@dataclass
class CompareSummary:
    shared: int = 0
    """Prompts both rounds have an answer for."""
    skipped: list[str] = field(default_factory=list)
    """Why shared prompts made no matchup (an answer too long to judge, an empty one)."""
    progress: Progress = field(default_factory=Progress)


def batch_name(found: Round, parent: Round) -> str:
    return f"round:{found.name}|vs:{parent.name}"


async def queue_matchups(
    labeler: Labeler, found: Round, parent: Round, config: PairJudgeConfig
) -> tuple[uuid.UUID, CompareSummary]:
    """Store a matchup (and its pending comparison) for every shared prompt not stored yet."""
    summary = CompareSummary()
    assert found.generation_id is not None
    assert parent.generation_id is not None
    async with labeler.db.transaction() as session:
        mine = await rounds.representative_answers(session, found.generation_id)
        theirs = await rounds.representative_answers(session, parent.generation_id)
        done = await rounds.matchup_keys(session, found.id)
        batch, _ = await batches.get_or_create(
            session, batch_name(found, parent), f"round {found.name}", config.label
        )
        await rounds.update_round(session, found.id, batch_id=batch.id)
    shared = sorted(mine.keys() & theirs.keys())
    summary.shared = len(shared)
    screen = Screen(labeler, config, f"round {found.name}")
    records: list[ParsedLine] = []
    accepted: list[tuple[str, Accepted]] = []
    for line, key in enumerate(shared, start=1):
        pair = LabeledPairIn(
            prompt=mine[key].prompt, response_a=mine[key].text, response_b=theirs[key].text
        )
        checked = screen.check(ParsedLine(line, pair))
        if isinstance(checked, LineError):
            summary.skipped.append(checked.reason)
        elif key not in done:
            records.append(ParsedLine(line, pair))
            accepted.append((key, checked))
    if records:
        async with labeler.db.transaction() as session:
            stored = await batches.existing_keys(session, [item.key for _, item in accepted])
        # A crash between queueing and storing the matchups leaves comparisons
        # without one: queue only what is new, so the batch counts nothing twice.
        fresh = [
            r for r, (_, item) in zip(records, accepted, strict=True) if item.key not in stored
        ]
        await enqueue(labeler, batch.id, config, fresh, f"round {found.name}")
        async with labeler.db.transaction() as session:
            ids = await rounds.comparison_ids(session, [item.key for _, item in accepted])
            await rounds.add_matchups(
                session,
                [
                    {
                        "round_id": found.id,
                        "prompt_key": key,
                        "candidate_id": mine[key].candidate_id,
                        "parent_candidate_id": theirs[key].candidate_id,
                        "comparison_id": ids[item.key],
                    }
                    for key, item in accepted
                ],
            )
    return batch.id, summary


async def judge_matchups(
    labeler: Labeler,
    batch_id: uuid.UUID,
    config: PairJudgeConfig,
    options: WorkerOptions,
    on_progress: Callable[[Progress], None] = lambda _p: None,
) -> Progress:
    """Judge the head-to-head batch's pending pairs (leases of a killed run freed first).

    Pairs whose judgment failed are judged again, as a selection re-run
    decides again a prompt skipped for a failed call: the failed calls stay
    stored, and a failure never becomes a verdict.
    """
    await release_dead_local_leases(labeler)
    async with labeler.db.transaction() as session:
        await batches.reset_failed(session, batch_id)
    worker = Worker(labeler, options, batch_id, on_progress)
    worker.use(config)
    return await worker.run()
