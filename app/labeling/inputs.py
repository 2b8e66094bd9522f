"""The canonical pair input and its conversion to judge values.

``{"id"?, "prompt", "response_a", "response_b", "metadata"?}``: ``prompt`` is
a string or a list of ``{"role", "content"}`` messages; each response is a
string or an assistant message (alone or in a one-element list). The shape
the caller used is kept as given, so exports can return it unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from app.errors import TextTooLargeError
from app.labeling.text_rules import CleanStr, ExternalId, Metadata
from judges.types import Conversation, Message, Pair, Text


class MessageIn(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: CleanStr


PromptIn = CleanStr | list[MessageIn]
ResponseIn = CleanStr | MessageIn | list[MessageIn]


def check_response(value: ResponseIn) -> ResponseIn:
    """A response is a string or one assistant message (alone or in a list)."""
    messages = [value] if isinstance(value, MessageIn) else value
    if isinstance(messages, list) and (len(messages) != 1 or messages[0].role != "assistant"):
        raise ValueError("a response is a string or one assistant message")
    return value


def check_prompt(value: PromptIn) -> PromptIn:
    """A prompt conversation has at least one message."""
    if isinstance(value, list) and not value:
        raise ValueError("a prompt conversation needs at least one message")
    return value


Prompt = Annotated[
    PromptIn,
    AfterValidator(check_prompt),
    Field(description="A string, or a list of role/content messages."),
]
Response = Annotated[
    ResponseIn,
    AfterValidator(check_response),
    Field(description="A string or an assistant message."),
]


class PairIn(BaseModel):
    """A pair of candidate responses to one prompt, as callers send it."""

    model_config = ConfigDict(extra="forbid")

    id: ExternalId | None = Field(None, description="Your identifier for the pair.")
    prompt: Prompt
    response_a: Response
    response_b: Response
    metadata: Metadata | None = Field(None, description="Free-form, stored as given.")
    criteria: CleanStr | None = Field(
        None,
        description="What to judge by: free text, or the name of a criteria entry (GET "
        "/v1/templates). Fenced and defused like the texts judged; part of the label key.",
    )
    reference: Response | None = Field(
        None,
        description="A reference answer the template shows the judge (a string or an "
        "assistant message); part of the label key.",
    )

    def to_pair(self) -> Pair:
        return Pair(
            prompt=to_text(self.prompt),
            response_a=to_text(self.response_a),
            response_b=to_text(self.response_b),
            criteria=self.criteria,
            reference=None if self.reference is None else to_text(self.reference),
        )

    def stored(self) -> dict[str, Any]:
        """The prompt and responses (and criteria, reference when given) as JSON values.

        Criteria and reference are left out when absent, so the label keys of
        pairs without them are what they always were.
        """
        fields = {"prompt", "response_a", "response_b"}
        fields |= {k for k in ("criteria", "reference") if getattr(self, k) is not None}
        return self.model_dump(include=fields, mode="json")


GoldWinner = Literal["a", "b", "tie"]


def gold_label(value: object) -> object:
    """How data sets spell a preference: "A", " b ", "Tie" and 1 (first) or 2 (second).

    0 is refused, not guessed: it means a tie in PandaLM and the first answer
    in zero-based sets. Anything else is left for validation to refuse.
    """
    if isinstance(value, str) and value.strip().lower() in ("a", "b", "tie"):
        return value.strip().lower()
    if type(value) is int and value in (1, 2):
        return "a" if value == 1 else "b"
    return value


class LabeledPairIn(PairIn):
    """A pair read from a file or an upload, which may carry a human's preference.

    ``label`` is stored as a gold label, apart from machine verdicts, so a
    human-labeled set judged with ``referee label`` can be compared with its
    judge in ``referee report``.
    """

    label: Annotated[GoldWinner | None, BeforeValidator(gold_label)] = Field(
        None,
        description='A human\'s preference (a, b or tie; "A", "B", "Tie", 1 or 2 read as '
        "a, b, tie, a, b), stored as a gold label.",
    )
    label_votes: list[GoldWinner] | None = Field(
        None, description="Each annotator's vote where several labeled the pair."
    )


def to_text(value: PromptIn | ResponseIn) -> Text:
    if isinstance(value, str):
        return value
    messages = [value] if isinstance(value, MessageIn) else value
    conversation: Conversation = tuple(Message(m.role, m.content) for m in messages)
    return conversation


def text_length(value: Text) -> int:
    """Characters of content, the unit length-bias checks use."""
    if isinstance(value, str):
        return len(value)
    return sum(len(m.content) for m in value)


def check_text_sizes(texts: dict[str, Text], limit: int) -> None:
    """Refuse any text over ``limit`` characters, naming the field (413)."""
    for field, value in texts.items():
        size = text_length(value)
        if size > limit:
            raise TextTooLargeError(
                f"{field} has {size} characters; the limit is {limit} (REFEREE_MAX_TEXT_CHARS)",
                field=field,
            )
