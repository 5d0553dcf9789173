"""`kpi alerts`: conditions judged against an independent polars computation, and the notices over a sequence
of check times (one per change, one resolved notice, quiet hours, re-notification) delivered to a real HTTP
receiver."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
from click.testing import CliRunner
from receivers import http_receiver

from kpi_engine.cli import main

SPEC = """\
version: 1
timezone: UTC
data_root: {data}
sources:
  ads: {{connector: parquet, path: {data}/ad_events.parquet, time: ts}}
kpis:
  ctr:
    name: Click-through rate
    owner: growth-team
    unit: percent
    formula: 100 * sum(ads.clicks) / sum(ads.impressions)
    grain: week
    alerts: [{{below: {threshold}}}, {{change: "{change}", vs: previous}}, {{stale: 3}}]
channels:
  growth-hook: {{type: webhook, url: "${{env:TEST_ALERT_URL}}"}}
  everyone: {{type: webhook, url: "${{env:TEST_ALERT_URL}}/everyone"}}
delivery:
  channels: [everyone]
  owners: {{growth-team: [growth-hook]}}
alerts: {{quiet_hours: "22:00-07:00"{renotify}}}
"""


def weekly_ctr(example_dir: Path) -> pl.DataFrame:
    """CTR per Monday-starting week, computed here with polars (Int64: the file's Int32 sums overflow)."""
    ads = pl.read_parquet(example_dir / "data" / "ad_events.parquet")
    return (
        ads.group_by(pl.col("ts").dt.truncate("1w").dt.date().alias("week"))
        .agg((100 * pl.col("clicks").cast(pl.Int64).sum() / pl.col("impressions").cast(pl.Int64).sum()).alias("ctr"))
        .sort("week")
    )


def write(tmp: Path, example_dir: Path, threshold: float, change: str = "-99%", renotify: str = "") -> Path:
    spec = tmp / "spec"
    spec.mkdir(exist_ok=True)
    data = os.path.relpath(example_dir / "data", spec)
    (spec / "kpis.yaml").write_text(SPEC.format(data=data, threshold=threshold, change=change, renotify=renotify))
    return spec


def check(spec: Path, store: Path, now: str, url: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["alerts", str(spec), "--now", now, "--history", str(store)], env={"TEST_ALERT_URL": url})
    return res.exit_code, res.output


def test_threshold_notices_follow_the_data_once_per_change(tmp_path: Path, example_dir: Path):
    weeks = weekly_ctr(example_dir).filter(pl.col("week").is_between(dt.date(2026, 3, 2), dt.date(2026, 5, 25)))
    threshold = float(weeks["ctr"].median())
    spec = write(tmp_path, example_dir, round(threshold, 6))
    store = tmp_path / "h.sqlite"
    expected, firing = [], False
    with http_receiver() as web:
        for week, ctr in weeks.iter_rows():
            monday = week + dt.timedelta(days=7)  # the week is complete: checked the Monday after
            now = f"{monday}T09:00"
            fires = ctr < round(threshold, 6)
            if fires != firing:
                expected.append(("New" if fires else "Resolved", str(week)))
            firing = fires
            code, out = check(spec, store, now, web.url)
            assert code == 0, out
            again_code, again = check(spec, store, now.replace("09:00", "09:30"), web.url)  # nothing new
            assert again_code == 0 and "NEW" not in again and "RESOLVED" not in again
        got = []
        for r in web.requests:
            assert r.path == "/"  # the owner's channel, never the project's
            body = r.json()
            for a in body["alerts"]:
                assert a["condition"] == f"below {round(threshold, 6):g}"
                got.append(({"firing": "New", "resolved": "Resolved"}[a["notice"]], a["why"]))
    assert [g[0] for g in got] == [e[0] for e in expected] and len(expected) >= 2
    for (_, why), (_, week) in zip(got, expected, strict=True):
        label = f"{dt.date.fromisoformat(week).isocalendar()[0]}-W{dt.date.fromisoformat(week).isocalendar()[1]:02d}"
        assert label in why


def test_change_quiet_hours_and_renotify(tmp_path: Path, example_dir: Path):
    weeks = weekly_ctr(example_dir)
    row = weeks.filter(pl.col("week") == dt.date(2026, 5, 18)).row(0)
    before = weeks.filter(pl.col("week") == dt.date(2026, 5, 11)).row(0)
    move = 100 * (row[1] - before[1]) / before[1]
    spec = write(tmp_path, example_dir, -1, change=f"±{abs(move) * 0.9:.4f}%", renotify=", renotify_hours: 24")
    store = tmp_path / "h.sqlite"
    with http_receiver() as web:
        code, out = check(spec, store, "2026-05-25T23:00", web.url)  # quiet hours: found, not sent
        assert code == 0 and web.requests == [] and "quiet hours" in out
        code, out = check(spec, store, "2026-05-26T07:30", web.url)  # they end: sent once
        assert code == 0 and len(web.requests) == 1
        (alert,) = web.requests[0].json()["alerts"]
        assert alert["notice"] == "firing" and f"{move:+.1f}% against the previous period" in alert["why"]
        check(spec, store, "2026-05-26T12:00", web.url)
        assert len(web.requests) == 1  # under 24 hours: no reminder
        check(spec, store, "2026-05-27T08:00", web.url)
        assert [a["notice"] for a in web.requests[-1].json()["alerts"]] == ["reminder"]


def test_stale_source_and_a_failed_channel_is_retried(tmp_path: Path, example_dir: Path):
    last = pl.read_parquet(example_dir / "data" / "ad_events.parquet")["ts"].max().date()
    spec = write(tmp_path, example_dir, -1)
    store = tmp_path / "h.sqlite"
    with http_receiver() as web:
        fresh = (last + dt.timedelta(days=3)).isoformat()  # two finished days without data, the third running
        check(spec, store, f"{fresh}T09:00", web.url)
        assert web.requests == []
        stale = (last + dt.timedelta(days=4)).isoformat()  # three finished days without data
        web.statuses = [404]
        code, out = check(spec, store, f"{stale}T09:00", web.url)
        assert code == 1 and "FAILED alerts to growth-hook" in out
        code, out = check(spec, store, f"{stale}T10:00", web.url)
        assert code == 0 and len(web.requests) == 2
        (alert,) = web.requests[-1].json()["alerts"]
        assert alert["notice"] == "firing" and f"`ads` has no data after {last.day} " in alert["why"]
        check(spec, store, f"{stale}T11:00", web.url)
        assert len(web.requests) == 2  # sent once the channel took it


def test_status_transitions_over_a_sequence_of_runs():
    """on track -> at risk (new) -> off track (changed) -> off track (quiet) -> on track (resolved, once)."""
    from dataclasses import replace

    from kpi_engine.alerts import Check, notices
    from kpi_engine.model import AlertSettings, AlertSpec, Calendar, DeliverySpec, KpiSpec, Project

    kpi = KpiSpec("ctr", "CTR", "percent", "x", "week", owner="growth")
    project = Project(Calendar(), {}, {}, {"ctr": kpi}, (), Path("."), delivery=DeliverySpec(channels=("c",)))
    project = replace(project, alerts=AlertSettings())
    states: dict = {}
    seen = []
    for day, status in enumerate(["on_track", "at_risk", "off_track", "off_track", "on_track", "on_track"]):
        check = Check(kpi, AlertSpec("status"), status in ("at_risk", "off_track"), f"{status} why", status)
        (n,) = notices(project, [check], states, dt.datetime(2026, 6, 1 + day, 9, tzinfo=dt.UTC))
        seen.append(n.kind)
        states[n.next_state.key] = n.next_state
    assert seen == ["none", "firing", "changed", "none", "resolved", "none"]


def test_the_readme_dry_runs_on_the_demo(tmp_path: Path):
    """The README's `kpi send ... --dry-run` and `kpi alerts ... --dry-run` on the shipped demo: they compose
    messages and need no secret (the demo's channels read theirs from the environment only when sending)."""
    root = Path(__file__).parents[1] / "kpi_specs"
    store = str(tmp_path / "h.sqlite")
    send = CliRunner().invoke(main, ["send", str(root), "--as-of", "2026-11-30", "--dry-run", "--history", store])
    assert send.exit_code == 0, send.output
    assert "would send Monday growth sync, review of 30 Nov 2026 to growth-slack" in send.output
    again = CliRunner().invoke(main, ["send", str(root), "--as-of", "2026-11-30", "--dry-run", "--history", store])
    assert again.output.count("  subject: ") == send.output.count("  subject: ") >= 1  # each call prints its own
    alerts = CliRunner().invoke(main, ["alerts", str(root), "--now", "2026-06-29T09:00", "--dry-run", "--history", store])
    assert alerts.exit_code == 0, alerts.output
    assert "would send to growth-mail: KPI alerts: " in alerts.output and "(anomaly)" in alerts.output
    assert not Path(store).exists()  # a dry run records nothing
