"""The batch endpoints of both APIs: Anthropic Message Batches, OpenAI Files + Batches.

Every request of a batch is answered when the batch is created, by the same
code that answers a live call (so verdict policies and prompt caching hold);
the batch ends ``batch_delay_s`` seconds later. ``batch_fail_next`` scripts
the outcomes of the next requests, in submission order: ``errored`` (a 500
server error), ``invalid`` (a 400), ``expired`` or ``canceled``. Results are
written in reverse order, as the real APIs promise no order. While
``batch_errors`` is set, an OpenAI batch is refused as a whole: it ends
``failed`` with those ``errors.data``, no request answered, no files.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .outputs import JSON
from .state import Admission

if TYPE_CHECKING:
    from .server import FakeProviderApp

BATCH_OUTCOMES = frozenset({"errored", "invalid", "expired", "canceled"})
_DAY = 24 * 3600


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FakeBatch:
    """One batch: its requests' outcomes, decided at creation, revealed when it ends."""

    id: str
    api: str
    created: float
    ready_at: float
    outcomes: list[tuple[str, str, JSON | None]]  # (custom_id, kind, answer or error body)
    extra: dict[str, Any] = field(default_factory=dict)
    canceled: bool = False
    errors: list[JSON] | None = None
    """Set for a batch refused as a whole (OpenAI ``failed``)."""

    @property
    def ended(self) -> bool:
        return self.canceled or time.monotonic() >= self.ready_at

    def final_outcomes(self) -> list[tuple[str, str, JSON | None]]:
        if not self.canceled or time.monotonic() >= self.ready_at:
            return self.outcomes
        return [(cid, "canceled", None) for cid, _, _ in self.outcomes]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, kind, _ in self.final_outcomes():
            counts[kind] = counts.get(kind, 0) + 1
        return counts


class FakeBatches:
    """Route handlers for the batch endpoints, over the fake's shared state."""

    def __init__(self, fake: FakeProviderApp) -> None:
        self.fake = fake

    @property
    def _store(self) -> dict[str, Any]:
        store: dict[str, Any] = self.fake.state.batch_store
        return store

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages/batches", self._anthropic_create, methods=["POST"]),
            Route("/v1/messages/batches/{id}", self._anthropic_get, methods=["GET"]),
            Route("/v1/messages/batches/{id}/results", self._anthropic_results, methods=["GET"]),
            Route("/v1/messages/batches/{id}/cancel", self._cancel, methods=["POST"]),
            Route("/v1/files", self._file_create, methods=["POST"]),
            Route("/v1/files/{id}/content", self._file_content, methods=["GET"]),
            Route("/v1/batches", self._openai_create, methods=["POST"]),
            Route("/v1/batches/{id}", self._openai_get, methods=["GET"]),
            Route("/v1/batches/{id}/cancel", self._cancel, methods=["POST"]),
        ]

    # ----------------------------------------------------------------- shared

    def _run(
        self,
        api: str,
        items: list[tuple[str, Any]],
        check: Callable[[JSON], None],
        answer: Callable[[JSON, str | None], JSON],
    ) -> FakeBatch:
        """Answer every request now, or give it its scripted outcome."""
        from .server import BadRequest

        settings = self.fake.state.settings
        outcomes: list[tuple[str, str, JSON | None]] = []
        for custom_id, body in items:
            scripted = settings.batch_fail_next.pop(0) if settings.batch_fail_next else None
            if scripted in ("expired", "canceled"):
                outcomes.append((custom_id, scripted, None))
                continue
            try:
                if scripted == "invalid" or not isinstance(body, dict):
                    raise BadRequest("invalid request (fake provider)")
                check(body)
            except BadRequest as exc:
                outcomes.append((custom_id, "invalid", {"message": str(exc)}))
                continue
            if scripted == "errored":
                outcomes.append((custom_id, "errored", {"message": "Internal server error"}))
                continue
            outcomes.append((custom_id, "succeeded", answer(body, None)))
        now = time.monotonic()
        prefix = "msgbatch_" if api == "anthropic" else "batch_"
        batch = FakeBatch(_id(prefix), api, time.time(), now + settings.batch_delay_s, outcomes)
        self._store[batch.id] = batch
        return batch

    def _get(self, request: Request) -> FakeBatch | None:
        found = self._store.get(request.path_params["id"])
        return found if isinstance(found, FakeBatch) else None

    def _log(self, api: str, request: Request, body: JSON | None) -> None:
        self.fake._record(api, request, body, Admission(None, 200))

    async def _cancel(self, request: Request) -> Response:
        batch = self._get(request)
        if batch is None:
            return _not_found()
        self._log(f"{batch.api}_batch_cancel", request, None)
        if not batch.ended:
            batch.canceled = True
        return JSONResponse(self._describe(batch, request))

    def _describe(self, batch: FakeBatch, request: Request) -> JSON:
        if batch.api == "anthropic":
            return self._anthropic_object(batch, request)
        return self._openai_object(batch)

    # -------------------------------------------------------------- anthropic

    async def _anthropic_create(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self._log("anthropic_batch_create", request, body)
        items = [(r.get("custom_id"), r.get("params")) for r in body.get("requests") or []]
        fake = self.fake
        batch = self._run("anthropic", items, _anthropic_check(fake), fake._anthropic_answer)
        return JSONResponse(self._anthropic_object(batch, request))

    async def _anthropic_get(self, request: Request) -> Response:
        batch = self._get(request)
        if batch is None:
            return _not_found()
        return JSONResponse(self._anthropic_object(batch, request))

    def _anthropic_object(self, batch: FakeBatch, request: Request) -> JSON:
        ended = batch.ended
        counts = batch.counts() if ended else {}
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else len(batch.outcomes),
                "succeeded": counts.get("succeeded", 0),
                "errored": counts.get("errored", 0) + counts.get("invalid", 0),
                "canceled": counts.get("canceled", 0),
                "expired": counts.get("expired", 0),
            },
            "created_at": _iso(batch.created),
            "expires_at": _iso(batch.created + _DAY),
            "ended_at": _iso(time.time()) if ended else None,
            "cancel_initiated_at": _iso(time.time()) if batch.canceled else None,
            "archived_at": None,
            "results_url": (
                f"{str(request.base_url).rstrip('/')}/v1/messages/batches/{batch.id}/results"
                if ended
                else None
            ),
        }

    async def _anthropic_results(self, request: Request) -> Response:
        batch = self._get(request)
        if batch is None or not batch.ended:
            return _not_found()
        lines = [
            json.dumps({"custom_id": cid, "result": _anthropic_result(kind, payload)})
            for cid, kind, payload in reversed(batch.final_outcomes())
        ]
        return Response("\n".join(lines) + "\n", media_type="application/binary")

    # ----------------------------------------------------------------- openai

    async def _file_create(self, request: Request) -> Response:
        form = await request.form()
        upload: Any = form.get("file")
        data: bytes = await upload.read()
        self._log("openai_file_create", request, {"purpose": form.get("purpose")})
        file_id = self._save_file(data, str(getattr(upload, "filename", "upload.jsonl")))
        return JSONResponse(_file_object(file_id, len(data), "batch"))

    def _save_file(self, data: bytes, name: str) -> str:
        file_id = _id("file-")
        self._store[file_id] = data
        return file_id

    async def _file_content(self, request: Request) -> Response:
        data = self._store.get(request.path_params["id"])
        if not isinstance(data, bytes):
            return _not_found()
        return Response(data, media_type="application/octet-stream")

    async def _openai_create(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self._log("openai_batch_create", request, body)
        data = self._store.get(str(body.get("input_file_id")))
        if not isinstance(data, bytes):
            return _not_found()
        endpoint = body.get("endpoint")
        lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        items = [
            (line.get("custom_id"), line.get("body") if line.get("url") == endpoint else None)
            for line in lines
        ]
        fake = self.fake
        refused = fake.state.settings.batch_errors
        if refused:
            ready = time.monotonic() + fake.state.settings.batch_delay_s
            batch = FakeBatch(_id("batch_"), "openai", time.time(), ready, [], errors=list(refused))
            self._store[batch.id] = batch
        else:
            batch = self._run("openai", items, _openai_check(fake), fake._openai_answer)
        batch.extra.update(endpoint=endpoint, input_file_id=body.get("input_file_id"))
        return JSONResponse(self._openai_object(batch))

    async def _openai_get(self, request: Request) -> Response:
        batch = self._get(request)
        if batch is None:
            return _not_found()
        if batch.ended and "output_file_id" not in batch.extra:
            self._write_openai_files(batch)
        return JSONResponse(self._openai_object(batch))

    def _write_openai_files(self, batch: FakeBatch) -> None:
        output: list[str] = []
        errors: list[str] = []
        for cid, kind, payload in reversed(batch.final_outcomes()):
            line = _openai_line(cid, kind, payload)
            (output if kind == "succeeded" else errors).append(json.dumps(line))
        batch.extra["output_file_id"] = (
            self._save_file(("\n".join(output) + "\n").encode(), "output.jsonl") if output else None
        )
        batch.extra["error_file_id"] = (
            self._save_file(("\n".join(errors) + "\n").encode(), "errors.jsonl") if errors else None
        )

    def _openai_object(self, batch: FakeBatch) -> JSON:
        ended = batch.ended
        counts = batch.counts() if ended else {}
        kinds = set(counts)
        status = "in_progress"
        if ended:
            status = "cancelled" if batch.canceled else "completed"
            if kinds == {"expired"}:
                status = "expired"
            if batch.errors is not None:
                status = "failed"
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.extra.get("endpoint"),
            "errors": (
                {"object": "list", "data": batch.errors}
                if ended and batch.errors is not None
                else None
            ),
            "input_file_id": batch.extra.get("input_file_id"),
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.extra.get("output_file_id"),
            "error_file_id": batch.extra.get("error_file_id"),
            "created_at": int(batch.created),
            "expires_at": int(batch.created + _DAY),
            "request_counts": {
                "total": len(batch.outcomes),
                "completed": counts.get("succeeded", 0),
                "failed": sum(n for k, n in counts.items() if k != "succeeded"),
            },
            "metadata": None,
        }


def _anthropic_check(fake: FakeProviderApp) -> Callable[[JSON], None]:
    from .server import BadRequest

    def check(body: JSON) -> None:
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            raise BadRequest("'model' and 'messages' are required")
        if not isinstance(body.get("max_tokens"), int):
            raise BadRequest("max_tokens: Field required")
        fake._anthropic_check(body)

    return check


def _openai_check(fake: FakeProviderApp) -> Callable[[JSON], None]:
    from .server import BadRequest

    def check(body: JSON) -> None:
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            raise BadRequest("'model' and 'messages' are required")
        fake._openai_check(body)

    return check


def _anthropic_result(kind: str, payload: JSON | None) -> JSON:
    if kind == "succeeded":
        return {"type": "succeeded", "message": payload}
    if kind in ("errored", "invalid"):
        error_type = "api_error" if kind == "errored" else "invalid_request_error"
        message = (payload or {}).get("message", "")
        return {
            "type": "errored",
            "error": {
                "type": "error",
                "error": {"type": error_type, "message": message},
                "request_id": _id("req_"),
            },
        }
    return {"type": kind}


def _openai_line(custom_id: str, kind: str, payload: JSON | None) -> JSON:
    line: JSON = {"id": _id("batch_req_"), "custom_id": custom_id, "response": None, "error": None}
    if kind == "succeeded":
        line["response"] = {"status_code": 200, "request_id": _id("req_"), "body": payload}
    elif kind in ("errored", "invalid"):
        status = 500 if kind == "errored" else 400
        error = {"message": (payload or {}).get("message", ""), "type": "server_error"}
        line["response"] = {
            "status_code": status,
            "request_id": _id("req_"),
            "body": {"error": error},
        }
    elif kind == "expired":
        line["error"] = {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        }
    else:
        line["error"] = {"code": "batch_cancelled", "message": "This batch was cancelled."}
    return line


def _file_object(file_id: str, size: int, purpose: str) -> JSON:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": "batch.jsonl",
        "purpose": purpose,
        "status": "processed",
    }


def _not_found() -> Response:
    return JSONResponse(
        {"type": "error", "error": {"type": "not_found_error", "message": "Not found"}},
        status_code=404,
    )
