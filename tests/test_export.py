"""DPO, KTO and SFT exports, by `referee export` and GET /v1/exports, of labels made via the API."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import Result
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from app.cli import cli
from app.export.card import kto_weights
from judges import JudgeConfig, JudgeRegistry
from judges.base import RawAnswer
from judges.testing import Script, ScriptedJudge, always_first, prefer_containing
from judges.types import Position, PositionProbabilities, ShownPair

LONG = "Paris is the capital of France."
SHORT = "Lyon."


class SureJudge(ScriptedJudge):
    """The scripted judge, also reporting how sure it is: ``sure:0.6`` gives confidence 0.6."""

    async def answer(self, shown: ShownPair, *args: Any, **kwargs: Any) -> RawAnswer:
        raw = await super().answer(shown, *args, **kwargs)
        p = float(self.config.model)
        rest = 1.0 - p
        probabilities = {
            Position.FIRST: PositionProbabilities(p, rest, 0.0),
            Position.SECOND: PositionProbabilities(rest, p, 0.0),
            Position.TIE: PositionProbabilities(rest / 2, rest / 2, p),
        }[raw.answer.position]
        answer = dataclasses.replace(raw.answer, probabilities=probabilities)
        return RawAnswer(answer, raw.raw_output, raw.usage)


@pytest.fixture
def registry(registry: JudgeRegistry, script: Script) -> JudgeRegistry:
    """The scripted judges, plus ``sure:<p>`` and ``one-order`` (a single-order judge)."""
    registry.register("sure", lambda config: SureJudge(config, script))
    registry.add_named(JudgeConfig("scripted", "x", name="one-order", order="single"))
    return registry


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    """An empty folder for export outputs (the SQLite database lives beside it)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def compare(
    api: TestClient,
    prompt: Any,
    response_a: Any,
    response_b: Any,
    judge: str = "scripted:x",
    **more: Any,
) -> dict[str, Any]:
    body = {"prompt": prompt, "response_a": response_a, "response_b": response_b, "judge": judge}
    response = api.post("/v1/comparisons", json={**body, **more})
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def hf_datasets() -> Any:
    """The optional ``datasets`` package (the hf extra), or a skip."""
    return pytest.importorskip("datasets")


def referee(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"REFEREE_DATABASE_URL": database_url})


def export(database_url: str, kind: str, out: Path, *args: str) -> Result:
    return referee(database_url, "export", kind, "--out", str(out), *args)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def exported(database_url: str, kind: str, out: Path, *args: str) -> list[dict[str, Any]]:
    """Rows of a successful export to a single .jsonl file."""
    result = export(database_url, kind, out, *args)
    assert result.exit_code == 0, (result.stderr, result.exception)
    return read_jsonl(out)


def refused(database_url: str, kind: str, out: Path, *args: str) -> str:
    """The one-line error of an export that must fail cleanly (exit 2, no traceback)."""
    result = export(database_url, kind, out, *args)
    assert result.exit_code == 2, (result.stdout, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    return result.stderr


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def prompts(rows: list[dict[str, Any]]) -> list[str]:
    """The (single user message) prompt text of each row, sorted."""
    return sorted(row["prompt"][0]["content"] for row in rows)


def card_header(folder: Path) -> tuple[dict[str, Any], str]:
    """The dataset card's YAML header, parsed, and its body."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    parsed: dict[str, Any] = yaml.safe_load(header)
    return parsed, body


def wait_for_batch(api: TestClient, batch_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if api.get(f"/v1/batches/{batch_id}").json()["status"] == "done":
            return
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish")


def printed_weights(stdout: str) -> tuple[int, int, float, float]:
    found = re.search(
        r"desirable (\d+), undesirable (\d+): use KTOConfig\("
        r"desirable_weight=([\d.]+), undesirable_weight=([\d.]+)\)",
        stdout,
    )
    assert found, stdout
    return int(found[1]), int(found[2]), float(found[3]), float(found[4])


def in_kto_range(desirable: int, undesirable: int, weights: tuple[float, float]) -> bool:
    """λ_D·n_D / (λ_U·n_U) within [1, 4/3], computed as a trainer would, in floats."""
    desirable_weight, undesirable_weight = weights
    ratio = desirable_weight * desirable / (undesirable_weight * undesirable)
    return 1 <= ratio <= 4 / 3


class TestDpoRows:
    def test_chosen_is_the_winner_on_either_side(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """Winner a and winner b both come out with the winner as chosen."""
        assert compare(api, "qa", LONG, SHORT)["verdict"]["winner"] == "a"
        assert compare(api, "qb", SHORT, LONG + " Truly.")["verdict"]["winner"] == "b"
        out = outdir / "dpo.jsonl"
        result = export(database_url, "dpo", out)
        assert result.exit_code == 0, result.stderr
        assert f"wrote 2 dpo rows (train 2) to {out} as jsonl; 0 duplicates dropped" in (
            result.stdout
        )
        assert "0 ties left out" in result.stdout
        assert sorted(read_jsonl(out), key=lambda row: row["prompt"][0]["content"]) == [
            {"prompt": user("qa"), "chosen": assistant(LONG), "rejected": assistant(SHORT)},
            {
                "prompt": user("qb"),
                "chosen": assistant(LONG + " Truly."),
                "rejected": assistant(SHORT),
            },
        ]

    def test_spliced_rows_are_the_bytes_of_the_decoded_row(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """DPO lines spliced from stored JSON text (SQLite's, PostgreSQL's JSONB cast to text)
        are byte for byte what encoding the decoded row writes: quotes, backslashes, tabs,
        newlines, non-ASCII and U+2028 alike."""
        prompt = 'quote " back \\ slash / tab \t nl \n café 東京 😀 \u2028 end'
        chosen = LONG + ' "é" \\n'
        compare(api, prompt, chosen, SHORT)
        out = outdir / "dpo.jsonl"
        result = export(database_url, "dpo", out)
        assert result.exit_code == 0, result.stderr
        row = {"prompt": user(prompt), "chosen": assistant(chosen), "rejected": assistant(SHORT)}
        assert out.read_bytes() == orjson.dumps(row) + b"\n"

    def test_only_the_current_verdict_counts(
        self, api: TestClient, database_url: str, outdir: Path, script: Script
    ) -> None:
        """A forced re-judgement that changes the winner changes the exported row."""
        compare(api, "q", LONG, SHORT)
        script.policy = prefer_containing("Lyon")
        assert compare(api, "q", LONG, SHORT, force=True)["verdict"]["winner"] == "b"
        rows = exported(database_url, "dpo", outdir / "dpo.jsonl")
        assert rows == [
            {"prompt": user("q"), "chosen": assistant(SHORT), "rejected": assistant(LONG)}
        ]

    def test_mixed_inputs_come_out_in_one_shape(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """String and message inputs become conversational rows, or all text with --shape text."""
        compare(api, "q1", LONG, SHORT)
        compare(
            api,
            user("q2"),
            {"role": "assistant", "content": LONG},
            {"role": "assistant", "content": SHORT},
        )
        turns = [{"role": "system", "content": "Be brief."}, *user("q3")]
        compare(api, turns, assistant(SHORT), assistant(LONG))
        rows = exported(database_url, "dpo", outdir / "conv.jsonl")
        by_last_turn = {row["prompt"][-1]["content"]: row for row in rows}
        assert by_last_turn["q1"] == {
            "prompt": user("q1"),
            "chosen": assistant(LONG),
            "rejected": assistant(SHORT),
        }
        assert by_last_turn["q2"]["prompt"] == user("q2")
        assert by_last_turn["q3"]["prompt"] == turns
        assert all(row["chosen"] == assistant(LONG) for row in rows)
        assert all(row["rejected"] == assistant(SHORT) for row in rows)
        text = exported(database_url, "dpo", outdir / "text.jsonl", "--shape", "text")
        assert sorted(text, key=lambda row: row["prompt"]) == [
            {"prompt": "q1\n\n", "chosen": LONG, "rejected": SHORT},
            {"prompt": "q2\n\n", "chosen": LONG, "rejected": SHORT},
            {"prompt": "system: Be brief.\n\nuser: q3\n\n", "chosen": LONG, "rejected": SHORT},
        ]

    def test_ties_are_left_out_and_counted(
        self, api: TestClient, database_url: str, outdir: Path, script: Script
    ) -> None:
        """A consistent tie and a position-biased tie give no row; the summary counts both."""
        compare(api, "decisive", LONG, SHORT)
        assert compare(api, "even", "Same.", "Also.")["verdict"]["winner"] == "tie"
        script.policy = always_first
        biased = compare(api, "biased", LONG, SHORT)["verdict"]
        assert (biased["winner"], biased["position_consistent"]) == ("tie", False)
        out = outdir / "dpo.jsonl"
        result = export(database_url, "dpo", out)
        assert result.exit_code == 0, result.stderr
        assert "2 ties left out" in result.stdout
        assert prompts(read_jsonl(out)) == ["decisive"]


class TestFilters:
    def test_judge(self, api: TestClient, database_url: str, outdir: Path) -> None:
        """--judge keeps that judge's rows; repeated, it keeps each named judge's."""
        compare(api, "by-one", LONG, SHORT, judge="scripted:one")
        compare(api, "by-two", LONG, SHORT, judge="scripted:two")
        one = exported(database_url, "dpo", outdir / "one.jsonl", "--judge", "scripted:one")
        assert prompts(one) == ["by-one"]
        both = exported(
            database_url,
            "dpo",
            outdir / "both.jsonl",
            "--judge",
            "scripted:one",
            "--judge",
            "scripted:two",
        )
        assert prompts(both) == ["by-one", "by-two"]

    def test_batch_by_name_or_id(self, api: TestClient, database_url: str, outdir: Path) -> None:
        """--batch takes a batch's name or id and keeps only its pairs."""
        pairs = [
            {"prompt": f"batched-{n}", "response_a": LONG, "response_b": SHORT} for n in (1, 2)
        ]
        submitted = api.post("/v1/batches?judge=scripted:x&name=nightly", json=pairs).json()
        wait_for_batch(api, submitted["id"])
        compare(api, "loose", LONG, SHORT)
        assert prompts(exported(database_url, "dpo", outdir / "all.jsonl")) == [
            "batched-1",
            "batched-2",
            "loose",
        ]
        by_name = exported(database_url, "dpo", outdir / "name.jsonl", "--batch", "nightly")
        assert prompts(by_name) == ["batched-1", "batched-2"]
        by_id = exported(database_url, "dpo", outdir / "id.jsonl", "--batch", submitted["id"])
        assert by_id == by_name

    def test_min_confidence(self, api: TestClient, database_url: str, outdir: Path) -> None:
        """--min-confidence drops verdicts below it and keeps those at or above it."""
        assert compare(api, "at-0.6", LONG, SHORT, judge="sure:0.6")["verdict"]["confidence"] == 0.6
        assert compare(api, "at-0.9", LONG, SHORT, judge="sure:0.9")["verdict"]["confidence"] == 0.9
        assert compare(api, "at-1", LONG, SHORT)["verdict"]["confidence"] == 1.0
        every = exported(database_url, "dpo", outdir / "every.jsonl")
        assert prompts(every) == ["at-0.6", "at-0.9", "at-1"]
        kept = exported(database_url, "dpo", outdir / "0.9.jsonl", "--min-confidence", "0.9")
        assert prompts(kept) == ["at-0.9", "at-1"]
        top = exported(database_url, "dpo", outdir / "0.95.jsonl", "--min-confidence", "0.95")
        assert prompts(top) == ["at-1"]

    def test_consistent_only(self, api: TestClient, database_url: str, outdir: Path) -> None:
        """--consistent-only drops single-order verdicts and keeps ones agreed in both orders."""
        compare(api, "both-orders", LONG, SHORT)
        single = compare(api, "one-order", LONG, SHORT, judge="one-order")["verdict"]
        assert single["position_consistent"] is None
        assert single["winner"] == "a"
        every = exported(database_url, "dpo", outdir / "every.jsonl")
        assert prompts(every) == ["both-orders", "one-order"]
        kept = exported(database_url, "dpo", outdir / "kept.jsonl", "--consistent-only")
        assert prompts(kept) == ["both-orders"]

    def test_max_length_ratio(self, api: TestClient, database_url: str, outdir: Path) -> None:
        """--max-length-ratio drops pairs whose longer side (a or b) is more than R times longer."""
        compare(api, "ratio-2", "x" * 10, "y" * 5)
        compare(api, "ratio-6-a", "x" * 30, "y" * 5)
        compare(api, "ratio-6-b", "y" * 5, "x" * 30)
        kept = exported(database_url, "dpo", outdir / "2.jsonl", "--max-length-ratio", "2")
        assert prompts(kept) == ["ratio-2"]
        wide = exported(database_url, "dpo", outdir / "6.jsonl", "--max-length-ratio", "6")
        assert prompts(wide) == ["ratio-2", "ratio-6-a", "ratio-6-b"]

    def test_since_and_until(self, api: TestClient, database_url: str, outdir: Path) -> None:
        """--since keeps labels made at or after it, --until those before it, in any time zone."""
        made = {
            name: compare(api, name, LONG, SHORT)["verdict"]["created_at"]
            for name in ("first", "second", "third")
        }
        second = datetime.fromisoformat(made["second"])
        assert second > datetime.fromisoformat(made["first"])
        since = exported(database_url, "dpo", outdir / "since.jsonl", "--since", made["second"])
        assert prompts(since) == ["second", "third"]
        until = exported(database_url, "dpo", outdir / "until.jsonl", "--until", made["second"])
        assert prompts(until) == ["first"]
        between = exported(
            database_url,
            "dpo",
            outdir / "between.jsonl",
            "--since",
            made["second"],
            "--until",
            made["third"],
        )
        assert prompts(between) == ["second"]
        in_paris = second.astimezone(timezone(timedelta(hours=1))).isoformat()
        shifted = exported(database_url, "dpo", outdir / "paris.jsonl", "--since", in_paris)
        assert shifted == since


class TestBadRequests:
    def test_unknown_judge_or_batch_names_it(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """An unknown judge or batch is an error naming it, not an empty dataset."""
        compare(api, "q", LONG, SHORT)
        out = outdir / "dpo.jsonl"
        message = refused(database_url, "dpo", out, "--judge", "nosuch:model")
        assert "no labels from judge 'nosuch:model'" in message
        assert "judges in this database: scripted:x" in message
        message = refused(database_url, "dpo", out, "--batch", "nightly")
        assert "no batch named or numbered 'nightly'" in message
        assert not out.exists()

    def test_bad_values(self, database_url: str, outdir: Path) -> None:
        """Out-of-range numbers, a naive time, an unknown shape or kind each get a clear error."""
        out = outdir / "dpo.jsonl"
        cases = [
            (("--min-confidence", "1.5"), "min_confidence must be between 0 and 1, got 1.5"),
            (("--min-confidence", "-0.1"), "min_confidence must be between 0 and 1, got -0.1"),
            (("--max-length-ratio", "0.5"), "must be at least 1, got 0.5"),
            (("--since", "2026-11-27T00:00:00"), "needs a time zone"),
            (("--since", "yesterday"), "is not an ISO 8601 time"),
            (("--shape", "plain"), "unknown shape 'plain'; use one of: conversational, text"),
            (("--format", "csv"), "unknown format 'csv'; use one of: jsonl, parquet, hf"),
            (("--source", "feedback"), "DPO rows come from pairwise verdicts and revisions"),
            (("--test-size", "0.2"), "a test split needs a folder output"),
            (("--format", "parquet"), "has the suffix .jsonl but the format is parquet"),
        ]
        for args, expected in cases:
            assert expected in refused(database_url, "dpo", out, *args), args
        assert "unknown export kind 'ppo'" in refused(database_url, "ppo", out)
        assert "loser_min_confidence must be between 0 and 1" in refused(
            database_url, "kto", out, "--loser-min-confidence", "2"
        )
        assert list(outdir.iterdir()) == []

    def test_empty_result_fails_unless_allowed(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """No matching rows is an error, nothing written; --allow-empty writes an empty dataset."""
        compare(api, "q", LONG, SHORT, judge="sure:0.6")
        out = outdir / "dataset"
        message = refused(database_url, "dpo", out, "--min-confidence", "0.9")
        assert "no rows match the export's filters" in message
        assert "--allow-empty" in message
        assert list(outdir.iterdir()) == []
        result = export(database_url, "dpo", out, "--min-confidence", "0.9", "--allow-empty")
        assert result.exit_code == 0, result.stderr
        assert "wrote 0 dpo rows (empty)" in result.stdout
        assert sorted(p.name for p in out.iterdir()) == ["README.md", "train.jsonl"]
        assert (out / "train.jsonl").read_text() == ""
        assert [p.name for p in outdir.iterdir()] == ["dataset"]

    def test_existing_output_is_kept_unless_overwrite(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """An existing file or folder is refused and left as it was; --overwrite replaces it."""
        compare(api, "q", LONG, SHORT)
        file = outdir / "dpo.jsonl"
        file.write_text("precious\n")
        assert "exists; pass --overwrite to replace it" in refused(database_url, "dpo", file)
        assert file.read_text() == "precious\n"
        folder = outdir / "dataset"
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
        assert "exists; pass --overwrite" in refused(database_url, "dpo", folder)
        assert (folder / "notes.txt").read_text() == "mine"
        assert prompts(exported(database_url, "dpo", file, "--overwrite")) == ["q"]
        assert export(database_url, "dpo", folder, "--overwrite").exit_code == 0
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "train.jsonl"]
        assert sorted(p.name for p in outdir.iterdir()) == ["dataset", "dpo.jsonl"]


class TestSplits:
    def test_split_by_id_is_the_same_on_every_export(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """Two exports with --test-size put every row on the same side; no row is on both."""
        for n in range(24):
            compare(api, f"q{n}", LONG, SHORT)
        for name in ("first", "second"):
            result = export(database_url, "dpo", outdir / name, "--test-size", "0.5")
            assert result.exit_code == 0, result.stderr
        first_train = read_jsonl(outdir / "first" / "train.jsonl")
        first_test = read_jsonl(outdir / "first" / "test.jsonl")
        assert first_train
        assert first_test
        assert sorted(prompts(first_train) + prompts(first_test)) == sorted(
            f"q{n}" for n in range(24)
        )
        for split in ("train", "test"):
            second = outdir / "second" / f"{split}.jsonl"
            assert second.read_bytes() == (outdir / "first" / f"{split}.jsonl").read_bytes()

    def test_split_by_prompt_keeps_a_prompt_on_one_side(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """With --split-by prompt, every pair about one prompt lands in the same split."""
        for n in range(8):
            for k in range(3):
                compare(api, f"topic {n}", LONG + "!" * k, SHORT)
        out = outdir / "dataset"
        result = export(database_url, "dpo", out, "--test-size", "0.5", "--split-by", "prompt")
        assert result.exit_code == 0, result.stderr
        train = prompts(read_jsonl(out / "train.jsonl"))
        test = prompts(read_jsonl(out / "test.jsonl"))
        assert len(train) + len(test) == 24
        assert train
        assert test
        assert not set(train) & set(test)
        assert all(train.count(p) == 3 for p in train)


class TestDuplicates:
    def test_one_pair_judged_by_two_judges_is_one_row(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """Identical rows from two judges are written once unless --keep-duplicates."""
        compare(api, "q", LONG, SHORT, judge="scripted:one")
        compare(api, "q", LONG, SHORT, judge="scripted:two")
        out = outdir / "dedup.jsonl"
        result = export(database_url, "dpo", out)
        assert "wrote 1 dpo rows (train 1)" in result.stdout
        assert "1 duplicates dropped" in result.stdout
        row = {"prompt": user("q"), "chosen": assistant(LONG), "rejected": assistant(SHORT)}
        assert read_jsonl(out) == [row]
        assert exported(database_url, "dpo", outdir / "kept.jsonl", "--keep-duplicates") == [
            row,
            row,
        ]
        with_provenance = exported(database_url, "dpo", outdir / "prov.jsonl", "--provenance")
        assert len(with_provenance) == 1


class TestProvenance:
    def test_columns(self, api: TestClient, database_url: str, outdir: Path) -> None:
        """--provenance adds the ids, source, judge, confidence and (juries) disagreement."""
        tagged = compare(api, "tagged", LONG, SHORT, id="pair-17")
        unsure = compare(api, "unsure", LONG, SHORT, judge="sure:0.6")
        rows = exported(database_url, "dpo", outdir / "dpo.jsonl", "--provenance")
        by_prompt = {row["prompt"][0]["content"]: row for row in rows}
        assert by_prompt["tagged"] == {
            "prompt": user("tagged"),
            "chosen": assistant(LONG),
            "rejected": assistant(SHORT),
            "id": tagged["id"],
            "external_id": "pair-17",
            "source": "verdicts",
            "judge": "scripted:x",
            "confidence": 1.0,
            "disagreement": None,
        }
        assert by_prompt["unsure"]["id"] == unsure["id"]
        assert by_prompt["unsure"]["external_id"] is None
        assert (by_prompt["unsure"]["judge"], by_prompt["unsure"]["confidence"]) == (
            "sure:0.6",
            0.6,
        )
        plain = exported(database_url, "dpo", outdir / "plain.jsonl")
        assert all(set(row) == {"prompt", "chosen", "rejected"} for row in plain)


class TestFormats:
    @pytest.mark.parametrize("shape", ["conversational", "text"])
    def test_parquet_and_hf_hold_the_jsonl_rows(
        self, api: TestClient, database_url: str, outdir: Path, shape: str
    ) -> None:
        """A .parquet file and an hf folder load with `datasets` into the JSONL export's rows."""
        datasets = hf_datasets()
        compare(api, "q1", LONG, SHORT, id="one")
        compare(api, [{"role": "system", "content": "Terse."}, *user("q2")], SHORT, LONG)
        options = ("--shape", shape, "--provenance")
        rows = exported(database_url, "dpo", outdir / "dpo.jsonl", *options)
        parquet = outdir / "dpo.parquet"
        assert export(database_url, "dpo", parquet, *options).exit_code == 0
        loaded = datasets.load_dataset(
            "parquet", data_files=str(parquet), split="train", cache_dir=str(outdir / "cache")
        )
        assert loaded.to_list() == rows
        folder = outdir / "hf"
        result = export(database_url, "dpo", folder, "--format", "hf", *options)
        assert result.exit_code == 0, result.stderr
        assert "as hf" in result.stdout
        on_disk = datasets.load_from_disk(str(folder))
        assert list(on_disk) == ["train"]
        assert on_disk["train"].to_list() == rows
        assert not list(outdir.glob(".*partial*"))

    def test_hf_folder_keeps_the_splits(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """An hf export with a test split has both splits, holding every row once."""
        datasets = hf_datasets()
        for n in range(12):
            compare(api, f"q{n}", LONG, SHORT)
        folder = outdir / "hf"
        result = export(database_url, "kto", folder, "--format", "hf", "--test-size", "0.5")
        assert result.exit_code == 0, result.stderr
        on_disk = datasets.load_from_disk(str(folder))
        assert sorted(on_disk) == ["test", "train"]
        assert on_disk["train"].num_rows + on_disk["test"].num_rows == 24
        train_prompts = {row["prompt"][0]["content"] for row in on_disk["train"]}
        test_prompts = {row["prompt"][0]["content"] for row in on_disk["test"]}
        assert not train_prompts & test_prompts


class TestCard:
    @pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
    def test_header_points_at_the_files_and_body_has_the_numbers(
        self, api: TestClient, database_url: str, outdir: Path, script: Script, file_format: str
    ) -> None:
        """The YAML header's data_files load as the dataset; the body has counts and rates."""
        datasets = hf_datasets()
        for n in range(6):
            compare(api, f"q{n}", LONG, SHORT, judge="scripted:one" if n % 2 else "scripted:two")
        compare(api, "single", LONG, SHORT, judge="one-order")
        script.policy = always_first
        compare(api, "biased", LONG, SHORT, judge="scripted:one")
        out = outdir / "dataset"
        result = export(
            database_url,
            "dpo",
            out,
            "--format",
            file_format,
            "--test-size",
            "0.4",
            # By prompt, not by id: ids are random, and 7 rows split by their hash
            # leave the test split empty about 3% of the time. These prompts do not.
            "--split-by",
            "prompt",
            "--max-length-ratio",
            "10",
        )
        assert result.exit_code == 0, result.stderr
        header, body = card_header(out)
        assert header["tags"][:2] == ["referee", "dpo"]
        assert header["size_categories"] == ["n<1K"]
        [config] = header["configs"]
        files = {entry["split"]: entry["path"] for entry in config["data_files"]}
        assert files == {"train": f"train.{file_format}", "test": f"test.{file_format}"}
        assert sorted(p.name for p in out.iterdir()) == sorted(["README.md", *files.values()])
        loaded = datasets.load_dataset(str(out), cache_dir=str(outdir / "cache"))
        counts = {split: loaded[split].num_rows for split in loaded}
        assert sum(counts.values()) == 7
        for split, n in counts.items():
            assert f"| {split} | {n} |" in body
        assert "Rows by source: `verdicts` (7)" in body
        assert "Ties left out (no chosen response): 1" in body
        assert "Judges: `one-order` (1), `scripted:one` (4), `scripted:two` (3)" in body
        assert "Prompt templates and rubrics: `pairwise-v1` (8)" in body
        assert "Verdicts read: 8; position-consistency rate 85.7%" in body
        assert "tie rate 12.5%" in body
        assert "- max_length_ratio: 10.0" in body
        assert "- test split: 0.4 by prompt hash" in body

    def test_rates_count_single_order_verdicts_apart(
        self, api: TestClient, database_url: str, outdir: Path, script: Script
    ) -> None:
        """Consistency is a share of two-order verdicts; ties are a share of all verdicts read."""
        for n in range(3):
            compare(api, f"q{n}", LONG, SHORT)
        compare(api, "single", LONG, SHORT, judge="one-order")
        script.policy = always_first
        compare(api, "biased", LONG, SHORT)
        out = outdir / "dataset"
        assert export(database_url, "dpo", out).exit_code == 0
        _, body = card_header(out)
        assert "Judges: `one-order` (1), `scripted:x` (4)" in body
        assert "Verdicts read: 5; position-consistency rate 75.0%" in body
        assert "tie rate 20.0%" in body
        assert "| train | 4 |" in body
        assert "- none" in body


class TestKto:
    def test_feedback_keeps_the_users_label(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """Thumbs up is desirable, thumbs down undesirable, with the completion as sent."""
        ups = [{"prompt": "q", "completion": "Good answer.", "label": "👍"}]
        downs = [
            {
                "prompt": user("r"),
                "completion": {"role": "assistant", "content": "Bad."},
                "label": False,
            }
        ]
        assert api.post("/v1/feedback", json=ups + downs).json()["accepted"] == 2
        out = outdir / "kto.jsonl"
        result = export(database_url, "kto", out, "--provenance")
        assert result.exit_code == 0, result.stderr
        rows = sorted(read_jsonl(out), key=lambda row: row["label"])
        assert [{k: row[k] for k in ("prompt", "completion", "label")} for row in rows] == [
            {"prompt": user("r"), "completion": assistant("Bad."), "label": False},
            {"prompt": user("q"), "completion": assistant("Good answer."), "label": True},
        ]
        assert {row["source"] for row in rows} == {"feedback"}
        assert all(row["judge"] is None for row in rows)
        assert "desirable 1, undesirable 1" in result.stdout
        text = exported(database_url, "kto", outdir / "text.jsonl", "--shape", "text")
        assert sorted(text, key=lambda row: row["label"]) == [
            {"prompt": "r\n\n", "completion": "Bad.", "label": False},
            {"prompt": "q\n\n", "completion": "Good answer.", "label": True},
        ]

    def test_verdict_losers_only_from_confident_consistent_verdicts(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """Winners are desirable; a loser is undesirable only from a confident two-order verdict."""
        compare(api, "consistent", LONG + " (c)", SHORT + " (c)")
        compare(api, "single", LONG + " (s)", SHORT + " (s)", judge="one-order")
        compare(api, "unsure", LONG + " (u)", SHORT + " (u)", judge="sure:0.6")
        out = outdir / "dataset"
        result = export(database_url, "kto", out)
        assert result.exit_code == 0, result.stderr
        rows = read_jsonl(out / "train.jsonl")
        labels = sorted((row["completion"][0]["content"], row["label"]) for row in rows)
        assert labels == sorted(
            [
                (LONG + " (c)", True),
                (LONG + " (s)", True),
                (LONG + " (u)", True),
                (SHORT + " (c)", False),
            ]
        )
        assert "desirable 3, undesirable 1" in result.stdout
        _, body = card_header(out)
        assert (
            "Pairwise losers left out (no failing rating, verdict not confident enough): 2" in body
        )
        assert "Desirable: 3; undesirable: 1" in body
        assert "- loser_min_confidence: 0.75" in body

    def test_loser_min_confidence(self, api: TestClient, database_url: str, outdir: Path) -> None:
        """A loser is kept when the confidence reaches --loser-min-confidence, and not below it."""
        compare(api, "q", LONG, SHORT, judge="sure:0.8")

        def labels(*args: str) -> list[tuple[str, bool]]:
            rows = exported(database_url, "kto", outdir / "kto.jsonl", "--overwrite", *args)
            return sorted((row["completion"][0]["content"], row["label"]) for row in rows)

        assert labels() == [(SHORT, False), (LONG, True)]
        assert labels("--loser-min-confidence", "0.8") == [(SHORT, False), (LONG, True)]
        assert labels("--loser-min-confidence", "0.9") == [(LONG, True)]
        assert labels("--source", "verdicts", "--loser-min-confidence", "0") == [
            (SHORT, False),
            (LONG, True),
        ]

    def test_a_losers_failing_rating_makes_it_undesirable(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """A single-order verdict's loser is kept as undesirable when its own rating failed."""
        compare(api, user("q"), LONG, SHORT, judge="one-order")
        compare(api, "other", LONG + " (2)", SHORT + " (2)", judge="one-order")
        # The scripted rater scores by length: the short loser fails the threshold of 7.
        rating = {"prompt": "q", "response": SHORT, "judge": "scripted:x"}
        assert api.post("/v1/ratings", json=rating).json()["passed"] is False
        rows = exported(database_url, "kto", outdir / "kto.jsonl", "--source", "verdicts")
        labels = sorted((row["completion"][0]["content"], row["label"]) for row in rows)
        assert labels == sorted([(LONG, True), (LONG + " (2)", True), (SHORT, False)])
        # With ratings as a source too, the rating's own row comes first and the
        # verdict's identical one is dropped as a duplicate.
        everything = exported(database_url, "kto", outdir / "all.jsonl", "--provenance")
        assert len(everything) == 3
        assert {row["source"] for row in everything} == {"ratings", "verdicts"}

    def test_printed_weights_balance_the_classes(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """The suggested weights keep λ_D·n_D/(λ_U·n_U) within [1, 4/3] either way round."""
        ups = [{"prompt": f"q{n}", "completion": "Yes.", "label": "up"} for n in range(7)]
        api.post("/v1/feedback", json=ups)
        api.post("/v1/feedback", json=[{"prompt": "q", "completion": "No.", "label": "down"}])
        result = export(database_url, "kto", outdir / "more-up.jsonl")
        n_d, n_u, w_d, w_u = printed_weights(result.stdout)
        assert (n_d, n_u) == (7, 1)
        assert w_d == 1.0
        assert in_kto_range(n_d, n_u, (w_d, w_u))
        downs = [{"prompt": f"r{n}", "completion": "No.", "label": "down"} for n in range(12)]
        api.post("/v1/feedback", json=downs)
        result = export(database_url, "kto", outdir / "more-down.jsonl")
        n_d, n_u, w_d, w_u = printed_weights(result.stdout)
        assert (n_d, n_u) == (7, 13)
        assert w_u == 1.0
        assert in_kto_range(n_d, n_u, (w_d, w_u))

    def test_one_sided_data_warns(self, api: TestClient, database_url: str, outdir: Path) -> None:
        """Only desirable rows: weights (1, 1) and a warning that KTO needs both kinds."""
        api.post("/v1/feedback", json={"prompt": "q", "completion": "Yes.", "label": "up"})
        result = export(database_url, "kto", outdir / "kto.jsonl")
        assert result.exit_code == 0
        assert printed_weights(result.stdout) == (1, 0, 1.0, 1.0)
        assert "warning: KTO needs both desirable and undesirable rows" in result.stderr


class TestKtoWeights:
    def test_nothing_to_balance(self) -> None:
        """No rows on one side, or counts already within range, give (1, 1)."""
        assert kto_weights(0, 0) == (1.0, 1.0)
        assert kto_weights(5, 0) == (1.0, 1.0)
        assert kto_weights(0, 5) == (1.0, 1.0)
        assert kto_weights(10, 10) == (1.0, 1.0)
        assert kto_weights(4, 3) == (1.0, 1.0)

    def test_one_weight_stays_one(self) -> None:
        """The minority side is weighted up; the majority keeps weight 1."""
        assert kto_weights(1, 3) == (3.0, 1.0)
        assert kto_weights(8, 2) == (1.0, 3.0)
        assert kto_weights(3, 2) == (1.0, 1.125)

    def test_rounding_never_lands_on_the_wrong_side_of_a_bound(self) -> None:
        """Counts whose four-place weight missed the range by a float ulp get one step more."""
        assert 8.2 * 15 / 123 < 1
        assert kto_weights(15, 123) == (8.2001, 1.0)
        assert 41 / (2.05 * 15) > 4 / 3
        assert kto_weights(41, 15) == (1.0, 2.0501)

    def test_every_small_count_is_in_range(self) -> None:
        """For all counts up to 150 on each side the ratio lands in [1, 4/3]."""
        outside = [
            (d, u)
            for d in range(1, 151)
            for u in range(1, 151)
            if not in_kto_range(d, u, kto_weights(d, u))
        ]
        assert outside == []

    @given(st.integers(1, 10**7), st.integers(1, 10**7))
    def test_any_counts_are_in_range(self, desirable: int, undesirable: int) -> None:
        """For any counts the ratio lands in [1, 4/3], in floats and in exact decimals."""
        weights = kto_weights(desirable, undesirable)
        assert in_kto_range(desirable, undesirable, weights)
        exact = Fraction(str(weights[0])) * desirable / (Fraction(str(weights[1])) * undesirable)
        assert 1 <= exact <= Fraction(4, 3)
        assert 1.0 in weights


class TestSft:
    def test_preferred_answers_as_messages(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """Verdict winners and thumbs-up become conversations ending in the preferred answer."""
        compare(api, [{"role": "system", "content": "Terse."}, *user("q1")], SHORT, LONG)
        compare(api, "even", "Same.", "Also.")
        api.post(
            "/v1/feedback",
            json=[
                {"prompt": "q2", "completion": "Liked.", "label": "up"},
                {"prompt": "q3", "completion": "Disliked.", "label": "down"},
            ],
        )
        rows = exported(database_url, "sft", outdir / "sft.jsonl")
        assert sorted(rows, key=lambda row: row["messages"][-2]["content"]) == [
            {
                "messages": [
                    {"role": "system", "content": "Terse."},
                    {"role": "user", "content": "q1"},
                    {"role": "assistant", "content": LONG},
                ]
            },
            {
                "messages": [
                    {"role": "user", "content": "q2"},
                    {"role": "assistant", "content": "Liked."},
                ]
            },
        ]
        text = exported(database_url, "sft", outdir / "text.jsonl", "--shape", "text")
        assert sorted(row["text"] for row in text) == [
            "system: Terse.\n\nuser: q1\n\nassistant: " + LONG,
            "user: q2\n\nassistant: Liked.",
        ]
        only_verdicts = exported(database_url, "sft", outdir / "v.jsonl", "--source", "verdicts")
        assert [row["messages"][-1]["content"] for row in only_verdicts] == [LONG]


class TestHttpExport:
    def test_streams_the_rows_the_cli_writes(
        self, api: TestClient, database_url: str, outdir: Path
    ) -> None:
        """GET /v1/exports/dpo is the CLI's JSONL, byte for byte, filters included."""
        compare(api, "by-one", LONG, SHORT, judge="scripted:one")
        compare(api, "by-two", SHORT, LONG, judge="scripted:two")
        response = api.get("/v1/exports/dpo")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        out = outdir / "dpo.jsonl"
        assert export(database_url, "dpo", out).exit_code == 0
        assert response.content == out.read_bytes()
        filtered = api.get("/v1/exports/dpo", params={"judge": "scripted:two", "shape": "text"})
        cli_filtered = exported(
            database_url,
            "dpo",
            outdir / "two.jsonl",
            "--judge",
            "scripted:two",
            "--shape",
            "text",
        )
        assert [json.loads(line) for line in filtered.text.splitlines()] == cli_filtered
        assert cli_filtered == [{"prompt": "by-two\n\n", "chosen": LONG, "rejected": SHORT}]

    def test_kto_with_feedback(self, api: TestClient, database_url: str, outdir: Path) -> None:
        """KTO over HTTP holds feedback and verdict rows as the CLI does."""
        compare(api, "q", LONG, SHORT)
        api.post("/v1/feedback", json={"prompt": "r", "completion": "Nice.", "label": "up"})
        response = api.get("/v1/exports/kto", params={"provenance": "true"})
        rows = [json.loads(line) for line in response.text.splitlines()]
        assert rows == exported(database_url, "kto", outdir / "kto.jsonl", "--provenance")
        assert sorted(row["source"] for row in rows) == ["feedback", "verdicts", "verdicts"]

    def test_empty_is_404(self, api: TestClient) -> None:
        """No matching rows is 404 empty_export; allow_empty gives an empty 200."""
        response = api.get("/v1/exports/dpo")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "empty_export"
        allowed = api.get("/v1/exports/dpo", params={"allow_empty": "true"})
        assert allowed.status_code == 200
        assert allowed.content == b""

    def test_bad_filters_are_422(self, api: TestClient) -> None:
        """An unknown judge or batch, or an out-of-range value, is a 422 naming it."""
        compare(api, "q", LONG, SHORT)
        unknown = api.get("/v1/exports/dpo", params={"judge": "nosuch:model"})
        assert unknown.status_code == 422
        assert unknown.json()["error"]["details"] == {"field": "judge"}
        assert "'nosuch:model'" in unknown.json()["error"]["message"]
        batch = api.get("/v1/exports/dpo", params={"batch": "nightly"})
        assert batch.status_code == 422
        assert "'nightly'" in batch.json()["error"]["message"]
        assert api.get("/v1/exports/dpo", params={"min_confidence": 2}).status_code == 422
        assert api.get("/v1/exports/ppo").status_code == 422
        naive = api.get("/v1/exports/dpo", params={"since": "2026-11-27T00:00:00"})
        assert naive.status_code == 422
        assert "time zone" in naive.json()["error"]["message"]
