"""Incremental evaluation: each group's per-period aggregates kept on disk, and only the periods that changed
rows can reach aggregated again (``kpi watch``, ``kpi alerts``; ``reaches`` says what a period reads).

A source's rows are fingerprinted per local day (row count and a sum of row hashes over every column the
plan reads). The first day whose fingerprint differs from the stored one, or the day after the stored as-of
when as-of moved, is the source's *changed* day. A period depends on its own days, on earlier days (``new``,
``previous``, windows) and on a bounded stretch after it (``active(k)``, ``over_next``, conversions within
N days): the periods that stretch ends before the changed day are reused, the others are recomputed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from . import periods
from ._version import __version__
from .compile import DATE
from .groups import PERIOD
from .lifetimes import first_seen
from .plan import GroupRequest, Plan, SourcePlan
from .printer import to_source
from .reaches import ALL, FORMAT, by_day, cutoff, fingerprint, first_change, matched, new_entities, reach, reads_from

Key = tuple[periods.Period, tuple[str, ...]]


def _stats(files: list[Path] | None) -> dict[str, list[int]]:
    """Each file's size and modification time (``{"": [0, 0]}`` for a source read whole)."""
    if files is None:
        return {"": [0, 0]}
    out = {}
    for f in files:
        st = f.stat()
        out[str(f)] = [st.st_size, st.st_mtime_ns]
    return out


def _digest(parts: Iterable[object]) -> str:
    return hashlib.sha256(json.dumps(list(parts), default=str, sort_keys=True).encode()).hexdigest()[:24]


def source_signature(sp: SourcePlan, plan: Plan) -> str:
    """What a source's stored aggregates were computed under, but its rows (those are fingerprinted)."""
    source = sp.source
    return _digest(
        [
            FORMAT,
            __version__,
            pl.__version__,
            source.connector,
            source.options,
            source.time,
            sorted(sp.columns),
            [(c, str(t)) for c, t in sp.schema.items() if c in sp.columns],
            [to_source(f) for f in sp.prefilter],
            [plan.calendar.timezone, plan.calendar.week_start, plan.calendar.fiscal_year_start],
            [plan.window.start, plan.window.end],
        ]
    )


def canonical(group: GroupRequest) -> dict[str, str]:
    """Each output column of a group under a name that does not depend on the plan's numbering (which moves
    when a KPI is added): its aggregate's text, or its row filter's."""
    out = {r.id: f"agg {r.agg.key} fill={r.fill} rollup={r.rollup}" for r in group.aggs.values()}
    out.update({i: f"rows {text}" for text, (i, _) in group.row_filters.items()})
    return out


def first_key(group: GroupRequest, per: str) -> str:
    """What an entity's first row is kept under: its entity column and the group's dimensions."""
    return _digest(["first", per, list(group.dims)])


def group_signature(group: GroupRequest) -> str:
    """A group's grain, dimensions and output columns: what its stored frame holds."""
    return _digest([str(group.grain), list(group.dims), sorted(canonical(group).values())])


@dataclass
class Stored:
    """A source's aggregates as the last run left them."""

    as_of: dt.date
    files: dict[str, list[int]]  # path -> [size, mtime_ns] of each file read ({"": ...} when not listed)
    fingerprint: pl.DataFrame  # file, day, rows, hash
    groups: dict[str, pl.DataFrame]  # by group signature
    firsts: dict[str, pl.DataFrame] = field(default_factory=dict)  # first_seen by first_key


@dataclass
class SourceState:
    """One source in this run: what changed, each scanned group's cutoff, and the rows read to recompute."""

    name: str
    signature: str
    files: dict[str, list[int]]
    fingerprint: pl.DataFrame
    stored: Stored | None
    changed: dt.date | None
    cutoffs: dict[Key, dt.date | None] = field(default_factory=dict)
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)  # rows by file, of the files read
    frame: pl.DataFrame | None = None
    firsts: dict[str, pl.DataFrame] = field(default_factory=dict)  # first_seen computed in this run


Reader = Callable[[list[tuple[str, Path | None]]], list[pl.DataFrame | None]]


class Cache:
    """The aggregates of earlier runs under ``root``, one folder per source and signature."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.states: dict[str, SourceState] = {}
        self.as_of: dt.date | None = None
        self.unsaved: str | None = None  # why the cache could not be written, if it could not

    def begin(self, plan: Plan, listed: Mapping[str, list[Path] | None], read: Reader) -> None:
        """Fingerprint each source's rows and work out which periods to recompute and which rows that reads.

        ``listed`` names the sources to cache, with their files when the connector can read a subset of them
        (None: read whole). ``read`` reads (source, file or None) pairs, all in one go; None for a source whose
        connector failed (left to the normal run to report). Files unchanged since the last run (same size
        and modification time) are not read unless a period to recompute needs their rows.
        """
        self.as_of = plan.window.as_of
        signatures = {name: source_signature(plan.sources[name], plan) for name in listed}
        stored = {name: self._load(name, signatures[name]) for name in listed}
        now = {name: _stats(files) for name, files in listed.items()}
        first = [
            (name, Path(f) if f else None)
            for name in listed
            for f in now[name]
            if not f or stored[name] is None or stored[name].files.get(f) != now[name][f]  # type: ignore[union-attr]
        ]
        self.states = {}
        failed = set()
        for (name, f), frame in zip(first, read(first), strict=True):
            if frame is None:
                failed.add(name)
                continue
            self.states.setdefault(name, self._state(name, signatures[name], now[name], stored[name])).frames[
                str(f or "")
            ] = frame
        for name in listed:
            if name not in failed and name not in self.states:
                self.states[name] = self._state(name, signatures[name], now[name], stored[name])
        for state in self.states.values():
            self._changes(state)
        for name, state in self.states.items():
            for group in plan.sources[name].groups.values():
                if group.derive_from is None:
                    state.cutoffs[group.key] = self._cutoff(state, group, plan)
        self._read_rest(plan, read)

    def _state(self, name: str, signature: str, files: dict[str, list[int]], stored: Stored | None) -> SourceState:
        empty = pl.DataFrame(schema={"file": pl.String, DATE: pl.Date, "rows": pl.Int64, "hash": pl.UInt64})
        return SourceState(name, signature, files, empty, stored, None)

    def _changes(self, state: SourceState) -> None:
        """The source's fingerprint (stored for unchanged files, computed for those read) and its changed day."""
        parts = [fingerprint(frame).with_columns(pl.lit(f).alias("file")) for f, frame in state.frames.items()]
        if state.stored is not None:
            kept = [f for f in state.files if f not in state.frames]
            parts.append(state.stored.fingerprint.filter(pl.col("file").is_in(kept)))
        state.fingerprint = pl.concat([state.fingerprint, *(p.select(state.fingerprint.columns) for p in parts)])
        old = state.stored.fingerprint if state.stored else None
        changed = first_change(by_day(old) if old is not None else None, by_day(state.fingerprint))
        if state.stored is not None and state.stored.as_of != self.as_of:
            moved = min(state.stored.as_of, self.as_of) + dt.timedelta(days=1)  # type: ignore[type-var]
            changed = moved if changed is None else min(changed, moved)
        state.changed = changed

    def _read_rest(self, plan: Plan, read: Reader) -> None:
        """Read the unchanged files holding rows a period to recompute needs; assemble each source's rows."""
        needs: dict[str, dt.date] = {}
        for name, s in self.states.items():
            for group in plan.sources[name].groups.values():
                cut = s.cutoffs.get(group.key)
                if group.derive_from is not None or cut is None:
                    continue
                kept = all(self._first_kept(s, group, per) for per in new_entities(group))
                day = reads_from(group, cut, plan, kept)
                needs[name] = min(needs.get(name, day), day)
                for other in matched(group):  # a conversion reads its steps' rows from the same day
                    needs[other] = min(needs.get(other, day), day)
        rest = []
        for name, s in self.states.items():
            day = needs.get(name)
            if day is None:
                continue
            last = s.fingerprint.group_by("file").agg(pl.col(DATE).max())
            wanted = set(last.filter(pl.col(DATE) >= day)["file"].to_list())
            rest += [(name, Path(f) if f else None) for f in sorted(wanted - s.frames.keys())]
        for (name, f), frame in zip(rest, read(rest), strict=True):
            if frame is None:  # failed now: the normal run reports it
                self.states.pop(name, None)
            elif name in self.states:
                self.states[name].frames[str(f or "")] = frame
        for name, s in self.states.items():
            if needs.get(name) is not None:
                order = [f for f in s.files if f in s.frames]  # the connector's order, as a full read
                rows = pl.concat([s.frames[f] for f in order], how="vertical_relaxed") if order else None
                s.frame = rows.filter(pl.col(DATE) <= self.as_of) if rows is not None else None  # read past as-of
                self._firsts(s, plan)
            s.frames = {}  # (the rows now live in s.frame: not held twice)

    def _first_kept(self, state: SourceState, group: GroupRequest, per: str) -> bool:
        """Whether the entities' first rows are stored and the changed day lets them be brought up to date."""
        cut = state.cutoffs.get(group.key)
        stored = state.stored.firsts if state.stored else {}
        return cut is not None and cut > ALL and state.changed is not None and first_key(group, per) in stored

    def _firsts(self, state: SourceState, plan: Plan) -> None:
        """Each entity's first row for the groups asking ``new``: the stored ones before the changed day, the
        rows from it for the entities not seen before it (so ``new`` needs no old rows)."""
        sp = plan.sources[state.name]
        for group in sp.groups.values():
            if group.derive_from is not None or state.cutoffs.get(group.key) is None or state.frame is None:
                continue
            for per in new_entities(group):
                key = first_key(group, per)
                if key in state.firsts:
                    continue
                rows = state.frame.lazy()
                if self._first_kept(state, group, per):
                    kept = state.stored.firsts[key].filter(pl.col("__first") < state.changed)  # type: ignore[union-attr]
                    fresh = first_seen(
                        rows.filter(pl.col(DATE) >= state.changed), per, group.dims, DATE, sp.source.time
                    )
                    fresh = fresh.join(kept.lazy().select(per), on=per, how="anti")
                    state.firsts[key] = pl.concat([kept.lazy(), fresh], how="vertical_relaxed").collect()
                else:
                    state.firsts[key] = first_seen(rows, per, group.dims, DATE, sp.source.time).collect()

    def first_seen(self, name: str, group: GroupRequest) -> dict[str, pl.LazyFrame]:
        """The entities' first rows this run computed for a group, by entity column (see ``lifetimes``)."""
        state = self.states[name]
        found = {per: state.firsts.get(first_key(group, per)) for per in new_entities(group)}
        return {per: f.lazy() for per, f in found.items() if f is not None}

    def _cutoff(self, state: SourceState, group: GroupRequest, plan: Plan) -> dt.date | None:
        if state.stored is None or group_signature(group) not in state.stored.groups:
            return ALL
        changed = state.changed
        for other in matched(group):  # a conversion also reads the sources it matches
            theirs = self.states[other].changed if other in self.states else ALL
            if theirs is not None:
                changed = theirs if changed is None else min(changed, theirs)
        return cutoff(group.grain, changed, reach(group), plan.calendar)

    def given(self) -> dict[str, pl.LazyFrame]:
        """The rows read for each source with periods to recompute: the run aggregates these, not a new read."""
        return {name: s.frame.lazy() for name, s in self.states.items() if s.frame is not None}

    def idle(self) -> set[str]:
        """The sources with nothing to recompute: every period comes from the cache, nothing is read."""
        return {name for name, s in self.states.items() if s.frame is None}

    def cutoffs(self) -> dict[tuple[str, Key], dt.date | None]:
        return {(name, key): c for name, s in self.states.items() for key, c in s.cutoffs.items()}

    def merge(self, name: str, entry: dict, plan: Plan) -> None:
        """Complete a source's result: stored periods before each cutoff, recomputed ones from it, and the data's
        span from the fingerprint."""
        state = self.states[name]
        stored = state.stored.groups if state.stored else {}
        groups = entry.setdefault("groups", {})
        for group in plan.sources[name].groups.values():
            if group.derive_from is not None:
                continue
            cut = state.cutoffs[group.key]
            old = stored.get(group_signature(group))
            if old is not None:
                old = old.rename({name: i for i, name in canonical(group).items()})
            if cut is None:
                groups[group.key] = old
            elif cut > ALL and old is not None:
                kept = old.filter(pl.col(PERIOD) < cut)
                fresh = groups[group.key]
                merged = pl.concat([kept, fresh.select(kept.columns)], how="vertical_relaxed")
                groups[group.key] = merged.sort([PERIOD, *group.dims], nulls_last=False)
        days = by_day(state.fingerprint).filter(pl.col(DATE) <= self.as_of)
        entry["first"] = days[DATE].min()
        entry["last"] = days[DATE].max()
        entry["rows"] = int(days["rows"].sum())

    def save(self, name: str, groups: Mapping[Key, pl.DataFrame], plan: Plan) -> None:
        """Store a source's scanned groups and fingerprint (written to a new folder, then swapped in); a cache
        folder that cannot be written (read-only, full) costs the next run its reuse, never this run."""
        try:
            self._store(name, groups, plan)
        except OSError as exc:
            self.unsaved = f"{exc.strerror or exc}: {exc.filename or self.root}"

    def _store(self, name: str, groups: Mapping[Key, pl.DataFrame], plan: Plan) -> None:
        state = self.states[name]
        if state.stored is not None and state.changed is None and state.stored.files == state.files:
            return  # nothing changed: what is stored is what this run used
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.root))
        files = {}
        for group in plan.sources[name].groups.values():
            if group.derive_from is None and group.key in groups:
                signature = group_signature(group)
                groups[group.key].rename(canonical(group)).write_parquet(tmp / f"{signature}.parquet")
                files[signature] = f"{signature}.parquet"
        state.fingerprint.write_parquet(tmp / "fingerprint.parquet")
        firsts = dict(state.firsts)
        if state.changed is None and state.stored is not None:  # the same rows: what is stored still holds
            firsts = {**state.stored.firsts, **firsts}
        for key, frame in firsts.items():
            frame.write_parquet(tmp / f"first-{key}.parquet")
        meta = {
            "format": FORMAT,
            "as_of": str(self.as_of),
            "files": state.files,
            "groups": files,
            "firsts": list(firsts),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        for old in self.root.glob(f"{name}@*"):  # this or an earlier signature's folder: replaced
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, self._folder(name, state.signature))
        except OSError:  # another check stored this source meanwhile: its folder is as complete as this one
            shutil.rmtree(tmp, ignore_errors=True)

    def _folder(self, name: str, signature: str) -> Path:
        return self.root / f"{name}@{signature}"

    def _load(self, name: str, signature: str) -> Stored | None:
        folder = self._folder(name, signature)
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta.get("format") != FORMAT:
                return None
            groups = {s: pl.read_parquet(folder / f) for s, f in meta["groups"].items()}  # canonical names
            printed = pl.read_parquet(folder / "fingerprint.parquet")
            firsts = {k: pl.read_parquet(folder / f"first-{k}.parquet") for k in meta["firsts"]}
            return Stored(dt.date.fromisoformat(meta["as_of"]), meta["files"], printed, groups, firsts)
        except (OSError, ValueError, KeyError, pl.exceptions.PolarsError):
            return None  # none yet, or unreadable: computed afresh and written again

    def line(self) -> str:
        """What the run reused, in one line: ``cache: 7 of 9 sources unchanged; from 2026-07-01: ads, crm``."""
        if not self.states:
            return "cache: no source can be kept (a database aggregates them, or --from/--to window them)"
        by_day: dict[str, list[str]] = {}
        for name, s in sorted(self.states.items()):
            cuts = [c for c in s.cutoffs.values() if c is not None]
            if cuts:
                day = "every period" if s.stored is None or min(cuts) <= ALL else f"from {min(cuts)}"
                by_day.setdefault(day, []).append(name)
        same = len(self.states) - sum(len(v) for v in by_day.values())
        parts = [f"{day}: {', '.join(names)}" for day, names in sorted(by_day.items())]
        unsaved = f"; not stored ({self.unsaved})" if self.unsaved else ""
        return f"cache: {same} of {len(self.states)} sources unchanged" + "".join(f"; {p}" for p in parts) + unsaved

    def summary(self) -> list[str]:
        """One line per source: what this run reused and from which day it aggregated rows again."""
        lines = []
        for name, s in sorted(self.states.items()):
            cuts = [c for c in s.cutoffs.values() if c is not None]
            if s.stored is None:
                lines.append(f"{name}: no stored aggregates, computed in full")
            elif not cuts:
                lines.append(f"{name}: unchanged, every period reused")
            elif min(cuts) <= ALL:
                lines.append(f"{name}: rows changed from {s.changed}, recomputed in full")
            else:
                lines.append(f"{name}: rows changed from {s.changed}, periods from {min(cuts)} recomputed")
        return lines
