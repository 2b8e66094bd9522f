"""An Anthropic judge reads its reply from the JSON body, exactly as the SDK's Message gives it.

The judge skips building the SDK's whole ``Message`` model for each call
(the CPU it cost slowed reward scoring), so these tests hold the shortcut to
the SDK's own result: the same content blocks (the stored raw output, with
the SDK models' defaults), usage with cache tokens, stop reason, id and
model; a body of another shape is left to the SDK.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import Message

from judges.backends.anthropic import Reply
from judges.types import Usage

TOOL_USE = {
    "type": "tool_use",
    "id": "toolu_01",
    "name": "record_rating",
    "input": {"rationale": "clear", "score": 8},
}
TEXT_WITH_CITATION = {
    "type": "text",
    "text": "Tides follow the moon.",
    "citations": [
        {
            "type": "char_location",
            "cited_text": "moon",
            "document_index": 0,
            "document_title": None,
            "start_char_index": 0,
            "end_char_index": 4,
        }
    ],
}
THINKING = {"type": "thinking", "thinking": "Weigh both.", "signature": "sig"}
UNKNOWN_BLOCK = {"type": "a_future_block", "data": [1, 2]}


def body(content: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": content,
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 403,
            "output_tokens": 7,
            "cache_creation_input_tokens": 2100,
            "cache_read_input_tokens": 0,
        },
        **fields,
    }


def sdk_reply(data: dict[str, Any]) -> Reply:
    """What the judge read before: the SDK's Message, built as the SDK builds a reply."""
    return Reply.of_message(Message.construct(**data))


@pytest.mark.parametrize(
    "data",
    [
        body([TOOL_USE]),
        body([THINKING, TOOL_USE]),
        body([TEXT_WITH_CITATION], stop_reason="end_turn"),
        body([UNKNOWN_BLOCK, TOOL_USE]),
        body([], stop_reason="refusal"),
        body([TOOL_USE], usage={"input_tokens": 5, "output_tokens": 2}),
        body(
            [TOOL_USE],
            usage={"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": None},
        ),
    ],
    ids=["tool_use", "thinking", "citations", "unknown-block", "refusal", "no-cache", "null-cache"],
)
def test_the_body_gives_what_the_sdk_message_gives(data: dict[str, Any]) -> None:
    reply = Reply.of_body(json.dumps(data).encode())
    assert reply == sdk_reply(data)
    assert reply is not None
    assert reply.raw_output() == sdk_reply(data).raw_output()


def test_stored_fields_keep_their_values() -> None:
    reply = Reply.of_body(json.dumps(body([TOOL_USE])).encode())
    assert reply is not None
    assert (reply.id, reply.model, reply.stop_reason) == ("msg_01", "claude-sonnet-4-6", "tool_use")
    assert reply.usage == Usage(403, 7, cache_read_tokens=0, cache_write_tokens=2100)
    # The SDK's model dumps its defaults too: the raw output is the same JSON as before.
    [block] = json.loads(reply.raw_output())
    assert block["input"] == {"rationale": "clear", "score": 8}
    assert set(TOOL_USE) < set(block)


@pytest.mark.parametrize(
    "raw",
    [
        b"<html>bad gateway</html>",
        b"[]",
        json.dumps({"id": "msg_01", "content": [TOOL_USE]}).encode(),
        json.dumps(body(["not a block"])).encode(),  # type: ignore[list-item]
        json.dumps(body([TOOL_USE], usage={"input_tokens": "5", "output_tokens": 2})).encode(),
        json.dumps(body([TOOL_USE], usage={"output_tokens": 2})).encode(),
        json.dumps(body([TOOL_USE], stop_reason=3)).encode(),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "no-usage",
        "odd-block",
        "text-count",
        "no-input",
        "odd-stop",
    ],
)
def test_a_body_of_another_shape_is_left_to_the_sdk(raw: bytes) -> None:
    assert Reply.of_body(raw) is None


def test_an_sdk_without_its_block_constructor_leaves_every_body_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The constructor is the SDK's private API; a release without it must not break judging.
    monkeypatch.setattr("judges.backends.anthropic._construct_block", None)
    assert Reply.of_body(json.dumps(body([TOOL_USE])).encode()) is None
