"""The output formats of `kpi run`, written once (the CLI's choices and the writer both read them). No polars."""

from __future__ import annotations

#: every format `kpi run --format` accepts; `table` prints to the terminal
RUN_FORMATS = ("table", "json", "csv", "parquet")
#: the formats a file suffix selects (`-o results.parquet`)
FILE_FORMATS = ("json", "csv", "parquet")
