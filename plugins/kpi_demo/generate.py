"""Vectorised generation of the demo tables with numpy's PCG64 (stable streams for a given seed)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

FEEDBACK_EXPORT_ENDS = dt.date(2026, 5, 20)  # a stale export: later periods have no data
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
    """All demo tables for one variant; same arguments, same rows (each table has its own random stream)."""
    rng = np.random.default_rng(seed)
    day = _days(start, days)
    index = np.arange(days)
    weekday = (day.astype("datetime64[D]").view("int64") - 4) % 7  # 1970-01-01 was a Thursday
    season = _season(index, weekday)
    launch = (day >= np.datetime64(LAUNCH)).astype(float)
    progress = index / max(days - 1, 1)
    orders = _orders(np.random.default_rng([seed, 2]), day, season, launch, scale)
    ads = _ads(rng, day, season, launch, progress, scale)  # these four share `rng`, in this order
    sessions = _sessions(rng, day, season, launch, scale)
    return {
        "ad_events": ads,
        "sessions": _with_shoppers(np.random.default_rng([seed, 6]), sessions, orders, day[0]),
        "support_tickets": _tickets(rng, day, season, progress, scale),
        "social_mentions": _mentions(rng, day, season, launch, scale),
        "crm_leads": _leads(np.random.default_rng([seed, 1]), day, season, launch, scale),
        "orders": orders,
        "survey_responses": _survey(np.random.default_rng([seed, 3]), day, progress, scale),
        "brand_survey": _brand(np.random.default_rng([seed, 4]), day, launch, scale),
        "feedback": _feedback(np.random.default_rng([seed, 5]), day, season, scale),
    }


def _times_in(rng, day, per_day, start_hour=0.0, end_hour=24.0):  # type: ignore[no-untyped-def]
    ts_day = np.repeat(day, per_day)
    hours = rng.uniform(start_hour, end_hour, len(ts_day))
    return ts_day.astype("datetime64[us]") + (hours * 3_600_000_000).astype("timedelta64[us]")


def _leads(rng, day, season, launch, scale) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    per_day = rng.poisson(60 * scale * season * (1 + 0.25 * launch))
    ts = _times_in(rng, day, per_day, 6, 22)
    n = len(ts)
    channel = rng.choice(["search", "social", "email", "referral", "events"], n, p=[0.35, 0.25, 0.15, 0.15, 0.1])
    quality = np.select([channel == "referral", channel == "events", channel == "search"], [0.55, 0.5, 0.4], 0.3)
    qualified = rng.random(n) < quality * (1 + 0.15 * np.repeat(launch, per_day))
    stage = np.where(qualified, rng.choice(["sql", "won", "lost"], n, p=[0.5, 0.2, 0.3]), "mql")
    return pl.DataFrame(
        {
            "created_at": ts,
            "lead_id": np.arange(n),
            "channel": channel,
            "campaign": np.where(np.repeat(launch, per_day) > 0, "summer_launch", "always_on"),
            "qualified": qualified,
            "stage": stage,
        }
    ).sort("created_at")


def _orders(rng, day, season, launch, scale) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    """Customers are acquired every day; each orders again at a steady rate until it churns. Only the orders are
    stored: who is new, returning or retained is for the engine to work out from each customer's history."""
    first, last = day[0], day[-1]
    acquired_per_day = rng.poisson(45 * scale * season * (1 + 0.3 * launch))
    acquired = np.repeat(day, acquired_per_day)
    n = len(acquired)
    lifetime = rng.exponential(np.where(acquired >= np.datetime64(LAUNCH), 420.0, 300.0)).astype(int) + 1
    churn = np.minimum(acquired + lifetime.astype("timedelta64[D]"), last + np.timedelta64(1, "D"))
    active_days = (churn - acquired).astype(int)
    repeats = rng.poisson(active_days / 45.0)
    customer = np.concatenate([np.arange(n), np.repeat(np.arange(n), repeats)])
    offsets = np.concatenate(
        [np.zeros(n, dtype=int), (rng.random(repeats.sum()) * np.repeat(active_days, repeats)).astype(int)]
    )
    order_day = np.concatenate([acquired, np.repeat(acquired, repeats)]) + offsets.astype("timedelta64[D]")
    keep = (order_day >= first) & (order_day <= last)
    channel = rng.choice(["search", "social", "email", "direct"], n, p=[0.35, 0.25, 0.15, 0.25])
    m = int(keep.sum())
    ts = order_day[keep].astype("datetime64[us]") + (rng.uniform(7, 23, m) * 3_600_000_000).astype("timedelta64[us]")
    return pl.DataFrame(
        {
            "ordered_at": ts,
            "order_id": np.arange(m),
            "customer_id": customer[keep],
            "channel": channel[customer[keep]],
            "amount": np.round(rng.gamma(3.0, 28.0, m), 2),
        }
    ).sort("ordered_at")


def _survey(rng, day, progress, scale) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    per_day = rng.poisson(25 * scale, len(day))
    ts = _times_in(rng, day, per_day, 8, 21)
    n = len(ts)
    survey = rng.choice(["csat", "nps"], n, p=[0.6, 0.4])
    lift = np.repeat(progress, per_day)
    csat = np.clip(np.round(rng.normal(3.7 + 0.5 * lift, 1.0)), 1, 5)
    nps = np.clip(np.round(rng.normal(7.0 + 1.2 * lift, 2.2)), 0, 10)
    return pl.DataFrame(
        {"answered_at": ts, "survey": survey, "score": np.where(survey == "csat", csat, nps).astype(int)}
    ).sort("answered_at")


def _brand(rng, day, launch, scale) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    per_day = rng.poisson(60 * scale, len(day))
    ts = _times_in(rng, day, per_day, 9, 20)
    n = len(ts)
    brand = rng.choice(["ours", "rival_a", "rival_b"], n)
    base = np.select([brand == "rival_a", brand == "rival_b"], [0.52, 0.31], 0.36)
    p = base + np.where(brand == "ours", 0.08 * np.repeat(launch, per_day), 0.0)
    return pl.DataFrame({"answered_at": ts, "brand": brand, "aware": rng.random(n) < p}).sort("answered_at")


def _feedback(rng, day, season, scale) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    day = day[day <= np.datetime64(FEEDBACK_EXPORT_ENDS)]
    per_day = rng.poisson(35 * scale * season[: len(day)])
    ts = _times_in(rng, day, per_day)
    n = len(ts)
    return pl.DataFrame(
        {
            "received_at": ts,
            "channel": rng.choice(["app", "email", "social", "store"], n),
            "topic": rng.choice(["pricing", "delivery", "product", "support"], n),
        }
    ).sort("received_at")


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
            interactions = clicks + rng.binomial(impressions, 0.012 if channel == "social" else 0.002)
            frames.append(
                pl.DataFrame(
                    {
                        "ts": day.astype("datetime64[us]") + np.timedelta64(12, "h"),
                        "channel": channel,
                        "campaign": campaign,
                        "utm_source": utm[channel],
                        "impressions": impressions,
                        "clicks": clicks,
                        "interactions": interactions,
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


def _with_shoppers(rng, sessions: pl.DataFrame, orders: pl.DataFrame, first) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    """Sessions of signed-in customers before some of their orders (none for the rest, which come from
    elsewhere): a few hours to days before, by a channel that depends on the customer's own. Anonymous
    sessions have no customer_id. Which session an order converts is for the engine to work out."""
    n = orders.height
    visits = np.where(rng.random(n) < 0.15, 1 + rng.poisson(0.8, n), 0)  # browsing sessions before an order
    picked = orders[np.repeat(np.arange(n), visits)]
    m = picked.height
    before = (rng.exponential(60.0, m) + 0.25) * 3_600_000_000  # hours before the order, in microseconds
    ts = picked["ordered_at"].to_numpy() - before.astype("timedelta64[us]")
    own = picked["channel"].to_numpy()
    paid = np.select([own == "search", own == "social", own == "email"], ["search", "social", "email"], "direct")
    channel = np.where(rng.random(m) < 0.7, paid, rng.choice(["search", "social", "email", "direct", "display"], m))
    utm = np.select(
        [channel == "search", channel == "social", channel == "email", channel == "display"],
        ["google", "meta", "newsletter", "dv360"],
        "(none)",
    )
    pageviews = 1 + rng.geometric(0.35, m) - 1  # browsing like anyone else: the other KPIs barely move
    shopper = pl.DataFrame(
        {
            "ts": ts,
            "visitor_id": rng.zipf(1.3, m) % max(sessions["visitor_id"].max() + 1, 1000),
            "customer_id": picked["customer_id"],
            "channel": channel,
            "utm_source": utm,
            "pageviews": pageviews,
            "duration_s": np.where(pageviews == 1, rng.integers(2, 40, m), rng.gamma(2.0, 90.0, m).astype(np.int64)),
            "converted": rng.random(m) < 0.08,
            "lead": rng.random(m) < 0.08,
        }
    ).filter(pl.col("ts") >= np.datetime64(first, "us"))
    anonymous = sessions.drop("session_id").with_columns(pl.lit(None, dtype=pl.Int64).alias("customer_id"))
    merged = pl.concat([anonymous, shopper.select(anonymous.columns)], how="vertical_relaxed").sort("ts")
    return merged.with_row_index("session_id").with_columns(pl.col("session_id").cast(pl.Int64))


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
