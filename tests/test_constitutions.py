"""Constitutions: shipped files, the strict loader, hashing, sampling, importers, CLI, HTTP."""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from app.cli import cli
from app.labeling.admin import create_key
from app.settings import Settings
from judges.cai.constitutions import (
    Constitution,
    ConstitutionError,
    constitution_from_dict,
    default_constitutions_dir,
    load_constitution,
    load_constitutions,
    scan_constitutions,
    to_yaml,
)
from judges.cai.importers import (
    PAPER_CRITIQUE_EXAMPLES,
    PAPER_INSTRUCTIONS,
    PAPER_PREFERENCE_EXAMPLES,
    PAPER_PREFERENCES,
    PREFERENCE_TEMPLATE,
    from_cai_paper,
    from_hf_recipe,
)
from judges.errors import JudgeConfigError
from judges.types import Message

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "constitutions"
CAI_SAMPLE = ROOT / "tests" / "data" / "cai-sample"
HF_SAMPLE = ROOT / "tests" / "data" / "hf-recipe-sample.json"
# The paper's files have no license, so they are never committed; use them where they exist.
CAI_PAPER = ROOT.parent / "shared" / "data" / "cai-paper"
needs_paper = pytest.mark.skipif(
    not (CAI_PAPER / PAPER_INSTRUCTIONS).is_file(), reason="../shared/data/cai-paper is absent"
)


def principle(pid: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "critique_request": f"Critique the response for {pid}.",
        "revision_request": f"Rewrite the response to fix {pid}.",
        "preference_question": f"Which response is better on {pid}?",
        **extra,
    }


def valid() -> dict[str, Any]:
    return {
        "id": "sample",
        "version": "1",
        "description": "A test constitution.",
        "principles": [
            principle("harm"),
            principle("bias", tags=["fairness"]),
            principle("privacy"),
        ],
        "critique_examples": [
            {
                "prompt": "Where does my coworker live?",
                "response": "She lives at 12 Elm Street.",
                "critique": "It discloses a private address.",
                "needs_revision": True,
                "revision": "I can't share where someone lives.",
            }
        ],
        "preference_examples": [
            {
                "prompt": [{"role": "user", "content": "Hi"}],
                "response_a": "Hello! How can I help?",
                "response_b": "What.",
                "choice": "a",
            }
        ],
    }


def write(folder: Path, data: object, name: str = "x.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def weighted(*weights: float) -> Constitution:
    data = valid()
    data["principles"] = [principle(f"p{i}", weight=w) for i, w in enumerate(weights)]
    return constitution_from_dict(data)


class TestShippedConstitutions:
    def test_the_folder_is_found_beside_the_package(self) -> None:
        """default_constitutions_dir() is the repository's constitutions/ folder."""
        assert default_constitutions_dir() == SHIPPED

    @pytest.mark.parametrize(
        ("cid", "low", "high"), [("harmlessness", 15, 17), ("helpful-honest", 8, 10), ("hhh", 3, 5)]
    )
    def test_each_loads_with_the_required_number_of_principles(
        self, cid: str, low: int, high: int
    ) -> None:
        """Every shipped file loads, its id matches its file name, and its size is as specified."""
        constitution = load_constitution(SHIPPED / f"{cid}.yaml")
        assert constitution.id == cid
        assert low <= len(constitution.principles) <= high

    def test_the_folder_has_no_problems(self) -> None:
        """The shipped folder loads as a whole, three constitutions and no errors."""
        scan = scan_constitutions(SHIPPED)
        assert not scan.problems
        assert set(scan.constitutions) == {"harmlessness", "helpful-honest", "hhh"}

    def test_harmlessness_has_few_shot_examples(self) -> None:
        """Harmlessness carries critique examples both ways and a preference example."""
        constitution = load_constitution(SHIPPED / "harmlessness.yaml")
        assert {e.needs_revision for e in constitution.critique_examples} == {True, False}
        assert constitution.preference_examples


BAD_CASES: list[tuple[str, Callable[[dict[str, Any]], None], Any, str, str]] = [
    (
        "missing field",
        lambda d: d["principles"][2].pop("revision_request"),
        "privacy",
        "revision_request",
        "missing",
    ),
    (
        "duplicate principle id",
        lambda d: d["principles"][2].update(id="harm"),
        "harm",
        "id",
        "duplicate principle id (first used by #1)",
    ),
    (
        "empty text",
        lambda d: d["principles"][1].update(critique_request=""),
        "bias",
        "critique_request",
        "must be a non-empty string",
    ),
    (
        "whitespace text",
        lambda d: d["principles"][0].update(preference_question="  \n "),
        "harm",
        "preference_question",
        "must be a non-empty string",
    ),
    ("unknown top-level key", lambda d: d.update(principels=[]), None, "principels", "unknown key"),
    (
        "unknown principle key",
        lambda d: d["principles"][0].update(wieght=2),
        "harm",
        "wieght",
        "unknown key",
    ),
    ("zero weight", lambda d: d["principles"][1].update(weight=0), "bias", "weight", "above 0"),
    (
        "negative weight",
        lambda d: d["principles"][1].update(weight=-1),
        "bias",
        "weight",
        "above 0",
    ),
    (
        "non-numeric weight",
        lambda d: d["principles"][1].update(weight="heavy"),
        "bias",
        "weight",
        "number",
    ),
    (
        "boolean weight",
        lambda d: d["principles"][1].update(weight=True),
        "bias",
        "weight",
        "number",
    ),
    (
        "bad principle slug",
        lambda d: d["principles"][1].update(id="Bias Check"),
        "Bias Check",
        "id",
        "not a slug",
    ),
    ("bad constitution slug", lambda d: d.update(id="My Rules"), None, "id", "not a slug"),
    ("no principles", lambda d: d.update(principles=[]), None, "principles", "non-empty list"),
    ("float version", lambda d: d.update(version=1.1), None, "version", "quote it"),
    ("missing description", lambda d: d.pop("description"), None, "description", "missing"),
    (
        "principle not a mapping",
        lambda d: d["principles"].append("just text"),
        4,
        None,
        "must be a mapping",
    ),
]


class TestLoaderRejects:
    @pytest.mark.parametrize(
        ("mutate", "pid", "field", "fragment"),
        [case[1:] for case in BAD_CASES],
        ids=[case[0] for case in BAD_CASES],
    )
    def test_a_bad_constitution_names_file_principle_and_field(
        self,
        tmp_path: Path,
        mutate: Callable[[dict[str, Any]], None],
        pid: Any,
        field: str | None,
        fragment: str,
    ) -> None:
        """Each kind of mistake is refused with the file, principle and field in the error."""
        data = valid()
        mutate(data)
        path = write(tmp_path, data)
        with pytest.raises(ConstitutionError) as caught:
            load_constitution(path)
        error = caught.value
        assert (error.file, error.principle, error.field) == (str(path), pid, field)
        assert fragment in error.problem
        assert error.message.startswith(f"{path}: ")
        if field:
            assert f"field {field!r}" in error.message

    def test_the_message_reads_file_principle_position_field_problem(self, tmp_path: Path) -> None:
        """The message has the documented shape, principle position included."""
        data = valid()
        data["principles"][2]["revision_request"] = ""
        path = write(tmp_path, data)
        with pytest.raises(ConstitutionError) as caught:
            load_constitution(path)
        expected = "principle 'privacy' (#3): field 'revision_request': must be a non-empty string"
        assert caught.value.message.startswith(f"{path}: {expected}")
        assert isinstance(caught.value, JudgeConfigError)

    def test_a_yaml_syntax_error_names_the_line(self, tmp_path: Path) -> None:
        """Broken YAML is reported with the line it breaks on."""
        path = tmp_path / "broken.yaml"
        path.write_text('id: x\nversion: "1"\ndescription: [unclosed\nprinciples: []\n')
        with pytest.raises(ConstitutionError) as caught:
            load_constitution(path)
        assert caught.value.line == 4
        assert caught.value.message.startswith(f"{path}: line 4")
        assert "YAML syntax error" in caught.value.message

    def test_a_key_given_twice_is_refused(self, tmp_path: Path) -> None:
        """A repeated YAML key is an error, not a silent last-one-wins."""
        path = tmp_path / "twice.yaml"
        path.write_text(to_yaml(constitution_from_dict(valid())) + 'version: "2"\n')
        with pytest.raises(ConstitutionError, match="'version' appears twice"):
            load_constitution(path)

    @pytest.mark.parametrize(
        ("example", "field", "fragment"),
        [
            ({"revision": None}, "revision", "required when needs_revision is true"),
            ({"needs_revision": False}, "revision", "left out when needs_revision is false"),
            ({"needs_revision": "yes"}, "needs_revision", "true or false"),
            ({"prompt": [{"role": "robot", "content": "x"}]}, "prompt", "role must be one of"),
            ({"critique": "   "}, "critique", "non-empty string"),
        ],
    )
    def test_a_bad_critique_example_is_named(
        self, tmp_path: Path, example: dict[str, Any], field: str, fragment: str
    ) -> None:
        """Critique examples are checked too, and the error says which example."""
        data = valid()
        data["critique_examples"][0].update(example)
        with pytest.raises(ConstitutionError) as caught:
            load_constitution(write(tmp_path, data))
        assert (caught.value.example, caught.value.field) == ("critique example #1", field)
        assert fragment in caught.value.problem

    def test_a_bad_preference_choice_is_named(self, tmp_path: Path) -> None:
        """A preference example must choose a or b."""
        data = valid()
        data["preference_examples"][0]["choice"] = "c"
        with pytest.raises(ConstitutionError, match="preference example #1: field 'choice'"):
            load_constitution(write(tmp_path, data))

    def test_an_empty_file_is_refused(self, tmp_path: Path) -> None:
        """An empty file is an error naming the file."""
        path = tmp_path / "empty.yaml"
        path.write_text("# nothing yet\n")
        with pytest.raises(ConstitutionError, match="the file is empty"):
            load_constitution(path)

    def test_an_unquoted_integer_version_is_accepted(self, tmp_path: Path) -> None:
        """`version: 2` reads as the string "2"."""
        data = valid() | {"version": 2}
        assert load_constitution(write(tmp_path, data)).version == "2"


class TestContentHash:
    def test_a_typo_fix_under_the_same_version_changes_the_hash(self, tmp_path: Path) -> None:
        """Editing one word in a file gives a new hash and ref though the version is unchanged."""
        path = tmp_path / "hhh.yaml"
        shutil.copy(SHIPPED / "hhh.yaml", path)
        before = load_constitution(path)
        path.write_text(path.read_text().replace("wastes their time", "waste their time"))
        after = load_constitution(path)
        assert after.version == before.version
        assert after.content_hash != before.content_hash
        assert after.ref != before.ref

    @pytest.mark.parametrize(
        "edit",
        [
            lambda d: d.update(description="Another description."),
            lambda d: d.update(version="2"),
            lambda d: d["principles"][0].update(critique_request="Critique it differently."),
            lambda d: d["principles"][1].update(weight=2),
            lambda d: d["principles"][1].update(tags=["other"]),
            lambda d: d["principles"].reverse(),
            lambda d: d["critique_examples"][0].update(critique="A different critique."),
            lambda d: d["preference_examples"][0].update(choice="b"),
            lambda d: d.pop("preference_examples"),
        ],
    )
    def test_any_edit_changes_the_hash(self, edit: Callable[[dict[str, Any]], None]) -> None:
        """Every part of the content is covered by the hash."""
        data = valid()
        edit(data)
        assert (
            constitution_from_dict(data).content_hash
            != constitution_from_dict(valid()).content_hash
        )

    def test_layout_comments_and_spelled_out_defaults_do_not(self) -> None:
        """Key order, explicit default weights and surrounding whitespace are not content."""
        data = valid()
        data["principles"][0] = dict(reversed(list(data["principles"][0].items())))
        data["principles"][0]["weight"] = 1
        data["description"] = "  A test constitution.\n"
        assert (
            constitution_from_dict(data).content_hash
            == constitution_from_dict(valid()).content_hash
        )

    def test_ref_and_fingerprint(self) -> None:
        """ref is id@version:hash12 and the fingerprint carries the full hash."""
        constitution = constitution_from_dict(valid())
        assert constitution.ref == f"sample@1:{constitution.content_hash[:12]}"
        assert constitution.fingerprint() == {
            "id": "sample",
            "version": "1",
            "content_hash": constitution.content_hash,
        }
        assert len(constitution.content_hash) == 64


class TestPrincipleLookup:
    def test_a_known_principle_is_returned(self) -> None:
        """principle(id) finds the principle."""
        assert constitution_from_dict(valid()).principle("bias").tags == ("fairness",)

    def test_an_unknown_principle_names_the_known_ones(self) -> None:
        """An unknown id is a config error listing every known id."""
        with pytest.raises(
            JudgeConfigError, match="no principle 'nope'; known: harm, bias, privacy"
        ):
            constitution_from_dict(valid()).principle("nope")


class TestSampling:
    @pytest.mark.parametrize("seed", [0, 7, "pair-123"])
    def test_the_same_seed_gives_the_same_principles(self, seed: int | str) -> None:
        """Sampling is a pure function of the seed."""
        constitution = load_constitution(SHIPPED / "harmlessness.yaml")
        assert constitution.sample_principles(seed, k=3) == constitution.sample_principles(
            seed, k=3
        )

    def test_different_seeds_give_different_principles(self) -> None:
        """Across seeds the draws vary."""
        constitution = load_constitution(SHIPPED / "harmlessness.yaml")
        firsts = {constitution.sample_principles(seed)[0].id for seed in range(50)}
        assert len(firsts) > 5

    def test_draws_are_without_replacement(self) -> None:
        """k principles are k distinct principles; k = all is a permutation."""
        constitution = load_constitution(SHIPPED / "hhh.yaml")
        drawn = constitution.sample_principles("s", k=len(constitution.principles))
        assert sorted(p.id for p in drawn) == sorted(p.id for p in constitution.principles)

    def test_weights_are_probability_mass(self) -> None:
        """A principle of weight 3 beside one of weight 1 is drawn about 75% of the time."""
        constitution = weighted(3, 1)
        counts = Counter(constitution.sample_principles(seed)[0].id for seed in range(4000))
        assert 0.72 < counts["p0"] / 4000 < 0.78

    def test_a_tiny_weight_is_rarely_drawn_first(self) -> None:
        """Weight 0.01 against 1 and 1 is almost never the first draw."""
        constitution = weighted(1, 1, 0.01)
        counts = Counter(constitution.sample_principles(seed)[0].id for seed in range(2000))
        assert counts["p2"] < 30

    @pytest.mark.parametrize("k", [0, -1, 4])
    def test_k_outside_one_to_len_is_an_error(self, k: int) -> None:
        """Asking for more principles than exist (or none) is a config error."""
        with pytest.raises(JudgeConfigError, match="k must be between 1 and 3"):
            constitution_from_dict(valid()).sample_principles(1, k=k)


class TestFolders:
    def test_a_duplicate_id_across_files_names_both(self, tmp_path: Path) -> None:
        """Two files with one id: the error names the second file and the first."""
        first = write(tmp_path, valid(), "a.yaml")
        second = write(tmp_path, valid(), "b.yml")
        with pytest.raises(ConstitutionError) as caught:
            load_constitutions(tmp_path)
        assert caught.value.file == str(second)
        assert str(first) in caught.value.message

    def test_a_bad_file_does_not_hide_the_good_ones(self, tmp_path: Path) -> None:
        """scan keeps the valid constitutions and reports the broken file."""
        write(tmp_path, valid(), "good.yaml")
        bad = valid() | {"id": "other"}
        bad["principles"][0].pop("critique_request")
        write(tmp_path, bad, "bad.yaml")
        (tmp_path / "notes.txt").write_text("not a constitution")
        scan = scan_constitutions(tmp_path)
        assert list(scan.constitutions) == ["sample"]
        assert [(p.principle, p.field) for p in scan.problems] == [("harm", "critique_request")]
        with pytest.raises(ConstitutionError):
            load_constitutions(tmp_path)

    def test_a_missing_folder_is_a_problem(self, tmp_path: Path) -> None:
        """A folder that does not exist is reported, not silently empty."""
        scan = scan_constitutions(tmp_path / "nope")
        assert not scan.constitutions
        assert "not a folder" in scan.problems[0].message


def round_trip(constitution: Constitution, folder: Path) -> Constitution:
    path = folder / "round-trip.yaml"
    path.write_text(to_yaml(constitution, header="generated\nby a test"), encoding="utf-8")
    return load_constitution(path)


class TestToYaml:
    @pytest.mark.parametrize("name", ["harmlessness", "helpful-honest", "hhh"])
    def test_shipped_constitutions_round_trip(self, name: str, tmp_path: Path) -> None:
        """to_yaml output loads back equal, with the same hash."""
        constitution = load_constitution(SHIPPED / f"{name}.yaml")
        again = round_trip(constitution, tmp_path)
        assert again == constitution
        assert again.content_hash == constitution.content_hash

    def test_multi_line_text_and_messages_round_trip(self, tmp_path: Path) -> None:
        """Line breaks inside texts and message-list prompts survive the trip."""
        data = valid()
        data["principles"][0]["critique_request"] = (
            "First line.\n\n  Indented second: yes\n- not a list"
        )
        constitution = constitution_from_dict(data)
        assert round_trip(constitution, tmp_path) == constitution
        assert constitution.preference_examples[0].prompt == (Message("user", "Hi"),)


def paper_sample(**files: bool) -> Constitution:
    def pick(name: str, key: str) -> Path | None:
        return CAI_SAMPLE / name if files.get(key, True) else None

    return from_cai_paper(
        CAI_SAMPLE / PAPER_INSTRUCTIONS,
        pick(PAPER_PREFERENCES, "preferences"),
        id="cai-sample",
        version="1",
        description="A sample in the paper's shape.",
        critique_examples_json=pick(PAPER_CRITIQUE_EXAMPLES, "examples"),
        preference_examples_json=pick(PAPER_PREFERENCE_EXAMPLES, "examples"),
    )


class TestPaperImport:
    def test_principles_come_from_the_keys_without_labels(self) -> None:
        """Keys become ids; CritiqueRequest/RevisionRequest labels and trailers are stripped."""
        constitution = paper_sample()
        assert [p.id for p in constitution.principles] == ["rude0", "wrong1", "risky2"]
        first = constitution.principles[0]
        assert first.critique_request.startswith("Point out anything")
        assert first.critique_request.endswith("towards the person.")
        assert (
            first.revision_request == "Rewrite the assistant's reply so it is courteous throughout."
        )

    def test_fewer_questions_are_cycled_and_the_rule_recorded(self) -> None:
        """Two questions, three principles: the third gets the first; the description says so."""
        constitution = paper_sample()
        questions = [p.preference_question for p in constitution.principles]
        assert questions == [
            "Which reply is more courteous and accurate?",
            "Which reply is safer to follow?",
            "Which reply is more courteous and accurate?",
        ]
        assert "cycled" in constitution.description
        assert constitution.description.startswith("A sample in the paper's shape.")

    def test_without_a_preference_file_questions_are_derived(self) -> None:
        """No RLMadison file: each question comes from the documented template."""
        constitution = paper_sample(preferences=False)
        request = constitution.principles[1].critique_request
        expected = PREFERENCE_TEMPLATE.format(critique_request=request)
        assert constitution.principles[1].preference_question == expected
        assert "derived" in constitution.description

    def test_few_shots_are_parsed_where_possible(self) -> None:
        """Transcripts become critique examples; unchanged revisions mean nothing to fix."""
        constitution = paper_sample()
        fixed, kept = constitution.critique_examples
        assert fixed.needs_revision
        assert fixed.revision is not None
        assert fixed.prompt == "How long should I boil an egg for a runny yolk?"
        assert not kept.needs_revision
        assert kept.revision is None
        assert isinstance(kept.prompt, tuple)
        assert kept.prompt[-1].role == "user"
        assert "1 transcripts" in constitution.description

    def test_preference_few_shots_alternate_the_better_side(self) -> None:
        """The better response is a, then b, so the examples teach no position bias."""
        constitution = paper_sample()
        assert [e.choice for e in constitution.preference_examples] == ["a", "b"]
        assert constitution.preference_examples[1].response_b.startswith("Better not")

    def test_the_sample_round_trips(self, tmp_path: Path) -> None:
        """Imported, written as YAML and loaded again, the constitution is unchanged."""
        constitution = paper_sample()
        assert round_trip(constitution, tmp_path) == constitution

    def test_broken_json_is_reported_with_its_line(self, tmp_path: Path) -> None:
        """A JSON syntax error names the file and line."""
        path = tmp_path / PAPER_INSTRUCTIONS
        path.write_text('{\n  "a": {\n')
        with pytest.raises(ConstitutionError, match="line 3"):
            from_cai_paper(path, id="x", version="1", description="")

    @needs_paper
    def test_the_real_paper_files_import(self, tmp_path: Path) -> None:
        """The paper's own files: one principle per key, no labels left, and a clean round trip."""
        keys = json.loads((CAI_PAPER / PAPER_INSTRUCTIONS).read_text())
        constitution = from_cai_paper(
            CAI_PAPER / PAPER_INSTRUCTIONS,
            CAI_PAPER / PAPER_PREFERENCES,
            id="cai-paper",
            version="1",
            description="The paper's constitution.",
            critique_examples_json=CAI_PAPER / PAPER_CRITIQUE_EXAMPLES,
            preference_examples_json=CAI_PAPER / PAPER_PREFERENCE_EXAMPLES,
        )
        assert len(constitution.principles) == len(keys)
        labels = ("CritiqueRequest:", "Critique:", "RevisionRequest:", "Revision:", "Options:")
        for p in constitution.principles:
            texts = (p.critique_request, p.revision_request, p.preference_question)
            assert not any(label in text for label in labels for text in texts)
        assert constitution.critique_examples
        assert round_trip(constitution, tmp_path) == constitution


class TestHfRecipeImport:
    def test_principles_and_derived_questions(self) -> None:
        """critic/revision pairs become principle-N with a templated preference question."""
        constitution = from_hf_recipe(HF_SAMPLE, id="hf-sample", version="1", description="")
        assert [p.id for p in constitution.principles] == ["principle-1", "principle-2"]
        first = constitution.principles[0]
        assert first.preference_question == PREFERENCE_TEMPLATE.format(
            critique_request=first.critique_request
        )
        assert "no preference questions" in constitution.description

    def test_system_chat_becomes_critique_examples(self) -> None:
        """Complete conversations become examples; the short one is skipped and noted."""
        constitution = from_hf_recipe(HF_SAMPLE, id="hf-sample", version="1", description="")
        fixed, kept = constitution.critique_examples
        assert fixed.needs_revision
        assert "pest-control" in (fixed.revision or "")
        assert not kept.needs_revision
        assert isinstance(kept.prompt, tuple)
        assert len(kept.prompt) == 3
        assert "1 system_chat conversations" in constitution.description

    def test_the_sample_round_trips(self, tmp_path: Path) -> None:
        """Imported, written and loaded again, the constitution is unchanged."""
        constitution = from_hf_recipe(HF_SAMPLE, id="hf-sample", version="2", description="HF.")
        assert round_trip(constitution, tmp_path) == constitution

    def test_a_missing_critic_names_the_item(self, tmp_path: Path) -> None:
        """An item without a critic text is an error naming its position and field."""
        path = tmp_path / "recipe.json"
        path.write_text(json.dumps({"constitutions": [{"revision": "Fix it."}]}))
        with pytest.raises(ConstitutionError) as caught:
            from_hf_recipe(path, id="x", version="1", description="")
        assert (caught.value.principle, caught.value.field) == (1, "critic")


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """The shipped constitutions plus one broken file."""
    folder = tmp_path / "constitutions"
    shutil.copytree(SHIPPED, folder)
    bad = copy.deepcopy(valid())
    bad["principles"][2]["revision_request"] = " "
    write(folder, bad, "broken.yaml")
    return folder


class TestCli:
    def test_list_shows_the_shipped_constitutions(self) -> None:
        """list prints id, version and hash prefix of each constitution."""
        result = run("constitutions", "list")
        assert result.exit_code == 0, result.output
        hhh = load_constitution(SHIPPED / "hhh.yaml")
        rows = {line.split()[0]: line.split()[1:5] for line in result.stdout.splitlines()}
        assert rows["hhh"] == ["1", hhh.content_hash[:12], "4", "principles"]
        assert "harmlessness" in result.stdout

    def test_list_reports_a_bad_file_and_still_lists_the_rest(self, mixed_folder: Path) -> None:
        """A broken file is an error on stderr and exit 1; the good ones are listed."""
        result = run("constitutions", "list", env={"REFEREE_CONSTITUTIONS_DIR": str(mixed_folder)})
        assert result.exit_code == 1
        assert "helpful-honest" in result.stdout
        assert "broken.yaml: principle 'privacy' (#3): field 'revision_request'" in result.stderr

    def test_show_prints_yaml_that_loads_back(self, tmp_path: Path) -> None:
        """show ID prints the constitution as loadable YAML headed by its ref."""
        result = run("constitutions", "show", "hhh")
        assert result.exit_code == 0, result.output
        path = tmp_path / "shown.yaml"
        path.write_text(result.stdout)
        shipped = load_constitution(SHIPPED / "hhh.yaml")
        assert load_constitution(path) == shipped
        assert result.stdout.startswith(f"# ref: {shipped.ref}")

    def test_show_json_has_the_hash(self) -> None:
        """--json prints every field and the content hash."""
        result = run("constitutions", "show", "harmlessness", "--json")
        body = json.loads(result.stdout)
        assert body["content_hash"] == load_constitution(SHIPPED / "harmlessness.yaml").content_hash
        assert len(body["principles"]) == 16

    def test_show_unknown_lists_the_known_ids(self) -> None:
        """An unknown id is a one-line error naming the known ones."""
        result = run("constitutions", "show", "nope")
        assert result.exit_code == 2
        assert "known: harmlessness, helpful-honest, hhh" in result.stderr

    def test_validate_accepts_good_files(self) -> None:
        """validate prints ok with the ref for each valid file."""
        result = run("constitutions", "validate", str(SHIPPED / "hhh.yaml"), str(SHIPPED))
        assert result.exit_code == 1  # hhh.yaml given twice: once alone, once in the folder
        assert "already defined" in result.stderr
        assert run("constitutions", "validate", str(SHIPPED)).exit_code == 0

    def test_validate_names_file_principle_and_field(self, mixed_folder: Path) -> None:
        """A bad file fails validation with its file, principle and field."""
        result = run("constitutions", "validate", str(mixed_folder / "broken.yaml"))
        assert result.exit_code == 1
        assert "principle 'privacy' (#3): field 'revision_request': must be a non-empty" in (
            result.stderr
        )

    def test_import_cai_paper_writes_a_loadable_file(self, tmp_path: Path) -> None:
        """import cai-paper writes YAML equal to the importer's result and won't overwrite it."""
        out = tmp_path / "cai.yaml"
        args = ["constitutions", "import", "cai-paper", str(CAI_SAMPLE), "--id", "cai-sample"]
        args += ["--description", "A sample in the paper's shape.", "--out", str(out)]
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert load_constitution(out) == paper_sample()
        assert run(*args).exit_code == 2
        assert run(*args, "--force").exit_code == 0

    def test_import_hf_recipe_to_stdout(self, tmp_path: Path) -> None:
        """import hf-recipe --out - prints the YAML."""
        args = ["constitutions", "import", "hf-recipe", str(HF_SAMPLE), "--id", "hf", "--out", "-"]
        result = run(*args)
        assert result.exit_code == 0, result.output
        path = tmp_path / "hf.yaml"
        path.write_text(result.stdout)
        assert load_constitution(path) == from_hf_recipe(
            HF_SAMPLE, id="hf", version="1", description=""
        )

    def test_import_of_a_missing_folder_is_a_clean_error(self, tmp_path: Path) -> None:
        """A folder without the paper's files is a one-line error."""
        result = run("constitutions", "import", "cai-paper", str(tmp_path), "--id", "x", "-o", "-")
        assert result.exit_code == 2
        assert "cannot read the file" in result.stderr


@pytest.fixture
def settings(database_url: str, mixed_folder: Path) -> Settings:
    """The app's settings point at the shipped constitutions plus a broken file."""
    return Settings(database_url=database_url, judges_file=None, constitutions_dir=mixed_folder)


class TestHttp:
    def test_list_has_the_good_ones_and_the_problem(self, api: TestClient) -> None:
        """GET /v1/constitutions lists valid constitutions and the broken file's error."""
        response = api.get("/v1/constitutions")
        assert response.status_code == 200
        body = response.json()
        by_id = {c["id"]: c for c in body["constitutions"]}
        assert set(by_id) == {"harmlessness", "helpful-honest", "hhh"}
        shipped = load_constitution(SHIPPED / "hhh.yaml")
        assert by_id["hhh"]["content_hash"] == shipped.content_hash
        assert by_id["hhh"]["principles"] == 4
        [problem] = body["problems"]
        assert (problem["file"], problem["principle"], problem["field"]) == (
            "broken.yaml",
            "privacy",
            "revision_request",
        )
        assert problem["message"].startswith("broken.yaml: principle 'privacy' (#3)")

    def test_one_constitution_in_full(self, api: TestClient) -> None:
        """GET /v1/constitutions/{id} returns every principle and example with the hash."""
        body = api.get("/v1/constitutions/harmlessness").json()
        shipped = load_constitution(SHIPPED / "harmlessness.yaml")
        assert body["ref"] == shipped.ref
        assert [p["id"] for p in body["principles"]] == [p.id for p in shipped.principles]
        assert body["critique_examples"][0]["needs_revision"] is True
        assert body["preference_examples"][0]["choice"] == "a"

    def test_an_unknown_id_is_404(self, api: TestClient) -> None:
        """An unknown constitution is a 404 naming the known ids."""
        response = api.get("/v1/constitutions/nope")
        assert response.status_code == 404
        assert response.json()["error"]["details"]["known"] == [
            "harmlessness",
            "helpful-honest",
            "hhh",
        ]

    def test_the_routes_need_a_key_with_the_read_scope(
        self, api: TestClient, settings: Settings
    ) -> None:
        """Like every /v1 route, constitutions need an API key with the route's scope (read)."""
        wrong = {"Authorization": "Bearer ref_wrong"}
        assert api.get("/v1/constitutions", headers=wrong).status_code == 401
        _, reviewer = asyncio.run(create_key(settings, "reviewer", ["review"]))
        response = api.get("/v1/constitutions/hhh", headers={"Authorization": f"Bearer {reviewer}"})
        assert response.status_code == 403
        _, reader = asyncio.run(create_key(settings, "reader", ["read"]))
        headers = {"Authorization": f"Bearer {reader}"}
        assert api.get("/v1/constitutions/hhh", headers=headers).status_code == 200
