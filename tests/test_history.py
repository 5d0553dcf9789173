"""The review history store: snapshots, target revisions, a killed run, concurrent writers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest


def kpi(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kpi_engine", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


@pytest.fixture()
def project(tmp_path, example_dir):
    import shutil

    shutil.copytree(example_dir / "data", tmp_path / "data")
    shutil.copy(example_dir / "kpis.yaml", tmp_path / "kpis.yaml")
    return tmp_path


def count_rows(store: Path) -> tuple[int, int, list[int]]:
    con = sqlite3.connect(store)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        snaps = con.execute("SELECT count(*) FROM snapshots").fetchone()[0]
        rows = con.execute("SELECT count(*) FROM kpi_snapshots").fetchone()[0]
        per = [
            r[0]
            for r in con.execute(
                "SELECT count(k.kpi) FROM snapshots s LEFT JOIN kpi_snapshots k ON k.snapshot_id = s.id GROUP BY s.id"
            )
        ]
        return snaps, rows, per
    finally:
        con.close()


def test_record_and_history_with_a_target_revision(project):
    assert kpi("run", str(project), "--as-of", "2026-05-12", "--record", "-o", str(project / "a.json")).returncode == 0
    spec = (project / "kpis.yaml").read_text()
    (project / "kpis.yaml").write_text(spec.replace("      value: 2.5\n", "      value: 2.8\n"))
    res = kpi("run", str(project), "--as-of", "2026-06-30", "--record", "-o", str(project / "b.json"))
    assert res.returncode == 0, res.stderr
    assert "recorded review snapshot 2 (11 KPIs)" in res.stderr
    store = project / ".kpi" / "history.sqlite"
    assert count_rows(store) == (2, 22, [11, 11])
    res = kpi("history", str(project), "ctr", "--format", "json")
    doc = json.loads(res.stdout)
    first, second = doc["snapshots"]
    assert (first["as_of"], second["as_of"]) == ("2026-05-12", "2026-06-30")
    assert first["changes"] == ["first recorded review"]
    assert "target revised 2.5 -> 2.8 (between 2026-05-12 and 2026-06-30)" in second["changes"]
    assert first["spec_hash"] != second["spec_hash"]
    b = json.loads((project / "b.json").read_text())
    assert second["value"] == b["kpis"][0]["status"]["value"] and second["status"] == b["kpis"][0]["status"]["status"]
    table = kpi("history", str(project), "ctr").stdout
    assert "#2 as of 2026-06-30" in table and "target revised 2.5 -> 2.8" in table


def test_a_killed_record_leaves_the_store_intact(project):
    store = project / ".kpi" / "history.sqlite"
    assert kpi("run", str(project), "--as-of", "2026-05-12", "--record", "-o", str(project / "a.json")).returncode == 0
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kpi_engine",
            "run",
            str(project),
            "--as-of",
            "2026-06-30",
            "--record",
            "-o",
            str(project / "b.json"),
        ],
        env={**os.environ, "KPI_ENGINE_FAILPOINT": "history.record:0.5"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    while not (project / "b.json").exists() and time.time() < deadline:  # the output is written before recording
        time.sleep(0.05)
    time.sleep(1.2)  # two or three KPI rows into the transaction
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert count_rows(store) == (1, 11, [11])  # the half-written snapshot is gone, the committed one intact
    res = kpi("run", str(project), "--as-of", "2026-06-30", "--record", "-o", str(project / "c.json"))
    assert res.returncode == 0 and count_rows(store)[:2] == (2, 22)


def test_concurrent_writers_do_not_corrupt_the_store(project):
    store = project / "shared.sqlite"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kpi_engine",
                "run",
                str(project),
                "--as-of",
                day,
                "--record",
                "--history",
                str(store),
                "--kpi",
                "ctr",
                "--kpi",
                "leads",
                "-o",
                str(project / f"{day}.json"),
            ],
            env={**os.environ, "KPI_ENGINE_FAILPOINT": "history.record:0.2"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for day in ("2026-05-01", "2026-05-08", "2026-05-15", "2026-05-22")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert count_rows(store) == (4, 8, [2, 2, 2, 2])


def test_history_errors(project):
    res = kpi("history", str(project), "ctr")
    assert res.returncode == 2 and "no history store at" in res.stderr and "kpi run --record" in res.stderr
    (project / "bad.sqlite").write_text("this is not a database")
    res = kpi(
        "run",
        str(project),
        "--as-of",
        "2026-06-30",
        "--record",
        "--history",
        str(project / "bad.sqlite"),
        "-o",
        str(project / "x.json"),
    )
    assert res.returncode == 2 and "is unusable" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("command", [["run", "--format", "json"], ["report"]])
def test_killing_a_run_midway_keeps_the_previous_output(project, command):
    out = project / "out" / ("r.json" if command[0] == "run" else "r.html")
    out.parent.mkdir()
    out.write_text("previous output")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kpi_engine",
            command[0],
            str(project),
            "--as-of",
            "2026-06-30",
            *command[1:],
            "-o",
            str(out),
        ],
        env={**os.environ, "KPI_ENGINE_FAILPOINT": "output.replace:30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while not list(out.parent.glob(".r.*.tmp")) and time.time() < deadline:  # the new file is written, not renamed
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert out.read_text() == "previous output"
    stale = list(out.parent.glob(f".{out.name}.*.tmp"))
    assert len(stale) == 1  # SIGKILL gives no chance to clean up: the next write sweeps it (issue 11, item 24)
    res = kpi(command[0], str(project), "--as-of", "2026-06-30", *command[1:], "-o", str(out))
    assert res.returncode == 0 and out.read_text() != "previous output"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_a_live_writers_temporary_file_is_kept(tmp_path):
    from kpi_engine.output import sweep_temporaries

    out = tmp_path / "r.json"
    live = tmp_path / f".r.json.{os.getppid()}.abc.tmp"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".r.json.{int(dead.stdout)}.xyz.tmp"
    other = tmp_path / f".r.jsonl.{int(dead.stdout)}.xyz.tmp"
    for p in (live, stale, other):
        p.write_text("partial")
    assert sweep_temporaries(out) == [stale]
    assert live.exists() and other.exists()


def _small_file_limit() -> None:
    """In the child: any write past 4 KB fails with EFBIG, as a full disk fails with ENOSPC (Python ignores
    SIGXFSZ, so the write raises instead of killing the process)."""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


@pytest.mark.parametrize(
    "command, name",
    [
        (["run", "--format", "json"], "r.json"),
        (["run", "--format", "csv"], "r.csv"),
        (["run", "--format", "parquet"], "r.parquet"),
        (["report"], "r.html"),
        (["report", "--format", "md"], "r.md"),
    ],
)
def test_a_full_disk_gives_a_clear_error_and_keeps_the_previous_output(project, command, name):
    out = project / "out" / name
    out.parent.mkdir()
    out.write_text("previous output")
    res = subprocess.run(
        [sys.executable, "-m", "kpi_engine", command[0], str(project), "--as-of", "2026-06-30", *command[1:]]
        + ["-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_small_file_limit,
    )
    assert res.returncode == 2, res.stderr
    # Markdown writes its chart files first, so the first file refused may be one of them
    assert f"cannot write {out.with_suffix('')}" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert "disk is full" in res.stderr and "unchanged" in res.stderr, res.stderr
    assert out.read_text() == "previous output"
    assert not list(out.parent.rglob("*.tmp"))  # no temp file left behind


def test_snapshot_rows_are_typed(tmp_path):
    """Issue 12, item 6: a misspelt field fails at once instead of storing NULL."""
    import datetime as dt

    from kpi_engine.history import SnapshotRow, record, snapshots

    with pytest.raises(TypeError):
        SnapshotRow(vaule=1.0)  # type: ignore[call-arg]
    store = tmp_path / "h.sqlite"
    record(store, dt.date(2026, 6, 30), "abc", "0", {"k": SnapshotRow(period="2026-06", value=2.5, status="on_track")})
    (snap,) = snapshots(store, "k")
    assert (snap.period, snap.value, snap.status) == ("2026-06", 2.5, "on_track")
