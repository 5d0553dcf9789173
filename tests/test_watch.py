"""`kpi watch`: checks on a timer, and at once when a data file changes, against a real HTTP receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from receivers import http_receiver

SPEC = """
version: 1
sources:
  visits: {connector: csv, path: data/visits.csv, time: ts}
channels:
  hook: {type: webhook, url: "${env:TEST_WATCH_URL}"}
delivery:
  channels: [hook]
kpis:
  visits: {unit: count, formula: count(visits), grain: day, alerts: [{above: 5}]}
"""
NOW = ["--now", "2026-06-03T09:00"]  # judges 2 June, the last finished day


def write_data(tmp_path: Path, visits_on_june_2: int) -> None:
    (tmp_path / "data").mkdir(exist_ok=True)
    rows = [f"2026-06-01T10:{m:02d}:00" for m in range(3)] + [
        f"2026-06-02T10:{m:02d}:00" for m in range(visits_on_june_2)
    ]
    (tmp_path / "data" / "visits.csv").write_text("ts\n" + "\n".join(rows) + "\n")


def project(tmp_path: Path, visits_on_june_2: int) -> Path:
    write_data(tmp_path, visits_on_june_2)
    (tmp_path / "kpis.yaml").write_text(SPEC)
    return tmp_path


def wait_for(path: Path, text: str, count: int = 1, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = path.read_text() if path.exists() else ""
        if seen.count(text) >= count:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"`{text}` x{count} not seen in {timeout}s:\n{path.read_text() if path.exists() else ''}")


def test_a_data_change_triggers_a_check_at_once(tmp_path: Path):
    spec = project(tmp_path, 2)
    log = tmp_path / "watch.log"
    with http_receiver() as web, log.open("w") as out:
        env = {**os.environ, "TEST_WATCH_URL": web.url}
        cmd = [
            sys.executable,
            "-m",
            "kpi_engine",
            "watch",
            str(spec),
            "--every",
            "1h",
            *NOW,
            "--history",
            str(tmp_path / "h.sqlite"),
        ]
        watch = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(log, "conditions checked")
            assert web.requests == []  # 2 visits on 2 June: not above 5
            write_data(tmp_path, 9)  # the export is refreshed: 9 visits on 2 June
            text = wait_for(log, "conditions checked", 2, timeout=30)  # long before the hourly check
            assert "changed: visits.csv\n" in text and "NEW visits (above 5): 9 in 2026-06-02 is above 5" in text
            deadline = time.monotonic() + 10
            while not web.requests and time.monotonic() < deadline:
                time.sleep(0.1)
            (request,) = web.requests
            assert request.json()["alerts"][0]["notice"] == "firing"
            (spec / "kpis.yaml").write_text(SPEC.replace("grain: day", "grain: dya"))  # a typo: reported, not fatal
            text = wait_for(log, "invalid value `dya`", timeout=30)
            assert watch.poll() is None
        finally:
            watch.terminate()
            watch.wait(timeout=30)


def test_a_timer_of_two_runs(tmp_path: Path):
    spec = project(tmp_path, 9)
    with http_receiver() as web:
        env = {**os.environ, "TEST_WATCH_URL": web.url}
        run = subprocess.run(
            [sys.executable, "-m", "kpi_engine", "watch", str(spec), "--every", "1s", "--no-on-change", "--runs", "2", *NOW,
             "--history", str(tmp_path / "h.sqlite")],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert run.stderr.count("conditions checked") == 2 and len(web.requests) == 1  # notified once, not twice


def test_a_change_while_a_check_runs_is_not_missed(tmp_path: Path, monkeypatch):
    """The files are watched from before the first check: an export refreshed while a check reads the old one
    triggers the next check at once, not an `--every` later. What the checks write themselves (the history
    store and its cache, here inside the spec folder) never triggers one."""
    from click.testing import CliRunner

    from kpi_engine.cli import alerts_cmd, main

    spec = project(tmp_path, 2)
    real, calls = alerts_cmd.check_once, []

    def check_and_meanwhile_a_refresh(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(time.monotonic())
        failed = real(*args, **kwargs)
        if len(calls) == 1:
            write_data(tmp_path, 9)  # lands after the check read the file, before it ends
        return failed

    monkeypatch.setattr(alerts_cmd, "check_once", check_and_meanwhile_a_refresh)
    with http_receiver() as web:
        monkeypatch.setenv("TEST_WATCH_URL", web.url)
        history = ["--history", str(spec / "h.sqlite")]
        result = CliRunner().invoke(main, ["watch", str(spec), "--every", "20s", "--runs", "3", *NOW, *history])
    assert result.exit_code == 0, result.output
    assert len(calls) == 3
    assert calls[1] - calls[0] < 10, "the change during the first check waited for the timer"
    assert calls[2] - calls[1] > 15, "the checks' own writes (history, cache) triggered a check"
    assert "changed: visits.csv" in result.output and "9 in 2026-06-02 is above 5" in result.output


def test_only_specs_and_the_sources_data_call_for_a_check(tmp_path: Path):
    """A log beside the specs, the history store or its cache (even inside a data folder) never triggers a
    check: each check writes them, and would trigger the next one, for ever."""
    from watchfiles import Change

    from kpi_engine.cli.alerts_cmd import _Inputs

    store = tmp_path / "exports" / "h.sqlite"
    inputs = _Inputs((str(store), str(store.parent / "cache")))
    inputs.data = [tmp_path / "exports", tmp_path / "crm" / "*.csv", tmp_path / "ads.parquet"]
    called = {
        "kpis.yaml": True,
        "specs/more.yml": True,
        "exports/visits.csv": True,
        "crm/leads.csv": True,
        "ads.parquet": True,
        "crm/notes.txt": False,
        "watch.log": False,
        "exports/h.sqlite": False,
        "exports/h.sqlite-journal": False,
        "exports/cache/visits/0.parquet": False,
        ".kpi/history.sqlite": False,
        ".git/index": False,
    }
    for name, expected in called.items():
        assert inputs(Change.modified, str(tmp_path / name)) is expected, name
