"""Constitutions as YAML, both ways: a strict reader and a writer the reader reads back equal.

Private to :mod:`judges.cai.constitutions`, whose :func:`load_constitution`
and :func:`to_yaml` use it. It works on plain data only, so it needs nothing
from that module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from judges.cai._schema import ConstitutionError


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key repeated in one mapping instead of keeping the last."""


def _unique_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, str):
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(path: Path) -> object:
    """The parsed YAML of ``path``; a :class:`ConstitutionError` with the line on bad syntax."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConstitutionError(f"cannot read the file: {exc}", file=str(path)) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConstitutionError(
            f"YAML syntax error: {exc.problem or exc.context}",
            file=str(path),
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise ConstitutionError(f"YAML syntax error: {exc}", file=str(path)) from None


class _Dumper(yaml.SafeDumper):
    """Multi-line text as ``|`` blocks, so written files read like the hand-made ones."""


def _represent_str(dumper: _Dumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    """A constitution's data without defaults and empty optional parts."""
    for principle in data["principles"]:
        if principle["weight"] == 1.0:
            del principle["weight"]
        if not principle["tags"]:
            del principle["tags"]
    for key, optional in (
        ("critique_examples", "revision"),
        ("preference_examples", "explanation"),
    ):
        for example in data[key]:
            if example[optional] is None:
                del example[optional]
        if not data[key]:
            del data[key]
    return data


def write_yaml(data: dict[str, Any], *, header: str | None = None) -> str:
    """YAML of a constitution's :meth:`~judges.cai.constitutions.Constitution.to_dict`.

    ``data`` is compacted in place. ``header`` lines are written first as
    ``#`` comments (comments are not content: they do not change the hash).
    """
    body = yaml.dump(_compact(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=88)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in (header or "").splitlines())
    return comment + body
