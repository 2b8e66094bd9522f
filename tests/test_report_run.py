"""`referee report --run RUN`: an online training run's rewards, on both databases.

A scripted run goes through POST /v1/rewards (the scripted rater scores by
length; a refusal and an invalid item leave nulls); the report must count
what the API answered, with quantiles and histograms recomputed here by
numpy and plain loops. A larger run inserted straight into the table checks
the streamed quantiles against numpy step by step.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert

from app.reports.reward_run import QUANTILES, run_report
from app.store.db import Database, sync_url
from app.store.models import utcnow
from app.store.models_rewards import RewardItem
from judges.errors import RefusedError
from judges.testing import Script
from tests.test_cli import referee

SCRIPTED = "scripted:rater"


def items(step: int, *completions: str, run: str = "grpo-t") -> list[dict[str, Any]]:
    return [
        {"prompt": "Say something.", "completion": c, "metadata": {"run": run, "step": step}}
        for c in completions
    ]


def quantiles(values: list[float]) -> dict[str, float]:
    return {f"p{round(q * 100)}": float(np.quantile(np.asarray(values), q)) for q in QUANTILES}


def histogram(values: list[float]) -> list[int]:
    counts = [0] * 10
    for value in values:
        counts[min(int(value * 10 + 1e-9), 9)] += 1
    return counts


def assert_close(found: dict[str, float] | None, expected: dict[str, float]) -> None:
    assert found is not None
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, abs=1e-12), key


def test_a_scripted_run(api: TestClient, script: Script, database_url: str, tmp_path: Path) -> None:
    scorer = {"scorer": {"judge": SCRIPTED}}
    scores: dict[int, list[float]] = {}
    steps = {
        1: ["a" * 5, "b" * 12, "c" * 20],
        2: ["d" * 30, "e" * 41, "f" * 44, "g" * 8],
        3: ["h" * 60, "i" * 70, "j" * 80],
    }
    for step, completions in steps.items():
        if step == 2:
            script.failures = [RefusedError("no")]
        body = api.post("/v1/rewards", json={**scorer, "items": items(step, *completions)})
        assert body.status_code == 200, body.text
        scores[step] = [s for s in body.json()["scores"] if s is not None]
    invalid = api.post(
        "/v1/rewards", json={**scorer, "items": items(3, "fine", "bad \x00 completion")}
    )
    assert invalid.json()["scores"][1] is None
    scores[3] += [s for s in invalid.json()["scores"] if s is not None]
    # Another run's items are not this run's.
    api.post("/v1/rewards", json={**scorer, "items": items(1, "z" * 90, run="other")})

    env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
    page = tmp_path / "run.html"
    done = referee("report", "--run", "grpo-t", "--json", "--html", str(page), env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)

    everything = [s for step in sorted(scores) for s in scores[step]]
    whole = report["overall"]
    assert report["run"] == "grpo-t"
    assert whole["items"] == 12
    assert whole["scored"] == len(everything) == 10
    assert whole["unscored"] == [
        {"status": "failed", "reason": "refused", "items": 1},
        {"status": "invalid", "reason": whole["unscored"][1]["reason"], "items": 1},
    ]
    assert whole["unscored"][1]["reason"]
    assert whole["mean"] == pytest.approx(sum(everything) / len(everything))
    assert whole["min"] == min(everything)
    assert whole["max"] == max(everything)
    assert_close(whole["quantiles"], quantiles(everything))
    assert [b["count"] for b in whole["histogram"]] == histogram(everything)
    assert [s["step"] for s in report["steps"]] == [1, 2, 3]
    for block in report["steps"]:
        values = scores[block["step"]]
        assert block["scored"] == len(values)
        assert block["mean"] == pytest.approx(sum(values) / len(values))
        assert_close(block["quantiles"], quantiles(values))
        assert [b["count"] for b in block["histogram"]] == histogram(values)
    means = [sum(scores[s]) / len(scores[s]) for s in (1, 2, 3)]
    slope = float(np.polyfit([1, 2, 3], means, 1)[0])
    assert report["trend"]["slope_per_step"] == pytest.approx(slope)
    assert report["trend"]["change"] == pytest.approx(means[2] - means[0])
    assert report["judges"] == [{"scorer": "rubric", "judge": SCRIPTED, "items": 12, "scored": 10}]
    # One call per label: ten scored, one refused (the invalid item never reached the judge).
    assert report["cost"]["labels"] == 11
    assert report["cost"]["calls"] == 11

    text = referee("report", "--run", "grpo-t", env=env)
    assert text.returncode == 0, text.stderr
    assert "run grpo-t: 12 items, 10 scored, 2 without a score" in text.stdout
    assert "failed (refused): 1" in text.stdout
    html = page.read_text(encoding="utf-8")
    assert '<span id="run">grpo-t</span>' in html
    assert "run-steps" in html

    missing = referee("report", "--run", "nope", env=env)
    assert missing.returncode != 0
    assert "no reward items for run 'nope'" in missing.stderr
    mixed = referee("report", "--run", "grpo-t", "--judge", SCRIPTED, env=env)
    assert mixed.returncode != 0
    assert "--judge, --batch and --rounds do not apply" in mixed.stderr


def test_streamed_quantiles_equal_numpy_per_step(database_url: str) -> None:
    """2,000 items over 20 steps (and some without a step), inserted directly."""
    rng = random.Random(5)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    scores: dict[int | None, list[float]] = {}
    for index in range(2000):
        step = None if index % 97 == 0 else index % 20
        status = rng.choice(["scored"] * 9 + ["failed", "deadline"])
        score = round(rng.random(), 6) if status == "scored" else None
        if score is not None:
            scores.setdefault(step, []).append(score)
        rows.append(
            {
                "id": uuid.uuid4(),
                "item_key": f"k{index}",
                "score_key": f"s{index}",
                "run": "big",
                "step": step,
                "scorer": "rubric",
                "judge": SCRIPTED,
                "prompt": "p",
                "completion": "c",
                "status": status,
                "reason": None if status == "scored" else status,
                "score": score,
                "created_at": now,
                "updated_at": now,
            }
        )
    engine = create_engine(sync_url(database_url))
    with engine.begin() as connection:
        connection.execute(insert(RewardItem), rows)
    engine.dispose()

    async def build() -> dict[str, Any]:
        database = Database(database_url)
        try:
            return await run_report(database, "big")
        finally:
            await database.dispose()

    report = asyncio.run(build())
    assert [s["step"] for s in report["steps"]] == [*range(20), None]
    for block in report["steps"]:
        assert_close(block["quantiles"], quantiles(scores[block["step"]]))
        assert sum(b["count"] for b in block["histogram"]) == len(scores[block["step"]])
    everything = [s for values in scores.values() for s in values]
    assert_close(report["overall"]["quantiles"], quantiles(everything))
    assert report["overall"]["items"] == 2000
    reasons = {(u["status"], u["reason"]) for u in report["overall"]["unscored"]}
    assert reasons == {("failed", "failed"), ("deadline", "deadline")}
