"""Report breakdowns with many values: the top N by value plus one "other" rebuilt from sums (a ratio's from
its numerator and denominator), values at 0 hidden; JSON keeps every row. Checked against the rows."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import kpi_engine
from conftest import write_spec
from kpi_engine.report import review_report

SPEC = """
version: 1
sources:
  sales: {connector: dataframe, time: ts}
kpis:
  revenue: {unit: currency, formula: sum(sales.amount), grain: month, dimensions: [product], top: 5}
  conversion: {unit: percent, formula: 100 * sum(sales.orders) / sum(sales.visits), grain: month, dimensions: [product], top: 5}
  by_both: {unit: currency, formula: sum(sales.amount), grain: month, dimensions: [channel, product], top: 3}
  rate_both: {unit: percent, formula: 100 * sum(sales.orders) / sum(sales.visits), grain: month, dimensions: [channel, product], top: 3}
  buyers: {unit: count, formula: count_distinct(sales.buyer), grain: month, dimensions: [channel, product], top: 4}
"""


def frame() -> pl.DataFrame:
    rows = []
    for p in range(30):
        for i, channel in enumerate(("web", "app")):
            amount = 0.0 if p >= 27 else float((p * 37 + i * 11) % 500 + 1)  # 3 products sold nothing
            rows.append((dt.datetime(2026, 5, 10, 12), f"p{p:02d}", channel, amount, p % 7 + i, 100 + p * 3, f"b{p % 9}"))
    rows.append((dt.datetime(2026, 5, 11, 12), None, "web", 40.0, 1, 50, "b1"))  # a sale without a product
    return pl.DataFrame(rows, schema=["ts", "product", "channel", "amount", "orders", "visits", "buyer"], orient="row")


def on_disk(folder: Path, rows: pl.DataFrame) -> None:
    """The spec with its source read from a Parquet file of ``rows`` (what the CLI tests run)."""
    rows.write_parquet(folder / "sales.parquet")
    write_spec(folder, SPEC.replace("{connector: dataframe, time: ts}", "{connector: parquet, path: sales.parquet, time: ts}"))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("breakdowns")
    catalog = kpi_engine.load(write_spec(root, SPEC), frames={"sales": frame()})
    built, _, _ = review_report(catalog, list(catalog.project.kpis.values()), dt.date(2026, 5, 31))
    return {k.id: k for k in built.kpis}


def test_sum_top_n_and_other(report):
    rows = frame()
    by = rows.group_by(pl.col("product").fill_null("(none)")).agg(pl.col("amount").sum()).sort(["amount", "product"], descending=[True, False])
    (b,) = report["revenue"].breakdowns
    shown = [r["label"] for r in b.rows]
    top = by.filter(pl.col("amount") > 0)
    assert shown[:5] == top["product"].to_list()[:5]
    assert shown[5] == f"other ({top.height - 5} values)" and len(shown) == 6
    assert b.rows[5]["value"] == pytest.approx(top["amount"][5:].sum(), rel=1e-12)
    assert b.hidden == 3  # the products that sold nothing


def test_ratio_other_is_rebuilt_from_sums_not_averaged(report):
    rows = frame().with_columns(pl.col("product").fill_null("(none)"))
    per = rows.group_by("product").agg(pl.col("orders").sum(), pl.col("visits").sum()).with_columns((100 * pl.col("orders") / pl.col("visits")).alias("rate"))
    per = per.sort(["rate", "product"], descending=[True, False]).filter(pl.col("rate") > 0)
    (b,) = report["conversion"].breakdowns
    rest = per[5:]
    assert [r["label"] for r in b.rows[:5]] == per["product"].to_list()[:5]
    assert b.rows[5]["value"] == pytest.approx(100 * rest["orders"].sum() / rest["visits"].sum(), rel=1e-12)
    assert b.rows[5]["value"] != pytest.approx(rest["rate"].mean(), rel=1e-6)  # never the mean of the rates


def test_several_dimensions_add_up_over_the_others(report):
    rows = frame()
    web_app = rows.group_by("channel").agg(pl.col("amount").sum(), pl.col("orders").sum(), pl.col("visits").sum())
    channel, product = report["by_both"].breakdowns
    assert (channel.dim, product.dim) == ("channel", "product")
    assert {r["label"]: r["value"] for r in channel.rows} == pytest.approx(dict(web_app.select("channel", "amount").iter_rows()))
    assert product.rows[-1]["label"].startswith("other (")
    rate_channel, _ = report["rate_both"].breakdowns
    expected = {c: 100 * o / v for c, _, o, v in web_app.iter_rows()}
    assert {r["label"]: r["value"] for r in rate_channel.rows} == pytest.approx(expected, rel=1e-12)
    (combo,) = report["buyers"].breakdowns  # distinct buyers do not add up: by the combination
    assert combo.dim == "channel × product" and " · " in combo.rows[0]["label"]
    assert combo.rows[-1]["label"].startswith("other (") and combo.rows[-1]["value"] is None


def test_json_keeps_every_value(tmp_path: Path):
    rows = frame()
    on_disk(tmp_path, rows)
    run = subprocess.run([sys.executable, "-m", "kpi_engine", "run", str(tmp_path), "--as-of", "2026-06-30", "--kpi", "revenue", "--format", "json"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    (kpi,) = json.loads(run.stdout)["kpis"]
    may = [r for r in kpi["series"] if r["period"] == "2026-05" and r["dims"]]
    assert len(may) == 31  # 30 products and the sale without one, zeros included


def test_the_terminal_table_puts_many_values_down_the_rows(tmp_path: Path):
    rows = frame()
    on_disk(tmp_path, rows)
    run = subprocess.run([sys.executable, "-m", "kpi_engine", "run", str(tmp_path), "--as-of", "2026-05-31", "--kpi", "revenue", "--kpi", "rate_both"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 120
    revenue = text.split("revenue · ")[1].split("rate_both")[0]
    lines = [line for line in revenue.splitlines() if line.startswith("│ p")]
    expected = rows.group_by("product").agg(pl.col("amount").sum()).drop_nulls().sort(["amount", "product"], descending=[True, False])
    assert [line.split("│")[1].strip() for line in lines] == expected["product"].to_list()[:20]
    assert "the 20 largest of 31 values" in revenue and "│ total" in revenue
    both = text.split("rate_both")[1]
    assert "channel / product" in both  # 61 combinations: down the rows too


def test_a_few_values_stay_across(tmp_path: Path):
    rows = frame().filter(pl.col("product").is_in(["p01", "p02", "p03"]))
    on_disk(tmp_path, rows)
    run = subprocess.run([sys.executable, "-m", "kpi_engine", "run", str(tmp_path), "--as-of", "2026-05-31", "--kpi", "revenue"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    header = [line for line in run.stdout.splitlines() if "period" in line][0]
    assert "p01" in header and "total" in header
