"""MkDocs hook: the HTTP API page and the settings table, generated from the code at build time.

The app is built with ``create_app()`` (no lifespan: no database, no provider)
and its OpenAPI document rendered route by route: the scope each route needs
(the app's own access table), parameters, request body, responses, then every
schema. The settings table comes from the settings class. Nothing here is
copied by hand, so the pages cannot drift from the code.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.hooks.openapi_page")

API_PAGE = "http-api.md"
INTRO = Path(__file__).with_name("http-api-intro.md")
SETTINGS_MARKER = "<!-- settings-table -->"
METHODS = ("get", "post", "put", "patch", "delete")
JSON = dict[str, Any]


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, API_PAGE, content=api_page()))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if SETTINGS_MARKER in markdown:
        return markdown.replace(SETTINGS_MARKER, settings_table())
    return markdown


# --- the HTTP API page -------------------------------------------------------------------------


def api_page() -> str:
    from app.api.app import create_app

    app = create_app()
    document: JSON = app.openapi()
    scopes = route_scopes()
    out = [INTRO.read_text(encoding="utf-8").rstrip(), ""]
    out += ["## Routes", "", "| route | scope | summary |", "|---|---|---|"]
    operations = list(iter_operations(document))
    for method, path, op in operations:
        anchor = operation_anchor(method, path)
        summary = cell(first_line(op.get("description") or op.get("summary", "")))
        scope = scopes.get((method.upper(), path), "open")
        out.append(f"| [`{method.upper()} {path}`](#{anchor}) | {scope} | {summary} |")
    out.append("")
    for method, path, op in operations:
        out += render_operation(method, path, op, scopes.get((method.upper(), path), "open"))
    out += ["## Schemas", ""]
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        out += render_schema(name, schema)
    return "\n".join(out) + "\n"


def route_scopes() -> dict[tuple[str, str], str]:
    """(METHOD, path) -> the scope the app checks; /v1 routes missing from the table need admin."""
    from app.api.deps import ROUTE_ACCESS

    scopes: dict[tuple[str, str], str] = {}
    for key, access in ROUTE_ACCESS.items():
        scopes[key] = f"`{access.scope}`" + (" (budget checked)" if access.spends else "")
    return scopes


def iter_operations(document: JSON) -> Any:
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def operation_anchor(method: str, path: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in f"{method}-{path}".lower())
    return "op-" + "-".join(part for part in slug.split("-") if part)


def render_operation(method: str, path: str, op: JSON, scope: str) -> list[str]:
    anchor = operation_anchor(method, path)
    out = [f"### `{method.upper()} {path}` {{#{anchor}}}", ""]
    if op.get("description"):
        out += [op["description"].strip(), ""]
    elif op.get("summary"):
        out += [op["summary"], ""]
    if scope == "open":
        out += ["**Scope:** none (always open).", ""]
    else:
        out += [f"**Scope:** {scope}.", ""]
    params = op.get("parameters", [])
    if params:
        out += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for p in params:
            schema = p.get("schema", {})
            out.append(
                f"| `{p['name']}` | {p['in']} | {cell(type_of(schema))} "
                f"| {'yes' if p.get('required') else 'no'} "
                f"| {cell(p.get('description') or schema.get('description', ''))}"
                f"{default_note(schema)} |"
            )
        out.append("")
    body = op.get("requestBody")
    if body:
        kinds = ", ".join(
            f"`{ctype}` {type_of(media.get('schema', {}))}".rstrip()
            for ctype, media in body.get("content", {}).items()
        )
        required = "required" if body.get("required") else "optional"
        out += [f"**Body** ({required}): {kinds}", ""]
    out += ["| status | description | body |", "|---|---|---|"]
    for status, response in sorted(op.get("responses", {}).items()):
        content = response.get("content", {})
        shapes = ", ".join(
            type_of(media.get("schema", {})) or f"`{ctype}`" for ctype, media in content.items()
        )
        out.append(f"| `{status}` | {cell(response.get('description', ''))} | {cell(shapes)} |")
    out.append("")
    return out


def render_schema(name: str, schema: JSON) -> list[str]:
    out = [f"### {name} {{#{schema_anchor(name)}}}", ""]
    if schema.get("description"):
        out += [cell(schema["description"]), ""]
    if "enum" in schema:
        values = ", ".join(f"`{v}`" for v in schema["enum"])
        return [*out, f"One of: {values}.", ""]
    properties: JSON = schema.get("properties", {})
    if not properties:
        return [*out, f"Type: {cell(type_of(schema)) or 'any'}.", ""]
    required = set(schema.get("required", []))
    out += ["| field | type | required | description |", "|---|---|---|---|"]
    for field, sub in properties.items():
        out.append(
            f"| `{field}` | {cell(type_of(sub))} | {'yes' if field in required else 'no'} "
            f"| {cell(sub.get('description', ''))}{default_note(sub)} |"
        )
    out.append("")
    return out


def schema_anchor(name: str) -> str:
    return "schema-" + "".join(c if c.isalnum() else "-" for c in name.lower())


def type_of(schema: JSON) -> str:
    """A short human reading of a JSON schema, linking referenced schemas."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{schema_anchor(name)})"
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            parts = [type_of(s) for s in schema[combinator]]
            return " or ".join(p for p in parts if p)
    if "enum" in schema:
        return " or ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type")
    if kind == "array":
        return f"list of {type_of(schema.get('items', {})) or 'any'}"
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        inner = type_of(extra) if isinstance(extra, dict) else ""
        return f"object of {inner}" if inner else "object"
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind:
        bounds = [
            f"{label} {schema[key]}"
            for key, label in (("minimum", "≥"), ("maximum", "≤"), ("maxLength", "max length"))
            if key in schema
        ]
        return str(kind) + (f" ({', '.join(bounds)})" if bounds else "")
    return ""


def default_note(schema: JSON) -> str:
    if "default" in schema and schema["default"] is not None:
        return f" Default: `{schema['default']}`."
    return ""


def first_line(text: str) -> str:
    return str(text).strip().split("\n\n", 1)[0].replace("\n", " ")


def cell(text: str) -> str:
    """Text fit for one table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


# --- the settings table ------------------------------------------------------------------------


def settings_table() -> str:
    from app.settings import Settings

    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "none" if default is None else f"`{default}`"
        rows.append(
            f"| `{(prefix + name).upper()}` | {cell(shown)} | {cell(field.description or '')} |"
        )
    return "\n".join(rows)
