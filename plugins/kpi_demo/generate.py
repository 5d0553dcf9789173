"""Vectorised generation of the demo tables with numpy's PCG64 (stable streams for a given seed)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

TABLES = ("ad_events", "sessions", "support_tickets", "social_mentions")
CHANNELS = ("search", "social", "display", "email", "affiliate")
CAMPAIGNS = ("always_on", "brand", "summer_launch")
LAUNCH = dt.date(2026, 3, 2)


def _days(start: dt.date, days: int) -> np.ndarray:
    return np.datetime64(start, "D") + np.arange(days)


def _season(day_index: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    yearly = 1 + 0.15 * np.sin(2 * np.pi * (day_index - 80) / 365.25)
    weekly = np.where(weekday >= 5, 0.7, 1.05)
    return yearly * weekly


def generate(seed: int, scale: float, start: dt.date, days: int) -> dict[str, pl.DataFrame]:
    """All demo tables for one variant; same arguments, same rows."""
    rng = np.random.default_rng(seed)
    day = _days(start, days)
    index = np.arange(days)
    weekday = (day.astype("datetime64[D]").view("int64") - 4) % 7  # 1970-01-01 was a Thursday
    season = _season(index, weekday)
    launch = (day >= np.datetime64(LAUNCH)).astype(float)
    progress = index / max(days - 1, 1)
    return {
        "ad_events": _ads(rng, day, season, launch, progress, scale),
        "sessions": _sessions(rng, day, season, launch, scale),
        "support_tickets": _tickets(rng, day, season, progress, scale),
        "social_mentions": _mentions(rng, day, season, launch, scale),
    }


def _ads(rng, day, season, launch, progress, scale) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    base_ctr = {"search": 0.032, "social": 0.011, "display": 0.006, "email": 0.045, "affiliate": 0.015}
    cpc = {"search": 1.6, "social": 0.9, "display": 0.5, "email": 0.2, "affiliate": 1.1}
    frames = []
    for channel in CHANNELS:
        for campaign in CAMPAIGNS:
            active = np.ones(len(day)) if campaign != "summer_launch" else launch
            reach = 30_000 * scale * season * active * (1.6 if campaign == "always_on" else 0.7)
            impressions = rng.poisson(np.maximum(reach, 0))
            trend = {"social": 1 + 0.8 * progress, "display": 1 - 0.5 * progress}.get(channel, 1 + 0 * progress)
            ctr = base_ctr[channel] * trend * (1.25 if campaign == "summer_launch" else 1.0)
            clicks = rng.binomial(impressions, np.clip(ctr, 0, 1))
            conversions = rng.binomial(clicks, 0.04 if channel != "display" else 0.02)
            cost = np.round(clicks * cpc[channel] * rng.uniform(0.85, 1.15, len(day)), 2)
            revenue = np.round(conversions * rng.gamma(4.0, 30.0, len(day)), 2)
            utm = {
                "search": "google",
                "social": "meta",
                "display": "dv360",
                "email": "newsletter",
                "affiliate": "partners",
            }
            frames.append(
                pl.DataFrame(
                    {
                        "ts": day.astype("datetime64[us]") + np.timedelta64(12, "h"),
                        "channel": channel,
                        "campaign": campaign,
                        "utm_source": utm[channel],
                        "impressions": impressions,
                        "clicks": clicks,
                        "cost": cost,
                        "conversions": conversions,
                        "revenue": revenue,
                    }
                ).filter(pl.col("impressions") > 0)
            )
    return pl.concat(frames).sort("ts")


def _sessions(rng, day, season, launch, scale) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    per_day = rng.poisson(700 * scale * season * (1 + 0.2 * launch))
    ts_day = np.repeat(day, per_day)
    n = len(ts_day)
    # sessions follow a daily curve peaking mid-afternoon
    hour = np.clip(rng.normal(14, 4, n), 0, 23.999)
    ts = ts_day.astype("datetime64[us]") + (hour * 3_600_000_000).astype("timedelta64[us]")
    channel = rng.choice(["search", "social", "email", "direct", "display"], n, p=[0.4, 0.2, 0.1, 0.2, 0.1])
    utm = np.select(
        [channel == "search", channel == "social", channel == "email", channel == "display"],
        ["google", "meta", "newsletter", "dv360"],
        "(none)",
    )
    pageviews = 1 + rng.geometric(0.35, n) - 1
    return pl.DataFrame(
        {
            "ts": ts,
            "session_id": np.arange(n),
            "visitor_id": rng.zipf(1.3, n) % max(int(200_000 * scale), 1000),
            "channel": channel,
            "utm_source": utm,
            "pageviews": pageviews,
            "duration_s": np.where(pageviews == 1, rng.integers(2, 40, n), rng.gamma(2.0, 90.0, n).astype(np.int64)),
            "converted": rng.random(n) < np.where(channel == "email", 0.06, 0.025),
            "lead": rng.random(n) < 0.08,
        }
    ).sort("ts")


def _tickets(rng, day, season, progress, scale) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    per_day = rng.poisson(40 * scale * season)
    ts_day = np.repeat(day, per_day)
    n = len(ts_day)
    created = ts_day.astype("datetime64[us]") + (rng.uniform(7, 20, n) * 3_600_000_000).astype("timedelta64[us]")
    channel = rng.choice(["email", "chat", "phone", "social"], n, p=[0.4, 0.3, 0.2, 0.1])
    typical = np.select([channel == "chat", channel == "phone"], [4.0, 8.0], 90.0)
    speedup = 1 - 0.4 * np.repeat(progress, per_day)
    minutes = rng.gamma(1.5, typical * speedup / 1.5)
    answered = rng.random(n) > 0.03
    response = created + (minutes * 60_000_000).astype("timedelta64[us]")
    return (
        pl.DataFrame({"created_at": created, "first_response_at": response, "channel": channel, "answered": answered})
        .with_columns(
            pl.when(pl.col("answered")).then(pl.col("first_response_at")).otherwise(None).alias("first_response_at")
        )
        .drop("answered")
        .sort("created_at")
    )


def _mentions(rng, day, season, launch, scale) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    per_day = rng.poisson(150 * scale * season * (1 + 0.5 * launch))
    ts_day = np.repeat(day, per_day)
    n = len(ts_day)
    ts = ts_day.astype("datetime64[us]") + (rng.uniform(0, 24, n) * 3_600_000_000).astype("timedelta64[us]")
    platform = rng.choice(["x", "instagram", "tiktok", "linkedin"], n, p=[0.35, 0.3, 0.2, 0.15])
    mood = np.repeat(0.1 + 0.15 * launch, per_day)
    return pl.DataFrame(
        {
            "ts": ts,
            "platform": platform,
            "sentiment": np.round(np.clip(rng.normal(mood, 0.45), -1, 1), 3),
            "shares": rng.negative_binomial(1, 0.15, n),
        }
    ).sort("ts")
