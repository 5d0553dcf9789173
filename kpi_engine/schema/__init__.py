"""The JSON Schema of spec files (shipped as package data) and its errors explained with YAML positions."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from ..errors import Diagnostic, did_you_mean
from ..spec_dates import MAX_DATE, MIN_DATE
from ..yaml_loader import Positions


@cache
def base_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file without connector options (shipped as package data)."""
    text = resources.files("kpi_engine").joinpath("schema/spec.schema.json").read_text("utf-8")
    return json.loads(text)


def full_schema(
    connectors: Mapping[str, Mapping[str, Any]], channels: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The spec schema with each connector's option schema attached (what `kpi schema` prints), for sources
    (which need a time column) and lookups (which need a key instead), and each channel type's options."""
    schema = json.loads(json.dumps(base_schema()))
    if channels is not None:
        _attach_channels(schema, channels)
    for kind, needs in (("source", "time"), ("lookup", "key")):
        definition = schema["$defs"][kind]
        base_props = definition["properties"]
        definition["properties"]["connector"] = {
            "enum": sorted(connectors),
            "description": base_props["connector"]["description"],
        }
        branches = []
        for name, fragment in sorted(connectors.items()):
            props = {**base_props, **fragment.get("properties", {})}
            branches.append(
                {
                    "if": {"properties": {"connector": {"const": name}}, "required": ["connector"]},
                    "then": {
                        "properties": props,
                        "required": sorted({"connector", needs, *fragment.get("required", [])}),
                        "additionalProperties": False,
                    },
                }
            )
        if branches:
            definition["allOf"] = branches
    return schema


def _attach_channels(schema: dict[str, Any], channels: Mapping[str, Mapping[str, Any]]) -> None:
    """``channels:`` entries checked against their type's options: a misspelt option or type gets its hint."""
    definition = schema["$defs"]["channel"]
    base_props = definition["properties"]
    base_props["type"] = {"enum": sorted(channels), "description": base_props["type"]["description"]}
    definition["allOf"] = [
        {
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": {
                "properties": {**base_props, **fragment.get("properties", {})},
                "required": sorted({"type", *fragment.get("required", [])}),
                "additionalProperties": False,
            },
        }
        for name, fragment in sorted(channels.items())
    ]


def schema_errors(data: Any, schema: dict[str, Any], pos: Positions) -> list[Diagnostic]:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    out: list[Diagnostic] = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        out.extend(_explain(err, pos))
    seen: set[str] = set()
    unique = []
    for d in out:
        if d.render() not in seen:
            seen.add(d.render())
            unique.append(d)
    return unique


def error_paths(data: Any, schema: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Where each schema error is (an invalid key's own path for a bad name), to salvage the rest."""
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    out = []
    for err in validator.iter_errors(data):
        path = tuple(err.absolute_path)
        out.append(path + (err.instance,) if "propertyNames" in err.relative_schema_path else path)
    return out


_REPAIRED = {"grain": "day", "unit": "number"}  # stand-ins so that the KPI's formula is still checked
_OPTIONAL = {"target", "review", "events", "notes", "name", "owner", "stakeholders", "description", "kind", "key"}
_OPTIONAL |= {"missing", "role"}


def salvage(data: Any, paths: list[tuple[Any, ...]], unchecked: set[str]) -> Any:
    """``data`` without the parts the schema refused (already reported), or None when nothing is usable."""
    if not isinstance(data, dict):
        return None
    data = copy.deepcopy(data)
    for path in paths:
        if not path:
            return None
        section = data.get(path[0])
        if path[0] in ("kpis", "sources", "params", "channels") and len(path) >= 2 and isinstance(section, dict):
            body = section.get(path[1])
            if path[0] == "kpis" and len(path) >= 3 and isinstance(body, dict) and path[2] in _REPAIRED:
                body[path[2]] = _REPAIRED[path[2]]
            elif path[0] == "kpis" and len(path) >= 3 and isinstance(body, dict) and path[2] in _OPTIONAL:
                body.pop(path[2], None)
            elif path[1] in section:
                del section[path[1]]
                unchecked.add(str(path[1]))
        else:
            if path[0] in ("kpis", "sources", "params", "channels") and isinstance(section, dict):
                unchecked.update(map(str, section))
            data.pop(path[0], None)
    return data if "version" in data or data else None


def _explain(err: jsonschema.ValidationError, pos: Positions) -> list[Diagnostic]:
    path = tuple(err.absolute_path)
    v, schema = err.validator, err.schema
    if "propertyNames" in err.relative_schema_path:
        name = str(err.instance)
        return [
            Diagnostic(
                f"invalid name `{name}`",
                pos.location(path + (name,), key=True),
                expected="lower-case snake_case: a letter, then letters, digits or _ (at most 64)",
                hint=f"try `{_snake(name)}`",
            )
        ]
    if v == "allOf" or v == "if":
        return []
    if v == "additionalProperties" and isinstance(err.instance, dict):
        allowed = list(schema.get("properties", {}))
        extra = [k for k in err.instance if k not in allowed and not _matches_pattern(k, schema)]
        return [
            Diagnostic(
                f"unknown field `{k}`",
                pos.location(path + (k,), key=True),
                expected="one of: " + ", ".join(allowed),
                hint=did_you_mean(k, allowed)
                or (
                    'inside `{...}` a comma ends a value: quote the value before it, e.g. objective: "Sell 2,400 units"'
                    if " " in k or k[:1].isdigit()
                    else "remove it"
                ),
            )
            for k in extra
        ]
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return [Diagnostic(f"missing required field `{missing}`", pos.location(path), hint=_required_hint(missing))]
    if v == "enum":
        options = [str(o) for o in schema["enum"]]
        return [
            Diagnostic(
                f"invalid value `{err.instance}`",
                pos.location(path),
                expected="one of: " + ", ".join(options),
                hint=did_you_mean(str(err.instance), options),
            )
        ]
    if v == "const":
        return [Diagnostic(f"invalid value `{err.instance}`", pos.location(path), expected=f"`{schema['const']}`")]
    if v == "type":
        expected = schema["type"] if isinstance(schema["type"], str) else " or ".join(schema["type"])
        found = type(err.instance).__name__.replace("str", "string").replace("dict", "mapping").replace("list", "list")
        return [
            Diagnostic(
                f"wrong type: found {found} `{_short(err.instance)}`",
                pos.location(path),
                expected=_TYPE_WORDS.get(expected, expected),
            )
        ]
    if v == "format" and schema.get("format") == "date":
        return [
            Diagnostic(
                f"invalid date `{err.instance}`",
                pos.location(path),
                expected="a date YYYY-MM-DD",
                hint="for example 2026-06-30",
            )
        ]
    return _explain_value(err, pos, path) or [Diagnostic(err.message, pos.location(path))]


def _explain_value(err: jsonschema.ValidationError, pos: Positions, path: tuple) -> list[Diagnostic] | None:
    """Errors about one value's content (a date out of range, a control character, a pattern or a choice of
    forms), said with what the field expects."""
    v, schema = err.validator, err.schema
    if v == "pattern" and schema.get("pattern", "").startswith("^(19|20|21)"):
        return [
            Diagnostic(
                f"date `{err.instance}` is outside the dates the engine reads",
                pos.location(path),
                expected=f"a date from {MIN_DATE} to {MAX_DATE}",
            )
        ]
    if v == "pattern" and schema.get("pattern", "").startswith("^[^\\u0000"):
        char = next(c for c in str(err.instance) if ord(c) < 32 or ord(c) == 127)
        return [
            Diagnostic(
                f"`{path[-1]}` holds a control character ({char!r})",
                pos.location(path),
                expected="one line of text",
                hint="remove the line break or control character: names, owners and meetings go into report "
                "tables and e-mail headers",
            )
        ]
    if v in ("pattern", "oneOf", "anyOf", "minLength", "maxLength", "minItems") and schema.get("description"):
        return [
            Diagnostic(f"invalid value `{_short(err.instance)}`", pos.location(path), expected=schema["description"])
        ]
    if v in ("pattern", "oneOf", "anyOf", "minLength", "maxLength", "minItems"):
        parent = _parent_description(err)
        if parent:
            return [Diagnostic(f"invalid value `{_short(err.instance)}`", pos.location(path), expected=parent)]
    return None


def _parent_description(err: jsonschema.ValidationError) -> str | None:
    """The description of the property whose (sub)schema refused the value, when the failing part has none."""
    while err.parent is not None:
        err = err.parent
        if isinstance(err.schema, dict) and err.schema.get("description"):
            return str(err.schema["description"])
    return None


_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
}


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) < 40 else text[:37] + "..."


def _snake(name: str) -> str:
    s = re.sub(r"[^0-9a-zA-Z]+", "_", re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)).strip("_").lower()
    return s if s and s[0].isalpha() else f"k_{s}"


def _matches_pattern(key: str, schema: Mapping[str, Any]) -> bool:
    return any(re.search(p, key) for p in schema.get("patternProperties", {}))


def _required_hint(field_name: str) -> str | None:
    return {
        "version": "start the file with `version: 1`",
        "formula": "e.g. formula: 100 * sum(ads.clicks) / sum(ads.impressions)",
        "grain": "one of day, week, month, quarter, year",
        "unit": "e.g. unit: percent (or currency, count, ratio, score, minutes...)",
        "time": "name the timestamp column that places rows in periods, e.g. time: ts",
        "connector": "e.g. connector: parquet (see `kpi plugins`)",
    }.get(field_name)
