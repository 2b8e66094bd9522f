"""Reading critique and revision answers, and stripping revision preambles.

Structured output is the normal path (``record_critique`` / ``record_revision``);
the text fallbacks are:

- a critique ends with one line that is exactly ``Needs revision: yes`` or
  ``Needs revision: no``; the lines before it are the critique;
- a revision is the whole answer.

Either way a revision goes through :func:`strip_preamble`: models announce
their rewrite ("Sure, here is a revised response:") even when told not to,
and an announcement stored as part of the response would end up in the
training data. Anything the strict parsers cannot read is an
:class:`~judges.errors.UnparseableError`, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from judges.errors import UnparseableError
from judges.parsing import final_line
from judges.types import CritiqueAnswer, GeneratedText, RevisionAnswer

CRITIQUE_TEXT_FORMAT_INSTRUCTIONS = (
    "Write your critique, then end your answer with one line that is exactly "
    "'Needs revision: yes' (something should be fixed) or 'Needs revision: no' "
    "(nothing to fix), and nothing after it."
)
_NEEDS_REVISION_LINE = re.compile(r"Needs revision: (yes|no)", re.IGNORECASE)
REVISION_TEXT_FORMAT_INSTRUCTIONS = (
    "Answer with the rewritten response only: no introduction such as 'Here is the "
    "revised response', no quotes or code fence around it, no comments after it."
)

# Preamble stripping: only the first line is ever looked at, and only a line that announces a
# rewrite goes: a response that opens "Sure, I can help: ..." or "Here are
# some tips:" is content, not an announcement.

_COURTESY = (
    r"(?:(?:sure(?: thing)?|certainly|of course|okay|ok|absolutely|alright|all right|yes"
    r"|great|no problem|understood|happy to help|glad to help)\b[\s!,.\-]*)*"
)
_REWRITE = (
    r"(?:revis\w*|rewr[io]t\w*|re-written|updated|improved|edited|amended|corrected"
    r"|modified|reworded|rephrased|refined)"
)
_NOUN = r"(?:response|version|answer|reply|revision|rewrite)"
_ADJECTIVE = rf"(?:{_REWRITE}|new|final|better|safer)"
# "version" alone is too common in content ("Here is the new version of
# the API:"); only a qualified one announces a rewrite.
_NAMED_REWRITE = rf"(?:response|answer|reply|revision|rewrite|(?:{_REWRITE}|better|safer) version)"
_HERE_IS = rf"{_COURTESY}(?:here(?:'s| is| are)|below is|the following is)\b"
_I_REVISED = rf"{_COURTESY}i(?:'ve| have)? (?:now )?{_REWRITE}\b"
_ASIDE = r"(?:\s*\([^)\n]*\))?"
_QUALIFIER = rf"{_ASIDE}(?:,?\s+(?:that|which|to|with|without|below|follows)\b[^\n]*)?"

# A whole first line that announces the rewrite and ends in a colon.
_ANNOUNCEMENT_LINE = re.compile(
    rf"{_HERE_IS}[^\n]*\b{_NAMED_REWRITE}\b[^\n]*:"  # "Sure, here is a revised response:"
    rf"|{_I_REVISED}[^\n]*:"  # "I've rewritten it to remove the insult:"
    rf"|(?:the |my |a |an )?{_ADJECTIVE} {_NOUN}{_QUALIFIER}\s*:"  # "Revised response that …:"
    rf"|(?:the |my )?{_NOUN}{_ASIDE}\s*:",  # "Revision:", "Response (safer):"
    re.IGNORECASE,
)
# The same announcements followed by the revision on the same line; only
# when they name the rewrite, so "Response: ..." or "Here is the answer: 42"
# stay.
_ANNOUNCEMENT_PREFIX = re.compile(
    rf"(?:{_HERE_IS}[^:\n]*\b{_REWRITE}\s+{_NOUN}\b[^:\n]*"
    rf"|(?:the |my )?(?:{_REWRITE} {_NOUN}|revision|rewrite))\s*:[ \t]+(?=\S)",
    re.IGNORECASE,
)
_COURTESY_LINE = re.compile(rf"{_COURTESY}", re.IGNORECASE)
_MARKUP = "*_#> \t"
# An announcement is one short sentence; a long first line is content.
_MAX_ANNOUNCEMENT = 300
_FENCE = re.compile(
    r"```[ \t]*(?:text|markdown|md|plaintext|plain)?[ \t]*\n(.*)\n[ \t]*```", re.DOTALL
)
_QUOTES = {'"': '"', "\u201c": "\u201d", "\u00ab": "\u00bb", "'": "'"}


def strip_preamble(text: str) -> str:
    """Remove a rewrite announcement and whole-text wrappers from a revision.

    Drops a first line that announces the rewrite ("Sure, here is a revised
    response:", "Revision:", "**Revised response:**", possibly after a line
    that only says "Sure!"), or such an announcement in front of the text
    on the same line when it names the rewrite. Then unwraps quotes or a
    plain/markdown code fence around the whole remaining text (a fence
    tagged with a programming language is content and stays). Normal
    responses come back unchanged except for surrounding whitespace.
    """
    body = _drop_announcement(text.strip())
    return _unwrap(body).strip()


def _normalised(line: str) -> str:
    return line.replace("\u2019", "'").strip().strip(_MARKUP).strip()


def _drop_announcement(text: str) -> str:
    lines = text.split("\n")
    first = _normalised(lines[0])
    if len(first) > _MAX_ANNOUNCEMENT:
        return text
    if _ANNOUNCEMENT_LINE.fullmatch(first.rstrip(_MARKUP)):
        return "\n".join(lines[1:]).strip()
    if first and _COURTESY_LINE.fullmatch(first) and len(lines) > 1:
        rest = "\n".join(lines[1:]).strip()
        stripped = _drop_announcement(rest)
        if stripped != rest:  # "Sure!" alone, then the announcement
            return stripped
        return text
    prefix = _ANNOUNCEMENT_PREFIX.match(lines[0].replace("\u2019", "'").lstrip(_MARKUP))
    if prefix is not None:
        start = len(lines[0]) - len(lines[0].lstrip(_MARKUP)) + prefix.end()
        return text[start:].strip()
    return text


def _unwrap(text: str) -> str:
    fenced = _FENCE.fullmatch(text)
    if fenced is not None and "```" not in fenced.group(1):
        return fenced.group(1).strip()
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] == _QUOTES[text[0]]:
        inner = text[1:-1]
        # A quote character inside means the quotes are the text's own
        # ("A" or "B"), or apostrophes; leave those alone.
        if text[0] not in inner and _QUOTES[text[0]] not in inner:
            return inner.strip()
    return text


def parse_critique_object(obj: object, raw_output: str) -> CritiqueAnswer:
    """Validate a structured critique (tool input or JSON object)."""
    if not isinstance(obj, Mapping):
        raise UnparseableError("critique is not a JSON object", raw_output=raw_output)
    missing = [name for name in ("critique", "needs_revision") if name not in obj]
    if missing:
        raise UnparseableError(
            f"critique field(s) {', '.join(map(repr, missing))} missing", raw_output=raw_output
        )
    critique, needs_revision = obj["critique"], obj["needs_revision"]
    if not isinstance(critique, str):
        raise UnparseableError("critique field 'critique' must be a string", raw_output=raw_output)
    if not isinstance(needs_revision, bool):
        raise UnparseableError(
            f"critique field 'needs_revision' must be true or false, got {needs_revision!r}",
            raw_output=raw_output,
        )
    return _checked_critique(critique.strip(), needs_revision, raw_output)


def parse_critique_text(text: str) -> CritiqueAnswer:
    """Parse the critique text fallback: a final ``Needs revision: yes|no`` line."""
    match, critique = final_line(
        text, _NEEDS_REVISION_LINE, "'Needs revision: yes' or 'Needs revision: no'"
    )
    return _checked_critique(critique, match.group(1).lower() == "yes", text)


def _checked_critique(critique: str, needs_revision: bool, raw_output: str) -> CritiqueAnswer:
    # The revision is asked to fix what the critique names; a bare "yes"
    # would send it in blind.
    if needs_revision and not critique:
        raise UnparseableError(
            "the critique asks for a revision but says nothing about what to fix",
            raw_output=raw_output,
        )
    return CritiqueAnswer(critique=critique, needs_revision=needs_revision)


def parse_revision_object(obj: object, raw_output: str) -> RevisionAnswer:
    """Validate a structured revision and strip its preamble."""
    if not isinstance(obj, Mapping):
        raise UnparseableError("revision is not a JSON object", raw_output=raw_output)
    revision = obj.get("revision")
    if not isinstance(revision, str):
        raise UnparseableError("revision field 'revision' must be a string", raw_output=raw_output)
    return _checked_revision(revision, raw_output)


def parse_revision_text(text: str) -> RevisionAnswer:
    """Parse the revision text fallback: the whole answer, preamble stripped."""
    return _checked_revision(text, text)


def _checked_revision(revision: str, raw_output: str) -> RevisionAnswer:
    stripped = strip_preamble(revision)
    if not stripped:
        raise UnparseableError(
            "the revision is empty once its preamble is stripped", raw_output=raw_output
        )
    return RevisionAnswer(stripped)


def parse_generated(text: str, raw_output: str) -> GeneratedText:
    """A generated response, surrounding whitespace trimmed; no text at all is unparseable."""
    if not text.strip():
        raise UnparseableError("the model wrote no text", raw_output=raw_output)
    return GeneratedText(text.strip())
