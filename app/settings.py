"""Settings from the environment (prefix ``REFEREE_``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from judges.cai.constitutions import default_constitutions_dir
from judges.templates import default_templates_dir

DEFAULT_DATABASE_URL = "sqlite:///./referee.db"
# The judge that works without any key: a small reward model run in process
# (the `local` extra), downloaded from the Hugging Face Hub on first use.
KEYLESS_DEFAULT_JUDGE = "local:Skywork/Skywork-Reward-V2-Qwen3-0.6B"
PROVIDER_KEY_VARS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")


class Settings(BaseSettings):
    """Process-wide configuration, read once at start-up."""

    model_config = SettingsConfigDict(env_prefix="REFEREE_", extra="ignore")

    auth: Literal["required", "off"] = Field(
        "required",
        description="required: every /v1 route needs an API key (`referee keys create`);"
        " off: no key checked, allowed only on a loopback address.",
    )
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite:///path or postgresql://user@host/db.",
    )
    judges_file: Path | None = Field(
        None, description="YAML file of named judges; ./judges.yaml is read when it exists."
    )
    default_judge: str | None = Field(None, description="Judge used when a request names none.")
    max_text_chars: int = Field(
        200_000, gt=0, description="Largest prompt or response accepted, in characters."
    )
    identical_responses: Literal["tie", "judge", "reject"] = Field(
        "tie",
        description="A pair whose responses are identical: tie (stored as a tie by rule, no"
        " judge call), judge (sent to the judge anyway) or reject.",
    )
    empty_texts: Literal["reject", "judge"] = Field(
        "reject",
        description="An empty or whitespace-only prompt or response: reject, or judge anyway.",
    )
    auto_migrate: bool = Field(
        False, description="Let `referee serve` upgrade an outdated schema instead of refusing."
    )
    api_worker_concurrency: int = Field(
        32, gt=0, description="Requests in flight for batches the API process works off itself."
    )
    constitutions_dir: Path | None = Field(
        None,
        description="Folder of more constitution YAML files, added to the shipped ones; an id"
        " defined in both is an error naming both files.",
    )
    shipped_constitutions: bool = Field(
        True,
        description="Serve the shipped constitutions/ (false: only those in"
        " REFEREE_CONSTITUTIONS_DIR).",
    )
    templates_dir: Path | None = Field(
        None,
        description="Folder of more judging template YAML files (and a criteria.yaml), added"
        " to the shipped templates/; an id defined in both is an error naming both files.",
    )
    redis_url: SecretStr | None = Field(
        None,
        description="Redis URL (redis://host:6379/0) through which every process shares the"
        " judges' --rpm/--tpm budgets; unset: through PostgreSQL, or per process on SQLite.",
    )
    max_criteria_chars: int = Field(
        4_000, ge=1, description="Longest `criteria` text a pair or a request may carry."
    )
    max_upload_mb: int = Field(
        512, gt=0, description="Largest bulk upload body (JSON array or JSONL) accepted, in MB."
    )
    max_body_mb: int = Field(
        8,
        gt=0,
        description="Largest body of any other request, in MB: refused (413) while it is read.",
    )
    max_metadata_kb: int = Field(
        64, gt=0, description="Largest `metadata` object accepted, in KB of compact JSON."
    )
    max_rubric_chars: int = Field(
        20_000, gt=0, description="Longest custom `rubric_text` accepted, in characters."
    )
    max_concurrent_exports: int = Field(
        4,
        gt=0,
        description="GET /v1/exports streams served at once (each holds two database"
        " connections); one more gets 429 with Retry-After.",
    )
    export_idle_timeout_s: float = Field(
        30.0,
        gt=0,
        description="An export whose client takes no data for this many seconds is cut off,"
        " releasing its connections and its slot.",
    )
    allow_adhoc_local: bool = Field(
        False,
        description="Let API clients name in-process judges (`local:<path or Hub id>`) that the"
        " judges file does not; the CLI always may.",
    )
    judge_cache_size: int = Field(
        64, ge=1, description="Judge instances (SDK clients, local models) kept; LRU, closed."
    )
    max_jury_members: int = Field(
        8, ge=2, description="Members of an inline jury one request may name."
    )
    max_principles: int = Field(
        8, ge=1, description="Constitution principles one comparison (or batch pair) may sample."
    )
    max_revision_rounds: int = Field(
        8, ge=1, description="Critique → revision rounds one revision request may ask for."
    )
    max_batch_pairs: int = Field(
        100_000,
        ge=1,
        description="Records (JSONL lines or array items) one POST /v1/batches may hold;"
        " more is a 422 before anything is stored.",
    )
    max_queue_items: int = Field(
        200_000,
        ge=1,
        description="Pairs one review queue may hold (a bigger selection is a 422: narrow it"
        " with a batch or a threshold); also the largest audit sample.",
    )
    session_secret: SecretStr | None = Field(
        None,
        description="Signs the review page's session cookies; unset, a random secret per"
        " process (sessions end when it restarts). Set it when several processes serve /review.",
    )
    review_session_hours: float = Field(
        12, gt=0, le=24 * 30, description="How long a review page sign-in lasts."
    )
    review_max_diff_words: int = Field(
        5_000,
        gt=0,
        description="Longest response (in words) the review page diffs word by word; longer"
        " pairs are shown without a diff (its cost grows with the product of the lengths).",
    )
    max_reward_items: int = Field(
        1024,
        ge=1,
        description="Items one POST /v1/rewards (or /get_reward) may hold; more is a 422.",
    )
    reward_max_in_flight: int = Field(
        128,
        ge=1,
        description="Reward items being judged at once, shared by every reward request of the"
        " process (a local reward model batches them into forward passes).",
    )
    reward_max_queued: int = Field(
        4096,
        ge=1,
        description="Reward items admitted and not finished; a request that would pass it gets"
        " 429 with Retry-After.",
    )
    reward_timeout_s: float = Field(
        60.0, gt=0, description="A reward request's deadline when it names no `timeout_s`."
    )
    reward_max_timeout_s: float = Field(
        600.0, gt=0, description="The longest `timeout_s` a reward request may ask for."
    )
    openrlhf_scorer: dict[str, Any] | None = Field(
        None,
        description='The scorer of POST /get_reward as JSON, e.g. `{"judge":'
        ' "openai:gpt-4o-mini", "kind": "rubric"}`; query parameters override it.',
    )
    max_generation_n: int = Field(
        16, ge=1, description="Samples per prompt one POST /v1/generations may ask for (`n`)."
    )
    max_generation_prompts: int = Field(
        1_000, ge=1, description="Prompts one POST /v1/generations may hold; more is a 422."
    )
    max_generation_tokens: int = Field(
        4_096,
        ge=1,
        description="`max_tokens` per sample one POST /v1/generations may ask for.",
    )
    max_running_rounds: int = Field(
        2,
        ge=1,
        description="Rounds the API process runs at once (each with up to 32 calls in flight);"
        " POST /v1/rounds for another is a 429 until one finishes.",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve the Prometheus metrics on this port (no key asked) instead of"
        " /metrics on the API's port (which needs a `read` key).",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="Interface of the metrics port (REFEREE_METRICS_PORT, --metrics-port);"
        " 0.0.0.0 lets a Prometheus on another host scrape it.",
    )
    db_pool_size: int = Field(10, gt=0)
    db_echo: bool = False

    @field_validator("database_url")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("REFEREE_DATABASE_URL is empty")
        return value.strip()

    def resolved_default_judge(self) -> str | None:
        """REFEREE_DEFAULT_JUDGE; else, when no provider key is set, the local reward model.

        With a key set and no default named, there is no default: which paid
        model to call is the operator's choice.
        """
        if self.default_judge:
            return self.default_judge
        if any(os.environ.get(name) for name in PROVIDER_KEY_VARS):
            return None
        return KEYLESS_DEFAULT_JUDGE

    def resolved_judges_file(self) -> Path | None:
        if self.judges_file is not None:
            return self.judges_file
        default = Path("judges.yaml")
        return default if default.exists() else None

    def constitution_folders(self) -> tuple[Path, ...]:
        """The shipped constitutions/ folder, then REFEREE_CONSTITUTIONS_DIR: both are served.

        The shipped folder sits beside the code in a checkout or an editable
        install; a wheel install has none (the Dockerfile copies it and points
        REFEREE_CONSTITUTIONS_DIR at the copy), and then it is left out.
        """
        shipped = default_constitutions_dir()
        folders = [shipped] if self.shipped_constitutions and shipped.is_dir() else []
        if self.constitutions_dir is not None and not any(
            _same_folder(self.constitutions_dir, f) for f in folders
        ):
            folders.append(self.constitutions_dir)
        return tuple(folders)

    def template_folders(self) -> tuple[Path, ...]:
        """The shipped templates/ folder (when beside the code), then REFEREE_TEMPLATES_DIR."""
        shipped = default_templates_dir()
        folders = [shipped] if shipped.is_dir() else []
        if self.templates_dir is not None and not any(
            _same_folder(self.templates_dir, f) for f in folders
        ):
            folders.append(self.templates_dir)
        return tuple(folders)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
