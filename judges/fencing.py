"""Fencing untrusted text inside judge prompts, and defusing fence look-alikes.

A judged text is wrapped in ``<tag>`` … ``</tag>``. If the text itself
carries something a model would read as one of the fence tags, it could
close its fence early and speak as the operator. A plain regex over the raw
text misses most of the ways to write such a tag: ``< /response_2>``,
``</response_2 x>``, fullwidth forms (``\\uff1c/response_2\\uff1e``),
``</resp\\u200bonse_2>`` split by an invisible character, ``</RESPONSE_2>``,
combining marks laid over letters, angle-bracket look-alikes such as
``\\u2329`` or ``\\u2039``.

So matching runs on a *folded* copy of the text (per character: compatibility
decomposition, invisible characters and combining marks removed, case
folded, recomposed, angle look-alikes mapped to ``<`` and ``>``), and every
match is defused in the original text by replacing the one character that
folded to the tag's ``<`` with ``&lt;``. Nothing else changes: a text with no
look-alike tag comes back byte for byte, and a defused text folds to a text
with no ``<`` where the tag was, so no fence tag survives the same folding.

Folding is per character (not NFKC over the whole string) so that each
folded character maps back to exactly one original character; it is also
stricter than whole-string NFKC (it strips marks that NFKC would compose).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cache, lru_cache

DEFUSED_OPENER = "&lt;"

# Characters that are not ``<``/``>`` under NFKC but are drawn like them.
# NFKC-compatible forms (fullwidth, small) are found by the folding itself.
_ANGLE_LOOKALIKES = {
    # single and double angle quotation marks and brackets, CJK brackets,
    # mathematical and ornamental angles, modifier arrowheads, Canadian syllabics
    **dict.fromkeys(
        "\u2039\u2329\u3008\u27e8\u276e\u276c\u2770\u02c2\u1438\u29fc\u300a\u00ab", "<"
    ),
    **dict.fromkeys(
        "\u203a\u232a\u3009\u27e9\u276f\u276d\u2771\u02c3\u1433\u29fd\u300b\u00bb", ">"
    ),
}

# Every character whose folding contains "<". Only texts holding one of
# these are folded at all; tests check this set against all of Unicode.
OPENERS = frozenset(
    "<\uff1c\ufe64\u226e\ufe3d\ufe3f" + "".join(c for c, v in _ANGLE_LOOKALIKES.items() if v == "<")
)
_OPENER_RE = re.compile("[" + re.escape("".join(sorted(OPENERS))) + "]")

# Invisible to a reader, so a tag split by them still reads as a tag:
# format characters (zero-width space and joiners, bidi controls, soft
# hyphen), combining marks, and control characters other than whitespace.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Mn", "Me", "Cc", "Co", "Cn", "Cs"})


def _visible(text: str) -> str:
    return "".join(
        c for c in text if c.isspace() or unicodedata.category(c) not in _INVISIBLE_CATEGORIES
    )


@lru_cache(maxsize=8192)
def fold_char(char: str) -> str:
    """How a reader (or a model) sees one character when reading a tag: maybe empty."""
    if char in _ANGLE_LOOKALIKES:
        return _ANGLE_LOOKALIKES[char]
    if char.isspace():
        return " "
    decomposed = unicodedata.normalize("NFKD", char)
    folded = unicodedata.normalize("NFKD", _visible(decomposed).casefold())
    composed = unicodedata.normalize("NFKC", _visible(folded))
    return "".join(_ANGLE_LOOKALIKES.get(c, c) for c in composed)


def fold(text: str, *, keep_gaps: bool = False) -> tuple[str, list[int]]:
    """The folded text and, for each of its characters, the index of its original character.

    With ``keep_gaps`` a character that folds to nothing (an invisible one)
    becomes a space instead, so it still ends a tag name: ``<prompt\\x1b0``
    is a ``<prompt`` tag to a reader who skips the escape character, and
    ``<prompt0`` is not.
    """
    parts: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = fold_char(char) or (" " if keep_gaps else "")
        parts.append(folded)
        origin.extend([index] * len(folded))
    return "".join(parts), origin


@cache
def tag_pattern(tags: tuple[str, ...]) -> re.Pattern[str]:
    """A fence-like tag over folded text: ``<``, any slashes and spaces, a tag name.

    No closing ``>`` is required and anything may follow the name except more
    name characters: ``</response_2 x>`` and an unterminated ``</response_2``
    are look-alikes too, ``<prompts>`` is not.
    """
    names = "|".join(re.escape(t.casefold()) for t in sorted(tags, key=len, reverse=True))
    return re.compile(r"<[\s/]*(?:" + names + r")(?![\w-])")


def find_lookalikes(text: str, tags: Iterable[str]) -> list[int]:
    """Indices (in ``text``) of the characters opening a fence-like tag, in order.

    A tag is looked for both with invisible characters dropped (they may
    split a name) and with them kept as gaps (they may end one).
    """
    if _OPENER_RE.search(text) is None:
        return []
    pattern = tag_pattern(tuple(tags))
    starts: set[int] = set()
    for keep_gaps in (False, True):
        folded, origin = fold(text, keep_gaps=keep_gaps)
        starts.update(origin[m.start()] for m in pattern.finditer(folded))
    return sorted(starts)


def defuse_tags(text: str, tags: Iterable[str]) -> str:
    """Replace the opening character of every fence look-alike with ``&lt;``."""
    starts = find_lookalikes(text, tags)
    if not starts:
        return text
    pieces: list[str] = []
    previous = 0
    for start in starts:
        pieces.append(text[previous:start])
        pieces.append(DEFUSED_OPENER)
        previous = start + 1
    pieces.append(text[previous:])
    return "".join(pieces)
