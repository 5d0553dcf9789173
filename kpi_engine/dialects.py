"""What each SQL dialect needs to compute as the polars path does: local dates, period starts, quantiles,
durations. Snippets are parsed by sqlglot with ``:name`` slots for expressions and values (``sqlgen``)."""

from __future__ import annotations

from .model import Grain

#: dialects whose queries the engine runs (the others are rendered only: ``kpi run --explain``, golden tests)
RUNS = ("duckdb", "postgres", "sqlite")

#: the local calendar date of a time column, per dialect: a UTC timestamp without zone ("naive"), one with
#: a zone ("aware"); ``:t`` is the column, ``:tz`` the spec's IANA time zone. SQLite has no time zones.
LOCAL_DATE = {
    "postgres": {
        "utc": "CAST(:t AS DATE)",
        "naive": "CAST((:t AT TIME ZONE :stored) AT TIME ZONE :tz AS DATE)",
        "aware": "CAST(:t AT TIME ZONE :tz AS DATE)",
    },
    "sqlite": {"utc": "DATE(:t)"},
}
LOCAL_DATE["duckdb"] = LOCAL_DATE["postgres"]

#: the first day of the period holding date ``:d`` (a DATE), per dialect; ``:back`` is how many days a week
#: starts before it, ``:shift`` the months a fiscal year starts after January
PERIOD_START = {
    "postgres": {
        Grain.DAY: ":d",
        Grain.WEEK: "CAST(:d - CAST((EXTRACT(ISODOW FROM :d) + 6 - :start) % 7 AS INT) AS DATE)",
        Grain.MONTH: "CAST(DATE_TRUNC('month', :d) AS DATE)",
        Grain.QUARTER: "CAST(DATE_TRUNC('quarter', :d - :shift * INTERVAL '1 month')"
        " + :shift * INTERVAL '1 month' AS DATE)",
        Grain.YEAR: "CAST(DATE_TRUNC('year', :d - :shift * INTERVAL '1 month') + :shift * INTERVAL '1 month' AS DATE)",
    },
    "sqlite": {
        Grain.DAY: ":d",
        Grain.WEEK: "DATE(:d, '-' || ((CAST(STRFTIME('%w', :d) AS INTEGER) + 6 - :start) % 7) || ' days')",
        Grain.MONTH: "DATE(:d, 'start of month')",
        Grain.QUARTER: "DATE(:d, '-' || :shift || ' months', 'start of month', "
        "'-' || ((CAST(STRFTIME('%m', DATE(:d, '-' || :shift || ' months')) AS INTEGER) - 1) % 3) || ' months', "
        "'+' || :shift || ' months')",
        Grain.YEAR: "DATE(:d, '-' || :shift || ' months', 'start of year', '+' || :shift || ' months')",
    },
}
PERIOD_START["duckdb"] = PERIOD_START["postgres"]

#: quantiles per dialect (``:x`` the value, ``:q`` the fraction); None: not available, the rows are read
QUANTILE = {
    "postgres": ("PERCENTILE_CONT(:q) WITHIN GROUP (ORDER BY :x)", "PERCENTILE_DISC(:q) WITHIN GROUP (ORDER BY :x)"),
    "duckdb": ("QUANTILE_CONT(:x, :q)", "QUANTILE_DISC(:x, :q)"),
    "sqlite": None,
}
SECONDS = {
    "postgres": "EXTRACT(EPOCH FROM (:x))",
    "duckdb": "EXTRACT(EPOCH FROM (:x))",
    "sqlite": None,  # no interval type: a difference of times is a number of days there
}
