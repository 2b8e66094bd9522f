"""Running the fake: in a background thread, or as a subprocess, plus the CLI.

Both variants are driven through the HTTP control API so test code is the
same whether the server shares the process or runs in another one (which
benchmarks need, so the fake does not compete with the client for the GIL).
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from .server import FakeProviderApp

HOST = "127.0.0.1"
READY_PREFIX = "listening on "
# tests/fake_provider/runner.py -> repo root, so `-m tests.fake_provider` imports.
_REPO_ROOT = Path(__file__).resolve().parents[2]


class _Server(uvicorn.Server):
    """uvicorn server that releases simulated waits when shutdown begins."""

    def __init__(self, baseline: dict[str, Any]) -> None:
        self.fake = FakeProviderApp(baseline)
        super().__init__(
            uvicorn.Config(
                self.fake.app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                # Backstop only: begin_shutdown() already ends simulated waits.
                timeout_graceful_shutdown=2,
                backlog=4096,  # benchmarks open hundreds of connections at once
            )
        )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.fake.begin_shutdown()
        await super().shutdown(sockets=sockets)


def _bind(port: int) -> socket.socket:
    # Binding ourselves (port 0 = kernel-chosen) avoids the race of probing
    # for a free port and then letting uvicorn bind it later.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.set_inheritable(True)
    return sock


class ControlClient:
    """Sync control-API client shared by the in-thread and subprocess variants."""

    def __init__(self, url: str) -> None:
        self.url = url
        # trust_env=False: a proxy from the environment must never see loopback
        # control traffic.
        self._http = httpx.Client(base_url=url, timeout=10.0, trust_env=False)

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise ValueError(f"{method} {path} failed: {response.status_code} {response.text}")
        return response.json()

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Merge settings into the server's; returns the resulting settings."""
        result: dict[str, Any] = self._call("POST", "/_control/config", settings)
        return result

    def settings(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_control/config")
        return result

    def reset(self) -> None:
        self._call("POST", "/_control/reset")

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_control/requests")
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_control/stats")
        return result

    def _close_http(self) -> None:
        self._http.close()


class FakeProvider(ControlClient):
    """The fake server on a free loopback port, in a thread with its own loop.

    `with FakeProvider(policy="longer") as fp:` starts it; keyword options are
    the startup settings, which reset() returns to.
    """

    def __init__(self, port: int = 0, **options: Any) -> None:
        self._sock = _bind(port)
        super().__init__(f"http://{HOST}:{self._sock.getsockname()[1]}")
        self.port: int = self._sock.getsockname()[1]
        self._server = _Server(options)
        self._thread: threading.Thread | None = None

    def start(self) -> FakeProvider:
        # Server.run() creates a fresh event loop (uvloop when installed), so
        # the server keeps serving while the test's own loop is busy/blocked.
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="fake-provider",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake provider failed to start")
            time.sleep(0.005)
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._thread = None
        self._sock.close()
        self._close_http()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @classmethod
    def spawn(cls, port: int | None = None, **options: Any) -> SpawnedProvider:
        """Run the fake in a subprocess (`python -m tests.fake_provider`)."""
        return SpawnedProvider(port or 0, **options)


class SpawnedProvider(ControlClient):
    """Handle on a fake provider subprocess; same control methods + close()."""

    def __init__(self, port: int = 0, startup_timeout: float = 20.0, **options: Any) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO_ROOT), env.get("PYTHONPATH")) if p
        )
        # Options travel as the startup baseline (like FakeProvider's kwargs),
        # so reset() keeps them and no request can slip in before they apply.
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fake_provider",
                "--port",
                str(port),
                "--config",
                json.dumps(options),
            ],
            cwd=_REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._read_ready_line(startup_timeout)
        super().__init__(line.removeprefix(READY_PREFIX).strip())
        self.port: int = int(self.url.rsplit(":", 1)[1])

    def _read_ready_line(self, timeout: float) -> str:
        assert self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            if sel.select(timeout) and (line := self._proc.stdout.readline()).startswith(
                READY_PREFIX
            ):
                return line
        self._proc.kill()
        raise RuntimeError(
            f"fake provider subprocess did not start (exit code {self._proc.poll()})"
        )

    def close(self) -> None:
        self._close_http()
        if self._proc.poll() is None:
            self._proc.terminate()  # uvicorn shuts down gracefully on SIGTERM
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> SpawnedProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_provider", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=None)
    parser.add_argument("--rpm-limit", type=int, default=None)
    parser.add_argument("--policy", default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-record", action="store_true", help="do not log requests (benchmarks)")
    parser.add_argument("--config", default="{}", help="JSON object of startup settings")
    args = parser.parse_args(argv)
    baseline: dict[str, Any] = json.loads(args.config)
    for key in ("latency_ms", "rpm_limit", "policy", "seed"):
        if getattr(args, key) is not None:
            baseline[key] = getattr(args, key)
    if args.no_record:
        baseline["record"] = False
    sock = _bind(args.port)
    server = _Server(baseline)
    url = f"http://{HOST}:{sock.getsockname()[1]}"

    # Print the ready line only once the socket accepts connections, so a
    # parent waiting for it can connect immediately.
    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.005)
        if server.started:
            print(READY_PREFIX + url, flush=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])
