"""Judge configuration: a ``provider:model`` spec plus options.

Only options that can change a verdict go into :meth:`JudgeConfig.fingerprint`,
which feeds the label key. Transport details (base URL, timeouts, retry and
rate-limit settings, a local model's device and batch size) do not: changing
them must not re-judge finished work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from judges.errors import JudgeConfigError
from judges.templates import DEFAULT_TEMPLATE, get_template, template_ref

OrderPolicy = Literal["both", "single"]
OutputMode = Literal["structured", "text"]
DTYPES = ("auto", "float32", "bfloat16", "float16")


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
    # Local (in-process) models only.
    device: str | None = None
    """``cuda``, ``cuda:1``, ``mps``, ``cpu``; ``None`` picks the best available."""
    dtype: str | None = None
    """One of :data:`DTYPES`; ``None`` is float32 on CPU and the checkpoint's own elsewhere."""
    batch_size: int = 16
    """Sequences per forward pass; concurrent calls are gathered up to this many."""
    max_length: int | None = None
    """Tokens a model reads at most (``None``: its context); longer prompts are cut on the left."""
    routes: dict[str, str] = field(default_factory=dict)
    """``metadata.category`` -> template (id or ref): a pair of that category is judged under it.

    Not in the fingerprint: a routed pair's key holds the template it is judged under.
    """

    def __post_init__(self) -> None:
        # The ref, not the name: the fingerprint (so the label key) names the words sent.
        object.__setattr__(self, "template", template_ref(self.template))
        routes = {str(k): template_ref(str(v)) for k, v in self.routes.items()}
        object.__setattr__(self, "routes", routes)

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def label(self) -> str:
        """How the judge is shown to people: its configured name or its spec."""
        return self.name or self.spec

    def fingerprint(self) -> dict[str, Any]:
        """The options that can change a verdict, for the label key.

        The local-model options that can (``dtype``, ``max_length``) are
        added only when set, so the keys of every other judge stay as they were.
        """
        local = {
            k: v
            for k, v in (("dtype", self.dtype), ("max_length", self.max_length))
            if v not in (None, "auto")
        }
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
            **local,
        }

    def parameters(self) -> dict[str, Any]:
        """What is stored with every call as its parameters."""
        return {k: v for k, v in self.fingerprint().items() if k not in ("provider", "model")}

    def with_options(self, **options: Any) -> JudgeConfig:
        return replace(self, **validate_options(options))

    def routed(self, metadata: dict[str, Any] | None) -> JudgeConfig:
        """This judge for a pair with this metadata: its category's template, if routed."""
        category = (metadata or {}).get("category")
        template = self.routes.get(category) if isinstance(category, str) else None
        return replace(self, template=template) if template else self


_OPTION_NAMES = {f.name for f in fields(JudgeConfig)} - {"provider", "model", "name"}
MAX_ROUTES = 64


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
    routes = options.get("routes", {})
    if not isinstance(routes, dict) or len(routes) > MAX_ROUTES:
        raise JudgeConfigError(
            f"judge option 'routes' maps metadata.category to a template (at most {MAX_ROUTES})"
        )
    for category, template in routes.items():
        if not isinstance(category, str) or not isinstance(template, str):
            raise JudgeConfigError("judge option 'routes': categories and templates are strings")
        get_template(template)
    if options.get("order", "both") not in ("both", "single"):
        raise JudgeConfigError("judge option 'order' must be 'both' or 'single'")
    if options.get("output", "structured") not in ("structured", "text"):
        raise JudgeConfigError("judge option 'output' must be 'structured' or 'text'")
    for key in ("max_tokens", "max_attempts", "batch_size", "max_length"):
        value = options.get(key)
        if key == "max_length" and value is None:
            continue  # the model's own context
        if key in options and (not isinstance(value, int) or value < 1):
            raise JudgeConfigError(f"judge option {key!r} must be a positive integer")
    if options.get("dtype") not in (None, *DTYPES):
        raise JudgeConfigError(f"judge option 'dtype' must be one of {', '.join(DTYPES)}")
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


def read_judges_file(path: Path) -> dict[str, Any]:
    """The ``judges`` mapping of a judges YAML file: named judges and juries, as written."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise JudgeConfigError(f"{path}: cannot read judge config: {exc}") from None
    entries = document.get("judges") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise JudgeConfigError(f"{path}: expected a top-level 'judges' mapping")
    return entries
