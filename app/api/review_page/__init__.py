"""/review: the page where people review AI labels, served by the app itself.

Server-rendered (Jinja2) with one small script and one stylesheet served
from here: no build step, nothing from another origin, so it works offline.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.api.review_page.pages import STATIC_DIR, STATIC_PATH
from app.api.review_page.routes import router
from app.api.review_page.session import Sessions
from app.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Add the page's routes and static files, and the signer of its session cookies."""
    app.state.review_sessions = Sessions(settings)
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="review-static")
