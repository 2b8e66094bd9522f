"""The judge registry: providers from the ``referee.judges`` entry points, named judges from a file.

Built-in backends register through the same entry-point group as
third-party ones (see ``pyproject.toml``), so a plugin is a package with one
entry point. The registry is built at start-up, never at import, and keeps
one judge instance (one SDK client) per distinct configuration, in a bounded
least-recently-used cache: clients may name judges freely, and every
instance holds a client and its connection pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from judges.base import Judge
from judges.config import JudgeConfig, config_from_spec, parse_spec, read_judges_file
from judges.errors import JudgeConfigError, UnknownJudgeError
from judges.jury import (
    Jury,
    JuryConfig,
    PairJudgeConfig,
    is_jury_spec,
    jury_from_options,
    parse_jury_spec,
)
from judges.limits import RateLimits

log = logging.getLogger("referee.judges")
ENTRY_POINT_GROUP = "referee.judges"
JudgeFactory = Callable[[JudgeConfig], Judge]


def _on_first_use(ep: EntryPoint) -> JudgeFactory:
    def build(config: JudgeConfig) -> Judge:
        factory: JudgeFactory = ep.load()  # imported once; later loads find the module
        return factory(config)

    return build


DEFAULT_CACHE_SIZE = 64
# Config objects whose cache key is remembered (see JudgeRegistry._key).
KEY_MEMO_SIZE = 1024


class JudgeRegistry:
    """Resolves judge specs and names to configurations and shared judge instances.

    At most ``cache_size`` instances are kept; the least recently used one is
    evicted and closed, but only once no call on it is in flight (see
    :meth:`holding`).
    """

    def __init__(
        self,
        factories: Mapping[str, JudgeFactory] | None = None,
        named: Mapping[str, JudgeConfig] | None = None,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if cache_size < 1:
            raise JudgeConfigError(f"the judge cache size must be at least 1, got {cache_size}")
        self._factories: dict[str, JudgeFactory] = dict(factories or {})
        self._named: dict[str, JudgeConfig] = dict(named or {})
        self.cache_size = cache_size
        self._instances: OrderedDict[str, Judge] = OrderedDict()
        self._keys: dict[int, tuple[JudgeConfig, str]] = {}
        # Users in flight per instance (by id), and instances evicted while in use,
        # closed when their last user leaves.
        self._holds: dict[int, int] = {}
        self._retired: dict[int, Judge] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._unclosed: list[Judge] = []
        self._juries: dict[str, JuryConfig] = {}
        self._limits_for: Callable[[JudgeConfig], RateLimits] | None = None

    def share_limits(self, limits_for: Callable[[JudgeConfig], RateLimits]) -> None:
        """Build the rate limits of each judge with limits from now on with ``limits_for``
        (a budget shared with other processes, which the app provides)."""
        self._limits_for = limits_for

    @classmethod
    def from_entry_points(
        cls,
        named: Mapping[str, JudgeConfig] | None = None,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> JudgeRegistry:
        """Every provider registered under the ``referee.judges`` group, each imported when
        its first judge is built: a provider SDK takes most of a second to import."""
        factories: dict[str, JudgeFactory] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            factories[ep.name] = _on_first_use(ep)
        return cls(factories, named, cache_size=cache_size)

    def register(self, provider: str, factory: JudgeFactory) -> None:
        """Add or replace a provider (plugins and tests)."""
        self._factories[provider] = factory

    def add_named(self, config: JudgeConfig) -> None:
        if config.name is None:
            raise JudgeConfigError("a named judge needs a name")
        self._check_provider(config.spec, config.provider)
        self._named[config.name] = config

    def add_jury(self, config: JuryConfig) -> None:
        """Add a named jury (from the judges file); its members' providers must exist."""
        if config.name is None:
            raise JudgeConfigError("a named jury needs a name")
        for member in config.members:
            self._check_provider(member.spec, member.provider)
        self._juries[config.name] = config

    @property
    def juries(self) -> dict[str, JuryConfig]:
        return dict(self._juries)

    @property
    def providers(self) -> list[str]:
        return sorted(self._factories)

    @property
    def named(self) -> dict[str, JudgeConfig]:
        return dict(self._named)

    def resolve(self, spec_or_name: str, **options: Any) -> JudgeConfig:
        """A named judge from the config file, or a ``provider:model`` spec.

        Juries are refused here: they judge pairs only (:meth:`resolve_pairwise`).
        """
        if spec_or_name in self._juries or is_jury_spec(spec_or_name):
            raise JudgeConfigError(
                f"{spec_or_name!r} is a jury: juries judge pairs (compare, label, batches) only"
            )
        named = self._named.get(spec_or_name)
        if named is not None:
            return named.with_options(**options) if options else named
        if ":" not in spec_or_name:
            known = [*self.providers, *(f"{n} (named)" for n in self._named)]
            raise UnknownJudgeError(spec_or_name, known)
        provider, _ = parse_spec(spec_or_name)
        self._check_provider(spec_or_name, provider)
        return config_from_spec(spec_or_name, **options)

    def resolve_pairwise(self, spec_or_name: str, **options: Any) -> PairJudgeConfig:
        """A judge or a jury (named, or inline ``jury:m1,m2,…``) to judge pairs with."""
        jury = self._juries.get(spec_or_name)
        if jury is not None:
            return jury.with_options(**options) if options else jury
        if not is_jury_spec(spec_or_name):
            return self.resolve(spec_or_name, **options)
        references, jury_options = parse_jury_spec(spec_or_name)
        members = []
        for reference in references:
            if reference in self._juries or is_jury_spec(reference):
                raise JudgeConfigError(f"jury member {reference!r}: a jury cannot sit on a jury")
            members.append(self.resolve(reference, **options))
        return jury_from_options(members, jury_options)

    def jury(self, config: JuryConfig) -> Jury:
        """A jury ready to judge: each member's shared judge instance."""
        return Jury(config, tuple(self.judge(member) for member in config.members))

    def judge(self, config: JudgeConfig) -> Judge:
        """The shared judge instance for a configuration, built on first use.

        A caller that awaits calls on it should do so inside :meth:`holding`,
        entered with no ``await`` in between, so an eviction meanwhile
        cannot close it under the call.
        """
        key = self._key(config)
        judge = self._instances.get(key)
        if judge is not None:
            self._instances.move_to_end(key)
            return judge
        self._check_provider(config.spec, config.provider)
        judge = self._factories[config.provider](config)
        if self._limits_for is not None and (config.rpm or config.tpm):
            judge.limits = self._limits_for(config)
        self._instances[key] = judge
        while len(self._instances) > self.cache_size:
            _, evicted = self._instances.popitem(last=False)
            self._retire(evicted)
        return judge

    def _key(self, config: JudgeConfig) -> str:
        """The instance cache's key for ``config``, memoised by identity.

        The worker looks its judge up for every pair with the same config
        object, and serialising the whole config each time was a measurable
        share of its CPU. The config is kept beside its key, so its id is
        not reused while the entry lives.
        """
        known = self._keys.get(id(config))
        if known is not None and known[0] is config:
            return known[1]
        key = json.dumps(asdict(config), sort_keys=True, default=str)
        if len(self._keys) >= KEY_MEMO_SIZE:
            self._keys.clear()
        self._keys[id(config)] = (config, key)
        return key

    @property
    def cached(self) -> int:
        """Judge instances in the cache (not counting evicted ones still in use)."""
        return len(self._instances)

    @asynccontextmanager
    async def holding(self, *judges: Judge) -> AsyncIterator[None]:
        """Keep these instances open while the block runs: an eviction meanwhile
        defers their close until their last holder leaves."""
        for judge in judges:
            self._holds[id(judge)] = self._holds.get(id(judge), 0) + 1
        try:
            yield
        finally:
            for judge in judges:
                left = self._holds.pop(id(judge)) - 1
                if left:
                    self._holds[id(judge)] = left
                elif (retired := self._retired.pop(id(judge), None)) is not None:
                    self._close_soon(retired)

    def _retire(self, judge: Judge) -> None:
        if self._holds.get(id(judge)):
            self._retired[id(judge)] = judge
        else:
            self._close_soon(judge)

    def _close_soon(self, judge: Judge) -> None:
        """Close in a task of its own: eviction happens in synchronous code, and a
        cancelled holder must not leave the client open."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._unclosed.append(judge)  # built outside a loop: closed by aclose()
            return
        task = loop.create_task(judge.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("closing an evicted judge failed: %r", exc)

    async def wait_closed(self) -> None:
        """Wait until every evicted instance that nobody holds has been closed."""
        unclosed, self._unclosed = self._unclosed, []
        for judge in unclosed:
            await judge.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def aclose(self) -> None:
        """Close every instance, cached, evicted or still held (the process is ending)."""
        judges = [*self._instances.values(), *self._retired.values()]
        self._instances.clear()
        self._retired.clear()
        for judge in judges:
            await judge.aclose()
        await self.wait_closed()

    def _check_provider(self, spec: str, provider: str) -> None:
        if provider not in self._factories:
            raise UnknownJudgeError(spec, self.providers)


def load_named_judges(path: Path) -> dict[str, JudgeConfig]:
    """Read named judges from a YAML file.

    ```yaml
    judges:
      fast:
        spec: openai:gpt-4o-mini
        temperature: 0
        logprobs: true
      local-vllm:
        spec: openai:Qwen/Qwen2.5-7B-Instruct
        base_url: http://localhost:8000/v1
    ```
    """
    entries = read_judges_file(path)
    named: dict[str, JudgeConfig] = {}
    for name, entry in entries.items():
        if isinstance(entry, dict) and "members" in entry:
            continue  # a jury: judges.jury.load_juries reads it
        if not isinstance(entry, dict) or "spec" not in entry:
            raise JudgeConfigError(f"{path}: judge {name!r}: field 'spec' is required")
        options = {k: v for k, v in entry.items() if k != "spec"}
        try:
            config = config_from_spec(str(entry["spec"]), **options)
        except JudgeConfigError as exc:
            raise JudgeConfigError(f"{path}: judge {name!r}: {exc.message}") from None
        named[str(name)] = JudgeConfig(**{**asdict(config), "name": str(name)})
    return named
