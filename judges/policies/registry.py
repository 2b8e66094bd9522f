"""Build a policy from its configuration: the built-in providers by name."""

from __future__ import annotations

from collections.abc import Callable

from judges.errors import UnknownJudgeError
from judges.policies.base import Policy, PolicyConfig


def _openai(config: PolicyConfig) -> Policy:
    from judges.backends.openai_policy import OpenAIPolicy

    return OpenAIPolicy(config)


def _anthropic(config: PolicyConfig) -> Policy:
    from judges.backends.anthropic_policy import AnthropicPolicy

    return AnthropicPolicy(config)


def _local(config: PolicyConfig) -> Policy:
    from judges.backends.local_policy import LocalPolicy

    return LocalPolicy(config)


PolicyFactory = Callable[[PolicyConfig], Policy]
BUILT_IN: dict[str, PolicyFactory] = {"openai": _openai, "anthropic": _anthropic, "local": _local}


def build_policy(config: PolicyConfig, extra: dict[str, PolicyFactory] | None = None) -> Policy:
    """The policy for ``config``; ``extra`` adds providers (tests register in-process ones).

    An unknown provider, a missing key or a model that cannot be a policy
    raises a :class:`judges.errors.JudgeConfigError` subclass naming the fix.
    """
    factories = {**BUILT_IN, **(extra or {})}
    factory = factories.get(config.provider)
    if factory is None:
        raise UnknownJudgeError(config.spec, list(factories))
    return factory(config)


def capabilities(provider: str, extra: dict[str, PolicyFactory] | None = None) -> tuple[bool, int]:
    """(native ``n``, samples per request at most) of a provider, without building a policy.

    A dry run uses it: it needs no key. Providers from ``extra`` are taken
    as one sample a request.
    """
    if provider == "openai":
        from judges.backends.openai_policy import OpenAIPolicy as Kind
    elif provider == "local":
        from judges.backends.local_policy import LocalPolicy as Kind  # type: ignore[assignment]
    elif provider == "anthropic" or provider in (extra or {}):
        return False, 1
    else:
        raise UnknownJudgeError(provider, [*BUILT_IN, *(extra or {})])
    return Kind.native_n, Kind.max_n
