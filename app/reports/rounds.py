"""Did the round help? Each round's policy against its parent's, on the prompts both sampled.

A round with a parent has one matchup per shared prompt: this round's
answer (``a``) against the parent's (``b``), judged in both orders by the
round's judge through the pairwise protocol when the round ran. This module
only reads those stored verdicts and counts:

- **win rate** = wins / verdicts, with its seeded bootstrap interval. A
  verdict is a stored decision (a, b or tie; a tie includes one the two
  orders disagreed on). A failed judgment is no verdict: it is counted
  apart and never as a win, nor is a pair still pending;
- **tie rate** = ties / verdicts, and the loss rate beside it;
- **lengths**: the mean length (characters) of each side's answers over the
  verdicts, and the longer-wins rate: among decisive verdicts between
  answers of different lengths, the share the longer answer won. A high
  longer-wins rate warns that a win rate may be length bias.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from app.errors import NotFoundError
from app.reports.metrics import Bootstrap, proportion
from app.reports.text import estimate
from app.store import rounds
from app.store.db import Database
from app.store.models_rounds import Round
from app.store.rounds import MatchupOutcome

SCHEMA_VERSION = 1


def head_to_head(outcomes: Sequence[MatchupOutcome], boot: Bootstrap) -> dict[str, Any]:
    """Win, tie and length statistics of a round against its parent (see the module docstring)."""
    decided = [o for o in outcomes if o.winner is not None]
    wins = sum(o.winner == "a" for o in decided)
    losses = sum(o.winner == "b" for o in decided)
    ties = sum(o.winner == "tie" for o in decided)
    failed = sum(o.winner is None and o.status == "failed" for o in outcomes)
    pending = len(outcomes) - len(decided) - failed
    uneven = [o for o in decided if o.winner != "tie" and o.length_a != o.length_b]
    longer_won = sum((o.winner == "a") == ((o.length_a or 0) > (o.length_b or 0)) for o in uneven)
    n = len(decided)
    return {
        "matchups": len(outcomes),
        "counts": {
            "wins": wins,
            "losses": losses,
            "ties": ties,
            "position_biased": sum(o.position_consistent is False for o in decided),
            "failed": failed,
            "pending": pending,
        },
        "win_rate": proportion(wins, n, boot).as_dict(),
        "loss_rate": proportion(losses, n, boot).as_dict(),
        "tie_rate": proportion(ties, n, boot).as_dict(),
        "length": {
            "mean_round": _mean([o.length_a for o in decided]),
            "mean_parent": _mean([o.length_b for o in decided]),
            "longer_wins": proportion(longer_won, len(uneven), boot).as_dict(),
        },
    }


def _mean(values: Sequence[int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _describe(found: Round) -> dict[str, Any]:
    return {
        "name": found.name,
        "policy": found.policy,
        "checkpoint": found.checkpoint,
        "strategy": found.strategy,
        "judge": found.judge,
        "prompts": found.prompt_count,
        "stage": found.stage,
        "created_at": found.created_at.isoformat(),
    }


async def rounds_report(
    database: Database, boot: Bootstrap, name: str | None = None
) -> dict[str, Any]:
    """Every round (or the one named) with its head-to-head against its parent."""
    async with database.transaction() as session:
        if name is not None:
            one = await rounds.get_by_name(session, name)
            if one is None:
                raise NotFoundError(f"no round named {name!r}")
            found = [one]
        else:
            found = await rounds.list_rounds(session, limit=10_000)
        by_id = {r.id: r for r in found}
        parents = {
            r.parent_id: by_id.get(r.parent_id) or await rounds.get(session, r.parent_id)
            for r in found
            if r.parent_id is not None
        }
        outcomes = {r.id: await rounds.matchup_outcomes(session, r.id) for r in found}
    # The bootstrap draws are CPU work: off the event loop.
    return await asyncio.to_thread(_assemble, found, parents, outcomes, boot)


def _assemble(
    found: list[Round],
    parents: dict[Any, Round | None],
    outcomes: dict[Any, list[MatchupOutcome]],
    boot: Bootstrap,
) -> dict[str, Any]:
    items = []
    for one in found:
        parent = parents.get(one.parent_id) if one.parent_id is not None else None
        item = _describe(one)
        item["parent"] = _describe(parent) if parent is not None else None
        item["vs_parent"] = head_to_head(outcomes[one.id], boot) if parent is not None else None
        items.append(item)
    return {
        "schema_version": SCHEMA_VERSION,
        "bootstrap": {
            "resamples": boot.resamples,
            "confidence": boot.confidence,
            "seed": boot.seed,
        },
        "rounds": items,
    }


def render_text(report: dict[str, Any]) -> str:
    """The report as plain lines, one block per round."""
    if not report["rounds"]:
        return "no rounds yet: run one with `referee round run NAME …`"
    lines: list[str] = []
    for item in report["rounds"]:
        checkpoint = f" @ {item['checkpoint']}" if item["checkpoint"] else ""
        lines.append(
            f"round {item['name']}: {item['policy']}{checkpoint}, {item['prompts']} prompts, "
            f"{item['strategy']} by {item['judge']} ({item['stage']})"
        )
        parent, h2h = item["parent"], item["vs_parent"]
        if parent is None or h2h is None:
            lines += ["  no parent round: nothing to compare against", ""]
            continue
        parent_checkpoint = f" @ {parent['checkpoint']}" if parent["checkpoint"] else ""
        counts, length = h2h["counts"], h2h["length"]
        lines += [
            f"  vs parent {parent['name']} ({parent['policy']}{parent_checkpoint}) "
            f"on {h2h['matchups']} shared prompts",
            f"  win rate      {estimate(h2h['win_rate'])}",
            f"  tie rate      {estimate(h2h['tie_rate'])}",
            f"  loss rate     {estimate(h2h['loss_rate'])}",
            f"  wins / losses / ties  {counts['wins']} / {counts['losses']} / {counts['ties']} "
            f"({counts['position_biased']} ties from orders that disagreed); "
            f"{counts['failed']} failed, {counts['pending']} pending (neither counted)",
            f"  mean length   round {_length(length['mean_round'])}, "
            f"parent {_length(length['mean_parent'])}",
            f"  longer wins   {estimate(length['longer_wins'])}",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _length(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} chars"
