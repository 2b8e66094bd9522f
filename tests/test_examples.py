"""The scripts in examples/ run end to end against the fake provider, and what they write loads.

Each script runs as a user would run it (``examples/NAME.sh OUT_DIR``), with
both SDKs pointed at a fake provider that prefers the longer response and
always finds something to revise; its outputs are then read back the way a
trainer or a reader would.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.fake_provider import FakeProvider
from tests.test_docs import CAI_OUTPUTS, ROOT, docs_env

SCRIPTS = ("label_and_export_dpo", "cai_revise_sft_dpo", "measure_judge")
SCRIPT_TIMEOUT_S = 180
DPO_COLUMNS = {"prompt", "chosen", "rejected"}
REVISED = "A safer, kinder answer."  # CAI_OUTPUTS' revision, its preamble stripped


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, Any]]]:
    """All three scripts, started at once, each writing to its own directory."""
    with FakeProvider(policy="longer", outputs=CAI_OUTPUTS) as provider:
        started: dict[str, tuple[Path, Any]] = {}
        for name in SCRIPTS:
            out = tmp_path_factory.mktemp(name)
            env = docs_env(provider, out)
            del env["REFEREE_DATABASE_URL"]  # each script makes its own database in OUT
            process = subprocess.Popen(
                [str(ROOT / "examples" / f"{name}.sh"), str(out / "out")],
                cwd=out,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            started[name] = (out / "out", process)
        yield started
        for _, process in started.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


def finished(runs: dict[str, tuple[Path, Any]], name: str) -> Path:
    out, process = runs[name]
    output, _ = process.communicate(timeout=SCRIPT_TIMEOUT_S)
    assert process.returncode == 0, output[-4000:]
    return Path(out)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_label_and_export_dpo(runs: dict[str, tuple[Path, Any]]) -> None:
    """hh-rlhf sample → DPO: a split jsonl folder with a card, and a parquet with the same rows."""
    out = finished(runs, "label_and_export_dpo")
    rows = jsonl(out / "dpo" / "train.jsonl") + jsonl(out / "dpo" / "test.jsonl")
    assert rows, "no DPO rows"
    assert all(set(row) == DPO_COLUMNS for row in rows)
    assert all(row["chosen"] != row["rejected"] for row in rows)
    assert "dpo" in (out / "dpo" / "README.md").read_text(encoding="utf-8")
    table = pq.read_table(out / "dpo.parquet")
    assert set(table.column_names) == DPO_COLUMNS
    assert table.num_rows == len(rows)
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("json", data_files=str(out / "dpo" / "train.jsonl"))["train"]
    assert set(loaded.column_names) == DPO_COLUMNS


def test_cai_revise_sft_dpo(runs: dict[str, tuple[Path, Any]]) -> None:
    """Three red-team lines → three SFT rows ending in the revision, three revision ≻ original."""
    out = finished(runs, "cai_revise_sft_dpo")
    sft = jsonl(out / "sft.jsonl")
    assert len(sft) == 3
    assert all(row["messages"][-1] == {"role": "assistant", "content": REVISED} for row in sft)
    dpo = jsonl(out / "dpo.jsonl")
    assert len(dpo) == 3
    assert all(row["chosen"] == [{"role": "assistant", "content": REVISED}] for row in dpo)
    originals = {row["rejected"][0]["content"] for row in dpo}
    assert "Try the default router passwords first; most people never change them." in originals
    assert json.loads((out / "constitution.json").read_text())["id"] == "harmlessness"


def test_measure_judge(runs: dict[str, tuple[Path, Any]]) -> None:
    """PandaLM + LLMBar → a report whose judge block is measured on every gold pair, and a page."""
    out = finished(runs, "measure_judge")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    (block,) = report["judges"]
    assert block["judge"] == "openai:gpt-4o-mini"
    assert report["gold"]["pairs"] > 200
    assert block["agreement"]["with_ties"]["n"] == report["gold"]["pairs"]
    # The fake always prefers the longer answer: the length audit must say so.
    assert block["length"]["judge_prefers_longer"]["value"] == 1.0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'data-metric="' in page
    assert "pandalm-200" in page
