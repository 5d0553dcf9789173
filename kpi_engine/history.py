"""The review history: an embedded SQLite store of snapshots (as-of, spec hash, each KPI's value, target,
status and forecast), written in one transaction so that a killed run never leaves half a snapshot."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import Diagnostic, KpiError, Location
from .output import _failpoint

DEFAULT_NAME = Path(".kpi") / "history.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    as_of TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    engine_version TEXT NOT NULL,
    kpi_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kpi_snapshots (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id),
    kpi TEXT NOT NULL,
    period TEXT,
    value REAL,
    target REAL,
    expected REAL,
    status TEXT,
    why TEXT,
    forecast REAL,
    target_spec TEXT,
    PRIMARY KEY (snapshot_id, kpi)
);
CREATE INDEX IF NOT EXISTS kpi_snapshots_by_kpi ON kpi_snapshots (kpi, snapshot_id);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    channel TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    as_of TEXT NOT NULL,
    subject TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_key ON deliveries (kind, key, channel);
CREATE TABLE IF NOT EXISTS alert_state (
    key TEXT PRIMARY KEY,
    firing INTEGER NOT NULL,
    state TEXT,
    since TEXT,
    notified_at TEXT,
    notified_state TEXT,
    why TEXT
);
"""


def default_path(spec_path: Path) -> Path:
    """Where the history lives by default: ``.kpi/history.sqlite`` in the spec folder."""
    folder = spec_path if spec_path.is_dir() else spec_path.parent
    return folder / DEFAULT_NAME


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection in WAL mode that waits for concurrent writers instead of failing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=60, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise KpiError(Diagnostic(f"cannot open the history store {path}: {exc}", Location(str(path)))) from None
    try:
        _prepare(con)
        yield con
    except sqlite3.DatabaseError as exc:
        raise KpiError(
            Diagnostic(
                f"history store {path} is unusable: {exc}",
                Location(str(path)),
                hint="move the file aside; a new one is created on the next --record",
            )
        ) from None
    finally:
        con.close()


def _prepare(con: sqlite3.Connection, wait: float = 60.0) -> None:
    """WAL mode and the tables. Switching a new file to WAL takes a lock that SQLite does not wait for
    (the busy timeout does not apply), so two first --record runs at once could fail with "database is
    locked": retry with a little jitter until ``wait`` seconds have passed."""
    deadline = time.monotonic() + wait
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.executescript(SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02 + random.random() * 0.08)


@dataclass(frozen=True)
class Snapshot:
    id: int
    recorded_at: str
    as_of: str
    spec_hash: str
    kpi: str
    period: str | None
    value: float | None
    target: float | None
    expected: float | None
    status: str | None
    why: str | None
    forecast: float | None
    target_spec: dict[str, Any] | None


@dataclass(frozen=True)
class SnapshotRow:
    """What a review snapshot keeps of one KPI (typed, so that a misspelt field fails instead of storing NULL)."""

    period: str | None = None
    value: float | None = None
    target: float | None = None
    expected: float | None = None
    status: str | None = None
    why: str | None = None
    forecast: float | None = None
    target_spec: Mapping[str, Any] | None = None


def record(path: Path, as_of: dt.date, spec_hash: str, engine_version: str, rows: Mapping[str, SnapshotRow]) -> int:
    """Append one snapshot (every KPI's row) in a single transaction; returns its id."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with connect(path) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            cur = con.execute(
                "INSERT INTO snapshots (recorded_at, as_of, spec_hash, engine_version, kpi_count) "
                "VALUES (?, ?, ?, ?, ?)",
                (now, as_of.isoformat(), spec_hash, engine_version, len(rows)),
            )
            snapshot_id = int(cur.lastrowid or 0)
            for kpi_id, row in rows.items():
                _failpoint("history.record")
                con.execute(
                    "INSERT INTO kpi_snapshots (snapshot_id, kpi, period, value, target, expected, status, why, "
                    "forecast, target_spec) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        snapshot_id,
                        kpi_id,
                        row.period,
                        row.value,
                        row.target,
                        row.expected,
                        row.status,
                        row.why,
                        row.forecast,
                        json.dumps(row.target_spec, sort_keys=True) if row.target_spec else None,
                    ),
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return snapshot_id


def snapshots(path: Path, kpi_id: str) -> list[Snapshot]:
    """A KPI's snapshots, oldest first."""
    if not path.exists():
        return []
    with connect(path) as con:
        rows = con.execute(
            "SELECT s.id, s.recorded_at, s.as_of, s.spec_hash, k.kpi, k.period, k.value, k.target, k.expected, "
            "k.status, k.why, k.forecast, k.target_spec FROM kpi_snapshots k JOIN snapshots s ON s.id = k.snapshot_id "
            "WHERE k.kpi = ? ORDER BY s.id",
            (kpi_id,),
        ).fetchall()
    return [Snapshot(*r[:-1], json.loads(r[-1]) if r[-1] else None) for r in rows]


#: Values recorded at two reviews are the same when within this relative tolerance (or 1e-12 absolute): a
#: sum added in another order differs in its last bits, which is not a change.
REL_TOL = 1e-9


def same_value(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def _digits(a: float, b: float) -> str:
    """``a -> b`` with the significant digits it takes for the two to read differently."""
    for digits in range(6, 18):
        left, right = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if left != right:
            return f"{left} -> {right}"
    return f"{a!r} -> {b!r}"


def changes(previous: Snapshot | None, current: Snapshot) -> list[str]:
    """What changed since the previous snapshot: value, status, and target revisions."""
    if previous is None:
        return ["first recorded review"]
    out = []
    if previous.value is not None and current.value is not None and not same_value(previous.value, current.value):
        out.append(f"value {_digits(previous.value, current.value)}")
    if previous.status != current.status:
        out.append(f"status {previous.status or '-'} -> {current.status or '-'}")
    if previous.target != current.target:
        out.append(
            f"target revised {previous.target if previous.target is not None else '-'} -> "
            f"{current.target if current.target is not None else '-'} (between {previous.as_of} and {current.as_of})"
        )
    elif previous.target_spec != current.target_spec:
        out.append("target definition changed")
    return out


def delivered(path: Path, kind: str, key: str, channel: str) -> str | None:
    """When a message (``kind`` review or alert, ``key`` what it is about) last went to ``channel``, or None."""
    if not path.exists():
        return None
    with connect(path) as con:
        row = con.execute(
            "SELECT MAX(sent_at) FROM deliveries WHERE kind = ? AND key = ? AND channel = ?", (kind, key, channel)
        ).fetchone()
    return row[0] if row else None


def record_delivery(path: Path, kind: str, key: str, channel: str, as_of: dt.date, subject: str) -> None:
    """Note that a message went to a channel, so that the next run does not send it again."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with connect(path) as con:
        con.execute(
            "INSERT INTO deliveries (kind, key, channel, sent_at, as_of, subject) VALUES (?, ?, ?, ?, ?, ?)",
            (kind, key, channel, now, as_of.isoformat(), subject),
        )


@dataclass(frozen=True)
class AlertState:
    """Where an alert condition stood after the last run: firing since when, and what was last notified."""

    key: str
    firing: bool
    state: str | None = None
    since: str | None = None
    notified_at: str | None = None
    notified_state: str | None = None
    why: str | None = None


def alert_states(path: Path) -> dict[str, AlertState]:
    if not path.exists():
        return {}
    with connect(path) as con:
        rows = con.execute(
            "SELECT key, firing, state, since, notified_at, notified_state, why FROM alert_state"
        ).fetchall()
    return {r[0]: AlertState(r[0], bool(r[1]), *r[2:]) for r in rows}


def save_alert_state(path: Path, state: AlertState) -> None:
    with connect(path) as con:
        con.execute(
            "INSERT OR REPLACE INTO alert_state (key, firing, state, since, notified_at, notified_state, why) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (state.key, int(state.firing), state.state, state.since, state.notified_at, state.notified_state,
             state.why),
        )  # fmt: skip
