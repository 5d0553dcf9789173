"""`kpi init DIR`: a new team's spec folder that validates, runs and tests as generated."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

from .errors import Diagnostic, KpiError, Location

SPEC = """\
# yaml-language-server: $schema=kpi.schema.json
# Your KPI specs. Check them with `kpi validate {name}`, run them with `kpi run {name}`,
# test them with `kpi test {name}`, and see `kpi lint {name}` for what would make them SMART.
version: 1
timezone: UTC              # the IANA zone periods are bucketed in
week_start: monday

sources:
  # A source is a table your KPIs read. `time` names the column that places each row in a period.
  # Other connectors: parquet, ndjson, sql (SQLite, DuckDB...); see `kpi plugins`.
  visits: {{connector: csv, path: data/visits.csv, time: ts}}

kpis:
  signup_rate:
    name: Sign-up rate
    description: Share of website visits that ended in a sign-up.
    owner: web-team                      # who is accountable
    stakeholders: [marketing]            # who relies on it
    unit: percent
    # Aggregates (sum, count, count_distinct, mean, median, min, max, quantile) over a source's columns,
    # with `where` filters; ratios are always recomputed from their sums, at every grain and dimension.
    formula: 100 * count(visits where signed_up) / count(visits)
    grain: week                          # day, week, month, quarter, year
    dimensions: [channel]                # one row per channel, plus a total
    key: true
    target:
      objective: "Lift sign-ups to 12% of visits by the end of {quarter_end:%B} with a shorter form."
      direction: increase
      baseline: {baseline}
      value: 12
      start: {start}
      deadline: {deadline}
    review: {{cadence: weekly, meeting: Weekly web review}}
"""

TEST = """\
# KPI fixture tests: a few rows per source and the values expected. Run them with `kpi test {name}`.
tests:
  signup_rate_is_signups_over_visits:
    as_of: 2026-01-11
    given:
      visits:
        - {{ts: "2026-01-05T09:00:00", channel: search, signed_up: true}}
        - {{ts: "2026-01-05T10:00:00", channel: search, signed_up: false}}
        - {{ts: "2026-01-06T11:00:00", channel: email, signed_up: false}}
        - {{ts: "2026-01-07T12:00:00", channel: email, signed_up: false}}
    expect:
      signup_rate:
        - {{period: 2026-W02, value: 25.0}}
        - {{period: 2026-W02, dims: {{channel: search}}, value: 50.0}}
        - {{period: 2026-W02, dims: {{channel: email}}, value: 0.0}}
"""


def sample_rows(start: dt.date, days: int) -> list[str]:
    """Seeded sample visits: about 40 a day over two channels, sign-ups slowly rising."""
    rng = random.Random(42)  # random.Random's sequence for a seed is stable across Python versions
    lines = ["ts,channel,signed_up"]
    for d in range(days):
        day = start + dt.timedelta(days=d)
        for i in range(40):
            channel = "search" if i % 3 else "email"
            rate = 0.085 + 0.02 * d / days + (0.03 if channel == "email" else 0.0)
            signed = rng.random() < rate
            lines.append(f"{day.isoformat()}T{8 + i % 12:02d}:{(i * 7) % 60:02d}:00,{channel},{str(signed).lower()}")
    return lines


def init(folder: Path, today: dt.date, schema: dict, force: bool = False) -> list[Path]:
    """Write the scaffold into ``folder``; refuses to overwrite existing files unless ``force``."""
    start = today.replace(day=1)
    quarter_end_month = ((today.month - 1) // 3 + 1) * 3
    deadline = dt.date(today.year + quarter_end_month // 12, quarter_end_month % 12 + 1, 1) - dt.timedelta(days=1)
    if deadline <= start + dt.timedelta(days=28):
        deadline = dt.date(deadline.year + (deadline.month + 3 > 12), (deadline.month + 2) % 12 + 1, 1) - dt.timedelta(
            days=1
        )
    files = {
        folder / "kpis.yaml": SPEC.format(
            name=folder, start=start, deadline=deadline, baseline=9.5, quarter_end=deadline
        ),
        folder / "kpis.test.yaml": TEST.format(name=folder),
        folder / "kpi.schema.json": json.dumps(schema, indent=2) + "\n",
        folder / "data" / "visits.csv": "\n".join(
            sample_rows(start - dt.timedelta(days=56), 56 + (today - start).days + 1)
        )
        + "\n",
        folder / ".gitignore": ".kpi/\n",
    }
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise KpiError(
            Diagnostic(
                "file already exists",
                Location(str(existing[0])),
                hint="choose an empty folder, or pass --force to overwrite the scaffold's files",
            )
        )
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
