"""Production feedback: POST /v1/feedback and `referee feedback import`, apart from verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from app.cli import cli
from app.labeling.feedback import ACCEPTED_LABELS
from app.settings import Settings
from app.store.db import sync_url
from app.store.models import Comparison, Feedback
from judges import JudgeRegistry
from tests.conftest import pair_body, serve_app

SPELLINGS: list[tuple[object, bool]] = [
    (True, True),
    (False, False),
    ("up", True),
    ("down", False),
    ("thumbs_up", True),
    ("thumbs_down", False),
    ("👍", True),
    ("👎", False),
    (" Thumbs_Up ", True),
]


JSONL_HEADERS = {"content-type": "application/x-ndjson"}


def feedback(n: int = 1, **overrides: object) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": f"How long do I boil egg {n}?",
        "completion": f"About {n + 6} minutes for a firm yolk.",
        "label": "up",
    }
    body.update(overrides)
    return body


def stored(database_url: str) -> list[tuple[str, bool]]:
    """(completion text, label) of every stored feedback row, sorted."""
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        rows = connection.execute(select(Feedback.completion, Feedback.label)).all()
    engine.dispose()
    return sorted((json.dumps(completion), label) for completion, label in rows)


def count(database_url: str, model: type) -> int:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        n = len(connection.execute(select(model.id)).all())
    engine.dispose()
    return n


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def post_jsonl(api: TestClient, body: str) -> Any:
    return api.post("/v1/feedback", content=body.encode(), headers=JSONL_HEADERS)


def import_file(database_url: str, path: Path | str) -> Result:
    return CliRunner().invoke(
        cli, ["feedback", "import", str(path)], env={"REFEREE_DATABASE_URL": database_url}
    )


class TestSingleRecord:
    def test_new_then_duplicate(self, api: TestClient, database_url: str) -> None:
        """201 for a new record; the same body again is 200 with duplicate true and the same id."""
        body = feedback(source="chat-web", user_id="u1", metadata={"model": "m-7"})
        first = api.post("/v1/feedback", json=body)
        assert first.status_code == 201, first.text
        created = first.json()
        assert created["label"] is True
        assert created["duplicate"] is False
        assert created["prompt"] == body["prompt"]
        assert created["completion"] == body["completion"]
        assert created["source"] == "chat-web"
        assert created["metadata"] == {"model": "m-7"}
        assert created["idempotency_key"].startswith("body:")
        again = api.post("/v1/feedback", json=body)
        assert again.status_code == 200
        assert again.json()["duplicate"] is True
        assert again.json()["id"] == created["id"]
        assert count(database_url, Feedback) == 1

    def test_client_key_reused_for_another_body_is_409(
        self, api: TestClient, database_url: str
    ) -> None:
        """A key seen with another body is refused and nothing is overwritten."""
        first = api.post("/v1/feedback", json=feedback(idempotency_key="evt-1", label="up"))
        assert first.status_code == 201
        clash = api.post("/v1/feedback", json=feedback(idempotency_key="evt-1", label="down"))
        assert clash.status_code == 409
        error = clash.json()["error"]
        assert error["code"] == "idempotency_key_reused"
        assert error["details"]["idempotency_key"] == "evt-1"
        assert "evt-1" in error["message"]
        retry = api.post("/v1/feedback", json=feedback(idempotency_key="evt-1", label="up"))
        assert retry.status_code == 200
        assert retry.json()["duplicate"] is True
        assert stored(database_url) == [(json.dumps(feedback()["completion"]), True)]

    def test_key_defaults_to_the_body(self, api: TestClient, database_url: str) -> None:
        """Without a key, a body that differs in any field is another record."""
        api.post("/v1/feedback", json=feedback(label="up"))
        other = api.post("/v1/feedback", json=feedback(label="down"))
        assert other.status_code == 201
        assert count(database_url, Feedback) == 2

    def test_label_spellings(self, api: TestClient) -> None:
        """Booleans, up/down, thumbs_up/thumbs_down and the emoji all store the right label."""
        for n, (spelling, expected) in enumerate(SPELLINGS):
            response = api.post("/v1/feedback", json=feedback(n, label=spelling))
            assert response.status_code == 201, (spelling, response.text)
            assert response.json()["label"] is expected, spelling

    def test_unknown_label_names_the_field_and_the_accepted_values(self, api: TestClient) -> None:
        """A label outside the list, or a number, is a 422 on 'label' listing what is accepted."""
        for label in ("meh", 1, None, "yes"):
            response = api.post("/v1/feedback", json=feedback(label=label))
            assert response.status_code == 422, label
            [error] = response.json()["error"]["details"]["errors"]
            assert error["field"] == "body.label"
            if label is not None:
                assert ACCEPTED_LABELS in error["message"]
        response = api.post("/v1/feedback", json=feedback(label="meh"))
        message = response.json()["error"]["details"]["errors"][0]["message"]
        for accepted in ("true", "false", '"up"', '"down"', '"thumbs_up"', '"👍"', '"👎"'):
            assert accepted in message

    def test_occurred_at_needs_a_time_zone(self, api: TestClient, database_url: str) -> None:
        """A naive occurred_at is refused; one with a zone is stored in UTC."""
        naive = api.post("/v1/feedback", json=feedback(occurred_at="2026-11-27T10:00:00"))
        assert naive.status_code == 422
        [error] = naive.json()["error"]["details"]["errors"]
        assert error["field"] == "body.occurred_at"
        assert "time zone" in error["message"]
        aware = api.post("/v1/feedback", json=feedback(occurred_at="2026-11-27T10:00:00+01:00"))
        assert aware.status_code == 201
        assert aware.json()["occurred_at"].startswith("2026-11-27T09:00:00")
        assert count(database_url, Feedback) == 1

    def test_missing_and_unknown_fields_are_named(self, api: TestClient) -> None:
        """A missing completion or an unexpected field is a 422 naming it."""
        body = feedback()
        del body["completion"]
        missing = api.post("/v1/feedback", json=body)
        assert missing.status_code == 422
        assert [e["field"] for e in missing.json()["error"]["details"]["errors"]] == [
            "body.completion"
        ]
        extra = api.post("/v1/feedback", json=feedback(rating=5))
        assert extra.status_code == 422
        assert [e["field"] for e in extra.json()["error"]["details"]["errors"]] == ["body.rating"]

    def test_message_shapes_are_kept(self, api: TestClient) -> None:
        """A conversation prompt and an assistant-message completion come back as sent."""
        prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        completion = {"role": "assistant", "content": "Hello."}
        response = api.post("/v1/feedback", json=feedback(prompt=prompt, completion=completion))
        assert response.status_code == 201, response.text
        assert response.json()["prompt"] == prompt
        assert response.json()["completion"] == completion
        user_answer = {"role": "user", "content": "Hello."}
        assert api.post("/v1/feedback", json=feedback(completion=user_answer)).status_code == 422


class TestBulk:
    def test_array_with_a_bad_record(self, api: TestClient, database_url: str) -> None:
        """The bad record is listed by position and field; the good ones are stored and counted."""
        records = [feedback(1), feedback(2, label="sideways"), feedback(3, label="down")]
        response = api.post("/v1/feedback", json=records)
        assert response.status_code == 200, response.text
        summary = response.json()
        assert summary["accepted"] == 2
        assert summary["duplicates"] == 0
        [rejected] = summary["rejected"]
        assert rejected["line"] == 2
        assert rejected["reason"].startswith("field 'label': ")
        assert "'sideways'" in rejected["reason"]
        assert stored(database_url) == sorted(
            [
                (json.dumps(feedback(1)["completion"]), True),
                (json.dumps(feedback(3)["completion"]), False),
            ]
        )

    def test_jsonl_upload_then_the_same_upload_again(
        self, api: TestClient, database_url: str
    ) -> None:
        """Re-uploading a JSONL file stores nothing more and counts every line as a duplicate."""
        body = jsonl([feedback(n, label=n % 2 == 0) for n in range(5)])
        first = post_jsonl(api, body)
        assert first.status_code == 200, first.text
        assert first.json() == {"accepted": 5, "duplicates": 0, "rejected": []}
        again = post_jsonl(api, body)
        assert again.json() == {"accepted": 0, "duplicates": 5, "rejected": []}
        assert count(database_url, Feedback) == 5

    def test_jsonl_lines_are_numbered(self, api: TestClient, database_url: str) -> None:
        """Blank lines keep the numbering; bad JSON and a missing field name their line."""
        body = "\n".join(
            [
                json.dumps(feedback(1)),
                "",
                '{"prompt": "q", "completion": ',
                json.dumps({"prompt": "q", "label": "up"}),
                json.dumps(feedback(2)),
            ]
        )
        summary = post_jsonl(api, body + "\n").json()
        assert summary["accepted"] == 2
        assert [r["line"] for r in summary["rejected"]] == [3, 4]
        assert summary["rejected"][0]["reason"].startswith("invalid JSON")
        assert summary["rejected"][1]["reason"] == "field 'completion': Field required"

    def test_one_line_of_jsonl_is_a_bulk_upload(self, api: TestClient) -> None:
        """With the JSONL content type a single object gets the summary, not the record."""
        response = post_jsonl(api, json.dumps(feedback()) + "\n")
        assert response.status_code == 200
        assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}

    def test_repeats_and_key_clashes_inside_one_upload(
        self, api: TestClient, database_url: str
    ) -> None:
        """A repeated line is a duplicate; a key reused for another body is rejected."""
        records = [
            feedback(1, idempotency_key="k1"),
            feedback(1, idempotency_key="k1"),
            feedback(2, idempotency_key="k1"),
            feedback(3),
        ]
        summary = api.post("/v1/feedback", json=records).json()
        assert summary["accepted"] == 2
        assert summary["duplicates"] == 1
        assert summary["rejected"] == [
            {"line": 3, "reason": "idempotency key 'k1' was already used for a different body"}
        ]
        assert count(database_url, Feedback) == 2

    def test_everything_rejected_is_422(self, api: TestClient, database_url: str) -> None:
        """When no record could be stored it is a 422 error listing the rejected lines."""
        response = api.post("/v1/feedback", json=[feedback(label="?"), {"prompt": "q"}, 7])
        assert response.status_code == 422
        details = response.json()["error"]["details"]
        assert [r["line"] for r in details["rejected"]] == [1, 2, 3]
        assert details["rejected"][2]["reason"].startswith("expected a JSON object")
        assert details["rejected_count"] == 3
        assert count(database_url, Feedback) == 0

    def test_single_post_and_bulk_share_keys(self, api: TestClient) -> None:
        """A record posted alone is a duplicate when it arrives again in a batch."""
        api.post("/v1/feedback", json=feedback(1))
        summary = api.post("/v1/feedback", json=[feedback(1), feedback(2)]).json()
        assert (summary["accepted"], summary["duplicates"]) == (1, 1)


class TestUploadLimit:
    def test_a_body_over_the_limit_is_413_and_stores_nothing(
        self, settings: Settings, registry: JudgeRegistry, database_url: str
    ) -> None:
        """Over REFEREE_MAX_UPLOAD_MB the upload is refused whole, by declared or streamed size."""
        records = [feedback(n, completion="x" * 2000) for n in range(600)]
        body = jsonl(records).encode()
        assert len(body) > 1024 * 1024
        limited = settings.model_copy(update={"max_upload_mb": 1})
        with serve_app(limited, registry) as client:
            declared = client.post("/v1/feedback", content=body, headers=JSONL_HEADERS)
            streamed = client.post(
                "/v1/feedback",
                content=iter([body[:700_000], body[700_000:]]),
                headers=JSONL_HEADERS,
            )
            under = client.post("/v1/feedback", content=jsonl(records[:5]), headers=JSONL_HEADERS)
        for response in (declared, streamed):
            assert response.status_code == 413
            assert response.json()["error"]["code"] == "body_too_large"
            assert "REFEREE_MAX_UPLOAD_MB" in response.json()["error"]["message"]
        assert under.json()["accepted"] == 5
        assert count(database_url, Feedback) == 5


class TestImportCommand:
    def test_bad_lines_exit_1_and_the_good_lines_are_stored(
        self, tmp_path: Path, database_url: str
    ) -> None:
        """Each bad line is reported with file and line; the rest are stored; the exit code is 1."""
        path = tmp_path / "thumbs.jsonl"
        path.write_text(
            "\n".join(
                [
                    json.dumps(feedback(1)),
                    json.dumps({"prompt": "q", "label": "up"}),
                    json.dumps(feedback(2, label="👎")),
                    "{not json",
                    json.dumps(feedback(3, label="maybe")),
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        result = import_file(database_url, path)
        assert result.exit_code == 1
        assert isinstance(result.exception, SystemExit), result.exception
        assert f"{path}:2: field 'completion': Field required" in result.stderr
        assert f"{path}:4: invalid JSON" in result.stderr
        assert f"{path}:5: field 'label': " in result.stderr
        assert "2 stored, 0 already stored, 3 rejected" in result.stdout
        assert stored(database_url) == sorted(
            [
                (json.dumps(feedback(1)["completion"]), True),
                (json.dumps(feedback(2)["completion"]), False),
            ]
        )

    def test_importing_again_adds_nothing(self, tmp_path: Path, database_url: str) -> None:
        """A second import of the same file stores nothing and exits 0."""
        path = tmp_path / "thumbs.jsonl"
        path.write_text(jsonl([feedback(n) for n in range(3)]), encoding="utf-8")
        first = import_file(database_url, path)
        assert first.exit_code == 0, first.stderr
        assert "3 stored, 0 already stored, 0 rejected" in first.stdout
        again = import_file(database_url, path)
        assert again.exit_code == 0
        assert "0 stored, 3 already stored, 0 rejected" in again.stdout
        assert count(database_url, Feedback) == 3

    def test_import_and_api_share_keys(
        self, tmp_path: Path, database_url: str, api: TestClient
    ) -> None:
        """A record imported from a file is a duplicate when it is posted again."""
        path = tmp_path / "thumbs.jsonl"
        path.write_text(jsonl([feedback(1)]), encoding="utf-8")
        assert import_file(database_url, path).exit_code == 0
        response = api.post("/v1/feedback", json=feedback(1))
        assert response.status_code == 200
        assert response.json()["duplicate"] is True

    def test_missing_file_is_one_clean_line(self, tmp_path: Path, database_url: str) -> None:
        """An unreadable file is exit 2 with the path, not a traceback."""
        result = import_file(database_url, tmp_path / "nope.jsonl")
        assert result.exit_code == 2
        assert isinstance(result.exception, SystemExit)
        assert f"cannot read {tmp_path / 'nope.jsonl'}" in result.stderr


class TestKeptApart:
    def test_feedback_never_shows_up_as_a_comparison(
        self, api: TestClient, database_url: str
    ) -> None:
        """Thumbs on the same prompt add no comparison and are not listed with machine labels."""
        labeled = api.post("/v1/comparisons", json=pair_body(judge="scripted:x"))
        assert labeled.status_code == 201, labeled.text
        same_prompt = feedback(prompt=pair_body()["prompt"], completion="Paris.")
        assert api.post("/v1/feedback", json=same_prompt).status_code == 201
        assert api.post("/v1/feedback", json=[feedback(1), feedback(2)]).status_code == 200
        listed = api.get("/v1/comparisons").json()["items"]
        assert [item["id"] for item in listed] == [labeled.json()["id"]]
        assert count(database_url, Comparison) == 1
        assert count(database_url, Feedback) == 3
