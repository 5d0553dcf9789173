"""First-party `demo` connector: seeded, realistic marketing data generated on first use and cached.

Two years of daily ad delivery per channel and campaign, web sessions with UTM sources, support tickets,
social mentions, CRM leads, orders of returning customers, CSAT/NPS survey answers, a brand awareness
survey and a customer feedback export that stops early (stale), with weekly and yearly seasonality, a
campaign launch on 2026-03-02, a channel that improves (social) and one that degrades (display).
Nothing is downloaded and nothing is committed: the Parquet files are written to a cache folder
(``KPI_ENGINE_CACHE``, default ``~/.cache/kpi-engine``).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl

from kpi_engine import Connector, Env, ScanRequest, SourceSpec, cache_dir, hookimpl

GENERATOR_VERSION = 5
TABLES = (
    "ad_events",
    "sessions",
    "support_tickets",
    "social_mentions",
    "crm_leads",
    "orders",
    "survey_responses",
    "brand_survey",
    "feedback",
)


def demo_path(table: str, seed: int, scale: float, start: dt.date, days: int) -> Path:
    """The cached Parquet file of one demo table, generating all tables of that variant when missing."""
    folder = cache_dir() / f"demo-v{GENERATOR_VERSION}-seed{seed}-scale{scale:g}-{start}-{days}d"
    path = folder / f"{table}.parquet"
    if not path.exists():
        from .generate import generate  # numpy only when data must be made

        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in generate(seed, scale, start, days).items():
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            frame.write_parquet(tmp)
            os.replace(tmp, folder / f"{name}.parquet")
    return path


class DemoConnector(Connector):
    name = "demo"
    description = "Seeded demo marketing data (ads, sessions, tickets, mentions), generated once and cached."
    options_schema = {
        "properties": {
            "table": {"enum": sorted(TABLES)},
            "seed": {"type": "integer", "minimum": 0},
            "scale": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 1000,
                "description": "Row-count multiplier (1 = about 600k rows in all).",
            },
            "start": {"type": "string", "format": "date", "description": "First day of data (default 2024-07-01)."},
            "days": {"type": "integer", "minimum": 1, "maximum": 3660, "description": "Days of data (default 730)."},
        },
        "required": ["table"],
    }

    def _path(self, source: SourceSpec) -> Path:
        opts = source.options
        start = dt.date.fromisoformat(opts.get("start", "2024-07-01"))
        return demo_path(
            opts["table"], int(opts.get("seed", 42)), float(opts.get("scale", 1)), start, int(opts.get("days", 730))
        )

    def schema(self, source: SourceSpec, env: Env) -> pl.Schema:
        return pl.scan_parquet(self._path(source)).collect_schema()

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        return pl.scan_parquet(self._path(source))


@hookimpl
def register_connectors(register) -> None:  # type: ignore[no-untyped-def]
    register(DemoConnector())
