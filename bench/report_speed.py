"""How long the judge-quality report takes, against the number of labeled comparisons.

Builds a migrated SQLite database of --rows comparisons split between two
judges (every pair judged by both), each with a current verdict (a, b, tie
and position-biased ties), two judge calls with a cost, and a gold label per
pair. Then times `referee report --json` (the real CLI, a fresh process,
start-up included) and checks the report counted every comparison.

    python -m bench.report_speed --rows 100000

Target: under 30 s at 100,000 comparisons (the bootstrap costs the same at
any size; reading the rows is what grows).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert

from app.keys import digest, pair_key
from app.store import migrate
from app.store.models import Base

JUDGES = ("anthropic:claude-sonnet-4-6", "openai:gpt-4o-mini")
CHUNK = 5000
TARGET_S = 30.0
TABLES = {name: Base.metadata.tables[name] for name in ("comparisons", "verdicts", "judge_calls")}
GOLD = Base.metadata.tables["gold_labels"]


def pair_rows(index: int, rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    """Rows of one pair judged by every judge: comparisons, verdicts, calls, and its gold."""
    prompt, a, b = f"question {index}", "a" * rng.randint(50, 400), "b" * rng.randint(50, 400)
    key = pair_key(prompt, a, b)
    gold = rng.choice(["a", "b", "tie"])
    rows: list[dict[str, Any]] = [
        {
            "table": "gold",
            "pair_key": key,
            "dedupe_key": digest([key, gold]),
            "winner": gold,
            "source": "import",
            "created_at": now,
        }
    ]
    for judge in JUDGES:
        comparison_id = uuid.uuid4()
        consistent = rng.random() < 0.9
        winner = (gold if rng.random() < 0.7 else rng.choice("ab")) if consistent else "tie"
        rows.append(
            {
                "table": "comparisons",
                "id": comparison_id,
                "label_key": digest([key, judge]),
                "pair_key": key,
                "prompt": prompt,
                "response_a": a,
                "response_b": b,
                "judge": judge,
                "judge_spec": judge,
                "judge_config": {},
                "template_version": "pairwise-v1",
                "status": "labeled",
                "created_at": now,
                "updated_at": now,
            }
        )
        rows.append(
            {
                "table": "verdicts",
                "id": len(JUDGES) * index + JUDGES.index(judge) + 1,
                "comparison_id": comparison_id,
                "winner": winner,
                "confidence": 1.0 if consistent else 0.0,
                "position_consistent": consistent,
                "rationale": "",
                "length_a": len(a),
                "length_b": len(b),
                "created_at": now,
            }
        )
        for order, position in (("ab", "1"), ("ba", "1" if not consistent else "2")):
            rows.append(
                {
                    "table": "judge_calls",
                    "comparison_id": comparison_id,
                    "verdict_id": len(JUDGES) * index + JUDGES.index(judge) + 1,
                    "shown_order": order,
                    "attempt": 1,
                    "provider": judge.split(":")[0],
                    "model": judge.split(":")[1],
                    "template_version": "pairwise-v1",
                    "parameters": {},
                    "parsed": {"position": position},
                    "cost_usd": 0.0004,
                    "latency_ms": 10.0,
                    "created_at": now,
                }
            )
    return rows


def build(url: str, pairs: int) -> None:
    migrate.upgrade(url)
    engine = create_engine(url)
    rng, now = random.Random(0), datetime.now(UTC)
    with engine.begin() as connection:
        for start in range(0, pairs, CHUNK):
            batch: dict[str, list[dict[str, Any]]] = {}
            for index in range(start, min(start + CHUNK, pairs)):
                for row in pair_rows(index, rng, now):
                    batch.setdefault(row.pop("table"), []).append(row)
            connection.execute(insert(GOLD), batch.pop("gold"))
            for name in ("comparisons", "verdicts", "judge_calls"):
                connection.execute(insert(TABLES[name]), batch[name])
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="comparisons (2 per pair)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'referee.db'}"
        started = time.perf_counter()
        build(url, args.rows // len(JUDGES))
        print(f"built {args.rows} comparisons in {time.perf_counter() - started:.1f} s")
        env = {**os.environ, "REFEREE_DATABASE_URL": url}
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "report", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        elapsed = time.perf_counter() - started
    report = json.loads(result.stdout)
    counted = sum(block["counts"]["comparisons"] for block in report["judges"])
    assert counted == args.rows // len(JUDGES) * len(JUDGES), counted
    agreement = report["judges"][0]["agreement"]["with_ties"]
    print(
        f"referee report --json: {elapsed:.2f} s for {counted} comparisons "
        f"({counted / elapsed:,.0f}/s); agreement of {report['judges'][0]['judge']} "
        f"{agreement['value']:.3f} {agreement['ci']}; target < {TARGET_S:.0f} s: "
        f"{'met' if elapsed < TARGET_S else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
