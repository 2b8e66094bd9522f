"""``referee constitutions``: list, show, validate and import constitutions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from app.cli.console import err, error_line, fail, load_settings, out
from judges.cai.constitutions import (
    Constitution,
    ConstitutionError,
    load_constitution,
    scan_constitutions,
    to_yaml,
)
from judges.cai.importers import (
    PAPER_CRITIQUE_EXAMPLES,
    PAPER_INSTRUCTIONS,
    PAPER_PREFERENCE_EXAMPLES,
    PAPER_PREFERENCES,
    from_cai_paper,
    from_hf_recipe,
)

constitutions_cli = typer.Typer(
    help="Constitutions: principles to critique, revise and compare responses by.",
    no_args_is_help=True,
)
import_cli = typer.Typer(
    help="Turn another format into a constitution YAML file.", no_args_is_help=True
)
constitutions_cli.add_typer(import_cli, name="import")

FolderOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Only this folder of constitution YAML files (default: the shipped ones plus"
        " REFEREE_CONSTITUTIONS_DIR, as the service serves them).",
        show_default=False,
    ),
]
IdOption = Annotated[str, typer.Option("--id", help="The new constitution's id (a slug).")]
VersionOption = Annotated[str, typer.Option(help="Its version.")]
DescriptionOption = Annotated[str, typer.Option(help="What it is for; import notes are appended.")]
OutOption = Annotated[
    str, typer.Option("--out", "-o", help="The YAML file to write; - for stdout.")
]
ForceOption = Annotated[bool, typer.Option(help="Overwrite --out if it exists.")]


def _folders(folder: Path | None) -> tuple[Path, ...]:
    return (folder,) if folder is not None else load_settings().constitution_folders()


def _summaries(constitutions: list[Constitution]) -> list[str]:
    """One aligned line each: id, version, hash prefix, principle count, description."""
    rows = [
        (c.id, c.version, c.content_hash[:12], f"{len(c.principles)} principles", c.description)
        for c in sorted(constitutions, key=lambda c: c.id)
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
    lines = []
    for *cells, description in rows:
        first_line = description.splitlines()[0]
        if len(first_line) > 72:
            first_line = first_line[:71].rstrip() + "…"
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        lines.append("  ".join([*padded, first_line]))
    return lines


def _report(problems: list[ConstitutionError]) -> None:
    for problem in problems:
        err.print(error_line(problem.message))


@constitutions_cli.command("list")
def list_constitutions(folder: FolderOption = None) -> None:
    """List the constitutions: id, version, hash, principle count, description.

    A file that does not validate is reported on stderr, the others are
    listed, and the exit code is 1.

    Example: referee constitutions list --dir my-constitutions/
    """
    scan = scan_constitutions(*_folders(folder))
    for line in _summaries(list(scan.constitutions.values())):
        out.print(line, markup=False)
    _report(list(scan.problems))
    if scan.problems:
        raise typer.Exit(1)


@constitutions_cli.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A constitution id, or the path of a YAML file.")],
    folder: FolderOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON with every field.")] = False,
) -> None:
    """Print one constitution in full, as YAML (or JSON), with its content hash.

    Examples:

      referee constitutions show harmlessness

      referee constitutions show hhh --json | jq '.principles[].id'
    """
    constitution = _find(name, folder)
    if as_json:
        full = {**constitution.to_dict(), "content_hash": constitution.content_hash}
        out.print(json.dumps(full, ensure_ascii=False, indent=2), markup=False)
    else:
        out.print(to_yaml(constitution, header=f"ref: {constitution.ref}"), markup=False, end="")


def _find(name: str, folder: Path | None) -> Constitution:
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        try:
            return load_constitution(name)
        except ConstitutionError as exc:
            fail(exc.message, code=1)
    folders = _folders(folder)
    where = ", ".join(map(str, folders)) or "no folder"
    scan = scan_constitutions(*folders)
    if name not in scan.constitutions:
        known = ", ".join(sorted(scan.constitutions)) or "none"
        broken = (
            f"; {len(scan.problems)} file(s) failed to load: referee constitutions validate {where}"
            if scan.problems
            else ""
        )
        fail(f"no constitution {name!r} in {where}; known: {known}{broken}")
    return scan.constitutions[name]


@constitutions_cli.command("validate")
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or folders (default: the folders the service reads).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check constitution files; every error names its file, principle and field.

    Exit code 0 when all are valid, 1 otherwise. Two files with the same
    constitution id are an error too.

    Examples:

      referee constitutions validate constitutions/

      referee constitutions validate my.yaml other.yaml
    """
    if not paths:
        # The service's own rules: the shipped folder plus REFEREE_CONSTITUTIONS_DIR.
        scan = scan_constitutions(*_folders(None))
        for cid, constitution in sorted(scan.constitutions.items()):
            ok = f"ok {scan.files[cid]}: {constitution.ref} ({_counts(constitution)})"
            out.print(ok, markup=False)
        _report(list(scan.problems))
        if scan.problems:
            raise typer.Exit(1)
        return
    seen: dict[str, Path] = {}
    problems: list[ConstitutionError] = []
    for path in paths:
        found, path_problems = _load_path(path)
        problems.extend(path_problems)
        for file, constitution in found:
            if constitution.id in seen:
                problems.append(
                    ConstitutionError(
                        f"constitution id {constitution.id!r} is already defined in "
                        f"{seen[constitution.id]}",
                        file=str(file),
                        field="id",
                    )
                )
                continue
            seen[constitution.id] = file
            out.print(f"ok {file}: {constitution.ref} ({_counts(constitution)})", markup=False)
    _report(problems)
    if problems:
        raise typer.Exit(1)


def _load_path(path: Path) -> tuple[list[tuple[Path, Constitution]], list[ConstitutionError]]:
    if path.is_dir():
        scan = scan_constitutions(path)
        found = [(scan.files[cid], c) for cid, c in scan.constitutions.items()]
        return found, list(scan.problems)
    try:
        return [(path, load_constitution(path))], []
    except ConstitutionError as exc:
        return [], [exc]


def _counts(c: Constitution) -> str:
    return (
        f"{len(c.principles)} principles, {len(c.critique_examples)} critique examples, "
        f"{len(c.preference_examples)} preference examples"
    )


def _write(constitution: Constitution, header: str, output: str, force: bool) -> None:
    text = to_yaml(constitution, header=header)
    if output == "-":
        out.print(text, markup=False, end="")
        return
    target = Path(output)
    if target.exists() and not force:
        fail(f"{target} exists; pass --force to overwrite it")
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror}")
    err.print(f"wrote {target}: {constitution.ref} ({_counts(constitution)})", markup=False)


@import_cli.command("cai-paper")
def import_cai_paper(
    folder: Annotated[
        Path, typer.Argument(help=f"Folder holding {PAPER_INSTRUCTIONS} and the other files.")
    ],
    output: OutOption,
    constitution_id: IdOption,
    version: VersionOption = "1",
    description: DescriptionOption = "",
    examples: Annotated[
        bool, typer.Option(help="Import the few-shot files too, where present.")
    ] = True,
    force: ForceOption = False,
) -> None:
    """Import the Constitutional AI paper's prompt files.

    Reads the critique/revision requests from CritiqueRevisionInstructions.json,
    pairs them with RLMadisonInstructions.json's preference questions by
    position when that file is present, and takes few-shots from
    CritiqueRevisionFewShotPrompts.json and RLMadisonFewShotPrompts.json.
    The paper's files carry no license: keep the result for your own use.

    Example: referee constitutions import cai-paper ../data/cai-paper --id cai-paper --out cai.yaml
    """

    def present(name: str, wanted: bool = True) -> Path | None:
        return folder / name if wanted and (folder / name).is_file() else None

    try:
        constitution = from_cai_paper(
            folder / PAPER_INSTRUCTIONS,
            present(PAPER_PREFERENCES),
            id=constitution_id,
            version=version,
            description=description,
            critique_examples_json=present(PAPER_CRITIQUE_EXAMPLES, examples),
            preference_examples_json=present(PAPER_PREFERENCE_EXAMPLES, examples),
        )
    except ConstitutionError as exc:
        fail(exc.message)
    header = f"Imported by `referee constitutions import cai-paper` from {folder.name}/."
    _write(constitution, header, output, force)


@import_cli.command("hf-recipe")
def import_hf_recipe(
    file: Annotated[Path, typer.Argument(help='A JSON file {"constitutions", "system_chat"}.')],
    output: OutOption,
    constitution_id: IdOption,
    version: VersionOption = "1",
    description: DescriptionOption = "",
    force: ForceOption = False,
) -> None:
    """Import a Hugging Face Constitutional AI recipe JSON.

    Each {"critic", "revision"} becomes a principle (principle-1, ...) with
    a preference question derived from its critic text; system_chat
    conversations become critique examples where they have the critique
    and revision turns.

    Example: referee constitutions import hf-recipe constitution.json --id hf-cai --out hf.yaml
    """
    try:
        constitution = from_hf_recipe(
            file, id=constitution_id, version=version, description=description
        )
    except ConstitutionError as exc:
        fail(exc.message)
    header = f"Imported by `referee constitutions import hf-recipe` from {file.name}."
    _write(constitution, header, output, force)
