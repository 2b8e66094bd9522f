"""Rows for the planned lookups of generation, selection, rounds and rewards (test_query_plans).

bench.seed fills the labeling tables (comparisons, verdicts, calls, gold);
this adds, on the same database, many generations with their prompts,
samples and candidates, a selection run and a round per generation
(matchups on seeded comparisons), reward items over many runs and
ratings. One generation (run, round) is a few percent of each table, so
a lookup of one must be served by an index; the planner knows the sizes
from ANALYZE.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, text

from app.store.models import Comparison, Rating
from app.store.models_generation import (
    Generation,
    GenerationCandidate,
    GenerationPrompt,
    GenerationSample,
)
from app.store.models_rewards import RewardItem
from app.store.models_rounds import Round, RoundMatchup
from app.store.models_selection import Selection, SelectionRun

GENERATIONS = 200
PROMPTS = 50
"""Per generation (one has TARGET_PROMPTS): about 11,000 prompts, 44,000 samples and
22,000 candidates in all."""
SAMPLES = 4
TARGET_PROMPTS = 1_000
"""The looked-up generation is a large one, half of it still being drawn: a claim and a page
of its prompts have many rows to take in order."""
REWARD_RUNS = 100
REWARD_ITEMS = 100
"""Per run: 10,000 reward items in all."""
RATINGS = 8_000
WORKFLOW_TABLES = frozenset(
    {
        "generation_prompts",
        "generation_samples",
        "generation_candidates",
        "selections",
        "round_matchups",
        "reward_items",
        "ratings",
    }
)

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Workflow:
    """What the workflow cases look up: one generation, its run and round, a reward run."""

    generation_id: uuid.UUID
    """A finished generation of PROMPTS prompts, as most are: whole-generation lookups."""
    drawing_id: uuid.UUID
    """The large generation still being drawn: claims, leases and pages of its prompts."""
    run_id: uuid.UUID
    round_name: str
    round_id: uuid.UUID
    prompt_ids: list[uuid.UUID]
    lease_owner: str
    reward_run: str
    reward_keys: list[str]
    rating_keys: list[str]
    comparison_keys: list[str]


def _key(*parts: Any) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def seed_workflow(engine: Engine) -> Workflow:
    """Insert the rows (one transaction) and return the ones a case looks up."""
    with engine.begin() as connection:
        comparisons = connection.execute(
            select(Comparison.id, Comparison.label_key).limit(GENERATIONS * PROMPTS)
        ).all()
        rows: dict[str, list[dict[str, Any]]] = {
            name: []
            for name in (
                "generations",
                "prompts",
                "candidates",
                "samples",
                "runs",
                "selections",
                "rounds",
                "matchups",
            )
        }
        parent: uuid.UUID | None = None
        for g in range(GENERATIONS):
            generation_id, run_id, round_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            moment = START + timedelta(hours=g)
            rows["generations"].append(
                {
                    "id": generation_id,
                    "name": f"generation-{g:03d}",
                    "source": "prompts.jsonl",
                    "policy": "openai:policy",
                    "policy_config": {},
                    "n": SAMPLES,
                    "params": {},
                    "status": "done",
                    "created_at": moment,
                }
            )
            rows["runs"].append(
                {
                    "id": run_id,
                    "run_key": _key("run", g),
                    "generation_id": generation_id,
                    "strategy": "best-vs-worst",
                    "judge": "judge",
                    "judge_spec": "openai:judge",
                    "judge_config": {},
                    "options": {},
                    "status": "done",
                    "created_at": moment,
                }
            )
            rows["rounds"].append(
                {
                    "id": round_id,
                    "name": f"round-{g:03d}",
                    "parent_id": parent,
                    "policy": "openai:policy",
                    "prompts_source": "prompts.jsonl",
                    "prompt_set_key": _key("prompts"),
                    "prompt_count": PROMPTS,
                    "strategy": "best-vs-worst",
                    "judge": "judge",
                    "params": {},
                    "generation_id": generation_id,
                    "selection_run_id": run_id,
                    "created_at": moment,
                }
            )
            parent = round_id
            target = g == GENERATIONS // 2
            for p in range(TARGET_PROMPTS if target else PROMPTS):
                _prompt(rows, g, p, generation_id, run_id, round_id, moment, comparisons, target)
        connection.execute(insert(Generation), rows["generations"])
        connection.execute(insert(GenerationPrompt), rows["prompts"])
        connection.execute(insert(GenerationCandidate), rows["candidates"])
        connection.execute(insert(GenerationSample), rows["samples"])
        connection.execute(insert(SelectionRun), rows["runs"])
        connection.execute(insert(Selection), rows["selections"])
        for r in rows["rounds"]:  # parents first: the chain's foreign keys
            connection.execute(insert(Round), r)
        connection.execute(insert(RoundMatchup), rows["matchups"])
        rewards = [_reward_item(n) for n in range(REWARD_RUNS * REWARD_ITEMS)]
        connection.execute(insert(RewardItem), rewards)
        ratings = [_rating(n) for n in range(RATINGS)]
        connection.execute(insert(Rating), ratings)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    middle, drawing = GENERATIONS // 2 + 1, GENERATIONS // 2
    generation = rows["generations"][middle]
    prompts = [p["id"] for p in rows["prompts"] if p["generation_id"] == generation["id"]]
    return Workflow(
        generation_id=generation["id"],
        drawing_id=rows["generations"][drawing]["id"],
        run_id=rows["runs"][middle]["id"],
        round_name=rows["rounds"][middle]["name"],
        round_id=rows["rounds"][middle]["id"],
        prompt_ids=prompts[:50],
        lease_owner=f"host:1:{drawing}",
        reward_run=f"run-{middle:03d}",
        reward_keys=[r["item_key"] for r in rewards[middle * REWARD_ITEMS :][:50]],
        rating_keys=[r["label_key"] for r in ratings[:50]],
        comparison_keys=[key for _, key in comparisons[:50]],
    )


def _prompt(
    rows: dict[str, list[dict[str, Any]]],
    g: int,
    p: int,
    generation_id: uuid.UUID,
    run_id: uuid.UUID,
    round_id: uuid.UUID,
    moment: datetime,
    comparisons: Sequence[Any],
    target: bool,
) -> None:
    prompt_id = uuid.uuid4()
    prompt_key = _key("prompt", p)
    rows["prompts"].append(
        {
            "id": prompt_id,
            "generation_id": generation_id,
            "prompt_key": prompt_key,
            "prompt": f"prompt {p}: " + "quis nostrud exercitation ullamco " * 8,
            "source_line": p + 1,
            "created_at": moment,
        }
    )
    candidates = [uuid.uuid4(), uuid.uuid4()]
    for c, candidate_id in enumerate(candidates):
        rows["candidates"].append(
            {
                "id": candidate_id,
                "generation_id": generation_id,
                "prompt_id": prompt_id,
                "text_key": _key("text", c),
                # Answers as long as a policy's: the table is many pages, as it is for real.
                "text": f"answer {c} to prompt {p}: " + "lorem ipsum dolor sit amet " * 16,
                "count": SAMPLES // 2,
                "created_at": moment,
            }
        )
    # The second half of the looked-up generation is still being drawn, leased to one worker.
    pending = target and p >= TARGET_PROMPTS // 2
    for index in range(SAMPLES):
        rows["samples"].append(
            {
                "generation_id": generation_id,
                "prompt_id": prompt_id,
                "sample_index": index,
                "status": "pending" if pending else "done",
                "candidate_id": None if pending else candidates[index % 2],
                "lease_owner": f"host:1:{g}" if pending else None,
                "lease_expires_at": moment + timedelta(minutes=5) if pending else None,
                "input_tokens": 10,
                "output_tokens": 20,
                "attempts": 1,
                "created_at": moment,
                "updated_at": moment,
            }
        )
    rows["selections"].append(
        {
            "run_id": run_id,
            "prompt_id": prompt_id,
            "status": "selected",
            "chosen_id": candidates[0],
            "rejected_id": candidates[1],
            "reason": "margin",
            "details": {},
            "attempts": 1,
            "created_at": moment,
            "updated_at": moment,
        }
    )
    comparison_id = comparisons[len(rows["matchups"]) % len(comparisons)][0]
    rows["matchups"].append(
        {
            "round_id": round_id,
            "prompt_key": prompt_key,
            "candidate_id": candidates[0],
            "parent_candidate_id": candidates[1],
            "comparison_id": comparison_id,
            "created_at": moment,
        }
    )


def _reward_item(n: int) -> dict[str, Any]:
    run = n // REWARD_ITEMS
    return {
        "id": uuid.uuid4(),
        "item_key": _key("item", n),
        "score_key": _key("score", n),
        "run": f"run-{run:03d}",
        "step": n % 10,
        "scorer": "rubric",
        "judge": "judge",
        "prompt": f"prompt {n}",
        "completion": f"completion {n}",
        "status": "scored",
        "score": 0.5,
        "created_at": START + timedelta(seconds=n),
        "updated_at": START + timedelta(seconds=n),
    }


def _rating(n: int) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "label_key": _key("rating", n),
        "content_key": _key("content", n),
        "prompt": f"prompt {n}",
        "response": f"response {n}",
        "judge": "judge",
        "judge_spec": "openai:judge",
        "judge_config": {},
        "template_version": "v1",
        "rubric": "helpful",
        "rubric_version": "1",
        "rubric_text": "Is it helpful?",
        "scale_min": 1,
        "scale_max": 5,
        "threshold": 3,
        "status": "rated",
        "created_at": START + timedelta(seconds=n),
        "updated_at": START + timedelta(seconds=n),
    }
