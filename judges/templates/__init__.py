"""Pairwise judging templates as data: YAML files, validated, content-addressed and rendered.

- :mod:`judges.templates.model`: a template, how it lays a request out and
  its worked examples (shots);
- :mod:`judges.templates.files`: the file schema, reading and validating
  files, the content-addressed ref;
- :mod:`judges.templates.library`: the templates a process serves, by ref
  or id, re-read when a file changes.
"""

from __future__ import annotations

from typing import Any

from judges.templates.files import (
    CRITERIA_FILE,
    LEGACY_REFS,
    MAX_DEPTH,
    MAX_FEW_SHOT_TOKENS,
    MAX_FILE_BYTES,
    TemplateError,
    TemplateScan,
    default_templates_dir,
    load_criteria,
    load_template,
    scan_templates,
    template_from_dict,
)
from judges.templates.library import (
    DEFAULT_TEMPLATE,
    TEMPLATES,
    get_template,
    template_ref,
    template_scan,
    use_template_folders,
)
from judges.templates.model import (
    CLOSING,
    DEFAULT_FEW_SHOT_TOKENS,
    PairwiseTemplate,
    content_hash,
    estimate_tokens,
    is_multi_turn,
    prior_turns,
)

__all__ = [
    "CLOSING",
    "CRITERIA_FILE",
    "DEFAULT_FEW_SHOT_TOKENS",
    "DEFAULT_TEMPLATE",
    "LEGACY_REFS",
    "MAX_DEPTH",
    "MAX_FEW_SHOT_TOKENS",
    "MAX_FILE_BYTES",
    "TEMPLATES",
    "PairwiseTemplate",
    "TemplateError",
    "TemplateScan",
    "content_hash",
    "default_templates_dir",
    "estimate_tokens",
    "get_template",
    "is_multi_turn",
    "load_criteria",
    "load_template",
    "prior_turns",
    "scan_templates",
    "template_from_dict",
    "template_ref",
    "template_scan",
    "use_template_folders",
]


def __getattr__(name: str) -> Any:
    """``PAIRWISE_V1``: the default template, read from its file when first asked for."""
    if name == "PAIRWISE_V1":
        return get_template(DEFAULT_TEMPLATE)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
