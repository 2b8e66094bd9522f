"""The documentation's commands are run, so the docs cannot drift from the code.

Convention: the line before every ```bash fence in docs/ and README.md is one of

    <!-- runnable -->
    <!-- not-runnable: REASON -->

A page's runnable blocks run in order in one ``bash -euo pipefail`` shell, in
a fresh directory with a fresh SQLite database, ``tests/`` and ``examples/``
copied in, and both SDKs pointed at a fake provider that prefers the longer
response and always finds something to revise. A bash block with neither
marker, or a not-runnable one without a reason, fails the test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fake_provider import FakeProvider

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^```bash\b")
MARKER = re.compile(r"^<!--\s*(runnable|not-runnable)\s*(?::\s*(.*?))?\s*-->$")
PAGE_TIMEOUT_S = 120

# Answers every fake critique with "needs a revision", so CAI examples produce revisions.
CAI_OUTPUTS = {
    "record_critique": {"critique": "It could be safer and kinder.", "needs_revision": True},
    "record_revision": {"revision": "Sure, here is a revised response:\n\nA safer, kinder answer."},
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    marker: str | None
    reason: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def bash_blocks(path: Path) -> list[Block]:
    """Every ```bash block of a Markdown file with the marker on the line before its fence."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if not FENCE.match(lines[index]):
            index += 1
            continue
        start = index
        previous = lines[start - 1].strip() if start else ""
        found = MARKER.match(previous)
        end = start + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        blocks.append(
            Block(
                path=path,
                line=start + 1,
                marker=found.group(1) if found else None,
                reason=(found.group(2) or "") if found else "",
                code="\n".join(lines[start + 1 : end]),
            )
        )
        index = end + 1
    return blocks


ALL_BLOCKS = [block for path in DOC_FILES for block in bash_blocks(path)]
RUNNABLE_PAGES = sorted({b.path for b in ALL_BLOCKS if b.marker == "runnable"})


def test_every_bash_block_is_runnable_or_says_why_not() -> None:
    """A bash block without a marker, or not-runnable without a reason, is a docs bug."""
    unmarked = [b.where for b in ALL_BLOCKS if b.marker is None]
    assert not unmarked, (
        f"bash blocks without <!-- runnable --> or <!-- not-runnable: … -->: {unmarked}"
    )
    no_reason = [b.where for b in ALL_BLOCKS if b.marker == "not-runnable" and len(b.reason) < 10]
    assert not no_reason, f"not-runnable blocks without a reason: {no_reason}"


def test_the_parser_sees_the_blocks() -> None:
    """The extraction finds the blocks it should (a parser that finds none would pass anything)."""
    sample = bash_blocks(ROOT / "docs" / "getting-started.md")
    assert [b.marker for b in sample][:2] == ["not-runnable", "runnable"]
    assert "referee label tests/data/pairs.jsonl" in sample[1].code
    assert sum(b.marker == "runnable" for b in ALL_BLOCKS) >= 15


@pytest.fixture(scope="module")
def docs_provider() -> Iterator[FakeProvider]:
    with FakeProvider(policy="longer", outputs=CAI_OUTPUTS) as server:
        yield server


def venv_path() -> str:
    """PATH with this interpreter's bin first, so `referee` and `python` are the tested install."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def docs_env(provider: FakeProvider, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFEREE_")}
    env.update(
        PATH=venv_path(),
        REFEREE_DATABASE_URL=f"sqlite:///{workdir / 'referee.db'}",
        ANTHROPIC_BASE_URL=provider.anthropic_base_url,
        ANTHROPIC_API_KEY="sk-ant-docs-test",
        OPENAI_BASE_URL=provider.openai_base_url,
        OPENAI_API_KEY="sk-openai-docs-test",
        HF_HUB_OFFLINE="1",
        # README starts the fake provider with `python -m tests.fake_provider`.
        PYTHONPATH=str(ROOT),
        COLUMNS="120",
    )
    return env


def prepare_workdir(workdir: Path, template_db: Path) -> None:
    """Copies, not links, of tests/data and examples/: commands write rejects beside inputs."""
    shutil.copytree(ROOT / "tests" / "data", workdir / "tests" / "data")
    if (ROOT / "examples").is_dir():
        shutil.copytree(ROOT / "examples", workdir / "examples")
    shutil.copy(template_db, workdir / "referee.db")


def page_script(page: Path) -> str:
    blocks = [b for b in bash_blocks(page) if b.marker == "runnable"]
    return "\n".join(f"echo '>>> {b.where}'\n{b.code}" for b in blocks)


@pytest.fixture(scope="module")
def page_runs(
    docs_provider: FakeProvider,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[dict[Path, subprocess.Popen[str]]]:
    """The script of every selected page (``-k`` picks some), started at once, each in its own
    directory on a migrated database, in its own process group (killed whole at the end)."""
    selected = {
        item.callspec.params["page"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_runnable_blocks_run"
    }
    template = tmp_path_factory.mktemp("template") / "referee.db"
    migrate = subprocess.run(
        ["referee", "db", "upgrade"],
        env={**docs_env(docs_provider, template.parent), "PATH": venv_path()},
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    runs: dict[Path, subprocess.Popen[str]] = {}
    for page in (p for p in RUNNABLE_PAGES if p in selected):
        workdir = tmp_path_factory.mktemp(page.stem)
        prepare_workdir(workdir, template)
        runs[page] = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", page_script(page)],
            cwd=workdir,
            env=docs_env(docs_provider, workdir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    yield runs
    for process in runs.values():
        # The whole group: a command still running under a killed shell would keep the pipes
        # open, and communicate() would wait for it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_runnable_blocks_run(page: Path, page_runs: dict[Path, subprocess.Popen[str]]) -> None:
    """The page's runnable blocks, in order, exit 0 against the fake provider."""
    process = page_runs[page]
    stdout, stderr = process.communicate(timeout=PAGE_TIMEOUT_S)
    assert process.returncode == 0, (
        f"exit {process.returncode}\n--- stdout\n{stdout[-4000:]}\n--- stderr\n{stderr[-4000:]}"
    )


def load_hook() -> Any:
    path = ROOT / "docs" / "hooks" / "openapi_page.py"
    spec = importlib.util.spec_from_file_location("openapi_page", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_page_has_every_route_with_its_scope() -> None:
    """The generated HTTP API page documents each operation of the app, with the scope it checks."""
    from app.api.app import create_app
    from app.api.deps import ROUTE_ACCESS

    hook = load_hook()
    page = hook.api_page()
    document = create_app().openapi()
    operations = [(m, p) for p, item in document["paths"].items() for m in item]
    assert len(operations) >= 20
    for method, path in operations:
        heading = f"### `{method.upper()} {path}` {{#{hook.operation_anchor(method, path)}}}"
        assert heading in page, heading
        section = page.split(heading, 1)[1].split("\n### ", 1)[0]
        access = ROUTE_ACCESS.get((method.upper(), path))
        expected = f"**Scope:** `{access.scope}`" if access else "**Scope:** none"
        assert expected in section, (method, path)
    for name in document["components"]["schemas"]:
        assert f"{{#{hook.schema_anchor(name)}}}" in page, name


def test_settings_table_lists_every_setting() -> None:
    """The generated settings table has one row per setting, named as the environment spells it."""
    from app.settings import Settings

    table = load_hook().settings_table()
    for name in Settings.model_fields:
        assert f"| `REFEREE_{name.upper()}` |" in table, name
    assert "| `REFEREE_AUTH` | `required` |" in table
