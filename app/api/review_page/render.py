"""Text from the data as HTML that cannot run: Markdown rendered, then sanitised.

Prompts, responses and guidelines are hostile (DESIGN.md, "Trust
boundary"). markdown-it renders them with raw HTML switched off, so a
``<script>`` a model wrote shows as the text it is; nh3 then keeps only the
tags and attributes Markdown makes, links only to http(s) and mailto, and no
images (an image would be a request the data makes from the reviewer's
browser). The Content-Security-Policy header is the second wall, not the first.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from app.keys import prompt_messages, response_content

_TAGS = {
    "p", "br", "hr", "em", "strong", "s", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
_URL_SCHEMES = {"http", "https", "mailto"}
_WORDS = re.compile(r"\s+|[^\s]+")


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False})
    md.enable(["table", "strikethrough"])
    # ![alt](url) shows as text and a link: no request is made by rendering it.
    md.disable("image")
    return md


_MD = _markdown()


def markdown(text: str) -> Markup:
    """Markdown as sanitised HTML, safe to put in a page as it is."""
    html = _MD.render(text)
    cleaned = nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        # A relative link would point into Referee itself; the data links elsewhere or nowhere.
        url_relative="deny",
        allowed_classes={"code": {f"language-{name}" for name in _LANGUAGES}},
    )
    return Markup(cleaned)  # noqa: S704 - nh3 output: only the tags and attributes above


# Fence info strings kept as a class on <code> (for styling); any other is dropped.
_LANGUAGES = (
    "python", "javascript", "typescript", "json", "bash", "sh", "shell", "c", "cpp",
    "java", "go", "rust", "sql", "html", "css", "yaml", "toml", "text", "markdown",
)  # fmt: skip


@dataclass(frozen=True)
class Message:
    role: str
    html: Markup


def conversation(prompt: Any) -> list[Message]:
    """A stored prompt (a string or role/content messages) as messages rendered one by one."""
    return [Message(str(m["role"]), markdown(str(m["content"]))) for m in prompt_messages(prompt)]


def response(value: Any) -> Markup:
    """A stored response (string or assistant message) rendered."""
    return markdown(response_text(value))


def response_text(value: Any) -> str:
    return value if isinstance(value, str) else response_content(value)


def word_diff(left: str, right: str, max_words: int) -> Markup | None:
    """The two texts word by word: words only on the left in ``<del>``, only on the right in
    ``<ins>``. None when either is over ``max_words`` (the diff is quadratic in the worst case).
    """
    a, b = _WORDS.findall(left), _WORDS.findall(right)
    if len(a) > 2 * max_words or len(b) > 2 * max_words:  # a word and its space: two tokens
        return None
    parts: list[str] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(str(escape("".join(a[i1:i2]))))
            continue
        if i2 > i1:
            parts.append(f"<del>{escape(''.join(a[i1:i2]))}</del>")
        if j2 > j1:
            parts.append(f"<ins>{escape(''.join(b[j1:j2]))}</ins>")
    return Markup("".join(parts))  # noqa: S704 - every piece of text above is escaped
