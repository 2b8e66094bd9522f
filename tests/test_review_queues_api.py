"""The review queues over HTTP and from the CLI: access, serving, answering, undo, agreement."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.labeling.admin import create_key
from app.settings import Settings
from tests.conftest import serve_app
from tests.review_seed import Env, PairSpec


@pytest.fixture
def env(database_url: str) -> Iterator[Env]:
    environment = Env(database_url)
    yield environment
    environment.close()


def _key(settings: Settings, name: str, scope: str) -> dict[str, str]:
    _, key = asyncio.run(create_key(settings, name, [scope]))
    return {"Authorization": f"Bearer {key}"}


def test_reviewers_answer_over_http(env: Env, settings: Settings) -> None:
    """Admin makes a k=2 queue; two review keys each answer every item once; agreement follows."""
    env.seed([PairSpec(f"p{i}", winner="a", disagreement=0.5) for i in range(3)])
    ann, bob = _key(settings, "ann", "review"), _key(settings, "bob", "review")
    with serve_app(settings) as admin:
        denied = admin.post(
            "/v1/review-queues", json={"name": "q", "kind": "disagreement"}, headers=ann
        )
        assert denied.status_code == 403
        made = admin.post(
            "/v1/review-queues",
            json={"name": "q", "kind": "disagreement", "overlap": 2, "guidelines": "# Be fair"},
        )
        assert made.status_code == 201, made.text
        queue_id = made.json()["id"]
        assert made.json()["items"] == 3
        seen: dict[str, list[int]] = {"ann": [], "bob": []}
        for name, headers in (("ann", ann), ("bob", bob)):
            while (item := _next(admin, queue_id, headers)) is not None:
                seen[name].append(item["item_id"])
                assert item["guidelines"] == "# Be fair"
                assert item["machine"] is None  # blind by default
                answered = admin.post(
                    f"/v1/review-queues/{queue_id}/answers",
                    json={"assignment_id": item["assignment_id"], "choice": "left"},
                    headers=headers,
                )
                assert answered.status_code == 200, answered.text
        assert sorted(seen["ann"]) == sorted(seen["bob"])
        assert len(set(seen["ann"])) == 3
        [progress] = admin.get("/v1/review-queues", headers=ann).json()
        assert (progress["done"], progress["left_for_you"]) == (3, 0)
        agreement = admin.get(f"/v1/review-queues/{queue_id}/agreement", headers=ann).json()
        assert agreement["pairwise"]["n"] == 3  # one pair of answers per item
        assert agreement["alpha"]["n"] == 3
        undone = admin.post(f"/v1/review-queues/{queue_id}/undo", headers=bob)
        assert undone.status_code == 200
        assert undone.json()["item_id"] == seen["bob"][-1]
        again = admin.post(
            f"/v1/review-queues/{queue_id}/answers",
            json={"assignment_id": undone.json()["assignment_id"], "choice": "tie"},
            headers=ann,
        )
        assert again.status_code == 404  # another reviewer's assignment


def _next(client: TestClient, queue_id: str, headers: dict[str, str]) -> dict[str, object] | None:
    response = client.post(f"/v1/review-queues/{queue_id}/next", headers=headers)
    assert response.status_code == 200, response.text
    item: dict[str, object] | None = response.json()["item"]
    return item


def test_a_second_answer_is_a_conflict(env: Env, settings: Settings) -> None:
    """Answering the same assignment twice is a 409; the first answer stands."""
    env.seed([PairSpec("p", disagreement=0.5)])
    with serve_app(settings) as client:
        queue_id = client.post(
            "/v1/review-queues", json={"name": "q", "kind": "disagreement", "show_machine": True}
        ).json()["id"]
        item = _next(client, queue_id, {})
        assert item is not None
        [machine] = item["machine"]  # type: ignore[misc]
        assert machine["winner"] in ("left", "right")
        body = {"assignment_id": item["assignment_id"], "choice": "right"}
        assert client.post(f"/v1/review-queues/{queue_id}/answers", json=body).status_code == 200
        second = client.post(f"/v1/review-queues/{queue_id}/answers", json=body)
        assert second.status_code == 409
        assert second.json()["error"]["code"] == "conflict"


def test_cli_creates_and_lists_queues(env: Env, database_url: str, tmp_path: object) -> None:
    """referee review-queue create / list; the old bare form still writes the JSONL."""
    from pathlib import Path

    seeded = env.seed([PairSpec(f"p{i}", batch="nightly") for i in range(5)])
    assert seeded
    guide = Path(str(tmp_path)) / "guide.md"
    guide.write_text("# Guidelines\nPick the correct one.", encoding="utf-8")
    environ = {"REFEREE_DATABASE_URL": database_url}
    runner = CliRunner()
    made = runner.invoke(
        cli,
        [
            "review-queue",
            "create",
            "audit-1",
            "--kind",
            "audit",
            "--batch",
            "nightly",
            "--size",
            "3",
            "--seed",
            "1",
            "--overlap",
            "2",
            "--guidelines",
            str(guide),
        ],
        env=environ,
    )
    assert made.exit_code == 0, made.output
    assert "3 items" in made.output
    bad = runner.invoke(cli, ["review-queue", "create", "x", "--kind", "nonsense"], env=environ)
    assert bad.exit_code == 2
    assert "kind" in bad.output
    listed = runner.invoke(cli, ["review-queue", "list", "--json"], env=environ)
    assert listed.exit_code == 0, listed.output
    [row] = [json.loads(line) for line in listed.output.splitlines()]
    assert (row["name"], row["kind"], row["items"], row["overlap"]) == ("audit-1", "audit", 3, 2)
    assert row["guidelines"].startswith("# Guidelines")
    out = Path(str(tmp_path)) / "split.jsonl"
    old = runner.invoke(
        cli, ["review-queue", "--min-disagreement", "0.3", "--out", str(out)], env=environ
    )
    assert old.exit_code == 0, old.output
    assert out.read_text(encoding="utf-8") == ""
    sub = runner.invoke(
        cli,
        ["review-queue", "export", "--min-disagreement", "0.3", "--out", str(out), "--overwrite"],
        env=environ,
    )
    assert sub.exit_code == 0, sub.output
