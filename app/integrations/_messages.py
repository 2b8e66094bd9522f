"""Prompts and completions as trainers hand them, in the shapes Referee accepts.

Referee takes a prompt as a string or a list of ``{"role", "content"}``
messages, and a completion as a string or one assistant message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def message_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a multimodal content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return "" if content is None else str(content)


def as_prompt(prompt: Any) -> Any:
    """A string prompt as is; a conversation as its role/content messages (no tool fields)."""
    if isinstance(prompt, str):
        return prompt
    return [{"role": m["role"], "content": message_text(m.get("content"))} for m in prompt]


def as_completion(completion: Any) -> Any:
    """A string as is; TRL's conversational completion as one assistant message.

    Also used for a reference answer (a number becomes its string).

    TRL hands a conversational completion as a list of messages: one assistant
    message, or with tools the assistant's turns and the tool results between
    them. The assistant's turns are joined (blank line between) into the one
    assistant message Referee judges; tool results are left out.
    """
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, Mapping | list):
        return str(completion)
    if isinstance(completion, Mapping):
        completion = [completion]
    turns = [message_text(m.get("content")) for m in completion if m.get("role") == "assistant"]
    return [{"role": "assistant", "content": "\n\n".join(t for t in turns if t)}]
