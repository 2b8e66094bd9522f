"""Exports against clients that never read: a bounded pool, a cap, an idle timeout, flat memory.

The export tests in test_export.py go through TestClient, whose sends
never block. A client that stops reading only pushes back through real
sockets: here a real uvicorn server on a loopback port, and raw sockets
with a small receive buffer that send a request and read no further.
Each export is ~10 MB (large texts), far more than the socket buffers
hold, so its sends block until the idle timeout cuts it off.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import QueuePool, create_engine, insert, text

from app.api.app import create_app
from app.export.options import ExportOptions, Kind
from app.export.streams import ExportStreams
from app.settings import Settings
from app.store.exports import APPLICATION_NAME, CONNECTIONS_PER_EXPORT
from app.store.models import Comparison, Verdict
from judges import JudgeRegistry

ROWS = 160
RESPONSE_CHARS = 30_000
LIMIT = 4
IDLE_TIMEOUT_S = 2.0
DB_POOL_SIZE = 2
STALLED_CLIENTS = 45
REQUEST = b"GET /v1/exports/dpo HTTP/1.1\r\nHost: referee\r\n\r\n"
# The chunked body's last chunk: a cut-off export must not end with it.
LAST_CHUNK = b"0\r\n\r\n"


def _text(index: int, side: str) -> str:
    # Distinct per row (de-duplication keeps every row) and incompressible enough.
    seed = hashlib.sha256(f"{index}-{side}".encode()).hexdigest()
    return (seed * (RESPONSE_CHARS // len(seed) + 1))[:RESPONSE_CHARS]


def seed_comparisons(database_url: str, rows: int = ROWS) -> None:
    """Labeled comparisons with large responses and a current verdict each (winner a)."""
    engine = create_engine(database_url)
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    comparisons, verdicts = [], []
    for i in range(rows):
        comparison_id = uuid.uuid4()
        moment = epoch + timedelta(seconds=i)
        comparisons.append(
            {
                "id": comparison_id,
                "label_key": hashlib.sha256(f"resources-{i}".encode()).hexdigest(),
                "prompt": f"[{i}] Which answer is better?",
                "response_a": _text(i, "a"),
                "response_b": _text(i, "b"),
                "judge": "scripted:x",
                "judge_spec": "scripted:x",
                "judge_config": {"spec": "scripted:x"},
                "template_version": "pairwise-v3",
                "status": "labeled",
                "created_at": moment,
                "updated_at": moment,
            }
        )
        verdicts.append(
            {
                "comparison_id": comparison_id,
                "winner": "a",
                "confidence": 0.9,
                "position_consistent": True,
                "rationale": "",
                "length_a": RESPONSE_CHARS,
                "length_b": RESPONSE_CHARS,
                "created_at": moment,
            }
        )
    with engine.begin() as connection:
        connection.execute(insert(Comparison), comparisons)
        connection.execute(insert(Verdict), verdicts)
    engine.dispose()


def export_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "judges_file": None,
        "auth": "off",
        "max_concurrent_exports": LIMIT,
        "export_idle_timeout_s": IDLE_TIMEOUT_S,
        "db_pool_size": DB_POOL_SIZE,
        **overrides,
    }
    return Settings(**values)


@dataclass
class RunningServer:
    app: FastAPI
    base_url: str
    port: int

    @property
    def streams(self) -> ExportStreams:
        streams: ExportStreams = self.app.state.exports
        return streams


@contextlib.contextmanager
def uvicorn_server(app: FastAPI) -> Iterator[RunningServer]:
    """The app under a real uvicorn server in a thread, on a free loopback port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn took over 30 s to start"
        time.sleep(0.02)
    try:
        yield RunningServer(app, f"http://127.0.0.1:{port}", port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=10)
        listener.close()


def stalled_client(port: int) -> socket.socket:
    """A socket that sends an export request and will read nothing but the response head."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window, set before connecting: the server's sends block early.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(15)
    sock.connect(("127.0.0.1", port))
    sock.sendall(REQUEST)
    return sock


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and whatever body bytes came with them; reads no further."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed before the response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, rest


def read_to_end(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(1 << 16):
        data += chunk
    return bytes(data)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def postgres_connections(database_url: str) -> tuple[int, int, int]:
    """(all connections to this database, export connections, export ones inside a transaction)."""
    engine = create_engine(database_url)
    query = text(
        "SELECT count(*), count(*) FILTER (WHERE application_name = :name), "
        "count(*) FILTER (WHERE application_name = :name AND state LIKE 'idle in transaction%') "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    try:
        with engine.connect() as connection:
            total, exports, in_transaction = connection.execute(
                query, {"name": APPLICATION_NAME}
            ).one()
    finally:
        engine.dispose()
    return total, exports, in_transaction


def checked_out(streams: ExportStreams) -> int:
    """Connections the export engine has lent out right now."""
    pool = streams.engine.pool
    assert isinstance(pool, QueuePool)  # a bounded pool, as read_engine(pool_size=…) builds
    return pool.checkedout()


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.05)


class TestStalledReaders:
    def test_are_capped_bounded_and_cut_off(
        self, database_url: str, registry: JudgeRegistry
    ) -> None:
        """45 clients that never read: 4 stream, 41 get 429, the pool holds, /healthz answers,
        memory stays flat, and after the idle timeout the slots free and exports work again."""
        seed_comparisons(database_url)
        postgres = database_url.startswith("postgresql")
        app = create_app(export_settings(database_url), registry)
        with uvicorn_server(app) as server, contextlib.ExitStack() as sockets:
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                full = client.get("/v1/exports/dpo")  # warms up; the size a reader would get
            assert full.status_code == 200, full.text
            assert len(full.content) > 5_000_000  # far more than the socket buffers hold
            memory_before = rss_mb()

            clients = [sockets.enter_context(stalled_client(server.port)) for _ in range(45)]
            heads = [read_head(sock) for sock in clients]
            statuses = Counter(status for status, _, _ in heads)
            assert statuses == {200: LIMIT, 429: STALLED_CLIENTS - LIMIT}
            for status, headers, _ in heads:
                if status == 429:
                    assert headers["retry-after"] == str(int(IDLE_TIMEOUT_S))
            assert server.streams.active == LIMIT  # the streaming ones are stuck, not finished

            started = time.monotonic()
            health = httpx.get(f"{server.base_url}/healthz", timeout=5)
            assert health.status_code == 200
            assert time.monotonic() - started < 1.0
            # Each stalled export holds its two connections; a refused one holds none.
            assert checked_out(server.streams) == CONNECTIONS_PER_EXPORT * LIMIT
            if postgres:
                total, exports, in_transaction = postgres_connections(database_url)
                assert exports == CONNECTIONS_PER_EXPORT * LIMIT
                assert in_transaction >= LIMIT  # each stalled export's read is still open
                # The app's own pool (pool_size + as many overflow) and the export pool.
                assert total <= CONNECTIONS_PER_EXPORT * LIMIT + 2 * DB_POOL_SIZE
            # Four ~10 MB exports in flight, each holding a few chunks of rows (about 30 MB
            # in all), not its whole export; 45 unbounded ones held well over a gigabyte.
            assert rss_mb() - memory_before < 100

            wait_for(lambda: server.streams.active == 0, IDLE_TIMEOUT_S + 10, "slots freed")
            assert checked_out(server.streams) == 0
            if postgres:
                assert postgres_connections(database_url)[2] == 0  # no read left open
            for sock, (status, _, first) in zip(clients, heads, strict=True):
                if status == 200:
                    body = first + read_to_end(sock)  # the server closed it: EOF
                    assert not body.endswith(LAST_CHUNK)  # visibly incomplete
                    assert len(body) < len(full.content)

            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                again = client.get("/v1/exports/dpo")
            assert again.status_code == 200
            assert again.content == full.content
            assert len(again.content.splitlines()) == ROWS


class TestConcurrencyCap:
    def test_a_full_server_refuses_before_reading_the_database(
        self, database_url: str, registry: JudgeRegistry
    ) -> None:
        """With every slot taken an export is 429 with Retry-After, even one whose filter
        would need a database look-up to refuse; a freed slot serves again."""
        settings = export_settings(database_url, max_concurrent_exports=1)
        # A loopback base URL: REFEREE_AUTH=off serves loopback addresses only.
        with TestClient(create_app(settings, registry), base_url="http://127.0.0.1") as api:
            streams: ExportStreams = api.app.state.exports  # type: ignore[attr-defined]
            slot = streams.claim()
            refused = api.get("/v1/exports/dpo", params={"judge": "nosuch:model"})
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == str(int(IDLE_TIMEOUT_S))
            error = refused.json()["error"]
            assert error["code"] == "too_many_requests"
            assert "REFEREE_MAX_CONCURRENT_EXPORTS" in error["message"]
            assert checked_out(streams) == 0
            slot.release()
            slot.release()  # a second release frees nothing more
            assert streams.active == 0
            answered = api.get("/v1/exports/dpo", params={"judge": "nosuch:model"})
            assert answered.status_code == 422
            assert streams.active == 0  # a refused export gives its slot back

    def test_an_abandoned_export_releases_its_slot_and_connections(self, database_url: str) -> None:
        """An export started and then dropped (never sent, never closed) frees everything."""
        seed_comparisons(database_url, rows=5)
        streams = ExportStreams.start(database_url, max_concurrent=1, idle_timeout_s=1)
        try:
            lines = streams.open(ExportOptions(kind=Kind.DPO), streams.claim(), allow_empty=False)
            assert checked_out(streams) == CONNECTIONS_PER_EXPORT
            del lines
            gc.collect()
            assert streams.active == 0
            assert checked_out(streams) == 0

            lines = streams.open(ExportOptions(kind=Kind.DPO), streams.claim(), allow_empty=False)
            rows = [orjson.loads(line) for block in lines for line in block.splitlines()]
            assert len(rows) == 5
            assert streams.active == 0  # the end of the rows closes the export by itself
            assert checked_out(streams) == 0
        finally:
            streams.close()
