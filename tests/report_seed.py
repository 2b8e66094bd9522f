"""A deterministic, awkward database for the report: every case the report's counting meets.

Inserted straight into the tables (fixed ids, times and draws), so the same
report comes out on SQLite and PostgreSQL, before and after a change in how
the report is computed. Cases: three judges, two batches and no batch, two
templates; labeled, failed, pending and running comparisons; superseded
verdicts; one judge judging a pair twice; comparisons without a pair key;
categories that are strings, empty, numbers or lists; confidences on and near
bin edges, and none; equal and unknown lengths; position-inconsistent
verdicts whose calls lean either way, errored, or unparsed; priced,
unpriced and verdict-less calls; gold imported and reviewed, several per pair.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import URL, Table, create_engine, insert

from app.keys import digest
from app.store.models import Base

JUDGES = ("anthropic:claude-sonnet-4-6", "openai:gpt-4o-mini", "openai:gpt-4o")
BATCHES = {
    uuid.UUID("00000000-0000-4000-8000-00000000000b"): "beta",
    uuid.UUID("00000000-0000-4000-8000-00000000000a"): "alpha",
}
TEMPLATES = ("pairwise-v1", "pairwise-v2")
CATEGORIES: tuple[Any, ...] = ("math", "code", "writing", "", 5, ["x"], None, "MISSING")
CONFIDENCES = (None, 0.0, 0.29, 0.3, 0.5, 0.7, 0.99, 1.0, 0.123456789)
START = datetime(2026, 1, 1, tzinfo=UTC)


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def seed_rows(pairs: int = 300, seed: int = 11) -> dict[str, list[dict[str, Any]]]:
    """The rows of every table, by table name (inserted in this order)."""
    rng = random.Random(seed)
    tick = iter(range(10**9))

    def at() -> datetime:
        return START + timedelta(seconds=next(tick))

    rows: dict[str, list[dict[str, Any]]] = {
        "batches": [
            {
                "id": batch_id,
                "name": name,
                "source": f"{name}.jsonl",
                "judge": JUDGES[0],
                "status": "done",
                "submitted": 0,
                "rejected": 0,
                "created_at": START,
                "updated_at": START,
            }
            for batch_id, name in BATCHES.items()
        ],
        "comparisons": [],
        "verdicts": [],
        "judge_calls": [],
        "gold_labels": [],
    }
    verdict_id = 0
    for index in range(pairs):
        key = None if index % 37 == 0 else digest(["pair", index])
        category = rng.choice(CATEGORIES)
        length_a, length_b = rng.choice([(10, 20), (20, 10), (15, 15), (300, 40)])
        if key is not None and rng.random() < 0.75:
            for _ in range(rng.choice([1, 1, 2, 3])):
                source = rng.choice(["import", "import", "review"])
                rows["gold_labels"].append(
                    {
                        "pair_key": key,
                        "dedupe_key": digest(["gold", index, len(rows["gold_labels"])]),
                        "winner": rng.choice(["a", "b", "tie"]),
                        "source": source,
                        "reviewer": "ann" if source == "review" else None,
                        "created_at": at(),
                    }
                )
        judges = [j for j in JUDGES if rng.random() < 0.7] or [JUDGES[0]]
        for judge in judges:
            for repeat in range(2 if rng.random() < 0.08 else 1):
                comparison_id = uuid.UUID(int=rng.getrandbits(122) | (4 << 76))
                status = rng.choice(["labeled"] * 8 + ["failed", "pending", "running"])
                meta: dict[str, Any] | None = {"source": "seed", "category": category}
                if category == "MISSING":
                    meta = None if index % 2 else {}
                created = at()
                rows["comparisons"].append(
                    {
                        "id": comparison_id,
                        "label_key": digest([key, judge, index, repeat]),
                        "pair_key": key,
                        "prompt": f"question {index}",
                        "response_a": "a" * length_a,
                        "response_b": "b" * length_b,
                        "metadata": meta,
                        "judge": judge,
                        "judge_spec": judge,
                        "judge_config": {},
                        "template_version": rng.choice(TEMPLATES),
                        "status": status,
                        "batch_id": rng.choice([None, *BATCHES]),
                        "created_at": created,
                        "updated_at": created,
                    }
                )
                if status != "labeled" and rng.random() < 0.7:
                    _call(rows, rng, comparison_id, None, judge, at(), error=True)
                    continue
                verdicts = 2 if rng.random() < 0.1 else (1 if status == "labeled" else 0)
                for _ in range(verdicts):
                    verdict_id += 1
                    consistent = rng.choice([True, True, True, False, None])
                    rows["verdicts"].append(
                        {
                            "id": verdict_id,
                            "comparison_id": comparison_id,
                            "winner": "tie" if consistent is False else rng.choice("ab"),
                            "confidence": rng.choice(CONFIDENCES),
                            "position_consistent": consistent,
                            "rationale": "",
                            "length_a": length_a,
                            "length_b": length_b,
                            "created_at": at(),
                        }
                    )
                    if rng.random() < 0.3:
                        rows["verdicts"][-1]["winner"] = rng.choice(["a", "b", "tie"])
                    for _ in range(rng.choice([0, 1, 2, 2, 3])):
                        _call(rows, rng, comparison_id, verdict_id, judge, at())
    return rows


def _call(
    rows: dict[str, list[dict[str, Any]]],
    rng: random.Random,
    comparison_id: uuid.UUID,
    verdict_id: int | None,
    judge: str,
    created: datetime,
    error: bool = False,
) -> None:
    parsed: Any = rng.choice(
        [{"position": "1"}, {"position": "2"}, {"position": "tie"}, {"position": 1}, {}, None]
    )
    errored = error or rng.random() < 0.1
    rows["judge_calls"].append(
        {
            "comparison_id": comparison_id,
            "verdict_id": verdict_id,
            "shown_order": rng.choice(["ab", "ba"]),
            "attempt": 1,
            "provider": judge.split(":")[0],
            "model": judge.split(":")[1],
            "template_version": "pairwise-v1",
            "parameters": {},
            "parsed": None if errored else parsed,
            "cost_usd": rng.choice([None, Decimal("0.0004"), Decimal("0.00125")]),
            "latency_ms": 10.0,
            "error_class": "timeout" if errored else None,
            "created_at": created,
        }
    )


def seed(url: str | URL, pairs: int = 300, seed: int = 11) -> None:
    """Insert the rows into a migrated database at a sync URL."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for name, table_rows in seed_rows(pairs, seed).items():
                if table_rows:
                    connection.execute(insert(_table(name)), table_rows)
    finally:
        engine.dispose()
