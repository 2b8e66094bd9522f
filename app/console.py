"""Console helpers shared by the CLI's command modules."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from app.settings import Settings

T = TypeVar("T")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """A user error: one clean line on stderr, no traceback."""
    err.print(f"[red]error:[/red] {message}", markup=True)
    raise typer.Exit(code)


def run_fast(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run long labeling work on uvloop where it exists.

    Thousands of HTTP calls in flight make the event loop itself the hot
    path; uvloop cuts the per-callback cost that otherwise shows up as
    added latency on every model call.
    """
    try:
        import uvloop
    except ImportError:  # Windows: no uvloop, the standard loop works
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        fail(f"bad REFEREE_* setting: {exc}")
