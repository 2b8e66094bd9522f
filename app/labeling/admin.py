"""API key administration for the CLI."""

from __future__ import annotations

from app.settings import Settings
from app.store import api_keys
from app.store.db import Database
from app.store.models import ApiKey


async def create_key(settings: Settings, name: str) -> tuple[int, str]:
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            row, plain = await api_keys.create(session, name)
        return row.id, plain
    finally:
        await db.dispose()


async def list_keys(settings: Settings) -> list[ApiKey]:
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            return await api_keys.list_all(session)
    finally:
        await db.dispose()


async def revoke_key(settings: Settings, key_id: int) -> bool:
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            return await api_keys.revoke(session, key_id)
    finally:
        await db.dispose()
