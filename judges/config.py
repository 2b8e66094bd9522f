"""Judge configuration: a ``provider:model`` spec plus options.

Only options that can change a verdict go into :meth:`JudgeConfig.fingerprint`,
which feeds the label key. Transport details (base URL, timeouts, retry and
rate-limit settings) do not: changing them must not re-judge finished work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from judges.errors import JudgeConfigError
from judges.prompts import DEFAULT_TEMPLATE, get_template

OrderPolicy = Literal["both", "single"]
OutputMode = Literal["structured", "text"]


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """A fully resolved judge: which model, asked how."""

    provider: str
    model: str
    name: str | None = None
    temperature: float | None = 0.0
    max_tokens: int = 1024
    template: str = DEFAULT_TEMPLATE
    order: OrderPolicy = "both"
    output: OutputMode = "structured"
    logprobs: bool = False
    base_url: str | None = None
    timeout_s: float = 60.0
    max_attempts: int = 4
    rpm: float | None = None
    tpm: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def label(self) -> str:
        """How the judge is shown to people: its configured name or its spec."""
        return self.name or self.spec

    def fingerprint(self) -> dict[str, Any]:
        """The options that can change a verdict, for the label key."""
        return {
            "provider": self.provider,
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "template": self.template,
            "order": self.order,
            "output": self.output,
            "logprobs": self.logprobs,
            "extra": self.extra,
        }

    def parameters(self) -> dict[str, Any]:
        """What is stored with every call as its parameters."""
        return {k: v for k, v in self.fingerprint().items() if k not in ("provider", "model")}

    def with_options(self, **options: Any) -> JudgeConfig:
        return replace(self, **validate_options(options))


_OPTION_NAMES = {f.name for f in fields(JudgeConfig)} - {"provider", "model", "name"}


def validate_options(options: dict[str, Any]) -> dict[str, Any]:
    """Reject unknown or ill-typed judge options with a message naming the option."""
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise JudgeConfigError(
            f"unknown judge option(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_OPTION_NAMES))}"
        )
    if "template" in options:
        get_template(str(options["template"]))
    if options.get("order", "both") not in ("both", "single"):
        raise JudgeConfigError("judge option 'order' must be 'both' or 'single'")
    if options.get("output", "structured") not in ("structured", "text"):
        raise JudgeConfigError("judge option 'output' must be 'structured' or 'text'")
    for key in ("max_tokens", "max_attempts"):
        if key in options and (not isinstance(options[key], int) or options[key] < 1):
            raise JudgeConfigError(f"judge option {key!r} must be a positive integer")
    return options


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``provider:model``; the model part may itself contain colons."""
    provider, sep, model = spec.strip().partition(":")
    if not sep or not provider or not model:
        raise JudgeConfigError(
            f"judge spec {spec!r} is not provider:model (e.g. anthropic:claude-sonnet-4-5)"
        )
    return provider.lower(), model


def config_from_spec(spec: str, **options: Any) -> JudgeConfig:
    provider, model = parse_spec(spec)
    return JudgeConfig(provider=provider, model=model, **validate_options(options))


def config_as_dict(config: JudgeConfig) -> dict[str, Any]:
    return asdict(config)
