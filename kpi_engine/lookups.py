"""Lookup tables (campaigns, products): read once into memory, their key checked unique, and joined to the
rows of the sources that list them, as the polars path reads them (``scan.source_frame``)."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from .connectors import Connector, Env, ScanRequest, repeated_key
from .plan import Plan


def lookup_frames(
    plan: Plan,
    connectors: Mapping[str, Connector],
    env: Env,
    skip: set[str] = frozenset(),  # type: ignore[assignment]
) -> dict[str, pl.LazyFrame]:
    """Every lookup a planned source joins (but those in ``skip``, whose database joins it), read once into
    memory (lookup tables are small), its key checked unique first: a repeated key would count each row
    that joins it several times."""
    used = {n for name, sp in plan.sources.items() if name not in skip for n in plan.joined(sp.source).values()}
    out = {}
    for name in sorted(used):
        spec, schema = plan.lookups[name]
        table = connectors[spec.connector].scan(spec, ScanRequest(tuple(schema), "", None, None), env).collect()
        repeated = (
            table.filter(pl.col(spec.key).is_not_null())
            .group_by(spec.key)
            .agg(pl.len().alias("__n"))
            .filter(pl.col("__n") > 1)
            .sort(spec.key)
            .head(1)
        )
        if repeated.height:
            raise repeated_key(name, spec, *repeated.row(0))
        out[name] = table.lazy()
    return out


def join_lookup(lf: pl.LazyFrame, key: str, lookup: pl.LazyFrame, columns: list[str]) -> pl.LazyFrame:
    """The rows with ``columns`` of their lookup row; a key the lookup lacks gives `unknown` (text columns) or
    null, and its rows are kept (never dropped)."""
    dtype = lf.collect_schema()[key]
    table = lookup.select(pl.col(key).cast(dtype), *columns, pl.lit(True).alias("__found"))
    joined = lf.join(table.filter(pl.col(key).is_not_null()), on=key, how="left")
    text = [c for c, t in table.collect_schema().items() if c in columns and t == pl.String]
    missing = pl.col("__found").is_null()
    return joined.with_columns(
        pl.when(missing).then(pl.lit("unknown")).otherwise(pl.col(c)).alias(c) for c in text
    ).drop("__found")
