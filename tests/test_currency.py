"""`currency:` per project or per KPI: an ISO 4217 code printed with its symbol and decimals, in a locale's
number format, everywhere a money value is shown; unknown codes and locales are spec errors with a fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_spec

from kpi_engine.cli import main
from kpi_engine.model import Money, Unit
from kpi_engine.units import format_change, format_move, format_value, formatter


@pytest.mark.parametrize(
    ("value", "money", "text"),
    [
        (2481206.59, Money("GBP"), "£2,481,206.59"),
        (2481206.59, Money("EUR"), "€2,481,206.59"),
        (2481206.59, Money("EUR", "de_DE"), "2.481.206,59\xa0€"),
        (2481206.59, Money("USD", "fr_FR"), "2\u202f481\u202f206,59\xa0$US"),
        (1234.4, Money("JPY"), "¥1,234"),  # no minor unit
        (-1234.5, Money("GBP"), "-£1,234.50"),
        (None, Money("GBP"), "–"),
    ],
)
def test_money_prints_with_its_symbol_decimals_and_locale(value, money, text):
    assert format_value(value, money) == text


def test_changes_and_close_values_keep_their_money():
    gbp = Money("GBP")
    assert format_change(-1234.5, gbp) == "-£1,234.50"
    assert format_change(0.004, gbp) == "+£0.004"  # a real change never prints as +£0.00
    assert format_move(110.0, 100.0, gbp) == "+10.0%"
    fmt = formatter([0.0175, 0.0190], gbp)
    assert (fmt(0.0175), fmt(0.0190)) == ("£0.018", "£0.019")
    assert formatter([], gbp, written=[0.835])(0.835) == "£0.835"  # a target as written
    assert format_value(2481206.59, Unit.CURRENCY) == "2,481,206.59"  # no currency: as before


SPEC = """
version: 1
currency: GBP
sources:
  ads: {connector: csv, path: ads.csv, time: ts}
kpis:
  cpc:
    name: Cost per click
    formula: sum(ads.cost) / sum(ads.clicks)
    unit: currency
    grain: month
    target: {objective: "Hold CPC near 0.835.", direction: maintain, value: 0.835, tolerance: 0.1, start: 2026-01-01, deadline: 2026-12-31}
  spend_eur:
    name: Spend in euros
    formula: sum(ads.cost)
    unit: currency
    currency: {code: EUR, locale: de_DE}
    grain: month
  clicks:
    name: Clicks
    formula: sum(ads.clicks)
    unit: count
    grain: month
"""
ROWS = "ts,cost,clicks\n2026-03-03T10:00:00,1234567.5,1000000\n2026-04-07T10:00:00,2481206.59,3000000\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = write_spec(tmp_path / "p", SPEC)
    (folder / "ads.csv").write_text(ROWS)
    return folder


def test_run_json_and_report_show_each_kpis_money(project, tmp_path):
    runner = CliRunner()
    table = runner.invoke(main, ["run", str(project), "--as-of", "2026-04-30"])
    assert table.exit_code == 0, table.output
    assert "Cost per click (cpc) · GBP · per month" in table.output
    assert "2.481.206,59 €" in table.output.replace("\xa0", " ")  # the KPI's own money and locale
    assert "£0.83" in table.output  # 2,481,206.59 / 3,000,000
    assert "Clicks (clicks) · count" in table.output and "3,000,000" in table.output
    out = tmp_path / "run.json"
    assert runner.invoke(main, ["run", str(project), "--as-of", "2026-04-30", "--format", "json", "-o", str(out)]).exit_code == 0
    kpis = {k["id"]: k for k in json.loads(out.read_text())["kpis"]}
    assert kpis["cpc"]["currency"] == "GBP" and kpis["spend_eur"]["currency"] == "EUR"
    assert "currency" not in kpis["clicks"]
    html = tmp_path / "r.html"
    report = runner.invoke(main, ["report", str(project), "--as-of", "2026-04-30", "-o", str(html)])
    assert report.exit_code == 0, report.output
    text = re.sub(r"<[^>]+>", " ", html.read_text()).replace("\xa0", " ")
    assert "£0.835 ± £0.100" in text  # the scorecard's target, as written, in pounds
    assert "2.481.206,59 €" in text
    assert "GBP per month" in text  # beside the formula


@pytest.mark.parametrize(
    ("edit", "message", "hint"),
    [
        (("currency: GBP", "currency: GPB"), "unknown currency `GPB`", "did you mean `GBP`"),
        (("locale: de_DE", "locale: de_XX"), "unknown locale `de_XX`", "did you mean"),
        (("    unit: count\n", "    unit: count\n    currency: GBP\n"), "`currency:` is for money", "set `unit: currency`"),
        (("currency: GBP", "currency: gbp"), "currency", ""),  # the schema: an upper-case ISO code
    ],
)
def test_a_bad_currency_is_a_spec_error_with_the_fix(tmp_path, edit, message, hint):
    folder = write_spec(tmp_path / "p", SPEC.replace(*edit))
    (folder / "ads.csv").write_text(ROWS)
    res = CliRunner().invoke(main, ["validate", str(folder)])
    assert res.exit_code == 2, res.output
    assert message in res.output and hint in res.output
    assert re.search(r"kpis\.yaml:\d+:\d+", res.output)
    assert "Traceback" not in res.output


def test_files_must_agree_on_the_project_currency(project):
    (project / "more.yaml").write_text("version: 1\ncurrency: EUR\n")
    res = CliRunner().invoke(main, ["validate", str(project)])
    assert res.exit_code == 2
    assert "`currency: EUR` disagrees with `currency: GBP`" in res.output
