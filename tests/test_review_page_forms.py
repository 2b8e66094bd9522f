"""The review page over HTTP, without a browser: sign-in, sessions, CSRF, headers, hostile forms.

Runs on SQLite and PostgreSQL through the app's test client.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import ClassVar
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.api.review_page.render import markdown, word_diff
from app.settings import Settings
from tests.test_review_page_helpers import Pair, new_key, seed_queue, stored_answers

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ASSIGNMENT = re.compile(r'name="assignment_id" value="(\d+)"')


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found[1]


def sign_in(client: TestClient, key: str) -> str:
    """Sign in through the form; returns the session's CSRF token from the queue list."""
    form = client.get("/review")
    response = client.post("/review/sign-in", data={"key": key, "csrf": csrf_of(form.text)})
    assert response.status_code == 200, response.text  # followed the 303 to the list
    assert "Sign out" in response.text
    return csrf_of(response.text)


def pairs(count: int) -> list[Pair]:
    return [Pair(f"Question {i}?", f"Alpha {i}", f"Beta {i}") for i in range(count)]


class TestSignIn:
    def test_without_a_session_the_page_is_the_sign_in_form_only(
        self, client: TestClient, settings: Settings
    ) -> None:
        """GET /review and an item's URL show no queue or item data without a session."""
        queue_id, _ = seed_queue(settings, [Pair("Secret prompt?", "Secret A", "Secret B")])
        home = client.get("/review")
        assert home.status_code == 200
        assert 'action="/review/sign-in"' in home.text
        assert "Secret" not in home.text
        assert str(queue_id) not in home.text
        item = client.get(f"/review/queues/{queue_id}", follow_redirects=False)
        assert item.status_code == 303
        assert item.headers["location"] == "/review"

    @pytest.mark.parametrize(
        ("scopes", "status", "words"),
        [
            (("read",), 403, "lacks the 'review' scope"),
            (("label", "read"), 403, "lacks the 'review' scope"),
            ((), 401, "unknown or revoked"),
        ],
    )
    def test_a_key_without_the_review_scope_is_refused(
        self,
        client: TestClient,
        settings: Settings,
        scopes: tuple[str, ...],
        status: int,
        words: str,
    ) -> None:
        """A read or label key: 403 naming the scope; an unknown key: 401; no session either way."""
        key = new_key(settings, "someone", *scopes) if scopes else "ref_" + "x" * 43
        form = client.get("/review")
        response = client.post("/review/sign-in", data={"key": key, "csrf": csrf_of(form.text)})
        assert response.status_code == status
        assert words in html.unescape(response.text)
        assert "referee_review=" not in response.headers.get("set-cookie", "")

    @pytest.mark.parametrize("scope", ["review", "admin"])
    def test_review_and_admin_keys_sign_in_under_the_key_name(
        self, client: TestClient, settings: Settings, scope: str
    ) -> None:
        """The cookie is HttpOnly, SameSite=Strict, scoped to /review; the name is the key's."""
        key = new_key(settings, "ada", scope)
        form = client.get("/review")
        response = client.post(
            "/review/sign-in",
            data={"key": key, "csrf": csrf_of(form.text)},
            follow_redirects=False,
        )
        assert response.status_code == 303
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("referee_review=")
        )
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Path=/review" in cookie
        assert "Secure" not in cookie  # plain http here; https sets it
        assert key not in cookie
        assert "Signed in as <strong>ada</strong>" in client.get("/review").text

    def test_the_cookie_is_secure_over_https(self, settings: Settings) -> None:
        """Served over https, the session and sign-in cookies are Secure."""
        key = new_key(settings, "ada", "review")
        with TestClient(create_app(settings), base_url="https://127.0.0.1") as client:
            form = client.get("/review")
            assert "Secure" in form.headers["set-cookie"]
            response = client.post(
                "/review/sign-in",
                data={"key": key, "csrf": csrf_of(form.text)},
                follow_redirects=False,
            )
        assert "Secure" in response.headers["set-cookie"]

    def test_revoking_the_key_ends_its_sessions(
        self, client: TestClient, settings: Settings
    ) -> None:
        """The key is looked up on every request: once revoked, the page is the sign-in form."""
        from app.labeling.admin import create_key, revoke_key
        from tests.test_review_page_helpers import run

        key_id, key = run(create_key(settings, "ada", ["review"]))
        sign_in(client, key)
        assert run(revoke_key(settings, key_id))
        assert 'action="/review/sign-in"' in client.get("/review").text


class TestCsrf:
    def test_sign_in_without_the_form_token_is_refused(
        self, client: TestClient, settings: Settings
    ) -> None:
        """Another site cannot sign a browser in under its own key: no token, no session."""
        key = new_key(settings, "ada", "review")
        for data in ({"key": key}, {"key": key, "csrf": "forged"}):
            response = client.post("/review/sign-in", data=data)
            assert response.status_code == 403
            assert "referee_review=" not in response.headers.get("set-cookie", "")

    def test_an_answer_without_the_token_is_refused_and_not_stored(
        self, client: TestClient, settings: Settings
    ) -> None:
        """A state-changing POST without (or with another session's) token: 403, nothing stored."""
        queue_id, _ = seed_queue(settings, pairs(2))
        sign_in(client, new_key(settings, "ada", "review"))
        item = client.get(f"/review/queues/{queue_id}")
        assignment = ASSIGNMENT.search(item.text)
        assert assignment
        form = {"assignment_id": assignment[1], "choice": "left"}
        for token in (None, "", "x" * 32, "é" * 10):
            data = form if token is None else {**form, "csrf": token}
            refused = client.post(f"/review/queues/{queue_id}/answer", data=data)
            assert refused.status_code == 403, token
        undo = client.post(f"/review/queues/{queue_id}/undo", data={})
        assert undo.status_code == 403
        assert [s.state for s in stored_answers(settings, queue_id)] == ["leased"]
        accepted = client.post(
            f"/review/queues/{queue_id}/answer", data={**form, "csrf": csrf_of(item.text)}
        )
        assert accepted.status_code == 200
        assert stored_answers(settings, queue_id)[0].choice == "left"

    def test_sign_out_ends_the_session(self, client: TestClient, settings: Settings) -> None:
        """After sign-out the cookie is gone, and a copy of it kept from before is refused."""
        token = sign_in(client, new_key(settings, "ada", "review"))
        kept = client.cookies.get("referee_review")
        assert kept
        assert client.post("/review/sign-out", data={}).status_code == 403
        assert "Sign out" in client.get("/review").text
        response = client.post("/review/sign-out", data={"csrf": token})
        assert response.status_code == 200
        assert 'action="/review/sign-in"' in response.text
        client.cookies.set("referee_review", kept, path="/review")
        assert 'action="/review/sign-in"' in client.get("/review").text


class TestHeaders:
    def test_every_page_carries_a_strict_content_security_policy(
        self, client: TestClient, settings: Settings
    ) -> None:
        """No inline script or style, nothing from another origin, no framing; never cached."""
        queue_id, _ = seed_queue(settings, pairs(1))
        pages = [client.get("/review")]
        sign_in(client, new_key(settings, "ada", "review"))
        pages += [client.get("/review"), client.get(f"/review/queues/{queue_id}")]
        for response in pages:
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy
            assert "style-src 'self'" in policy
            assert "default-src 'none'" in policy
            assert "frame-ancestors 'none'" in policy
            assert "unsafe-inline" not in policy
            assert response.headers["cache-control"] == "no-store"
            assert "<script>" not in response.text
            assert " style=" not in response.text
        assert client.get("/review/static/review.js").status_code == 200
        assert client.get("/review/static/review.css").status_code == 200


class TestHostileForms:
    """The page's forms are left out of OpenAPI, so the hostile-inputs test does not reach them."""

    BAD: ClassVar[list[str]] = [
        "",
        "\x00",
        "\ud800",
        "x" * 100_000,
        "-1",
        "1e3",
        "99999999999999999999999",
        "²",
        "../../etc",
        "<script>",
        str(uuid.uuid4()),
    ]

    def test_no_bad_field_value_gives_a_server_error(
        self, client: TestClient, settings: Settings
    ) -> None:
        """Every field of every form, and the queue id in the path, with each bad value: a 4xx
        page or the sign-in form, never a 5xx, and nothing stored."""
        queue_id, _ = seed_queue(settings, pairs(1))
        token = sign_in(client, new_key(settings, "ada", "review"))
        item = client.get(f"/review/queues/{queue_id}")
        good = {"csrf": token, "assignment_id": ASSIGNMENT.search(item.text)[1], "choice": "tie"}  # type: ignore[index]
        problems = []
        for bad in self.BAD:
            segment = quote(bad[:2000].encode("utf-8", "replace"), safe="")
            for field in ("csrf", "assignment_id", "choice", "note"):
                data = {**good, field: bad}
                if field == "note" and bad not in ("\x00", "x" * 100_000):
                    continue  # valid notes: they would be stored
                for path in (
                    f"/review/queues/{queue_id}/answer",
                    f"/review/queues/{segment}/answer",
                ):
                    response = client.post(path, data=_encodable(data))
                    if response.status_code >= 500 or response.status_code == 200:
                        problems.append((path[:60], field, bad[:10], response.status_code))
            for path in (f"/review/queues/{segment}", "/review/sign-in", "/review/sign-out"):
                response = client.request(
                    "GET" if "queues" in path else "POST",
                    path,
                    data=_encodable({"key": bad, "csrf": bad}),
                )
                if response.status_code >= 500:
                    problems.append((path[:60], "key/csrf", bad[:10], response.status_code))
        assert problems == []
        assert [s.state for s in stored_answers(settings, queue_id)] == ["leased"]

    def test_a_json_or_huge_body_is_refused_cleanly(
        self, client: TestClient, settings: Settings
    ) -> None:
        """A body that is not a form, or is over the body limit: a 4xx, never a 5xx."""
        sign_in(client, new_key(settings, "ada", "review"))
        for kwargs in (
            {"json": {"key": ["x"]}},
            {
                "content": b"\xff\xfe=\x00",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data; boundary=x"}},
            {"content": b"k=" + b"x" * (settings.max_body_mb * 2**20 + 10)},
        ):
            response = client.post("/review/sign-in", **kwargs)  # type: ignore[arg-type]
            assert response.status_code < 500, (kwargs.keys(), response.status_code)


def _encodable(data: dict[str, str]) -> dict[str, str]:
    """A lone surrogate cannot be sent as UTF-8; send the replacement a browser would."""
    return {k: v.encode("utf-8", "replace").decode() for k, v in data.items()}


ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "s", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


class Elements(HTMLParser):
    """The tags and attributes a browser would build from some HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes += [(tag, name, value) for name, value in attrs]


class TestRendering:
    @pytest.mark.parametrize(
        "text",
        [
            "<script>alert(1)</script>",
            '<img src=x onerror="alert(1)">',
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](java&#x09;script:alert(1))",
            "[x](data:text/html;base64,PHNjcmlwdD4=)",
            "[x](/review/sign-out)",
            '<a href="javascript:alert(1)">y</a>',
            "![x](http://evil.example/x.png)",
            '<a href="http://evil.example" onclick="x()">y</a>',
            "<svg/onload=alert(1)>",
            "<iframe src=//evil.example></iframe>",
            "<scr<script>ipt>alert(1)</script>",
            "```html\n<script>alert(1)</script>\n```",
            '```js" onmouseover="alert(1)\nx\n```',
            '<div style="background:url(x)">y</div>',
            "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",
            "<\u017fcript>alert(1)</\u017fcript>",
            "<!-- <script>x</script> -->",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        ],
    )
    def test_markdown_from_the_data_renders_inert(self, text: str) -> None:
        """Raw HTML shows as text: only Markdown's own tags, no event or style attribute,
        links only to absolute http(s) or mailto URLs, no images."""
        parsed = Elements()
        parsed.feed(markdown(text))
        assert parsed.tags <= ALLOWED_TAGS, parsed.tags
        for tag, name, value in parsed.attributes:
            assert (tag, name) in {("a", "href"), ("a", "rel"), ("code", "class")}, (tag, name)
            if name == "href":
                assert re.match(r"^(https?://|mailto:)", value or ""), value

    def test_markdown_and_code_render(self) -> None:
        """Emphasis, lists, tables, fenced code with its language, links with rel=noopener."""
        html = markdown(
            "**bold** and `x`\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
            "```python\nprint('<hi>')\n```\n\n[site](https://example.com)"
        )
        assert "<strong>bold</strong>" in html
        assert "<li>one</li>" in html
        assert "<table>" in html
        assert "<code class=\"language-python\">print('&lt;hi&gt;')" in html
        assert 'href="https://example.com"' in html
        assert "noopener" in html

    def test_the_word_diff_marks_words_and_escapes_them(self) -> None:
        """Words only left in <del>, only right in <ins>; text escaped; long texts not diffed."""
        diff = word_diff("the cat <b>sat</b>", "the dog <b>sat</b>", 100)
        assert diff == "the <del>cat</del><ins>dog</ins> &lt;b&gt;sat&lt;/b&gt;"
        assert word_diff("a " * 50, "b", 10) is None
