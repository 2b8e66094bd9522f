"""What one request from an API client may ask for, checked before any call or write.

A request fans out: a jury's members each judge the pair, under each of
``principles`` sampled principles, in both orders; a revision makes two
calls per round. The API's labeler checks every multiplier against the
operator's settings; the operator's own CLI runs with :data:`OPERATOR`,
bounded only by the hard caps of each use case.

Ad-hoc ``local:`` judges load a model into this process from any path or
Hub id, so over HTTP only the judges file's (and the default judge) may run
in process, unless the operator allows them.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from app.errors import ForbiddenError, InvalidInputError, TextTooLargeError
from app.settings import Settings
from judges import JudgeConfig
from judges.jury import JuryConfig, PairJudgeConfig

# Providers whose judges run in this process (weights from a path or the Hub).
IN_PROCESS_PROVIDERS = frozenset({"local"})


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Per-request bounds; ``None`` means no bound beyond the use case's own."""

    allow_adhoc_local: bool = True
    max_jury_members: int | None = None
    max_principles: int | None = None
    max_revision_rounds: int | None = None
    max_batch_pairs: int | None = None
    max_metadata_kb: int | None = None

    @classmethod
    def for_clients(cls, settings: Settings) -> RequestLimits:
        """The bounds on requests from API clients, from the operator's settings."""
        return cls(
            allow_adhoc_local=settings.allow_adhoc_local,
            max_jury_members=settings.max_jury_members,
            max_principles=settings.max_principles,
            max_revision_rounds=settings.max_revision_rounds,
            max_batch_pairs=settings.max_batch_pairs,
            max_metadata_kb=settings.max_metadata_kb,
        )

    def check_jury(self, config: PairJudgeConfig) -> None:
        """An inline jury's size; a jury named in the judges file is the operator's choice."""
        if isinstance(config, JuryConfig) and config.name is None:
            _check("jury members", len(config.members), self.max_jury_members, "judge")

    def check_principles(self, principles: int) -> None:
        _check("principles", principles, self.max_principles, "principles")

    def check_rounds(self, rounds: int) -> None:
        _check("revision rounds", rounds, self.max_revision_rounds, "rounds")

    def check_batch_records(self, count: int) -> None:
        """A batch upload's record count, counted before anything of it is stored."""
        _check("batch records", count, self.max_batch_pairs, "body")

    def check_metadata(self, metadata: dict[str, Any] | None) -> None:
        if self.max_metadata_kb is not None:
            check_metadata(metadata, self.max_metadata_kb)

    def check_in_process(self, config: PairJudgeConfig, named: Collection[str]) -> None:
        """Refuse an in-process judge (or jury member) the judges file does not name.

        A jury from the judges file is the operator's: its members pass as written.
        """
        if self.allow_adhoc_local:
            return
        if isinstance(config, JuryConfig):
            if config.name is not None:
                return
            members: tuple[JudgeConfig, ...] = config.members
        else:
            members = (config,)
        for member in members:
            if member.provider in IN_PROCESS_PROVIDERS and member.name not in named:
                raise ForbiddenError(
                    f"judge {member.spec!r} would load a model into the server: over HTTP, "
                    "in-process judges must be named in the judges file "
                    "(or the operator sets REFEREE_ALLOW_ADHOC_LOCAL=true)",
                    field="judge",
                    setting="REFEREE_ALLOW_ADHOC_LOCAL",
                )


def check_metadata(metadata: dict[str, Any] | None, max_kb: int) -> None:
    """Refuse metadata over ``max_kb`` KB of compact JSON (REFEREE_MAX_METADATA_KB, 413).

    Its nesting is bounded by the pydantic type already (app.labeling.text_rules).
    """
    if metadata is None:
        return
    # Compact JSON as stored; surrogatepass so a lone surrogate is counted, not a
    # crash (whether it may be stored at all is the type's decision).
    encoded = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))
    size = len(encoded.encode("utf-8", "surrogatepass"))
    if size > max_kb * 1024:
        raise TextTooLargeError(
            f"metadata is {size} bytes of JSON; the limit is {max_kb} KB (REFEREE_MAX_METADATA_KB)",
            field="metadata",
        )


OPERATOR = RequestLimits()
"""The operator's CLI: any judge it can build, no per-request bounds."""

_SETTINGS = {
    "jury members": "REFEREE_MAX_JURY_MEMBERS",
    "principles": "REFEREE_MAX_PRINCIPLES",
    "revision rounds": "REFEREE_MAX_REVISION_ROUNDS",
    "batch records": "REFEREE_MAX_BATCH_PAIRS",
}


def _check(what: str, value: int, limit: int | None, field: str) -> None:
    if limit is not None and value > limit:
        setting = _SETTINGS[what]
        raise InvalidInputError(
            f"{value} {what} is over the limit of {limit} per request ({setting})",
            field=field,
            limit=limit,
            setting=setting,
        )
