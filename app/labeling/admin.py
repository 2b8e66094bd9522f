"""API key administration for the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.labeling.access import Scope
from app.settings import Settings
from app.store import api_keys
from app.store.db import Database
from app.store.models import ApiKey


@asynccontextmanager
async def _transaction(settings: Settings) -> AsyncIterator[AsyncSession]:
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            yield session
    finally:
        await db.dispose()


async def create_key(
    settings: Settings,
    name: str,
    scopes: Sequence[Scope],
    daily_budget_usd: Decimal | None = None,
) -> tuple[int, str]:
    async with _transaction(settings) as session:
        row, plain = await api_keys.create(session, name, scopes, daily_budget_usd)
    return row.id, plain


async def list_keys(settings: Settings) -> list[ApiKey]:
    async with _transaction(settings) as session:
        return await api_keys.list_all(session)


async def revoke_key(settings: Settings, key_id: int) -> bool:
    async with _transaction(settings) as session:
        return await api_keys.revoke(session, key_id)
