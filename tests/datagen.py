"""Seeded generator of the acceptance example's data, with the edge cases the tests rely on.

- ads: a `print` channel whose impressions are all zero in some weeks (zero denominators), null clicks,
  Int32 counts whose sum overflows Int32, no `affiliate` rows at all in March (empty periods per dimension).
- sessions: timestamps stored in Europe/Paris (tz-aware), others naive UTC.
- tickets: a CSV whose data stops on 2026-05-20 (a stale export: later periods have no data), null responses.
- mentions: NDJSON with platforms outside the sentiment filter and null sentiments.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl

START = dt.datetime(2026, 1, 1)
END = dt.datetime(2026, 7, 10)


def _times(rng: np.random.Generator, n: int, start: dt.datetime = START, end: dt.datetime = END) -> np.ndarray:
    span = int((end - start).total_seconds())
    secs = np.sort(rng.integers(0, span, n))
    return np.datetime64(start, "s") + secs.astype("timedelta64[s]")


def ad_events(rng: np.random.Generator, n: int) -> pl.DataFrame:
    channels = np.array(["search", "social", "display", "print", "affiliate"])
    ts = _times(rng, n)
    channel = channels[rng.integers(0, len(channels), n)]
    impressions = rng.integers(200_000_000, 400_000_000, n).astype(np.int64)  # Int32 sums overflow
    clicks = (impressions * rng.uniform(0.005, 0.04, n)).astype(np.int64)
    frame = pl.DataFrame(
        {
            "ts": ts.astype("datetime64[us]"),
            "channel": channel,
            "campaign": np.array(["spring", "summer", "brand"])[rng.integers(0, 3, n)],
            "utm_source": np.array(["google", "meta", "newsletter", None], dtype=object)[rng.integers(0, 4, n)],
            "impressions": impressions,
            "clicks": clicks,
            "cost": np.round(rng.uniform(5, 500, n), 2),
            "conversions": rng.integers(0, 40, n),
            "revenue": np.round(rng.uniform(0, 2000, n), 2),
        }
    )
    week = pl.col("ts").dt.week()
    return frame.with_columns(
        pl.when((pl.col("channel") == "print") & (week % 3 == 0))
        .then(0)
        .otherwise(pl.col("impressions"))
        .cast(pl.Int32)
        .alias("impressions"),
        pl.when((pl.col("channel") == "print") & (week % 3 == 0))
        .then(0)
        .when(pl.int_range(pl.len()) % 97 == 0)
        .then(None)
        .otherwise(pl.col("clicks"))
        .cast(pl.Int32)
        .alias("clicks"),
    ).filter(~((pl.col("channel") == "affiliate") & (pl.col("ts").dt.month() == 3)))


def sessions(rng: np.random.Generator, n: int) -> pl.DataFrame:
    ts = _times(rng, n)
    return pl.DataFrame(
        {
            "ts": ts.astype("datetime64[us]"),
            "session_id": [f"s{i}" for i in range(n)],
            "visitor_id": [f"v{i}" for i in rng.integers(0, max(n // 4, 1), n)],
            "channel": np.array(["search", "social", "email", "direct"])[rng.integers(0, 4, n)],
            "utm_source": np.array(["google", "meta", "newsletter", None], dtype=object)[rng.integers(0, 4, n)],
            "pageviews": rng.integers(1, 6, n),
            "duration_s": rng.integers(5, 900, n),
            "converted": rng.random(n) < 0.05,
            "lead": rng.random(n) < 0.1,
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Paris"))


def tickets(rng: np.random.Generator, n: int) -> pl.DataFrame:
    created = _times(rng, n, end=dt.datetime(2026, 5, 20, 18))
    wait = rng.integers(1, 600, n).astype("timedelta64[m]") + rng.integers(0, 60, n).astype("timedelta64[s]")
    frame = pl.DataFrame(
        {
            "created_at": created.astype("datetime64[us]"),
            "first_response_at": (created + wait).astype("datetime64[us]"),
            "channel": np.array(["email", "chat", "phone"])[rng.integers(0, 3, n)],
        }
    )
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 11 == 0)
        .then(None)
        .otherwise(pl.col("first_response_at"))
        .alias("first_response_at")
    )


def mentions(rng: np.random.Generator, n: int) -> pl.DataFrame:
    ts = _times(rng, n)
    sentiment = np.round(rng.uniform(-1, 1, n), 3)
    return pl.DataFrame(
        {
            "ts": ts.astype("datetime64[us]"),
            "platform": np.array(["x", "instagram", "tiktok", "linkedin"])[rng.integers(0, 4, n)],
            "sentiment": sentiment,
            "shares": rng.integers(0, 50, n),
        }
    ).with_columns(
        pl.when(pl.int_range(pl.len()) % 13 == 0).then(None).otherwise(pl.col("sentiment")).alias("sentiment")
    )


def write_example_data(data_dir: Path, seed: int = 7, scale: int = 1) -> dict[str, pl.DataFrame]:
    """Write the four files of the acceptance example; returns the frames as written."""
    rng = np.random.default_rng(seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    frames = {
        "ads": ad_events(rng, 4000 * scale),
        "sessions": sessions(rng, 6000 * scale),
        "tickets": tickets(rng, 1500 * scale),
        "mentions": mentions(rng, 3000 * scale),
    }
    frames["ads"].write_parquet(data_dir / "ad_events.parquet")
    frames["sessions"].write_parquet(data_dir / "sessions.parquet")
    frames["tickets"].write_csv(data_dir / "support_tickets.csv")
    with open(data_dir / "social_mentions.ndjson", "w") as fh:
        for row in frames["mentions"].iter_rows(named=True):
            fh.write(json.dumps({**row, "ts": row["ts"].isoformat()}) + "\n")
    return frames
