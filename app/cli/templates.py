"""``referee templates``: list, show and validate judging templates and named criteria."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from app.cli.console import err, error_line, fail, load_settings, out
from judges.templates import (
    CRITERIA_FILE,
    PairwiseTemplate,
    TemplateError,
    load_criteria,
    load_template,
    scan_templates,
)

templates_cli = typer.Typer(
    help="Judging templates: the words a judge is asked with, versioned as data.",
    no_args_is_help=True,
)

FolderOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Only this folder of template YAML files (default: the shipped templates/ plus"
        " REFEREE_TEMPLATES_DIR, as the service serves them).",
        show_default=False,
    ),
]


def _folders(folder: Path | None) -> tuple[Path, ...]:
    return (folder,) if folder is not None else load_settings().template_folders()


def _report(problems: list[TemplateError]) -> None:
    for problem in problems:
        err.print(error_line(problem.message))


def _parts(template: PairwiseTemplate) -> str:
    parts = [k for k in ("criteria", "reference", "conversation") if getattr(template, k)]
    if template.preference_examples:
        parts.append(f"{len(template.preference_examples)} examples")
    return ",".join(parts) or "-"


@templates_cli.command("list")
def list_templates(folder: FolderOption = None) -> None:
    """List the templates: id, the ref verdicts store, the parts it has, description; then
    the named criteria.

    A file that does not validate is reported on stderr, the others are
    listed, and the exit code is 1.

    Example: referee templates list
    """
    scan = scan_templates(*_folders(folder))
    rows = [(t.id, t.ref, _parts(t), t.description) for t in scan.templates.values()]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    for *cells, description in sorted(rows):
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        first = description.splitlines()[0]
        out.print("  ".join([*padded, first[:71] + ("…" if len(first) > 71 else "")]))
    for name in sorted(scan.criteria):
        out.print(f"criteria: {name}")
    _report(list(scan.problems))
    if scan.problems:
        raise typer.Exit(1)


@templates_cli.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A template id or ref, or a YAML file's path.")],
    folder: FolderOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON with every field.")] = False,
) -> None:
    """Print one template in full, as YAML (or JSON), with its ref and content hash.

    Examples:

      referee templates show pairwise-v1

      referee templates show pairwise-v2 --json | jq .ref
    """
    template = _find(name, folder)
    full = {**template.to_dict(), "ref": template.ref, "content_hash": template.content_hash}
    if as_json:
        out.print(json.dumps(full, ensure_ascii=False, indent=2))
    else:
        body = yaml.safe_dump(template.to_dict(), sort_keys=False, allow_unicode=True, width=88)
        out.print(f"# ref: {template.ref}\n{body}", end="")


def _find(name: str, folder: Path | None) -> PairwiseTemplate:
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        try:
            return load_template(name)
        except TemplateError as exc:
            fail(exc.message, code=1)
    folders = _folders(folder)
    scan = scan_templates(*folders)
    found = scan.templates.get(name) or scan.by_ref(name)
    if found is None:
        known = ", ".join(sorted(scan.templates)) or "none"
        where = ", ".join(map(str, folders)) or "no folder"
        fail(f"no template {name!r} in {where}; known: {known}")
    return found


@templates_cli.command("validate")
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or folders (default: the folders the service reads).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check template and criteria files; every error names its file, line and field.

    Exit code 1 when any file is bad; the good ones are listed with their refs.

    Example: referee templates validate my-templates/
    """
    problems: list[TemplateError] = []
    for path in paths or list(_folders(None)):
        if path.is_dir():
            scan = scan_templates(path)
            problems += scan.problems
            for template in scan.templates.values():
                out.print(f"ok  {scan.files[template.id]}  {template.ref}")
            continue
        try:
            if path.name == CRITERIA_FILE:
                out.print(f"ok  {path}  {len(load_criteria(path))} criteria")
            else:
                out.print(f"ok  {path}  {load_template(path).ref}")
        except TemplateError as exc:
            problems.append(exc)
    _report(problems)
    if problems:
        raise typer.Exit(1)
