"""Labeling a stream of JSONL pairs: the use case behind ``referee label``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import IO

from rich.console import Console

from app.errors import JudgeFailedError
from app.labeling.jsonl import LineError, read_pairs
from app.runtime import runtime
from app.settings import Settings


@dataclass
class LabelSummary:
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[LineError] = field(default_factory=list)


async def label_stream(
    settings: Settings,
    stream: IO[str],
    source: str,
    judge: str | None,
    *,
    force: bool = False,
    err: Console,
) -> LabelSummary:
    """Judge each line's pair in turn; a bad line is reported and skipped, never fatal."""
    summary = LabelSummary()
    async with runtime(settings) as labeler:
        config = labeler.resolve(judge)
        labeler.judge_for(config)  # a missing key fails before any line is read
        for item in read_pairs(stream, source):
            if isinstance(item, LineError):
                summary.counts["rejected"] += 1
                summary.errors.append(item)
                err.print(str(item), markup=False)
                continue
            try:
                result = await labeler.compare(item.pair, config.label, force=force)
            except JudgeFailedError as exc:
                summary.counts["failed"] += 1
                err.print(f"{source}:{item.line}: {exc.message}", markup=False)
                continue
            summary.counts["labeled" if result.created else "reused"] += 1
    return summary
