"""The first-party metric functions (nps, share_top_box) and customer retention over entities (which replaced
the `retention()` function), on small frames computed by hand; and a plugin function that reads the previous
period through `finish`."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

import kpi_engine

from conftest import write_spec

D = dt.datetime


RETENTION = "100 * count(customer where active(-1)) / previous(count(customer))"


def run(tmp_path, frame, kpis, registry=None):
    write_spec(
        tmp_path,
        "version: 1\nsources:\n  s: {connector: dataframe, time: ts, entities: {customer: customer}}\nkpis:\n" + kpis,
    )
    return kpi_engine.load(tmp_path, frames={"s": frame}, registry=registry).evaluate(dt.date(2026, 3, 31))


def test_nps_with_more_detractors_than_promoters(tmp_path):
    scores = [10, 9, 6, 5, 0, 7, 8, 3]  # 2 promoters, 4 detractors of 8
    frame = pl.DataFrame({"ts": [D(2026, 1, i + 1) for i in range(8)], "score": scores, "k": ["a"] * 8})
    res = run(
        tmp_path,
        frame,
        "  n: {unit: score, formula: nps(s.score), grain: month}\n"
        "  top: {unit: ratio, formula: share_top_box(s.score, 9), grain: month}\n",
    )
    assert res["n"]["value"][0] == pytest.approx(100 * (2 - 4) / 8)
    assert res["top"]["value"][0] == pytest.approx(2 / 8)


def test_retention_by_dimension(tmp_path):
    rows = [  # month, customer, segment
        (1, "a", "x"),
        (1, "b", "x"),
        (1, "c", "y"),
        (1, "a", "x"),
        (2, "a", "x"),
        (2, "c", "y"),
        (2, "d", "y"),
        (3, "d", "y"),
        (3, "e", "x"),
    ]
    frame = pl.DataFrame(
        {
            "ts": [D(2026, m, 10) for m, _, _ in rows],
            "customer": [c for _, c, _ in rows],
            "seg": [g for _, _, g in rows],
        }
    )
    res = run(
        tmp_path, frame, f"  r: {{unit: percent, formula: {RETENTION}, grain: month, dimensions: [seg]}}\n"
    )
    frame = res["r"]
    total = dict(
        zip(frame.filter(pl.col("is_total"))["period"], frame.filter(pl.col("is_total"))["value"], strict=True)
    )
    # Feb keeps a and c of {a, b, c}; Mar keeps d of {a, c, d}
    assert total == {"2026-01": None, "2026-02": pytest.approx(100 * 2 / 3), "2026-03": pytest.approx(100 / 3)}
    seg = {(r["period"], r["seg"]): r["value"] for r in frame.filter(~pl.col("is_total")).iter_rows(named=True)}
    assert seg[("2026-02", "x")] == pytest.approx(50.0)  # a of {a, b}
    assert seg[("2026-02", "y")] == pytest.approx(100.0)  # c of {c}
    assert seg[("2026-03", "y")] == pytest.approx(50.0)  # d of {c, d}
    assert seg[("2026-03", "x")] == pytest.approx(0.0)  # e is new; a did not come back


def test_retention_is_zero_when_a_period_has_no_customers(tmp_path):
    """Issue 11, item 29: a channel with customers in January and none in February kept 0% of them."""
    rows = [(1, "a", "x"), (1, "b", "y"), (2, "b", "y"), (3, "c", "y")]
    frame = pl.DataFrame(
        {
            "ts": [D(2026, m, 10) for m, _, _ in rows],
            "customer": [c for _, c, _ in rows],
            "seg": [g for _, _, g in rows],
        }
    )
    res = run(
        tmp_path, frame, f"  r: {{unit: percent, formula: {RETENTION}, grain: month, dimensions: [seg]}}\n"
    )
    seg = {(r["period"], r["seg"]): r["value"] for r in res["r"].filter(~pl.col("is_total")).iter_rows(named=True)}
    assert seg[("2026-02", "x")] == 0.0  # a of {a}: none came back (was null)
    assert seg[("2026-02", "y")] == pytest.approx(100.0)
    assert seg[("2026-03", "x")] is None  # no customers before either: nothing to retain


def _retention(customers: pl.Expr, dims: tuple[str, ...]) -> pl.Expr:
    previous = customers.shift(1).over(dims) if dims else customers.shift(1)
    kept = pl.when(customers.is_null()).then(0).otherwise(customers.list.set_intersection(previous).list.len())
    return pl.when(previous.list.len() > 0).then(kept / previous.list.len()).otherwise(None)


def test_a_plugin_function_reads_the_previous_period_through_finish(tmp_path):
    """`finish` gets each period's per-period aggregate (here the list of customers) with the dimensions, and
    agrees with the same retention written over entities."""
    import types

    from kpi_engine.plugins import build_registry

    plugin = types.ModuleType("kpi_lists")
    plugin.register_functions = kpi_engine.hookimpl(
        lambda register: register(
            kpi_engine.MetricFunction(
                "kept_share", lambda c: c.drop_nulls().unique(), arg_kinds=("any",), finish=_retention
            )
        )
    )
    rows = [(1, "a", "x"), (1, "b", "x"), (1, "c", "y"), (2, "a", "x"), (2, "c", "y"), (2, "d", "y"), (3, "d", "y")]
    frame = pl.DataFrame(
        {"ts": [D(2026, m, 10) for m, _, _ in rows], "customer": [c for _, c, _ in rows], "seg": [g for _, _, g in rows]}
    )
    res = run(
        tmp_path,
        frame,
        "  f: {unit: percent, formula: 100 * kept_share(s.customer), grain: month, dimensions: [seg]}\n"
        f"  e: {{unit: percent, formula: {RETENTION}, grain: month, dimensions: [seg]}}\n",
        build_registry(extra=[plugin]),
    )
    pairs = list(zip(res["f"]["value"].to_list(), res["e"]["value"].to_list(), strict=True))
    assert all((a is None) == (b is None) and (a is None or a == pytest.approx(b, rel=1e-12)) for a, b in pairs)
    assert sum(a is not None for a, _ in pairs) >= 5
    assert res["f"].filter(pl.col("is_total"))["value"].to_list() == [None, pytest.approx(200 / 3), pytest.approx(100 / 3)]
