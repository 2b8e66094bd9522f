"""``referee serve`` and ``referee db``: the HTTP service and its database schema."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from typing import Annotated

import typer

from app.cli.console import fail, load_settings, out
from app.errors import RefereeError

db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)


def serve(
    host: Annotated[
        str, typer.Option(envvar="REFEREE_HOST", help="Interface to bind.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="REFEREE_PORT", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
) -> None:
    """Run the HTTP API.

    Refuses an outdated database schema (run `referee db upgrade`) unless
    REFEREE_AUTO_MIGRATE=1. Every /v1 route needs an API key (make the first
    with `referee keys create admin --scope admin`); REFEREE_AUTH=off drops
    that, and is refused unless HOST is a loopback address.

    Example: referee serve --host 0.0.0.0 --port 8000
    """
    import uvicorn

    from app.api.deps import is_loopback
    from app.labeling.fleet_limits import check_redis
    from app.labeling.runtime import ensure_schema
    from app.observability.logs import configure_logging, logging_config
    from app.observability.tracing import configure_tracing

    settings = load_settings()
    # The server's output is its log: JSON lines unless stdout is a terminal, uvicorn's too.
    configure_logging(sys.stdout, "stdout")
    log = logging.getLogger("referee")
    if settings.auth == "off" and not is_loopback(host):
        fail(f"REFEREE_AUTH=off is allowed only on a loopback address (127.0.0.1, ::1), not {host}")
    try:
        configure_tracing()
        asyncio.run(ensure_schema(settings))
        asyncio.run(check_redis(settings))
    except RefereeError as exc:
        fail(exc.message)
    if settings.auth == "off":
        log.warning("auth: off (no API key checked; loopback %s only)", host)
    else:
        log.info("auth: required (every /v1 route needs an API key with its scope)")
    if workers > 1:
        # Each server process counts its metrics into files here; a scrape of any one reads all.
        metrics_dir = tempfile.mkdtemp(prefix="referee-metrics-")
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
    uvicorn.run(
        "app.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logging_config("stdout", json=not sys.stdout.isatty()),
    )


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
