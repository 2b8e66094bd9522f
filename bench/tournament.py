"""Judge calls per prompt for n = 8 candidates: ``tournament`` against ``all-pairs``.

Each prompt's candidates get latent qualities q ~ N(0, 1) (seeded). A
scripted judge answers each shown order on its own: the first response wins
with probability sigmoid(beta * (q_first - q_second)), decided by a hash of
(seed, prompt, shown order), so a pair gets the same answers whichever
strategy asks; two orders that disagree make a position-biased tie, as with
a real judge. Both strategies run through the real use case
(``select_preferences`` over SQLite, in separate databases so that no
verdict is shared), and the calls are counted at the judge.

Reported per beta (judge sharpness) and tournament budget: model calls per
prompt, prompts selected, how often the tournament's (chosen, rejected) is
the pair all-pairs picked on the same prompt (over prompts both selected),
and how often each strategy's chosen / rejected is the true best / worst.

    python -m bench.tournament --prompts 40 --betas 1 3 10 --budgets 8 12 16 20
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import random
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.labeling.rounds.select import SelectOptions, select_preferences
from app.labeling.runtime import runtime
from app.settings import Settings
from app.store import migrate
from app.store import selection as store
from app.store.db import Database
from judges import JudgeRegistry
from judges.prompts import render_text
from judges.testing import Script, ScriptedJudge
from judges.types import Position, ShownPair
from tests.test_strategies import store_generation

N = 8


@dataclass(frozen=True)
class Outcome:
    calls: int
    seconds: float
    pairs: dict[str, tuple[str, str] | None]
    """Per prompt: (chosen text, rejected text), or None when skipped."""


def latent(prompts: int, seed: int) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    return {
        f"prompt {p}": {f"Candidate {k} for prompt {p}.": rng.gauss(0, 1) for k in range(N)}
        for p in range(prompts)
    }


def noisy_judge(qualities: dict[str, dict[str, float]], beta: float, seed: int) -> Script:
    def policy(shown: ShownPair) -> Position:
        prompt = render_text(shown.prompt)
        first, second = render_text(shown.first), render_text(shown.second)
        q = qualities[prompt]
        p_first = 1 / (1 + math.exp(-beta * (q[first] - q[second])))
        digest = hashlib.sha256(f"{seed}|{prompt}|{first}|{second}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        return Position.FIRST if u < p_first else Position.SECOND

    return Script(policy=policy)


async def run(
    workdir: Path,
    qualities: dict[str, dict[str, float]],
    script: Script,
    strategy: str,
    options: SelectOptions,
) -> Outcome:
    url = f"sqlite:///{workdir / f'{uuid.uuid4().hex}.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    generation = await store_generation(url, {p: list(c) for p, c in qualities.items()})
    registry = JudgeRegistry.from_entry_points()
    registry.register("scripted", lambda config: ScriptedJudge(config, script))
    settings = Settings(database_url=url, judges_file=None)
    before = len(script.shown)
    started = time.perf_counter()
    async with runtime(settings, registry) as labeler:
        summary = await select_preferences(labeler, generation, strategy, "scripted:j", options)
    seconds = time.perf_counter() - started
    db = Database(url)
    async with db.transaction() as session:
        decided = await store.preferences(session, summary.run_id)
    await db.dispose()
    pairs = {
        d.prompt: (d.chosen.text, d.rejected.text) if d.chosen and d.rejected else None
        for d in decided
    }
    return Outcome(len(script.shown) - before, seconds, pairs)


def truth_rates(qualities: dict[str, dict[str, float]], outcome: Outcome) -> tuple[float, float]:
    """Over the prompts selected: chosen is the true best; rejected is the true worst."""
    selected = {p: pair for p, pair in outcome.pairs.items() if pair is not None}
    if not selected:
        return math.nan, math.nan
    best = sum(
        pair[0] == max(qualities[p], key=qualities[p].__getitem__) for p, pair in selected.items()
    )
    worst = sum(
        pair[1] == min(qualities[p], key=qualities[p].__getitem__) for p, pair in selected.items()
    )
    return best / len(selected), worst / len(selected)


def line(label: str, prompts: int, outcome: Outcome, same: str, truth: tuple[float, float]) -> str:
    selected = sum(pair is not None for pair in outcome.pairs.values())
    return (
        f"  {label:<16} {outcome.calls / prompts:6.1f} calls/prompt  "
        f"selected {selected:>3}/{prompts}  same pair as all-pairs {same:>6}  "
        f"chosen=best {truth[0]:.2f}  rejected=worst {truth[1]:.2f}  ({outcome.seconds:.1f} s)"
    )


async def bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="referee-bench-"))
    qualities = latent(args.prompts, args.seed)
    print(
        f"n = {N} candidates, {args.prompts} prompts, seed {args.seed}, confidence {args.confidence}"
    )
    for beta in args.betas:
        print(f"judge beta = {beta:g} (P(first wins) = sigmoid(beta * (q_first - q_second)))")
        script = noisy_judge(qualities, beta, args.seed)
        reference = await run(
            workdir, qualities, script, "all-pairs", SelectOptions(margin=args.margin)
        )
        print(line("all-pairs", args.prompts, reference, "-", truth_rates(qualities, reference)))
        for budget in args.budgets:
            options = SelectOptions(budget=budget, confidence=args.confidence, seed=args.seed)
            outcome = await run(workdir, qualities, script, "tournament", options)
            both = [p for p, pair in outcome.pairs.items() if pair and reference.pairs.get(p)]
            agree = sum(outcome.pairs[p] == reference.pairs[p] for p in both)
            same = f"{agree / len(both):.2f}" if both else "n/a"
            label = f"tournament({budget})"
            print(line(label, args.prompts, outcome, same, truth_rates(qualities, outcome)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--betas", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[8, 12, 16, 20])
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--margin", type=float, default=1.0, help="all-pairs margin in wins")
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
