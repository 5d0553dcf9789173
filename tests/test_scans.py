"""One scan per source, measured: scan nodes in the optimised plans polars will run, and real reads counted
by a polars IO source, for the shipped demo, the benchmark catalogue and a small spec with many groups.

The one stated exception: with --from/--to, a source's data span is a second read of its time column alone
(values must not depend on the window, so the span comes from every row up to as-of).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import kpi_engine
from kpi_engine import hookimpl
from kpi_engine.connectors import Connector
from kpi_engine.execute import build_queries
from kpi_engine.plan import Window
from kpi_engine.plugins import build_registry

from conftest import write_spec

ROOT = Path(__file__).parents[1]
AS_OF = dt.date(2026, 6, 30)


def scans(catalog, window: Window) -> Counter:
    """How many scan nodes each file has across the optimised plans of one run."""
    plan = catalog.plan(window)
    queries, _ = build_queries(plan, catalog.registry.connectors, catalog.registry.functions, catalog.env)
    text = pl.explain_all(queries)
    return Counter(Path(p).name for p in re.findall(r"Parquet SCAN \[([^\]]+)\]", text))


def test_the_demo_reads_each_source_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_ENGINE_CACHE", str(tmp_path / "cache"))
    catalog = kpi_engine.load(ROOT / "kpi_specs")
    counts = scans(catalog, Window(AS_OF))
    assert len(counts) == 9 and set(counts.values()) == {1}, counts  # orders, sessions and tickets were read twice


def test_the_bench_catalogue_reads_each_source_once(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    import generate

    folder = tmp_path / "bench"
    folder.mkdir()
    generate.generate(20_000, folder)
    shutil.copy(ROOT / "bench" / "catalogue.yaml", folder / "kpis.yaml")
    counts = scans(kpi_engine.load(folder), Window(AS_OF))
    assert counts and set(counts.values()) == {1}, counts
    windowed = scans(kpi_engine.load(folder), Window(AS_OF, dt.date(2026, 4, 1), dt.date(2026, 5, 31)))
    assert set(windowed.values()) == {2}, windowed  # the documented exception: the span's one-column read


class CountingSource(Connector):
    """A connector whose rows come from a polars IO source that counts how often it is read."""

    name = "counting"
    reads = 0

    def _frame(self) -> pl.LazyFrame:
        schema = {"ts": pl.Datetime("us"), "channel": pl.String, "clicks": pl.Int64, "visitor": pl.Int64}
        data = pl.DataFrame(
            {
                "ts": [dt.datetime(2026, 4, 1) + dt.timedelta(hours=7 * i) for i in range(400)],
                "channel": ["search", "social"] * 200,
                "clicks": list(range(400)),
                "visitor": [i % 37 for i in range(400)],
            },
            schema=schema,
        )

        def read(columns, predicate, n_rows, batch_size) -> Iterator[pl.DataFrame]:
            CountingSource.reads += 1
            frame = data.select(columns) if columns else data
            yield frame.filter(predicate) if predicate is not None else frame

        return pl.io.plugins.register_io_source(read, schema=schema)

    def schema(self, source, env):
        return self._frame().collect_schema()

    def scan(self, source, request, env):
        return self._frame()


def counting_catalog(folder: Path, kpis: str):
    """A catalogue whose one source `c` is a CountingSource, with the given `kpis:` entries."""
    plugin = type(sys)("kpi_counting")
    plugin.register_connectors = hookimpl(lambda register: register(CountingSource()))
    write_spec(folder, "version: 1\nsources:\n  c: {connector: counting, time: ts}\nkpis:\n" + kpis)
    catalog = kpi_engine.load(folder, registry=build_registry(extra=[plugin]))
    CountingSource.reads = 0
    return catalog


def test_an_io_source_is_read_once_for_all_groups(tmp_path):
    catalog = counting_catalog(
        tmp_path,
        "  clicks_week: {unit: count, formula: sum(c.clicks), grain: week, dimensions: [channel]}\n"
        "  visitors_month: {unit: count, formula: count_distinct(c.visitor), grain: month, dimensions: [channel]}\n"
        "  visitors_week: {unit: count, formula: count_distinct(c.visitor), grain: week}\n"
        '  search_clicks: {unit: count, formula: sum(c.clicks where channel == "search"), grain: day}\n',
    )
    result = catalog.evaluate(dt.date(2026, 6, 30))
    assert CountingSource.reads == 1  # was 4: once per group
    total = result["clicks_week"].filter(pl.col("is_total"))["value"].sum()
    cutoff = dt.datetime(2026, 7, 1)
    assert total == sum(i for i in range(400) if dt.datetime(2026, 4, 1) + dt.timedelta(hours=7 * i) < cutoff)


@pytest.mark.parametrize("window", [(None, None), (dt.date(2026, 5, 1), None)])
def test_reads_with_and_without_a_window(tmp_path, window):
    catalog = counting_catalog(
        tmp_path,
        "  a: {unit: count, formula: sum(c.clicks), grain: week}\n"
        "  b: {unit: count, formula: count_distinct(c.visitor), grain: month}\n",
    )
    catalog.evaluate(dt.date(2026, 6, 30), start=window[0], end=window[1])
    assert CountingSource.reads == (1 if window[0] is None else 2)
