"""The /review list reuses a queue's agreement while its progress stands still, for a minute."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from app.api.review_page import routes
from app.labeling.review.queues import QueueProgress


def test_the_list_computes_a_queues_agreement_at_most_once_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Within AGREEMENT_SECONDS the figure is reused; after it, for another queue, or once the
    queue's progress moved, it is computed again."""
    computed: list[uuid.UUID] = []

    async def agreement(_session: Any, queue_id: uuid.UUID) -> dict[str, Any]:
        computed.append(queue_id)
        return {"n": len(computed)}

    clock = [1000.0]
    monkeypatch.setattr(routes, "queue_agreement", agreement)
    monkeypatch.setattr(routes.time, "monotonic", lambda: clock[0])
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace()))
    one, two = uuid.uuid4(), uuid.uuid4()

    def load(queue_id: uuid.UUID, done: int = 0) -> Any:
        progress = QueueProgress(queue_id, "q", "audit", 2, False, 4, done, done, 4 - done)
        return asyncio.run(routes.agreement_of(request, None, progress))  # type: ignore[arg-type]

    assert load(one) == {"n": 1}
    clock[0] += routes.AGREEMENT_SECONDS - 1
    assert load(one) == {"n": 1}
    assert load(two) == {"n": 2}
    clock[0] += 2
    assert load(one) == {"n": 3}
    assert load(one, done=1) == {"n": 4}
    assert load(one, done=1) == {"n": 4}
    assert computed == [one, two, one, one]
