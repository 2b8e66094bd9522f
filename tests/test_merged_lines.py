"""What a run merged is said and kept: the ids of merged lines, and gold conflicts, everywhere.

``referee label`` stores one comparison for lines that repeat a pair; each
merged line's id stays retrievable from the store (``external_ids``). Its
``--dry-run`` and ``POST /v1/batches`` count disagreeing human labels as the
real run does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from typer.testing import CliRunner, Result

from app.cli import cli
from app.store.db import sync_url
from app.store.models import Comparison
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"


def line(id: str | None, prompt: str = "q", label: str | None = None) -> str:
    record: dict[str, Any] = {"prompt": prompt, "response_a": "long answer", "response_b": "no"}
    if id is not None:
        record["id"] = id
    if label is not None:
        record["label"] = label
    return json.dumps(record)


def run(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"REFEREE_DATABASE_URL": database_url})


def stored_ids(database_url: str) -> dict[str | None, list[str] | None]:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        rows = connection.execute(select(Comparison.external_id, Comparison.external_ids)).all()
    engine.dispose()
    return {first: ids for first, ids in rows}


def test_label_keeps_every_merged_lines_id_on_its_comparison(
    tmp_path: Path, database_url: str, provider: FakeProvider
) -> None:
    """Lines 1, 3, 4 hold one pair: one comparison, one judging, ids x1, x3, x4 all stored."""
    provider.configure(policy="longer")
    path = tmp_path / "dups.jsonl"
    path.write_text(
        "\n".join([line("x1"), line("y2", "other"), line("x3"), line("x4"), line(None), line("x1")])
        + "\n"
    )
    rejects = str(tmp_path / "rejects.jsonl")
    for _ in range(2):  # a second run of the same file keeps the same ids, once each
        result = run(database_url, "label", str(path), "--judge", JUDGE, "--rejects", rejects)
        assert result.exit_code == 0, result.output
        assert stored_ids(database_url) == {"x1": ["x1", "x3", "x4"], "y2": None}
    assert len(provider.requests()) == 4  # two pairs, both orders, judged once
    assert "line 3 (id x3) into line 1" in result.output


def test_dry_run_counts_gold_conflicts_as_the_real_run_does(
    tmp_path: Path, database_url: str, provider: FakeProvider
) -> None:
    """tie, tie, b on one pair: both runs print the conflict and how --gold-conflict settled it."""
    provider.configure(policy="longer")
    path = tmp_path / "gold.jsonl"
    path.write_text(
        "\n".join([line("g1", label="tie"), line("g2", label="tie"), line("g3", label="b")]) + "\n"
    )
    rejects = str(tmp_path / "rejects.jsonl")
    said = "1 pair with conflicting gold labels, settled by --gold-conflict majority"
    common = ["label", str(path), "--judge", JUDGE, "--gold-conflict", "majority"]
    dry = run(database_url, *common, "--dry-run", "--rejects", rejects)
    real = run(database_url, *common, "--rejects", rejects)
    for result in (dry, real):
        assert result.exit_code == 0, result.output
        assert said in result.output
        assert "lines 1, 2, 3: tie, tie, b -> tie" in result.output
        assert "merged: line 2 (id g2) into line 1, line 3 (id g3) into line 1" in result.output


def test_batch_upload_reports_gold_conflicts_and_keeps_merged_ids(
    api: TestClient, provider: FakeProvider
) -> None:
    provider.configure(policy="longer")
    body = "\n".join(
        [line("u1", label="a"), line("u2", label="b"), line("u3", "other", "a"), line("u4")]
    )
    response = api.post(
        "/v1/batches",
        params={"judge": JUDGE},
        content=body.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    submitted = response.json()
    assert (submitted["merged"], submitted["gold_conflicts"]) == (2, 1), submitted
    listed = api.get("/v1/comparisons", params={"batch_id": submitted["id"]})
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    merged = [item for item in items if item["external_id"] == "u1"]
    assert [item["external_ids"] for item in merged] == [["u1", "u2", "u4"]], items
