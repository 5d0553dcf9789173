"""Incremental evaluation (``kpi watch``, ``kpi alerts``): the shipped catalogue over demo data in Parquet files,
re-run with a cache after appends, late rows, edits, deletions and spec changes, must equal a run without one,
value for value, while reading only the files it needs."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import randomcat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from kpi_engine import load
from kpi_engine.increment import Cache
from kpi_engine.model import Calendar, Grain
from kpi_engine.periods import Span
from kpi_engine.reaches import ALL, cutoff
from kpi_engine.targets import span_requests

ROOT = Path(__file__).parent.parent
START = dt.date(2025, 5, 1)
DAYS = 307  # to 2026-03-03: the new day of the test is 1 March, when January's one-month retention is known,
# and the cohorts looking six months ahead need orders from September on, not from the first (May)
LAST = START + dt.timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def tables() -> dict[str, pl.DataFrame]:
    from kpi_demo.generate import generate

    return generate(7, 0.1, START, DAYS)


def time_of(frame: pl.DataFrame) -> str:
    return next(c for c, t in frame.schema.items() if t == pl.Datetime("us"))


def write(folder: Path, tables: dict[str, pl.DataFrame], upto: dt.date) -> None:
    """Monthly files, and the last week's days a file each (as daily exports land)."""
    daily = upto - dt.timedelta(days=6)
    for name, frame in tables.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        day = pl.col(time_of(frame)).dt.date()
        frame = frame.filter(day <= upto)
        for (month,), part in frame.filter(day < daily).group_by(day.dt.strftime("%Y-%m")):
            part.write_parquet(folder / name / f"{month}.parquet")
        for (d,), part in frame.filter(day >= daily).group_by(day):
            part.write_parquet(folder / name / f"{d}.parquet")


def add_day(folder: Path, tables: dict[str, pl.DataFrame], day: dt.date) -> None:
    for name, frame in tables.items():
        part = frame.filter(pl.col(time_of(frame)).dt.date() == day)
        part.write_parquet(folder / name / f"{day}.parquet")


@pytest.fixture
def project(tmp_path: Path, tables) -> Path:
    specs = tmp_path / "specs"
    shutil.copytree(ROOT / "kpi_specs", specs, ignore=shutil.ignore_patterns("tests"))
    write(specs / "data", tables, LAST - dt.timedelta(days=3))
    text = (specs / "sources.yaml").read_text()
    text = re.sub(r"connector: demo, table: (\w+)", r"connector: parquet, path: data/\1", text)
    (specs / "sources.yaml").write_text(text)
    (specs / "windows.yaml").write_text(EXTRA)
    return specs


EXTRA = """
version: 1
kpis:
  response_p50_28d:
    name: Median first response, 28 days
    description: The median first response over the 28 days to each day (a window that cannot roll up from days).
    formula: quantile(minutes(tickets.first_response_at - tickets.created_at), 0.5)
    unit: minutes
    grain: day
    window: 28d
    owner: Ana Ruiz
  returning_visitors:
    name: Returning signed-in visitors
    description: Signed-in customers who visited in the month before too.
    formula: count(sessions.customer where active(-1))
    unit: count
    grain: month
    owner: Ana Ruiz
  cost_a_week_earlier:
    name: Ad cost a week earlier
    description: Each month's ad cost over its days moved back a week.
    formula: previous(sum(ads.cost), 7 days)
    unit: count
    grain: month
    owner: Ana Ruiz
"""


class Reads:
    """Counts the Parquet files each scan reads, by calling the connector the registry really uses."""

    def __init__(self, catalog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        self.files: Counter[tuple[str, str]] = Counter()  # (source, file name) -> reads
        self.whole = 0
        connector = catalog.registry.connectors["parquet"]
        real = type(connector).scan

        def scan(this, source, request, env):  # type: ignore[no-untyped-def]
            if request.files is None:
                self.whole += 1
            for f in request.files or ():
                self.files[source.name, Path(f).name] += 1
            return real(this, source, request, env)

        monkeypatch.setattr(type(connector), "scan", scan)

    def reset(self) -> None:
        self.files.clear()
        self.whole = 0


def check(catalog, as_of: dt.date, cache: Cache):  # type: ignore[no-untyped-def]
    """The cached run's series, spans, cohorts and freshness equal a fresh run's, exactly."""
    spans = span_requests(catalog.project, as_of)
    inc = catalog.evaluate(as_of, spans=spans, cache=cache)
    full = catalog.evaluate(as_of, spans=spans)
    assert inc.series.keys() == full.series.keys() and len(full.series) == 43
    for key in full.series:
        assert inc.series[key].equals(full.series[key]), key
    assert inc.spans.keys() == full.spans.keys()
    for key in full.spans:
        assert_frame_equal(inc.spans[key], full.spans[key], check_exact=True)
    for kpi, columns in full.cohorts.items():
        for k, frame in columns.items():
            assert_frame_equal(inc.cohorts[kpi][k], frame, check_exact=True)
    assert inc.freshness == full.freshness
    return inc


def test_appends_late_rows_edits_deletions_and_as_of_moves_give_a_full_runs_numbers(project, tables, monkeypatch):
    catalog = load(project)
    cache = Cache(project.parent / "cache")
    reads = Reads(catalog, monkeypatch)
    data = project / "data"
    day = LAST - dt.timedelta(days=3)
    check(catalog, day, cache)
    assert all(s.stored is None for s in cache.states.values())

    # the same data again: no file is read, every period comes from the cache
    reads.reset()
    check(catalog, day, cache)
    assert cache.line() == "cache: 9 of 9 sources unchanged"
    assert not reads.files  # (the fresh run reads each source whole)

    # one new day lands: its files are read, and only the files the recomputed periods need besides
    day += dt.timedelta(days=1)
    add_day(data, tables, day)
    reads.reset()
    check(catalog, day, cache)
    assert all(reads.files[s.name, f"{day}.parquet"] == 1 for s in catalog.project.sources.values())
    # ads has no KPI over entities or conversions, and its weeks and months roll up from days: it reads the
    # new day's file, and the week before it for March's cost a week earlier (not the older monthly files)...
    assert {f for s, f in reads.files if s == "ads"} == {f"{day - dt.timedelta(days=n)}.parquet" for n in range(8)}
    # ...the orders' cohorts look six months ahead (active(6)) and their retention one back (active(-1)): from
    # August on; `new` reads each customer's first order kept from the last run, not the orders before
    assert ("orders", "2025-08.parquet") in reads.files and ("orders", "2025-07.parquet") not in reads.files
    # sessions' conversions within 7 days reach back into February, and active(-1) a month before that:
    # January on, not December
    assert ("sessions", "2026-01.parquet") in reads.files and ("sessions", "2025-12.parquet") not in reads.files
    # and a 28-day window recomputed from 1 March reads from 2 February: February's file, not January's
    assert ("tickets", "2026-02.parquet") in reads.files and ("tickets", "2026-01.parquet") not in reads.files
    assert cache.states["orders"].changed == day
    assert "from" in cache.line()

    # a late row for a day long closed: the periods from it on are recomputed
    late = tables["ad_events"].filter(pl.col("ts").dt.date() == dt.date(2025, 11, 12)).head(1)
    late.with_columns(pl.col("clicks") + 1000).write_parquet(data / "ad_events" / "late.parquet")
    # and late orders: a new customer in November, and a January customer's earlier first order in December
    orders = tables["orders"]
    first = orders.group_by("customer_id").agg(pl.col("ordered_at").min())
    january = first.filter(pl.col("ordered_at").dt.month() == 1).sort("customer_id")["customer_id"][0]
    row = orders.filter(pl.col("ordered_at").dt.date() == dt.date(2025, 11, 12)).head(1)
    pl.concat(
        [
            row.with_columns(pl.lit(10**9, pl.Int64).alias("customer_id")),
            row.with_columns(
                pl.lit(january, pl.Int64).alias("customer_id"), pl.col("ordered_at") + pl.duration(days=33)
            ),
        ]
    ).write_parquet(data / "orders" / "late.parquet")
    inc = check(catalog, day, cache)
    assert cache.states["ads"].changed == dt.date(2025, 11, 12)
    assert cache.states["orders"].changed == dt.date(2025, 11, 12)
    november = inc.series["new_customers"].filter((pl.col("period") == "2025-11") & pl.col("is_total"))
    assert november["value"].item() > 0

    # an edit in place (one value of an old file) and a deleted file
    path = data / "crm_leads" / "2025-12.parquet"
    frame = pl.read_parquet(path)
    frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(False).otherwise("qualified").alias("qualified")
    ).write_parquet(path)
    os.remove(data / "social_mentions" / "2025-11.parquet")
    check(catalog, day, cache)
    assert cache.states["mentions"].changed == dt.date(2025, 11, 1)

    # as-of moves back, then forward over days that were already there
    check(catalog, day - dt.timedelta(days=9), cache)
    check(catalog, day, cache)


def test_kpis_added_to_the_spec_reuse_what_they_can(project, tables):
    cache = Cache(project.parent / "cache")
    day = LAST - dt.timedelta(days=3)
    check(load(project), day, cache)
    path = project / "realtime.yaml"
    text = path.read_text()
    text += """
  clicks_by_quarter:
    name: Clicks by quarter
    description: Ad clicks per channel and quarter.
    formula: sum(ads.clicks)
    unit: count
    grain: quarter
    dimensions: [channel]
    owner: Ana Ruiz
"""
    path.write_text(text)
    catalog = load(project)
    spans = span_requests(catalog.project, day)
    inc = catalog.evaluate(day, spans=spans, cache=cache)
    full = catalog.evaluate(day, spans=spans)
    for key in full.series:
        assert inc.series[key].equals(full.series[key]), key
    ads = cache.states["ads"]
    assert "clicks_by_quarter" in inc.series
    assert set(ads.cutoffs.values()) == {None}, ads.cutoffs  # its quarters roll up from the stored days by channel

    # a KPI reading a column no KPI read before: the source's rows are fingerprinted anew, so all recomputed
    path.write_text(
        text.replace("grain: quarter\n    dimensions: [channel]", "grain: quarter\n    dimensions: [campaign]")
    )
    catalog = load(project)
    inc = catalog.evaluate(day, spans=spans, cache=cache)
    assert set(cache.states["ads"].cutoffs.values()) == {ALL}
    assert set(cache.states["crm"].cutoffs.values()) == {None}


def test_cutoffs_follow_what_each_period_reads():
    cal = Calendar("UTC", 0, 1)
    day = dt.date(2026, 7, 15)
    assert cutoff(Grain.MONTH, None, (0, 0), cal) is None
    assert cutoff(Grain.MONTH, day, (0, 0), cal) == dt.date(2026, 7, 1)
    assert cutoff(Grain.MONTH, day, (6, 0), cal) == dt.date(2026, 1, 1)  # active(6): six months back
    assert cutoff(Grain.WEEK, day, (0, 7), cal) == dt.date(2026, 7, 6)  # conversions within 7 days
    assert cutoff(Grain.DAY, day, (0, 0), cal) == day
    assert cutoff(Grain.MONTH, day, None, cal) == ALL  # no bound ahead: every period
    assert cutoff(Span(dt.date(2026, 4, 1), dt.date(2026, 6, 30)), day, (0, 0), cal) is None
    assert cutoff(Span(dt.date(2026, 4, 1), dt.date(2026, 7, 31)), day, (0, 0), cal) == dt.date(2026, 4, 1)


def test_kpi_alerts_reuses_the_cache_across_processes(project):
    """(The shipped catalogue's alerts, dry-run: nothing is sent.)"""
    command = [sys.executable, "-m", "kpi_engine", "alerts", str(project), "--now", "2026-02-25T09:00", "--dry-run"]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "cache: 0 of 9 sources unchanged; every period:" in first.stderr
    second = subprocess.run(command, capture_output=True, text=True)
    assert "cache: 9 of 9 sources unchanged" in second.stderr, second.stderr
    assert (project / ".kpi" / "cache").is_dir()
    off = subprocess.run([*command, "--no-cache"], capture_output=True, text=True)
    assert "cache:" not in off.stderr
    assert first.stdout == second.stdout == off.stdout


def test_a_folder_stored_meanwhile_by_another_check_is_kept_and_a_broken_one_ignored(project, monkeypatch):
    """Two checks on one cache: the one finishing second finds the folder written and keeps it (no crash); a
    folder it cannot read (cut short, another format) counts as no cache: the run computes in full."""
    import kpi_engine.increment as increment

    catalog = load(project)
    day = LAST - dt.timedelta(days=3)
    cache = Cache(project / ".kpi" / "cache")
    real = os.replace

    def racing(src, dst):  # type: ignore[no-untyped-def]
        Path(dst).mkdir(parents=True, exist_ok=True)
        (Path(dst) / "meta.json").write_text('{"format": 0}')  # what the other check wrote
        real(src, dst)

    monkeypatch.setattr(increment.os, "replace", racing)
    check(catalog, day, cache)
    monkeypatch.undo()
    folders = list(cache.root.glob("*@*"))
    assert len(folders) == 9 and all((f / "meta.json").read_text() == '{"format": 0}' for f in folders)
    assert not list(cache.root.glob(".*"))  # no temporary folder left behind
    check(catalog, day, cache)
    assert all(s.stored is None for s in cache.states.values())  # unreadable: computed in full, stored again
    check(catalog, day, cache)
    assert cache.line() == "cache: 9 of 9 sources unchanged"


def test_a_cache_folder_that_cannot_be_written_costs_reuse_not_the_run(project):
    blocked = project / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    cache = Cache(blocked / "cache")
    check(load(project), LAST - dt.timedelta(days=3), cache)  # the numbers still equal a full run
    assert "not stored (" in cache.line() and "not-a-folder" in cache.line()


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    randomcat.rows,
    randomcat.kpis,
    randomcat.calendars,
    st.lists(st.tuples(st.integers(0, 12), randomcat.rows, st.booleans()), min_size=1, max_size=3),
)
def test_random_catalogues_and_appends_give_a_full_runs_numbers(tmp_path_factory, data, chosen, calendar, steps):
    """Random rows in monthly files and a random catalogue (randomcat, as the differential tests): after each
    step (rows landing up to some days later, or late rows for closed periods, or a file deleted) the cached
    run equals a run without the cache, frame for frame."""
    root = tmp_path_factory.mktemp("random_increment")
    times = calendar[3]
    day = max(t for t, *_ in data).date()
    frame = randomcat.frame_of(data, times)
    months = frame.with_columns(month=pl.col("at").dt.strftime("%Y-%m"))
    (root / "data").mkdir()
    for (month,), part in months.group_by("month"):
        part.drop("month").write_parquet(root / "data" / f"{month}.parquet")
    head, body = randomcat.catalogue(calendar, chosen)
    spec = f"version: 1\n{head}sources:\n  e: {{connector: parquet, path: 'data/*.parquet', time: at, entities: {{visitor: v}}}}\n{body}"
    (root / "kpis.yaml").write_text(spec)
    cache = Cache(root / "cache")

    def same_as_full(as_of: dt.date) -> None:
        catalog = load(root)
        inc, full = catalog.evaluate(as_of, cache=cache), catalog.evaluate(as_of)
        assert inc.series.keys() == full.series.keys()
        for key, expected in full.series.items():
            assert inc.series[key].equals(expected), (key, as_of)

    same_as_full(day)
    for n, (days, more, delete) in enumerate(steps):
        day += dt.timedelta(days=days)  # (the new rows keep their own dates: late ones land in closed periods)
        randomcat.frame_of(more, times).write_parquet(root / "data" / f"new{n}.parquet")
        if delete:
            sorted((root / "data").glob("20*.parquet"))[0].unlink(missing_ok=True)
        same_as_full(day)


def test_a_late_row_earlier_on_an_entitys_first_day_moves_where_it_was_acquired(tmp_path):
    """An entity's first row decides the period and channel it is new in. A late row on the day of its
    stored first row, but earlier that day and from another channel, must move it there: the stored first
    rows are kept only before the changed day, never on it."""
    at = lambda day, hour: dt.datetime(2026, 3, day, hour)  # noqa: E731
    rows = lambda *r: pl.DataFrame(r, schema=["at", "v", "channel"], orient="row")  # noqa: E731
    (tmp_path / "data").mkdir()
    rows((at(1, 10), "y", "a"), (at(2, 15), "x", "b"), (at(3, 12), "z", "b")).write_parquet(
        tmp_path / "data" / "1.parquet"
    )
    source = "{connector: parquet, path: 'data/*.parquet', time: at, entities: {visitor: v}}"
    kpis = "kpis:\n  new: {unit: count, grain: day, dimensions: [channel], formula: count(visitor where new)}\n"
    (tmp_path / "kpis.yaml").write_text(f"version: 1\nsources:\n  e: {source}\n{kpis}")
    cache, as_of = Cache(tmp_path / "cache"), dt.date(2026, 3, 3)
    load(tmp_path).evaluate(as_of, cache=cache)
    rows(
        (at(2, 9), "x", "a"),
    ).write_parquet(tmp_path / "data" / "2.parquet")  # x came through `a` first
    catalog = load(tmp_path)
    inc, full = catalog.evaluate(as_of, cache=cache), catalog.evaluate(as_of)
    day2 = {
        r["channel"]: r["value"] for r in full["new"].iter_rows(named=True) if r["start"].day == 2 and not r["is_total"]
    }
    assert day2 == {"a": 1, "b": 0}
    assert inc["new"].equals(full["new"])
