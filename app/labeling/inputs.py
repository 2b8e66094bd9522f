"""The canonical pair input and its conversion to judge values.

``{"id"?, "prompt", "response_a", "response_b", "metadata"?}``: ``prompt`` is
a string or a list of ``{"role", "content"}`` messages; each response is a
string or an assistant message (alone or in a one-element list). The shape
the caller used is kept as given, so exports can return it unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from judges.types import Conversation, Message, Pair, Text


class MessageIn(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


PromptIn = str | list[MessageIn]
ResponseIn = str | MessageIn | list[MessageIn]


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


class PairIn(BaseModel):
    """A pair of candidate responses to one prompt, as callers send it."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=512, description="Your identifier for the pair.")
    prompt: PromptIn = Field(description="A string, or a list of role/content messages.")
    response_a: ResponseIn = Field(description="A string or an assistant message.")
    response_b: ResponseIn = Field(description="A string or an assistant message.")
    metadata: dict[str, Any] | None = Field(None, description="Free-form, stored as given.")

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: PromptIn) -> PromptIn:
        return check_prompt(value)

    @field_validator("response_a", "response_b")
    @classmethod
    def _response_shape(cls, value: ResponseIn) -> ResponseIn:
        return check_response(value)

    def to_pair(self) -> Pair:
        return Pair(
            prompt=to_text(self.prompt),
            response_a=to_text(self.response_a),
            response_b=to_text(self.response_b),
        )

    def stored(self) -> dict[str, Any]:
        """The prompt and responses as JSON values, in the caller's shape."""
        return self.model_dump(include={"prompt", "response_a", "response_b"}, mode="json")


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
