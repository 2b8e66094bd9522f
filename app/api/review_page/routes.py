"""The routes of /review: sign-in and sign-out, the queue list, an item, answer and undo.

HTML routes, left out of the OpenAPI document: they take form posts from
the page's own forms. Each route's scope is its line in
app.api.deps.ROUTE_ACCESS, checked against the key the session was signed
in with on every request; without a session GET /review shows the sign-in
form and nothing else, and every other route sends the browser there.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import get_db
from app.api.review_page.item_view import build, queue_row
from app.api.review_page.pages import error_page, page, redirect
from app.api.review_page.session import (
    Reviewer,
    csrf_ok,
    current_reviewer,
    sessions,
    sign_in,
)
from app.errors import ForbiddenError, NotFoundError, RefereeError, UnauthorizedError
from app.labeling.review import queues
from app.reports.review_agreement import queue_agreement
from app.store import review_queues

router = APIRouter(prefix="/review", include_in_schema=False)

# Form fields: a key is ~47 characters, a token 32; anything much longer is not ours.
MAX_KEY_CHARS = 200
MAX_TOKEN_CHARS = 100
# What a button may send, typed as the answer function takes it.
CHOICES: dict[str, queues.Choice] = {choice: choice for choice in queues.CHOICES}

FormText = Annotated[str, Form()]


@router.get("", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    """The queue list; without a session, the sign-in form."""
    reviewer = await current_reviewer(request)
    if reviewer is None:
        return signin_form(request)
    async with get_db(request).transaction() as session:
        listed = await queues.list_queues(session, reviewer.name)
        rows = [
            queue_row(progress, await agreement_of(request, session, progress))
            for progress in listed
        ]
    return page("queues.html", reviewer=reviewer, queues=rows)


AGREEMENT_SECONDS = 60.0
"""How long the list reuses a queue's agreement while its progress stands still: computing
it reads every answer and bootstraps each share (about 2 s of CPU at 100,000 answers), too
much for each load."""


async def agreement_of(
    request: Request, session: AsyncSession, progress: queues.QueueProgress
) -> dict[str, Any] | None:
    """A queue's agreement for the list: computed again once its progress moved (an item
    completed, or this reviewer answered), else at most :data:`AGREEMENT_SECONDS` old."""
    state = request.app.state
    cache: dict[uuid.UUID, tuple[float, tuple[int, ...], dict[str, Any] | None]] | None = getattr(
        state, "review_agreement", None
    )
    if cache is None:
        cache = state.review_agreement = {}
    now = time.monotonic()
    version = (progress.items, progress.done, progress.answered_by_you)
    found = cache.get(progress.queue_id)
    if found is not None and found[1] == version and now - found[0] < AGREEMENT_SECONDS:
        return found[2]
    value = await queue_agreement(session, progress.queue_id)
    cache[progress.queue_id] = (now, version, value)
    return value


def signin_form(request: Request, error: str | None = None, status: int = 200) -> Response:
    nonce, cookie = sessions(request).new_signin()
    response = page("signin.html", status, error=error, csrf=nonce, max_key_chars=MAX_KEY_CHARS)
    sessions(request).set_signin(response, request, cookie)
    return response


@router.post("/sign-in")
async def sign_in_post(request: Request, key: FormText = "", csrf: FormText = "") -> Response:
    if len(csrf) > MAX_TOKEN_CHARS or not sessions(request).signin_token_ok(request, csrf):
        return signin_form(request, "The sign-in form expired; please try again.", 403)
    if len(key) > MAX_KEY_CHARS:
        return signin_form(request, "That is not a Referee API key.", 401)
    try:
        caller = await sign_in(request, key)
    except (UnauthorizedError, ForbiddenError) as refused:
        return signin_form(request, refused.message, refused.status_code)
    response = redirect("/review")
    sessions(request).issue(response, request, caller.key_id)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, csrf: FormText = "") -> Response:
    reviewer = await current_reviewer(request)
    if reviewer is not None and not csrf_ok(reviewer, csrf[:MAX_TOKEN_CHARS]):
        return refused_token(reviewer)
    response = redirect("/review")
    sessions(request).end(response, reviewer)
    return response


@router.get("/queues/{queue_id}", response_class=HTMLResponse)
async def next_item(request: Request, queue_id: str) -> Response:
    """The next item of the queue for this reviewer (leased to them), or that none is left."""
    reviewer = await current_reviewer(request)
    if reviewer is None:
        return redirect("/review")
    parsed = _queue_id(queue_id)
    if parsed is None:
        return no_such_queue(reviewer)
    settings = request.app.state.labeler.settings
    try:
        async with get_db(request).transaction() as session:
            queue = await queues.get_queue(session, parsed)
            served = await queues.next_item(session, parsed, reviewer.name)
            counts = await review_queues.progress(session, parsed, reviewer.name)
    except NotFoundError:
        return no_such_queue(reviewer)
    progress = (
        f"You answered {counts.answered_by} here; {counts.left_for} left for you;"
        f" {counts.done} of {counts.items} items done (k = {queue.overlap})."
    )
    if served is None:
        return page("done.html", reviewer=reviewer, queue=queue, progress=progress)
    view = build(served, settings.review_max_diff_words)
    return page("item.html", reviewer=reviewer, queue=queue, progress=progress, **view)


@router.post("/queues/{queue_id}/answer")
async def answer(
    request: Request,
    queue_id: str,
    csrf: FormText = "",
    assignment_id: FormText = "",
    choice: FormText = "",
    note: FormText = "",
) -> Response:
    reviewer = await current_reviewer(request)
    if reviewer is None:
        return redirect("/review")
    if not csrf_ok(reviewer, csrf[:MAX_TOKEN_CHARS]):
        return refused_token(reviewer)
    parsed = _queue_id(queue_id)
    assignment = _int(assignment_id)
    picked = CHOICES.get(choice)
    if parsed is None or assignment is None or picked is None:
        return error_page(
            422,
            "Not an answer",
            "The answer form was incomplete or changed; reload the item and answer again.",
            reviewer=reviewer,
        )
    try:
        async with get_db(request).transaction() as session:
            await queues.answer(session, assignment, reviewer.name, picked, note.strip() or None)
    except RefereeError as refused:
        return error_page(refused.status_code, "Not recorded", refused.message, reviewer=reviewer)
    return redirect(f"/review/queues/{parsed}")


@router.post("/queues/{queue_id}/undo")
async def undo(request: Request, queue_id: str, csrf: FormText = "") -> Response:
    reviewer = await current_reviewer(request)
    if reviewer is None:
        return redirect("/review")
    if not csrf_ok(reviewer, csrf[:MAX_TOKEN_CHARS]):
        return refused_token(reviewer)
    parsed = _queue_id(queue_id)
    if parsed is None:
        return no_such_queue(reviewer)
    try:
        async with get_db(request).transaction() as session:
            await queues.undo_last(session, parsed, reviewer.name)
    except RefereeError as refused:
        return error_page(refused.status_code, "Nothing undone", refused.message, reviewer=reviewer)
    return redirect(f"/review/queues/{parsed}")


def refused_token(reviewer: Reviewer) -> Response:
    return error_page(
        403,
        "Form expired",
        "This form's security token does not match your session; reload the page and try again.",
        reviewer=reviewer,
    )


def no_such_queue(reviewer: Reviewer) -> Response:
    return error_page(404, "No such queue", "There is no review queue here.", reviewer=reviewer)


def _queue_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if len(value) <= 36 else None
    except ValueError:
        return None


def _int(value: str) -> int | None:
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        return None
    return int(value)
