"""``referee export dpo --round NAME``: the round's chosen/rejected as DPO rows, and its lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fake_provider import FakeProvider
from tests.test_rounds import SELECTED, prompts_file, referee, round_args, rows


def _text(value: str | list[dict[str, str]]) -> str:
    """A text column as is; a message column must be one assistant message."""
    if isinstance(value, str):
        return value
    (message,) = value
    assert message["role"] == "assistant"
    return message["content"]


@pytest.fixture
def two_rounds(database_url: str, provider: FakeProvider, tmp_path: Path) -> str:
    """r1 (checkpoint sft), then r2 (checkpoint dpo-1) with r1 as its parent."""
    provider.configure(policy="longer")
    source = prompts_file(tmp_path / "prompts.jsonl")
    assert referee(database_url, *round_args("r1", source, "--checkpoint", "sft")).exit_code == 0
    second = round_args("r2", source, "--checkpoint", "dpo-1", "--parent", "r1", seed=8)
    assert referee(database_url, *second).exit_code == 0
    return database_url


def check_rows(two_rounds: str, tmp_path: Path, shape: str) -> None:
    out = tmp_path / shape
    result = referee(
        two_rounds, "export", "dpo", "--round", "r2", "--out", str(out), "--shape", shape
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    selected = rows(two_rounds, SELECTED.format(name="r2"))
    assert len(lines) == len(selected) > 0
    texts = sorted((_text(r["chosen"]), _text(r["rejected"])) for r in lines)
    assert texts == sorted((c, r) for _, c, r in selected)
    kinds = {type(row[column]) for row in lines for column in ("prompt", "chosen", "rejected")}
    assert kinds == ({str} if shape == "text" else {list})
    # The r1 round's pairs are not in r2's export.
    r1 = {(c, r) for _, c, r in rows(two_rounds, SELECTED.format(name="r1"))}
    assert not r1 & {(c, r) for _, c, r in selected}


def test_the_rows_are_the_rounds_selected_pairs_and_the_card_its_lineage(
    two_rounds: str, tmp_path: Path
) -> None:
    """One row per selected prompt, as selected, each column one type in both shapes; the
    card names the round, its policy and checkpoint, strategy, judge, and its parents."""
    check_rows(two_rounds, tmp_path, "text")
    check_rows(two_rounds, tmp_path, "conversational")
    out = tmp_path / "conversational"
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## Round lineage" in card
    assert "- Rows by source: `round` (" in card, card
    assert "- sources: round r2" in card, card
    this, parent = (line for line in card.splitlines() if line.startswith(("1. ", "2. ")))
    assert this.startswith("1. round `r2` (this export): policy `openai:policy-model`")
    assert "checkpoint `dpo-1`" in this
    assert "strategy all-pairs; judge `openai:gpt-4o-mini`" in this
    assert parent.startswith("2. round `r1` (parent)")
    assert "checkpoint `sft`" in parent


REFUSED = [
    (["dpo", "--round", "nope"], "no round named 'nope'"),
    (["kto", "--round", "r2"], "a round exports DPO pairs"),
    (["dpo", "--round", "r2", "--consistent-only"], "do not apply to it"),
    (["dpo", "--round", "r2", "--source", "verdicts"], "do not apply to it"),
    (["dpo", "--source", "round"], "use --round NAME"),
    (["sft", "--source", "round"], "use --round NAME"),
]


def test_a_round_export_refuses_what_does_not_apply(two_rounds: str, tmp_path: Path) -> None:
    """Unknown rounds, other kinds and verdict filters are one-line errors; nothing is written."""
    for args, message in REFUSED:
        out = tmp_path / "out"
        result = referee(two_rounds, "export", *args, "--out", str(out))
        assert result.exit_code == 2, args
        assert message in result.output, args
        assert not out.exists()
