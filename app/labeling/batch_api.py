"""Batches submitted over HTTP: enqueue an upload, report progress, cancel."""

from __future__ import annotations

import io
import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from app.errors import InvalidInputError, NotFoundError, TextTooLargeError
from app.labeling.access import acting_key
from app.labeling.batch import Screen, enqueue
from app.labeling.compare import Labeler, UnderConstitution
from app.labeling.gold import GoldLedger
from app.labeling.jsonl import LineError, ParsedLine, read_pairs
from app.labeling.provider_batch import (
    ProviderBatchOptions,
    ProviderBatchRun,
    cancel_submissions,
    check_mode,
)
from app.labeling.shapes import converter
from app.labeling.worker import BackgroundWorkers
from app.store import batches, provider_batches
from app.store.models import Batch

MAX_LISTED = 20
"""Rejected lines listed in an error; the rest are counted."""


async def submit(
    labeler: Labeler,
    workers: BackgroundWorkers | None,
    body: str,
    judge: str | None,
    name: str | None,
    under: UnderConstitution | None = None,
    provider_batch: ProviderBatchOptions | None = None,
) -> dict[str, Any]:
    """Enqueue every good record of a JSONL or JSON-array body; bad ones are reported, not fatal.

    With ``provider_batch`` the pairs go through the provider's batch API.
    """
    config = labeler.resolve_pairwise(judge)
    constitution = under.constitution.id if under is not None else None
    batch_config = check_mode(config, labeler, constitution) if provider_batch else None
    batch_name = name or f"upload-{uuid.uuid4()}"
    # Counted in a first pass that stops one past the limit: an upload over it
    # stores nothing, and counting it costs no more than the limit's worth.
    limit = labeler.limits.max_batch_pairs
    if limit is not None:
        counted = itertools.islice(read_pairs(io.StringIO(body), "upload"), limit + 1)
        labeler.limits.check_batch_records(sum(1 for _ in counted))
    records = metadata_capped(read_pairs(io.StringIO(body), "upload", converter()), labeler)
    # Read up to the first good record before anything is stored: a body with
    # none (broken JSON, every line invalid, empty) leaves no batch behind.
    head = first_good(records, screen_check(Screen(labeler, config, "upload", under)))
    # Built only once the body holds a good record: an unparseable upload
    # must not load a local model or open a provider client.
    labeler.pairwise_judge_for(config)
    async with labeler.db.transaction() as session:
        batch, _ = await batches.get_or_create(
            session, batch_name, "upload", config.label, api_key_id=acting_key.get()
        )
    rejected: list[LineError] = []
    records = itertools.chain(head, records)
    ledger = GoldLedger()
    result = await enqueue(
        labeler, batch.id, config, records, "upload", rejected.append, under, gold_ledger=ledger
    )
    if workers is not None:
        runner = None
        if batch_config is not None and provider_batch is not None:
            runner = ProviderBatchRun(labeler, batch.id, batch_config, provider_batch)
        workers.start(batch.id, runner)
    return {
        "id": batch.id,
        "name": batch.name,
        "submitted": result.submitted,
        "new": result.new,
        "merged": result.merged,
        "ruled": result.ruled,
        "gold_conflicts": len(ledger.conflicts),
        "rejected": [{"line": e.line, "reason": e.reason} for e in rejected],
    }


def metadata_capped(
    records: Iterator[ParsedLine | LineError], labeler: Labeler
) -> Iterator[ParsedLine | LineError]:
    """Records whose metadata is over REFEREE_MAX_METADATA_KB become that line's reject."""
    for record in records:
        if isinstance(record, ParsedLine):
            try:
                labeler.limits.check_metadata(record.pair.metadata)
            except TextTooLargeError as exc:
                yield LineError("upload", record.line, f"field 'metadata': {exc.message}", "")
                continue
        yield record


def first_good(
    records: Iterator[ParsedLine | LineError], check: Callable[[ParsedLine], LineError | None]
) -> list[ParsedLine | LineError]:
    """The records up to and including the first good one; a 422 when there is none.

    A record that parses but that ``check`` refuses (a text over the size
    limit, say), and that enqueueing would reject, is not a good one.
    """
    head: list[ParsedLine | LineError] = []
    errors: list[LineError] = []
    for record in records:
        head.append(record)
        problem = check(record) if isinstance(record, ParsedLine) else record
        if problem is None:
            return head
        errors.append(problem)
    if not errors:
        raise InvalidInputError(
            "the body holds no records: send JSONL lines or a JSON array of pairs", field="body"
        )
    first = errors[0]
    raise InvalidInputError(
        f"no valid record in the body; line {first.line}: {first.reason}",
        field="body",
        rejected=[{"line": e.line, "reason": e.reason} for e in errors[:MAX_LISTED]],
        rejected_count=len(errors),
    )


def screen_check(screen: Screen) -> Callable[[ParsedLine], LineError | None]:
    """A record through the checks enqueueing applies (size, empty texts, identical responses)."""

    def check(record: ParsedLine) -> LineError | None:
        checked = screen.check(record)
        return checked if isinstance(checked, LineError) else None

    return check


async def describe(labeler: Labeler, batch_id: uuid.UUID) -> dict[str, Any]:
    async with labeler.db.transaction() as session:
        batch = await batches.get(session, batch_id)
        if batch is None:
            raise NotFoundError(f"no batch {batch_id}")
        counts = await batches.status_counts(session, batch_id)
        outcomes = await batches.outcome_counts(session, batch_id)
        submissions = await provider_batches.for_batch(session, batch_id)
    # Verdicts are stored before their submission is marked collected: until
    # it is, the batch is still being collected, not done.
    collecting = any(sub.status == "submitted" for sub in submissions)
    described = _describe(batch, counts, outcomes, collecting=collecting)
    described["provider_batches"] = [
        {
            "provider": sub.provider,
            "provider_batch_id": sub.provider_batch_id,
            "status": sub.status,
            "provider_status": sub.provider_status,
            "errors": sub.errors or [],
            "pairs": sub.pairs,
            "requests": sub.requests,
            "created_at": sub.created_at,
        }
        for sub in submissions
    ]
    return described


def _describe(
    batch: Batch, counts: dict[str, int], outcomes: dict[str, int], *, collecting: bool
) -> dict[str, Any]:
    finished = counts.get("labeled", 0) + counts.get("failed", 0)
    total = sum(counts.values())
    status = batch.status
    if status == "open" and total and not counts.get("pending") and not collecting:
        status = "done"
    return {
        "id": batch.id,
        "name": batch.name,
        "judge": batch.judge,
        "status": status,
        "submitted": batch.submitted,
        "rejected": batch.rejected,
        "counts": {k: counts.get(k, 0) for k in ("pending", "labeled", "failed", "cancelled")},
        "outcomes": outcomes,
        "progress": finished / total if total else 1.0,
        "created_at": batch.created_at,
    }


async def cancel(
    labeler: Labeler, workers: BackgroundWorkers | None, batch_id: uuid.UUID
) -> dict[str, Any]:
    if workers is not None:
        workers.stop(batch_id)
    async with labeler.db.transaction() as session:
        if await batches.get(session, batch_id) is None:
            raise NotFoundError(f"no batch {batch_id}")
    await cancel_submissions(labeler, batch_id)
    async with labeler.db.transaction() as session:
        await batches.cancel_pending(session, batch_id)
        await batches.set_status(session, batch_id, "cancelled")
    return await describe(labeler, batch_id)
