"""Property tests of the evaluator: random small frames give the same values as a direct polars computation,
and sums and counts do not depend on row order or on how a source is split into files."""

from __future__ import annotations

import datetime as dt
import textwrap

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kpi_engine

rows = st.lists(
    st.tuples(st.integers(0, 89), st.sampled_from(["a", "b", "c"]), st.one_of(st.none(), st.integers(-100, 100))),
    min_size=1,
    max_size=60,
)
SPEC = textwrap.dedent("""
    version: 1
    sources:
      s: {connector: SOURCE, time: ts}
    kpis:
      total: {unit: number, formula: sum(s.x), grain: month, dimensions: [channel]}
      n: {unit: count, formula: count(s), grain: month}
      positive_share: {unit: percent, formula: 100 * count(s where x > 0) / count(s.x), grain: month}
      mean_x: {unit: number, formula: mean(s.x), grain: month}
""")
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def frame_of(data) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [dt.datetime(2026, 1, 1, 12) + dt.timedelta(days=d) for d, _, _ in data],
            "channel": [c for _, c, _ in data],
            "x": [x for _, _, x in data],
        },
        schema={"ts": pl.Datetime("us"), "channel": pl.String, "x": pl.Int64},
    )


def evaluate(tmp_path, frame: pl.DataFrame):
    folder = tmp_path / "frame"
    folder.mkdir(exist_ok=True)
    (folder / "k.yaml").write_text(SPEC.replace("SOURCE", "dataframe"))
    return kpi_engine.load(folder, frames={"s": frame}).evaluate(dt.date(2026, 3, 31))


def totals(frame: pl.DataFrame) -> dict:
    return {r["period"]: r["value"] for r in frame.filter(pl.col("is_total")).iter_rows(named=True) if r["has_data"]}


@SETTINGS
@given(rows)
def test_random_frames_match_a_direct_computation(tmp_path, data):
    frame = frame_of(data)
    res = evaluate(tmp_path, frame)
    by_month = frame.group_by(pl.col("ts").dt.strftime("%Y-%m").alias("m")).agg(
        pl.col("x").sum().alias("total"),
        pl.len().alias("n"),
        ((pl.col("x") > 0).sum() * 100 / pl.col("x").count()).alias("share"),
        pl.col("x").mean().alias("mean"),
    )
    expected = {r["m"]: r for r in by_month.iter_rows(named=True)}
    for period, value in totals(res["total"]).items():
        assert value == (expected[period]["total"] if period in expected else 0)
    for period, value in totals(res["n"]).items():
        assert value == (expected[period]["n"] if period in expected else 0)
    for kpi, col in (("positive_share", "share"), ("mean_x", "mean")):
        for period, value in totals(res[kpi]).items():
            want = expected[period][col] if period in expected else None
            if want is None or (isinstance(want, float) and want != want):
                assert value is None
            else:
                assert abs(value - want) <= 1e-9 * max(1.0, abs(want))
    channels = {
        (r["period"], r["channel"]): r["value"]
        for r in res["total"].filter(~pl.col("is_total") & pl.col("has_data")).iter_rows(named=True)
    }
    for (period, channel), value in channels.items():
        part = frame.filter((pl.col("ts").dt.strftime("%Y-%m") == period) & (pl.col("channel") == channel))
        assert value == (part["x"].sum() if part.height else 0)


@SETTINGS
@given(rows, st.randoms(use_true_random=False), st.integers(1, 4))
def test_sums_and_counts_ignore_row_order_and_file_splits(tmp_path, data, rnd, parts):
    frame = frame_of(data)
    reference = evaluate(tmp_path, frame)
    shuffled = list(data)
    rnd.shuffle(shuffled)
    again = evaluate(tmp_path, frame_of(shuffled))
    for kpi in ("total", "n"):
        assert reference[kpi].equals(again[kpi])
    folder = tmp_path / "split"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    for i in range(parts):
        if shuffled[i::parts]:
            frame_of(shuffled[i::parts]).write_csv(folder / f"part{i}.csv")
    (folder / "k.yaml").write_text(SPEC.replace("SOURCE", 'csv, path: "part*.csv", dtypes: {x: int}'))
    split = kpi_engine.load(folder).evaluate(dt.date(2026, 3, 31))
    for kpi in ("total", "n"):
        assert totals(split[kpi]) == totals(reference[kpi])
