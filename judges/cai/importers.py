"""Importers from other constitution formats; :func:`~judges.cai.constitutions.to_yaml` writes ours.

Two sources are understood:

- the Constitutional AI paper's prompt files (Bai et al., 2022):
  ``CritiqueRevisionInstructions.json`` (critique and revision requests),
  ``RLMadisonInstructions.json`` (preference questions), and the few-shot
  files ``CritiqueRevisionFewShotPrompts.json`` and
  ``RLMadisonFewShotPrompts.json``;
- Hugging Face's CAI recipe JSON,
  ``{"constitutions": [{"critic", "revision"}], "system_chat": [[messages]]}``.

Every importer builds plain data and validates it through the same code as
:func:`judges.cai.constitutions.load_constitution`, so what it returns is as
checked as a hand-written file; what it had to decide (pairing, derived
questions, skipped few-shots) is written into the description.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from judges.cai._schema import SLUG, ConstitutionError
from judges.cai.constitutions import Constitution, constitution_from_dict

__all__ = [
    "PAPER_CRITIQUE_EXAMPLES",
    "PAPER_INSTRUCTIONS",
    "PAPER_PREFERENCES",
    "PAPER_PREFERENCE_EXAMPLES",
    "PREFERENCE_TEMPLATE",
    "derived_preference_question",
    "from_cai_paper",
    "from_hf_recipe",
]

PAPER_INSTRUCTIONS = "CritiqueRevisionInstructions.json"
PAPER_PREFERENCES = "RLMadisonInstructions.json"
PAPER_CRITIQUE_EXAMPLES = "CritiqueRevisionFewShotPrompts.json"
PAPER_PREFERENCE_EXAMPLES = "RLMadisonFewShotPrompts.json"

PREFERENCE_TEMPLATE = (
    "Consider this review of a response: {critique_request} "
    "Which response gives that review less to object to?"
)
"""How a preference question is made from a critique request when a source has none."""

_TURN = re.compile(r"\n\n(Human|Assistant|CritiqueRequest|Critique|RevisionRequest|Revision):")
_ROLE = {"Human": "user", "Assistant": "assistant"}


def derived_preference_question(critique_request: str) -> str:
    """The preference question :data:`PREFERENCE_TEMPLATE` makes from a critique request."""
    return PREFERENCE_TEMPLATE.format(critique_request=critique_request.strip())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConstitutionError(f"cannot read the file: {exc}", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ConstitutionError(
            f"JSON syntax error: {exc.msg}", file=str(path), line=exc.lineno, column=exc.colno
        ) from None


def _strip_labels(text: str, request: str, answer: str) -> str:
    """``\\n\\nCritiqueRequest: ...\\n\\nCritique:`` -> ``...``."""
    text = re.sub(rf"^\s*{request}:\s*", "", text)
    return re.sub(rf"\s*{answer}:\s*$", "", text).strip()


def _slugify(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


def _paper_principles(path: Path) -> list[dict[str, Any]]:
    data = _read_json(path)
    if not isinstance(data, dict) or not data:
        raise ConstitutionError("expected a non-empty object of named instructions", file=str(path))
    principles = []
    for index, (key, item) in enumerate(data.items(), start=1):
        at: dict[str, Any] = {"file": str(path), "principle": key, "principle_index": index}
        fields = item if isinstance(item, dict) else {}
        prompt, edit = fields.get("prompt"), fields.get("edit_request")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ConstitutionError("expected one critique request string", field="prompt", **at)
        if not isinstance(edit, str):
            raise ConstitutionError(
                "expected a revision request string", field="edit_request", **at
            )
        pid = _slugify(key)
        if not SLUG.fullmatch(pid):
            raise ConstitutionError("no usable principle id can be made from this key", **at)
        principles.append(
            {
                "id": pid,
                "critique_request": _strip_labels(prompt, "CritiqueRequest", "Critique"),
                "revision_request": _strip_labels(edit, "RevisionRequest", "Revision"),
            }
        )
    return principles


def _paper_questions(path: Path) -> list[str]:
    data = _read_json(path)
    if not isinstance(data, list) or not data or not all(isinstance(q, str) for q in data):
        raise ConstitutionError("expected a non-empty list of question strings", file=str(path))
    return [re.sub(r"\s*Options:\s*$", "", q).strip() for q in data]


def _pair_questions(principles: list[dict[str, Any]], questions: list[str], source: str) -> str:
    """Give principle i question i; cycle the questions if they are fewer; say what happened."""
    for index, principle in enumerate(principles):
        principle["preference_question"] = questions[index % len(questions)]
    n, m = len(principles), len(questions)
    rule = f"{n} principles, {m} questions"
    if m < n:
        rule += "; the questions were cycled, so principle i has question i mod " + str(m)
    elif m > n:
        rule += f"; the last {m - n} questions had no principle and were left out"
    return f"Preference questions from {source}, paired with principles by position ({rule})."


def _transcript(text: str) -> list[tuple[str, str]]:
    """``\\n\\nHuman: ...\\n\\nAssistant: ...`` -> [(label, text)], minus a trailing empty turn."""
    parts = _TURN.split("\n\n" + text.lstrip())
    turns = [(label, body.strip()) for label, body in zip(parts[1::2], parts[2::2], strict=True)]
    if turns and not turns[-1][1]:
        turns.pop()
    return turns


def _conversation(turns: list[tuple[str, str]]) -> str | list[dict[str, str]] | None:
    """Alternating user/assistant turns that start and end with the user as a prompt, else None.

    One user turn is a plain string prompt; more are a message list.
    """
    if not turns or len(turns) % 2 == 0:
        return None
    for index, (role, body) in enumerate(turns):
        if role != ("user" if index % 2 == 0 else "assistant") or not body:
            return None
    if len(turns) == 1:
        return turns[0][1]
    return [{"role": role, "content": body} for role, body in turns]


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _texts(*values: object) -> bool:
    return all(isinstance(v, str) and v.strip() for v in values)


def _critique_example(
    prompt: object, response: str, critique: str, revision: str
) -> dict[str, Any]:
    """A revision identical to the response means the critique found nothing to fix."""
    needs_revision = not _same(revision, response)
    example = {
        "prompt": prompt,
        "response": response,
        "critique": critique,
        "needs_revision": needs_revision,
    }
    if needs_revision:
        example["revision"] = revision
    return example


def _paper_critique(turns: list[tuple[str, str]]) -> dict[str, Any] | None:
    labels = [label for label, _ in turns[-5:]]
    if labels != ["Assistant", "CritiqueRequest", "Critique", "RevisionRequest", "Revision"]:
        return None
    prompt = _conversation([(_ROLE.get(label, label), body) for label, body in turns[:-5]])
    if prompt is None or not all(body for _, body in turns[-5:]):
        return None
    return _critique_example(prompt, turns[-5][1], turns[-3][1], turns[-1][1])


def _paper_critique_examples(path: Path) -> tuple[list[dict[str, Any]], int]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise ConstitutionError("expected a list of few-shot transcripts", file=str(path))
    examples: list[dict[str, Any]] = []
    for text in data:
        example = _paper_critique(_transcript(text)) if isinstance(text, str) else None
        if example is not None:
            examples.append(example)
    return examples, len(data) - len(examples)


def _paper_preference_examples(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The better response is ``a`` in even-numbered examples and ``b`` in odd ones.

    Always putting it first would teach the judge a position bias.
    """
    data = _read_json(path)
    if not isinstance(data, list):
        raise ConstitutionError("expected a list of few-shot items", file=str(path))
    examples: list[dict[str, Any]] = []
    skipped = 0
    for item in data:
        fields = item if isinstance(item, dict) else {}
        text = fields.get("prompt")
        turns = _transcript(text) if isinstance(text, str) else []
        prompt = _conversation([(_ROLE.get(label, label), body) for label, body in turns])
        goods, bads = fields.get("corrects"), fields.get("incorrects")
        if prompt is None or not isinstance(goods, list) or not isinstance(bads, list):
            goods = bads = []
        pairs = [(g, b) for g, b in zip(goods, bads, strict=False) if _texts(g, b)]
        skipped += not pairs
        for good, bad in pairs:
            first_is_good = len(examples) % 2 == 0
            examples.append(
                {
                    "prompt": prompt,
                    "response_a": good if first_is_good else bad,
                    "response_b": bad if first_is_good else good,
                    "choice": "a" if first_is_good else "b",
                }
            )
    return examples, skipped


def _skipped_note(skipped: int, what: str, source: Path) -> str:
    if not skipped:
        return ""
    return f" {skipped} {what} in {source.name} could not be parsed and were skipped."


def from_cai_paper(
    critique_revision_json: Path,
    preference_json: Path | None = None,
    *,
    id: str,
    version: str,
    description: str,
    critique_examples_json: Path | None = None,
    preference_examples_json: Path | None = None,
) -> Constitution:
    """A constitution from the CAI paper's JSON files.

    Principle ids are the instruction keys (``harmful0`` ...), slugified;
    the ``CritiqueRequest:``/``Critique:`` and ``RevisionRequest:``/
    ``Revision:`` labels are stripped. Preference questions (``Options:``
    stripped) pair with principles by position: fewer questions are
    cycled, extra ones are left out; without a preference file each
    question is derived with :data:`PREFERENCE_TEMPLATE`. Few-shot
    transcripts become examples where they parse; a revision identical to
    the response counts as "nothing to fix". The description records all
    of this.
    """
    principles = _paper_principles(critique_revision_json)
    notes = [
        f"Imported from the Constitutional AI paper's {critique_revision_json.name} "
        f"({len(principles)} critique/revision requests)."
    ]
    if preference_json is not None:
        notes.append(
            _pair_questions(principles, _paper_questions(preference_json), preference_json.name)
        )
    else:
        for p in principles:
            p["preference_question"] = derived_preference_question(p["critique_request"])
        notes.append(f"Preference questions derived as {PREFERENCE_TEMPLATE!r}.")
    data: dict[str, Any] = {"id": id, "version": version, "principles": principles}
    if critique_examples_json is not None:
        data["critique_examples"], skipped = _paper_critique_examples(critique_examples_json)
        notes.append(
            f"Critique examples from {critique_examples_json.name}."
            + _skipped_note(skipped, "transcripts", critique_examples_json)
        )
    if preference_examples_json is not None:
        data["preference_examples"], skipped = _paper_preference_examples(preference_examples_json)
        notes.append(
            f"Preference examples from {preference_examples_json.name}, the better response "
            "alternately as a and b." + _skipped_note(skipped, "items", preference_examples_json)
        )
    data["description"] = _describe(description, notes)
    return constitution_from_dict(data, source=critique_revision_json)


def _describe(description: str, notes: list[str]) -> str:
    return "\n\n".join(part for part in (description.strip(), " ".join(notes)) if part)


def _hf_critique(chat: object) -> dict[str, Any] | None:
    """A chat of user-led prompt turns, then response, critique request, critique,
    revision request and revision."""
    if not isinstance(chat, list) or not all(
        isinstance(m, dict)
        and m.get("role") in ("user", "assistant")
        and isinstance(m.get("content"), str)
        for m in chat
    ):
        return None
    turns = [(str(m["role"]), str(m["content"]).strip()) for m in chat]
    if [role for role, _ in turns[-5:]] != ["assistant", "user", "assistant", "user", "assistant"]:
        return None
    prompt = _conversation(turns[:-5])
    if prompt is None or not all(body for _, body in turns[-5:]):
        return None
    return _critique_example(prompt, turns[-5][1], turns[-3][1], turns[-1][1])


def from_hf_recipe(
    path: Path,
    *,
    id: str,
    version: str,
    description: str,
) -> Constitution:
    """A constitution from a Hugging Face CAI recipe JSON.

    Each ``{"critic", "revision"}`` becomes principle ``principle-1``,
    ``principle-2``, ...; the recipe has no preference questions, so each
    is derived from the critic text with :data:`PREFERENCE_TEMPLATE`.
    ``system_chat`` conversations that end in response, critique request,
    critique, revision request and revision become critique examples; the
    rest are skipped. The description records both.
    """
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConstitutionError("expected a JSON object", file=str(path))
    items = data.get("constitutions")
    if not isinstance(items, list) or not items:
        raise ConstitutionError("must be a non-empty list", file=str(path), field="constitutions")
    principles = []
    for index, item in enumerate(items, start=1):
        fields = item if isinstance(item, dict) else {}
        critic, revision = fields.get("critic"), fields.get("revision")
        if not isinstance(critic, str) or not isinstance(revision, str):
            raise ConstitutionError(
                "each item needs a critic and a revision string",
                file=str(path),
                principle=index,
                field="critic" if not isinstance(critic, str) else "revision",
            )
        principles.append(
            {
                "id": f"principle-{index}",
                "critique_request": critic,
                "revision_request": revision,
                "preference_question": derived_preference_question(critic),
            }
        )
    chats = data.get("system_chat", [])
    if not isinstance(chats, list):
        raise ConstitutionError(
            "must be a list of conversations", file=str(path), field="system_chat"
        )
    examples = [e for e in map(_hf_critique, chats) if e is not None]
    skipped = len(chats) - len(examples)
    notes = [
        f"Imported from the Hugging Face CAI recipe {path.name}. It has no preference "
        f"questions: each was derived from the critic text as {PREFERENCE_TEMPLATE!r}."
        + _skipped_note(skipped, "system_chat conversations", path)
    ]
    return constitution_from_dict(
        {
            "id": id,
            "version": version,
            "description": _describe(description, notes),
            "principles": principles,
            "critique_examples": examples,
        },
        source=path,
    )
