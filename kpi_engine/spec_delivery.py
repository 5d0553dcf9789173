"""The delivery part of a spec: ``channels:`` (where messages can go), ``delivery:`` (which go where) and the
alert conditions (``alerts:`` of a KPI and of the project)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from .channels import ENV_REF
from .errors import ErrorCollector, did_you_mean
from .model import AlertSettings, AlertSpec, ChannelSpec, DeliverySpec
from .yaml_loader import Positions


def read_channels(
    data: Mapping[str, Any],
    pos: Positions,
    schemas: Mapping[str, Mapping[str, Any]],
    seen: dict[str, ChannelSpec],
    errors: ErrorCollector,
) -> None:
    """Add the file's channels to ``seen``; a duplicate name or a secret written in the spec is an error."""
    for name, body in (data.get("channels") or {}).items():
        loc = pos.location(("channels", name), key=True)
        if name in seen:
            first = seen[name].loc()
            errors.add(f"duplicate channel `{name}`", loc, hint=f"first defined at {first.file}:{first.line}")
            continue
        locations = {"": loc, **{k: pos.location(("channels", name, k)) for k in body}}
        spec = ChannelSpec(name, body["type"], {k: v for k, v in body.items() if k != "type"}, locations)
        seen[name] = spec
        _literal_secrets(spec, schemas.get(spec.type, {}), errors)


def secret_options(fragment: Mapping[str, Any]) -> list[str]:
    """The options a channel type marks ``"secret": true`` in its schema (passwords, webhook URLs, headers)."""
    return [k for k, v in fragment.get("properties", {}).items() if isinstance(v, Mapping) and v.get("secret")]


def _literal_secrets(spec: ChannelSpec, fragment: Mapping[str, Any], errors: ErrorCollector) -> None:
    for key in secret_options(fragment):
        value = spec.options.get(key)
        if value is None:
            continue
        values = value.values() if isinstance(value, Mapping) else [value]
        if all(isinstance(v, str) and ENV_REF.fullmatch(v.strip()) for v in values):
            continue
        var = re.sub(r"[^A-Z0-9]+", "_", f"{spec.name}_{key}".upper())
        errors.add(
            f"channel `{spec.name}` has its `{key}` written in the spec; secrets come from environment variables "
            "only, so that they never land in the repository",
            spec.loc(key),
            expected="${env:NAME}" if not isinstance(value, Mapping) else "every value as ${env:NAME}",
            hint=f"write `{key}: ${{env:{var}}}` and export {var} where `kpi send` runs (in CI: a secret)",
        )


def read_delivery(data: Mapping[str, Any], pos: Positions, current: DeliverySpec | None) -> DeliverySpec | None:
    """The file's ``delivery:`` (None without one)."""
    body = data.get("delivery")
    if body is None:
        return current
    locations = {"": pos.location(("delivery",), key=True)}
    for key in ("channels", "meetings", "owners"):
        if key in body:
            locations[key] = pos.location(("delivery", key))
    for key in ("meetings", "owners"):
        for name in body.get(key) or {}:
            locations[f"{key}.{name}"] = pos.location(("delivery", key, name))
    return DeliverySpec(
        tuple(body.get("channels") or ()),
        {k: tuple(v) for k, v in (body.get("meetings") or {}).items()},
        {k: tuple(v) for k, v in (body.get("owners") or {}).items()},
        locations,
    )


def check_delivery(
    delivery: DeliverySpec,
    channels: Mapping[str, ChannelSpec],
    meetings: set[str],
    errors: ErrorCollector,
    unchecked: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Every channel ``delivery:`` names is declared, and every meeting it routes is one a KPI is reviewed in
    (a channel dropped for an error already reported is not reported again)."""
    named = [("channels", "channels", delivery.channels)]
    named += [("meetings", f"meetings.{m}", v) for m, v in delivery.meetings.items()]
    named += [("owners", f"owners.{o}", v) for o, v in delivery.owners.items()]
    for _, key, names in named:
        for name in names:
            if name not in channels and name not in unchecked:
                errors.add(
                    f"delivery names unknown channel `{name}`",
                    delivery.loc(key),
                    hint=did_you_mean(name, channels, "channels") or "declare it under `channels:`",
                )
    for meeting in delivery.meetings:
        if meetings and meeting not in meetings:
            errors.add(
                f"delivery routes meeting `{meeting}`, which no KPI is reviewed in",
                delivery.loc(f"meetings.{meeting}"),
                hint=did_you_mean(meeting, meetings, "meetings") or "check the KPIs' `review: {meeting: ...}`",
            )


_CHANGE = re.compile(r"\s*(\+-|\+|-|±)?\s*([0-9]+(?:\.[0-9]+)?)\s*(%|pp)\s*")


def alert_specs(items: Any) -> tuple[AlertSpec, ...]:
    """Alert conditions as written (already checked by the schema) as typed objects."""
    out = []
    for item in items or ():
        if item in ("status", "anomaly"):
            out.append(AlertSpec(item))
        elif "anomaly" in item:
            out.append(AlertSpec("anomaly", float(item["anomaly"]), by=item.get("by", "period")))
        elif "above" in item or "below" in item:
            kind = "above" if "above" in item else "below"
            out.append(AlertSpec(kind, float(item[kind])))
        elif "stale" in item:
            out.append(AlertSpec("stale", float(item["stale"])))
        elif "change" in item:
            match = _CHANGE.fullmatch(str(item["change"]))
            if match is None:  # the schema's pattern and this one agree; a mismatch is a bug, not input
                raise ValueError(f"unparsed change {item['change']!r}")
            sign, number, unit = match.groups()
            value = float(number) * (-1 if sign == "-" else 1)
            out.append(AlertSpec("change", value, item.get("vs", "previous"), sign in ("±", "+-"), unit == "pp"))
    return tuple(out)


def read_alert_settings(data: Mapping[str, Any], current: AlertSettings | None) -> AlertSettings | None:
    """The file's project-wide ``alerts:`` (None without one)."""
    body = data.get("alerts")
    if body is None:
        return current
    quiet = None
    if body.get("quiet_hours"):
        start, end = body["quiet_hours"].split("-")
        quiet = (dt.time.fromisoformat(start), dt.time.fromisoformat(end))
    return AlertSettings(alert_specs(body.get("every_kpi")), quiet, body.get("renotify_hours"))
