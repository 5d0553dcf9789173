"""Plugins: hooks documented, a plugin written in the test, failures isolated, SQL and dataframe connectors."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import inspect
import json
import os
import sqlite3
import types
from pathlib import Path

import polars as pl
import pytest

import kpi_engine
from kpi_engine import Diagnostic, KpiError, MetricFunction, hookimpl, hookspecs
from kpi_engine.connectors import Connector
from kpi_engine.plugins import build_registry

from conftest import require, write_spec

D = dt.datetime


def test_every_hook_is_documented():
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]
    names = {h.__name__ for h in hooks}
    assert names == {"register_connectors", "register_functions", "register_report_formats", "register_channels"}
    guide = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    for hook in hooks:
        assert f"### {hook.__name__}(register)" in guide, f"docs/plugins.md does not document {hook.__name__}"
        doc = inspect.getdoc(hook) or ""
        assert "Called" in doc and "Return" in doc, hook.__name__
        assert list(inspect.signature(hook).parameters) == ["register"]


def test_first_party_plugins_come_through_entry_points():
    names = {ep.name for ep in importlib.metadata.entry_points(group="kpi_engine")}
    assert {"files", "sql", "dataframe"} <= names
    reg = build_registry()
    assert {"csv", "parquet", "ndjson", "sql", "dataframe"} <= set(reg.connectors)
    assert reg.connector_plugin["parquet"] == "files"
    assert {"email", "slack", "teams", "google_chat", "webhook"} <= set(reg.channels)
    assert "channel:email" in reg.plugins["notify"]
    from click.testing import CliRunner

    from kpi_engine.cli import main

    listing = CliRunner().invoke(main, ["plugins"]).output
    assert "notify: channel:email, channel:slack" in listing and "  channel teams: A Microsoft Teams" in listing


def _nps_plugin():
    mod = types.ModuleType("kpi_test_nps")

    @hookimpl
    def register_functions(register):
        register(
            MetricFunction(
                name="promoter_score",
                doc="Net promoter score of 0-10 answers",
                build=lambda score: 100 * ((score >= 9).sum() - (score <= 6).sum()) / score.count(),
            )
        )

    mod.register_functions = register_functions
    return mod


def test_metric_function_from_a_plugin(tmp_path):
    survey = pl.DataFrame(
        {
            "ts": [D(2026, 1, d) for d in range(1, 11)] + [D(2026, 2, 1)],
            "score": [10, 9, 9, 8, 7, 6, 3, 10, None, 0, 10],
            "segment": ["a"] * 5 + ["b"] * 6,
        }
    )
    root = write_spec(
        tmp_path,
        """
        version: 1
        sources:
          survey: {connector: dataframe, time: ts}
        kpis:
          nps: {unit: score, formula: promoter_score(survey.score where segment == "a" or segment == "b"), grain: month}
    """,
    )
    registry = build_registry(extra=[_nps_plugin()])
    res = kpi_engine.load(root, frames={"survey": survey}, registry=registry).evaluate(dt.date(2026, 2, 28))
    jan = [10, 9, 9, 8, 7, 6, 3, 10, 0]
    expected = 100 * (sum(s >= 9 for s in jan) - sum(s <= 6 for s in jan)) / len(jan)
    assert res["nps"]["value"].to_list() == [pytest.approx(expected), pytest.approx(100.0)]
    with pytest.raises(kpi_engine.KpiError, match="unknown function `promoter_score`"):
        kpi_engine.load(root, frames={"survey": survey})  # without the plugin


def test_a_failing_plugin_is_reported_and_the_rest_works(monkeypatch):
    broken = types.ModuleType("kpi_broken")

    @hookimpl
    def register_connectors(register):
        raise RuntimeError("boom")

    broken.register_connectors = register_connectors
    reg = build_registry(extra=[broken])
    assert any(f.plugin == "kpi_broken" and "boom" in f.error for f in reg.failures)
    assert "csv" in reg.connectors

    class BadEntryPoint:
        name = "exploding"

        def load(self):
            raise ImportError("no module named exploding_dep")

    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [*real(group=group), BadEntryPoint()])
    reg = build_registry()
    assert [f.plugin for f in reg.failures] == ["exploding"]
    assert "no module named exploding_dep" in reg.failures[0].error
    assert "parquet" in reg.connectors


def test_a_third_party_connector(tmp_path):
    class Constant(Connector):
        name = "constant"
        options_schema = {"properties": {"rows": {"type": "integer", "minimum": 1}}, "required": ["rows"]}

        def _frame(self, source):
            n = source.options["rows"]
            return pl.LazyFrame({"ts": [D(2026, 1, 1 + i % 28) for i in range(n)], "v": list(range(n))})

        def schema(self, source, env):
            return self._frame(source).collect_schema()

        def scan(self, source, request, env):
            return self._frame(source)

    plugin = types.ModuleType("kpi_constant")
    plugin.register_connectors = hookimpl(lambda register: register(Constant()))
    registry = build_registry(extra=[plugin])
    root = write_spec(
        tmp_path,
        """
        version: 1
        sources:
          c: {connector: constant, rows: 40, time: ts}
        kpis:
          total: {unit: count, formula: sum(c.v), grain: month}
    """,
    )
    res = kpi_engine.load(root, registry=registry).evaluate(dt.date(2026, 1, 31))
    assert res["total"]["value"].to_list() == [float(sum(range(40)))]
    (tmp_path / "kpis.yaml").write_text((tmp_path / "kpis.yaml").read_text().replace("rows: 40", "rows: 0"))
    with pytest.raises(kpi_engine.KpiError, match=r"kpis.yaml:3:\d+: .*(minimum|less than)"):
        kpi_engine.load(root, registry=registry)


@pytest.fixture()
def crm_db(tmp_path):
    db = tmp_path / "crm.db"
    con = sqlite3.connect(db)
    con.execute(
        'CREATE TABLE "lead; DROP TABLE x" (created_at TIMESTAMP, "sta""ge" TEXT, amount REAL, qualified BOOLEAN)'
    )
    rows = [
        ("2026-01-05 10:00:00", "won", 100.0, 1),
        ("2026-01-20 23:30:00", "lost", 50.0, 0),
        ("2026-02-01 00:10:00", "won", 70.0, 1),
        ("2025-12-31 23:59:00", "won", 5.0, 1),
    ]
    con.executemany('INSERT INTO "lead; DROP TABLE x" VALUES (?, ?, ?, ?)', rows)
    con.commit()
    con.close()
    return db


def test_sqlite_table_with_hostile_names(tmp_path, crm_db):
    root = write_spec(
        tmp_path,
        """
        version: 1
        sources:
          crm: {connector: sql, path: crm.db, table: "lead; DROP TABLE x", time: created_at}
        kpis:
          won: {unit: count, formula: 'count(crm where `sta"ge` == "won")', grain: month}
          qualified_amount: {unit: currency, formula: sum(crm.amount where qualified), grain: month}
    """,
    )
    res = kpi_engine.load(root).evaluate(dt.date(2026, 2, 28), start=dt.date(2026, 1, 1))
    assert res["won"]["value"].to_list() == [1.0, 1.0]
    assert res["qualified_amount"]["value"].to_list() == [100.0, 70.0]
    con = sqlite3.connect(crm_db)
    assert con.execute('SELECT count(*) FROM "lead; DROP TABLE x"').fetchone() == (4,)  # nothing was dropped


def test_sql_query_and_duckdb(tmp_path, crm_db):
    duckdb = require("duckdb")
    ddb = tmp_path / "w.duckdb"
    with duckdb.connect(str(ddb)) as con:
        con.execute(
            "CREATE TABLE visits AS SELECT TIMESTAMP '2026-01-01 00:00:00' + INTERVAL (i) HOUR AS ts, i % 3 AS k "
            "FROM range(0, 24 * 40) t(i)"
        )
    root = write_spec(
        tmp_path,
        """
        version: 1
        sources:
          crm: {connector: sql, url: "sqlite:///crm.db", query: "SELECT * FROM \\"lead; DROP TABLE x\\" WHERE amount > 60", time: created_at}
          web: {connector: sql, path: w.duckdb, table: visits, time: ts}
        kpis:
          big: {unit: count, formula: count(crm), grain: month}
          visits: {unit: count, formula: count(web where k == 0), grain: month}
    """,
    )
    res = kpi_engine.load(root).evaluate(dt.date(2026, 2, 9), start=dt.date(2026, 1, 1))
    assert res["big"]["value"].to_list() == [1.0, 1.0]
    assert res["visits"]["value"].to_list() == [31 * 24 / 3, 9 * 24 / 3]


def test_dataframe_connector_missing_frame(tmp_path):
    root = write_spec(
        tmp_path,
        """
        version: 1
        sources:
          ads: {connector: dataframe, time: ts}
        kpis:
          n: {unit: count, formula: count(ads), grain: day}
    """,
    )
    with pytest.raises(kpi_engine.KpiError, match=r"kpis.yaml:3:3: no frame `ads` was passed for source `ads`"):
        kpi_engine.load(root, frames={"add": pl.DataFrame()})


class _Exploding(Connector):
    """A buggy third-party connector: raises in schema() or in scan()."""

    options_schema = {"properties": {"when": {"enum": ["schema", "scan"]}}, "required": ["when"]}

    def __init__(self, name):
        self.name = name

    def schema(self, source, env):
        if source.options["when"] == "schema":
            raise RuntimeError("schema exploded")
        return pl.Schema({"ts": pl.Datetime("us"), "v": pl.Int64})

    def scan(self, source, request, env):
        raise ZeroDivisionError("scan exploded")


def test_a_connector_that_raises_leaves_a_partial_result_and_exit_1(tmp_path):
    from click.testing import CliRunner

    from kpi_engine import plugins as plugins_module
    from kpi_engine.cli import main

    plugin = types.ModuleType("kpi_exploding")
    plugin.register_connectors = hookimpl(lambda register: register(_Exploding("exploding")))
    registry = build_registry(extra=[plugin])
    (tmp_path / "good.csv").write_text("ts,v\n2026-01-05T10:00:00,3\n2026-01-06T10:00:00,4\n")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          good: {connector: csv, path: good.csv, time: ts}
          bad_schema: {connector: exploding, when: schema, time: ts}
          bad_scan: {connector: exploding, when: scan, time: ts}
        kpis:
          fine: {unit: count, formula: sum(good.v), grain: month}
          broken: {unit: count, formula: sum(bad_schema.v), grain: month}
          crashes: {unit: count, formula: sum(bad_scan.v) + sum(good.v), grain: month}
    """,
    )
    catalog = kpi_engine.load(tmp_path, registry=registry)
    assert [f.source for f in catalog.failures] == ["bad_schema"]
    result = catalog.evaluate(dt.date(2026, 1, 31))
    assert list(result.series) == ["fine"] and result["fine"]["value"].to_list() == [7.0]
    assert result.errors() == [
        "connector `exploding` (plugin `kpi_exploding`) failed on source `bad_schema`: RuntimeError: schema exploded; "
        "skipped KPIs: broken",
        "connector `exploding` (plugin `kpi_exploding`) failed on source `bad_scan`: ZeroDivisionError: scan exploded; "
        "skipped KPIs: crashes",
    ]
    original = plugins_module._DEFAULT
    plugins_module._DEFAULT = registry
    try:
        res = CliRunner().invoke(main, ["run", str(tmp_path), "--as-of", "2026-01-31", "--format", "json"])
    finally:
        plugins_module._DEFAULT = original
    assert res.exit_code == 1
    import json

    doc = json.loads(res.stdout)
    assert [k["id"] for k in doc["kpis"]] == ["fine"] and len(doc["errors"]) == 2
    assert "errors (partial result):" in res.stderr and "skipped KPIs: broken" in res.stderr


def test_the_kpis_a_failed_source_skips_come_from_binding(tmp_path):
    """A bare `leads` inside an aggregate over `ads` is ads' column, not the source `leads`: only binding knows."""
    plugin = types.ModuleType("kpi_exploding")
    plugin.register_connectors = hookimpl(lambda register: register(_Exploding("exploding")))
    registry = build_registry(extra=[plugin])
    (tmp_path / "ads.csv").write_text("ts,cost,leads\n2026-01-05T10:00:00,30,3\n2026-01-06T10:00:00,40,0\n")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          ads: {connector: csv, path: ads.csv, time: ts}
          leads: {connector: exploding, when: schema, time: ts}
        kpis:
          cost_with_leads: {unit: currency, formula: sum(ads.cost where leads > 0), grain: month}
          crm_leads: {unit: count, formula: count(leads where stage == "won") + sum(leads.v), grain: month}
          cpl: {unit: currency, formula: cost_with_leads / crm_leads, grain: month}
    """,
    )
    catalog = kpi_engine.load(tmp_path, registry=registry)
    assert {k: b.sources for k, b in catalog.bound.items()} == {
        "cost_with_leads": ("ads",),
        "crm_leads": ("leads",),
        "cpl": ("ads", "leads"),
    }
    result = catalog.evaluate(dt.date(2026, 1, 31))
    assert list(result.series) == ["cost_with_leads"] and result["cost_with_leads"]["value"].to_list() == [30]
    assert result.errors() == [
        "connector `exploding` (plugin `kpi_exploding`) failed on source `leads`: RuntimeError: schema exploded; "
        "skipped KPIs: cpl, crm_leads"
    ]


def _module(name: str, **hooks) -> types.ModuleType:
    """A plugin module written in the test, with the given hook implementations."""
    module = types.ModuleType(name)
    for hook, impl in hooks.items():
        setattr(module, hook, hookimpl(impl))
    return module


class _Thousand(Connector):
    """A third-party `csv` connector that reads nothing and claims 1,000 clicks."""

    name = "csv"
    options_schema = {"properties": {"path": {"type": "string"}}, "required": ["path"]}

    def schema(self, source, env):
        return pl.Schema({"ts": pl.Datetime("us"), "clicks": pl.Int64})

    def scan(self, source, request, env):
        return pl.LazyFrame({"ts": [D(2026, 4, 1)], "clicks": [1000]})


def test_a_name_two_plugins_register_is_used_by_neither(tmp_path):
    """Issue 12, items 3 and 10: a third-party `csv` made kpi run print 1,000 where the data gives 5."""
    (tmp_path / "a.csv").write_text("ts,clicks\n2026-04-01T10:00:00,5\n")
    write_spec(tmp_path, "version: 1\nsources:\n  a: {connector: csv, path: a.csv, time: ts}\nkpis:\n  n: {unit: count, formula: sum(a.clicks), grain: day}\n")
    evil = _module("kpi_evil", register_connectors=lambda register: register(_Thousand()))
    reg = build_registry(extra=[evil])
    assert "csv" not in reg.connectors
    assert any(f.plugin == "kpi_evil" and "`files`, `kpi_evil`" in f.error for f in reg.failures)
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(tmp_path, registry=reg)
    assert "connector `csv` is registered by plugins `files`, `kpi_evil`, so neither is used" in info.value.render()
    assert kpi_engine.load(tmp_path).evaluate(dt.date(2026, 4, 1))["n"]["value"].to_list() == [5]


def test_a_function_and_a_format_two_plugins_register(tmp_path, monkeypatch):
    from kpi_engine import ReportFormat

    rival = _module(
        "kpi_rival",
        register_functions=lambda register: register(MetricFunction("nps", lambda s: s.count().cast(pl.Float64))),
        register_report_formats=lambda register: register(ReportFormat("md", "md", render=lambda report: "x")),
    )
    reg = build_registry(extra=[rival])
    assert "nps" not in reg.functions and "md" not in reg.formats
    write_spec(tmp_path, "version: 1\nsources:\n  s: {connector: dataframe, time: ts}\nkpis:\n  n: {unit: score, formula: nps(s.score), grain: month}\n")
    frames = {"s": pl.DataFrame({"ts": [D(2026, 4, 1)], "score": [10]})}
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(tmp_path, frames=frames, registry=reg)
    assert "function `nps` is registered by plugins `marketing`, `kpi_rival`, so neither is used" in info.value.render()


def test_registration_mistakes_are_the_plugins_own():
    class NoSchema(Connector):
        name = "rest"
        options_schema = {"properties": {"url": {"type": "strng"}}}

    def misspelt(register):  # not a hook: pluggy reports it instead of ignoring it
        register(NoSchema())

    plugin = _module("kpi_sloppy", register_connectors=lambda register: (register({"name": "x"}), register(NoSchema())))
    plugin.register_connector = hookimpl(misspelt)
    reg = build_registry(extra=[plugin])
    errors = [f.error for f in reg.failures if f.plugin == "kpi_sloppy"]
    assert "register() was given dict, not a Connector" in errors
    assert any("connector `rest` has an invalid options_schema" in e for e in errors)
    assert any(f.stage == "hooks" and "register_connector" in f.error for f in reg.failures)
    assert "csv" in reg.connectors and "rest" not in reg.connectors


def test_two_packages_with_one_plugin_name(tmp_path):
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    for dist in ("kpi-one", "kpi-two"):
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[kpi_engine]\nshared = {dist.replace('-', '_')}\n")
        (site / f"{dist.replace('-', '_')}.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(site)}
    res = subprocess.run([sys.executable, "-m", "kpi_engine", "plugins"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 1
    assert "packages `kpi-one` and `kpi-two` both install a plugin named `shared`" in res.stderr


def test_report_format_comes_from_a_known_suffix(tmp_path):
    from click.testing import CliRunner

    from kpi_engine.cli import main

    write_spec(tmp_path, "version: 1\nsources:\n  a: {connector: csv, path: a.csv, time: ts}\nkpis:\n  n: {unit: count, formula: count(a), grain: day}\n")
    (tmp_path / "a.csv").write_text("ts,x\n2026-04-01T10:00:00,1\n")
    res = CliRunner().invoke(main, ["report", str(tmp_path), "--as-of", "2026-04-01", "-o", str(tmp_path / "r.json")])
    assert res.exit_code == 2 and not (tmp_path / "r.json").exists()
    assert "cannot tell which report format `r.json` is" in res.stderr


def test_plugin_mistakes_at_run_time_are_the_plugins_own(tmp_path):
    """A scan() returning an eager frame skips that source's KPIs with the plugin named; the rest still run."""

    class Eager(_Thousand):
        name = "eager"

        def scan(self, source, request, env):
            return pl.DataFrame({"ts": [D(2026, 4, 1)], "clicks": [1]})

    plugin = _module("kpi_eager", register_connectors=lambda register: register(Eager()))
    (tmp_path / "a.csv").write_text("ts,clicks\n2026-04-01T10:00:00,5\n")
    write_spec(
        tmp_path,
        "version: 1\nsources:\n  e: {connector: eager, path: x, time: ts}\n  a: {connector: csv, path: a.csv, time: ts}\n"
        "kpis:\n  bad: {unit: count, formula: sum(e.clicks), grain: day}\n  good: {unit: count, formula: sum(a.clicks), grain: day}\n",
    )
    result = kpi_engine.load(tmp_path, registry=build_registry(extra=[plugin])).evaluate(dt.date(2026, 4, 1))
    assert result["good"]["value"].to_list() == [5] and "bad" not in result.series
    assert result.errors() == [
        "connector `eager` (plugin `kpi_eager`) failed on source `e`: TypeError: scan() returned DataFrame, "
        "not a polars LazyFrame (use .lazy()); skipped KPIs: bad"
    ]


def test_the_arity_hint_shows_a_functions_other_arguments(tmp_path):
    write_spec(tmp_path, "version: 1\nsources:\n  s: {connector: dataframe, time: ts}\nkpis:\n  t: {unit: ratio, formula: share_top_box(s.score), grain: month}\n")
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(tmp_path, frames={"s": pl.DataFrame({"ts": [D(2026, 4, 1)], "score": [5]})})
    text = info.value.render()
    assert "share_top_box() takes 2 argument(s), got 1" in text
    assert "e.g. share_top_box(survey.score, 4)" in text


def test_an_installed_plugin_passed_again_is_registered_once():
    """The example plugin's documented tests pass its module to build_registry while it is installed too."""
    import kpi_files

    reg = build_registry(extra=[kpi_files])
    assert reg.connector_plugin["csv"] == "files" and not reg.clashes


def test_a_metric_function_that_raises_is_its_plugins_failure(tmp_path):
    """Issue 12, item 10: the KPIs of that source are skipped with the function and plugin named."""

    def boom(score):
        raise ValueError("no idea how to score this")

    plugin = _module("kpi_boom", register_functions=lambda register: register(MetricFunction("boom", boom)))
    write_spec(
        tmp_path,
        "version: 1\nsources:\n  s: {connector: dataframe, time: ts}\n  t: {connector: dataframe, time: ts}\n"
        "kpis:\n  bad: {unit: score, formula: boom(s.score), grain: month}\n"
        "  good: {unit: count, formula: count(t), grain: month}\n",
    )
    frames = {"s": pl.DataFrame({"ts": [D(2026, 4, 1)], "score": [5]}), "t": pl.DataFrame({"ts": [D(2026, 4, 1)]})}
    catalog = kpi_engine.load(tmp_path, frames=frames, registry=build_registry(extra=[plugin]))
    result = catalog.evaluate(dt.date(2026, 4, 30))
    assert result["good"]["value"].to_list() == [1] and "bad" not in result.series
    assert result.errors() == [
        "function `boom` (plugin `kpi_boom`) failed on source `s`: ValueError: no idea how to score this; "
        "skipped KPIs: bad"
    ]


def test_a_function_declares_its_argument_kinds_and_checks_each_call(tmp_path):
    """Issue 12, item 10: misuse of a plugin function is caught by `kpi validate`, at file:line:col."""
    from click.testing import CliRunner

    from kpi_engine import plugins as plugins_module
    from kpi_engine.cli import main

    seen = []

    def check(call):
        seen.append(call)
        return None if call.constants.get(1) in ("day", "week") else f"the unit must be \"day\" or \"week\", not `{call.args[1]}`"

    first_seen = MetricFunction(
        "days_to_first",
        lambda at, unit: at.min().cast(pl.Float64),
        min_args=2,
        max_args=2,
        arg_kinds=("datetime", "str"),
        check=check,
        doc='Days from the period start to the first event, e.g. days_to_first(s.at, "day")',
    )
    plugin = _module("kpi_timing", register_functions=lambda register: register(first_seen))
    registry = build_registry(extra=[plugin])
    (tmp_path / "s.csv").write_text("ts,at,score\n2026-04-01T10:00:00,2026-04-01T11:00:00,3\n")
    spec = write_spec(
        tmp_path,
        """
        version: 1
        sources:
          s: {connector: csv, path: s.csv, time: ts}
        kpis:
          good: {unit: count, formula: 'days_to_first(s.at, "day")', grain: month}
          kind: {unit: count, formula: 'days_to_first(s.score, "day")', grain: month}
          unit: {unit: count, formula: 'days_to_first(s.at, "hour")', grain: month}
          top: {unit: ratio, formula: 'share_top_box(s.score, s.score)', grain: month}
        """,
    )
    original = plugins_module._DEFAULT
    plugins_module._DEFAULT = registry
    try:
        res = CliRunner().invoke(main, ["validate", str(spec)])
    finally:
        plugins_module._DEFAULT = original
    assert res.exit_code == 2
    lines = res.stderr
    assert "kpis.yaml:6:47: days_to_first() argument 1 must be a timestamp, but `s.score` is a number" in lines
    assert 'kpis.yaml:7:33: days_to_first(): the unit must be "day" or "week", not `"hour"`' in lines
    assert 'hint: days_to_first(): Days from the period start to the first event, e.g. days_to_first(s.at, "day")' in lines
    assert "kpis.yaml:8:32: share_top_box(): the threshold must be a number, e.g. share_top_box(s.score, 4), not `s.score`" in lines
    assert "good" not in lines and "Traceback" not in lines
    call = next(c for c in seen if c.constants.get(1) == "day")
    assert (call.name, call.source, call.args, call.kinds) == ("days_to_first", "s", ("s.at", '"day"'), ("datetime", "str"))


def test_a_check_that_raises_is_blamed_on_its_plugin(tmp_path):
    def check(call):
        raise KeyError("oops")

    plugin = _module("kpi_flaky", register_functions=lambda register: register(MetricFunction("flaky", lambda x: x.sum(), check=check)))
    write_spec(tmp_path, "version: 1\nsources:\n  s: {connector: dataframe, time: ts}\nkpis:\n  n: {unit: count, formula: flaky(s.x), grain: month}\n")
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(tmp_path, frames={"s": pl.DataFrame({"ts": [D(2026, 4, 1)], "x": [1]})}, registry=build_registry(extra=[plugin]))
    assert "function `flaky` (plugin `kpi_flaky`) failed checking this call: KeyError: 'oops'" in info.value.render()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"min_args": 2, "max_args": 1}, "function `f` takes min_args=2 to max_args=1 arguments: need 1 <= min <= max <= 16"),
        ({"min_args": 0}, "function `f` takes min_args=0 to max_args=1 arguments"),
        ({"arg_kinds": ("number",)}, "function `f` has arg_kinds ('number',): a tuple of num, str, bool, date, datetime, duration, any"),
        ({"arg_kinds": "num"}, "function `f` has arg_kinds 'num'"),
        ({"check": "yes"}, "function `f`: build, check and finish must be callables"),
    ],
)
def test_a_function_declaration_is_checked_at_registration(fields, error):
    fn = MetricFunction("f", lambda x: x.sum(), **fields)
    reg = build_registry(extra=[_module("kpi_decl", register_functions=lambda register: register(fn))])
    assert "f" not in reg.functions
    assert any(f.plugin == "kpi_decl" and f.error.startswith(error) for f in reg.failures), reg.failures


class _Rest(Connector):
    """A REST API connector as a plugin author writes it: the API's fields are fixed, reading needs a token."""

    name = "rest"
    options_schema = {"properties": {"endpoint": {"type": "string"}}, "required": ["endpoint"]}
    calls: list[str] = []

    def declared_schema(self, source):
        return pl.Schema({"day": pl.Date, "campaign": pl.String, "clicks": pl.Int64})

    def schema(self, source, env):
        self.calls.append("schema")
        token = os.environ.get("REST_TOKEN")
        if not token:
            raise KpiError(Diagnostic("REST_TOKEN is not set", source.loc("endpoint")))
        clicks = pl.String if token == "changed" else pl.Int64
        return pl.Schema({"day": pl.Date, "campaign": pl.String, "clicks": clicks})

    def scan(self, source, request, env):
        self.calls.append("scan")
        return pl.LazyFrame({"day": [dt.date(2026, 4, 1)] * 2, "campaign": ["a", "b"], "clicks": [3, 4]})


def test_validate_uses_a_connectors_declared_columns_offline(tmp_path, monkeypatch):
    """Issue 12, item 10: `kpi validate` needs neither the API nor its token when the connector declares columns."""
    from click.testing import CliRunner

    from kpi_engine import plugins as plugins_module
    from kpi_engine.cli import main

    registry = build_registry(extra=[_module("kpi_rest", register_connectors=lambda register: register(_Rest()))])
    spec = tmp_path / "kpis.yaml"
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          api: {connector: rest, endpoint: /stats, time: day}
        kpis:
          clicks: {unit: count, formula: sum(api.clicks), grain: day, dimensions: [campaign]}
        """,
    )
    monkeypatch.setattr(plugins_module, "_DEFAULT", registry)
    monkeypatch.delenv("REST_TOKEN", raising=False)
    _Rest.calls.clear()
    ok = CliRunner().invoke(main, ["validate", str(spec)])
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: 1 KPIs"), ok.stderr
    assert _Rest.calls == []  # nothing read
    spec.write_text(spec.read_text().replace("sum(api.clicks)", "sum(api.click)"))
    typo = CliRunner().invoke(main, ["validate", str(spec)])
    assert typo.exit_code == 2 and "unknown column `click` in source `api`" in typo.stderr
    assert "did you mean `clicks`?" in typo.stderr
    spec.write_text(spec.read_text().replace("sum(api.click)", "sum(api.clicks)"))
    no_token = CliRunner().invoke(main, ["run", str(spec), "--as-of", "2026-04-01"])
    assert no_token.exit_code == 2 and "REST_TOKEN is not set" in no_token.stderr
    monkeypatch.setenv("REST_TOKEN", "secret")
    run = CliRunner().invoke(main, ["run", str(spec), "--as-of", "2026-04-01", "--format", "json"])
    assert run.exit_code == 0, run.stderr
    rows = json.loads(run.stdout)["kpis"][0]["series"]
    assert {r["dims"].get("campaign", "total"): r["value"] for r in rows} == {"a": 3, "b": 4, "total": 7}
    monkeypatch.setenv("REST_TOKEN", "changed")
    drift = CliRunner().invoke(main, ["run", str(spec), "--as-of", "2026-04-01"])
    assert drift.exit_code == 2
    assert "column `clicks` of source `api` is String, but connector `rest` declares Int64" in drift.stderr


def test_a_scan_that_contradicts_its_schema_is_its_plugins_failure(tmp_path):
    class Drifting(_Rest):
        name = "drifting"

        def schema(self, source, env):
            return self.declared_schema(source)

        def scan(self, source, request, env):  # `day` as a timestamp, though schema() said Date
            return pl.LazyFrame({"day": [D(2026, 4, 1)], "campaign": ["a"], "clicks": [3]})

    plugin = _module("kpi_drifting", register_connectors=lambda register: register(Drifting()))
    write_spec(
        tmp_path,
        "version: 1\nsources:\n  api: {connector: drifting, endpoint: /x, time: day}\n  t: {connector: dataframe, time: ts}\n"
        "kpis:\n  bad: {unit: count, formula: sum(api.clicks), grain: day}\n  good: {unit: count, formula: count(t), grain: day}\n",
    )
    catalog = kpi_engine.load(tmp_path, frames={"t": pl.DataFrame({"ts": [D(2026, 4, 1)]})}, registry=build_registry(extra=[plugin]))
    result = catalog.evaluate(dt.date(2026, 4, 1))
    assert result["good"]["value"].to_list() == [1] and "bad" not in result.series
    assert result.errors() == [
        "connector `drifting` (plugin `kpi_drifting`) failed on source `api`: TypeError: scan() returned column "
        "`day` as Datetime(time_unit='us', time_zone=None), but schema() said Date; skipped KPIs: bad"
    ]
