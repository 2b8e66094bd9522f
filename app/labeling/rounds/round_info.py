"""Rounds over HTTP and on show: what a round is, how far it got, and a run in the background."""

from __future__ import annotations

import asyncio
from typing import Any

from app.errors import InvalidInputError, NotFoundError, TooManyRequestsError
from app.labeling.access import acting_key
from app.labeling.batch import Progress
from app.labeling.compare import Labeler
from app.labeling.jsonl import Parsed
from app.labeling.rounds.generation_jobs import GenerationPromptIn, build_policy
from app.labeling.rounds.generation_requests import HTTP_CONCURRENCY, check_request
from app.labeling.rounds.round_run import (
    RoundPlan,
    RoundSpec,
    RoundTransport,
    open_round,
    plan_round,
    run_round,
)
from app.labeling.worker import BackgroundWorkers
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


class RoundRunner:
    """A round run as a background job of the API (see app.labeling.worker.BackgroundWorkers).

    Stopping cancels it outright: every stage resumes from what is stored,
    so a cancelled run loses only the calls in flight, and the same request
    again continues it.
    """

    def __init__(self, labeler: Labeler, plan: RoundPlan, transport: RoundTransport) -> None:
        self.labeler, self.plan, self.transport = labeler, plan, transport
        self._task: asyncio.Task[Any] | None = None

    async def run(self) -> Progress:
        self._task = asyncio.current_task()
        summary = await run_round(
            self.labeler, self.plan, self.transport, api_key_id=acting_key.get()
        )
        return summary.compare.progress if summary.compare else Progress()

    def stop(self, reason: str) -> None:
        if self._task is not None:
            self._task.cancel(reason)


ROUND_RETRY_AFTER_S = 30


async def _check_room(labeler: Labeler, workers: BackgroundWorkers, name: str) -> None:
    """429 when REFEREE_MAX_RUNNING_ROUNDS rounds run and this request is not one of them.

    The same request for a running round joins it (nothing runs twice), so it
    is always let through.
    """
    async with labeler.db.transaction() as session:
        found = await rounds.get_by_name(session, name)
    if found is not None and workers.is_running(found.id):
        return
    limit = labeler.settings.max_running_rounds
    if workers.running(RoundRunner) >= limit:
        raise TooManyRequestsError(
            f"{limit} rounds are running on this server (REFEREE_MAX_RUNNING_ROUNDS); "
            "send the request again once one finishes",
            retry_after_s=ROUND_RETRY_AFTER_S,
            max_running_rounds=limit,
        )


async def start_round(
    labeler: Labeler,
    workers: BackgroundWorkers | None,
    spec: RoundSpec,
    prompts: list[GenerationPromptIn],
) -> dict[str, Any]:
    """``POST /v1/rounds``: check every bound, store the round, run it in the background.

    Everything a request could make the server pay for is bounded before the
    round is stored: n, the prompts and max_tokens as ``POST /v1/generations``
    bounds them (REFEREE_MAX_GENERATION_*), a tournament's pairs per prompt
    (at most every pair of n), the policy and judge named (the parent must
    exist, and the name be free or made with the same parameters).
    """
    records = [Parsed(index + 1, prompt) for index, prompt in enumerate(prompts)]
    plan = plan_round(labeler, spec, records, "http")
    check_request(labeler, plan.generation, prompts)
    if spec.budget is not None and spec.budget > spec.n * (spec.n - 1) // 2:
        raise InvalidInputError(
            f"budget is {spec.budget} pairs per prompt; {spec.n} candidates make at most "
            f"{spec.n * (spec.n - 1) // 2}",
            field="budget",
        )
    # A policy that cannot be built (no provider key) is a 503 now, not a failed job later.
    await build_policy(plan.policy_config).aclose()
    if workers is not None:
        await _check_room(labeler, workers, spec.name)
    found, _ = await open_round(
        labeler,
        spec,
        plan.params,
        plan.judge.label,
        plan.source,
        len(plan.rows),
        acting_key.get(),
    )
    if workers is not None and found.stage != "done":
        workers.start(found.id, RoundRunner(labeler, plan, RoundTransport(HTTP_CONCURRENCY)))
    return await describe_round(labeler, spec.name)
