"""What each SQL dialect needs to compute as the polars path does: local dates, period starts, quantiles,
durations. Snippets are parsed by sqlglot with ``:name`` slots for expressions and values (``sqlgen``)."""

from __future__ import annotations

from .model import Grain

#: dialects whose queries the engine runs; BigQuery and Snowflake are rendered only (golden tests)
RUNS = ("duckdb", "postgres", "sqlite", "spark")
RENDERS = (*RUNS, "bigquery", "snowflake")

#: the local calendar date of a time column, per dialect: a UTC timestamp without zone ("naive"), one with
#: a zone ("aware"); ``:t`` is the column, ``:tz`` the spec's IANA time zone. SQLite has no time zones.
LOCAL_DATE = {
    "postgres": {
        "utc": "CAST(:t AS DATE)",
        "naive": "CAST((:t AT TIME ZONE :stored) AT TIME ZONE :tz AS DATE)",
        "aware": "CAST(:t AT TIME ZONE :tz AS DATE)",
    },
    "sqlite": {"utc": "DATE(:t)"},
    "bigquery": {  # DATETIME (naive) or TIMESTAMP (an instant)
        "utc": "DATE(:t)",
        "naive": "DATE(TIMESTAMP(:t, :stored), :tz)",
        "aware": "DATE(:t, :tz)",
    },
    "snowflake": {  # TIMESTAMP_NTZ, or TIMESTAMP_TZ/LTZ
        "utc": "CAST(:t AS DATE)",
        "naive": "CAST(CONVERT_TIMEZONE(:stored, :tz, :t) AS DATE)",
        "aware": "CAST(CONVERT_TIMEZONE(:tz, :t) AS DATE)",
    },
    "spark": {  # timestamps are instants, the session's time zone UTC
        "utc": "TO_DATE(:t)",
        "naive": "TO_DATE(FROM_UTC_TIMESTAMP(TO_UTC_TIMESTAMP(:t, :stored), :tz))",
        "aware": "TO_DATE(FROM_UTC_TIMESTAMP(:t, :tz))",
    },
}
LOCAL_DATE["duckdb"] = LOCAL_DATE["postgres"]

#: the local hour (0-23) of a time column, per dialect, in the same three cases as ``LOCAL_DATE``
LOCAL_HOUR = {
    "postgres": {
        "utc": "CAST(EXTRACT(HOUR FROM :t) AS INT)",
        "naive": "CAST(EXTRACT(HOUR FROM (:t AT TIME ZONE :stored) AT TIME ZONE :tz) AS INT)",
        "aware": "CAST(EXTRACT(HOUR FROM :t AT TIME ZONE :tz) AS INT)",
    },
    "sqlite": {"utc": "CAST(STRFTIME('%H', :t) AS INTEGER)"},
    "bigquery": {
        "utc": "EXTRACT(HOUR FROM :t)",
        "naive": "EXTRACT(HOUR FROM TIMESTAMP(:t, :stored) AT TIME ZONE :tz)",
        "aware": "EXTRACT(HOUR FROM :t AT TIME ZONE :tz)",
    },
    "snowflake": {
        "utc": "HOUR(:t)",
        "naive": "HOUR(CONVERT_TIMEZONE(:stored, :tz, :t))",
        "aware": "HOUR(CONVERT_TIMEZONE(:tz, :t))",
    },
    "spark": {
        "utc": "HOUR(:t)",
        "naive": "HOUR(FROM_UTC_TIMESTAMP(TO_UTC_TIMESTAMP(:t, :stored), :tz))",
        "aware": "HOUR(FROM_UTC_TIMESTAMP(:t, :tz))",
    },
}
LOCAL_HOUR["duckdb"] = LOCAL_HOUR["postgres"]

#: the first day of the period holding date ``:d`` (a DATE), per dialect; ``:back`` is how many days a week
#: starts before it, ``:shift`` the months a fiscal year starts after January
PERIOD_START = {
    "postgres": {
        Grain.DAY: ":d",
        Grain.WEEK: "CAST(:d - (CAST(EXTRACT(ISODOW FROM :d) AS INT) + 6 - :start) % 7 AS DATE)",  # (int, not numeric)
        Grain.MONTH: "CAST(DATE_TRUNC('month', CAST(:d AS TIMESTAMP)) AS DATE)",  # (never via timestamptz)
        Grain.QUARTER: "CAST(DATE_TRUNC('quarter', :d - :shift * INTERVAL '1 month')"
        " + :shift * INTERVAL '1 month' AS DATE)",
        Grain.YEAR: "CAST(DATE_TRUNC('year', :d - :shift * INTERVAL '1 month') + :shift * INTERVAL '1 month' AS DATE)",
    },
    "sqlite": {
        Grain.DAY: ":d",
        Grain.WEEK: "DATE(:d, '-' || ((CAST(STRFTIME('%w', :d) AS INTEGER) + 6 - :start) % 7) || ' days')",
        Grain.MONTH: "DATE(:d, 'start of month')",
        # (the start of the month first: SQLite takes 31 March minus one month to 3 March, not 28 February)
        Grain.QUARTER: "DATE(:d, 'start of month', '-' || :shift || ' months', "
        "'-' || ((CAST(STRFTIME('%m', DATE(:d, 'start of month', '-' || :shift || ' months')) AS INTEGER) - 1) % 3)"
        " || ' months', '+' || :shift || ' months')",
        Grain.YEAR: "DATE(:d, 'start of month', '-' || :shift || ' months', 'start of year', "
        "'+' || :shift || ' months')",
    },
    "bigquery": {
        Grain.DAY: ":d",
        Grain.WEEK: "DATE_SUB(:d, INTERVAL MOD(EXTRACT(DAYOFWEEK FROM :d) + 5 - :start, 7) DAY)",
        Grain.MONTH: "DATE_TRUNC(:d, MONTH)",
        Grain.QUARTER: "DATE_ADD(DATE_TRUNC(DATE_SUB(:d, INTERVAL :shift MONTH), QUARTER), INTERVAL :shift MONTH)",
        Grain.YEAR: "DATE_ADD(DATE_TRUNC(DATE_SUB(:d, INTERVAL :shift MONTH), YEAR), INTERVAL :shift MONTH)",
    },
    "snowflake": {
        Grain.DAY: ":d",
        Grain.WEEK: "DATEADD(day, -MOD(DAYOFWEEKISO(:d) + 6 - :start, 7), :d)",
        Grain.MONTH: "DATE_TRUNC('month', :d)",
        Grain.QUARTER: "DATEADD(month, :shift, DATE_TRUNC('quarter', DATEADD(month, -:shift, :d)))",
        Grain.YEAR: "DATEADD(month, :shift, DATE_TRUNC('year', DATEADD(month, -:shift, :d)))",
    },
    "spark": {
        Grain.DAY: ":d",
        Grain.WEEK: "DATE_SUB(:d, MOD(DAYOFWEEK(:d) + 5 - :start, 7))",
        Grain.MONTH: "TRUNC(:d, 'MM')",
        Grain.QUARTER: "ADD_MONTHS(TRUNC(ADD_MONTHS(:d, -:shift), 'quarter'), :shift)",
        Grain.YEAR: "ADD_MONTHS(TRUNC(ADD_MONTHS(:d, -:shift), 'year'), :shift)",
    },
}
PERIOD_START["duckdb"] = PERIOD_START["postgres"]

#: the date ``:n`` days or months after date ``:p`` (``:n`` may be negative): moves a period start to another
SHIFT = {
    "postgres": {"days": "CAST(:p + :n AS DATE)", "months": "CAST(:p + :n * INTERVAL '1 month' AS DATE)"},
    "sqlite": {"days": "DATE(:p, :n || ' days')", "months": "DATE(:p, :n || ' months')"},
    "bigquery": {"days": "DATE_ADD(:p, INTERVAL :n DAY)", "months": "DATE_ADD(:p, INTERVAL :n MONTH)"},
    "snowflake": {"days": "DATEADD(day, :n, :p)", "months": "DATEADD(month, :n, :p)"},
    "spark": {"days": "DATE_ADD(:p, :n)", "months": "ADD_MONTHS(:p, :n)"},
}
SHIFT["duckdb"] = SHIFT["postgres"]

#: quantiles per dialect (``:x`` the value, ``:q`` the fraction): continuous (``PERCENTILE_CONT``) and
#: discrete (``PERCENTILE_DISC``); None where the dialect has no exact one (BigQuery's are analytic or
#: approximate), and then the rows are read
QUANTILE = {
    "postgres": ("PERCENTILE_CONT(:q) WITHIN GROUP (ORDER BY :x)", "PERCENTILE_DISC(:q) WITHIN GROUP (ORDER BY :x)"),
    "duckdb": ("QUANTILE_CONT(:x, :q)", "QUANTILE_DISC(:x, :q)"),
    "snowflake": ("PERCENTILE_CONT(:q) WITHIN GROUP (ORDER BY :x)", "PERCENTILE_DISC(:q) WITHIN GROUP (ORDER BY :x)"),
    "spark": ("PERCENTILE(:x, :q)", None),  # (the discrete one: ``SqlCompiler.quantile``, as sqlglot renders
    # Spark's PERCENTILE_DISC as an approximation)
}
#: text compared by its UTF-8 bytes, as polars compares it, whatever the collation of the column or the
#: database: an `en_US` or ICU server sorts "B" after "a", a case-insensitive column (SQLite's and DuckDB's
#: ``NOCASE``, PostgreSQL's nondeterministic ICU collations) finds "Email" equal to "email". Spark's,
#: BigQuery's and Snowflake's strings compare by their bytes unless a column declares a collation, which
#: this does not undo yet (it is neither rendered nor tested there).
BYTEWISE = {"postgres": ':x COLLATE "C"', "duckdb": ':x COLLATE "binary"', "sqlite": ":x COLLATE BINARY"}
#: (A database that knows its columns' collations, ``Database.collated``, leaves it out where it changes
#: nothing: in PostgreSQL a ``COLLATE`` on a group key hides the column's statistics from the planner, which
#: then misjudges the groups, 20% slower on the benchmark; DuckDB groups 10% slower.)
#: ``approx_count_distinct(x)`` per dialect (HyperLogLog); PostgreSQL and SQLite have none built in, and
#: count exactly instead, as polars does (an estimate may always be exact)
APPROX_DISTINCT = {
    "duckdb": "APPROX_COUNT_DISTINCT(:x)",
    "spark": "APPROX_COUNT_DISTINCT(:x)",
    "bigquery": "APPROX_COUNT_DISTINCT(:x)",
    "snowflake": "APPROX_COUNT_DISTINCT(:x)",
}
#: seconds between two times, ``:x`` their difference, or ``:a`` and ``:b`` (a - b); None: no interval type
SECONDS = {
    "postgres": "EXTRACT(EPOCH FROM (:x))",
    "duckdb": "EXTRACT(EPOCH FROM (:x))",
    "snowflake": "DATEDIFF(microsecond, :b, :a) / 1000000.0",
    "spark": "(UNIX_MICROS(CAST(:a AS TIMESTAMP)) - UNIX_MICROS(CAST(:b AS TIMESTAMP))) / 1000000.0",
}

#: parts of the local date as dimensions (``time.weekday``...), per dialect, from the local date ``:d``: ISO
#: weekday 1 (Monday) to 7, day of month, ISO week, month, quarter; a missing one reads the rows
DATE_PARTS = {
    "postgres": {
        "weekday": "CAST(EXTRACT(ISODOW FROM :d) AS INT)",
        "day_of_month": "CAST(EXTRACT(DAY FROM :d) AS INT)",
        "week_of_year": "CAST(EXTRACT(WEEK FROM :d) AS INT)",
        "month_of_year": "CAST(EXTRACT(MONTH FROM :d) AS INT)",
        "quarter_of_year": "CAST(EXTRACT(QUARTER FROM :d) AS INT)",
    },
    "sqlite": {
        "weekday": "((CAST(STRFTIME('%w', :d) AS INTEGER) + 6) % 7 + 1)",
        "day_of_month": "CAST(STRFTIME('%d', :d) AS INTEGER)",
        "month_of_year": "CAST(STRFTIME('%m', :d) AS INTEGER)",
        "quarter_of_year": "((CAST(STRFTIME('%m', :d) AS INTEGER) + 2) / 3)",
    },
    "spark": {
        "weekday": "WEEKDAY(:d) + 1",
        "day_of_month": "DAYOFMONTH(:d)",
        "week_of_year": "WEEKOFYEAR(:d)",
        "month_of_year": "MONTH(:d)",
        "quarter_of_year": "QUARTER(:d)",
    },
}
DATE_PARTS["duckdb"] = DATE_PARTS["postgres"]
DATE_PARTS["bigquery"] = {
    "weekday": "MOD(EXTRACT(DAYOFWEEK FROM :d) + 5, 7) + 1",
    "day_of_month": "EXTRACT(DAY FROM :d)",
    "week_of_year": "EXTRACT(ISOWEEK FROM :d)",
    "month_of_year": "EXTRACT(MONTH FROM :d)",
    "quarter_of_year": "EXTRACT(QUARTER FROM :d)",
}
DATE_PARTS["snowflake"] = {
    "weekday": "DAYOFWEEKISO(:d)",
    "day_of_month": "DAYOFMONTH(:d)",
    "week_of_year": "WEEKISO(:d)",
    "month_of_year": "MONTH(:d)",
    "quarter_of_year": "QUARTER(:d)",
}
