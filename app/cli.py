"""The ``referee`` command line: a thin shell over app.labeling."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from app.errors import RefereeError
from app.settings import Settings

cli = typer.Typer(
    name="referee",
    help="AI-feedback labeling: judge pairs, store verdicts with provenance, export datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_cli = typer.Typer(help="API keys for the HTTP service.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(keys_cli, name="keys")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """A user error: one clean line on stderr, no traceback."""
    err.print(f"[red]error:[/red] {message}", markup=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        fail(f"bad REFEREE_* setting: {exc}")


@cli.command()
def serve(
    host: Annotated[
        str, typer.Option(envvar="REFEREE_HOST", help="Interface to bind.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="REFEREE_PORT", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
) -> None:
    """Run the HTTP API.

    Refuses an outdated database schema (run `referee db upgrade`) unless
    REFEREE_AUTO_MIGRATE=1.

    Example: referee serve --host 0.0.0.0 --port 8000
    """
    import uvicorn

    from app.runtime import ensure_schema

    settings = load_settings()
    try:
        asyncio.run(ensure_schema(settings))
    except RefereeError as exc:
        fail(exc.message)
    uvicorn.run("app.api.app:create_app", factory=True, host=host, port=port, workers=workers)


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: the newest).

    Example: REFEREE_DATABASE_URL=postgresql://user@host/referee referee db upgrade
    """
    from app.store import migrate

    settings = load_settings()
    migrate.upgrade(settings.database_url, revision)
    out.print(f"database at {', '.join(sorted(migrate.current_revisions(settings.database_url)))}")


@db_cli.command("current")
def db_current() -> None:
    """Show the schema revision of the database and whether it is up to date."""
    from app.store import migrate

    url = load_settings().database_url
    current = migrate.current_revisions(url) or {"(empty)"}
    state = "up to date" if migrate.is_up_to_date(url) else "outdated: run `referee db upgrade`"
    out.print(f"{', '.join(sorted(current))} ({state})")


@cli.command()
def label(
    file: Annotated[str, typer.Argument(help="JSONL of pairs, or - for stdin.")],
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge", "-j", envvar="REFEREE_DEFAULT_JUDGE", help="provider:model or a named judge."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Judge again pairs that have a verdict.")] = False,
) -> None:
    """Judge every pair in a JSONL file (both orders) and store the verdicts.

    Each line: {"id"?, "prompt", "response_a", "response_b", "metadata"?}.
    Pairs already judged with the same judge configuration are skipped.
    Bad lines are reported with their line number; the others proceed.

    Examples:

      referee label pairs.jsonl --judge anthropic:claude-sonnet-4-5

      cat pairs.jsonl | referee label - --judge openai:gpt-4o-mini
    """
    from app.labeling.run import label_stream

    settings = load_settings()
    try:
        stream = sys.stdin if file == "-" else Path(file).open(encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    source = "<stdin>" if file == "-" else file
    with stream:
        try:
            summary = asyncio.run(
                label_stream(settings, stream, source, judge, force=force, err=err)
            )
        except RefereeError as exc:
            fail(exc.message)
    counts: Counter[str] = summary.counts
    out.print(
        f"labeled {counts['labeled']} (reused {counts['reused']}), "
        f"failed {counts['failed']}, rejected lines {counts['rejected']}"
    )
    if counts["failed"] or counts["rejected"]:
        raise typer.Exit(1)


@keys_cli.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="Who or what the key is for.")]) -> None:
    """Create an API key; it is printed once and stored only as a hash.

    Once any key exists, every /v1 route requires `Authorization: Bearer <key>`.
    """
    from app.labeling.admin import create_key

    key_id, plain = asyncio.run(create_key(load_settings(), name))
    out.print(f"key {key_id} for {name}: {plain}")
    err.print("store it now: it cannot be shown again")


@keys_cli.command("list")
def keys_list() -> None:
    """List API keys (prefixes only)."""
    from app.labeling.admin import list_keys

    for row in asyncio.run(list_keys(load_settings())):
        state = "revoked" if row.revoked_at else "active"
        out.print(f"{row.id}\t{row.name}\t{row.prefix}…\t{state}")


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The key's id.")]) -> None:
    """Revoke an API key."""
    from app.labeling.admin import revoke_key

    if not asyncio.run(revoke_key(load_settings(), key_id)):
        fail(f"no active key {key_id}")
    out.print(f"revoked key {key_id}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
