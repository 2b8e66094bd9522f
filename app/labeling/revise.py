"""Critique → revision under a constitution, stored round by round with every call.

A run is keyed by the prompt, the initial response (or the generator that
writes it), the judge configuration, the constitution's content-addressed
ref, the rounds, the named principle and the seed: asking again reuses a
finished run, a failed one is run again, and a constitution whose text
changed (a new ref) never reuses runs made under the old one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.errors import InvalidInputError, JudgeFailedError
from app.keys import KEY_SCHEMA_VERSION, document_key
from app.labeling.calls import call_row
from app.labeling.compare import Labeler
from app.labeling.inputs import Prompt, Response, check_text_sizes, to_text
from app.labeling.screening import screen_empty
from app.labeling.text_rules import ExternalId, Metadata
from app.store import revisions
from app.store.models import Revision
from judges import JudgeConfig, JudgeConfigError, generate_response, revise_response
from judges.base import Judge
from judges.cai.constitutions import Constitution
from judges.types import Text

MAX_ROUNDS = 10


class RevisionItemIn(BaseModel):
    """A prompt and, unless a generator writes it, the response to critique and revise."""

    model_config = ConfigDict(extra="forbid")

    id: ExternalId | None = Field(None, description="Your identifier for the item.")
    prompt: Prompt
    response: Response | None = Field(None, description="Omit to have the generator write it.")
    metadata: Metadata | None = Field(None, description="Free-form, stored as given.")


@dataclass(frozen=True, slots=True)
class RevisionOptions:
    constitution: str
    judge: str | None = None
    rounds: int = 1
    principle: str | None = None
    seed: str = "0"
    generator: str | None = None
    batch_id: uuid.UUID | None = None
    """The batch (a `referee revise` run) a new run is filed under, for exports by batch."""
    rpm: float | None = None
    tpm: float | None = None
    """Client-side rate limits on the judge and the generator (not part of any key)."""


@dataclass(frozen=True, slots=True)
class RevisionResult:
    revision: Revision
    created: bool


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything resolved before any model is called."""

    constitution: Constitution
    config: JudgeConfig
    judge: Judge
    generator_config: JudgeConfig | None
    generator: Judge | None
    key: str


class Reviser:
    """The critique → revision use case over a labeler's database, judges and constitutions."""

    def __init__(self, labeler: Labeler) -> None:
        self.labeler = labeler

    def check(self, options: RevisionOptions) -> tuple[Constitution, JudgeConfig, Judge]:
        """Resolve the options shared by every item; raises on a bad one before any call."""
        self.labeler.limits.check_rounds(options.rounds)
        if not 1 <= options.rounds <= MAX_ROUNDS:
            raise InvalidInputError(
                f"rounds must be between 1 and {MAX_ROUNDS}, got {options.rounds}", field="rounds"
            )
        constitution = self.labeler.constitutions.get(options.constitution)
        if options.principle is not None:
            try:
                constitution.principle(options.principle)
            except JudgeConfigError as exc:
                raise InvalidInputError(exc.message, field="principle") from None
        config = self._resolve(options.judge, options)
        judge = self.labeler.judge_for(config)
        if options.generator is not None:
            self.labeler.judge_for(self._resolve(options.generator, options))
        return constitution, config, judge

    def _resolve(self, spec: str | None, options: RevisionOptions) -> JudgeConfig:
        return self.labeler.with_limits(self.labeler.resolve(spec), options.rpm, options.tpm)

    def plan(self, item: RevisionItemIn, options: RevisionOptions) -> _Plan:
        """Check the request and resolve its judges and constitution; raises on bad input."""
        texts = {"prompt": to_text(item.prompt)}
        if item.response is not None:
            texts["response"] = to_text(item.response)
        check_text_sizes(texts, self.labeler.settings.max_text_chars)
        screen_empty(texts, self.labeler.settings.empty_texts)
        constitution, config, judge = self.check(options)
        generator_config = generator = None
        if item.response is None:
            if options.generator is None:
                raise InvalidInputError(
                    "no response given: send one, or name a generator to write it",
                    field="response",
                )
            generator_config = self._resolve(options.generator, options)
            generator = self.labeler.judge_for(generator_config)
        key = revision_key(item, options, config, generator_config, constitution)
        return _Plan(constitution, config, judge, generator_config, generator, key)

    async def revise(self, item: RevisionItemIn, options: RevisionOptions) -> RevisionResult:
        """Run (or reuse) the critique → revision loop for one item.

        Identical runs in flight in this process run once; their callers share it.
        """
        plan = self.plan(item, options)
        judges = (plan.judge,) if plan.generator is None else (plan.judge, plan.generator)
        async with self.labeler.registry.holding(*judges):
            result, started = await self.labeler.flights.run(
                ("revision", plan.key), lambda: self._revise_once(item, options, plan, judges)
            )
        # Callers who joined a run in flight were not the ones who paid for it.
        return result if started else RevisionResult(result.revision, created=False)

    async def _revise_once(
        self,
        item: RevisionItemIn,
        options: RevisionOptions,
        plan: _Plan,
        judges: tuple[Judge, ...],
    ) -> RevisionResult:
        async with self.labeler.registry.holding(*judges):
            return await self._run(item, options, plan)

    async def _run(
        self, item: RevisionItemIn, options: RevisionOptions, plan: _Plan
    ) -> RevisionResult:
        db = self.labeler.db
        async with db.transaction() as session:
            existing = await revisions.get_by_label_key(session, plan.key)
            if existing is not None and existing.status == "done":
                return RevisionResult(existing, created=False)
            revision_id = await revisions.insert_if_absent(
                session, revision_values(item, options, plan)
            )
            stored = await revisions.get(session, revision_id)
        assert stored is not None
        response = await self._initial_response(stored, item, plan)
        outcome = await revise_response(
            plan.judge,
            to_text(item.prompt),
            response,
            plan.constitution,
            rounds=options.rounds,
            principle_id=options.principle,
            seed=options.seed,
        )
        attempt = 1 + max((r.attempt for r in stored.rounds), default=0)
        result: dict[str, Any] = {
            "status": "done" if outcome.succeeded else "failed",
            "error_class": outcome.error_class,
            "revised": outcome.revised if outcome.succeeded else None,
            "final_response": outcome.final,
        }
        rounds = [
            {
                "attempt": attempt,
                "round": r.index,
                "principle": r.principle_id,
                "critique": r.critique,
                "needs_revision": r.needs_revision,
                "revised_response": r.revision,
            }
            for r in outcome.rounds
        ]
        calls = [call_row(plan.config, call) for call in outcome.calls]
        finished, taken = await self._store_final(revision_id, calls, rounds, result)
        if taken:
            return RevisionResult(finished, created=False)
        if not outcome.succeeded:
            raise JudgeFailedError(
                f"judge {plan.config.label} failed: {outcome.error_class}: {outcome.error_message}",
                revision_id=str(revision_id),
                error_class=outcome.error_class,
            )
        return RevisionResult(finished, created=True)

    async def _initial_response(self, stored: Revision, item: RevisionItemIn, plan: _Plan) -> Text:
        """The response to revise: given, generated before, or generated now."""
        if item.response is not None:
            return to_text(item.response)
        if stored.response is not None:
            return str(stored.response)  # written by the generator on an earlier attempt
        assert plan.generator is not None
        assert plan.generator_config is not None
        outcome = await generate_response(plan.generator, to_text(item.prompt))
        calls = [call_row(plan.generator_config, call) for call in outcome.calls]
        if outcome.text is None:
            failed = {"status": "failed", "error_class": outcome.error_class}
            await self._store(stored.id, calls, [], failed)
            raise JudgeFailedError(
                f"generator {plan.generator_config.label} failed: "
                f"{outcome.error_class}: {outcome.error_message}",
                revision_id=str(stored.id),
                error_class=outcome.error_class,
            )
        await self._store(stored.id, calls, [], {"response": outcome.text})
        return outcome.text

    async def _store_final(
        self,
        revision_id: uuid.UUID,
        calls: list[dict[str, Any]],
        rounds: list[dict[str, Any]],
        result: dict[str, Any],
    ) -> tuple[Revision, bool]:
        """Store a run's end; True when another process finished the run meanwhile.

        Then the first finished run stands (the key is unique) and this one
        adds only its calls, which were paid for.
        """
        async with self.labeler.db.transaction() as session:
            taken = await revisions.lock_status(session, revision_id) == "done"
            if taken:
                await revisions.write_result(session, revision_id, calls, [], {})
            else:
                await revisions.write_result(session, revision_id, calls, rounds, result)
            found = await revisions.get(session, revision_id)
        assert found is not None
        return found, taken

    async def _store(
        self,
        revision_id: uuid.UUID,
        calls: list[dict[str, Any]],
        rounds: list[dict[str, Any]],
        result: dict[str, Any],
    ) -> Revision:
        async with self.labeler.db.transaction() as session:
            await revisions.write_result(session, revision_id, calls, rounds, result)
            found = await revisions.get(session, revision_id)
        assert found is not None
        return found

    async def find(self, revision_id: uuid.UUID) -> Revision | None:
        async with self.labeler.db.transaction() as session:
            return await revisions.get(session, revision_id)


def revision_key(
    item: RevisionItemIn,
    options: RevisionOptions,
    config: JudgeConfig,
    generator: JudgeConfig | None,
    constitution: Constitution,
) -> str:
    document = {
        "v": KEY_SCHEMA_VERSION,
        "kind": "revision",
        "item": item.model_dump(include={"prompt", "response"}, mode="json"),
        "generator": generator.fingerprint() if generator else None,
        "judge": config.fingerprint(),
        "constitution": constitution.ref,
        "rounds": options.rounds,
        "principle": options.principle,
        "seed": options.seed,
    }
    return document_key(document)


def revision_values(item: RevisionItemIn, options: RevisionOptions, plan: _Plan) -> dict[str, Any]:
    stored = item.model_dump(include={"prompt", "response"}, mode="json")
    return {
        "label_key": plan.key,
        "external_id": item.id,
        "prompt": stored["prompt"],
        "response": stored.get("response"),
        "generator": plan.generator_config.label if plan.generator_config else None,
        "meta": item.metadata,
        "judge": plan.config.label,
        "judge_spec": plan.config.spec,
        "judge_config": plan.config.fingerprint(),
        "constitution": plan.constitution.ref,
        "constitution_id": plan.constitution.id,
        "constitution_version": plan.constitution.version,
        "rounds_requested": options.rounds,
        "principle": options.principle,
        "seed": options.seed,
        "batch_id": options.batch_id,
        "status": "pending",
    }
