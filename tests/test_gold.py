"""Human labels in: imports of real labeled sets, counted independently, and reviews over HTTP."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from app.keys import pair_key
from app.labeling.jsonl import LineError, ParsedLine, read_pairs
from app.labeling.shapes import converter
from app.store import migrate
from app.store.db import sync_url
from app.store.models import Comparison, GoldLabel
from tests.conftest import pair_body

DATA = Path(__file__).parent / "data"
PANDALM = DATA / "pandalm/testset-v1.head200.json"
LLMBAR = DATA / "llmbar/llmbar_natural.json"
HH_TRL = DATA / "hh-rlhf/harmless-base.test.prompt_chosen_rejected.head20.jsonl"
HH_RAW = DATA / "hh-rlhf/harmless-base.test.head20.jsonl"
JUDGE = "anthropic:claude-sonnet-4-6"


def referee(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def stored_winners(database_url: str) -> Counter[str]:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        rows = connection.execute(
            select(GoldLabel.winner, func.count()).group_by(GoldLabel.winner)
        ).all()
    engine.dispose()
    return Counter({winner: count for winner, count in rows})


# Independent counts: plain loops over the files, written without the importers.


def pandalm_majority(item: dict[str, Any]) -> str:
    votes = [item["annotator1"], item["annotator2"], item["annotator3"]]
    for code, label in ((0, "tie"), (1, "a"), (2, "b")):
        if votes.count(code) >= 2:
            return label
    return "tie"


def pandalm_pair(item: dict[str, Any]) -> tuple[str, ...]:
    return (item["instruction"], item["input"], str(item["response1"]), str(item["response2"]))


def read(path: Path, fmt: str = "auto") -> list[ParsedLine | LineError]:
    return list(
        read_pairs(io.StringIO(path.read_text(encoding="utf-8")), path.name, converter(fmt))
    )


class TestImporters:
    def test_pandalm_majority_of_three_annotators(self) -> None:
        """Per item the majority of three votes (0 = tie), counted by hand: 81 a, 90 b, 29 tie."""
        items = json.loads(PANDALM.read_text(encoding="utf-8"))
        expected = Counter(pandalm_majority(item) for item in items)
        assert expected == Counter({"b": 90, "a": 81, "tie": 29})
        records = read(PANDALM)
        assert all(isinstance(r, ParsedLine) for r in records)
        labels = [r.pair.label for r in records if isinstance(r, ParsedLine)]
        assert labels == [pandalm_majority(item) for item in items]
        votes = [r.pair.label_votes for r in records if isinstance(r, ParsedLine)]
        codes = {0: "tie", 1: "a", 2: "b"}
        assert votes == [[codes[item[f"annotator{i}"]] for i in (1, 2, 3)] for item in items]

    def test_pandalm_without_a_majority_is_a_tie(self) -> None:
        """Three different votes give a tie, and the votes are kept."""
        line = {
            "idx": 1,
            "instruction": "Say hi",
            "input": "",
            "response1": "hi",
            "response2": "hello",
            "annotator1": 0,
            "annotator2": 1,
            "annotator3": 2,
        }
        (record,) = read_pairs(io.StringIO(json.dumps(line)), "x", converter("pandalm"))
        assert isinstance(record, ParsedLine)
        assert (record.pair.label, record.pair.label_votes) == ("tie", ["tie", "a", "b"])

    def test_llmbar_one_and_two_are_a_and_b(self) -> None:
        """The whole Natural set: 42 times output_1 (a), 58 times output_2 (b), counted by hand."""
        items = json.loads(LLMBAR.read_text(encoding="utf-8"))
        assert Counter(item["label"] for item in items) == Counter({2: 58, 1: 42})
        labels = [r.pair.label for r in read(LLMBAR) if isinstance(r, ParsedLine)]
        assert Counter(labels) == Counter({"b": 58, "a": 42})
        assert labels == ["a" if item["label"] == 1 else "b" for item in items]

    def test_hh_rlhf_chosen_lands_on_either_side_and_the_label_follows(self) -> None:
        """The preferred answer is in a or b by a hash, and the label always points at it."""
        rows = [json.loads(line) for line in HH_RAW.read_text(encoding="utf-8").splitlines()]
        records = read(HH_RAW)
        sides: Counter[str] = Counter()
        for row, record in zip(rows, records, strict=True):
            assert isinstance(record, ParsedLine)
            chosen = row["chosen"].rsplit("\n\nAssistant: ", 1)[1]
            pair = record.pair
            assert (pair.response_a if pair.label == "a" else pair.response_b) == chosen
            sides[str(pair.label)] += 1
        assert sides["a"] + sides["b"] == 20
        assert sides["a"] >= 4
        assert sides["b"] >= 4

    def test_bad_labels_are_rejected_with_their_line(self) -> None:
        """A canonical label outside a|b|tie and an LLMBar label outside 1|2 name line and field."""
        canonical = '{"prompt": "p", "response_a": "x", "response_b": "y", "label": "left"}\n'
        (error,) = read_pairs(io.StringIO(canonical), "f.jsonl", converter())
        assert isinstance(error, LineError)
        assert str(error).startswith("f.jsonl:1: field 'label'")
        llmbar = json.dumps([{"input": "p", "output_1": "x", "output_2": "y", "label": 3}])
        (error,) = read_pairs(io.StringIO(llmbar), "l.json", converter())
        assert isinstance(error, LineError)
        assert "l.json:1: field 'label': LLMBar labels are 1 or 2" in str(error)


class TestGoldImport:
    def test_import_stores_each_pair_once_and_again_adds_nothing(
        self, database_url: str, tmp_path: Path
    ) -> None:
        """PandaLM's 200 items are 187 distinct pairs; importing twice stores them once."""
        items = json.loads(PANDALM.read_text(encoding="utf-8"))
        distinct = {pandalm_pair(item): pandalm_majority(item) for item in items}
        first = referee("gold", "import", str(PANDALM), database_url=database_url)
        assert first.returncode == 0, first.stderr
        winners = Counter(distinct.values())
        assert (
            f"200 lines read: 187 gold labels (a {winners['a']}, b {winners['b']}, "
            f"tie {winners['tie']}), 187 new; 13 duplicate lines merged"
        ) in first.stdout
        assert stored_winners(database_url) == Counter(distinct.values())
        again = referee("gold", "import", str(PANDALM), database_url=database_url)
        assert "0 new" in again.stdout
        assert sum(stored_winners(database_url).values()) == len(distinct) == 187
        engine = create_engine(sync_url(database_url))
        with engine.connect() as connection:
            first_item = connection.execute(
                select(GoldLabel).where(GoldLabel.external_id == "0")
            ).one()
        engine.dispose()
        # idx 0: all three annotators voted 2 (response2).
        assert (first_item.winner, first_item.votes) == ("b", ["b", "b", "b"])
        assert (first_item.source, first_item.origin) == ("import", str(PANDALM.resolve()))

    def test_import_of_trl_rows_from_a_gzip_file(self, database_url: str, tmp_path: Path) -> None:
        """TRL rows read from .jsonl.gz: every row's chosen is gold, split between a and b."""
        packed = tmp_path / "hh.jsonl.gz"
        packed.write_bytes(gzip.compress(HH_TRL.read_bytes()))
        result = referee(
            "gold", "import", str(packed), "--format", "trl", database_url=database_url
        )
        assert result.returncode == 0, result.stderr
        winners = stored_winners(database_url)
        assert winners["a"] + winners["b"] == 20
        assert winners["tie"] == 0

    def test_unlabeled_and_bad_lines_are_reported(self, database_url: str, tmp_path: Path) -> None:
        """A pair without a label is counted; a bad line names file and line, exit code 1."""
        source = tmp_path / "mixed.jsonl"
        source.write_text(
            json.dumps({"prompt": "p", "response_a": "x", "response_b": "y", "label": "tie"})
            + "\n"
            + json.dumps({"prompt": "p", "response_a": "x", "response_b": "z"})
            + "\n"
            + '{"prompt": "p", "response_a": "x", "response_b": "y", "label": "c"}\n',
            encoding="utf-8",
        )
        result = referee("gold", "import", str(source), database_url=database_url)
        assert result.returncode == 1
        assert f"{source}:3: field 'label'" in result.stderr
        assert "1 gold labels (a 0, b 0, tie 1), 1 new; 0 duplicate lines merged, 1 lines" in (
            result.stdout
        )
        assert "Traceback" not in result.stderr


def test_labels_in_an_uploaded_batch_are_gold(api: TestClient, database_url: str) -> None:
    """POST /v1/batches stores each line's label as gold when it queues the pair."""
    lines = [
        {"prompt": f"q{n}", "response_a": "x" * n, "response_b": "y", "label": label}
        for n, label in enumerate(["a", "b", "tie", "a"], start=1)
    ]
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    response = api.post(
        "/v1/batches",
        params={"judge": JUDGE},
        content=body,
        headers={"content-type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    assert stored_winners(database_url) == Counter({"a": 2, "b": 1, "tie": 1})


class TestReviews:
    def test_a_review_is_a_gold_label_beside_the_verdict(self, api: TestClient) -> None:
        """201 with the stored review; the machine verdict is untouched."""
        comparison = api.post("/v1/comparisons", json=pair_body(judge=JUDGE)).json()
        response = api.post(
            f"/v1/comparisons/{comparison['id']}/reviews",
            json={"winner": "b", "reviewer": "ana", "note": "Lyon is wrong, but shorter is fine"},
        )
        assert response.status_code == 201, response.text
        review = response.json()
        assert (review["winner"], review["source"], review["reviewer"]) == ("b", "review", "ana")
        assert review["comparison_id"] == comparison["id"]
        again = api.get(f"/v1/comparisons/{comparison['id']}").json()
        assert again["verdict"] == comparison["verdict"]

    def test_unknown_comparison_and_bad_winner(self, api: TestClient) -> None:
        """404 for a comparison that does not exist; 422 naming the field for a bad winner."""
        missing = api.post(
            "/v1/comparisons/00000000-0000-0000-0000-000000000000/reviews", json={"winner": "a"}
        )
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        comparison = api.post("/v1/comparisons", json=pair_body(judge=JUDGE)).json()
        bad = api.post(f"/v1/comparisons/{comparison['id']}/reviews", json={"winner": "left"})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"]["field"] == "body.winner"

    def test_the_newest_review_outranks_an_import(
        self, api: TestClient, database_url: str, tmp_path: Path
    ) -> None:
        """A pair imported as "a" and then reviewed "b", then "tie", counts as a reviewed tie."""
        labeled = tmp_path / "labeled.jsonl"
        labeled.write_text(json.dumps({**pair_body(), "label": "a"}) + "\n", encoding="utf-8")
        assert referee("gold", "import", str(labeled), database_url=database_url).returncode == 0
        comparison = api.post("/v1/comparisons", json=pair_body(judge=JUDGE)).json()
        before = api.get("/v1/reports/summary").json()["gold"]
        assert before == {
            "pairs": 1,
            "winners": {"a": 1, "b": 0, "tie": 0},
            "sources": {"import": 1, "review": 0},
        }
        for winner in ("b", "tie"):
            api.post(f"/v1/comparisons/{comparison['id']}/reviews", json={"winner": winner})
        after = api.get("/v1/reports/summary").json()["gold"]
        assert after == {
            "pairs": 1,
            "winners": {"a": 0, "b": 0, "tie": 1},
            "sources": {"import": 0, "review": 1},
        }


def test_migration_backfills_pair_keys_of_stored_comparisons(database_url: str) -> None:
    """Comparisons stored before gold labels existed get the pair key the code computes."""
    migrate.downgrade(database_url, "0005")
    old = sa.table(
        "comparisons",
        *(sa.column(name) for name in ("label_key", "judge", "judge_spec", "template_version")),
        *(sa.column(name) for name in ("status",)),
        sa.column("id", sa.Uuid()),
        sa.column("judge_config", sa.JSON()),
        sa.column("prompt", sa.JSON()),
        sa.column("response_a", sa.JSON()),
        sa.column("response_b", sa.JSON()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    prompt = [{"role": "user", "content": "hi"}]
    answer = {"role": "assistant", "content": "hello"}
    now = datetime.now(UTC)
    engine = create_engine(sync_url(database_url))
    with engine.begin() as connection:
        connection.execute(
            old.insert().values(
                id=uuid.uuid4(),
                label_key="k" * 64,
                judge="j",
                judge_spec="j:m",
                template_version="pairwise-v1",
                status="pending",
                judge_config={},
                prompt=prompt,
                response_a=answer,
                response_b="hey",
                created_at=now,
                updated_at=now,
            )
        )
    migrate.upgrade(database_url)
    with engine.connect() as connection:
        stored = connection.execute(select(Comparison.pair_key)).scalar_one()
    engine.dispose()
    assert stored == pair_key("hi", "hello", "hey")
