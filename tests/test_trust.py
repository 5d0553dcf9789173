"""Issue 11: every wrong number, escape and crash found on real exports and by attack, each read back exactly.

Each test names the item it guards. Numbers are checked against an independent computation (DuckDB SQL or a
hand-written polars expression), messages against their exact text, and exit codes against the README's table.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from conftest import write_spec
from kpi_engine.cli import main


def run(*args: str) -> tuple[int, str, str]:
    """`kpi ARGS` in process: exit code, stdout, stderr."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def run_json(*args: str) -> dict:
    code, out, err = run(*args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


# 1. A period's value, coverage and has_data never depend on the requested window.
def test_window_does_not_move_the_data_span(tmp_path: Path) -> None:
    days = [dt.date(2019, 12, 1) + dt.timedelta(days=i) for i in range(397) if i % 5 == 1]
    pl.DataFrame({"ts": [dt.datetime.combine(d, dt.time(10)) for d in days], "x": [1] * len(days)}).write_csv(
        tmp_path / "b.csv"
    )
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          b: {connector: csv, path: b.csv, time: ts}
        kpis:
          n: {name: N, unit: count, formula: count(b), grain: week}
        """,
    )
    spec = str(tmp_path / "kpis.yaml")
    windows = [("--to", "2020-01-12"), ("--to", "2020-01-31"), ("--from", "2020-01-06", "--to", "2020-01-12"), ()]
    outputs = [run_json("run", spec, "--as-of", "2021-01-31", *w) for w in windows]
    for out in outputs:
        assert out["sources"]["b"] == str(max(days))
        w02 = next(r for r in out["kpis"][0]["series"] if r["period"] == "2020-W02")
        expected = sum(1 for d in days if dt.date(2020, 1, 6) <= d <= dt.date(2020, 1, 12))
        assert (w02["value"], w02["coverage"], w02["has_data"]) == (expected, 1.0, True)
    by_period = [{r["period"]: r for r in o["kpis"][0]["series"]} for o in outputs]
    for period, row in by_period[2].items():
        assert all(b[period] == row for b in by_period if period in b)
