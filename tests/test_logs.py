"""Structured logs: `referee serve` writes JSON lines, one canonical line per request and batch run.

The server runs as a subprocess with its output piped (not a terminal), as
in a container; the texts judged and the API key are sentinels that must
appear in no line it writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from app.labeling.admin import create_key
from app.observability import logs
from app.settings import Settings
from app.store import migrate
from app.store.db import sync_url
from app.store.models import JudgeCall
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"
PROMPT = "SENTINEL-PROMPT-7f3a Which city is the capital of France?"
RESPONSE_A = "SENTINEL-RESPONSE-A-91c2 Paris is the capital of France, on the Seine."
RESPONSE_B = "SENTINEL-RESPONSE-B-44d8 Lyon."
STARTED = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class Server:
    """A `referee serve` subprocess; every line of its stdout and stderr is kept."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._seen: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("stdout", self.process.stdout), ("stderr", self.process.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            self.lines[name].append(line)
            self._seen.put(line)

    def port(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._seen.get(timeout=0.5)
            except queue.Empty:
                assert self.process.poll() is None, self.lines
                continue
            if found := STARTED.search(line):
                return int(found.group(1))
        raise AssertionError(f"the server did not start: {self.lines}")

    def stop(self) -> list[str]:
        """Stop the server (SIGTERM, as a supervisor would) and return every line it wrote."""
        self.process.terminate()
        self.process.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=60)  # to the end of the output: spans are flushed at exit
            assert not reader.is_alive()
        return self.lines["stdout"] + self.lines["stderr"]


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'referee.db'}"
    migrate.upgrade(url)
    return url


def server_env(provider: FakeProvider, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        REFEREE_DATABASE_URL=database_url,
        REFEREE_AUTH="required",
        ANTHROPIC_BASE_URL=provider.anthropic_base_url,
        ANTHROPIC_API_KEY=os.environ["ANTHROPIC_API_KEY"],
        OPENAI_BASE_URL=provider.openai_base_url,
        OPENAI_API_KEY=os.environ["OPENAI_API_KEY"],
        **extra,
    )
    return env


@pytest.fixture
def served(
    provider: FakeProvider, database: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Server, httpx.Client, str]]:
    """The server (with ``request.param`` as extra environment), a client and its key."""
    _, key = asyncio.run(create_key(Settings(database_url=database), "log-tester", ["admin"]))
    extra: dict[str, str] = getattr(request, "param", {})
    server = Server(server_env(provider, database, **extra))
    try:
        port = server.port()
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            yield server, client, key
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=30)


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    """Every line as a JSON object; fails naming the first line that is not one."""
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        records.append(record)
    return records


def requests_logged(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == "http_request"]


def stored_trace_ids(database_url: str) -> set[str | None]:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            table = JudgeCall.__table__
            return set(connection.execute(select(table.c.trace_id)).scalars())
    finally:
        engine.dispose()


def pair() -> dict[str, str]:
    return {"prompt": PROMPT, "response_a": RESPONSE_A, "response_b": RESPONSE_B, "judge": JUDGE}


def wait_for_batch(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        if state["status"] in ("done", "failed", "cancelled"):
            return state
        time.sleep(0.2)
    raise AssertionError("the batch did not finish")


class TestServeLogs:
    def test_every_line_is_json_and_nothing_judged_or_secret_is_in_any(
        self, served: tuple[Server, httpx.Client, str], provider: FakeProvider
    ) -> None:
        """Start-up, access, canonical and error lines are JSON; no prompt, response or key."""
        server, client, key = served
        provider.configure(policy="longer")
        labeled = client.post("/v1/comparisons", json=pair())
        assert labeled.status_code == 201, labeled.text
        provider.configure(fail_next=["malformed", "malformed"])
        failed = client.post("/v1/comparisons", json={**pair(), "prompt": PROMPT + " again"})
        assert failed.status_code == 502
        invalid = client.post("/v1/comparisons", json={**pair(), "response_b": 7})
        assert invalid.status_code == 422  # the body echoes nothing into the logs
        anonymous = httpx.post(f"{client.base_url}/v1/comparisons", json=pair())
        assert anonymous.status_code == 401
        provider.configure(fail_next=[])
        submitted = client.post(
            f"/v1/batches?judge={JUDGE}",
            json=[{**pair(), "prompt": f"{PROMPT} #{n}"} for n in range(3)],
        )
        assert submitted.status_code == 202, submitted.text
        batch = wait_for_batch(client, submitted.json()["id"])

        lines = server.stop()
        records = parsed([line for line in lines if line.strip()])
        for line in lines:
            for secret in (PROMPT[:24], RESPONSE_A[:24], RESPONSE_B[:24], key, key[4:20]):
                assert secret not in line, line
        loggers = {r.get("logger") for r in records}
        assert {"uvicorn.error", "uvicorn.access"} <= loggers  # uvicorn's own lines, as JSON
        assert any("Uvicorn running on" in r["event"] for r in records)
        # The SDKs' own line per HTTP call ("HTTP Request: POST …") is not written.
        assert not [r for r in records if "HTTP Request" in r["event"]]

        by_status = {r["status"]: r for r in requests_logged(records) if r["method"] == "POST"}
        for status in (201, 502, 422, 401):
            logged = by_status[status]
            assert logged["route"] == "/v1/comparisons"
            assert re.fullmatch(r"[0-9a-f]{32}", logged["request_id"])
            assert isinstance(logged["duration_ms"], float)
            assert logged["level"] == (
                "info" if status < 400 else "warning" if status < 500 else "error"
            )
        assert by_status[201]["key"] == "log-tester"
        assert by_status[201]["comparison_id"] == labeled.json()["id"]
        assert by_status[502]["comparison_id"] == failed.json()["error"]["details"]["comparison_id"]
        assert "key" not in by_status[401]  # no key was accepted

        (run,) = [r for r in records if r.get("event") == "batch_run"]
        assert run["batch_id"] == batch["id"]
        assert (run["done"], run["labeled"], run["failed"]) == (3, 3, 0)
        assert float(run["cost_usd"]) >= 0
        assert run["duration_ms"] > 0

    @pytest.mark.parametrize("served", [{"OTEL_TRACES_EXPORTER": "console"}], indirect=True)
    def test_with_tracing_on_the_lines_carry_the_stored_trace_id(
        self,
        served: tuple[Server, httpx.Client, str],
        provider: FakeProvider,
        database: str,
    ) -> None:
        """The request's line names the trace its judge calls are stored with."""
        server, client, _ = served
        provider.configure(policy="longer")
        assert client.post("/v1/comparisons", json=pair()).status_code == 201
        records = parsed([line for line in server.stop() if line.strip()])
        (line,) = [r for r in requests_logged(records) if r["method"] == "POST"]
        (stored,) = stored_trace_ids(database)
        assert stored is not None
        assert line["trace_id"] == stored
        # The console exporter writes each span as one JSON line too.
        assert any(r.get("name") == f"chat {JUDGE.split(':')[1]}" for r in records)

    def test_without_tracing_no_trace_id_anywhere(
        self, served: tuple[Server, httpx.Client, str], provider: FakeProvider, database: str
    ) -> None:
        """No OTEL_* variables: no trace id logged or stored."""
        server, client, _ = served
        provider.configure(policy="longer")
        assert client.post("/v1/comparisons", json=pair()).status_code == 201
        records = parsed([line for line in server.stop() if line.strip()])
        assert not any("trace_id" in r for r in records)
        assert stored_trace_ids(database) == {None}


class TestRedaction:
    def test_sensitive_fields_and_key_shaped_text_are_blanked(self) -> None:
        """At any depth, judged texts and credentials become [redacted]; the rest stays."""
        key = "ref_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v"
        event = {
            "event": f"failed with Authorization: Bearer {key}",
            "prompt": PROMPT,
            "nested": {"items": [{"response_a": RESPONSE_A, "status": 3}]},
            "route": "/v1/comparisons",
        }
        cleaned = logs.redact(None, "info", event)
        assert cleaned["prompt"] == logs.REDACTED
        assert cleaned["nested"] == {"items": [{"response_a": logs.REDACTED, "status": 3}]}
        assert key not in cleaned["event"]
        assert cleaned["route"] == "/v1/comparisons"

    def test_a_logged_exception_shows_no_local_variables(self) -> None:
        """A traceback is plain text: a request body held in a local never reaches the line."""
        try:
            body = {"prompt": PROMPT}
            raise ValueError(f"boom on {len(body)} field")
        except ValueError:
            entry = logging.LogRecord("referee", logging.ERROR, __file__, 1, "failed", None, None)
            entry.exc_info = sys.exc_info()
        line = logs.formatter(json=True).format(entry)
        assert "ValueError: boom on 1 field" in json.loads(line)["exception"]
        assert PROMPT not in line


@pytest.mark.parametrize("name", logs._PER_REQUEST_LOGGERS)
def test_provider_clients_log_warnings_only(name: str) -> None:
    """The SDKs and their HTTP clients write a line per request at INFO; only warnings pass."""
    assert logs.logging_config("stderr", json=True)["loggers"][name] == {"level": "WARNING"}
