"""Training rows in the shapes TRL reads, built from stored labels.

Every row of one export has the same shape: TRL decides "conversational or
not" from the first row and a mixed file breaks later rows, so the shape is
chosen once for the export and every stored prompt and response (each sent
as a string or as messages) is converted to it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from app.export.options import Shape, SplitBy
from app.keys import prompt_messages, response_content

Row = dict[str, Any]


def prompt_value(prompt: Any, shape: Shape) -> Any:
    messages = prompt_messages(prompt)
    if shape is Shape.CONVERSATIONAL:
        return messages
    if len(messages) == 1 and messages[0]["role"] == "user":
        text = messages[0]["content"]
    else:
        # A multi-turn prompt as text: the turns, labelled, in order.
        text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
    return text + text_separator(text)


def text_separator(prompt: str) -> str:
    """What ends a text prompt so that prompt + completion reads right.

    TRL concatenates a text prompt and its completion as they are: without
    a separator "What is 2+2?" and "Four." would train on "What is 2+2?Four."
    A prompt ending in a colon ("Assistant:") gets a space, others a blank
    line, and one already ending in white space nothing.
    """
    if not prompt or prompt[-1].isspace():
        return ""
    return " " if prompt.endswith(":") else "\n\n"


def response_value(response: Any, shape: Shape) -> Any:
    content = response_content(response)
    if shape is Shape.CONVERSATIONAL:
        return [{"role": "assistant", "content": content}]
    return content


def dpo_row(prompt: Any, chosen: Any, rejected: Any, shape: Shape) -> Row:
    return {
        "prompt": prompt_value(prompt, shape),
        "chosen": response_value(chosen, shape),
        "rejected": response_value(rejected, shape),
    }


def kto_row(prompt: Any, completion: Any, label: bool, shape: Shape) -> Row:
    return {
        "prompt": prompt_value(prompt, shape),
        "completion": response_value(completion, shape),
        "label": label,
    }


def sft_row(prompt: Any, completion: Any, shape: Shape) -> Row:
    messages = [
        *prompt_messages(prompt),
        {"role": "assistant", "content": response_content(completion)},
    ]
    if shape is Shape.CONVERSATIONAL:
        return {"messages": messages}
    # TRL's plain-text SFT column is "text".
    return {"text": "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)}


def in_test_split(row_id: str, prompt: Any, test_size: float, split_by: SplitBy) -> bool:
    """Deterministic: the same id (or prompt) lands in the same split on every export.

    Splitting by prompt keeps every row of one prompt on one side, so the
    test split measures prompts the model has not trained on.
    """
    if test_size <= 0:
        return False
    key = row_id if split_by is SplitBy.ID else orjson.dumps(prompt_messages(prompt)).decode()
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return bucket < test_size


def spliced_dpo_line(prompt: str, chosen: str, rejected: str) -> bytes | None:
    """A message-shaped DPO row built from stored JSON text, or None if it cannot be.

    When the prompt and both responses were stored as plain strings, their
    stored JSON text already is valid JSON for the ``content`` fields:
    splicing it skips decoding and re-encoding three texts per row, which
    is most of an export's cost for non-ASCII text. Anything else (a stored
    message list) returns None and takes the decoding path.
    """
    if not (prompt[:1] == chosen[:1] == rejected[:1] == '"'):
        return None
    return (
        '{"prompt":[{"role":"user","content":'
        + prompt
        + '}],"chosen":[{"role":"assistant","content":'
        + chosen
        + '}],"rejected":[{"role":"assistant","content":'
        + rejected
        + "}]}"
    ).encode()
