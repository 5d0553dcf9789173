"""Spec loading: several files, shared sources, params, calendar, positions, hostile YAML."""

from __future__ import annotations

import datetime as dt
import time

import polars as pl
import pytest

import kpi_engine
from kpi_engine.errors import KpiError
from kpi_engine.yaml_loader import load_yaml

from conftest import write_spec


@pytest.fixture()
def ads() -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [dt.datetime(2026, 1, 5), dt.datetime(2026, 2, 5)], "cost": [10.0, 20.0], "revenue": [30.0, 10.0]}
    )


def test_several_files_share_sources_params_and_references(tmp_path, ads):
    write_spec(
        tmp_path,
        """
        version: 1
        timezone: Europe/Berlin
        sources:
          ads: {connector: dataframe, time: ts}
        params:
          gross_margin: 0.5
    """,
        "sources.yaml",
    )
    write_spec(
        tmp_path / "team_a",
        """
        version: 1
        kpis:
          spend: {unit: currency, formula: sum(ads.cost), grain: month}
    """,
        "a.yml",
    )
    write_spec(
        tmp_path / "team_b",
        """
        version: 1
        timezone: Europe/Berlin
        kpis:
          gross_profit: {unit: currency, formula: sum(ads.revenue) * gross_margin - spend, grain: month}
    """,
        "b.yaml",
    )
    catalog = kpi_engine.load(tmp_path, frames={"ads": ads})
    assert [p.name for p in catalog.project.files] == ["sources.yaml", "a.yml", "b.yaml"]
    assert catalog.project.calendar.timezone == "Europe/Berlin"
    res = catalog.evaluate(dt.date(2026, 2, 28))
    assert res["gross_profit"]["value"].to_list() == [30 * 0.5 - 10, 10 * 0.5 - 20]
    assert catalog.bound["gross_profit"].uses == ("spend",)


def test_positions_of_values_and_keys():
    data, pos = load_yaml("version: 1\nkpis:\n  ctr:\n    formula: sum(a.b)\n    grain: week\n", "f.yaml")
    assert data["kpis"]["ctr"]["grain"] == "week"
    assert pos.values[("kpis", "ctr", "formula")] == (4, 14)
    assert pos.keys[("kpis", "ctr", "grain")] == (5, 5)
    loc = pos.location(("kpis", "ctr", "missing", "deeper"))
    assert (loc.line, loc.column, loc.field) == (4, 5, "kpis.ctr.missing.deeper")


def test_formulas_with_brackets_in_flow_mappings_keep_columns():
    text = 'k: {unit: score, formula: mean(m.s where p in ["x", "y"]), grain: week}\n'
    data, pos = load_yaml(text, "f.yaml")
    assert data["k"]["formula"] == 'mean(m.s where p in ["x", "y"])'
    assert pos.values[("k", "grain")] == (1, text.index("week") + 1)


def test_billion_laughs_is_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    start = time.perf_counter()
    with pytest.raises(KpiError, match="expand to more than"):
        load_yaml("\n".join(lines) + "\n", "bomb.yaml")
    assert time.perf_counter() - start < 5


def test_deep_nesting_and_python_tags_are_refused():
    with pytest.raises(KpiError, match="nesting deeper"):
        load_yaml("a: " + "[" * 100 + "]" * 100 + "\n", "deep.yaml")
    with pytest.raises(KpiError, match="is not allowed"):
        load_yaml("a: !!python/name:os.system\n", "tag.yaml")
    with pytest.raises(KpiError, match="merge keys"):
        load_yaml("base: &b {x: 1}\nk:\n  <<: *b\n", "merge.yaml")


def test_all_schema_errors_of_all_files_are_reported(tmp_path):
    write_spec(tmp_path, "version: 1\nkpis:\n  a: {unit: percnt, formula: x, grain: week}\n", "one.yaml")
    write_spec(tmp_path, "version: 2\nkpis: {}\n", "two.yaml")
    with pytest.raises(KpiError) as info:
        kpi_engine.load(tmp_path)
    text = info.value.render()
    assert "one.yaml:3:13: invalid value `percnt`" in text
    assert "two.yaml:1:10: invalid value `2`" in text
    assert "one.yaml:3:30: unknown name `x`" in text  # a bad unit no longer hides the formula's problem
    assert len(info.value.diagnostics) == 3


def test_kpi_name_defaults_to_id_and_targets_are_typed(tmp_path, ads):
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          ads: {connector: dataframe, time: ts}
        kpis:
          spend:
            unit: currency
            formula: sum(ads.cost)
            grain: month
            target: {direction: decrease, value: 5, baseline: 10, start: 2026-01-01, deadline: 2026-06-30}
            review: {cadence: monthly, meeting: MBR}
    """,
    )
    spec = kpi_engine.load(tmp_path, frames={"ads": ads}).project.kpis["spend"]
    assert spec.name == "spend"
    assert spec.target.deadline == dt.date(2026, 6, 30) and spec.target.value == 5
    assert spec.review.meeting == "MBR"
