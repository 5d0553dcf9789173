"""Seeded benchmark data: ad events, sessions with visitor ids, support tickets, social mentions as Parquet.

    python bench/generate.py --rows 10000000 --out bench/data/10M

Rows are generated in chunks of at most 5M so that 100M-row tables fit in memory while written.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

START = np.datetime64("2025-01-01T00:00:00", "s")
SPAN_S = 2 * 365 * 86400
CHANNELS = np.array(["search", "social", "display", "email", "affiliate"])
PLATFORMS = np.array(["x", "instagram", "tiktok", "linkedin"])
CHUNK = 5_000_000


def _ts(rng: np.random.Generator, n: int) -> np.ndarray:
    return (START + rng.integers(0, SPAN_S, n).astype("timedelta64[s]")).astype("datetime64[us]")


def ad_events(rng: np.random.Generator, n: int) -> pl.DataFrame:
    impressions = rng.integers(1, 2000, n)
    clicks = rng.binomial(impressions, 0.02)
    return pl.DataFrame(
        {
            "ts": _ts(rng, n),
            "channel": CHANNELS[rng.integers(0, 5, n)],
            "campaign": np.array(["spring", "summer", "brand"])[rng.integers(0, 3, n)],
            "impressions": impressions.astype(np.int32),
            "clicks": clicks.astype(np.int32),
            "cost": np.round(clicks * rng.uniform(0.2, 2.0, n), 2),
            "conversions": rng.binomial(clicks, 0.05).astype(np.int32),
            "revenue": np.round(rng.gamma(2.0, 20.0, n) * (rng.random(n) < 0.05), 2),
        }
    )


def sessions(rng: np.random.Generator, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": _ts(rng, n),
            "visitor_id": rng.integers(0, max(n // 5, 10), n),
            "channel": CHANNELS[rng.integers(0, 5, n)],
            "pageviews": rng.geometric(0.4, n).astype(np.int32),
            "duration_s": rng.integers(1, 1800, n).astype(np.int32),
            "converted": rng.random(n) < 0.03,
            "lead": rng.random(n) < 0.08,
        }
    )


def tickets(rng: np.random.Generator, n: int) -> pl.DataFrame:
    created = _ts(rng, n)
    return pl.DataFrame(
        {
            "created_at": created,
            "first_response_at": created + (rng.gamma(1.5, 40.0, n) * 60e6).astype("timedelta64[us]"),
            "channel": CHANNELS[rng.integers(0, 5, n)],
        }
    )


def mentions(rng: np.random.Generator, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": _ts(rng, n),
            "platform": PLATFORMS[rng.integers(0, 4, n)],
            "sentiment": np.round(rng.uniform(-1, 1, n), 3),
            "shares": rng.integers(0, 30, n).astype(np.int32),
            "channel": CHANNELS[rng.integers(0, 5, n)],
        }
    )


TABLES = {"ad_events": ad_events, "sessions": sessions, "support_tickets": tickets, "social_mentions": mentions}


def generate(rows: int, out: Path, seed: int = 7) -> dict[str, Path]:
    """Write every table with ``rows`` rows (skipped when already there); returns the file of each table."""
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for i, (name, make) in enumerate(TABLES.items()):
        path = out / f"{name}.parquet"
        files[name] = path
        if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
            continue
        rng = np.random.default_rng([seed, i])
        writer = None
        tmp = path.with_suffix(".tmp")
        for start in range(0, rows, CHUNK):
            table = make(rng, min(CHUNK, rows - start)).to_arrow()
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=1_000_000)
        writer.close()
        tmp.replace(path)
    return files


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = dt.datetime.now()
    generate(args.rows, args.out or Path(__file__).parent / "data" / str(args.rows), args.seed)
    print(f"generated {args.rows:,} rows per table in {(dt.datetime.now() - started).total_seconds():.1f} s")
