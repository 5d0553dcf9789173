"""Issue 13, item 7: all-time values (a KPI with no grain, as a MetricFlow query without metric_time).

`kpi run --all-time` gives each KPI one period, every day up to as-of, recomputed from its aggregates: a ratio
from all-time sums, a distinct count over all rows. Checked against DuckDB on the acceptance example.
"""

from __future__ import annotations

import json
import math

from click.testing import CliRunner

from kpi_engine.cli import main

AS_OF = "2026-06-30"


def run(example_dir, *args: str):
    return CliRunner().invoke(main, ["run", str(example_dir), "--as-of", AS_OF, "--all-time", *args])


def test_all_time_values_are_recomputed_from_all_rows(example_dir, duck):
    res = run(example_dir, "--kpi", "ctr", "--kpi", "unique_visitors", "--kpi", "cpl", "--format", "json")
    assert res.exit_code == 0, res.output
    kpis = {k["id"]: k for k in json.loads(res.output)["kpis"]}
    assert {k["grain"] for k in kpis.values()} == {"all_time"}
    assert all(k["status"] is None for k in kpis.values())  # targets are judged per period
    ctr = {(r["dims"] or {}).get("channel", "total"): r["value"] for r in kpis["ctr"]["series"]}
    rows = duck.execute(
        f"""SELECT coalesce(channel, 'total'), 100 * sum(clicks) / sum(impressions) FROM ads
            WHERE ts < DATE '{AS_OF}' + 1 GROUP BY ROLLUP (channel)"""
    ).fetchall()
    assert ctr.keys() == {c for c, _ in rows}
    assert all(math.isclose(ctr[c], v, rel_tol=1e-12) for c, v in rows)
    visitors = {(r["dims"] or {}).get("channel", "total"): r["value"] for r in kpis["unique_visitors"]["series"]}
    rows = duck.execute(
        f"""SELECT coalesce(channel, 'total'), count(DISTINCT visitor_id) FROM sessions
            WHERE ts < TIMESTAMPTZ '{AS_OF} 00:00:00+00' + INTERVAL 1 DAY GROUP BY ROLLUP (channel)"""
    ).fetchall()
    assert visitors == dict(rows)  # distinct over all rows: the total is no sum of the channels
    (cpl,) = kpis["cpl"]["series"]
    (expected,) = duck.execute(
        f"""SELECT (SELECT sum(cost) FROM ads WHERE ts < DATE '{AS_OF}' + 1)
                 / (SELECT count(*) FILTER (WHERE lead) FROM sessions
                    WHERE ts < TIMESTAMPTZ '{AS_OF} 00:00:00+00' + INTERVAL 1 DAY)"""
    ).fetchone()
    assert math.isclose(cpl["value"], expected, rel_tol=1e-12)
    first = duck.execute("SELECT min(ts)::DATE FROM ads").fetchone()[0]
    assert cpl["period"] == f"all time to {AS_OF}" and cpl["start"] == first.isoformat() and cpl["coverage"] == 1.0


def test_the_table_says_all_time(example_dir, duck):
    res = run(example_dir, "--kpi", "roi")
    assert res.exit_code == 0, res.output
    (roi,) = duck.execute(
        f"SELECT 100 * (sum(revenue) - sum(cost)) / sum(cost) FROM ads WHERE ts < DATE '{AS_OF}' + 1"
    ).fetchone()
    assert res.output.startswith("roi · percent · all time\n")
    assert f"│ all time to {AS_OF} │ {roi:.2f}% │" in res.output


def test_all_time_refuses_a_window_or_recording(example_dir):
    res = run(example_dir, "--from", "2026-01-01")
    assert res.exit_code == 2 and "--all-time covers every day up to as-of: leave out --from and --to" in res.output
    res = run(example_dir, "--record")
    assert res.exit_code == 2 and "leave out --record" in res.output
