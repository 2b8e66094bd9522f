"""Request dependencies: the labeler built in the lifespan, and API-key checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import UnauthorizedError
from app.labeling.compare import Labeler
from app.store import api_keys
from app.store.db import Database

_bearer = HTTPBearer(auto_error=False, description="An API key from `referee keys create`.")


def get_labeler(request: Request) -> Labeler:
    labeler: Labeler = request.app.state.labeler
    return labeler


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def require_api_key(
    db: Annotated[Database, Depends(get_db)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Open while no key exists; once one does, every /v1 route needs a valid Bearer key."""
    async with db.transaction() as session:
        if not await api_keys.any_active(session):
            return
        if credentials is not None and await api_keys.is_valid(session, credentials.credentials):
            return
    raise UnauthorizedError("a valid API key is required: send Authorization: Bearer <key>")


LabelerDep = Annotated[Labeler, Depends(get_labeler)]
DatabaseDep = Annotated[Database, Depends(get_db)]
