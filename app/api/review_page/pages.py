"""Rendering a page: the templates, and the headers every page of /review carries."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PATH = "/review/static"

# Nothing inline, nothing from another origin: data that slipped past the
# sanitiser still could not run a script, load a style, or send a request.
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Pages show data and carry CSRF tokens: never kept by a shared cache.
    "Cache-Control": "no-store",
}


@functools.cache
def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = lambda name: f"{STATIC_PATH}/{name}"
    return env


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def error_page(status: int, title: str, detail: str, **context: Any) -> HTMLResponse:
    return page("error.html", status, title=title, detail=detail, **context)


def redirect(path: str) -> RedirectResponse:
    """303 See Other: after a POST the browser GETs the page, so reload never re-submits."""
    return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})
