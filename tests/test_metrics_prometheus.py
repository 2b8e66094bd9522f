"""Prometheus metrics (issue 21): /metrics agrees with the database, and stays bounded.

The counters are the process's, shared by every test that ran before, so
each test reads them before and after its run and compares the difference
with what the (fresh) database stored.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import routing
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from app.api.app import create_app
from app.labeling.access import SCOPES
from app.labeling.admin import create_key
from app.labeling.batch import enqueue
from app.labeling.jsonl import read_pairs
from app.labeling.runtime import runtime
from app.settings import Settings
from app.store import batches
from app.store.db import sync_url
from tests.conftest import pair_body
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"
PENDING = "SELECT count(*) FROM comparisons WHERE status = 'pending'"
GRAFANA = Path(__file__).resolve().parents[1] / "docs" / "grafana" / "referee.json"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(exposition: str) -> Samples:
    """Every sample of the text format as (name, sorted labels) -> value."""
    found: Samples = defaultdict(float)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    return found


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in found.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def by(found: Samples, name: str, label: str) -> dict[str, float]:
    """A metric summed per value of one label (values that sum to zero left out)."""
    sums: dict[str, float] = defaultdict(float)
    for (sample, sample_labels), value in found.items():
        if sample == name:
            sums[dict(sample_labels)[label]] += value
    return {key: value for key, value in sums.items() if value}


def delta(before: Samples, after: Samples) -> Samples:
    return {key: after[key] - before.get(key, 0) for key in after}


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(sync_url(url))
    with engine.connect() as connection:
        result = [tuple(r) for r in connection.execute(text(sql)).fetchall()]
    engine.dispose()
    return result


def scrape(api: TestClient) -> Samples:
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def pair(i: int) -> dict[str, object]:
    return pair_body(
        prompt=f"question {i}", response_a=f"a careful answer {i}", response_b=f"short {i}"
    )


class TestCountsEqualTheDatabase:
    def test_a_scripted_run_is_counted_as_stored(
        self, api: TestClient, provider: FakeProvider, database_url: str
    ) -> None:
        """Verdicts, failures, 429s and retries: every count equals the database's."""
        before = scrape(api)
        provider.configure(policy="first", retry_after=0)
        statuses = Counter[int]()
        for i in range(3):
            statuses[api.post("/v1/comparisons", json={**pair(i), "judge": JUDGE}).status_code] += 1
        provider.configure(fail_next=["429", "500", "429"])  # retried, then a verdict
        statuses[api.post("/v1/comparisons", json={**pair(3), "judge": JUDGE}).status_code] += 1
        provider.configure(fail_next=["malformed"])  # unparseable: stored, never retried
        statuses[api.post("/v1/comparisons", json={**pair(4), "judge": JUDGE}).status_code] += 1
        provider.configure(policy="tie")
        statuses[api.post("/v1/comparisons", json={**pair(5), "judge": JUDGE}).status_code] += 1
        change = delta(before, scrape(api))

        calls = rows(
            database_url,
            "SELECT provider, model, COALESCE(error_class, 'ok'), count(*), sum(input_tokens),"
            " sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),"
            " sum(cost_usd) FROM judge_calls GROUP BY 1, 2, 3",
        )
        outcomes = {str(outcome): float(str(n)) for _p, _m, outcome, n, *_ in calls}
        assert {"ok", "rate_limited", "transient", "unparseable"} <= set(outcomes)
        assert by(change, "referee_judge_calls_total", "outcome") == outcomes
        assert total(change, "referee_judge_calls_total", provider="anthropic") == sum(
            outcomes.values()
        )
        for index, kind in enumerate(("input", "output", "cache_read", "cache_write")):
            stored = sum(int(str(row[4 + index])) for row in calls)
            assert total(change, "referee_judge_tokens_total", kind=kind) == stored
        cost = sum(Decimal(str(row[8])) for row in calls if row[8] is not None)
        assert cost > 0
        assert total(change, "referee_judge_cost_usd_total") == pytest.approx(float(cost))
        assert total(change, "referee_judge_call_duration_seconds_count") == sum(outcomes.values())

        winners = rows(database_url, "SELECT winner, count(*) FROM verdicts GROUP BY winner")
        assert by(change, "referee_verdicts_total", "winner") == {
            str(w): float(str(n)) for w, n in winners
        }
        consistent = rows(database_url, "SELECT count(*) FROM verdicts WHERE position_consistent")[
            0
        ][0]
        assert total(change, "referee_verdicts_total", position_consistent="true") == consistent
        assert total(change, "referee_verdicts_total", judge=JUDGE) == sum(
            int(str(n)) for _, n in winners
        )

        retried = rows(database_url, "SELECT count(*) FROM judge_calls WHERE attempt > 1")[0][0]
        assert retried == 3
        assert total(change, "referee_judge_retries_total") == retried
        assert by(change, "referee_judge_retries_total", "error_class") == {
            "rate_limited": 2,
            "transient": 1,
        }
        assert total(change, "referee_judge_rate_limited_total") == outcomes["rate_limited"]

        posted = by(
            {
                k: v
                for k, v in change.items()
                if ("route", "/v1/comparisons") in k[1] and ("method", "POST") in k[1]
            },
            "referee_http_requests_total",
            "status",
        )
        assert posted == {str(status): float(n) for status, n in statuses.items()}
        assert (
            total(
                change,
                "referee_http_request_duration_seconds_count",
                route="/v1/comparisons",
                method="POST",
            )
            == 6
        )

    def test_pending_pairs_per_judge_are_read_at_scrape_time(
        self, api: TestClient, settings: Settings, tmp_path: Path
    ) -> None:
        """referee_pending_pairs is the database's count of pending comparisons per judge."""
        source = tmp_path / "pairs.jsonl"
        source.write_text("".join(json.dumps(pair(i)) + "\n" for i in range(4)))
        asyncio.run(_enqueue(settings, source, "queued"))
        found = scrape(api)
        assert total(found, "referee_pending_pairs", judge=JUDGE) == 4


async def _enqueue(settings: Settings, source: Path, name: str) -> None:
    """Store the file's pairs as a pending batch, judged by nobody yet."""
    async with runtime(settings) as labeler:
        config = labeler.resolve(JUDGE)
        async with labeler.db.transaction() as session:
            batch, _ = await batches.get_or_create(session, name, "test", config.label)
        with source.open() as stream:
            await enqueue(labeler, batch.id, config, read_pairs(stream, "t"), "t")


def http_routes(found: Samples) -> set[str]:
    """The route label values of the HTTP series in a parsed scrape."""
    return {dict(labels)["route"] for name, labels in found if "referee_http" in name}


class TestBoundedLabels:
    def test_hostile_judges_and_paths_make_no_new_series(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """An unknown model, judge or path is counted under ``other``, never by its name."""
        marker = uuid.uuid4().hex
        # The counters are the process's: other tests' apps (with routes of their own) add
        # series too, so only what this test's requests add is checked against this app.
        before = http_routes(samples(api.get("/metrics").text))
        api.post("/v1/comparisons", json={**pair(0), "judge": f"openai:model-{marker}"})
        api.get(f"/v1/comparisons/{uuid.uuid4()}")
        api.get(f"/no/such/{marker}")
        api.get(f"/v1/comparisons?judge={marker}")
        response = api.get("/metrics")
        assert marker not in response.text
        found = samples(response.text)
        assert total(found, "referee_judge_calls_total", provider="openai", model="other") >= 1
        assert total(found, "referee_verdicts_total", judge="other") >= 1
        assert total(found, "referee_http_requests_total", route="/v1/comparisons/{comparison_id}")
        assert total(found, "referee_http_requests_total", route="other", status="404") >= 1
        added = http_routes(found) - before
        served = {c.path_format for c in routing.iter_route_contexts(api.app.routes)}  # type: ignore[attr-defined]
        assert added <= served | {"other"}


class TestAccess:
    def test_metrics_need_a_read_key(self, api: TestClient, settings: Settings) -> None:
        """No key is 401; a key without ``read`` (and not admin) is 403; read is served."""
        saved = api.headers.pop("Authorization")
        try:
            assert api.get("/metrics").status_code == 401
            for scope in SCOPES:
                _, key = asyncio.run(create_key(settings, scope, [scope]))
                response = api.get("/metrics", headers={"Authorization": f"Bearer {key}"})
                assert response.status_code == (200 if scope in ("read", "admin") else 403)
        finally:
            api.headers["Authorization"] = saved

    def test_metrics_are_not_in_the_openapi_schema(self, api: TestClient) -> None:
        """/metrics answers text, not JSON: it is left out of the schema like /review."""
        assert "/metrics" not in api.get("/openapi.json").json()["paths"]

    def test_a_metrics_port_serves_them_instead_of_the_api_port(
        self, settings: Settings, provider: FakeProvider
    ) -> None:
        """REFEREE_METRICS_PORT: metrics there without a key, and no /metrics on the API."""
        port = free_port()
        separate = settings.model_copy(update={"metrics_port": port})
        _, key = asyncio.run(create_key(settings, "admin", ["admin"]))
        with TestClient(create_app(separate), headers={"Authorization": f"Bearer {key}"}) as api:
            assert api.get("/metrics").status_code == 404
            assert api.get("/healthz").status_code == 200
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            assert response.status_code == 200
            found = samples(response.text)
            assert total(found, "referee_http_requests_total", route="/healthz") >= 1
            assert ("referee_pending_pairs", ()) not in found  # no judge, no series
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


@pytest.fixture
def worker_env(database_url: str, provider: FakeProvider) -> dict[str, str]:
    return {**os.environ, "REFEREE_DATABASE_URL": database_url}


def _scrape_port(port: int, deadline: float) -> Samples:
    while True:
        try:
            return samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class TestWorker:
    def test_worker_metrics_port_serves_its_counts(
        self,
        worker_env: dict[str, str],
        settings: Settings,
        provider: FakeProvider,
        database_url: str,
        tmp_path: Path,
    ) -> None:
        """referee worker --metrics-port: the queue depth while it works, then its calls."""
        source = tmp_path / "pairs.jsonl"
        source.write_text("".join(json.dumps(pair(i)) + "\n" for i in range(3)))
        asyncio.run(_enqueue(settings, source, "worked"))
        provider.configure(policy="first", latency_ms=1500)
        port = free_port()
        command = [sys.executable, "-m", "app.cli", "worker", "--forever"]
        worker = subprocess.Popen(
            [*command, "--metrics-port", str(port), "--lease-seconds", "30"],
            env=worker_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            early = _scrape_port(port, deadline)
            while rows(database_url, PENDING)[0] != (0,):
                assert time.monotonic() < deadline, "the worker did not finish"
                time.sleep(0.2)
            late = _scrape_port(port, deadline)
        finally:
            worker.send_signal(signal.SIGINT)
            _out, err = worker.communicate(timeout=60)
        assert total(early, "referee_pending_pairs", judge=JUDGE) == 3, err
        assert "Traceback" not in err
        calls = rows(database_url, "SELECT count(*) FROM judge_calls")[0][0]
        assert calls == 6  # both orders of three pairs
        assert total(late, "referee_judge_calls_total", outcome="ok") == calls
        assert total(late, "referee_verdicts_total", judge=JUDGE) == 3
        assert total(late, "referee_pending_pairs") == 0


def dashboard_targets() -> list[dict[str, str]]:
    document = json.loads(GRAFANA.read_text(encoding="utf-8"))
    return [target for panel in document["panels"] for target in panel["targets"]]


class TestDashboard:
    def test_the_dashboard_is_a_grafana_dashboard(self) -> None:
        """The JSON has what Grafana's import needs: panels placed, each query with its refId."""
        document = json.loads(GRAFANA.read_text(encoding="utf-8"))
        assert {"title", "uid", "schemaVersion", "panels", "templating", "time"} <= set(document)
        assert isinstance(document["schemaVersion"], int)
        ids = [panel["id"] for panel in document["panels"]]
        assert len(ids) == len(set(ids))
        variables = {v["name"] for v in document["templating"]["list"]}
        for panel in document["panels"]:
            assert {"type", "title", "gridPos", "targets", "datasource"} <= set(panel)
            assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
            assert panel["datasource"]["uid"].removeprefix("${").removesuffix("}") in variables
            refs = [target["refId"] for target in panel["targets"]]
            assert refs
            assert len(refs) == len(set(refs))

    def test_it_shows_what_the_issue_asks(self) -> None:
        """Calls per second, cost per hour, failure rate by class, p95 latency, queue depth."""
        exprs = " ".join(target["expr"] for target in dashboard_targets())
        assert "rate(referee_judge_calls_total" in exprs
        assert "increase(referee_judge_cost_usd_total[1h])" in exprs
        assert 'referee_judge_calls_total{outcome!="ok"}' in exprs
        assert "histogram_quantile(0.95" in exprs
        assert "referee_judge_call_duration_seconds_bucket" in exprs
        assert "referee_pending_pairs" in exprs

    def test_every_expression_names_only_metrics_and_labels_that_exist(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """Each PromQL metric, grouping label and legend label is in the /metrics output."""
        provider.configure(retry_after=0, fail_next=["429"])  # a retry and a 429 have series
        api.post("/v1/comparisons", json={**pair(0), "judge": JUDGE})
        metric_names: set[str] = set()
        label_names = {"le"}
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
            "gauge": ("",),
        }
        for family in text_string_to_metric_families(api.get("/metrics").text):
            base = family.name.removesuffix("_total")
            metric_names.update(base + suffix for suffix in suffixes.get(family.type, ("",)))
            for sample in family.samples:
                metric_names.add(sample.name)
                label_names.update(sample.labels)
        for target in dashboard_targets():
            expr = target["expr"]
            named = set(re.findall(r"\breferee_\w+", expr))
            assert named, expr
            assert named <= metric_names, (expr, named - metric_names)
            grouped = re.findall(r"\b(?:by|without|ignoring|on)\s*\(([^)]*)\)", expr)
            matchers = re.findall(r"\{([^}]*)\}", expr)
            used = {name.strip() for group in grouped for name in group.split(",") if name.strip()}
            used |= {m.split("=")[0].rstrip("!~").strip() for ms in matchers for m in ms.split(",")}
            used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"]))
            assert used <= label_names, (expr, used - label_names)


class TestSeveralServerProcesses:
    def test_serve_with_two_workers_counts_every_process(
        self, settings: Settings, database_url: str, tmp_path: Path
    ) -> None:
        """serve --workers 2: any process answering a scrape counts both processes' requests."""
        if not database_url.startswith("sqlite"):
            pytest.skip("the server processes, not the database, are under test")
        _, key = asyncio.run(create_key(settings, "prometheus", ["read"]))
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"],
            env={**os.environ, "REFEREE_DATABASE_URL": database_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base, served = f"http://127.0.0.1:{port}", 0
        try:
            deadline = time.monotonic() + 90
            while served < 20:
                try:
                    served += httpx.get(f"{base}/healthz", timeout=5).status_code == 200
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.2)
            headers = {"Authorization": f"Bearer {key}"}
            scrapes = [httpx.get(f"{base}/metrics", headers=headers, timeout=10) for _ in range(4)]
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
        for scrape in scrapes:
            found = samples(scrape.text)
            assert total(found, "referee_http_requests_total", route="/healthz") == served
            assert not [name for name, _ in found if name.startswith("python_gc")]  # the files'
