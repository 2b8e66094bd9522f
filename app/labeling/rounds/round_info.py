"""What a round is and how far it got: for ``referee round list|show`` and ``GET /v1/rounds``."""

from __future__ import annotations

from typing import Any

from app.errors import NotFoundError
from app.labeling.compare import Labeler
from app.store import batches, rounds, selection
from app.store import generation as generations
from app.store.models_rounds import Round


def round_record(found: Round, parent: Round | None) -> dict[str, Any]:
    """What a round is: its identity and parameters (for list, show and the API)."""
    return {
        "name": found.name,
        "parent": parent.name if parent is not None else None,
        "policy": found.policy,
        "checkpoint": found.checkpoint,
        "prompts_source": found.prompts_source,
        "prompt_set_key": found.prompt_set_key,
        "prompt_count": found.prompt_count,
        "strategy": found.strategy,
        "judge": found.judge,
        "params": found.params,
        "stage": found.stage,
        "created_at": found.created_at,
        "updated_at": found.updated_at,
    }


async def list_rounds(labeler: Labeler, limit: int = 100) -> list[dict[str, Any]]:
    """Rounds, oldest first, each with its parent's name."""
    async with labeler.db.transaction() as session:
        found = await rounds.list_rounds(session, limit)
        names = {r.id: r for r in found}
        missing = {r.parent_id for r in found if r.parent_id and r.parent_id not in names}
        for parent_id in missing:
            parent = await rounds.get(session, parent_id)
            if parent is not None:
                names[parent_id] = parent
    return [round_record(r, names.get(r.parent_id) if r.parent_id else None) for r in found]


async def describe_round(labeler: Labeler, name: str) -> dict[str, Any]:
    """A round with its progress: samples by status, decisions by outcome, head-to-head pairs."""
    async with labeler.db.transaction() as session:
        found = await rounds.get_by_name(session, name)
        if found is None:
            raise NotFoundError(f"no round named {name!r}")
        chain = await rounds.lineage(session, found)
        record = round_record(found, chain[1] if len(chain) > 1 else None)
        record["lineage"] = [r.name for r in chain]
        record["samples"] = (
            await generations.status_counts(session, found.generation_id)
            if found.generation_id
            else {}
        )
        record["selections"] = (
            await selection.counts(session, found.selection_run_id)
            if found.selection_run_id
            else {}
        )
        record["head_to_head"] = (
            await batches.status_counts(session, found.batch_id) if found.batch_id else {}
        )
    return record
