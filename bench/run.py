"""Benchmark: the engine on the benchmark catalogue against a hand-written fused polars query per source,
hand-written DuckDB SQL, and naive per-KPI evaluation, on the same Parquet files, in one process.

    python bench/run.py --rows 10000000            # times (median of 5 after a warm-up) and ratios
    python bench/run.py --rows 100000 --repeat 1   # the smoke run CI does
    python bench/run.py --rows 1000000 --kpis      # planning and run time for 20, 200, 2,000 KPIs

All four must produce the same numbers (checked before any time is reported). Peak RSS of each approach is
measured in a separate process. Every run appends a JSON line to bench/results.jsonl (or --results FILE);
the data is generated under bench/data (or --data DIR).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from generate import generate  # noqa: E402

Values = dict[str, dict[tuple[dt.date, str | None], float | None]]
WEEK_CHANNEL = [
    "ctr",
    "clicks",
    "conversion_rate",
    "cpc",
    "cpa",
    "roi_week",
    "sessions_count",
    "bounce_rate",
    "session_conversion_rate",
    "mean_session_duration",
]


def prepare(rows: int, data: Path = HERE / "data") -> Path:
    folder = data / str(rows)
    generate(rows, folder)
    shutil.copy(HERE / "catalogue.yaml", folder / "kpis.yaml")
    return folder


# --- the engine ------------------------------------------------------------------------------------------


def engine(folder: Path, kpis: list[str] | None = None, streaming: bool = False) -> Values:
    import kpi_engine

    result = kpi_engine.load(folder).evaluate(dt.date(2026, 12, 31), kpis=kpis, streaming=streaming)
    out: Values = {}
    for kpi_id, frame in result.series.items():
        dim = "channel" if "channel" in frame.columns else None
        out[kpi_id] = {
            (r["start"], None if r["is_total"] or dim is None else r[dim]): r["value"]
            for r in frame.iter_rows(named=True)
            if r["has_data"]
        }
    return out


def naive(folder: Path) -> Values:
    """One scan and group_by per KPI: what evaluating KPIs one at a time costs."""
    import kpi_engine

    catalog = kpi_engine.load(folder)
    out: Values = {}
    for kpi_id in catalog.project.kpis:
        out.update(engine(folder, [kpi_id]))
    return out


# --- the hand-written baselines, which return base aggregates --------------------------------------------


def fused_polars(folder: Path) -> dict[str, pl.DataFrame]:
    """What an expert writes by hand: one scan per source, all aggregates of a grain in one group_by."""
    week = pl.col("ts").dt.truncate("1w").dt.date().alias("p")
    month = pl.col("ts").dt.truncate("1mo").dt.date().alias("p")
    ads = pl.scan_parquet(folder / "ad_events.parquet")
    ses = pl.scan_parquet(folder / "sessions.parquet")
    tic = pl.scan_parquet(folder / "support_tickets.parquet").rename({"created_at": "ts"})
    men = pl.scan_parquet(folder / "social_mentions.parquet")
    i64 = lambda c: pl.col(c).cast(pl.Int64).sum().alias(c)  # noqa: E731
    queries = {
        "ads_w": ads.group_by(week, "channel").agg(
            i64("impressions"), i64("clicks"), i64("conversions"), pl.col("cost").sum(), pl.col("revenue").sum()
        ),
        "ads_m": ads.group_by(month, "channel").agg(pl.col("cost").sum(), pl.col("revenue").sum()),
        "ses_w": ses.group_by(week, "channel").agg(
            pl.len().alias("n"),
            (pl.col("pageviews") == 1).sum().alias("bounces"),
            pl.col("converted").sum().alias("converted"),
            i64("duration_s"),
        ),
        "ses_m": ses.group_by(month, "channel").agg(pl.col("visitor_id").n_unique().alias("visitors")),
        "ses_mt": ses.group_by(month).agg(
            pl.col("visitor_id").n_unique().alias("visitors"), pl.col("lead").sum().alias("leads")
        ),
        "tic_w": tic.group_by(week).agg(
            ((pl.col("first_response_at") - pl.col("ts")).dt.total_microseconds() / 6e7).sum().alias("resp_sum"),
            pl.col("first_response_at").count().alias("resp_n"),
        ),
        "men_w": men.group_by(week).agg(
            pl.len().alias("n"),
            i64("shares"),
            pl.col("sentiment").filter(pl.col("platform").is_in(["x", "instagram"])).sum().alias("sent_sum"),
            pl.col("sentiment").filter(pl.col("platform").is_in(["x", "instagram"])).count().alias("sent_n"),
        ),
    }
    frames = pl.collect_all(list(queries.values()))
    return dict(zip(queries, frames, strict=True))


def duckdb_sql(folder: Path) -> dict[str, pl.DataFrame]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    f = {
        name: f"read_parquet('{folder / (name + '.parquet')}')"
        for name in ("ad_events", "sessions", "support_tickets", "social_mentions")
    }
    w, m = "date_trunc('week', ts)::DATE AS p", "date_trunc('month', ts)::DATE AS p"
    sql = {
        "ads_w": f"SELECT {w}, channel, sum(impressions)::BIGINT impressions, sum(clicks)::BIGINT clicks, "
        f"sum(conversions)::BIGINT conversions, sum(cost) cost, sum(revenue) revenue FROM {f['ad_events']} GROUP BY ALL",
        "ads_m": f"SELECT {m}, channel, sum(cost) cost, sum(revenue) revenue FROM {f['ad_events']} GROUP BY ALL",
        "ses_w": f"SELECT {w}, channel, count(*) n, count(*) FILTER (WHERE pageviews = 1) bounces, "
        f"count(*) FILTER (WHERE converted) converted, sum(duration_s)::BIGINT duration_s FROM {f['sessions']} GROUP BY ALL",
        "ses_m": f"SELECT {m}, channel, count(DISTINCT visitor_id) visitors FROM {f['sessions']} GROUP BY ALL",
        "ses_mt": f"SELECT {m}, count(DISTINCT visitor_id) visitors, count(*) FILTER (WHERE lead) leads FROM {f['sessions']} GROUP BY ALL",
        "tic_w": f"SELECT date_trunc('week', created_at)::DATE AS p, sum(epoch(first_response_at - created_at) / 60) resp_sum, "
        f"count(first_response_at) resp_n FROM {f['support_tickets']} GROUP BY ALL",
        "men_w": f"SELECT {w}, count(*) n, sum(shares)::BIGINT shares, sum(sentiment) FILTER (WHERE platform IN ('x', 'instagram')) sent_sum, "
        f"count(sentiment) FILTER (WHERE platform IN ('x', 'instagram')) sent_n FROM {f['social_mentions']} GROUP BY ALL",
    }
    return {k: con.sql(q).pl() for k, q in sql.items()}


def kpis_from_base(base: dict[str, pl.DataFrame]) -> Values:
    """KPI values from base aggregates: the same arithmetic for both hand-written baselines."""

    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    out: Values = {
        k: {}
        for k in (
            "ctr",
            "clicks",
            "conversion_rate",
            "cpc",
            "cpa",
            "roi_week",
            "ad_spend",
            "roi",
            "revenue_growth",
            "leads",
            "cpl",
            "sessions_count",
            "bounce_rate",
            "session_conversion_rate",
            "mean_session_duration",
            "unique_visitors",
            "avg_response_minutes",
            "mentions_count",
            "shares",
            "sentiment",
        )
    }
    cols = ["impressions", "clicks", "conversions", "cost", "revenue"]
    ads_w = base["ads_w"]
    totals = ads_w.group_by("p").agg(pl.col(cols).sum()).with_columns(pl.lit(None, pl.String).alias("channel"))
    for r in pl.concat([ads_w.select("p", "channel", *cols), totals.select("p", "channel", *cols)]).iter_rows(
        named=True
    ):
        key = (r["p"], r["channel"])
        out["ctr"][key] = div(100 * r["clicks"], r["impressions"])
        out["clicks"][key] = float(r["clicks"])
        out["conversion_rate"][key] = div(100 * r["conversions"], r["clicks"])
        out["cpc"][key] = div(r["cost"], r["clicks"])
        out["cpa"][key] = div(r["cost"], r["conversions"])
        out["roi_week"][key] = div(100 * (r["revenue"] - r["cost"]), r["cost"])
    ads_m = base["ads_m"]
    for r in ads_m.iter_rows(named=True):
        out["ad_spend"][(r["p"], r["channel"])] = r["cost"]
    month = ads_m.group_by("p").agg(pl.col("cost", "revenue").sum()).sort("p").join(base["ses_mt"], on="p", how="left")
    previous = None
    for r in month.iter_rows(named=True):
        out["ad_spend"][(r["p"], None)] = r["cost"]
        out["roi"][(r["p"], None)] = div(100 * (r["revenue"] - r["cost"]), r["cost"])
        out["revenue_growth"][(r["p"], None)] = (
            div(100 * (r["revenue"] - previous), previous) if previous is not None else None
        )
        previous = r["revenue"]
        out["leads"][(r["p"], None)] = float(r["leads"])
        out["cpl"][(r["p"], None)] = div(r["cost"], r["leads"])
        out["unique_visitors"][(r["p"], None)] = float(r["visitors"])
    for r in base["ses_m"].iter_rows(named=True):
        out["unique_visitors"][(r["p"], r["channel"])] = float(r["visitors"])
    scols = ["n", "bounces", "converted", "duration_s"]
    ses_w = base["ses_w"]
    stot = ses_w.group_by("p").agg(pl.col(scols).sum()).with_columns(pl.lit(None, pl.String).alias("channel"))
    for r in pl.concat([ses_w.select("p", "channel", *scols), stot.select("p", "channel", *scols)]).iter_rows(
        named=True
    ):
        key = (r["p"], r["channel"])
        out["sessions_count"][key] = float(r["n"])
        out["bounce_rate"][key] = div(100 * r["bounces"], r["n"])
        out["session_conversion_rate"][key] = div(100 * r["converted"], r["n"])
        out["mean_session_duration"][key] = div(r["duration_s"], r["n"])
    for r in base["tic_w"].iter_rows(named=True):
        out["avg_response_minutes"][(r["p"], None)] = div(r["resp_sum"], r["resp_n"])
    for r in base["men_w"].iter_rows(named=True):
        key = (r["p"], None)
        out["mentions_count"][key] = float(r["n"])
        out["shares"][key] = float(r["shares"])
        out["sentiment"][key] = div(r["sent_sum"], r["sent_n"])
    return out


def agree(name: str, got: Values, want: Values) -> None:
    """Every KPI value of ``want`` appears in ``got`` with the same value (relative 1e-9, or 1e-12 absolute).

    The absolute part is for means near zero: at 100M rows a week's mean sentiment of 1.04e-8 comes from
    ~500k values between -1 and 1 cancelling out, and summing them in another order moves its ninth digit.
    """
    for kpi_id, values in want.items():
        for key, value in values.items():
            other = got.get(kpi_id, {}).get(key, "missing")
            if value is None and other is None:
                continue
            if (
                other == "missing"
                or other is None
                or value is None
                or not math.isclose(other, value, rel_tol=1e-9, abs_tol=1e-12)
            ):
                raise SystemExit(f"{name} disagrees on {kpi_id} {key}: {other} != {value}")


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: file cache, imports, polars thread pool
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


APPROACHES = {
    "engine": lambda folder: engine(folder),
    "fused_polars": lambda folder: kpis_from_base(fused_polars(folder)),
    "duckdb_sql": lambda folder: kpis_from_base(duckdb_sql(folder)),
    "naive_per_kpi": lambda folder: naive(folder),
}


def peak_rss(approach: str, folder: Path) -> float:
    """Peak resident memory (MB) of one run of ``approach`` in a fresh process.

    Linux keeps a process's peak RSS across fork and exec, so a child of this (large) process would report
    our peak; a small intermediate process starts the measured one and reports its children's peak.
    """
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import run; "
        f"run.APPROACHES[{approach!r}](run.Path({str(folder)!r}))"
    )
    launcher = (
        "import resource, subprocess, sys; subprocess.run([sys.executable, '-c', sys.argv[1]], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", launcher, code], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def kpi_scaling(folder: Path, counts: list[int], repeat: int, shared: bool) -> list[dict]:
    """Planning and run time when the catalogue grows: n KPIs over the same source.

    ``shared``: the KPIs combine the same few aggregates differently (the planner computes them once);
    otherwise each KPI adds two aggregates with a filter of its own (the work grows with them).
    """
    import kpi_engine
    from kpi_engine.plan import Window

    rows = []
    for n in counts:
        lines = [
            line
            for line in (HERE / "catalogue.yaml").read_text().splitlines()
            if not line.startswith("  ") or "connector" in line
        ]
        extra = []
        for i in range(n):
            if shared:
                formula = f"{i + 1} * sum(ads.clicks) / sum(ads.impressions) + sum(ads.cost) / {i + 1}"
            else:
                formula = (
                    f"100 * sum(ads.clicks where impressions > {i % 1900}) / "
                    f"sum(ads.impressions where impressions > {i % 1900})"
                )
            extra.append(
                f"  k{i}: {{unit: percent, formula: {formula}, grain: {'week' if i % 2 else 'month'}, "
                f"dimensions: [channel]}}"
            )
        spec = folder.parent / f"{folder.name}-scale" / f"{n}{'-shared' if shared else ''}"  # outside the data folder
        spec.mkdir(parents=True, exist_ok=True)
        for name in ("ad_events",):
            target = spec / f"{name}.parquet"
            if not target.exists():
                target.symlink_to((folder / f"{name}.parquet").resolve())
        (spec / "kpis.yaml").write_text("\n".join([*lines[: lines.index("kpis:") + 1], *extra]) + "\n")
        (spec / "kpis.yaml").write_text(
            (spec / "kpis.yaml")
            .read_text()
            .replace("  sessions:", "  # sessions:")
            .replace("  tickets:", "  # tickets:")
            .replace("  mentions:", "  # mentions:")
        )
        catalog = kpi_engine.load(spec, allow_outside=True)
        start = time.perf_counter()
        plan = catalog.plan(Window(dt.date(2026, 12, 31)))
        planning = time.perf_counter() - start
        groups = sum(1 for s in plan.sources.values() for g in s.groups.values() if g.derive_from is None)
        run = timed(lambda catalog=catalog: catalog.evaluate(dt.date(2026, 12, 31)), repeat)
        aggregates = sum(len(g.aggs) for s in plan.sources.values() for g in s.groups.values() if g.derive_from is None)
        rows.append(
            {
                "kpis": n,
                "shared": shared,
                "planning_s": planning,
                "run_s": run,
                "scans": len(plan.sources),
                "group_bys": groups,
                "aggregates": aggregates,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rss", action="store_true", help="also measure peak RSS of each approach")
    parser.add_argument("--kpis", action="store_true", help="also measure 20, 200 and 2,000 KPIs")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--data", type=Path, default=HERE / "data", help="where to generate the data (default bench/data)"
    )
    parser.add_argument(
        "--results", type=Path, default=HERE / "results.jsonl", help="the JSON-lines file a run appends to"
    )
    args = parser.parse_args()
    folder = prepare(args.rows, args.data)
    results = {name: fn(folder) for name, fn in APPROACHES.items() if not (args.skip_naive and name == "naive_per_kpi")}
    reference = results["fused_polars"]
    for name, values in results.items():
        agree(name, values, reference)
    agree("fused_polars", reference, results["duckdb_sql"])
    print(
        f"{args.rows:,} rows per table: all approaches agree on {sum(len(v) for v in reference.values()):,} KPI values"
    )
    times = {name: timed(lambda fn=fn: fn(folder), args.repeat) for name, fn in APPROACHES.items() if name in results}
    base = times["fused_polars"]
    print(f"{'approach':<16}{'median s':>10}{'vs fused':>10}")
    for name, seconds in times.items():
        print(f"{name:<16}{seconds:>10.3f}{seconds / base:>10.2f}")
    record = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": args.rows,
        "repeat": args.repeat,
        "times_s": times,
        "ratios": {k: v / base for k, v in times.items()},
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "polars": pl.__version__,
            "duckdb": __import__("duckdb").__version__,
        },
    }
    if args.rss:
        record["peak_rss_mb"] = {name: peak_rss(name, folder) for name in times}
        for name, mb in record["peak_rss_mb"].items():
            print(f"peak RSS {name:<16}{mb:>8.0f} MB")
    if args.kpis:
        repeat = max(1, args.repeat // 2)
        own = [20, 200] + ([2000] if args.rows <= 1_000_000 else [])
        record["kpi_scaling"] = kpi_scaling(folder, [20, 200, 2000], repeat, shared=True) + kpi_scaling(
            folder, own, repeat, shared=False
        )
        for row in record["kpi_scaling"]:
            kind = "shared aggregates" if row["shared"] else "own filters"
            print(
                f"{row['kpis']:>5} KPIs ({kind}): plan {row['planning_s'] * 1000:7.1f} ms, run {row['run_s']:.3f} s, "
                f"{row['scans']} scan(s), {row['group_bys']} group_by(s), {row['aggregates']} aggregates"
            )
    with open(args.results, "a") as fh:
        fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
