"""Across processes: one judge per label key at a time; the others wait and read its verdict.

In one process :class:`~app.labeling.flight.SingleFlight` shares identical
work. Processes that share a database (API replicas, a CLI beside the API)
meet at the comparison row of the label key: it is inserted once (its key is
unique) and whoever leases it judges, while the others poll until the lease
is let go and return what was stored. The holder renews its lease while it
judges; a holder that dies stops renewing, so it delays the others by one
lease at most, and they take over. ``force`` leases a labeled row too, to
judge it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.errors import JudgeFailedError
from app.observability import metrics
from app.store import comparisons
from app.store.db import Database
from app.store.models import Comparison, utcnow

CLAIM_LEASE = timedelta(seconds=60)
FIRST_POLL_S = 0.05
MAX_POLL_S = 1.0


def owner_id() -> str:
    """host:pid:nonce, the format batch workers use, so dead local owners can be found."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_gone(owner: str) -> bool:
    """The lease owner is a process of this host that no longer exists (a SIGKILLed run).

    Owners of other hosts, or not in the host:pid:nonce format, are never
    called gone: their leases are waited out.
    """
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True, slots=True)
class Claimed:
    """The comparison is leased to this process: judge it, store the run, let go."""

    comparison_id: uuid.UUID


class LabelClaims:
    """Leases on comparison rows, taken before a pair is judged on request."""

    def __init__(self, db: Database, lease: timedelta = CLAIM_LEASE) -> None:
        self.db = db
        self.lease = lease
        self.owner = owner_id()

    async def claim(self, values: dict[str, Any], *, force: bool) -> Claimed | Comparison:
        """Lease the label key's comparison, or the comparison someone else judged.

        A stored verdict is returned without a lease unless ``force``; a
        failure another process stored while this one waited is raised.
        """
        while True:
            async with self.db.transaction() as session:
                existing = await comparisons.get_by_label_key(session, values["label_key"])
            if existing is not None and existing.verdicts and not force:
                return existing
            async with self.db.transaction() as session:
                # Writes first: on SQLite the insert takes the write lock, so the
                # lease is decided on the latest committed row.
                comparison_id = await comparisons.insert_if_absent(session, values)
                claimed = await comparisons.claim_label(
                    session, comparison_id, self.owner, self.lease, labeled_too=force
                )
            if claimed:
                return Claimed(comparison_id)
            settled = await self._wait(comparison_id)
            if settled is not None:
                return settled

    async def _wait(self, comparison_id: uuid.UUID) -> Comparison | None:
        """The comparison once its holder lets go with a verdict; None to try to lease it."""
        delay = FIRST_POLL_S
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_POLL_S)
            async with self.db.transaction() as session:
                row = await comparisons.get(session, comparison_id)
            assert row is not None  # comparisons are never deleted
            if row.lease_owner is not None:
                if holder_is_gone(row.lease_owner):
                    # Its holder was killed on this host: no need to wait its lease out.
                    async with self.db.transaction() as session:
                        await comparisons.release_label(session, comparison_id, row.lease_owner)
                    metrics.count_lease("label", taken_over=1)
                    return None
                expires = row.lease_expires_at
                if expires is not None and expires >= utcnow():
                    continue  # still being judged
                metrics.count_lease("label", taken_over=1)
                return None  # its holder died: take over
            if row.status == "labeled" and row.verdicts:
                return row
            if row.status == "failed":
                raise JudgeFailedError(
                    f"judge {row.judge} failed: {row.error_class} (judged by another process)",
                    comparison_id=str(row.id),
                    error_class=row.error_class,
                )
            return None  # let go unfinished (its holder was cancelled)

    @asynccontextmanager
    async def leased(self, comparison_id: uuid.UUID) -> AsyncIterator[None]:
        """Renew the lease while the block judges; let go when it ends, however it ends."""
        heartbeat = asyncio.create_task(self._renew(comparison_id))
        try:
            yield
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await asyncio.shield(self._release(comparison_id))

    async def _renew(self, comparison_id: uuid.UUID) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            async with self.db.transaction() as session:
                await comparisons.renew_label(session, comparison_id, self.owner, self.lease)
            metrics.count_lease("label", renewed=1)

    async def _release(self, comparison_id: uuid.UUID) -> None:
        async with self.db.transaction() as session:
            await comparisons.release_label(session, comparison_id, self.owner)
