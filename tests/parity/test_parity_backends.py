"""The parity suite's specs (MetricFlow's fixture tables) give the same numbers from a DuckDB file and from
PostgreSQL as from the CSV files (issue 14, item 3): pushed down where the database can aggregate, rows read
from it otherwise (lookups, conversions, semi-additive sums)."""

from __future__ import annotations

import re
import shutil

import pytest
import test_metricflow_conversions as conversions
import test_metricflow_semi_additive as semi_additive
import test_metricflow_simple_model as simple_model
from dbload import to_duckdb, to_postgres, to_sqlite
from test_backends import same

import kpi_engine
from kpi_engine.connectors import ScanRequest

from conftest import pg_database, write_spec

MODULES = {"simple_model": simple_model, "conversions": conversions, "semi_additive": semi_additive}


def csv_tables(root, module) -> tuple[kpi_engine.Result, dict[str, object], str]:
    """The module's result from its CSV files, the tables it reads (typed as the csv connector reads them),
    and its spec."""
    for name in set(re.findall(r"path: (\w+\.csv)", module.SPEC)):
        shutil.copy(module.FIXTURES / name, root / name)
    write_spec(root, module.SPEC)
    catalog = kpi_engine.load(root)
    specs = {**catalog.project.sources, **catalog.project.lookups}
    tables = {}
    csv = catalog.registry.connectors["csv"]
    for spec in specs.values():  # each file's own columns (a source's schema also holds its lookups')
        columns = tuple(csv.schema(spec, catalog.env))
        frame = csv.scan(spec, ScanRequest(columns, spec.time or ""), catalog.env).collect()
        tables[spec.options["path"].removesuffix(".csv")] = frame.select(columns)
    return catalog.evaluate(module.AS_OF), tables, module.SPEC


def moved(spec: str, location: str) -> str:
    return re.sub(r"connector: csv, path: (\w+)\.csv", lambda m: f"connector: sql, {location}, table: {m.group(1)}", spec)


@pytest.mark.parametrize("module", list(MODULES))
@pytest.mark.parametrize("backend", ["duckdb", "postgres", "sqlite"])
def test_parity_specs_agree_across_backends(backend, module, pg_server, tmp_path):
    (tmp_path / "csv").mkdir()
    expected, tables, spec = csv_tables(tmp_path / "csv", MODULES[module])
    if backend == "duckdb":
        to_duckdb(tmp_path / "mf.duckdb", tables)
        location = f"path: {tmp_path / 'mf.duckdb'}"
    elif backend == "sqlite":
        to_sqlite(tmp_path / "mf.db", tables)
        location = f"path: {tmp_path / 'mf.db'}"
    else:
        url = pg_database(pg_server, f"mf_{module}")
        to_postgres(url, tables)
        location = f"url: '{url}'"
    root = write_spec(tmp_path / "db", moved(spec, location))
    result = kpi_engine.load(root, allow_outside=True).evaluate(MODULES[module].AS_OF)
    assert sorted(result.series) == sorted(expected.series)
    assert same(result, expected) > 20
