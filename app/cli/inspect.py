"""``referee inspect`` and the options every file-reading command shares about shapes and gold."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.console import err, fail, out
from app.errors import RefereeError

if TYPE_CHECKING:
    from app.labeling.gold import GoldLedger


class GoldConflictChoice(StrEnum):
    newest = "newest"
    majority = "majority"
    reject = "reject"


GoldConflictOption = Annotated[
    GoldConflictChoice,
    typer.Option(
        "--gold-conflict",
        help="Lines of one pair whose human labels disagree: newest (the last line's label), "
        "majority (the most common label; a tie for the top leaves the pair without gold) "
        "or reject (no gold label for the pair). Each case is counted and listed.",
    ),
]
MapOption = Annotated[
    str | None,
    typer.Option(
        "--map",
        help="Where each field is and how its values translate, e.g. "
        "prompt=question,response_a=answers.0,response_b=answers.1,label=winner:0=a,1=b,2=tie; "
        "chosen=…,rejected=… for preferred/dispreferred answers; or a YAML file (map.yaml). "
        "`referee inspect FILE` suggests one.",
    ),
]


def print_gold(ledger: GoldLedger, with_count: bool = False) -> None:
    """The merged lines and disagreeing labels of a file, as the summary's last lines."""
    from app.labeling.gold import describe_conflicts, describe_merges

    if with_count and ledger.duplicates:
        out.print(f"{ledger.duplicates} duplicate lines merged", markup=False)
    if (merges := describe_merges(ledger)) is not None:
        out.print(merges, markup=False)
    for line in describe_conflicts(ledger):
        out.print(line, markup=False)


def inspect(
    file: Annotated[
        str, typer.Argument(help="JSONL (or .jsonl.gz, or a JSON array); - for stdin.")
    ],
    mapping: MapOption = None,
    input_format: Annotated[
        str, typer.Option("--format", help="auto, canonical, trl, hh-rlhf, pandalm or llmbar.")
    ] = "auto",
) -> None:
    """Show a file's shape, the fields a command would read, and a --map for other shapes.

    Reads the first 200 lines only; stores and sends nothing. For a file no
    built-in shape fits, it suggests a --map from the field names and
    values and tries it on the same lines; check the label values it lists
    against the data set's card before using it.

    Examples:

      referee inspect prefs.jsonl

      referee inspect arena.json --map arena-map.yaml
    """
    from app.labeling.field_maps import load_map
    from app.labeling.inspect_file import inspect_stream, report
    from app.labeling.jsonl import open_input

    source = "<stdin>" if file == "-" else file
    try:
        field_map = load_map(mapping) if mapping else None
        with open_input(file) as stream:
            result = inspect_stream(stream, source)
        lines = report(result, field_map, input_format)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    except RefereeError as exc:
        fail(exc.message)
    for line in lines:
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    if not result.lines:
        err.print(f"{source}: no readable lines", markup=False)
        raise typer.Exit(1)
