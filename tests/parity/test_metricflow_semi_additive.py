"""Parity with dbt MetricFlow's semi-additive measures (issue 13, items 6 and 8), on its `fct_accounts` rows.

Each test names the case of `itest_semi_additive_measure.yaml` it mirrors. `sum_first_day(x)` and
`sum_last_day(x)` add the rows of the period's first or last day with data (after the aggregate's filter),
that day taken over the period, never per dimension value (MetricFlow's non-additive dimension), and
`sum(sum_last_day(x) per user)` takes each user's own last day (MetricFlow's `window_groupings`). The
expected values come from MetricFlow's check queries, rendered for DuckDB here.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

import kpi_engine

from conftest import require, write_spec

duckdb = require("duckdb")
FIXTURES = Path(__file__).parent / "metricflow"
AS_OF = dt.date(2020, 1, 31)

SPEC = """
version: 1
sources:
  accounts: {connector: csv, path: fct_accounts.csv, time: ds, entities: {user: user_id}}
  accounts_monthly: {connector: csv, path: fct_accounts.csv, time: ds_month}
kpis:
  balance_by_user: {unit: currency, grain: month, dimensions: [user_id], formula: 'sum(sum_last_day(accounts.account_balance) per user)'}
  balance_by_user_weekly: {unit: currency, grain: week, formula: 'sum(sum_last_day(accounts.account_balance) per user)'}
  first_day_balance: {unit: currency, grain: day, formula: sum_first_day(accounts.account_balance)}
  first_day_balance_weekly: {unit: currency, grain: week, formula: sum_first_day(accounts.account_balance)}
  savings_by_user: {unit: currency, grain: month, dimensions: [user_id], formula: 'sum(sum_last_day(accounts.account_balance where account_type == "savings") per user)'}
  first_day_from_3rd_by_type:
    unit: currency
    grain: month
    dimensions: [account_type]
    formula: 'sum_first_day(accounts.account_balance where ds >= date("2020-01-03"))'
  last_day_by_type: {unit: currency, grain: month, dimensions: [account_type], formula: sum_last_day(accounts.account_balance)}
  first_month_balance: {unit: currency, grain: month, formula: sum_first_day(accounts_monthly.account_balance)}
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mf_accounts")
    shutil.copy(FIXTURES / "fct_accounts.csv", folder / "fct_accounts.csv")
    return write_spec(folder, SPEC)


@pytest.fixture(scope="module")
def result(root: Path):
    return kpi_engine.load(root).evaluate(AS_OF)


@pytest.fixture(scope="module")
def everything(root: Path):
    return kpi_engine.load(root).evaluate(AS_OF, all_time=True)


@pytest.fixture(scope="module")
def con():
    db = duckdb.connect()
    db.execute(f"CREATE VIEW fct_accounts AS SELECT * FROM read_csv('{FIXTURES / 'fct_accounts.csv'}')")
    yield db
    db.close()


def by(frame, dim: str) -> dict:
    return {r[dim]: r["value"] for r in frame.iter_rows(named=True) if not r["is_total"]}


def totals(frame) -> dict:
    return {r["start"]: r["value"] for r in frame.iter_rows(named=True) if r["is_total"] and r["value"] is not None}


def test_semi_additive_measure_query_with_identifier_grouping(everything, con):
    rows = con.execute(
        """SELECT a.user_id, SUM(a.account_balance) FROM fct_accounts a
           JOIN (SELECT user_id, MAX(ds) AS ds FROM fct_accounts GROUP BY user_id) b
           ON a.ds = b.ds AND a.user_id = b.user_id GROUP BY a.user_id"""
    ).fetchall()
    assert by(everything["balance_by_user"], "user_id") == dict(rows)
    assert by(everything["balance_by_user"], "user_id")["u0005432"] == 5234 + 234  # two accounts on its last day


def test_semi_additive_measure_query_with_identifier_grouping_no_group_by(result, con):
    rows = con.execute(
        """SELECT a.w, SUM(a.account_balance) FROM
             (SELECT ds, date_trunc('week', ds)::DATE w, user_id, account_balance FROM fct_accounts) a
           JOIN (SELECT user_id, date_trunc('week', ds)::DATE w, MAX(ds) AS ds FROM fct_accounts GROUP BY ALL) b
           ON a.ds = b.ds AND a.user_id = b.user_id GROUP BY a.w"""
    ).fetchall()
    assert totals(result["balance_by_user_weekly"]) == dict(rows)


def test_semi_additive_measure_query(result, con):
    rows = con.execute(
        """SELECT a.ds, SUM(a.account_balance) FROM fct_accounts a
           JOIN (SELECT MIN(ds) AS ds FROM fct_accounts GROUP BY ds) b ON a.ds = b.ds GROUP BY a.ds"""
    ).fetchall()
    assert totals(result["first_day_balance"]) == dict(rows)


def test_semi_additive_measure_query_with_group_by_window(result, con):
    rows = con.execute(
        """SELECT a.w, SUM(a.account_balance) FROM
             (SELECT ds, date_trunc('week', ds)::DATE w, account_balance FROM fct_accounts) a
           JOIN (SELECT MIN(ds) AS ds, date_trunc('week', ds)::DATE w FROM fct_accounts GROUP BY 2) b
           ON a.ds = b.ds GROUP BY a.w"""
    ).fetchall()
    assert totals(result["first_day_balance_weekly"]) == dict(rows)


def test_semi_additive_measure_query_with_where_filter(everything, con):
    rows = con.execute(
        """SELECT b.user_id, SUM(b.account_balance) FROM (SELECT * FROM fct_accounts WHERE account_type = 'savings') b
           JOIN (SELECT user_id, MAX(ds) AS ds FROM fct_accounts WHERE account_type = 'savings' GROUP BY user_id) d
           ON b.ds = d.ds AND b.user_id = d.user_id GROUP BY b.user_id"""
    ).fetchall()
    got = {k: v for k, v in by(everything["savings_by_user"], "user_id").items() if v}
    assert got == dict(rows)


def test_semi_additive_measure_query_with_where_time_constraint(everything, con):
    """The first day is taken over all account types (2020-01-03), then split by type: the types add up."""
    rows = con.execute(
        """SELECT b.account_type, SUM(b.account_balance) FROM (SELECT * FROM fct_accounts WHERE ds >= DATE '2020-01-03') b
           JOIN (SELECT MIN(ds) AS ds FROM fct_accounts WHERE ds >= DATE '2020-01-03') d ON b.ds = d.ds
           GROUP BY b.account_type"""
    ).fetchall()
    frame = everything["first_day_from_3rd_by_type"]
    got = {k: v for k, v in by(frame, "account_type").items() if v}
    assert got == dict(rows) == {"checking": 5234, "savings": 234}
    assert [r["value"] for r in frame.iter_rows(named=True) if r["is_total"]] == [5468]


def test_non_default_grain(everything, con):
    """The agg time dimension is `ds_month` there: every row of the first month is on its first "day"."""
    (expected,) = con.execute(
        """SELECT SUM(account_balance) FROM fct_accounts
           WHERE date_trunc('month', ds_month) = (SELECT MIN(date_trunc('month', ds_month)) FROM fct_accounts)"""
    ).fetchone()
    assert everything["first_month_balance"]["value"].item() == expected


def test_the_last_day_is_the_periods_not_each_dimension_values(result, con):
    """By account type, the month's last day is 12 January for every type: savings (last seen 6 January)
    is 0, not its own last balance, so that the types add up to the total."""
    frame = result["last_day_by_type"]
    (total,) = con.execute("SELECT SUM(account_balance) FROM fct_accounts WHERE ds = DATE '2020-01-12'").fetchone()
    assert by(frame, "account_type") == {"checking": total, "checkings": 0, "savings": 0}
    assert totals(frame) == {dt.date(2020, 1, 1): total}
