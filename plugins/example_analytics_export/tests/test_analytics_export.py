"""Tests of the example plugin: register it as kpi-engine would, then evaluate a KPI over its files."""

from __future__ import annotations

import datetime as dt
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))  # the plugin folder, as if the package were installed

import kpi_analytics_export  # noqa: E402

import kpi_engine  # noqa: E402
from kpi_engine.plugins import build_registry  # noqa: E402


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    exports = tmp_path / "exports"
    exports.mkdir()
    days = {
        "2026-04-01": [("google", 100, 20), ("meta", 50, 5)],
        "2026-04-02": [("google", 80, 8)],
        "2026-05-03": [("meta", 10, 1)],
    }
    for day, rows in days.items():
        lines = ["utm_source,sessions,conversions"] + [f"{s},{n},{c}" for s, n, c in rows]
        (exports / f"analytics_{day}.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "kpis.yaml").write_text(
        textwrap.dedent("""
        version: 1
        sources:
          web: {connector: analytics_export, folder: exports, time: date}
        kpis:
          conversion_rate:
            unit: percent
            formula: 100 * sum(web.conversions) / sum(web.sessions)
            grain: month
            dimensions: [utm_source]
    """)
    )
    return tmp_path


def test_dates_come_from_file_names(project):
    registry = build_registry(extra=[kpi_analytics_export])
    res = kpi_engine.load(project, registry=registry).evaluate(dt.date(2026, 5, 31))
    frame = res["conversion_rate"]
    total = {r["period"]: r["value"] for r in frame.filter(frame["is_total"]).iter_rows(named=True)}
    assert total == {"2026-04": pytest.approx(100 * 33 / 230), "2026-05": pytest.approx(10.0)}


def test_bad_options_point_at_the_spec(project):
    registry = build_registry(extra=[kpi_analytics_export])
    spec = project / "kpis.yaml"
    spec.write_text(spec.read_text().replace("folder: exports", 'folder: exports, pattern: "*.tsv"'))
    with pytest.raises(kpi_engine.KpiError, match=r"kpis.yaml:4:\d+: no file matches `\*.tsv`"):
        kpi_engine.load(project, registry=registry)
    spec.write_text(spec.read_text().replace(', pattern: "*.tsv"', ", patern: x"))
    with pytest.raises(kpi_engine.KpiError, match="unknown field `patern`"):
        kpi_engine.load(project, registry=registry)
