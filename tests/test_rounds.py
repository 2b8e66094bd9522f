"""``referee round run``: generate → judge → select → head-to-head, one resumable job per name.

Against the fake provider (the policy samples seeded, distinct answers; the
judge prefers the longer answer), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner, Result

from app.cli import cli
from app.store.db import sync_url
from app.store.migrate import upgrade
from tests.fake_provider import FakeProvider

POLICY = "openai:policy-model"
JUDGE = "openai:gpt-4o-mini"
PROMPTS = [
    "What is two plus two?",
    "Name a colour of the sky.",
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
    "Why do leaves fall?",
]


def prompts_file(path: Path, prompts: list[Any] = PROMPTS, bad: bool = False) -> Path:
    lines = [json.dumps({"id": f"q{i}", "prompt": p}) for i, p in enumerate(prompts)]
    if bad:
        lines.insert(1, '{"prompt": ""}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def round_args(name: str, prompts: Path, *extra: str, seed: int = 7) -> list[str]:
    """A round's command line; a child round samples with another seed (another checkpoint)."""
    return [
        "round", "run", name, "--prompts", str(prompts), "--policy", POLICY,
        "--judge", JUDGE, "-n", "3", "--strategy", "all-pairs", "--seed", str(seed), *extra,
    ]  # fmt: skip


def referee(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"REFEREE_DATABASE_URL": database_url})


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(sync_url(url))
    with engine.connect() as connection:
        found = [tuple(r) for r in connection.execute(text(sql)).fetchall()]
    engine.dispose()
    return found


def count(url: str, table: str) -> int:
    return int(rows(url, f"SELECT count(*) FROM {table}")[0][0])


STORED = ("generation_samples", "generation_candidates", "comparisons", "judge_calls",
          "selections", "round_matchups", "verdicts")  # fmt: skip

SELECTED = (
    "SELECT p.prompt_key, c.text, r.text FROM selections s "
    "JOIN generation_prompts p ON p.id = s.prompt_id "
    "JOIN generation_candidates c ON c.id = s.chosen_id "
    "JOIN generation_candidates r ON r.id = s.rejected_id "
    "JOIN selection_runs sr ON sr.id = s.run_id JOIN rounds rd ON rd.selection_run_id = sr.id "
    "WHERE rd.name = '{name}' ORDER BY p.prompt_key"
)


@pytest.fixture
def fake(provider: FakeProvider) -> FakeProvider:
    provider.configure(policy="longer")
    return provider


class TestRoundRun:
    def test_two_rounds_end_to_end(
        self, database_url: str, fake: FakeProvider, tmp_path: Path
    ) -> None:
        """r1 then r2 (parent r1): samples, selections, the head-to-head, the report, the record."""
        source = prompts_file(tmp_path / "prompts.jsonl", bad=True)
        first = referee(database_url, *round_args("r1", source, "--checkpoint", "sft"))
        assert first.exit_code == 1, first.output  # the empty prompt is rejected, the rest run
        assert "prompts.jsonl:2" in first.output
        second = referee(
            database_url,
            *round_args("r2", source, "--checkpoint", "dpo-1", "--parent", "r1", seed=8),
        )
        assert "round r2: done" in second.output
        n, prompts = 3, len(PROMPTS)
        assert count(database_url, "generation_samples") == 2 * n * prompts
        assert len(rows(database_url, SELECTED.format(name="r2"))) == prompts
        stored = rows(
            database_url,
            "SELECT r.name, p.name, r.policy, r.checkpoint, r.strategy, r.judge, r.stage,"
            " r.prompt_count FROM rounds r LEFT JOIN rounds p ON p.id = r.parent_id"
            " ORDER BY r.name",
        )
        assert stored == [
            ("r1", None, POLICY, "sft", "all-pairs", JUDGE, "done", prompts),
            ("r2", "r1", POLICY, "dpo-1", "all-pairs", JUDGE, "done", prompts),
        ]
        # Every shared prompt is one matchup, judged in both orders (a = this round's answer).
        assert count(database_url, "round_matchups") == prompts
        orders = rows(
            database_url,
            "SELECT c.id, count(j.id) FROM round_matchups m JOIN comparisons c"
            " ON c.id = m.comparison_id JOIN judge_calls j ON j.comparison_id = c.id GROUP BY c.id",
        )
        assert [calls for _, calls in orders] == [2] * prompts
        report = referee(database_url, "report", "--rounds", "--json")
        assert report.exit_code == 0, report.output
        found = {r["name"]: r for r in json.loads(report.output)["rounds"]}
        assert found["r1"]["vs_parent"] is None
        h2h = found["r2"]["vs_parent"]
        counts = h2h["counts"]
        assert counts["wins"] + counts["losses"] + counts["ties"] == h2h["win_rate"]["n"] == prompts
        assert h2h["win_rate"]["value"] == counts["wins"] / prompts
        # The judge prefers longer answers: the longer-wins rate says so beside the win rate.
        assert h2h["length"]["longer_wins"]["value"] == 1.0
        shown = referee(database_url, "round", "show", "r2", "--json")
        assert json.loads(shown.output)["lineage"] == ["r2", "r1"]

    def test_the_same_run_again_calls_nothing_and_stores_nothing(
        self, database_url: str, fake: FakeProvider, tmp_path: Path
    ) -> None:
        """A finished round run again: no model request, no new row."""
        source = prompts_file(tmp_path / "prompts.jsonl")
        assert referee(database_url, *round_args("r1", source)).exit_code == 0
        result = referee(database_url, *round_args("r2", source, "--parent", "r1", seed=8))
        assert result.exit_code == 0, result.output
        before = {t: count(database_url, t) for t in STORED}
        requests = len(fake.requests())
        again = referee(database_url, *round_args("r2", source, "--parent", "r1", seed=8))
        assert again.exit_code == 0, again.output
        assert len(fake.requests()) == requests
        assert {t: count(database_url, t) for t in STORED} == before

    @pytest.mark.parametrize(
        ("change", "named"),
        [
            (["-n", "2"], "n: 3 → 2"),
            (["--checkpoint", "other"], "checkpoint: None → 'other'"),
            (["--strategy", "tournament"], "strategy: 'all-pairs' → 'tournament'"),
            (["--judge", "openai:gpt-4o"], "judge: 'openai:gpt-4o-mini' → 'openai:gpt-4o'"),
            (["--seed", "8"], "seed: 7 → 8"),
            (["--prompts", "OTHER"], "prompt_set: prompt set"),
        ],
    )
    def test_the_same_name_with_other_parameters_is_refused(
        self, database_url: str, fake: FakeProvider, tmp_path: Path, change: list[str], named: str
    ) -> None:
        """Refused before anything is sampled, naming what differs; nothing is stored."""
        source = prompts_file(tmp_path / "prompts.jsonl")
        assert referee(database_url, *round_args("r1", source)).exit_code == 0
        before = {t: count(database_url, t) for t in STORED}
        requests = len(fake.requests())
        other = prompts_file(tmp_path / "other.jsonl", PROMPTS[:2])
        args = round_args("r1", source)
        for option, value in zip(change[::2], change[1::2], strict=True):
            value = str(other) if value == "OTHER" else value
            if option in args:
                args[args.index(option) + 1] = value
            else:
                args += [option, value]
        result = referee(database_url, *args)
        assert result.exit_code == 2
        assert "round 'r1' exists with other parameters" in result.output
        assert named in result.output
        assert len(fake.requests()) == requests
        assert {t: count(database_url, t) for t in STORED} == before

    def test_an_unknown_parent_is_refused(
        self, database_url: str, fake: FakeProvider, tmp_path: Path
    ) -> None:
        """--parent must name a stored round; nothing is sampled otherwise."""
        source = prompts_file(tmp_path / "prompts.jsonl")
        result = referee(database_url, *round_args("r2", source, "--parent", "nope"))
        assert result.exit_code == 2
        assert "no parent round named 'nope'" in result.output
        assert fake.requests() == []


def round_cmd(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(url: str, sql: str, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rows(url, sql)[0][0] >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {sql}")


@pytest.mark.parametrize(
    "kill_when",
    [
        "SELECT count(*) FROM generation_samples WHERE status = 'done'",
        "SELECT count(*) FROM verdicts",
    ],
    ids=["mid-generation", "mid-judging"],
)
def test_sigkill_mid_round_then_rerun_equals_a_clean_run(
    database_url: str, fake: FakeProvider, tmp_path: Path, kill_when: str
) -> None:
    """Killed mid-round and run again: each sample and judgment once, the clean run's pairs."""
    fake.configure(policy="longer", latency_ms=80)
    source = prompts_file(tmp_path / "prompts.jsonl", [f"question {i}" for i in range(6)])
    env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
    args = round_args("r1", source, "--concurrency", "3")
    run = round_cmd(args, env)
    _wait_for(database_url, kill_when, 2)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert rows(database_url, "SELECT stage FROM rounds") != [("done",)]  # really cut short
    resumed = referee(database_url, *args)
    assert resumed.exit_code == 0, resumed.output
    assert "round r1: done" in resumed.output
    samples = rows(database_url, "SELECT prompt_id, sample_index FROM generation_samples")
    assert len(samples) == len(set(samples)) == 6 * 3
    # Each stored sample counted once in its candidate; each comparison judged in one run.
    assert rows(database_url, "SELECT sum(count) FROM generation_candidates") == [(18,)]
    assert (
        rows(
            database_url, "SELECT count(*) FROM verdicts GROUP BY comparison_id HAVING count(*) > 1"
        )
        == []
    )
    assert rows(database_url, "SELECT count(*) FROM selections")[0][0] == 6
    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    upgrade(clean_url)
    assert referee(clean_url, *args).exit_code == 0
    assert rows(clean_url, SELECTED.format(name="r1")) == rows(
        database_url, SELECTED.format(name="r1")
    )


PRICED_POLICY = "openai:gpt-4o-mini"
"""A policy with a price, so that --max-cost has spend to count."""


def priced_args(name: str, prompts: Path, *extra: str) -> list[str]:
    args = round_args(name, prompts, "--concurrency", "1", *extra)
    args[args.index("--policy") + 1] = PRICED_POLICY
    return args


class TestRoundTransport:
    """--max-cost, --rpm, --tpm: how far and how fast a run goes, never what the round is."""

    def test_max_cost_stops_the_round_and_a_rerun_finishes_it_once(
        self, database_url: str, fake: FakeProvider, tmp_path: Path
    ) -> None:
        prompts = [f"Question number {i}?" for i in range(12)]
        source = prompts_file(tmp_path / "prompts.jsonl", prompts)
        fake.configure(latency_ms=100)  # one request at a time: the stop comes mid-sampling
        stopped = referee(database_url, *priced_args("r1", source, "--max-cost", "0.0000001"))
        assert stopped.exit_code == 1, stopped.output
        assert "budget of $1E-7 reached" in stopped.output
        assert "round r1: generate" in stopped.output
        drawn = "SELECT id, request_id, candidate_id FROM generation_samples WHERE status = 'done'"
        first = rows(database_url, drawn)
        assert 1 <= len(first) < 3 * len(prompts)
        assert count(database_url, "judge_calls") == 0  # stopped before judging
        fake.configure(latency_ms=0)
        # A higher budget (and a rate limit the first run did not have) continues it.
        again = referee(
            database_url, *priced_args("r1", source, "--max-cost", "100", "--rpm", "60000")
        )
        assert again.exit_code == 0, again.output
        assert "round r1: done" in again.output
        samples = rows(
            database_url,
            "SELECT prompt_id, sample_index, count(*) FROM generation_samples"
            " GROUP BY prompt_id, sample_index",
        )
        assert len(samples) == 3 * len(prompts)
        assert {n for _, _, n in samples} == {1}
        assert count(database_url, "generation_samples WHERE status = 'pending'") == 0
        assert set(first) <= set(rows(database_url, drawn))  # the first run's samples kept as drawn
        assert len(rows(database_url, SELECTED.format(name="r1"))) == len(prompts)
        assert count(database_url, "selections") == len(prompts)

    def test_changed_transport_options_are_accepted_on_a_rerun(
        self, database_url: str, fake: FakeProvider, tmp_path: Path
    ) -> None:
        """A finished round run again with other limits: not refused, nothing called."""
        source = prompts_file(tmp_path / "prompts.jsonl")
        assert referee(database_url, *round_args("r1", source)).exit_code == 0
        requests = len(fake.requests())
        before = {t: count(database_url, t) for t in STORED}
        again = referee(
            database_url,
            *round_args("r1", source, "--rpm", "6000", "--tpm", "900000", "--max-cost", "3"),
        )
        assert again.exit_code == 0, again.output
        assert "round r1: done" in again.output
        assert len(fake.requests()) == requests
        assert {t: count(database_url, t) for t in STORED} == before

    def test_rpm_and_tpm_reach_the_policy_and_every_judging_stage(
        self,
        database_url: str,
        fake: FakeProvider,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The limiters the run builds: one for the policy, the judge's for select and compare."""
        import judges.base
        import judges.policies.base
        from app.labeling.rounds import round_run
        from judges.limits import RateLimits

        built: list[tuple[str, float | None, float | None]] = []

        def recording(kind: str) -> type[RateLimits]:
            class Recording(RateLimits):
                def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
                    built.append((kind, rpm, tpm))
                    super().__init__(rpm, tpm)

            return Recording

        monkeypatch.setattr(judges.base, "RateLimits", recording("judge"))
        monkeypatch.setattr(judges.policies.base, "RateLimits", recording("policy"))
        compared: list[Any] = []
        judge_matchups = round_run.judge_matchups

        async def spy(labeler: Any, batch_id: Any, config: Any, *args: Any) -> Any:
            compared.append(config)
            return await judge_matchups(labeler, batch_id, config, *args)

        monkeypatch.setattr(round_run, "judge_matchups", spy)
        source = prompts_file(tmp_path / "prompts.jsonl")
        assert referee(database_url, *round_args("r1", source)).exit_code == 0
        assert ("policy", None, None) in built
        built.clear()
        limits = ("--rpm", "60000", "--tpm", "50000000")
        result = referee(database_url, *round_args("r2", source, "--parent", "r1", *limits, seed=8))
        assert result.exit_code == 0, result.output
        assert ("policy", 60000.0, 50000000.0) in built
        assert ("judge", 60000.0, 50000000.0) in built
        assert [(c.rpm, c.tpm) for c in compared] == [(60000.0, 50000000.0)]
