"""The review page in a real headless Chromium: sign-in, the keyboard, hostile data, two
reviewers, and an accessibility scan.

The browser is the system's Chromium (Debian's `chromium` package), driven by
Playwright's Python package; no browser is downloaded. Without /usr/bin/chromium
(or REFEREE_TEST_CHROMIUM) these tests skip and say so. One browser and one
server (uvicorn in a thread, a SQLite file) serve the whole module; each test
seeds a queue of its own. Every request the page makes is recorded through
route interception, and any that leaves the server's origin is aborted and
reported. axe-core comes from the `axe-playwright-python` package (the
`test` extra), which bundles axe.min.js.

Set REFEREE_REVIEW_SCREENSHOT=PATH to save the item view as a PNG (the
documentation's picture is made so).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from app.settings import Settings
from app.store import migrate
from tests.conftest import SKIP_POSTGRES
from tests.test_review_page_helpers import Pair, live_server, new_key, seed_queue, stored_answers

CHROMIUM = Path(os.environ.get("REFEREE_TEST_CHROMIUM", "/usr/bin/chromium"))
# Each hostile text sets window.__xss (or requests evil.example) if anything of it runs.
HOSTILE = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=2</script>",
    "[click me](javascript:window.__xss=3)",
    '<a href="javascript:window.__xss=4">look-alike link</a>',
    "<svg/onload=window.__xss=5>",
    "<scr<script>ipt>window.__xss=6</script>",
    "\uff1cscript\uff1ewindow.__xss=7\uff1c/script\uff1e",
    '<iframe src="http://evil.example/frame"></iframe>',
    "![tracker](http://evil.example/pixel.png)",
    '<link rel="stylesheet" href="http://evil.example/x.css">',
    "<style>body{background:url(http://evil.example/bg.png)}</style>",
    '<form action="http://evil.example"><button>go</button></form>',
    "```html\n<script>window.__xss=8</script>\n```",
]


@dataclass
class Watch:
    """What one browser context did: requests it made, console errors, pages' errors."""

    origin: str
    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        url = route.request.url
        self.requests.append(url)
        if url.startswith(self.origin + "/"):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def attach(self, page: Page) -> None:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))


@dataclass
class Reviewer:
    context: BrowserContext
    page: Page
    watch: Watch
    name: str


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    url = f"sqlite:///{tmp_path_factory.mktemp('review-page') / 'referee.db'}"
    migrate.upgrade(url)
    return Settings(database_url=url, judges_file=None)


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url


Server = tuple[Settings, str]


@pytest.fixture(scope="module")
def postgres_server(postgres_url: str) -> Iterator[Server]:
    """A second server on the PostgreSQL scratch database, for the tests of concurrent serving."""
    if SKIP_POSTGRES:
        pytest.skip("REFEREE_TEST_SKIP_POSTGRES=1")
    on = Settings(database_url=postgres_url, judges_file=None)
    with live_server(on) as url:
        yield on, url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, settings: Settings, base_url: str) -> Server:
    """The module's SQLite server, or the PostgreSQL one."""
    if request.param == "sqlite":
        return settings, base_url
    found: Server = request.getfixturevalue("postgres_server")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def open_reviewer(browser: Browser, base_url: str, settings: Settings) -> Iterator[Any]:
    """Opens a browser context signed in (by the keyboard) as a new reviewer key."""
    opened: list[Reviewer] = []

    def open_(name: str | None = None, server: Server | None = None) -> Reviewer:
        on, base = server or (settings, base_url)
        name = name or f"reviewer-{uuid.uuid4().hex[:6]}"
        key = new_key(on, name, "review")
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        watch = Watch(base)
        context.route("**/*", watch.route)
        page = context.new_page()
        watch.attach(page)
        page.goto(f"{base}/review")
        # The key field has focus on arrival: type the key and press Enter.
        assert page.evaluate("document.activeElement.id") == "key"
        page.keyboard.type(key)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("header.site strong").inner_text() == name
        reviewer = Reviewer(context, page, watch, name)
        opened.append(reviewer)
        return reviewer

    yield open_
    for reviewer in opened:
        reviewer.context.close()


def numbered(count: int) -> list[Pair]:
    """Pairs no other test has (a no-gold queue leaves out pairs another test labeled)."""
    tag = uuid.uuid4().hex[:8]
    return [
        Pair(f"Question {i}? ({tag})", f"Alpha {i} answer", f"Beta {i} answer")
        for i in range(count)
    ]


def shown(page: Page) -> tuple[int, str, str]:
    """The item on screen: its number, and which response (a or b) is left and right."""
    assert page.locator("#left").count() == 1, page.inner_text("main")
    left, right = page.inner_text("#left .md"), page.inner_text("#right .md")
    number = int(left.split()[1])
    return (
        number,
        "a" if left.startswith("Alpha") else "b",
        "a" if right.startswith("Alpha") else "b",
    )


def press(page: Page, key: str) -> None:
    with page.expect_navigation():
        page.keyboard.press(key)


class TestKeyboard:
    def test_twenty_items_answered_by_keyboard_are_stored_as_pressed(
        self, open_reviewer: Any, settings: Settings, base_url: str
    ) -> None:
        """1, 2, t, s and u alone answer 20 items; each stored winner is the response that was
        on the side pressed, under the order this reviewer was shown (both orders occur)."""
        queue_id, _ = seed_queue(settings, numbered(20))
        reviewer = open_reviewer()
        page = reviewer.page
        page.goto(f"{base_url}/review/queues/{queue_id}")
        keys = ["1", "2", "t", "1", "s", "2", "2", "t", "1", "1"] * 2
        expected: dict[int, tuple[str, str | None]] = {}
        orders = set()
        for i, key in enumerate(keys):
            number, left, right = shown(page)
            orders.add(left + right)
            if i == 3:  # answer, take it back with u: the same item comes back
                press(page, "2")
                press(page, "u")
                assert shown(page)[0] == number
                number, left, right = shown(page)
            press(page, key)
            winner = {"1": left, "2": right, "t": "tie", "s": None}[key]
            expected[number] = ({"1": "left", "2": "right", "t": "tie", "s": "skip"}[key], winner)
        assert "Nothing left for you" in page.inner_text("main")
        assert orders == {"ab", "ba"}
        stored = {
            int(_number_of(a.comparison_id, settings)): (a.choice, a.winner)
            for a in stored_answers(settings, queue_id)
        }
        assert stored == expected
        assert reviewer.watch.errors == []
        assert reviewer.watch.foreign == []

    def test_typing_in_the_note_presses_nothing(
        self, open_reviewer: Any, settings: Settings, base_url: str
    ) -> None:
        """Keys typed in the note stay in the note; Esc leaves it and the shortcuts work again."""
        queue_id, _ = seed_queue(settings, numbered(2))
        page = open_reviewer().page
        page.goto(f"{base_url}/review/queues/{queue_id}")
        number, left, _right = shown(page)
        page.focus("#note")
        page.keyboard.type("1 2 t s u ? d: left reads better")
        assert shown(page)[0] == number
        assert not page.evaluate("document.getElementById('shortcuts').open")
        page.keyboard.press("Escape")
        press(page, "1")
        [answer] = [a for a in stored_answers(settings, queue_id) if a.state == "answered"]
        assert answer.note == "1 2 t s u ? d: left reads better"
        assert answer.winner == left

    def test_question_mark_opens_the_cheat_sheet_and_d_the_diff(
        self, open_reviewer: Any, settings: Settings, base_url: str
    ) -> None:
        """? shows the shortcuts (and hides them), d opens the word-level diff."""
        queue_id, _ = seed_queue(
            settings, [Pair(f"Q {uuid.uuid4()}?", "the cat sat", "the dog sat")]
        )
        reviewer = open_reviewer()
        page = reviewer.page
        page.goto(f"{base_url}/review/queues/{queue_id}")
        page.keyboard.press("?")
        assert page.locator("#shortcuts").is_visible()
        assert "Undo your last answer" in page.inner_text("#shortcuts")
        page.keyboard.press("?")
        assert not page.locator("#shortcuts").is_visible()
        assert not page.locator("#diff .diff-text").is_visible()
        page.keyboard.press("d")
        assert page.locator("#diff .diff-text").is_visible()
        marked = {page.inner_text(".diff-text del"), page.inner_text(".diff-text ins")}
        assert marked == {"cat", "dog"}
        assert reviewer.watch.errors == []


def _number_of(comparison_id: uuid.UUID, settings: Settings) -> str:
    """The item number of a seeded comparison (its prompt is "Question N?")."""
    from app.store.db import Database
    from app.store.models import Comparison
    from tests.test_review_page_helpers import run

    async def go() -> str:
        db = Database(settings.database_url)
        try:
            async with db.transaction() as session:
                comparison = await session.get(Comparison, comparison_id)
                assert comparison is not None
                return str(comparison.prompt).split()[1].rstrip("?")
        finally:
            await db.engine.dispose()

    found: str = run(go())
    return found


ROLE = '<img src=x onerror="window.__xss=9">'
PAGE_STATE = """() => ({
    xss: window.__xss === undefined ? null : window.__xss,
    scripts: [...document.scripts].map(s => s.src),
    handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes]
        .filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name)),
    styles: [...document.querySelectorAll('[style], style')].map(e => e.outerHTML),
    embedded: [...document.querySelectorAll('img, svg, iframe, object, embed, video, audio')]
        .map(e => e.outerHTML),
    links: [...document.querySelectorAll('.md a, .role a')].map(a => a.getAttribute('href')),
    forms: [...document.querySelectorAll('form')].map(f => f.getAttribute('action')),
})"""


def assert_inert(page: Page, base_url: str) -> None:
    state = page.evaluate(PAGE_STATE)
    assert state["xss"] is None
    assert state["scripts"] == [f"{base_url}/review/static/review.js"]
    assert state["handlers"] == []
    assert state["styles"] == []
    assert state["embedded"] == []
    assert all(link.startswith(("http://", "https://", "mailto:")) for link in state["links"])
    assert all(action is None or action.startswith("/review") for action in state["forms"])


class TestHostileData:
    def test_script_and_html_in_the_data_render_inert(
        self, open_reviewer: Any, settings: Settings, base_url: str
    ) -> None:
        """Hostile prompts (a conversation with a hostile role), responses, guidelines, a judge's
        rationale and a hostile reviewer name show as text: nothing runs, nothing is fetched,
        no console error."""
        hostile = "\n\n".join(HOSTILE)
        prompt = [
            {"role": "system", "content": hostile},
            {"role": ROLE, "content": "Which is safer? " + uuid.uuid4().hex},
            {"role": "user", "content": hostile},
        ]
        queue_id, _ = seed_queue(
            settings,
            [Pair(prompt, hostile, "Plain answer.\n\n" + hostile[::-1])],
            guidelines=hostile,
            show_machine=True,
            rationale=hostile,
        )
        reviewer = open_reviewer(ROLE)
        page = reviewer.page
        assert_inert(page, base_url)
        page.goto(f"{base_url}/review/queues/{queue_id}")
        assert page.locator(".msg").count() == 3
        assert ROLE in (page.text_content(".prompt") or "")
        assert "<script>window.__xss=2</script>" in page.inner_text(".responses")
        assert "<script>window.__xss=2</script>" in page.inner_text(".guidelines")
        assert "<script>window.__xss=2</script>" in page.inner_text(".machine")
        page.keyboard.press("d")
        page.keyboard.press("?")
        assert_inert(page, base_url)
        page.keyboard.press("Escape")
        press(page, "t")
        page.goto(f"{base_url}/review")
        assert_inert(page, base_url)
        assert reviewer.watch.errors == []
        assert reviewer.watch.foreign == []
        assert all(url.startswith(base_url + "/review") for url in reviewer.watch.requests)

    def test_blind_by_default(self, open_reviewer: Any, settings: Settings, base_url: str) -> None:
        """A queue that does not show machine verdicts shows none, nor the judge's name."""
        queue_id, _ = seed_queue(settings, numbered(1))
        page = open_reviewer().page
        page.goto(f"{base_url}/review/queues/{queue_id}")
        assert "Machine verdicts" not in page.inner_text("main")
        assert "claude" not in page.content()


def take_turns(pages: dict[str, Page], url: str) -> dict[str, list[int]]:
    """Each reviewer opens their next item before any answers it, then all answer, until
    every reviewer has nothing left; returns the item numbers each was served."""
    seen: dict[str, list[int]] = {name: [] for name in pages}
    active = dict(pages)
    while active:
        for name, page in list(active.items()):
            page.goto(url)
            if page.locator("#left").count() == 0:
                del active[name]
            else:
                seen[name].append(shown(page)[0])
        for page in active.values():
            press(page, "1")
    return seen


class TestTwoReviewers:
    """On both databases: serving under concurrent leases is where they differ."""

    def test_with_k_2_each_reviewer_gets_every_item_once(
        self, open_reviewer: Any, server: Server
    ) -> None:
        """k = 2: both are served all items, each once; the list then shows their agreement,
        the same figures as the report's."""
        on, base = server
        queue_id, _ = seed_queue(on, numbered(4), overlap=2)
        pages = {name: open_reviewer(name, server).page for name in ("ann", "bob")}
        seen = take_turns(pages, f"{base}/review/queues/{queue_id}")
        assert sorted(seen["ann"]) == list(range(4))
        assert sorted(seen["bob"]) == list(range(4))
        listing = pages["ann"]
        listing.goto(f"{base}/review")
        name = _queue_name(on, queue_id)
        row = listing.locator("table.queues tbody tr", has_text=name)
        assert "4 / 4 done" in row.first.inner_text()
        agreement = _agreement(on, queue_id)
        shown_pairwise = f"{agreement['pairwise']['value'] * 100:.1f}%"
        assert shown_pairwise in row.first.inner_text()
        section = listing.locator(".agreement", has_text=name)
        assert "ann" in section.inner_text()
        assert "bob" in section.inner_text()

    def test_with_k_1_they_never_get_the_same_item(
        self, open_reviewer: Any, server: Server
    ) -> None:
        """k = 1: two reviewers looking at the queue at once are served different items, and
        between them every item once."""
        on, base = server
        queue_id, _ = seed_queue(on, numbered(4), overlap=1)
        pages = {name: open_reviewer(name, server).page for name in ("cat", "dan")}
        seen = take_turns(pages, f"{base}/review/queues/{queue_id}")
        assert not set(seen["cat"]) & set(seen["dan"])
        assert sorted(seen["cat"] + seen["dan"]) == list(range(4))
        assert seen["cat"]
        assert seen["dan"]


def _queue_name(settings: Settings, queue_id: uuid.UUID) -> str:
    from app.store.db import Database
    from app.store.models_review import ReviewQueue
    from tests.test_review_page_helpers import run

    async def go() -> str:
        db = Database(settings.database_url)
        try:
            async with db.transaction() as session:
                queue = await session.get(ReviewQueue, queue_id)
                assert queue is not None
                return queue.name
        finally:
            await db.engine.dispose()

    found: str = run(go())
    return found


def _agreement(settings: Settings, queue_id: uuid.UUID) -> dict[str, Any]:
    from app.reports.review_agreement import queue_agreement
    from app.store.db import Database
    from tests.test_review_page_helpers import run

    async def go() -> dict[str, Any]:
        db = Database(settings.database_url)
        try:
            async with db.transaction() as session:
                found = await queue_agreement(session, queue_id)
                assert found is not None
                return found
        finally:
            await db.engine.dispose()

    result: dict[str, Any] = run(go())
    return result


EXAMPLE_PROMPT = [
    {"role": "system", "content": "You are a careful Python tutor."},
    {"role": "user", "content": "How do I read a file line by line in Python?"},
]
EXAMPLE_A = """Use a `with` block and iterate over the file object:

```python
with open("notes.txt", encoding="utf-8") as f:
    for line in f:
        print(line.rstrip("\\n"))
```

The file is closed when the block ends, even on an error."""
EXAMPLE_B = """You can call `readlines()`:

```python
f = open("notes.txt")
for line in f.readlines():
    print(line)
```

This reads the whole file into memory first."""
EXAMPLE_GUIDELINES = """Prefer the answer that is **correct** and **safe** for the user.

1. Correctness first: does the code run and do what was asked?
2. Then clarity: is it explained in plain words?
3. Press `t` only when neither is better; skip (`s`) what you cannot judge."""


class TestAccessibility:
    def test_axe_finds_no_serious_or_critical_violation(
        self, browser: Browser, open_reviewer: Any, settings: Settings, base_url: str
    ) -> None:
        """axe-core on the sign-in form, the queue list, an item (and its cheat sheet and diff)
        and the end of a queue: no serious or critical violation."""
        # The only test with this pair: a no-gold queue takes it (the module has its own database).
        queue_id, _ = seed_queue(
            settings,
            [Pair(EXAMPLE_PROMPT, EXAMPLE_A, EXAMPLE_B)],
            guidelines=EXAMPLE_GUIDELINES,
            name="python-answers",
        )
        axe = Axe()
        found: dict[str, list[str]] = {}

        def scan(name: str, page: Page) -> None:
            violations = axe.run(page).response["violations"]
            found[name] = [
                f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
                for v in violations
                if v["impact"] in ("serious", "critical")
            ]

        anonymous = browser.new_context()
        signin = anonymous.new_page()
        signin.goto(f"{base_url}/review")
        scan("sign-in", signin)
        anonymous.close()
        reviewer = open_reviewer("ada")
        page = reviewer.page
        scan("queues", page)
        page.goto(f"{base_url}/review/queues/{queue_id}")
        scan("item", page)
        if screenshot := os.environ.get("REFEREE_REVIEW_SCREENSHOT"):
            page.keyboard.press("d")
            page.screenshot(path=screenshot, full_page=True)
        page.keyboard.press("?")
        scan("cheat sheet", page)
        page.keyboard.press("Escape")
        press(page, "1")
        scan("done", page)
        assert found == {name: [] for name in found}
        assert reviewer.watch.errors == []
