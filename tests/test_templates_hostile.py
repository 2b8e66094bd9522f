"""Hostile template and criteria files: a clear error naming the file, never a traceback.

Every case goes through each way a file is read: loading one file, scanning
a folder (the service's ``GET /v1/templates`` and every template lookup),
and ``referee templates validate``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings
from judges.templates import (
    MAX_FILE_BYTES,
    TemplateError,
    load_criteria,
    load_template,
    scan_templates,
    use_template_folders,
)
from tests.conftest import serve_app

HEAD = "id: hostile\nversion: '1'\ndescription: d\nsystem: s\n"


def _deep_list(path: Path) -> None:
    path.write_text(HEAD + "instructions: " + "[" * 50_000 + "]" * 50_000 + "\n")


def _deep_mapping(path: Path) -> None:
    nested = "".join("  " * i + f"k{i}:\n" for i in range(1, 500))
    path.write_text(HEAD + "instructions:\n" + nested)


def _alias_bomb(path: Path) -> None:
    """Nine levels of nine aliases: a few hundred bytes that expand to 9**9 strings."""
    anchors = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    anchors += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path.write_text(HEAD + "\n".join(anchors) + "\ninstructions: *a8\n")


def _aliased_examples(path: Path) -> None:
    """A valid example repeated by alias: the file is small, the text it stands for is not."""
    example = "{prompt: &p q, response_a: &r " + "x" * 5_000 + ", response_b: y, choice: a}"
    path.write_text(
        HEAD + "instructions: i\npreference_examples: [&e " + example + ", *e, *e, *e]\n"
    )


def _huge(path: Path) -> None:
    path.write_text(HEAD + "instructions: " + "a" * (MAX_FILE_BYTES + 1) + "\n")


def _latin_1(path: Path) -> None:
    path.write_bytes(HEAD.encode() + b"instructions: caf\xe9\n")


def _folder(path: Path) -> None:
    path.mkdir()


def _dangling_link(path: Path) -> None:
    os.symlink(path.parent / "nowhere", path)


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "deep list": (_deep_list, "nested deeper than"),
    "deep mapping": (_deep_mapping, "nested deeper than"),
    "alias bomb": (_alias_bomb, "aliases"),
    "aliased examples": (_aliased_examples, "aliases"),
    "huge file": (_huge, "larger than"),
    "not UTF-8": (_latin_1, "utf-8"),
    "a folder": (_folder, "cannot read"),
    "dangling link": (_dangling_link, "cannot read"),
}


@pytest.fixture(params=sorted(CASES), ids=sorted(CASES))
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    make, problem = CASES[request.param]
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "good.yaml").write_text(HEAD.replace("hostile", "good") + "instructions: i\n")
    path = folder / "bad.yaml"
    make(path)
    return path, problem


def test_loading_names_the_file_and_the_problem(hostile: tuple[Path, str]) -> None:
    path, problem = hostile
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    assert caught.value.message.startswith(str(path))
    assert problem in caught.value.message
    with pytest.raises(TemplateError):
        load_criteria(path)


def test_a_folder_scan_keeps_the_good_files(hostile: tuple[Path, str]) -> None:
    path, problem = hostile
    scan = scan_templates(path.parent)
    assert list(scan.templates) == ["good"]
    assert [p.file for p in scan.problems] == [str(path)]
    assert problem in scan.problems[0].message


def test_validate_is_one_line_per_error(hostile: tuple[Path, str]) -> None:
    path, problem = hostile
    for target in (path.parent,) if path.is_dir() else (path, path.parent):
        result = CliRunner().invoke(cli, ["templates", "validate", str(target)])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert f"{path}: " in result.stderr
        assert problem in result.stderr


@pytest.mark.parametrize("case", ["deep list", "alias bomb", "huge file", "dangling link"])
def test_get_templates_lists_the_problem(tmp_path: Path, database_url: str, case: str) -> None:
    make, problem = CASES[case]
    make(tmp_path / "bad.yaml")
    settings = Settings(database_url=database_url, judges_file=None, templates_dir=tmp_path)
    try:
        with serve_app(settings) as api:
            body = _json(api)
    finally:
        use_template_folders(Settings(database_url=database_url).template_folders())
    assert "pairwise-v1" in {t["id"] for t in body["templates"]}
    assert [(p["file"], problem in p["message"]) for p in body["problems"]] == [("bad.yaml", True)]


def _json(api: TestClient) -> dict[str, list[dict[str, str]]]:
    response = api.get("/v1/templates")
    assert response.status_code == 200, response.text
    body: dict[str, list[dict[str, str]]] = response.json()
    return body
