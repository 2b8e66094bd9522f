"""REFEREE_CONSTITUTIONS_DIR adds to the shipped constitutions; an id defined twice is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import cli
from app.errors import InvalidInputError
from app.labeling.constitutions import ConstitutionLibrary
from app.settings import Settings
from judges.cai.constitutions import default_constitutions_dir, scan_constitutions

SHIPPED = default_constitutions_dir()
SHIPPED_IDS = {"harmlessness", "helpful-honest", "hhh"}


def constitution(cid: str, question: str = "Which response is kinder?") -> dict[str, Any]:
    return {
        "id": cid,
        "version": "1",
        "description": "A house rule.",
        "principles": [
            {
                "id": "kind",
                "critique_request": "Is the response unkind?",
                "revision_request": "Rewrite it kindly.",
                "preference_question": question,
            }
        ],
    }


def write(folder: Path, name: str, data: dict[str, Any]) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def settings(folder: Path | None, **more: Any) -> Settings:
    return Settings(database_url="sqlite:///unused.db", constitutions_dir=folder, **more)


class TestFolders:
    @pytest.mark.parametrize(
        ("folder", "shipped", "expected"),
        [
            (None, True, [SHIPPED]),
            ("mine", True, [SHIPPED, "mine"]),
            ("mine", False, ["mine"]),
            (SHIPPED, True, [SHIPPED]),
        ],
    )
    def test_which_folders_are_read(
        self, tmp_path: Path, folder: Path | str | None, shipped: bool, expected: list[Any]
    ) -> None:
        """The shipped folder first, then the operator's; the same folder twice is read once."""
        mine = tmp_path / "mine"
        mine.mkdir()

        def resolve(f: Path | str) -> Path:
            return mine if f == "mine" else Path(f)

        given = None if folder is None else resolve(folder)
        found = settings(given, shipped_constitutions=shipped).constitution_folders()
        assert found == tuple(resolve(f) for f in expected)

    def test_a_missing_shipped_folder_is_left_out(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A wheel install has no shipped folder beside the code: only the operator's is read."""
        monkeypatch.setattr("app.settings.default_constitutions_dir", lambda: tmp_path / "none")
        assert settings(tmp_path).constitution_folders() == (tmp_path,)
        assert settings(None).constitution_folders() == ()


class TestLibrary:
    def test_a_new_id_is_added_to_the_shipped_ones(self, tmp_path: Path) -> None:
        """A constitution in the operator's folder is served beside every shipped one."""
        write(tmp_path / "mine", "house.yaml", constitution("house-rules"))
        library = ConstitutionLibrary(settings(tmp_path / "mine").constitution_folders())
        assert set(library.scan().constitutions) == {*SHIPPED_IDS, "house-rules"}
        assert library.get("house-rules").id == "house-rules"
        assert library.scan().problems == ()

    def test_a_clash_with_a_shipped_id_names_both_files(self, tmp_path: Path) -> None:
        """An operator file reusing a shipped id is an error naming both; neither is served."""
        mine = write(tmp_path / "mine", "harm.yaml", constitution("harmlessness"))
        library = ConstitutionLibrary(settings(tmp_path / "mine").constitution_folders())
        [problem] = library.scan().problems
        assert problem.file == str(mine)
        assert str(SHIPPED / "harmlessness.yaml") in problem.message
        with pytest.raises(InvalidInputError) as caught:
            library.get("harmlessness")
        assert str(mine) in caught.value.message
        assert str(SHIPPED / "harmlessness.yaml") in caught.value.message
        assert set(library.scan().constitutions) == SHIPPED_IDS - {"harmlessness"}

    def test_a_verbatim_copy_of_a_shipped_file_is_not_a_clash(self, tmp_path: Path) -> None:
        """A folder that started as a copy of the shipped one serves each constitution once."""
        mine = tmp_path / "mine"
        mine.mkdir()
        (mine / "hhh.yaml").write_bytes((SHIPPED / "hhh.yaml").read_bytes())
        scan = scan_constitutions(SHIPPED, mine)
        assert scan.problems == ()
        assert scan.files["hhh"] == SHIPPED / "hhh.yaml"

    def test_two_files_of_one_folder_with_one_id_serve_neither(self, tmp_path: Path) -> None:
        """Within one folder too, an id defined twice is ambiguous: both files are named."""
        first = write(tmp_path, "a.yaml", constitution("house-rules"))
        second = write(tmp_path, "b.yaml", constitution("house-rules", "Which is gentler?"))
        scan = scan_constitutions(tmp_path)
        assert "house-rules" not in scan.constitutions
        [problem] = scan.problems
        assert problem.file == str(second)
        assert str(first) in problem.message

    def test_an_edit_that_makes_a_clash_is_seen_at_once(self, tmp_path: Path) -> None:
        """The library re-reads the folders when a file changes, and the clash shows."""
        mine = tmp_path / "mine"
        write(mine, "house.yaml", constitution("house-rules"))
        library = ConstitutionLibrary(settings(mine).constitution_folders())
        assert library.get("house-rules").id == "house-rules"
        write(mine, "house.yaml", constitution("hhh"))
        with pytest.raises(InvalidInputError, match="already defined in"):
            library.get("hhh")


def run(*args: str, env: dict[str, str]) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


class TestCli:
    def test_list_shows_shipped_and_added(self, tmp_path: Path) -> None:
        """`referee constitutions list` lists what the service serves: both folders."""
        write(tmp_path / "mine", "house.yaml", constitution("house-rules"))
        env = {"REFEREE_CONSTITUTIONS_DIR": str(tmp_path / "mine")}
        result = run("constitutions", "list", env=env)
        assert result.exit_code == 0, result.output
        listed = {line.split()[0] for line in result.stdout.splitlines()}
        assert listed == {*SHIPPED_IDS, "house-rules"}
        assert run("constitutions", "show", "house-rules", env=env).exit_code == 0
        assert run("constitutions", "validate", env=env).exit_code == 0

    def test_list_and_validate_report_a_clash_with_both_files(self, tmp_path: Path) -> None:
        """A clash exits 1 and names the operator's file and the shipped one."""
        mine = write(tmp_path / "mine", "mine.yaml", constitution("hhh"))
        env = {"REFEREE_CONSTITUTIONS_DIR": str(tmp_path / "mine")}
        for command in ("list", "validate"):
            result = run("constitutions", command, env=env)
            assert result.exit_code == 1
            assert str(mine) in result.stderr
            assert str(SHIPPED / "hhh.yaml") in result.stderr

    def test_dir_option_reads_only_that_folder(self, tmp_path: Path) -> None:
        """--dir looks at one folder alone, e.g. to check a folder before deploying it."""
        write(tmp_path / "mine", "house.yaml", constitution("house-rules"))
        result = run("constitutions", "list", "--dir", str(tmp_path / "mine"), env={})
        assert result.exit_code == 0
        assert [line.split()[0] for line in result.stdout.splitlines()] == ["house-rules"]
