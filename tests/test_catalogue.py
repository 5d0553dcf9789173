"""The shipped catalogue on the demo data: every KPI against DuckDB SQL written separately, and SMART lint."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys

import polars as pl
import pytest

import kpi_engine
from kpi_engine.targets import assess, span_requests

from conftest import require

AS_OF = dt.date(2026, 6, 30)
SPECS = "kpi_specs"


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-cache")


@pytest.fixture(scope="module")
def catalogue(demo_cache, request):
    mp = pytest.MonkeyPatch()
    mp.setenv("KPI_ENGINE_CACHE", str(demo_cache))
    request.addfinalizer(mp.undo)
    root = request.config.rootpath / SPECS
    catalog = kpi_engine.load(root)
    result = catalog.evaluate(AS_OF, spans=span_requests(catalog.project, AS_OF))
    return catalog, result


@pytest.fixture(scope="module")
def duck(catalogue, demo_cache):
    duckdb = require("duckdb")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    folder = next(demo_cache.glob("demo-v*"))
    times = {
        "ad_events": "ts",
        "sessions": "ts",
        "support_tickets": "created_at",
        "social_mentions": "ts",
        "crm_leads": "created_at",
        "orders": "ordered_at",
        "survey_responses": "answered_at",
        "brand_survey": "answered_at",
        "feedback": "received_at",
    }
    for table, col in times.items():
        # lt: the local (Europe/London) wall-clock time that periods are bucketed on; rows up to as-of only
        con.execute(f"""CREATE VIEW {table} AS SELECT *, timezone('Europe/London', {col}::TIMESTAMPTZ) AS lt
                        FROM read_parquet('{folder / (table + ".parquet")}')
                        WHERE timezone('Europe/London', {col}::TIMESTAMPTZ) < TIMESTAMP '2026-07-01'""")
    return con


W = "date_trunc('week', lt)::DATE"
M = "date_trunc('month', lt)::DATE"
MINUTES = "epoch(first_response_at - created_at) / 60.0"
FIRSTS = f"firsts AS (SELECT customer_id, min({M}) m FROM orders GROUP BY 1)"


def _cohort(k: int) -> str:
    """Share of each month's new customers who order k months later; null until that month is over."""
    return f"""WITH {FIRSTS}, active AS (SELECT DISTINCT customer_id, {M} m FROM orders)
               SELECT f.m, CASE WHEN f.m + INTERVAL {k + 1} MONTH <= DATE '2026-07-01'
                                THEN 100.0 * count(a.customer_id) / count(*) END
               FROM firsts f LEFT JOIN active a ON a.customer_id = f.customer_id AND a.m = f.m + INTERVAL {k} MONTH
               GROUP BY f.m"""
SQL = {
    "mentions_count": f"SELECT {W}, count(*) FROM social_mentions GROUP BY 1",
    "shares": f"SELECT {W}, sum(shares) FROM social_mentions GROUP BY 1",
    "sentiment": f"SELECT {W}, avg(sentiment) FILTER (WHERE platform IN ('x', 'instagram')) FROM social_mentions GROUP BY 1",
    "engagement_rate": f"SELECT {W}, 100.0 * sum(interactions) / sum(impressions) FROM ad_events GROUP BY 1",
    "avg_response_minutes": f"SELECT {M}, avg({MINUTES}) FROM support_tickets GROUP BY 1",
    "p90_response_minutes": f"SELECT {W}, quantile_cont({MINUTES}, 0.9) FROM support_tickets GROUP BY 1",
    "ctr": f"SELECT {W}, 100.0 * sum(clicks) / sum(impressions) FROM ad_events GROUP BY 1",
    "conversion_rate_per_interaction": f"SELECT {W}, 100.0 * sum(conversions) / sum(clicks) FROM ad_events GROUP BY 1",
    "conversion_rate_per_user": f"SELECT {M}, 100.0 * count(DISTINCT visitor_id) FILTER (WHERE converted) / count(DISTINCT visitor_id) FROM sessions GROUP BY 1",
    "bounce_rate": f"SELECT {W}, 100.0 * count(*) FILTER (WHERE pageviews = 1) / count(*) FROM sessions GROUP BY 1",
    "time_on_site": f"SELECT {W}, avg(duration_s) FROM sessions GROUP BY 1",
    "sessions": f"SELECT {M}, count(*) FROM sessions GROUP BY 1",
    "unique_visitors": f"SELECT {M}, count(DISTINCT visitor_id) FROM sessions GROUP BY 1",
    "qualified_leads": f"SELECT {M}, count(*) FILTER (WHERE qualified) FROM crm_leads GROUP BY 1",
    "ad_spend": f"SELECT {M}, sum(cost) FROM ad_events GROUP BY 1",
    "cpc": f"SELECT {M}, sum(cost) / sum(clicks) FROM ad_events GROUP BY 1",
    "cpl": f"""SELECT a.m, a.cost / l.q FROM (SELECT {M} m, sum(cost) cost FROM ad_events GROUP BY 1) a
               JOIN (SELECT {M} m, count(*) FILTER (WHERE qualified) q FROM crm_leads GROUP BY 1) l USING (m)""",
    "cpa": f"SELECT {M}, sum(cost) / sum(conversions) FROM ad_events GROUP BY 1",
    "revenue": f"SELECT {M}, sum(amount) FROM orders GROUP BY 1",
    "sales_volume": f"SELECT {M}, count(*) FROM orders GROUP BY 1",
    "sales_growth": f"""SELECT m, 100.0 * (r / lag(r) OVER (ORDER BY m) - 1) FROM
                        (SELECT {M} m, sum(amount) r FROM orders GROUP BY 1)""",
    # (the formula's datetimes are London times: 27 April 00:00 BST is 26 April 23:00 UTC)
    "launch_sales_lift": """SELECT date_trunc('year', lt)::DATE, 100.0 * (
                              sum(amount) FILTER (WHERE ordered_at >= TIMESTAMP '2026-03-02' AND ordered_at < TIMESTAMP '2026-04-26 23:00')
                            / sum(amount) FILTER (WHERE ordered_at >= TIMESTAMP '2026-01-05' AND ordered_at < TIMESTAMP '2026-03-02') - 1)
                            FROM orders GROUP BY 1""",
    "roi": f"SELECT {M}, 100.0 * (sum(revenue) - sum(cost)) / sum(cost) FROM ad_events GROUP BY 1",
    "retention_rate": f"""WITH c AS (SELECT DISTINCT {M} m, customer_id FROM orders),
                               p AS (SELECT (m + INTERVAL 1 MONTH)::DATE m, customer_id FROM c)
                          SELECT p.m, 100.0 * count(c.customer_id) / count(*) FROM p LEFT JOIN c USING (m, customer_id)
                          GROUP BY 1""",
    "ltv": f"SELECT {M}, sum(amount) / count(DISTINCT customer_id) * 18 * 0.62 FROM orders GROUP BY 1",
    "ltv_to_cpa": f"""WITH {FIRSTS} SELECT o.m, o.ltv / (a.cost / f.new) FROM
                        (SELECT {M} m, sum(amount) / count(DISTINCT customer_id) * 18 * 0.62 ltv FROM orders GROUP BY 1) o
                        JOIN (SELECT {M} m, sum(cost) cost FROM ad_events GROUP BY 1) a USING (m)
                        JOIN (SELECT m, count(*) new FROM firsts GROUP BY 1) f USING (m)""",
    "repeat_purchase_rate": f"""SELECT m, 100.0 * count(*) FILTER (WHERE n >= 2) / count(*) FROM
                                  (SELECT {M} m, customer_id, count(*) n FROM orders GROUP BY 1, 2) GROUP BY 1""",
    "new_customers": f"WITH {FIRSTS} SELECT m, count(*) FROM firsts GROUP BY 1",
    "returning_customers": f"""WITH {FIRSTS} SELECT {M}, count(DISTINCT customer_id) FROM orders JOIN firsts f
                                 USING (customer_id) WHERE f.m < {M} GROUP BY 1""",
    "revenue_28d": """WITH days AS (SELECT range::DATE p FROM range(DATE '2024-07-01', DATE '2026-07-01', INTERVAL 1 DAY))
                       SELECT p, sum(amount) FROM days JOIN orders ON lt::DATE BETWEEN p - 27 AND p GROUP BY p""",
    "mtd_revenue_vs_last_month": """WITH days AS (SELECT range::DATE p FROM range(DATE '2024-07-01', DATE '2026-07-01', INTERVAL 1 DAY)),
                       mtd AS (SELECT p, sum(amount) r FROM days JOIN orders ON lt::DATE BETWEEN date_trunc('month', p) AND p
                               GROUP BY p)
                       SELECT a.p, 100.0 * (a.r / b.r - 1) FROM mtd a JOIN mtd b ON b.p = (a.p - INTERVAL 1 MONTH)::DATE""",
    "visit_to_purchase": f"""WITH s AS (SELECT * FROM sessions WHERE customer_id IS NOT NULL),
                       matched AS (SELECT o.order_id, arg_max(date_trunc('month', s.lt)::DATE, (s.ts, s.channel)) m
                                   FROM orders o JOIN s ON s.customer_id = o.customer_id AND s.ts <= o.ordered_at
                                   AND s.ts > o.ordered_at - INTERVAL 7 DAY GROUP BY o.order_id)
                       SELECT v.m, 100.0 * coalesce(c.n, 0) / v.n FROM (SELECT {M} m, count(*) n FROM s GROUP BY 1) v
                       LEFT JOIN (SELECT m, count(*) n FROM matched GROUP BY 1) c USING (m)""",
    "cohort_ltv_3m": f"""WITH {FIRSTS} SELECT f.m, CASE WHEN f.m + INTERVAL 3 MONTH <= DATE '2026-07-01'
                           THEN sum(o.amount) FILTER (WHERE {M} < f.m + INTERVAL 3 MONTH) / count(DISTINCT f.customer_id) END
                           FROM firsts f JOIN orders o USING (customer_id) GROUP BY f.m""",
    "retention_m1": _cohort(1),
    "retention_m3": _cohort(3),
    "csat": f"""SELECT {M}, 100.0 * count(*) FILTER (WHERE score >= 4) / count(*) FROM survey_responses
                WHERE survey = 'csat' GROUP BY 1""",
    "nps": f"""SELECT {M}, 100.0 * (count(*) FILTER (WHERE score >= 9) - count(*) FILTER (WHERE score <= 6)) / count(*)
               FROM survey_responses WHERE survey = 'nps' GROUP BY 1""",
    "brand_awareness": f"""SELECT {M}, 100.0 * count(*) FILTER (WHERE aware) / count(*) FROM brand_survey
                           WHERE brand = 'ours' GROUP BY 1""",
    "awareness_vs_rivals": f"SELECT {M}, 100.0 * count(*) FILTER (WHERE aware) / count(*) FROM brand_survey GROUP BY 1",
    "feedback_volume": f"SELECT {W}, count(*) FROM feedback GROUP BY 1",
}


def test_every_catalogue_kpi_has_an_independent_check(catalogue):
    catalog, _ = catalogue
    assert set(catalog.project.kpis) == set(SQL)


@pytest.mark.parametrize("kpi_id", sorted(SQL))
def test_catalogue_kpi_matches_sql(catalogue, duck, kpi_id):
    _, result = catalogue
    frame = result[kpi_id].filter(pl.col("is_total") & pl.col("has_data"))
    engine = {r["start"]: r["value"] for r in frame.iter_rows(named=True)}
    expected = {k: v for k, v in duck.execute(SQL[kpi_id]).fetchall()}
    assert len(engine) >= 2
    checked = 0
    for start, value in engine.items():
        want = expected.get(start)
        if want is None or (isinstance(want, float) and math.isnan(want)):
            assert value is None or value == 0, (start, value)
            continue
        assert value is not None and math.isclose(value, want, rel_tol=1e-9, abs_tol=1e-9), (kpi_id, start, value, want)
        checked += 1
    assert checked >= 1


def test_every_status_appears_in_the_demo(catalogue):
    _, result = catalogue
    statuses = {a[0].status for a in assess(result).values()}
    assert statuses == {"achieved", "on_track", "at_risk", "off_track", "no_data", "not_started", "missed"}


def test_key_kpis_per_meeting(catalogue):
    catalog, _ = catalogue
    from collections import Counter

    meetings = Counter(k.review.meeting for k in catalog.project.kpis.values() if k.key)
    assert all(3 <= n <= 5 for n in meetings.values()), meetings
    assert len(meetings) == 4


def test_catalogue_passes_strict_lint(demo_cache, request):
    import os

    res = subprocess.run(
        [sys.executable, "-m", "kpi_engine", "lint", SPECS, "--as-of", AS_OF.isoformat(), "--strict"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=request.config.rootpath,
        env={**os.environ, "KPI_ENGINE_CACHE": str(demo_cache)},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "40 of 40 KPIs are SMART" in res.stderr


def test_every_catalogue_kpi_is_described(catalogue):
    catalog, _ = catalogue
    for kpi in catalog.project.kpis.values():
        assert kpi.description and kpi.owner and kpi.stakeholders and kpi.target and kpi.review, kpi.id
    practices = {kpi.loc().file.rsplit("/", 1)[-1] for kpi in catalog.project.kpis.values()}
    assert practices == {"realtime.yaml", "interactive.yaml", "inbound.yaml", "outcomes.yaml"}
