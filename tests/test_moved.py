"""Why it moved: a ratio's change split into rate and mix effects per dimension value, a sum's into each
value's change; checked against independent computations (plain Python on the rows, DuckDB SQL)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import polars as pl
import pytest

import kpi_engine
from conftest import require, write_spec
from kpi_engine import moved

D = dt.datetime
# two weeks: `c` appears in the second, `b` has no impressions in the first, some rows have no channel
ROWS = [
    (D(2026, 6, 1, 9), "a", 1000, 30), (D(2026, 6, 2, 9), "a", 500, 10), (D(2026, 6, 3, 9), "b", 0, 0),
    (D(2026, 6, 4, 9), None, 200, 8), (D(2026, 6, 5, 9), "a", 300, 3),
    (D(2026, 6, 8, 9), "a", 900, 18), (D(2026, 6, 9, 9), "b", 700, 35), (D(2026, 6, 10, 9), "c", 400, 2),
    (D(2026, 6, 11, 9), None, 100, 1), (D(2026, 6, 12, 9), "b", 100, 9),
]  # fmt: skip
SPEC = """
version: 1
sources:
  ads: {connector: dataframe, time: ts}
kpis:
  ctr: {unit: percent, formula: 100 * sum(ads.clicks) / sum(ads.impressions), grain: week, dimensions: [channel]}
  clicks: {unit: count, formula: sum(ads.clicks), grain: week, dimensions: [channel]}
  per_thousand: {unit: number, formula: clicks / (sum(ads.impressions) / 1000), grain: week, dimensions: [channel]}
  ctr_scaled_first: {unit: percent, formula: 100 * (sum(ads.clicks) / sum(ads.impressions)), grain: week, dimensions: [channel]}
  ctr_scaled_last: {unit: percent, formula: (sum(ads.clicks) / sum(ads.impressions)) * 100, grain: week, dimensions: [channel]}
  reach: {unit: count, formula: count_distinct(ads.channel), grain: week, dimensions: [channel]}
"""


def frame() -> pl.DataFrame:
    return pl.DataFrame(ROWS, schema=["ts", "channel", "impressions", "clicks"], orient="row")


def by_hand(week: int, scale: float) -> tuple[dict[str, tuple[float, float]], float]:
    """(impressions, clicks) per channel ("(none)" for null) and the week's ratio, from the rows."""
    parts: dict[str, tuple[float, float]] = {}
    for ts, ch, imp, clk in ROWS:
        if ts.isocalendar()[1] == week:
            i, c = parts.get(ch or "(none)", (0, 0))
            parts[ch or "(none)"] = (i + imp, c + clk)
    total_i = sum(i for i, _ in parts.values())
    total_c = sum(c for _, c in parts.values())
    return parts, scale * total_c / total_i


@pytest.mark.parametrize(
    ("kpi", "scale"), [("ctr", 100.0), ("per_thousand", 1000.0), ("ctr_scaled_first", 100.0), ("ctr_scaled_last", 100.0)]
)
def test_ratio_rate_and_mix_effects_match_the_textbook_split(tmp_path, kpi, scale):
    result = kpi_engine.load(write_spec(tmp_path, SPEC), frames={"ads": frame()}).evaluate(
        dt.date(2026, 6, 14), moves=True
    )
    (m,) = moved.explain(result, result.project.kpis[kpi], dt.date(2026, 6, 8), dt.date(2026, 6, 1), "previous")
    p0, big0 = by_hand(23, scale)
    p1, big1 = by_hand(24, scale)
    assert m.kind == "ratio" and m.before == pytest.approx(big0, rel=1e-12) and m.after == pytest.approx(big1, rel=1e-12)
    series = result[kpi].filter(pl.col("is_total")).sort("start")["value"].to_list()
    assert series[-2:] == pytest.approx([big0, big1], rel=1e-12)  # the parts rebuild the KPI's own values
    mid = (big0 + big1) / 2
    tot0, tot1 = sum(i for i, _ in p0.values()), sum(i for i, _ in p1.values())
    expected = {}
    for ch in set(p0) | set(p1):
        i0, c0 = p0.get(ch, (0, 0))
        i1, c1 = p1.get(ch, (0, 0))
        r0 = scale * c0 / i0 if i0 else None
        r1 = scale * c1 / i1 if i1 else None
        r0, r1 = (r0 if r0 is not None else r1), (r1 if r1 is not None else r0)
        w0, w1 = i0 / tot0, i1 / tot1
        expected[ch] = ((r1 - r0) * (w0 + w1) / 2, (w1 - w0) * ((r0 + r1) / 2 - mid))
    got = {e.value: (e.rate, e.mix) for e in m.effects}
    assert set(got) == {"a", "b", "c", "(none)"}
    for ch, (rate, mix) in expected.items():
        assert got[ch] == pytest.approx((rate, mix), rel=1e-9, abs=1e-12), ch
    assert got["c"][0] == 0 and got["b"][0] == 0  # new in week 2 / no impressions in week 1: all mix
    assert sum(e.change for e in m.effects) == pytest.approx(big1 - big0, rel=1e-12, abs=1e-15)
    assert m.text(kpi).startswith(f"{kpi} {'+' if big1 > big0 else '-'}")


def test_sum_changes_split_by_value_and_other_shapes_do_not(tmp_path):
    result = kpi_engine.load(write_spec(tmp_path, SPEC), frames={"ads": frame()}).evaluate(
        dt.date(2026, 6, 14), moves=True
    )
    (m,) = moved.explain(result, result.project.kpis["clicks"], dt.date(2026, 6, 8), dt.date(2026, 6, 1), "previous")
    assert {e.value: e.change for e in m.effects} == {"a": 18 - 43, "b": 44, "c": 2, "(none)": 1 - 8}
    assert m.change == sum(e.change for e in m.effects) == 65 - 51
    assert m.text("Clicks") == "Clicks +14 vs 2026-W23: b +44, a -25, (none) -7 (+1 smaller)"
    assert moved.explain(result, result.project.kpis["reach"], dt.date(2026, 6, 8), dt.date(2026, 6, 1), "previous") == []
    assert {p.split("~")[0] for p in result.parts} == {"ctr", "per_thousand", "ctr_scaled_first", "ctr_scaled_last"}
    assert len(result.parts) == 8
    assert "ctr~numerator" not in result.series  # the parts never show up as KPIs


def test_a_period_with_no_denominator_is_not_explained(tmp_path):
    rows = frame().with_columns(pl.when(pl.col("ts") < D(2026, 6, 8)).then(0).otherwise(pl.col("impressions")).alias("impressions"))
    result = kpi_engine.load(write_spec(tmp_path, SPEC), frames={"ads": rows}).evaluate(dt.date(2026, 6, 14), moves=True)
    assert moved.explain(result, result.project.kpis["ctr"], dt.date(2026, 6, 8), dt.date(2026, 6, 1), "previous") == []


def test_run_json_explains_the_latest_period_like_duckdb(example_dir):
    duckdb = require("duckdb")
    run = subprocess.run(
        [sys.executable, "-m", "kpi_engine", "run", str(example_dir), "--as-of", "2026-06-03", "--kpi", "ctr", "--format", "json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (kpi,) = json.loads(run.stdout)["kpis"]
    (m,) = kpi["moved"]["previous"]
    assert (m["period"], m["other_period"], m["dimension"]) == ("2026-W22", "2026-W21", "channel")
    con = duckdb.connect()
    con.execute(f"CREATE VIEW ads AS SELECT * FROM read_parquet('{example_dir / 'data' / 'ad_events.parquet'}')")
    rows = con.execute("""
        WITH w AS (
          SELECT date_trunc('week', ts)::DATE AS wk, coalesce(channel, '(none)') AS ch,
                 sum(clicks::BIGINT) AS c, sum(impressions::BIGINT) AS i
          FROM ads WHERE ts >= '2026-05-18' AND ts < '2026-06-01' GROUP BY ALL),
        t AS (SELECT wk, 100.0 * sum(c) / sum(i) AS big, sum(i) AS ti FROM w GROUP BY wk),
        s AS (SELECT w.ch, w.wk, 100.0 * c / nullif(i, 0) AS r, i / ti AS share FROM w JOIN t USING (wk)),
        p AS (SELECT ch,
                 max(r) FILTER (WHERE wk = '2026-05-18') AS r0, max(r) FILTER (WHERE wk = '2026-05-25') AS r1,
                 coalesce(max(share) FILTER (WHERE wk = '2026-05-18'), 0) AS w0,
                 coalesce(max(share) FILTER (WHERE wk = '2026-05-25'), 0) AS w1 FROM s GROUP BY ch),
        m AS (SELECT avg(big) AS mid FROM t)
        SELECT ch, (coalesce(r1, r0) - coalesce(r0, r1)) * (w0 + w1) / 2,
               (w1 - w0) * ((coalesce(r0, r1) + coalesce(r1, r0)) / 2 - mid) FROM p, m
        WHERE coalesce(r0, r1) IS NOT NULL ORDER BY ch""").fetchall()
    got = {e["value"]: (e["rate"], e["mix"]) for e in m["effects"]}
    assert sorted(got) == [r[0] for r in rows] and len(rows) >= 3
    for ch, rate, mix in rows:
        assert got[ch] == pytest.approx((rate, mix), rel=1e-9, abs=1e-12), ch
    assert sum(r + x for r, x in got.values()) == pytest.approx(m["change"], rel=1e-12)


def test_the_report_says_why_it_moved(tmp_path, example_dir):
    out = tmp_path / "r.md"
    run = subprocess.run(
        [sys.executable, "-m", "kpi_engine", "report", str(example_dir), "--as-of", "2026-06-03", "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    section = text.split("Why it moved:", 1)[1].split("\n\n", 2)[1]
    assert section.startswith("- Click-through rate ") and " vs 2026-W21: " in section and " pp" in section


def test_the_parts_cost_no_extra_aggregate(tmp_path):
    """The numerator and denominator are the KPI's own aggregates: the plan computes nothing more."""
    from kpi_engine.plan import Window

    catalog = kpi_engine.load(write_spec(tmp_path, SPEC), frames={"ads": frame()})
    wider, extra = moved.with_parts(catalog, ["ctr", "clicks", "per_thousand"])
    assert sorted(extra) == ["ctr~denominator", "ctr~numerator", "per_thousand~denominator", "per_thousand~numerator"]
    window = Window(dt.date(2026, 6, 14))

    def aggregates(plan):
        return sorted((name, key, tuple(g.dims)) for name, sp in plan.sources.items() for key2, g in sp.groups.items() for key in g.aggs)

    assert aggregates(wider.plan(window, ["ctr", "clicks", "per_thousand", *extra])) == aggregates(catalog.plan(window, ["ctr", "clicks", "per_thousand"]))


def test_the_email_says_why_each_kpi_needing_attention_moved(tmp_path):
    """E-mail parity: each KPI needing attention carries the first line of its report section's "why it
    moved" (the split against the previous period), in the text and the HTML part."""
    import email
    from pathlib import Path

    from click.testing import CliRunner

    from kpi_engine.cli import main

    root = Path(__file__).parents[1] / "kpi_specs"
    md, eml = tmp_path / "r.md", tmp_path / "r.eml"
    for out in (md, eml):
        res = CliRunner().invoke(main, ["report", str(root), "--as-of", "2026-06-30", "-o", str(out)])
        assert res.exit_code == 0, res.output
    sections = md.read_text().split("\n### ")
    firsts = {}
    for section in sections:
        if "Why it moved:" in section:
            name = section.split("\n", 1)[0].strip().lstrip("#").strip()
            firsts[name] = section.split("Why it moved:", 1)[1].strip().split("\n", 1)[0].removeprefix("- ")
    message = email.message_from_bytes(eml.read_bytes())
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk() if not p.is_multipart()}
    attention = parts["text/plain"].split("NEEDS ATTENTION", 1)[1].split("SCORECARD", 1)[0]
    shown = [line.removeprefix("  Why it moved: ") for line in attention.splitlines() if "Why it moved: " in line]
    assert len(shown) >= 3
    assert all(line in firsts.values() for line in shown), (shown, list(firsts.values()))
    assert all(f"Why it moved: {line}" in parts["text/html"].replace("&#43;", "+") for line in shown[:1])
