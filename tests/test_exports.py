"""Real-looking exports (tests/exports.py) read with the csv connector's options, every value checked against
DuckDB SQL (or, for the Windows-1252 file, Python's csv module) reading the same bytes on its own terms.

The DuckDB queries read every field as text and convert it themselves: they share no parsing with the engine.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path

import exports
import pytest
from click.testing import CliRunner

from kpi_engine.cli import main

from conftest import require

duckdb = require("duckdb")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exports")
    exports.write_all(root)
    return root


def engine(folder: Path, spec: str, as_of: str, *args: str) -> dict:
    """{kpi: {(period, dim value or None): value}} from `kpi run --format json`."""
    (folder / "kpis.yaml").write_text(spec)
    result = CliRunner().invoke(main, ["run", str(folder / "kpis.yaml"), "--as-of", as_of, "--format", "json", *args])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    return {
        k["id"]: {
            (r["start"][:7] if k["grain"] == "month" else r["start"], next(iter(r["dims"].values()), None)): r["value"]
            for r in k["series"]
            if r["has_data"]
        }
        for k in doc["kpis"]
    }


def same(got: dict, expected: dict) -> None:
    assert expected, "the independent computation found nothing"
    for key, value in expected.items():
        assert key in got, f"the engine has no value for {key}"
        assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-9), f"{key}: engine {got[key]} != {value}"
    extra = {k: v for k, v in got.items() if k not in expected and v not in (0, None)}
    assert not extra, f"the engine has values the check does not: {extra}"


def rows(sql: str, period: str = "%Y-%m") -> dict:
    """{(period, dim value or None): value} from a query's rows (period first, value last)."""
    out = {}
    for *key, value in duckdb.sql(sql).fetchall():
        key = [k.strftime(period) if isinstance(k, dt.date) else k for k in key]
        out[(key[0], key[1] if len(key) > 1 else None)] = value
    return out


def test_retail_export_semicolons_decimal_commas_na_and_two_us_date_formats(folder: Path) -> None:
    got = engine(folder, exports.RETAIL_SPEC, "2011-12-31")
    source = f"""read_csv('{folder / "retail.csv"}', delim=';', header=true, all_varchar=true, quote='"')"""
    parsed = f"""
        SELECT strptime(InvoiceDate, ['%m/%d/%y %H:%M', '%m/%d/%Y %H:%M']) AS t, Country, InvoiceNo,
               CASE WHEN Quantity = 'NA' THEN NULL ELSE Quantity::BIGINT END AS q,
               replace(replace(UnitPrice, '.', ''), ',', '.')::DOUBLE AS price
        FROM {source}"""
    by_country = rows(f"SELECT date_trunc('month', t), Country, sum(q * price) FROM ({parsed}) GROUP BY ALL")
    totals = rows(f"SELECT date_trunc('month', t), sum(q * price) FROM ({parsed}) GROUP BY ALL")
    same(got["revenue"], {**by_country, **totals})
    same(got["orders"], rows(f"SELECT date_trunc('month', t), count(DISTINCT InvoiceNo) FROM ({parsed}) GROUP BY ALL"))
    missing = rows(f"SELECT date_trunc('month', t), count(*) FILTER (q IS NULL) FROM ({parsed}) GROUP BY ALL")
    same(got["missing_quantity"], {k: v for k, v in missing.items() if v})
    assert sum(got["orders"].values()) > 900 and ("2010-12", None) in got["orders"]  # both date formats read


@pytest.mark.parametrize("calendar", ["Europe/London", "UTC"])
def test_naive_uk_timestamps_around_month_ends(folder: Path, calendar: str) -> None:
    got = engine(folder, exports.UK_SPEC.format(calendar=calendar, grain="day"), "2026-12-31", "--from", "2026-01-01")
    # DuckDB places the naive local times in Europe/London itself (the earlier of a repeated autumn hour)
    instant = "timezone('Europe/London', ordered_at::TIMESTAMP)"
    local = f"timezone('{calendar}', {instant})"
    expected = rows(
        f"SELECT {local}::DATE, count(*) FROM read_csv('{folder / 'uk_orders.csv'}', all_varchar=true) GROUP BY ALL",
        period="%Y-%m-%d",
    )
    same({k: v for k, v in got["orders"].items() if v}, expected)
    if calendar == "Europe/London":  # a UK order at 23:30 on 30 June is a June order, not a July one
        assert got["orders"][("2026-06-30", None)] == 4 + 4  # 00:xx and 23:xx
    else:
        assert got["orders"][("2026-06-30", None)] == 4 + 1  # 23:xx BST and 00:15 BST on 1 July (23:15 UTC)


def test_web_analytics_preamble_compact_dates_and_thousands(folder: Path) -> None:
    got = engine(folder, exports.GA_SPEC, "2026-04-30")
    source = f"read_csv('{folder / 'ga_daily.csv'}', skip=4, header=true, all_varchar=true)"
    parsed = f"SELECT strptime(Date, '%Y%m%d') AS d, replace(Sessions, ',', '')::BIGINT AS s, Bounces::BIGINT AS b FROM {source}"
    same(got["sessions"], rows(f"SELECT date_trunc('month', d), sum(s) FROM ({parsed}) GROUP BY ALL"))
    same(got["bounce_rate"], rows(f"SELECT date_trunc('month', d), 100 * sum(b) / sum(s) FROM ({parsed}) GROUP BY ALL"))


def test_windows_1252_tab_separated_ads_export(folder: Path) -> None:
    got = engine(folder, exports.FB_SPEC, "2026-05-31")
    spend: dict = {}
    clicks: dict = {}
    with (folder / "fb_ads.tsv").open(encoding="cp1252", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            month = row["Reporting starts"][:7]
            for key in ((month, row["Campaign name"]), (month, None)):
                spend[key] = spend.get(key, 0.0) + float(row["Amount spent (EUR)"].replace(",", "."))
                if row["Link clicks"] != "-":
                    clicks[key] = clicks.get(key, 0) + int(row["Link clicks"])
    same(got["cpc"], {k: spend[k] / clicks[k] for k in spend})
    same(got["clicks"], {k: v for k, v in clicks.items() if k[1] is None})
    assert ("2026-03", "Soldes d'été") in got["cpc"]


def test_inspect_writes_the_source_block_for_the_retail_export(folder: Path) -> None:
    result = CliRunner().invoke(main, ["inspect", str(folder / "retail.csv"), "--name", "retail"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for line in (
        '    separator: ";"',
        '    decimal: "comma"',
        '    thousands: "."',
        '    null_values: ["NA"]',
        '    time: "InvoiceDate"',
        '    time_format: ["%m/%d/%y %H:%M", "%m/%d/%Y %H:%M"]',  # the more frequent first
        "  InvoiceDate  timestamp  <- time",
        "  UnitPrice    number",
    ):
        assert line in out, out
    block = out.split("\nsources:\n", 1)[1]
    spec = "version: 1\nsources:\n" + block.replace(str(folder / "retail.csv"), "retail.csv")
    spec += "kpis:\n  revenue: {unit: currency, formula: sum(retail.Quantity * retail.UnitPrice), grain: month}\n"
    pasted = engine(folder, spec, "2011-12-31")["revenue"]
    expected = engine(folder, exports.RETAIL_SPEC, "2011-12-31")["revenue"]
    totals = {k: v for k, v in expected.items() if k[1] is None}
    assert pasted.keys() == totals.keys()
    assert all(math.isclose(pasted[k], totals[k], rel_tol=1e-12) for k in totals)


@pytest.mark.parametrize("name", ["ga_daily.csv", "fb_ads.tsv", "uk_orders.csv"])
def test_inspect_sniffs_every_export(folder: Path, name: str) -> None:
    result = CliRunner().invoke(main, ["inspect", str(folder / name)])
    assert result.exit_code == 0, result.stderr
    expected = {
        "ga_daily.csv": ['    skip_rows: 4', '    thousands: ","', '    time_format: "%Y%m%d"', '    time: "Date"'],
        "fb_ads.tsv": ['    separator: "\\\\t"', '    encoding: "cp1252"', '    decimal: "comma"', '    null_values: ["-"]'],
        "uk_orders.csv": ['    time: "ordered_at"'],
    }[name]
    for line in expected:
        assert line in result.stdout, result.stdout


def test_inspect_refuses_ambiguous_dates(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("Date;Qty\n01/02/2026;1\n03/04/2026;2\n")
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "a.csv")])
    assert result.exit_code == 2
    assert "column `Date` holds dates that read both day-first and month-first, e.g. `01/02/2026`" in result.stderr
    assert 'time_format: "%m/%d/%Y" (US) or time_format: "%d/%m/%Y" (day first)' in result.stderr
