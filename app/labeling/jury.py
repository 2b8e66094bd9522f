"""A jury's run as store rows: the jury verdict, and every member's vote with its calls.

The members judge through :func:`app.labeling.compare.judge_comparison`
(plainly or under a constitution) and :mod:`judges.jury` aggregates them;
here the outcome becomes rows. A failed member's vote is stored with its
error and its calls; a run that missed its quorum stores every vote and
call but no verdict.
"""

from __future__ import annotations

import uuid
from typing import Any

from app.labeling.calls import call_row
from app.store.comparisons import RunRows
from app.store.juries import VoteRows
from judges.jury import JuryOutcome, MemberVote


def jury_run_rows(
    comparison_id: uuid.UUID, verdict: dict[str, Any] | None, outcome: JuryOutcome
) -> RunRows:
    """The rows of one jury run; ``verdict`` holds the verdict columns a single judge's has."""
    return RunRows(
        comparison_id=comparison_id,
        verdict=None if verdict is None else {**verdict, "disagreement": outcome.disagreement},
        calls=[],
        status="labeled" if verdict is not None else "failed",
        error_class=outcome.error_class,
        votes=[vote_rows(comparison_id, vote) for vote in outcome.votes],
    )


def vote_rows(comparison_id: uuid.UUID, vote: MemberVote) -> VoteRows:
    """One member's vote: its verdict in brief (or its error), and its calls."""
    verdict, config = vote.outcome.verdict, vote.config
    values = {
        "member": config.label,
        "member_spec": config.spec,
        "member_config": config.fingerprint(),
        "winner": verdict.winner.value if verdict else None,
        "confidence": verdict.confidence if verdict else None,
        "position_consistent": verdict.position_consistent if verdict else None,
        "soft_preference": verdict.soft_preference if verdict else None,
        "rationale": verdict.rationale if verdict else None,
        "error_class": vote.outcome.error_class,
        "error_message": vote.outcome.error_message,
    }
    calls = [
        {"comparison_id": comparison_id, **call_row(config, call)} for call in vote.outcome.calls
    ]
    return VoteRows(values, calls)
