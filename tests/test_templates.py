"""Judging templates as data: validation with file:line/field errors, refs, the CLI and the API."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from judges.errors import JudgeConfigError
from judges.templates import (
    TemplateError,
    default_templates_dir,
    get_template,
    load_template,
    scan_templates,
    template_ref,
    use_template_folders,
)

GOOD = """\
id: house-style
version: "2"
description: Which answer follows the house style guide.
system: You judge answers by a house style guide.
instructions: Which response follows the guide better? Answer 1, 2 or tie.
"""


@pytest.fixture(autouse=True)
def shipped_folder() -> object:
    """Each test starts (and leaves) the process serving the shipped folder only."""
    use_template_folders([default_templates_dir()])
    yield
    use_template_folders([default_templates_dir()])


BAD_FILES = [
    # (file text, expected line, expected field, words in the problem)
    ("id: x\nsystem: [unclosed\n", 3, None, "YAML syntax error"),
    (GOOD + "sytem: typo\n", 6, "sytem", "unknown key"),
    (GOOD.replace("system: You judge answers by a house style guide.\n", ""), None, "system", ""),
    (GOOD.replace("id: house-style", "id: House Style"), 1, "id", "slug"),
    (GOOD.replace('version: "2"', 'version: "12345678901"'), 2, "version", "short version"),
    (GOOD.replace("instructions: Which", 'instructions: ""\n# Which'), 5, "instructions", "empty"),
    (GOOD + "few_shot_tokens: -1\n", 6, "few_shot_tokens", "between 0"),
    (GOOD + "few_shot_tokens: lots\n", 6, "few_shot_tokens", "whole number"),
    (GOOD + "id: again\n", 6, None, "appears twice"),
    (
        GOOD + "preference_examples:\n  - {prompt: p, response_a: a, response_b: b, choice: c}\n",
        6,
        "preference_examples",
        "preference example #1",
    ),
    ("- just\n- a list\n", None, None, "mapping"),
]


@pytest.mark.parametrize(("text", "line", "field", "words"), BAD_FILES)
def test_a_malformed_template_is_refused_naming_file_line_and_field(
    tmp_path: Path, text: str, line: int | None, field: str | None, words: str
) -> None:
    """Every fault names the file, the line of its key (or of the syntax error) and the field."""
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    error = caught.value
    assert (error.file, error.line, error.field) == (str(path), line, field)
    assert words in error.message
    assert error.message.startswith(f"{path}: " + (f"line {line}: " if line else ""))


def test_the_ref_is_content_addressed(tmp_path: Path) -> None:
    """id@version:hash12; any edit, comments aside, gives another ref under the same version."""
    path = tmp_path / "t.yaml"
    path.write_text(GOOD)
    first = load_template(path)
    assert first.ref == f"house-style@2:{first.content_hash[:12]}"
    path.write_text("# a comment is not content\n" + GOOD)
    assert load_template(path).ref == first.ref
    path.write_text(GOOD.replace("house style guide.", "house style guide!"))
    assert load_template(path).ref != first.ref


def test_pairwise_v1_keeps_its_ref_only_while_unchanged(tmp_path: Path) -> None:
    """The shipped file's ref is pairwise-v1; an edited copy gets a content-addressed ref."""
    shipped = default_templates_dir() / "pairwise-v1.yaml"
    assert load_template(shipped).ref == "pairwise-v1"
    edited = tmp_path / "pairwise-v1.yaml"
    edited.write_text(shipped.read_text().replace("more helpful", "more useful"))
    assert load_template(edited).ref.startswith("pairwise-v1@1:")


def test_a_ref_whose_file_changed_is_refused(tmp_path: Path) -> None:
    """Work queued under some words is never judged under others."""
    (tmp_path / "t.yaml").write_text(GOOD)
    use_template_folders([tmp_path])
    old = template_ref("house-style")
    assert get_template(old).id == "house-style"
    (tmp_path / "t.yaml").write_text(GOOD.replace("guide.", "guide, strictly."))
    use_template_folders([tmp_path])  # look again now, not within the next second
    with pytest.raises(JudgeConfigError, match="changed since this work was queued"):
        get_template(old)
    assert template_ref("house-style") != old


def test_an_id_in_two_files_is_served_by_neither(tmp_path: Path) -> None:
    """A clash names both files; a verbatim copy is not a clash."""
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("guide.", "guide!"))
    scan = scan_templates(tmp_path)
    assert "house-style" not in scan.templates
    (problem,) = scan.problems
    assert "a.yaml" in problem.message
    assert problem.field == "id"
    (tmp_path / "b.yaml").write_text(GOOD)
    assert "house-style" in scan_templates(tmp_path).templates


def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_cli_lists_shows_and_validates(tmp_path: Path) -> None:
    """list shows each id and ref, show prints one in full, validate names each error."""
    code, out, _ = _cli("templates", "list")
    assert code == 0
    assert "pairwise-v1  " in out
    assert "criteria: concise" in out
    code, out, _ = _cli("templates", "show", "pairwise-v1")
    assert code == 0
    assert out.startswith("# ref: pairwise-v1\n")
    shutil.copy(default_templates_dir() / "pairwise-v2.yaml", tmp_path)
    (tmp_path / "bad.yaml").write_text(GOOD + "sytem: typo\n")
    code, out, err = _cli("templates", "validate", str(tmp_path))
    assert code == 1
    assert "pairwise-v2@1:" in out
    assert f"{tmp_path / 'bad.yaml'}: line 6: field 'sytem': unknown key" in err


def test_the_service_folder_adds_templates(tmp_path: Path) -> None:
    """REFEREE_TEMPLATES_DIR adds to the shipped templates (list reads both)."""
    (tmp_path / "house.yaml").write_text(GOOD)
    code, out, _ = _cli("templates", "list", env={"REFEREE_TEMPLATES_DIR": str(tmp_path)})
    assert code == 0
    assert "house-style@2:" in out
    assert "pairwise-v1" in out


def test_get_templates_lists_every_template_and_criteria(api: TestClient) -> None:
    """GET /v1/templates: each template in full with its ref, the named criteria, no problems."""
    response = api.get("/v1/templates")
    assert response.status_code == 200, response.text
    body = response.json()
    refs = {t["id"]: t["ref"] for t in body["templates"]}
    assert refs["pairwise-v1"] == "pairwise-v1"
    assert refs["pairwise-v2"].startswith("pairwise-v2@1:")
    assert "concise" in body["criteria"]
    assert body["problems"] == []


@pytest.mark.parametrize(
    ("change", "same_ref"),
    [
        (lambda b: b.replace(b"\n", b"\r\n"), True),  # a checkout with CRLF line endings
        (lambda b: b"\xef\xbb\xbf" + b, True),  # a byte-order mark
        (lambda b: b"# a note\n" + b.replace(b"\n", b"\n# \n", 1), True),  # comments
        (lambda b: b.replace(b"more helpful", b"more  helpful"), False),  # one more space
        (lambda b: b.replace(b'version: "1"', b'version: "2"'), False),
    ],
    ids=["crlf", "bom", "comments", "a word's spacing", "version"],
)
def test_the_pinned_ref_follows_the_content_not_the_bytes(
    tmp_path: Path, change: Callable[[bytes], bytes], same_ref: bool
) -> None:
    """pairwise-v1 keeps its ref through what a checkout or an editor may do to the bytes,
    and loses it on any change to what is sent."""
    shipped = (default_templates_dir() / "pairwise-v1.yaml").read_bytes()
    copy = tmp_path / "pairwise-v1.yaml"
    copy.write_bytes(change(shipped))
    assert copy.read_bytes() != shipped
    assert (load_template(copy).ref == "pairwise-v1") is same_ref


def test_no_folder_of_templates_names_the_setting() -> None:
    """An install without templates/ beside the code says how to serve them."""
    use_template_folders([])
    try:
        with pytest.raises(JudgeConfigError, match="REFEREE_TEMPLATES_DIR"):
            get_template("pairwise-v1")
    finally:
        use_template_folders([default_templates_dir()])
