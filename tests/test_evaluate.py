"""Every KPI of the acceptance example, checked against DuckDB SQL over the same files."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

AS_OF = dt.date(2026, 6, 30)


@pytest.fixture(scope="module")
def result(example_catalog):
    return example_catalog.evaluate(AS_OF)


def mentions_catalog(folder, example_dir, kpis: str):
    """A catalogue over the example's social mentions with the given ``kpis:`` entries (one per line)."""
    import shutil

    import kpi_engine

    shutil.copytree(example_dir / "data", folder / "data")
    lines = [line.strip() for line in kpis.strip().splitlines()]
    (folder / "kpis.yaml").write_text(
        "version: 1\nsources:\n  mentions: {connector: ndjson, path: data/social_mentions.ndjson, time: ts}\n"
        "kpis:\n" + "".join(f"  {line}\n" for line in lines)
    )
    return kpi_engine.load(folder)


def engine_values(frame: pl.DataFrame, dim: str | None = None) -> dict:
    rows = frame.filter(pl.col("is_total") if dim is None else ~pl.col("is_total"))
    key = (lambda r: r["start"]) if dim is None else (lambda r: (r["start"], r[dim]))
    return {key(r): r["value"] for r in rows.iter_rows(named=True)}


def sql_values(duck, sql: str) -> dict:
    out = {}
    for row in duck.execute(sql).fetchall():
        *key, value = row
        key = [k.date() if isinstance(k, dt.datetime) else k for k in key]
        out[key[0] if len(key) == 1 else tuple(key)] = value
    return out


def assert_same(engine: dict, expected: dict, *, zero_for_missing: bool = False) -> None:
    """Every period the SQL produced matches; periods the SQL has no row for are 0 or null in the engine."""
    for key, value in expected.items():
        assert key in engine, f"engine has no value for {key}"
        got = engine[key]
        if value is None:
            assert got is None, f"{key}: expected null, got {got}"
        else:
            assert got is not None and math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9), f"{key}: {got} != {value}"
    for key in engine.keys() - expected.keys():
        assert engine[key] == (0 if zero_for_missing else None) or engine[key] is None, f"{key}: {engine[key]}"


CUT = "< TIMESTAMP '2026-07-01'"


def test_ctr_by_channel_and_total_recomputed_from_sums(result, duck):
    frame = result["ctr"]
    per_channel = sql_values(
        duck,
        f"""
        SELECT date_trunc('week', ts), channel, 100.0 * sum(clicks) / nullif(sum(impressions), 0)
        FROM ads WHERE ts {CUT} GROUP BY ALL""",
    )
    total = sql_values(
        duck,
        f"""
        SELECT date_trunc('week', ts), 100.0 * sum(clicks) / nullif(sum(impressions), 0)
        FROM ads WHERE ts {CUT} GROUP BY ALL""",
    )
    assert_same(engine_values(frame, "channel"), per_channel)
    assert_same(engine_values(frame), total)
    # print has weeks with zero impressions: null, never inf
    assert frame.filter((pl.col("channel") == "print") & pl.col("value").is_null()).height > 0
    # the total is not the mean of the channel ratios
    week = frame.filter(pl.col("start") == dt.date(2026, 6, 1))
    mean_of_ratios = week.filter(~pl.col("is_total"))["value"].mean()
    assert not math.isclose(week.filter(pl.col("is_total"))["value"][0], mean_of_ratios, rel_tol=1e-6)


def test_empty_periods_for_a_dimension_value_are_zero_sums(result, duck):
    spend = result["ad_spend"]
    march = spend.filter((pl.col("channel") == "affiliate") & (pl.col("period") == "2026-03"))
    assert march["value"].to_list() == [0.0] and march["has_data"].to_list() == [True]
    expected = sql_values(
        duck, f"SELECT date_trunc('month', ts), channel, sum(cost) FROM ads WHERE ts {CUT} GROUP BY ALL"
    )
    assert_same(engine_values(spend, "channel"), expected, zero_for_missing=True)


def test_roi_leads_cpl_reference_at_referencing_grain(result, duck):
    roi = sql_values(
        duck,
        f"""SELECT date_trunc('month', ts), 100.0 * (sum(revenue) - sum(cost)) / nullif(sum(cost), 0)
                              FROM ads WHERE ts {CUT} GROUP BY ALL""",
    )
    assert_same(engine_values(result["roi"]), roi)
    leads = sql_values(
        duck, f"SELECT date_trunc('month', ts), count(*) FILTER (WHERE lead) FROM sessions WHERE ts {CUT} GROUP BY ALL"
    )
    assert_same(engine_values(result["leads"]), {k: float(v) for k, v in leads.items()})
    cpl = sql_values(
        duck,
        f"""
        WITH c AS (SELECT date_trunc('month', ts) m, sum(cost) cost FROM ads WHERE ts {CUT} GROUP BY ALL),
             l AS (SELECT date_trunc('month', ts) m, count(*) FILTER (WHERE lead) leads FROM sessions WHERE ts {CUT} GROUP BY ALL)
        SELECT c.m, cost / nullif(leads, 0) FROM c JOIN l USING (m)""",
    )
    assert_same(engine_values(result["cpl"]), cpl)


def test_bounce_rate_and_unique_visitors(result, duck):
    bounce = sql_values(
        duck,
        f"""SELECT date_trunc('week', ts), 100.0 * count(*) FILTER (WHERE pageviews = 1) / count(*)
                                 FROM sessions WHERE ts {CUT} GROUP BY ALL""",
    )
    assert_same(engine_values(result["bounce_rate"]), bounce)
    uv = sql_values(
        duck,
        f"SELECT date_trunc('month', ts), channel, count(DISTINCT visitor_id) FROM sessions WHERE ts {CUT} GROUP BY ALL",
    )
    assert_same(engine_values(result["unique_visitors"], "channel"), {k: float(v) for k, v in uv.items()})
    uv_total = sql_values(
        duck, f"SELECT date_trunc('month', ts), count(DISTINCT visitor_id) FROM sessions WHERE ts {CUT} GROUP BY ALL"
    )
    assert_same(engine_values(result["unique_visitors"]), {k: float(v) for k, v in uv_total.items()})


def test_response_time_mean_skips_null_responses_and_stale_source_is_no_data(result, duck):
    frame = result["avg_response_minutes"]
    expected = sql_values(
        duck,
        f"""
        SELECT date_trunc('week', created_at), avg(epoch(first_response_at - created_at) / 60.0)
        FROM tickets WHERE created_at {CUT} GROUP BY ALL""",
    )
    assert_same(engine_values(frame.filter(pl.col("has_data"))), expected)
    # tickets stop on 2026-05-20: later weeks are no data (null and flagged), not zero
    late = frame.filter(pl.col("start") > dt.date(2026, 5, 20))
    assert late.height >= 5
    assert late["has_data"].to_list() == [False] * late.height
    assert late["value"].null_count() == late.height


def test_mentions_per_day_and_filtered_sentiment(result, duck):
    counts = sql_values(duck, f"SELECT ts::DATE, count(*) FROM mentions WHERE ts {CUT} GROUP BY ALL")
    assert_same(
        engine_values(result["mentions_count"]), {k: float(v) for k, v in counts.items()}, zero_for_missing=True
    )
    sentiment = sql_values(
        duck,
        f"""SELECT date_trunc('week', ts), avg(sentiment) FILTER (WHERE platform IN ('x', 'instagram'))
                                    FROM mentions WHERE ts {CUT} GROUP BY ALL""",
    )
    assert_same(engine_values(result["sentiment"]), sentiment)


def test_revenue_growth_uses_previous_period(result, duck):
    expected = sql_values(
        duck,
        f"""
        WITH m AS (SELECT date_trunc('month', ts) m, sum(revenue) r FROM ads WHERE ts {CUT} GROUP BY ALL)
        SELECT m, 100.0 * (r - lag(r) OVER (ORDER BY m)) / lag(r) OVER (ORDER BY m) FROM m""",
    )
    assert_same(engine_values(result["revenue_growth"]), expected)
    assert result["revenue_growth"]["value"][0] is None  # no previous period


def test_previous_reads_before_from(example_catalog, duck):
    """With --from, previous() still sees the period before the first one shown."""
    res = example_catalog.evaluate(AS_OF, start=dt.date(2026, 4, 15), kpis=["revenue_growth"])
    frame = res["revenue_growth"]
    assert frame["period"].to_list() == ["2026-04", "2026-05", "2026-06"]
    full = example_catalog.evaluate(AS_OF, kpis=["revenue_growth"])["revenue_growth"]
    expected = full.filter(pl.col("start") >= dt.date(2026, 4, 1))["value"].to_list()
    assert frame["value"].to_list() == pytest.approx(expected, rel=1e-12)
    assert frame["value"][0] is not None


def test_partial_period_and_as_of_cut(example_catalog, duck):
    res = example_catalog.evaluate(dt.date(2026, 6, 17), kpis=["ctr", "ad_spend"])
    ctr = res["ctr"].filter(pl.col("is_total"))
    assert ctr["period"][-1] == "2026-W25" and ctr["complete"][-1] is False and ctr["complete"][-2] is True
    spend = res["ad_spend"].filter(pl.col("is_total"))
    assert spend["period"][-1] == "2026-06" and spend["complete"][-1] is False
    june = sql_values(
        duck, "SELECT 1, sum(cost) FROM ads WHERE ts >= TIMESTAMP '2026-06-01' AND ts < TIMESTAMP '2026-06-18'"
    )[1]
    assert math.isclose(spend["value"][-1], june)


def test_to_limits_the_last_period(example_catalog):
    res = example_catalog.evaluate(AS_OF, start=dt.date(2026, 2, 1), end=dt.date(2026, 3, 31), kpis=["roi"])
    frame = res["roi"]
    assert frame["period"].to_list() == ["2026-02", "2026-03"]
    assert frame["complete"].all()


def test_int32_sums_do_not_overflow(result, example_dir):
    raw = pl.read_parquet(example_dir / "data" / "ad_events.parquet")
    assert raw.schema["impressions"] == pl.Int32
    month = raw.filter(pl.col("ts") < dt.datetime(2026, 7, 1)).select(pl.col("impressions").cast(pl.Int64).sum()).item()
    assert month > 2**31  # the data really overflows Int32
    week_totals = result["ctr"].filter(pl.col("is_total"))["value"]
    assert (week_totals.drop_nulls() > 0).all()


def test_aggregates_shared_by_kpis_are_planned_once(example_catalog):
    """(Scans are counted for real in test_scans.py.)"""
    plan = example_catalog.plan(__import__("kpi_engine.plan", fromlist=["Window"]).Window(AS_OF))
    assert set(plan.sources) == {"ads", "sessions", "tickets", "mentions"}
    ads = plan.sources["ads"]
    # shared aggregates are computed once: sum(ads.cost) serves ad_spend, roi and cpl
    keys = [k for g in ads.groups.values() if g.derive_from is None for k in g.aggs]
    assert keys.count("sum(ads.cost)") == 1
    assert ads.columns == {"ts", "channel", "clicks", "impressions", "cost", "revenue"}


def test_coarser_grains_are_summed_from_one_daily_group_only_when_they_roll_up(example_catalog):
    """Weeks and months of sums come from one group_by(day, channel); count-distinct never does."""
    from kpi_engine.plan import Window
    from kpi_engine.spec import Grain

    plan = example_catalog.plan(Window(AS_OF))
    scanned = {k: g for k, g in plan.sources["ads"].groups.items() if g.derive_from is None}
    assert list(scanned) == [(Grain.DAY, ("channel",))]
    derived = {k: g.derive_from for k, g in plan.sources["ads"].groups.items() if g.derive_from}
    assert derived[(Grain.WEEK, ("channel",))] == (Grain.DAY, ("channel",))
    assert derived[(Grain.MONTH, ("channel",))] == (Grain.DAY, ("channel",))
    for group in plan.sources["sessions"].groups.values():
        if any(r.agg.func == "count_distinct" for r in group.aggs.values()):
            assert group.derive_from is None


def test_streaming_engine_gives_the_same_numbers(example_catalog, result):
    streamed = example_catalog.evaluate(AS_OF, streaming=True)
    for kpi_id, frame in result.series.items():
        other = streamed[kpi_id]
        assert frame.drop("value").equals(other.drop("value")), kpi_id
        a, b = frame["value"].to_list(), other["value"].to_list()
        assert [x is None for x in a] == [y is None for y in b], kpi_id
        assert [x for x in a if x is not None] == pytest.approx([y for y in b if y is not None], rel=1e-9), kpi_id


def test_filters_are_pushed_down_when_every_aggregate_is_filtered(tmp_path, example_dir, duck):
    from kpi_engine.plan import Window

    catalog = mentions_catalog(
        tmp_path,
        example_dir,
        """
        x_share: {unit: count, formula: sum(mentions.shares where platform == "x"), grain: month}
        insta_mean: {unit: score, formula: mean(mentions.sentiment where platform == "instagram"), grain: month, dimensions: [platform]}
        """,
    )
    plan = catalog.plan(Window(AS_OF))
    assert len(plan.sources["mentions"].prefilter) == 2
    res = catalog.evaluate(AS_OF)
    expected = sql_values(
        duck,
        f"SELECT date_trunc('month', ts), sum(shares) FILTER (WHERE platform = 'x') FROM mentions WHERE ts {CUT} GROUP BY ALL",
    )
    assert_same(engine_values(res["x_share"]), {k: float(v) for k, v in expected.items()})
    insta = res["insta_mean"]
    # only the platform the filter keeps appears as a dimension value
    assert set(insta.filter(~pl.col("is_total"))["platform"]) == {"instagram"}
    expected = sql_values(
        duck,
        f"SELECT date_trunc('month', ts), avg(sentiment) FILTER (WHERE platform = 'instagram') FROM mentions WHERE ts {CUT} GROUP BY ALL",
    )
    assert_same(engine_values(insta), expected)


def test_one_call_api(example_dir):
    import kpi_engine

    res = kpi_engine.evaluate(example_dir, AS_OF, kpis=["leads"])
    assert list(res.series) == ["leads"]
    assert res["leads"].columns == ["period", "start", "end", "complete", "has_data", "coverage", "is_total", "value"]


def test_span_evaluation_recomputes_ratios_over_the_window(example_catalog, duck):
    from kpi_engine.periods import Span

    q2 = Span(dt.date(2026, 4, 1), dt.date(2026, 6, 30))
    april = Span(dt.date(2026, 4, 1), dt.date(2026, 4, 30))
    res = example_catalog.evaluate(AS_OF, kpis=["ctr"], spans=[("ctr", q2), ("unique_visitors", april)])
    ctr = res.spans[("ctr", q2)]
    expected = sql_values(
        duck,
        """SELECT channel, 100.0 * sum(clicks) / sum(impressions) FROM ads
                                   WHERE ts >= TIMESTAMP '2026-04-01' AND ts < TIMESTAMP '2026-07-01' GROUP BY ALL""",
    )
    got = {r["channel"]: r["value"] for r in ctr.filter(~pl.col("is_total")).iter_rows(named=True)}
    assert got == pytest.approx(expected)
    total = sql_values(
        duck,
        """SELECT 1, 100.0 * sum(clicks) / sum(impressions) FROM ads
                                WHERE ts >= TIMESTAMP '2026-04-01' AND ts < TIMESTAMP '2026-07-01'""",
    )[1]
    assert ctr.filter(pl.col("is_total"))["value"].item() == pytest.approx(total)
    assert ctr["period"][0] == "2026-04-01..2026-06-30"
    uv = res.spans[("unique_visitors", april)].filter(pl.col("is_total"))["value"].item()
    expected_uv = sql_values(
        duck,
        """SELECT 1, count(DISTINCT visitor_id) FROM sessions
                                      WHERE ts >= TIMESTAMP '2026-04-01' AND ts < TIMESTAMP '2026-05-01'""",
    )[1]
    assert uv == expected_uv


def test_coverage_is_the_share_of_days_with_source_data(result):
    frame = result["avg_response_minutes"]
    # tickets run to 2026-05-20 (a Wednesday): its week is 3/7 covered, the next weeks 0
    week = frame.filter(pl.col("start") == dt.date(2026, 5, 18))
    assert week["coverage"].item() == pytest.approx(3 / 7) and week["has_data"].item()
    assert frame.filter(pl.col("start") == dt.date(2026, 5, 25))["coverage"].item() == 0.0
    assert frame.filter(pl.col("start") == dt.date(2026, 3, 2))["coverage"].item() == 1.0


def test_kpis_evaluated_together_equal_each_evaluated_alone(tmp_path, example_dir, duck):
    """KPIs sharing grain and dimensions are computed as columns of one frame; that must change nothing.

    The batch mixes a KPI whose filter keeps one platform (so it shows one dimension value), one over every
    platform, a survey-style proportion (extra interval columns) and a previous() reference.
    """
    from kpi_engine.plan import Window

    catalog = mentions_catalog(
        tmp_path,
        example_dir,
        """
        x_shares: {unit: count, formula: sum(mentions.shares where platform == "x"), grain: week, dimensions: [platform]}
        shares: {unit: count, formula: sum(mentions.shares), grain: week, dimensions: [platform]}
        positive: {kind: qualitative, unit: percent, formula: 100 * count(mentions where sentiment > 0) / count(mentions), grain: week, dimensions: [platform]}
        shares_change: {unit: count, formula: sum(mentions.shares) - previous(sum(mentions.shares)), grain: week, dimensions: [platform]}
        """,
    )
    together = catalog.evaluate(AS_OF)
    for kpi_id in catalog.project.kpis:
        alone = catalog.evaluate(AS_OF, kpis=[kpi_id])[kpi_id]
        assert together[kpi_id].equals(alone), kpi_id
    assert set(together["x_shares"].filter(~pl.col("is_total"))["platform"]) == {"x"}
    assert set(together["shares"].filter(~pl.col("is_total"))["platform"]) == {
        p for (p,) in duck.execute("SELECT DISTINCT platform FROM mentions").fetchall()
    }
    assert {"sample_size", "ci_low", "ci_high"} <= set(together["positive"].columns)
    assert "ci_low" not in together["shares"].columns
    assert len(catalog.plan(Window(AS_OF)).kpis) == 4
