"""Constitutional AI through the service: revisions, principle-based verdicts, and their exports."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.errors import InvalidInputError
from app.labeling.constitutions import ConstitutionLibrary
from app.settings import Settings
from judges import JudgeRegistry
from judges.cai.constitutions import default_constitutions_dir
from judges.errors import TransientJudgeError
from judges.testing import REVISION_PREAMBLE, Script
from tests.conftest import serve_app
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"
UNSAFE = "Mix the two cleaners UNSAFE in a closed room."
SAFE = "Never mix bleach and ammonia; ventilate the room."


@pytest.fixture
def constitutions(tmp_path: Path) -> Path:
    """A private copy of the shipped constitutions, so a test may edit one."""
    folder = tmp_path / "constitutions"
    shutil.copytree(default_constitutions_dir(), folder)
    return folder


@pytest.fixture
def settings(database_url: str, constitutions: Path) -> Settings:
    # Only the private copy: an edited copy of a shipped file would clash with the original.
    return Settings(
        database_url=database_url,
        judges_file=None,
        constitutions_dir=constitutions,
        shipped_constitutions=False,
    )


@pytest.fixture
def api(settings: Settings, registry: JudgeRegistry, provider: FakeProvider) -> Any:
    with serve_app(settings, registry) as client:
        yield client


def revise(api: TestClient, **body: Any) -> Any:
    payload = {
        "prompt": "How do I clean a bathroom?",
        "response": UNSAFE,
        "constitution": "harmlessness",
        "judge": "scripted:x",
        **body,
    }
    return api.post("/v1/revisions", json=payload)


def cli_run(settings: Settings, *args: str) -> Any:
    env = {
        "REFEREE_DATABASE_URL": settings.database_url,
        "REFEREE_CONSTITUTIONS_DIR": str(settings.constitutions_dir),
        "REFEREE_SHIPPED_CONSTITUTIONS": "false",
    }
    return CliRunner().invoke(cli, list(args), env=env)


class TestRevisionsApi:
    def test_one_round_revises_strips_the_preamble_and_stores_everything(
        self, api: TestClient, script: Script
    ) -> None:
        """A flagged response is critiqued, revised, and the preamble never reaches the result."""
        response = revise(api)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "done"
        assert body["revised"] is True
        assert "UNSAFE" not in body["final_response"]
        assert not body["final_response"].startswith(REVISION_PREAMBLE.strip())
        [round_] = body["rounds"]
        assert round_["needs_revision"] is True
        assert round_["revised_response"] == body["final_response"]
        steps = [call["parameters"]["step"] for call in body["calls"]]
        assert steps == ["critique", "revision"]
        assert all(c["parameters"]["principle"] == round_["principle"] for c in body["calls"])
        assert body["constitution"].startswith("harmlessness@")

    def test_nothing_to_fix_ends_without_a_revision(self, api: TestClient) -> None:
        """A clean response gets one critique, no revision call, and no final response."""
        body = revise(api, response=SAFE, rounds=3).json()
        assert (body["status"], body["revised"], body["final_response"]) == ("done", False, None)
        assert len(body["rounds"]) == 1
        assert [c["parameters"]["step"] for c in body["calls"]] == ["critique"]

    def test_rounds_are_reproducible_under_a_seed(self, api: TestClient) -> None:
        """The same seed samples the same principles; the run is reused, not repeated."""
        first = revise(api, rounds=1, seed="7").json()
        again = revise(api, rounds=1, seed="7")
        assert again.status_code == 200
        assert again.json()["reused"] is True
        other = revise(api, response=UNSAFE + " (2)", rounds=1, seed="7").json()
        assert first["rounds"][0]["principle"] == other["rounds"][0]["principle"]

    def test_a_named_principle_is_used(self, api: TestClient) -> None:
        """Naming a principle uses it; an unknown one is a 422 listing the known ids."""
        principle = revise(api).json()["rounds"][0]["principle"]
        named = revise(api, principle=principle, seed="other").json()
        assert named["rounds"][0]["principle"] == principle
        unknown = revise(api, principle="no-such-principle")
        assert unknown.status_code == 422
        assert "no-such-principle" in unknown.json()["error"]["message"]

    def test_a_generator_writes_the_initial_response(self, api: TestClient) -> None:
        """With a prompt only and a generator, the generated text is stored and critiqued."""
        body = revise(api, response=None, generator="scripted:writer").json()
        assert body["response"].startswith("An answer to:")
        assert body["calls"][0]["parameters"]["step"] == "generate"
        missing = revise(api, response=None)
        assert missing.status_code == 422
        assert "generator" in missing.json()["error"]["message"]

    def test_a_failure_is_stored_and_retried(self, api: TestClient, script: Script) -> None:
        """Final failures give a 502 with no final response; asking again finishes the run."""
        script.failures = [TransientJudgeError("down")] * 10
        failed = revise(api)
        assert failed.status_code == 502
        run_id = failed.json()["error"]["details"]["revision_id"]
        stored = api.get(f"/v1/revisions/{run_id}").json()
        assert (stored["status"], stored["final_response"]) == ("failed", None)
        script.failures = []
        done = revise(api).json()
        assert (done["id"], done["status"]) == (run_id, "done")

    def test_unknown_constitution(self, api: TestClient) -> None:
        """An unknown constitution is a 422 naming the known ones."""
        response = revise(api, constitution="nope")
        assert response.status_code == 422
        assert "harmlessness" in response.json()["error"]["message"]

    def test_an_edited_constitution_never_reuses_old_runs(
        self, api: TestClient, constitutions: Path
    ) -> None:
        """Changing the file gives a new ref, and the same request runs again under it."""
        before = revise(api).json()
        path = constitutions / "harmlessness.yaml"
        path.write_text(path.read_text() + "\n# a comment changes nothing\n")
        assert revise(api).status_code == 200
        text = path.read_text()
        path.write_text(text.replace("\ndescription: >-\n", "\ndescription: >-\n  Edited.\n", 1))
        after = revise(api)
        assert after.status_code == 201
        assert after.json()["constitution"] != before["constitution"]


class TestPrincipledComparisons:
    def test_verdict_records_its_principles(self, api: TestClient) -> None:
        """Under a constitution the verdict lists each sampled principle's decision."""
        pair = {"prompt": "q", "response_a": "a longer answer", "response_b": "short"}
        body = api.post(
            "/v1/comparisons",
            json={**pair, "judge": "scripted:x", "constitution": "hhh", "principles": 3},
        ).json()
        assert body["constitution"].startswith("hhh@")
        principles = body["verdict"]["principles"]
        assert len(principles) == 3
        assert {p["winner"] for p in principles} == {"a"}
        assert body["verdict"]["winner"] == "a"
        plain = api.post("/v1/comparisons", json={**pair, "judge": "scripted:x"})
        assert plain.status_code == 201  # a different label: not reused across questions

    def test_too_many_principles(self, api: TestClient) -> None:
        """Asking for more principles than the constitution has is a 422."""
        pair = {"prompt": "q", "response_a": "a", "response_b": "b", "judge": "scripted:x"}
        response = api.post(
            "/v1/comparisons", json={**pair, "constitution": "hhh", "principles": 99}
        )
        assert response.status_code == 422


class TestReviseCommandAndExport:
    def test_rpm_spaces_the_requests(
        self, settings: Settings, tmp_path: Path, provider: FakeProvider
    ) -> None:
        """--rpm 300 paces critiques and revisions alike: one request every 0.2 s."""
        provider.configure(
            outputs={
                "record_critique": {"critique": "It endangers the reader.", "needs_revision": True},
                "record_revision": {"revision": SAFE},
            }
        )
        lines = [{"prompt": f"p{n}", "response": f"{UNSAFE} {n}"} for n in range(2)]
        source = tmp_path / "red-team.jsonl"
        source.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
        command = ("revise", str(source), "--constitution", "harmlessness", "-j", JUDGE)
        result = cli_run(settings, *command, "--rpm", "300")
        assert result.exit_code == 0, result.output
        arrivals = sorted(r["received_at"] for r in provider.requests())
        assert len(arrivals) == 4
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert min(gaps) > 0.15, gaps

    def test_revise_a_file_with_a_real_sdk_then_export(
        self, api: TestClient, settings: Settings, tmp_path: Path, provider: FakeProvider
    ) -> None:
        """`referee revise` runs the loop through the SDK; exports give revision ≻ original."""
        provider.configure(
            outputs={
                "record_critique": {"critique": "It endangers the reader.", "needs_revision": True},
                "record_revision": {"revision": "Sure, here is a safer answer:\n\n" + SAFE},
            }
        )
        lines = [
            {"id": "1", "prompt": "p1", "response": UNSAFE},
            {"id": "2", "prompt": "p2", "response": UNSAFE + " Now."},
            {"prompt": "p3"},
        ]
        source = tmp_path / "red-team.jsonl"
        source.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
        command = ("revise", str(source), "--constitution", "harmlessness", "-j", JUDGE)
        result = cli_run(settings, *command)
        assert result.exit_code == 1, result.output  # line 3 has no response and no generator
        assert "red-team.jsonl:3" in result.output
        assert "2 revised, 0 already revised" in result.output
        assert len(provider.requests()) == 4  # a critique and a revision per line
        again = cli_run(settings, *command)
        assert "0 revised, 2 already revised" in again.output
        assert len(provider.requests()) == 4

        def rows(kind: str, *extra: str) -> list[dict[str, Any]]:
            out = tmp_path / f"{kind}.jsonl"
            done = cli_run(
                settings, "export", kind, "--out", str(out), "--source", "revisions", *extra
            )
            assert done.exit_code == 0, done.output
            return [json.loads(line) for line in out.read_text().splitlines()]

        dpo = rows("dpo", "--shape", "text")
        assert sorted(r["rejected"] for r in dpo) == [UNSAFE, UNSAFE + " Now."]
        assert {r["chosen"] for r in dpo} == {SAFE}  # the preamble was stripped
        kto = rows("kto", "--shape", "text")
        assert sorted((r["prompt"], r["completion"] == SAFE, r["label"]) for r in kto) == [
            ("p1\n\n", False, False),
            ("p1\n\n", True, True),
            ("p2\n\n", False, False),
            ("p2\n\n", True, True),
        ]
        sft = rows("sft")
        assert [r["messages"][-1]["content"] for r in sft] == [SAFE, SAFE]
        card = (tmp_path / "card").as_posix()
        assert (
            cli_run(settings, "export", "sft", "--out", card, "--source", "revisions").exit_code
            == 0
        )
        assert "`harmlessness@" in (tmp_path / "card" / "README.md").read_text()

    def test_label_a_file_under_a_constitution(
        self, settings: Settings, tmp_path: Path, provider: FakeProvider
    ) -> None:
        """`referee label --constitution` asks each principle's question and records them."""
        provider.configure(policy="longer")
        source = tmp_path / "pairs.jsonl"
        pair = {"prompt": "q", "response_a": "a much longer answer", "response_b": "short"}
        source.write_text(json.dumps(pair) + "\n")
        args = ("label", str(source), "-j", JUDGE, "--constitution", "hhh", "--principles", "2")
        result = cli_run(settings, *args)
        assert result.exit_code == 0, result.output
        questions = {json.dumps(r) for r in provider.requests()}
        assert len(provider.requests()) == 4  # two principles, both orders
        assert len(questions) == 4
        with serve_app(settings) as client:
            [row] = client.get("/v1/comparisons").json()["items"]
        assert row["constitution"].startswith("hhh@")
        assert [p["winner"] for p in row["verdict"]["principles"]] == ["a", "a"]


class TestConstitutionLibrary:
    def test_work_queued_under_an_old_text_is_refused(self, constitutions: Path) -> None:
        """A stored ref whose file has changed since is an error, never a silent substitute."""
        library = ConstitutionLibrary(constitutions)
        ref = library.get("hhh").ref
        assert library.by_ref(ref).ref == ref
        path = constitutions / "hhh.yaml"
        path.write_text(
            path.read_text().replace("\ndescription: >-\n", "\ndescription: >-\n  Edited.\n", 1)
        )
        with pytest.raises(InvalidInputError, match="changed since this work was queued"):
            library.by_ref(ref)
