"""Mutable server state: settings, seeded RNGs, fault selection, log, counters.

Everything here runs on the server's single event loop thread without awaits,
so no locking is needed.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .policies import POLICIES

FAULTS: frozenset[str] = frozenset({"500", "429", "529", "hang", "malformed", "refusal"})
# Faults answered with an HTTP error instead of a (possibly odd) 200 body.
ERROR_FAULTS: dict[str, int] = {"500": 500, "429": 429, "529": 529}
RPM_FAULT = "rpm_limit"  # pseudo-fault recorded for sliding-window 429s
WINDOW_SECONDS = 60.0


@dataclass
class Settings:
    policy: str = "first"
    policy_arg: str | None = None
    p_first: float | None = None
    model_policies: dict[str, str] = field(default_factory=dict)
    """Per model name, a policy in place of ``policy`` (the members of a jury)."""
    gold: dict[str, str] = field(default_factory=dict)
    """For the "gold" policy: policies.gold_answers(...) of the pairs to be judged."""
    p_gold: float = 1.0
    seed: int = 0
    latency_ms: float = 0.0
    fail_rates: dict[str, float] = field(default_factory=dict)
    fail_next: list[str] = field(default_factory=list)
    retry_after: float = 1
    hang_seconds: float = 3600.0
    rpm_limit: int | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    record: bool = True
    batch_delay_s: float = 0.0
    batch_fail_next: list[str] = field(default_factory=list)
    batch_errors: list[dict[str, Any]] = field(default_factory=list)
    """While set, every OpenAI batch created ends ``failed`` with these ``errors.data``."""
    candidate_variants: int | None = None
    """Distinct sampled texts per prompt at most (None: every sample its own); sampling.py."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


SETTING_NAMES: frozenset[str] = frozenset(f.name for f in fields(Settings))


def validate(update: dict[str, Any]) -> None:
    """Reject bad control input loudly; silent typos make tests lie."""
    unknown = set(update) - SETTING_NAMES
    if unknown:
        raise ValueError(f"unknown setting(s): {sorted(unknown)}")
    if "policy" in update and update["policy"] not in POLICIES:
        raise ValueError(f"policy must be one of {sorted(POLICIES)}")
    if set((update.get("model_policies") or {}).values()) - POLICIES:
        raise ValueError(f"model_policies values must be among {sorted(POLICIES)}")
    p_gold = update.get("p_gold")
    if p_gold is not None and not 0.0 <= float(p_gold) <= 1.0:
        raise ValueError("p_gold must be within [0, 1]")
    p_first = update.get("p_first")
    if p_first is not None and not 0.0 <= float(p_first) <= 1.0:
        raise ValueError("p_first must be within [0, 1]")
    bad = set(update.get("fail_rates") or {}) | set(update.get("fail_next") or [])
    bad -= FAULTS
    if bad:
        raise ValueError(f"unknown fault(s) {sorted(bad)}; known: {sorted(FAULTS)}")
    bad_batch = set(update.get("batch_fail_next") or []) - {
        "errored",
        "invalid",
        "expired",
        "canceled",
    }
    if bad_batch:
        raise ValueError(f"unknown batch outcome(s) {sorted(bad_batch)}")
    if any(not isinstance(e, dict) or "message" not in e for e in update.get("batch_errors") or []):
        raise ValueError("batch_errors are objects with a message (and code, line)")
    if sum((update.get("fail_rates") or {}).values()) > 1.0 + 1e-9:
        raise ValueError("fail_rates must sum to at most 1")


@dataclass
class Admission:
    """What happens to one request, decided when it arrives."""

    fault: str | None
    status: int
    retry_after: float | None = None


def _fresh_stats() -> dict[str, Any]:
    return {
        "total": 0,
        "by_api": {},
        "by_status": {},
        "by_fault": {},
        "rpm_limited": 0,
        "max_in_flight": 0,
    }


class ProviderState:
    def __init__(self, baseline: dict[str, Any] | None = None) -> None:
        # reset() returns to the settings the server was started with (e.g.
        # the CLI's --latency-ms), not to bare defaults, so a benchmark can
        # reset between runs without re-sending its configuration.
        base = baseline or {}
        validate(base)
        self._baseline = copy.deepcopy(base)
        self.settings = Settings()
        self.log: list[dict[str, Any]] = []
        self.stats: dict[str, Any] = _fresh_stats()
        self._window: deque[float] = deque()
        # Lives outside `stats` so a reset() while requests are in flight
        # cannot drive the gauge negative.
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.settings = Settings()
        self.log = []
        # Batches and uploaded files (tests/fake_provider/batches.py), and the
        # prompt-cache prefixes seen (caching.py): forgotten on reset like the log.
        self.batch_store: dict[str, Any] = {}
        self.prompt_cache: set[str] = set()
        self.stats = _fresh_stats()
        self.stats["max_in_flight"] = self.in_flight
        self._window.clear()
        self.configure(copy.deepcopy(self._baseline))
        self._reseed()

    def _reseed(self) -> None:
        # Separate streams: turning faults on must not change which verdicts
        # the "random" policy produces, and vice versa.
        self.policy_rng = random.Random(self.settings.seed)
        self.fault_rng = random.Random(self.settings.seed + 1_000_003)
        self.sample_rng = random.Random(self.settings.seed + 2_000_003)

    def configure(self, update: dict[str, Any]) -> None:
        validate(update)
        for name, value in update.items():
            if name == "outputs":
                # Merged by name (None deletes) so helpers can add one
                # scripted output at a time.
                for key, obj in (value or {}).items():
                    if obj is None:
                        self.settings.outputs.pop(key, None)
                    else:
                        self.settings.outputs[key] = obj
            elif name == "fail_next":
                self.settings.fail_next = list(value or [])
            elif name == "batch_fail_next":
                self.settings.batch_fail_next = list(value or [])
            elif name == "fail_rates":
                self.settings.fail_rates = {k: float(v) for k, v in (value or {}).items()}
            else:
                setattr(self.settings, name, value)
        if "seed" in update:
            self._reseed()

    def _rpm_retry_after(self, now: float) -> float | None:
        limit = self.settings.rpm_limit
        if limit is None:
            return None
        window = self._window
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        if len(window) >= limit:
            # Seconds until the oldest admitted request leaves the window.
            return float(max(1, math.ceil(window[0] + WINDOW_SECONDS - now)))
        window.append(now)
        return None

    def _draw_fault(self) -> str | None:
        rates = self.settings.fail_rates
        if not rates:
            return None  # no RNG draw: keeps the stream stable when unused
        u = self.fault_rng.random()
        acc = 0.0
        for fault, rate in rates.items():
            acc += rate
            if u < acc:
                return fault
        return None

    def admit(self, api: str) -> Admission:
        """Decide the fault for a new request and count it."""
        s = self.settings
        if s.fail_next:
            fault: str | None = s.fail_next.pop(0)
        else:
            rpm_wait = self._rpm_retry_after(time.monotonic())
            if rpm_wait is not None:
                return self.count(api, Admission(RPM_FAULT, 429, rpm_wait))
            fault = self._draw_fault()
        status = ERROR_FAULTS.get(fault or "", 200)
        retry = float(s.retry_after) if status == 429 else None
        return self.count(api, Admission(fault, status, retry))

    def count(self, api: str, adm: Admission) -> Admission:
        st = self.stats
        st["total"] += 1
        st["by_api"][api] = st["by_api"].get(api, 0) + 1
        key = str(adm.status)
        st["by_status"][key] = st["by_status"].get(key, 0) + 1
        if adm.fault is not None:
            st["by_fault"][adm.fault] = st["by_fault"].get(adm.fault, 0) + 1
        if adm.fault == RPM_FAULT:
            st["rpm_limited"] += 1
        return adm

    def enter(self) -> None:
        self.in_flight += 1
        if self.in_flight > self.stats["max_in_flight"]:
            self.stats["max_in_flight"] = self.in_flight

    def leave(self) -> None:
        self.in_flight -= 1

    def stats_json(self) -> dict[str, Any]:
        return {**self.stats, "in_flight": self.in_flight}
