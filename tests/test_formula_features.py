"""Each formula feature evaluated on small frames and compared with hand-written polars or Python."""

from __future__ import annotations

import datetime as dt
import statistics
import textwrap

import polars as pl
import pytest

import kpi_engine

D = dt.datetime


@pytest.fixture()
def orders() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [
                D(2026, 1, 5),
                D(2026, 1, 6),
                D(2026, 1, 20),
                D(2026, 2, 2),
                D(2026, 2, 3),
                D(2026, 2, 4),
                D(2026, 4, 1),
                D(2026, 4, 2),
            ],
            "channel": ["a", "b", "a", None, "a", "b", "a", "a"],
            "amount": [10.0, None, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0],
            "qty": pl.Series([1, 2, 3, 4, 5, 6, 7, 8], dtype=pl.Int32),
            "status": ["paid", "paid", "refunded", "paid", None, "paid", "paid", "refunded"],
            "day": [
                dt.date(2026, 1, 5),
                dt.date(2026, 1, 6),
                dt.date(2026, 1, 20),
                dt.date(2026, 2, 2),
                dt.date(2026, 2, 3),
                dt.date(2026, 2, 4),
                dt.date(2026, 4, 1),
                dt.date(2026, 4, 2),
            ],
            "vip": [True, False, None, True, False, True, False, True],
        }
    )


@pytest.fixture()
def visits() -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [D(2026, 1, 3), D(2026, 2, 10), D(2026, 2, 11)], "channel": ["a", "a", "b"], "n": [5, 7, 9]}
    )


def run(tmp_path, frames, kpis: str, as_of=dt.date(2026, 4, 30), **kw):
    body = "\n".join("  " + line for line in textwrap.dedent(kpis).strip().splitlines())
    spec = f"""version: 1
params:
  margin: 0.25
sources:
  orders: {{connector: dataframe, time: ts}}
  visits: {{connector: dataframe, time: ts}}
kpis:
{body}
"""
    (tmp_path / "k.yaml").write_text(spec)
    return kpi_engine.load(tmp_path, frames=frames).evaluate(as_of, **kw)


def totals(frame: pl.DataFrame) -> dict[str, float | None]:
    return {r["period"]: r["value"] for r in frame.filter(pl.col("is_total")).iter_rows(named=True)}


def by_month(df: pl.DataFrame, agg: pl.Expr) -> dict[str, float | None]:
    out = df.group_by(pl.col("ts").dt.strftime("%Y-%m").alias("m")).agg(agg.alias("v"))
    return dict(zip(out["m"], out["v"], strict=True))


def test_aggregates_and_empty_periods(tmp_path, orders, visits):
    res = run(
        tmp_path,
        {"orders": orders, "visits": visits},
        """
        s: {unit: number, formula: sum(orders.amount), grain: month}
        n: {unit: count, formula: count(orders), grain: month}
        nn: {unit: count, formula: count(orders.amount), grain: month}
        cd: {unit: count, formula: count_distinct(orders.channel), grain: month}
        mean: {unit: number, formula: mean(orders.amount), grain: month}
        med: {unit: number, formula: median(orders.amount), grain: month}
        lo: {unit: number, formula: min(orders.amount), grain: month}
        hi: {unit: number, formula: max(orders.amount), grain: month}
        p90: {unit: number, formula: quantile(orders.amount, 0.9), grain: month}
    """,
    )
    months = ["2026-01", "2026-02", "2026-03", "2026-04"]
    for kpi, agg in [
        ("s", pl.col("amount").sum()),
        ("n", pl.len()),
        ("nn", pl.col("amount").count()),
        ("cd", pl.col("channel").drop_nulls().n_unique()),
        ("mean", pl.col("amount").mean()),
        ("med", pl.col("amount").median()),
        ("lo", pl.col("amount").min()),
        ("hi", pl.col("amount").max()),
        ("p90", pl.col("amount").quantile(0.9, interpolation="linear")),
    ]:
        expected = by_month(orders, agg)
        got = totals(res[kpi])
        assert list(got) == months, kpi
        for m in months:
            want = expected.get(m)
            if m == "2026-03":  # no rows: sums and counts are 0, the others null
                want = 0.0 if kpi in ("s", "n", "nn", "cd") else None
            assert got[m] == (pytest.approx(float(want)) if want is not None else None), (kpi, m)


def test_where_filters_row_expressions_params_and_functions(tmp_path, orders, visits):
    res = run(
        tmp_path,
        {"orders": orders, "visits": visits},
        """
        paid: {unit: number, formula: sum(orders.amount where status == "paid" and channel != "b"), grain: month}
        notin: {unit: count, formula: count(orders where status not in ["paid"] or status is null), grain: month}
        nulls: {unit: count, formula: count(orders where channel is null), grain: month}
        rowexpr: {unit: number, formula: "sum(orders.amount * orders.qty - 1)", grain: month}
        margin_kpi: {unit: number, formula: sum(orders.amount) * margin, grain: month}
        inside_param: {unit: number, formula: sum(orders.amount * margin where qty >= 2), grain: month}
        dates: {unit: count, formula: count(orders where day >= date("2026-01-06") and day < date("2026-02-03")), grain: month}
        vip: {unit: count, formula: count(orders where vip), grain: month}
        share_vip: {unit: percent, formula: 100 * mean(orders.vip), grain: month}
        rounded: {unit: number, formula: round(abs(-sum(orders.amount)) / 3, 2), grain: month}
        coalesced: {unit: number, formula: "sum(coalesce(orders.amount, 0.5))", grain: month}
        mod: {unit: number, formula: sum(orders.qty) % 4, grain: month}
    """,
    )
    o = orders.with_columns(m=pl.col("ts").dt.strftime("%Y-%m"))

    def ref(expr: pl.Expr, empty=0.0):
        got = o.group_by("m").agg(expr.alias("v"))
        d = dict(zip(got["m"], got["v"], strict=True))
        return {
            m: float(d[m]) if m in d and d[m] is not None else (empty if m not in d else None)
            for m in ["2026-01", "2026-02", "2026-03", "2026-04"]
        }

    paid = (pl.col("status") == "paid") & (pl.col("channel") != "b")
    assert totals(res["paid"]) == pytest.approx(ref(pl.col("amount").filter(paid.fill_null(False)).sum()))
    notin = (~pl.col("status").is_in(["paid"])) | pl.col("status").is_null()
    assert totals(res["notin"]) == ref(notin.fill_null(False).sum())
    assert totals(res["nulls"]) == ref(pl.col("channel").is_null().sum())
    assert totals(res["rowexpr"]) == pytest.approx(ref((pl.col("amount") * pl.col("qty") - 1).sum()))
    assert totals(res["margin_kpi"]) == pytest.approx(ref(pl.col("amount").sum() * 0.25))
    assert totals(res["inside_param"]) == pytest.approx(ref((pl.col("amount") * 0.25).filter(pl.col("qty") >= 2).sum()))
    in_range = (pl.col("day") >= dt.date(2026, 1, 6)) & (pl.col("day") < dt.date(2026, 2, 3))
    assert totals(res["dates"]) == ref(in_range.sum())
    assert totals(res["vip"]) == ref(pl.col("vip").fill_null(False).sum())
    share = ref(100 * pl.col("vip").cast(pl.Float64).mean(), empty=None)
    assert totals(res["share_vip"]) == pytest.approx(share)
    rounded = {m: (round(v / 3, 2) if v is not None else None) for m, v in ref(pl.col("amount").sum()).items()}
    assert totals(res["rounded"]) == pytest.approx(rounded)
    assert totals(res["coalesced"]) == pytest.approx(ref(pl.col("amount").fill_null(0.5).sum()))
    assert totals(res["mod"]) == pytest.approx(ref(pl.col("qty").sum() % 4))


def test_division_by_zero_and_null_is_null(tmp_path, orders, visits):
    res = run(
        tmp_path,
        {"orders": orders, "visits": visits},
        """
        ratio: {unit: ratio, formula: sum(orders.amount) / count(orders where status == "nothing"), grain: month}
        by_null: {unit: ratio, formula: sum(orders.amount) / max(orders.amount where status == "nothing"), grain: month}
        zero_over_zero: {unit: ratio, formula: count(orders where qty > 100) / count(orders where qty > 100), grain: month}
    """,
    )
    for kpi in ("ratio", "by_null", "zero_over_zero"):
        assert set(totals(res[kpi]).values()) == {None}, kpi


def test_dimensions_with_null_values_and_totals(tmp_path, orders, visits):
    res = run(
        tmp_path,
        {"orders": orders, "visits": visits},
        """
        avg_amount: {unit: number, formula: mean(orders.amount), grain: month, dimensions: [channel]}
    """,
    )
    frame = res["avg_amount"]
    feb = frame.filter(pl.col("period") == "2026-02")
    per = {r["channel"]: r["value"] for r in feb.filter(~pl.col("is_total")).iter_rows(named=True)}
    assert per == {"a": 50.0, "b": 60.0, None: 40.0}
    assert feb.filter(pl.col("is_total"))["value"].item() == pytest.approx((40 + 50 + 60) / 3)
    # january: channel b has only a null amount -> mean is null, not 0; the total ignores it
    jan = frame.filter(pl.col("period") == "2026-01")
    assert {r["channel"]: r["value"] for r in jan.filter(~pl.col("is_total")).iter_rows(named=True)} == {
        "a": 20.0,
        "b": None,
        None: None,
    }
    # march has no rows at all: every channel present elsewhere gets a row with null mean
    march = frame.filter(pl.col("period") == "2026-03")
    assert march.height == 4 and march["value"].null_count() == 4


def test_previous_by_dimension_with_offset(tmp_path, orders, visits):
    res = run(
        tmp_path,
        {"orders": orders, "visits": visits},
        """
        growth: {unit: number, formula: sum(orders.qty) - previous(sum(orders.qty), 2), grain: month, dimensions: [channel]}
    """,
    )
    frame = res["growth"].filter(pl.col("channel") == "a")
    qty = {"2026-01": 4, "2026-02": 5, "2026-03": 0, "2026-04": 15}
    assert frame["value"].to_list() == [None, None, 0 - 4, 15 - 5]
    assert qty  # reference series written out above


def test_multi_source_kpi_outer_join_and_no_data(tmp_path, orders, visits):
    res = run(
        tmp_path,
        {"orders": orders, "visits": visits},
        """
        per_visit: {unit: ratio, formula: sum(orders.amount) / sum(visits.n), grain: month, dimensions: [channel]}
    """,
    )
    frame = res["per_visit"]
    # visits end on 2026-02-11: March and April have no visits data -> no data, null
    late = frame.filter(pl.col("period").is_in(["2026-03", "2026-04"]))
    assert not late["has_data"].any() and late["value"].null_count() == late.height
    jan_a = frame.filter((pl.col("period") == "2026-01") & (pl.col("channel") == "a"))["value"].item()
    assert jan_a == pytest.approx((10 + 30) / 5)
    feb_total = frame.filter((pl.col("period") == "2026-02") & pl.col("is_total"))["value"].item()
    assert feb_total == pytest.approx((40 + 50 + 60) / (7 + 9))
    # channel b had visits in February but no orders: the orders sum is 0 there, not missing
    feb_b = frame.filter((pl.col("period") == "2026-02") & (pl.col("channel") == "b"))["value"].item()
    assert feb_b == pytest.approx(60 / 9)
    jan_b = frame.filter((pl.col("period") == "2026-01") & (pl.col("channel") == "b"))["value"].item()
    assert jan_b is None  # 0 visits of channel b in January: division by zero


def test_stats_module_reference_for_median_even_count(tmp_path, visits):
    orders = pl.DataFrame(
        {
            "ts": [D(2026, 1, d) for d in (1, 2, 3, 4)],
            "amount": [1.0, 2.0, 10.0, 20.0],
            "channel": ["a"] * 4,
            "qty": [1] * 4,
            "status": ["x"] * 4,
            "day": [dt.date(2026, 1, 1)] * 4,
            "vip": [True] * 4,
        }
    )
    res = run(
        tmp_path,
        {"orders": orders, "visits": visits},
        """
        med: {unit: number, formula: median(orders.amount), grain: month}
    """,
        as_of=dt.date(2026, 1, 31),
    )
    assert totals(res["med"]) == {"2026-01": statistics.median([1.0, 2.0, 10.0, 20.0])}


def test_missing_on_a_referenced_kpi_is_decided_by_the_referencing_kpi(tmp_path):
    """Issue 13, item 7 (documented in the README): references are inlined, so `missing:` of the KPI that
    references another decides what a period without matching rows shows."""
    import datetime as dt

    import polars as pl

    import kpi_engine

    from conftest import write_spec

    pl.DataFrame({"ts": [dt.datetime(2026, 4, 1), dt.datetime(2026, 4, 2)], "x": [5, 7], "paid": [True, False]}).write_parquet(
        tmp_path / "a.parquet"
    )
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          a: {connector: parquet, path: a.parquet, time: ts}
        kpis:
          paid: {unit: count, grain: day, formula: sum(a.x where paid), missing: null}
          plus_one: {unit: count, grain: day, formula: paid + 1}
          plus_one_null: {unit: count, grain: day, formula: paid + 1, missing: null}
        """,
    )
    result = kpi_engine.load(tmp_path).evaluate(dt.date(2026, 4, 2))
    assert result["paid"]["value"].to_list() == [5, None]
    assert result["plus_one"]["value"].to_list() == [6, 1]  # the referencing KPI's default: an empty sum is 0
    assert result["plus_one_null"]["value"].to_list() == [6, None]


def test_discrete_quantiles_match_percentile_disc(tmp_path):
    """Issue 13, item 7: `quantile_disc(x, q)` is SQL's PERCENTILE_DISC (always one of the values), checked
    against DuckDB per day and channel, with nulls and a filter; `quantile` stays PERCENTILE_CONT."""
    import datetime as dt
    import random

    import duckdb
    import polars as pl

    import kpi_engine

    from conftest import write_spec

    rng = random.Random(5)
    n = 3000
    pl.DataFrame(
        {
            "ts": [dt.datetime(2026, 4, 1) + dt.timedelta(minutes=rng.randrange(60 * 24 * 10)) for _ in range(n)],
            "channel": [rng.choice(["a", "b", "c"]) for _ in range(n)],
            "wait": [rng.choice([None, rng.randrange(1, 500)]) for _ in range(n)],
        }
    ).write_parquet(tmp_path / "t.parquet")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          t: {connector: parquet, path: t.parquet, time: ts}
        kpis:
          p90_disc: {unit: minutes, grain: day, dimensions: [channel], formula: quantile_disc(t.wait, 0.9)}
          p37_disc: {unit: minutes, grain: day, formula: quantile_disc(t.wait, 0.37 where channel != "c")}
          p90_cont: {unit: minutes, grain: day, formula: quantile(t.wait, 0.9)}
        """,
    )
    result = kpi_engine.load(tmp_path).evaluate(dt.date(2026, 4, 10))
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT *, ts::DATE AS d FROM read_parquet('{tmp_path / 't.parquet'}')")
    queries = {
        "p90_disc": "SELECT d, channel, percentile_disc(0.9) WITHIN GROUP (ORDER BY wait) FROM t GROUP BY ALL "
        "UNION ALL SELECT d, NULL, percentile_disc(0.9) WITHIN GROUP (ORDER BY wait) FROM t GROUP BY ALL",
        "p37_disc": "SELECT d, NULL, percentile_disc(0.37) WITHIN GROUP (ORDER BY wait) FROM t WHERE channel != 'c' GROUP BY ALL",
        "p90_cont": "SELECT d, NULL, percentile_cont(0.9) WITHIN GROUP (ORDER BY wait) FROM t GROUP BY ALL",
    }
    for kpi, sql in queries.items():
        expected = {(d, ch): v for d, ch, v in con.execute(sql).fetchall()}
        got = {
            (r["start"], None if r["is_total"] else r.get("channel")): r["value"]
            for r in result[kpi].iter_rows(named=True)
        }
        assert got == pytest.approx(expected, rel=1e-12), kpi
    assert all(float(v).is_integer() for v in result["p90_disc"]["value"])  # one of the values, never between


def test_parts_of_the_local_time_as_dimensions(tmp_path):
    """Issue 13, item 7: `dimensions: [time.weekday]` / `[time.hour]` break a KPI down by a part of each row's
    local time (here across the March DST change in London), checked against DuckDB."""
    import datetime as dt
    import random

    import duckdb
    import polars as pl

    import kpi_engine

    from conftest import write_spec

    rng = random.Random(9)
    n = 4000
    pl.DataFrame(
        {
            "ts": [dt.datetime(2026, 3, 15) + dt.timedelta(minutes=rng.randrange(60 * 24 * 30)) for _ in range(n)],
            "x": [rng.randrange(1, 100) for _ in range(n)],
        }
    ).write_parquet(tmp_path / "t.parquet")
    write_spec(
        tmp_path,
        """
        version: 1
        timezone: Europe/London
        sources:
          t: {connector: parquet, path: t.parquet, time: ts}
        kpis:
          by_hour: {unit: count, grain: month, dimensions: [time.hour], formula: sum(t.x)}
          by_weekday: {unit: count, grain: week, dimensions: [time.weekday], formula: count(t)}
        """,
    )
    result = kpi_engine.load(tmp_path).evaluate(dt.date(2026, 4, 13))
    con = duckdb.connect()
    con.execute(
        "SET TimeZone = 'UTC'"
    )
    con.execute(  # rows up to the end of as-of, London time
        f"CREATE VIEW t AS SELECT * FROM (SELECT *, timezone('Europe/London', ts::TIMESTAMPTZ) AS lt "
        f"FROM read_parquet('{tmp_path / 't.parquet'}')) WHERE lt < TIMESTAMP '2026-04-14'"
    )
    hours = con.execute("SELECT date_trunc('month', lt)::DATE, hour(lt), sum(x) FROM t GROUP BY ALL").fetchall()
    got = {(r["start"], r["time.hour"]): r["value"] for r in result["by_hour"].iter_rows(named=True) if not r["is_total"]}
    assert got == {(m, h): v for m, h, v in hours}
    days = con.execute("SELECT date_trunc('week', lt)::DATE, isodow(lt), count(*) FROM t GROUP BY ALL").fetchall()
    got = {
        (r["start"], r["time.weekday"]): r["value"]
        for r in result["by_weekday"].iter_rows(named=True)
        if not r["is_total"] and r["value"]  # weekdays before the first row count 0
    }
    assert got == {(w, d): v for w, d, v in days} and set(d for _, d in got) == set(range(1, 8))
    (tmp_path / "kpis.yaml").write_text((tmp_path / "kpis.yaml").read_text().replace("time.weekday", "time.wekday"))
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(tmp_path)
    assert "`time.wekday` is not a part of the time" in info.value.render()
    assert "did you mean `weekday`?" in info.value.render()


def test_round_and_remainder_follow_the_documented_rules(tmp_path, orders):
    """round() goes half away from zero on the number as written (1.005 to 1.01, 2.5 to 3, as SQL's numeric
    ROUND and spreadsheets do, not the binary double's 1.00499... nor half-to-even); `%` takes the
    divisor's sign (-7 % 3 is 2, as in Python). Every backend follows the same rules (test_differential)."""
    months = [D(2026, 1, 5), D(2026, 2, 5), D(2026, 3, 5), D(2026, 4, 5)]
    visits = pl.DataFrame({"ts": months, "channel": ["a"] * 4, "n": [-7, 7, -7, 7], "x": [1.005, 2.5, -2.5, 0.285]})
    res = run(
        tmp_path,
        {"orders": orders, "visits": visits},
        """
        cents: {unit: number, formula: sum(round(visits.x, 2)), grain: month}
        whole: {unit: number, formula: round(sum(visits.x)), grain: month}
        hundreds: {unit: number, formula: sum(round(visits.n * 25, -2)), grain: month}
        mod: {unit: number, formula: sum(visits.n % 3), grain: month}
        mod_negative: {unit: number, formula: sum(visits.n % -3), grain: month}
        fraction: {unit: number, formula: sum(visits.x % 1), grain: month}
    """,
    )
    assert list(totals(res["cents"]).values()) == [1.01, 2.5, -2.5, 0.29]
    assert list(totals(res["whole"]).values()) == [1.0, 3.0, -3.0, 0.0]
    assert list(totals(res["hundreds"]).values()) == [-200.0, 200.0, -200.0, 200.0]
    assert list(totals(res["mod"]).values()) == [2, 1, 2, 1]
    assert list(totals(res["mod_negative"]).values()) == [-1, -2, -1, -2]
    assert list(totals(res["fraction"]).values()) == pytest.approx([0.005, 0.5, 0.5, 0.285])
