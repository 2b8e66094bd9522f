"""Input shapes accepted by ``referee label``, each turned into the canonical pair.

Detected from a line's fields (or forced with ``--format``):

- ``canonical``: ``prompt``, ``response_a``, ``response_b``, optional ``label`` (a|b|tie);
- ``trl``: ``prompt``, ``chosen``, ``rejected`` (strings or messages);
- ``hh-rlhf``: ``chosen``/``rejected`` whole ``\\n\\nHuman: … \\n\\nAssistant: …``
  transcripts, split at the last assistant turn;
- ``pandalm``: ``instruction``, ``input``, ``response1``, ``response2``, annotators;
- ``llmbar``: ``input``, ``output_1``, ``output_2``, ``label`` (1 or 2);
- anything else through ``--map`` (app.labeling.field_maps: paths, value maps,
  chosen/rejected), which ``referee inspect FILE`` suggests.

The human preference a shape carries becomes the pair's ``label`` (a gold
label). TRL and hh-rlhf rows always put the preferred answer in ``chosen``;
copied into ``response_a`` every time, a judge that always picks the first
position would agree with the humans 100% of the time. So ``chosen`` goes to
``a`` or ``b`` by a hash of the pair (the same pair always lands the same
way) and ``label`` says which. PandaLM's three annotators (0 = tie,
1 = response1, 2 = response2) give the majority, a tie when there is none,
and their votes are kept in ``label_votes``. LLMBar's 1|2 is a|b.

Fields a shape does not use are kept in ``metadata``, so nothing is lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from app.errors import InvalidInputError
from app.keys import digest

Document = dict[str, Any]


class DocumentMap(Protocol):
    """What :func:`converter` needs of a field map (:class:`app.labeling.field_maps.FieldMap`)."""

    @property
    def targets(self) -> set[str]: ...

    def apply(self, document: Document) -> Document: ...


CANONICAL = ("id", "prompt", "response_a", "response_b", "metadata", "label", "label_votes")
JUDGING = ("criteria", "reference")
"""Fields any shape passes through to the canonical pair: what to judge by, a reference."""
PANDALM_VOTES = {0: "tie", 1: "a", 2: "b"}
_TURN = re.compile(r"\n\n(Human|Assistant): ")


class ShapeError(ValueError):
    """A line that fits no shape, or breaks its shape's rules."""


def _with_rest(document: Document, used: set[str], canonical: Document) -> Document:
    for name in JUDGING:
        if name in document and name not in canonical:
            canonical[name] = document[name]
    used = used | set(JUDGING)
    rest = {k: v for k, v in document.items() if k not in used}
    given = document.get("metadata")
    if given is not None and not isinstance(given, dict):
        # dict() would turn ["ab"] into {"a": "b"}: refuse anything but an object.
        raise ShapeError("field 'metadata': Input should be a valid dictionary (a JSON object)")
    metadata = dict(given or {})
    metadata.update(rest)
    canonical["metadata"] = metadata or None
    return canonical


def from_canonical(document: Document) -> Document:
    return _with_rest(
        document, set(CANONICAL), {k: document[k] for k in CANONICAL if k in document}
    )


def place_chosen(prompt: Any, chosen: Any, rejected: Any) -> Document:
    """``response_a``, ``response_b`` and ``label`` with ``chosen`` on a side picked by hash.

    The hash covers the prompt and both answers unordered, so it does not
    depend on which one the data set preferred, and a pair always lands the
    same way (labeling a file again resumes instead of judging new pairs).
    """
    answers = sorted(digest(answer) for answer in (chosen, rejected))
    if int(digest({"prompt": prompt, "answers": answers})[-1], 16) % 2 == 0:
        return {"response_a": chosen, "response_b": rejected, "label": "a"}
    return {"response_a": rejected, "response_b": chosen, "label": "b"}


def from_trl(document: Document) -> Document:
    prompt = document["prompt"]
    canonical = {
        "id": document.get("id"),
        "prompt": prompt,
        **place_chosen(prompt, document["chosen"], document["rejected"]),
    }
    return _with_rest(document, {"id", "prompt", "chosen", "rejected", "metadata"}, canonical)


def split_transcript(transcript: str) -> tuple[list[dict[str, str]], str]:
    """Split an hh-rlhf transcript into the prompt conversation and the last assistant reply."""
    parts = _TURN.split(transcript)
    # parts: [preamble, role, text, role, text, ...]
    turns = [(parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2)]
    if not turns or turns[-1][0] != "Assistant":
        raise ShapeError("transcript does not end with an Assistant turn")
    messages = [
        {"role": "user" if role == "Human" else "assistant", "content": text}
        for role, text in turns[:-1]
    ]
    if not messages:
        raise ShapeError("transcript has no Human turn before the last Assistant turn")
    return messages, turns[-1][1]


def from_hh_rlhf(document: Document) -> Document:
    prompt_chosen, chosen = split_transcript(str(document["chosen"]))
    prompt_rejected, rejected = split_transcript(str(document["rejected"]))
    if prompt_chosen != prompt_rejected:
        raise ShapeError("chosen and rejected transcripts differ before the last Assistant turn")
    canonical = {
        "id": document.get("id"),
        "prompt": prompt_chosen,
        **place_chosen(prompt_chosen, chosen, rejected),
    }
    return _with_rest(document, {"id", "chosen", "rejected", "metadata"}, canonical)


def _pandalm_text(value: Any) -> Any:
    # testset-v1.json holds six answers as JSON true (the model wrote "True"):
    # a scalar answer is read as its text; anything else is left to validation.
    if isinstance(value, bool | int | float):
        return str(value)
    return value


def pandalm_votes(document: Document) -> list[str]:
    """Each present annotator's vote as a|b|tie (PandaLM codes: 0 tie, 1 first, 2 second)."""
    votes = []
    for name in ("annotator1", "annotator2", "annotator3"):
        if name not in document:
            continue
        code = document[name]
        if isinstance(code, bool) or code not in PANDALM_VOTES:
            raise ShapeError(f"field {name!r}: PandaLM votes are 0 (tie), 1 or 2, got {code!r}")
        votes.append(PANDALM_VOTES[code])
    return votes


def majority(votes: list[str]) -> str:
    """The label more than half the votes give; a tie when no label has a majority."""
    for label in set(votes):
        if votes.count(label) * 2 > len(votes):
            return label
    return "tie"


def from_pandalm(document: Document) -> Document:
    instruction, extra = str(document["instruction"]), str(document.get("input") or "")
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    canonical: Document = {
        "id": str(document["idx"]) if "idx" in document else None,
        "prompt": prompt,
        "response_a": _pandalm_text(document["response1"]),
        "response_b": _pandalm_text(document["response2"]),
    }
    votes = pandalm_votes(document)
    if votes:
        canonical.update(label=majority(votes), label_votes=votes)
    return _with_rest(
        document, {"idx", "instruction", "input", "response1", "response2"}, canonical
    )


def from_llmbar(document: Document) -> Document:
    canonical: Document = {
        "prompt": document["input"],
        "response_a": document["output_1"],
        "response_b": document["output_2"],
    }
    if "label" in document:
        label = document["label"]
        if isinstance(label, bool) or label not in (1, 2):
            raise ShapeError(f"field 'label': LLMBar labels are 1 or 2, got {label!r}")
        canonical["label"] = "a" if label == 1 else "b"
    return _with_rest(document, {"input", "output_1", "output_2", "label"}, canonical)


SHAPES: dict[str, tuple[set[str], Callable[[Document], Document]]] = {
    "canonical": ({"prompt", "response_a", "response_b"}, from_canonical),
    "trl": ({"prompt", "chosen", "rejected"}, from_trl),
    "hh-rlhf": ({"chosen", "rejected"}, from_hh_rlhf),
    "pandalm": ({"instruction", "response1", "response2"}, from_pandalm),
    "llmbar": ({"input", "output_1", "output_2"}, from_llmbar),
}


def detect_shape(document: Document) -> str | None:
    """The first built-in shape whose fields a line has; None when it has none."""
    for name, (required, _convert) in SHAPES.items():
        if required <= document.keys():
            return name
    return None


def detect(document: Document) -> Document:
    """Convert a line by the shape its fields show."""
    name = detect_shape(document)
    if name is not None:
        return SHAPES[name][1](document)
    if document.keys() & {"prompt", "response_a", "response_b"}:
        return from_canonical(document)  # validation then names the missing fields
    raise ShapeError(
        "no known shape: expected prompt/response_a/response_b (or TRL, hh-rlhf, PandaLM, "
        "LLMBar fields); use --map for others (`referee inspect FILE` suggests one)"
    )


def converter(
    fmt: str = "auto", mapping: DocumentMap | None = None
) -> Callable[[Document], Document]:
    """A function from one input document to a canonical document.

    A field map (app.labeling.field_maps) runs first and yields a line in a
    built-in shape, which that shape's converter then reads like any other.
    """
    if fmt != "auto" and fmt not in SHAPES:
        raise InvalidInputError(f"unknown --format {fmt!r}; known: auto, {', '.join(SHAPES)}")
    convert = SHAPES[fmt][1] if fmt != "auto" else detect
    if mapping is None:
        return convert
    apply = mapping.apply
    if "label" not in mapping.targets:
        return lambda document: convert(apply(document))

    def convert_mapped(document: Document) -> Document:
        # The label the map has translated is final: a built-in shape must not read it
        # again by its own codes (LLMBar's converter would refuse the "b" that 2 became).
        applied = apply(document)
        label = applied.pop("label", None)
        result = convert(applied)
        return result if label is None else {**result, "label": label}

    return convert_mapped
