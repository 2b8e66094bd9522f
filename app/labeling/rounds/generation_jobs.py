"""Generations as jobs: a prompts file (or a request body) → stored prompts → samples.

``referee generate``, ``POST /v1/generations`` and a round's generation step
all go through here:

- :func:`policy_settings` / :func:`build_policy` — the policy a
  :class:`GenerationSpec` names, checked and built (a missing key or an
  unknown provider is a clean error before anything is read);
- :func:`open_generation` — the generation of that name, created if new;
  the same name with other settings is refused, so a resumed run can never
  mix two policies' samples;
- :func:`add_prompts` — every good record stored with its ``n`` pending
  samples; a bad one becomes a reject naming its line and field; a prompt
  repeated (in the file, or from an earlier run) is stored once;
- :func:`sample` — the pending samples drawn (:class:`~app.labeling.rounds.generate.Generator`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.errors import (
    InvalidInputError,
    JudgeUnavailableError,
    TextTooLargeError,
    UnknownJudgeSpecError,
)
from app.keys import digest, prompt_messages
from app.labeling.claims import holder_is_gone
from app.labeling.inputs import Prompt, check_text_sizes, to_text
from app.labeling.jsonl import LineError, Parsed, rejected
from app.labeling.rounds.generate import GenerationProgress, Generator, GeneratorOptions
from app.labeling.text_rules import ExternalId, Metadata
from app.store import generation as store
from app.store.db import Database
from app.store.models_generation import Generation
from judges.errors import JudgeConfigError, MissingCredentialsError, ModelUnavailableError
from judges.policies.base import Policy, PolicyConfig, SamplingParams, policy_config
from judges.policies.registry import PolicyFactory
from judges.policies.registry import build_policy as build_from_config
from judges.prompts import render_text

ENQUEUE_CHUNK = 500
YIELD_EVERY = 25
MAX_SEED = 2**30
"""A request's seed is the base seed plus a sample index: both stay within a 32-bit column."""


class GenerationPromptIn(BaseModel):
    """One prompt to sample answers for: ``{"id"?, "prompt", "metadata"?}``."""

    model_config = ConfigDict(extra="forbid")

    id: ExternalId | None = Field(None, description="Your identifier for the prompt.")
    prompt: Prompt
    metadata: Metadata | None = Field(None, description="Free-form, stored as given.")


@dataclass(frozen=True, slots=True)
class GenerationSpec:
    """What a generation is: the policy, its checkpoint label, ``n`` and how to sample."""

    policy: str
    n: int
    checkpoint: str | None = None
    temperature: float | None = 1.0
    top_p: float | None = None
    max_tokens: int = 1024
    seed: int | None = None
    policy_options: dict[str, Any] = field(default_factory=dict)
    """Options of the policy (``base_url``, ``timeout_s``, ``rpm``, ``tpm``, ``device``, …)."""
    name: str | None = None
    """The generation's name; default: the source, policy, checkpoint and parameters."""

    @property
    def params(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_tokens)

    def default_name(self, source: str) -> str:
        settings = {"params": self.params.as_dict(), "seed": self.seed}
        return f"{source}|{self.policy}|{self.checkpoint or '-'}|n={self.n}|{digest(settings)[:12]}"


@dataclass
class EnqueueCounts:
    submitted: int = 0
    new: int = 0
    rejected: int = 0
    merged: int = 0
    """Lines repeating an earlier line's prompt: stored (and sampled) once."""


def policy_settings(spec: GenerationSpec) -> PolicyConfig:
    """The policy's configuration, every option checked (400 naming the bad one)."""
    if spec.n < 1:
        raise InvalidInputError("n must be at least 1", field="n")
    if spec.max_tokens < 1:
        raise InvalidInputError("max_tokens must be at least 1", field="max_tokens")
    if spec.seed is not None and not 0 <= spec.seed <= MAX_SEED:
        raise InvalidInputError(f"seed must be within 0 … {MAX_SEED}", field="seed")
    try:
        return policy_config(spec.policy, **spec.policy_options)
    except JudgeConfigError as exc:
        raise UnknownJudgeSpecError(exc.message, field="policy") from None


def build_policy(config: PolicyConfig, extra: dict[str, PolicyFactory] | None = None) -> Policy:
    """The policy, built; a missing key or model is a 503, anything else a 400."""
    try:
        return build_from_config(config, extra)
    except MissingCredentialsError as exc:
        raise JudgeUnavailableError(exc.message, env_var=exc.env_var) from None
    except ModelUnavailableError as exc:
        raise JudgeUnavailableError(exc.message, model=config.model) from None
    except JudgeConfigError as exc:
        raise UnknownJudgeSpecError(exc.message, field="policy") from None


def _columns(spec: GenerationSpec, config: PolicyConfig, source: str) -> dict[str, Any]:
    return {
        "name": spec.name or spec.default_name(source),
        "source": source,
        "policy": config.spec,
        "policy_config": config.provenance(),
        "checkpoint": spec.checkpoint,
        "n": spec.n,
        "params": spec.params.as_dict(),
        "seed": spec.seed,
    }


_COMPARED = ("policy", "checkpoint", "n", "params", "seed")


async def open_generation(
    db: Database,
    spec: GenerationSpec,
    config: PolicyConfig,
    source: str,
    api_key_id: int | None = None,
) -> Generation:
    """The generation of this name, created if new; refused if it was made otherwise."""
    values = _columns(spec, config, source)
    async with db.transaction() as session:
        generation, _ = await store.get_or_create(session, {**values, "api_key_id": api_key_id})
    differs = [k for k in _COMPARED if getattr(generation, k) != values[k]]
    if differs:
        raise InvalidInputError(
            f"generation {generation.name!r} exists with another {', '.join(differs)}: "
            "name this one differently (--name) or sample as it was",
            field="name",
            differs=differs,
        )
    return generation


def prompt_key(prompt: Any) -> str:
    """The prompt's key: one for ``"hi"`` and ``[{"role": "user", "content": "hi"}]``."""
    return digest({"prompt": prompt_messages(prompt)})


class PromptScreen:
    """The checks every prompt goes through before it is stored: size, repeats."""

    def __init__(self, source: str, max_text_chars: int) -> None:
        self.source, self.max_text_chars = source, max_text_chars
        self._seen: set[str] = set()
        self.merged = 0

    def check(self, item: Parsed[GenerationPromptIn] | LineError) -> dict[str, Any] | LineError:
        """The row to store, a reject, or an empty dict for a repeated prompt."""
        if isinstance(item, LineError):
            return item
        try:
            row = self.row(item.record, item.line)
        except (TextTooLargeError, InvalidInputError) as exc:
            return rejected(self.source, item.line, exc)
        if row["prompt_key"] in self._seen:
            self.merged += 1
            return {}
        self._seen.add(row["prompt_key"])
        return row

    def row(self, record: GenerationPromptIn, line: int) -> dict[str, Any]:
        """The prompt's row; raises (naming the field ``prompt``) if it may not be sampled."""
        text = to_text(record.prompt)
        check_text_sizes({"prompt": text}, self.max_text_chars)
        if not render_text(text).strip():
            raise InvalidInputError("prompt is empty: there is nothing to answer", field="prompt")
        stored = record.model_dump(mode="json")
        return {
            "prompt_key": prompt_key(stored["prompt"]),
            "prompt": stored["prompt"],
            "external_id": record.id,
            "metadata": record.metadata,
            "source_line": line,
        }


async def add_prompts(
    db: Database,
    generation: Generation,
    records: Iterable[Parsed[GenerationPromptIn] | LineError],
    screen: PromptScreen,
    on_reject: Callable[[LineError], None] = lambda _error: None,
    on_chunk: Callable[[int], None] = lambda _new: None,
) -> EnqueueCounts:
    """Store every good record with its pending samples, a chunk per transaction.

    ``on_chunk`` hears how many new prompts each committed chunk stored, so
    sampling can start on the first chunk while the rest is still read.
    """
    counts = EnqueueCounts()
    screened = (screen.check(r) for r in records)
    while chunk := await _next_chunk(screened):
        rows = [row for row in chunk if isinstance(row, dict) and row]
        rejects = [row for row in chunk if isinstance(row, LineError)]
        for error in rejects:
            on_reject(error)
        async with db.transaction() as session:
            new = await store.add_prompts(session, generation, rows)
            await store.add_counts(session, generation.id, len(rows), len(rejects))
        counts.new += new
        on_chunk(new)
        counts.submitted += len(rows)
        counts.rejected += len(rejects)
    counts.merged = screen.merged
    return counts


async def _next_chunk(
    screened: Iterator[dict[str, Any] | LineError],
) -> list[dict[str, Any] | LineError]:
    """Up to ENQUEUE_CHUNK screened records, letting the event loop run every few lines:
    reading is CPU work, and sampling runs beside it (requests go out, answers are stored)."""
    chunk: list[dict[str, Any] | LineError] = []
    for row in screened:
        chunk.append(row)
        if len(chunk) == ENQUEUE_CHUNK:
            break
        if len(chunk) % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return chunk


async def sample(
    db: Database,
    generation: Generation,
    policy: Policy,
    options: GeneratorOptions,
    on_progress: Callable[[GenerationProgress], None] = lambda _p: None,
    *,
    retry_failed: bool = False,
) -> Generator:
    """A generator ready to draw the generation's pending samples (``await gen.run()``).

    Leases held by dead processes of this host (a SIGKILLed run) are
    released first; ``retry_failed`` puts failed samples back in the queue.
    """
    async with db.transaction() as session:
        if retry_failed:
            await store.reset_failed(session, generation.id)
    await release_dead_local_leases(db)
    params = SamplingParams(**generation.params)
    return Generator(
        db, policy, generation.id, generation.n, params, generation.seed, options, on_progress
    )


async def release_dead_local_leases(db: Database) -> int:
    """Free sample leases held by processes of this host that no longer exist."""
    host = socket.gethostname()
    async with db.transaction() as session:
        owners = await store.lease_owners_like(session, f"{host}:")
        dead = [o for o in owners if holder_is_gone(o)]
        return await store.release(session, dead) if dead else 0


async def finish(db: Database, generation: Generation) -> dict[str, int]:
    """Mark the generation done once no sample is pending; its samples by status."""
    async with db.transaction() as session:
        counts = await store.status_counts(session, generation.id)
        if not counts.get("pending"):
            await store.set_status(session, generation.id, "done")
    return counts
