"""Field maps (--map) and `referee inspect` on small files in the shapes of public preference sets.

The files under tests/data/maps were written for these tests; the expected
labels below were counted by hand from them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from app.cli import cli
from app.errors import InvalidInputError
from app.labeling.field_maps import FieldMap, load_map, load_yaml, parse_inline
from app.labeling.inputs import MessageIn
from app.labeling.inspect_file import inspect_stream, report
from app.labeling.jsonl import LineError, ParsedLine, open_input, read_pairs
from app.labeling.shapes import converter

MAPS = Path(__file__).parent / "data" / "maps"
WINNER_MAP = "prompt=question,response_a=answer_0,response_b=answer_1,label=winner:0=a,1=b,2=tie"
CHOICES_MAP = "prompt=question,response_a=answers.0,response_b=answers.1,label=labels.0:(A)=a,(B)=b"
PREFERRED_MAP = "id=uid,prompt=instruction,chosen=preferred,rejected=dispreferred"
ARENA_YAML = str(MAPS / "arena-map.yaml")


def read(path: Path, field_map: FieldMap | None, fmt: str = "auto") -> list[ParsedLine | LineError]:
    with open_input(str(path)) as stream:
        return list(read_pairs(stream, path.name, converter(fmt, field_map)))


def pairs(records: list[ParsedLine | LineError]) -> list[ParsedLine]:
    assert [r for r in records if isinstance(r, LineError)] == []
    return [r for r in records if isinstance(r, ParsedLine)]


def lines_of(text: str) -> io.StringIO:
    return io.StringIO(text)


class TestMapsOnTheirFiles:
    @pytest.mark.parametrize(
        ("name", "spec", "labels", "ids"),
        [
            (
                "winner-012.jsonl",
                WINNER_MAP,
                ["a", "b", "tie", "a", "b", "tie", "tie", "b", "a"],
                [f"w{n}" for n in range(101, 110)],
            ),
            ("choices-in-list.jsonl", CHOICES_MAP, ["b", "a", "b", "b", "a"], None),
            (
                "arena-conversations.json",
                ARENA_YAML,
                ["a", "tie", "b", "a", "tie"],
                ["q1", "q2", "q3", "q3", "q4"],
            ),
        ],
    )
    def test_value_maps_give_the_hand_counted_labels(
        self, name: str, spec: str, labels: list[str], ids: list[str] | None
    ) -> None:
        """0/1/2 codes, " (B)" inside a list and arena winners all become a|b|tie, line by line."""
        records = pairs(read(MAPS / name, load_map(spec)))
        assert [r.pair.label for r in records] == labels
        if ids is not None:
            assert [r.pair.id for r in records] == ids

    def test_answer_fields_land_where_the_map_says(self) -> None:
        """response_a is answer_0 and response_b answer_1, on every line; unused fields are kept."""
        source = [json.loads(line) for line in (MAPS / "winner-012.jsonl").open(encoding="utf-8")]
        records = pairs(read(MAPS / "winner-012.jsonl", parse_inline(WINNER_MAP)))
        for row, record in zip(source, records, strict=True):
            assert (record.pair.prompt, record.pair.response_a, record.pair.response_b) == (
                row["question"],
                row["answer_0"],
                row["answer_1"],
            )
            assert record.pair.metadata is None  # id, question, answers, winner: all used

    def test_nested_conversations_split_at_the_last_message(self) -> None:
        """prompt = every message but the last; each response = its conversation's last message."""
        items = json.loads((MAPS / "arena-conversations.json").read_text(encoding="utf-8"))
        records = pairs(read(MAPS / "arena-conversations.json", load_map(ARENA_YAML)))
        for item, record in zip(items, records, strict=True):
            prompt = record.pair.prompt
            assert isinstance(prompt, list)
            assert [m.model_dump() for m in prompt] == item["conversation_a"][:-1]
            response_a, response_b = record.pair.response_a, record.pair.response_b
            assert isinstance(response_a, MessageIn)
            assert isinstance(response_b, MessageIn)
            assert response_a.model_dump() == item["conversation_a"][-1]
            assert response_b.model_dump() == item["conversation_b"][-1]
            assert record.pair.metadata == {
                "model_a": item["model_a"],
                "model_b": item["model_b"],
                "turn": item["turn"],
            }
        assert len(records[1].pair.prompt) == 3  # the two-turn conversation

    def test_yaml_and_inline_maps_agree(self) -> None:
        """The arena YAML map and the same map written inline read the file identically."""
        inline = (
            "id=question_id,prompt=conversation_a.:-1,response_a=conversation_a.-1,"
            "response_b=conversation_b.-1,"
            "label=winner:model_a=a,model_b=b,tie=tie,tie (bothbad)=tie"
        )
        path = MAPS / "arena-conversations.json"
        from_yaml = [r.pair for r in pairs(read(path, load_map(ARENA_YAML)))]
        assert from_yaml == [r.pair for r in pairs(read(path, load_map(inline)))]


class TestChosenRejected:
    def test_preferred_answers_are_spread_over_a_and_b_and_the_label_follows(self) -> None:
        """Like TRL rows: preferred goes to a or b by hash, and the label always names it."""
        source = [
            json.loads(line)
            for line in (MAPS / "preferred-dispreferred.jsonl").open(encoding="utf-8")
        ]
        records = pairs(read(MAPS / "preferred-dispreferred.jsonl", parse_inline(PREFERRED_MAP)))
        for row, record in zip(source, records, strict=True):
            pair = record.pair
            chosen, other = (
                (pair.response_a, pair.response_b)
                if pair.label == "a"
                else (pair.response_b, pair.response_a)
            )
            assert (chosen, other) == (row["preferred"], row["dispreferred"])
            assert pair.id == row["uid"]
            assert pair.metadata == {"domain": row["domain"]}
        assert [r.pair.label for r in records] == ["a", "b", "a", "b", "a", "b"]

    @given(
        prompt=st.text(min_size=1, max_size=30),
        preferred=st.text(min_size=1, max_size=30),
        dispreferred=st.text(min_size=1, max_size=30),
    )
    def test_the_stored_winner_always_points_at_the_chosen_text(
        self, prompt: str, preferred: str, dispreferred: str
    ) -> None:
        """Whatever the texts, the side the label names holds the preferred answer."""
        line = {"q": prompt, "good": preferred, "bad": dispreferred, "label": "b"}
        convert = converter(mapping=parse_inline("prompt=q,chosen=good,rejected=bad"))
        (record,) = read_pairs(lines_of(json.dumps(line)), "p", convert)
        if isinstance(record, LineError):  # texts a pair refuses (NUL, lone surrogates)
            return
        pair = record.pair
        assert pair.label in ("a", "b")
        assert (pair.response_a if pair.label == "a" else pair.response_b) == preferred
        assert (pair.response_b if pair.label == "a" else pair.response_a) == dispreferred
        assert pair.metadata == {"label": "b"}  # a stray label can't override the chosen side

    def test_without_a_prompt_chosen_and_rejected_are_hh_rlhf_transcripts(self) -> None:
        """The map feeds the hh-rlhf converter: the prompt is split off the transcripts."""
        line = {
            "good": "\n\nHuman: hi\n\nAssistant: hello!",
            "bad": "\n\nHuman: hi\n\nAssistant: go away",
        }
        convert = converter(mapping=parse_inline("chosen=good,rejected=bad"))
        (record,) = read_pairs(lines_of(json.dumps(line)), "h", convert)
        assert isinstance(record, ParsedLine)
        assert isinstance(record.pair.prompt, list)
        assert [m.content for m in record.pair.prompt] == ["hi"]
        chosen = record.pair.response_a if record.pair.label == "a" else record.pair.response_b
        assert chosen == "hello!"


class TestPerLineRejects:
    def test_a_value_the_map_does_not_list_rejects_that_line_only(self) -> None:
        """Without 2=…, the three tie lines are rejected by name and value; six pairs are read."""
        partial = "prompt=question,response_a=answer_0,response_b=answer_1,label=winner:0=a,1=b"
        records = read(MAPS / "winner-012.jsonl", parse_inline(partial))
        errors = [r for r in records if isinstance(r, LineError)]
        assert [e.line for e in errors] == [3, 6, 7]
        assert str(errors[0]) == (
            "winner-012.jsonl:3: field 'winner': value 2 is not in the --map values for label "
            "('0', '1')"
        )
        assert sum(isinstance(r, ParsedLine) for r in records) == 6

    @pytest.mark.parametrize(
        ("line", "spec", "reason"),
        [
            (
                {"q": "x", "answers": ["one"]},
                "prompt=q,response_a=answers.0,response_b=answers.1",
                "field 'answers.1': 'answers.1' is out of range (the list has 1 items)",
            ),
            (
                {"q": "x", "answers": ["one", "two"]},
                "prompt=q,response_a=answers.first,response_b=answers.1",
                "field 'answers.first': 'first' is not an index into a list",
            ),
            (
                {"q": "x", "a": "1", "b": "2"},
                "prompt=conversation.0.content,response_a=a,response_b=b",
                "field 'conversation.0.content': 'conversation' not found",
            ),
            (
                {"q": "x", "a": "1", "b": "2", "labels": [" (B)"]},
                "prompt=q,response_a=a,response_b=b,label=labels:(A)=a,(B)=b",
                "field 'labels': value [\" (B)\"] is a list; map one element of it (e.g. labels.0)",
            ),
            (
                {"q": "x", "a": "1", "b": "2", "w": "A"},
                "prompt=q,response_a=a,response_b=b,label=w:1=a,2=b",
                "field 'w': value \"A\" is not in the --map values for label ('1', '2')",
            ),
            (
                {"q": {"text": "x"}, "a": "1", "b": "2"},
                "prompt=q.text.first,response_a=a,response_b=b",
                "field 'q.text.first': 'q.text.first' not found (str has no fields)",
            ),
        ],
    )
    def test_paths_and_values_that_do_not_fit_name_the_field(
        self, line: dict[str, Any], spec: str, reason: str
    ) -> None:
        """Each is one reject with the path and the value; nothing crashes, nothing defaults."""
        good = {"q": "fine", "a": "x", "b": "y", "answers": ["x", "y"], "w": "1"}
        body = json.dumps(line) + "\n" + json.dumps(good) + "\n"
        convert = converter(mapping=parse_inline(spec))
        records = list(read_pairs(lines_of(body), "f.jsonl", convert))
        assert isinstance(records[0], LineError)
        assert str(records[0]) == f"f.jsonl:1: {reason}"

    def test_an_empty_value_means_no_label(self) -> None:
        """2= reads the pair without a gold label instead of rejecting it."""
        spec = "prompt=question,response_a=answer_0,response_b=answer_1,label=winner:0=a,1=b,2="
        labels = [r.pair.label for r in pairs(read(MAPS / "winner-012.jsonl", parse_inline(spec)))]
        assert labels == ["a", "b", None, "a", "b", None, None, "b", "a"]


class TestMapErrors:
    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("answer=x", "--map entry 'answer=x' must be FIELD=PATH"),
            ("prompt=", "--map prompt: prompt needs a source path"),
            ("prompt=a..b", "--map prompt: prompt needs a source path"),
            ("prompt=a,prompt=b", "--map: prompt is mapped twice"),
            ("label=w:0=x", "--map label: label value '0' maps to 'x'; labels are a, b or tie"),
            ("chosen=a,prompt=p", "--map: map both chosen and rejected, or neither"),
            ("chosen=a,rejected=b,label=c", "chosen/rejected carry the preference themselves"),
            ("label=winner:", "a ':' must be followed by VALUE=NEW pairs"),
            ("prompt=q,extra", "--map entry 'extra' must be FIELD=PATH"),
        ],
    )
    def test_inline_maps_that_cannot_work_are_refused_up_front(
        self, spec: str, message: str
    ) -> None:
        """Before any line is read, with the entry at fault."""
        with pytest.raises(InvalidInputError) as caught:
            parse_inline(spec)
        assert message in caught.value.message

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("- prompt\n- q\n", "expected a mapping of FIELD: PATH"),
            ("prompt: q\nquestion: x\n", "unknown field 'question'"),
            ("label:\n  values: {0: a}\n", "key 'label': 'from' must be the source path"),
            ("label:\n  from: w\n  values: [a, b]\n", "key 'label': 'values' must map"),
            ("label:\n  from: w\n  values: {0: x}\n", "label value '0' maps to 'x'"),
            ("label:\n  from: w\n  value: {0: a}\n", "key 'label': unknown key(s) value"),
            ("label: [w]\n", "key 'label': expected a path or {from: PATH"),
            ("prompt: q\n  bad: [\n", "not valid YAML at line"),
            ("chosen: good\n", "map both chosen and rejected, or neither"),
            ("label:\n  from: w\n  values: {0: [a]}\n", "value 0: ['a'] is not a plain value"),
        ],
    )
    def test_yaml_map_errors_name_the_file_and_key(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        """A broken map file says which file and which key."""
        path = tmp_path / "mapping.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InvalidInputError) as caught:
            load_yaml(path)
        assert str(path) in caught.value.message
        assert message in caught.value.message

    def test_a_missing_map_file_is_a_clean_cli_error(self, tmp_path: Path) -> None:
        """No traceback: one line naming the file."""
        missing = tmp_path / "nope.yaml"
        result = CliRunner().invoke(
            cli, ["inspect", str(MAPS / "winner-012.jsonl"), "--map", str(missing)]
        )
        assert result.exit_code == 2  # a user error, as for every command
        assert f"cannot read map file {missing}" in result.output
        assert "Traceback" not in result.output


class TestInspect:
    @pytest.mark.parametrize(
        ("name", "suggestion", "converted"),
        [
            (
                "winner-012.jsonl",
                "prompt=question,response_a=answer_0,response_b=answer_1,"
                "label=winner:0=a,1=b,2=tie",
                "read as pairs: 9 of 9 (labels: a 3, b 3, tie 3)",
            ),
            (
                "choices-in-list.jsonl",
                "prompt=question,response_a=answers.0,response_b=answers.1,"
                "label=labels.0:(A)=a,(B)=b",
                "read as pairs: 5 of 5 (labels: a 2, b 3)",
            ),
            (
                "preferred-dispreferred.jsonl",
                "id=uid,prompt=instruction,chosen=preferred,rejected=dispreferred",
                "read as pairs: 6 of 6 (labels: a 3, b 3)",
            ),
            (
                "arena-conversations.json",
                "id=question_id,prompt=conversation_a.:-1,response_a=conversation_a.-1,"
                "response_b=conversation_b.-1,label=winner:model_a=a,model_b=b,tie=tie,"
                "tie (bothbad)=tie",
                "read as pairs: 5 of 5 (labels: a 2, b 1, tie 2)",
            ),
        ],
    )
    def test_files_no_shape_fits_get_a_map_that_reads_them(
        self, name: str, suggestion: str, converted: str
    ) -> None:
        """The suggested --map is printed, tried on the sampled lines, and reads every one."""
        result = CliRunner().invoke(cli, ["inspect", str(MAPS / name)])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert "shape: none of the built-in ones" in lines[1]
        assert f"suggested: --map '{suggestion}'" in lines
        assert converted in lines

    def test_label_like_fields_are_listed_with_their_values(self) -> None:
        """The label's distinct values and counts, so the guesses can be checked."""
        with open_input(str(MAPS / "arena-conversations.json")) as stream:
            lines = report(inspect_stream(stream, "arena"))
        winner = next(line for line in lines if line.startswith("  winner "))
        assert winner.endswith(
            'values: "model_a" (2), "model_b" (1), "tie" (1), "tie (bothbad)" (1)'
        )
        assert not any(line.startswith("  model_a ") and "values:" in line for line in lines)

    def test_a_built_in_shape_is_named_with_the_fields_it_uses(self) -> None:
        """LLMBar: the shape, its field mapping with samples, and the sample converted."""
        path = Path(__file__).parent / "data/llmbar/llmbar_natural.head20.json"
        result = CliRunner().invoke(cli, ["inspect", str(path)])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[1] == "shape: llmbar (sampled lines: llmbar 20)"
        assert any(line.startswith("  response_a <- output_1  e.g. ") for line in lines)
        assert "read as pairs: 20 of 20 (labels: a 11, b 9)" in lines
        assert not any(line.startswith("suggested:") for line in lines)

    def test_inspect_with_a_map_tries_it(self) -> None:
        """--map on inspect converts the sample with it, rejects shown with their lines."""
        partial = "prompt=question,response_a=answer_0,response_b=answer_1,label=winner:0=a,1=b"
        result = CliRunner().invoke(
            cli, ["inspect", str(MAPS / "winner-012.jsonl"), "--map", partial]
        )
        assert result.exit_code == 0, result.output
        assert "read as pairs: 6 of 9 (labels: a 3, b 3)" in result.output
        assert "winner-012.jsonl:3: field 'winner': value 2 is not in the --map values" in (
            result.output
        )

    def test_unknown_values_are_left_for_the_user(self, tmp_path: Path) -> None:
        """Values nothing can be guessed from are ?, with a note; the map is not tried."""
        path = tmp_path / "odd.jsonl"
        rows = [
            {"question": f"q{n}", "answer_x": f"x{n}", "answer_y": f"y{n}", "verdict": v}
            for n, v in enumerate(["left", "right", "left", "right"])
        ]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        with open_input(str(path)) as stream:
            lines = report(inspect_stream(stream, "odd"))
        assert (
            "suggested: --map 'prompt=question,response_a=answer_x,response_b=answer_y,"
            "label=verdict:left=?,right=?'"
        ) in lines
        assert any("replace each ?" in line for line in lines)
        assert not any(line.startswith("read as pairs") for line in lines)


def test_a_mapped_label_is_not_read_again_by_the_built_in_shape() -> None:
    """LLMBar with an explicit value map: 1/2 become a/b once, not refused as LLMBar codes."""
    lines = [
        {"input": "q1", "output_1": "x", "output_2": "y", "label": 1},
        {"input": "q2", "output_1": "x", "output_2": "y", "label": 2},
    ]
    mapping = load_map("label=label:1=a,2=b")
    records = list(read_pairs(io.StringIO(json.dumps(lines)), "f", converter("auto", mapping)))
    assert [r.pair.label for r in records if isinstance(r, ParsedLine)] == ["a", "b"], records
