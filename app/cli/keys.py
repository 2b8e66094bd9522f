"""``referee keys``: API keys for the HTTP service, with their scopes and daily budgets."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

import typer

from app.cli.console import err, fail, load_settings, out

keys_cli = typer.Typer(help="API keys for the HTTP service.", no_args_is_help=True)


class ScopeName(StrEnum):
    """The scopes of app.labeling.access.Scope, as the CLI offers them."""

    read = "read"
    label = "label"
    review = "review"
    admin = "admin"


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who or what the key is for.")],
    scope: Annotated[
        list[ScopeName],
        typer.Option(
            "--scope",
            help="read: GET routes, exports, reports. label: comparisons, ratings, revisions,"
            " batches, feedback. review: human reviews. admin: everything. Repeat for several.",
        ),
    ],
    daily_budget: Annotated[
        Decimal | None,
        typer.Option(
            "--daily-budget",
            min=0,
            help="USD of model calls this key may spend per UTC day (default: no limit).",
        ),
    ] = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash.

    With REFEREE_AUTH=required (the default) every /v1 route needs
    `Authorization: Bearer <key>` of a key with the route's scope.

    Examples:
      referee keys create admin --scope admin
      referee keys create trainer --scope label --scope read --daily-budget 5
    """
    from app.labeling.access import SCOPES
    from app.labeling.admin import create_key

    scopes = [s for s in SCOPES if s in {str(v) for v in scope}]
    key_id, plain = asyncio.run(create_key(load_settings(), name, scopes, daily_budget))
    budget = f", ${daily_budget}/day" if daily_budget is not None else ""
    out.print(f"key {key_id} for {name} ({' '.join(scopes)}{budget}): {plain}", markup=False)
    err.print("store it now: it cannot be shown again", markup=False)


@keys_cli.command("list")
def keys_list() -> None:
    """List API keys: id, name, prefix, scopes, daily budget, state."""
    from app.labeling.admin import list_keys

    for row in asyncio.run(list_keys(load_settings())):
        state = "revoked" if row.revoked_at else "active"
        budget = "-"
        if row.daily_budget_usd is not None:
            budget = f"${row.daily_budget_usd.normalize():f}/day"
        scopes = ",".join(row.scopes)
        out.print(f"{row.id}\t{row.name}\t{row.prefix}…\t{scopes}\t{budget}\t{state}", markup=False)


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The key's id.")]) -> None:
    """Revoke an API key: it is refused from the next request on, and its batches stop."""
    from app.labeling.admin import revoke_key

    if not asyncio.run(revoke_key(load_settings(), key_id)):
        fail(f"no active key {key_id}")
    out.print(f"revoked key {key_id}", markup=False)
