"""``POST /v1/generations``: sample candidates for the prompts of one request.

Everything a request could make the server pay for is bounded before a
row is stored or a model called: ``n`` (REFEREE_MAX_GENERATION_N), the
prompts (REFEREE_MAX_GENERATION_PROMPTS), ``max_tokens`` per sample
(REFEREE_MAX_GENERATION_TOKENS), each prompt's size and metadata. A
request names a policy by spec only: where an OpenAI-compatible server is
(``OPENAI_BASE_URL``) is the operator's setting, never the caller's, and a
``local:`` policy loads weights into the server only where the operator
allows ad-hoc local models. The same request again (same prompts, same
settings) reuses the generation and draws only what is still pending.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from app.errors import ForbiddenError, InvalidInputError, TextTooLargeError
from app.keys import digest
from app.labeling.access import acting_key
from app.labeling.compare import Labeler
from app.labeling.jsonl import Parsed
from app.labeling.limits import IN_PROCESS_PROVIDERS, check_metadata
from app.labeling.rounds.generate import GeneratorOptions
from app.labeling.rounds.generation_jobs import (
    GenerationPromptIn,
    GenerationSpec,
    PromptScreen,
    add_prompts,
    build_policy,
    finish,
    open_generation,
    policy_settings,
    sample,
)
from app.store import generation as store
from app.store.models_generation import Generation

HTTP_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class GenerationView:
    """A generation with its prompts' candidates, samples (provenance) and counts."""

    generation: Generation
    counts: dict[str, int]
    cost_usd: Any
    prompts: list[store.PromptCandidates]
    samples: dict[uuid.UUID, list[store.SampleView]]
    total_prompts: int


def check_request(
    labeler: Labeler, spec: GenerationSpec, prompts: list[GenerationPromptIn]
) -> None:
    """Every bound of a request, checked before anything is stored or sent."""
    settings = labeler.settings
    bounds = (
        ("n", spec.n, settings.max_generation_n, "REFEREE_MAX_GENERATION_N"),
        (
            "prompts",
            len(prompts),
            settings.max_generation_prompts,
            "REFEREE_MAX_GENERATION_PROMPTS",
        ),
        (
            "max_tokens",
            spec.max_tokens,
            settings.max_generation_tokens,
            "REFEREE_MAX_GENERATION_TOKENS",
        ),
    )
    for name, value, limit, setting in bounds:
        if value > limit:
            raise InvalidInputError(
                f"{name} is {value}; the limit is {limit} per request ({setting})",
                field=name,
                limit=limit,
                setting=setting,
            )
    config = policy_settings(spec)
    if config.provider in IN_PROCESS_PROVIDERS and not settings.allow_adhoc_local:
        raise ForbiddenError(
            f"policy {config.spec!r} would load a model into the server: over HTTP, local "
            "policies need REFEREE_ALLOW_ADHOC_LOCAL=true",
            field="policy",
            setting="REFEREE_ALLOW_ADHOC_LOCAL",
        )
    screen = PromptScreen("body", settings.max_text_chars)
    for index, prompt in enumerate(prompts):
        where = f"prompts[{index}]"
        try:
            check_metadata(prompt.metadata, settings.max_metadata_kb)
        except TextTooLargeError as exc:
            raise TextTooLargeError(exc.message, field=f"{where}.metadata") from None
        try:
            screen.row(prompt, index + 1)
        except (TextTooLargeError, InvalidInputError) as exc:
            raise type(exc)(f"{where}.{exc.message}", field=f"{where}.prompt") from None


def request_name(spec: GenerationSpec, prompts: list[GenerationPromptIn]) -> str:
    """The default name of a request's generation: a hash of its prompts and settings."""
    body = [p.model_dump(mode="json") for p in prompts]
    return f"http|{spec.default_name(digest(body)[:16])}"


async def generate(
    labeler: Labeler, spec: GenerationSpec, prompts: list[GenerationPromptIn]
) -> GenerationView:
    """Store the prompts and draw their samples; the generation as stored once drawn."""
    check_request(labeler, spec, prompts)
    config = policy_settings(spec)
    policy = build_policy(config)
    db = labeler.db
    try:
        named = spec if spec.name else replace(spec, name=request_name(spec, prompts))
        generation = await open_generation(db, named, config, "http", api_key_id=acting_key.get())
        screen = PromptScreen("body", labeler.settings.max_text_chars)
        records = (Parsed(index + 1, prompt) for index, prompt in enumerate(prompts))
        await add_prompts(db, generation, records, screen)
        generator = await sample(
            db, generation, policy, GeneratorOptions(concurrency=HTTP_CONCURRENCY)
        )
        await generator.run()
        await finish(db, generation)
    finally:
        await policy.aclose()
    view = await find(labeler, generation.id, offset=0, limit=len(prompts))
    assert view is not None  # just stored
    return view


async def find(
    labeler: Labeler, generation_id: uuid.UUID, *, offset: int, limit: int
) -> GenerationView | None:
    """A generation with a page of its prompts (file order), or None."""
    async with labeler.db.transaction() as session:
        generation = await store.get(session, generation_id)
        if generation is None:
            return None
        prompts = await store.candidates_by_prompt(
            session, generation_id, offset=offset, limit=limit
        )
        samples = await store.samples_by_prompt(session, [p.prompt_id for p in prompts])
        return GenerationView(
            generation=generation,
            counts=await store.status_counts(session, generation_id),
            cost_usd=await store.total_cost(session, generation_id),
            prompts=prompts,
            samples=samples,
            total_prompts=await store.prompt_count(session, generation_id),
        )


async def recent(labeler: Labeler, limit: int) -> list[Generation]:
    async with labeler.db.transaction() as session:
        return await store.list_generations(session, limit)
