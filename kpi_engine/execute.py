"""Execution: one lazy scan per source, every group of the plan built on it, all collected together."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from . import periods
from .compile import FunctionFailed, rollup_expr
from .connectors import Connector, Env
from .errors import Diagnostic, KpiError
from .groups import DATE, PERIOD, STATS, group_frame, keyed_frame, plain, windows_of
from .increment import Cache
from .ir import Conversions, MetricFunction
from .lookups import lookup_frames
from .plan import GroupRequest, Plan, SourcePlan, aggregates_of
from .scan import cached_sources, locate, reader, source_frame, spans_whole_source
from .spec_dates import MIN_DATE


@dataclass(frozen=True)
class SourceData:
    """What execution produced for one source: its data span and one frame per (grain, dims) group."""

    first: dt.date | None  # local date of the source's earliest row (whatever --from/--to ask for)
    last: dt.date | None  # local date of its latest row up to the end of the as-of day
    rows: int
    groups: Mapping[tuple, pl.DataFrame]


def execute(
    plan: Plan,
    connectors: Mapping[str, Connector],
    functions: Mapping[str, MetricFunction],
    env: Env,
    streaming: bool = False,
    failures: list | None = None,
    cache: Cache | None = None,
) -> dict[str, SourceData]:
    """Run the plan: sources in databases that aggregate their own rows run their queries there (pushdown);
    the others' lazy queries are collected in one ``collect_all`` (shared scans).

    With a ``cache``, each source read whole is read into memory first, and only the periods its changed rows
    reach are aggregated (``increment``); the others come from the cache."""
    out: dict[str, dict] = {}
    pushed: dict[str, tuple[set[tuple], set[str]]] = {}
    if has_database(plan, connectors, env):
        from .pushdown import run_all  # (sqlglot loads only when a connector offers a database)

        pushed = run_all(plan, connectors, env, functions, out)
    # a source its database aggregated in part reads rows for the other groups only, and only their columns
    # (and for the columns a conversion matches in its rows)
    sources = {name: sp.narrowed(*pushed[name]) if name in pushed else sp for name, sp in plan.sources.items()}
    rows_plan = dataclasses.replace(plan, sources=sources)
    done = {name for name, (rest, matched) in pushed.items() if not rest and not matched}
    if cache is not None:
        cache.begin(
            rows_plan,
            cached_sources(rows_plan, connectors, env, set(pushed)),
            reader(rows_plan, connectors, env, set(pushed)),
        )
    given = cache.given() if cache else {}
    idle = cache.idle() if cache else set()
    queries, index = build_queries(rows_plan, connectors, functions, env, failures, done | idle, set(pushed), cache)
    try:
        frames = pl.collect_all(queries, engine="streaming" if streaming else "auto")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise locate(exc, plan, connectors, env) from None
    for (name, key), frame in zip(index, frames, strict=True):
        entry = out.setdefault(name, {"groups": {}})
        if key is None:
            entry.update(first=frame["first"][0], last=frame["last"][0], rows=frame["rows"][0])
        elif STATS[0] in frame.columns:
            entry.update(first=frame[STATS[0]].min(), last=frame[STATS[1]].max(), rows=int(frame[STATS[2]].sum()))
            entry["groups"][key] = _ordered(frame.drop(STATS), key[1])
        else:
            entry["groups"][key] = _ordered(frame, key[1])
    for name in [*given, *idle]:
        cache.merge(name, out.setdefault(name, {}), plan)  # type: ignore[union-attr]
    for name, sp in plan.sources.items():
        if name in out:
            first = out[name].get("first")
            if first is not None and first < MIN_DATE:
                raise KpiError(
                    Diagnostic(
                        f"source `{name}` has rows dated {first}, before {MIN_DATE}",
                        sp.source.loc("time"),
                        hint="a misread or placeholder date: fix the data, or check time_unit/time_format",
                    )
                )
            _derive_groups(sp, out[name]["groups"], plan)
            _narrow(sp, out[name]["groups"], plan)
            if name in given or name in idle:
                cache.save(name, out[name]["groups"], plan)  # type: ignore[union-attr]
    return {name: SourceData(v["first"], v["last"], v["rows"], v["groups"]) for name, v in out.items()}


def has_database(plan: Plan, connectors: Mapping[str, Connector], env: Env) -> bool:
    """Whether a planned source is in a database that may aggregate it (so that ``pushdown``, and sqlglot with
    it, loads only then)."""
    return any(connectors[sp.source.connector].database(sp.source, env) for sp in plan.sources.values())


def build_queries(
    plan: Plan,
    connectors: Mapping[str, Connector],
    functions: Mapping[str, MetricFunction],
    env: Env,
    failures: list | None = None,
    skip: set[str] = frozenset(),  # type: ignore[assignment]
    spanned: set[str] = frozenset(),  # type: ignore[assignment]
    cache: Cache | None = None,
) -> tuple[list[pl.LazyFrame], list[tuple[str, tuple | None]]]:
    """Every lazy query of the plan (a group's ``group_by``, or a source's data span) and what each is for,
    but for the sources in ``skip``, and the spans of those in ``spanned`` (a database gave them).

    With a ``cache`` (an incremental run: see ``increment``), the sources it read are aggregated from those
    rows, each group only from its cutoff period on, or not at all where every period is stored.

    Separate from ``execute`` so that tests and ``--explain`` can read the optimised plans polars will run.
    Every source's frame is made first: a conversion in one source's group reads another source's frame.
    """
    queries: list[pl.LazyFrame] = []
    index: list[tuple[str, tuple | None]] = []
    given, cutoffs = (cache.given(), cache.cutoffs()) if cache else ({}, {})
    frames = _source_frames(plan, connectors, env, failures, queries, index, skip, spanned, given)
    for name, (lf, scanned, folded) in frames.items():
        sp = plan.sources[name]
        keyed = keyed_frame(lf, sp, scanned, plan)
        built = []
        try:
            for group in scanned:
                cut = cutoffs.get((name, group.key), MIN_DATE)
                if name in given and cut is None:
                    continue  # every period of the group is stored
                stats = folded and plain(group.grain)
                since = cut if cut is not None and cut > MIN_DATE else None
                first = cache.first_seen(name, group) if cache and name in given else None
                query = group_frame(
                    keyed, group, sp, plan, functions, stats, {n: f[0] for n, f in frames.items()}, since, first
                )
                if since is not None:
                    query = query.filter(pl.col(PERIOD) >= since)
                built.append((query, (name, group.key)))
        except FunctionFailed as exc:
            if failures is None:
                raise
            from .plugins import PluginError

            fn = exc.function
            failures.append(PluginError(name, sp.source.connector, fn.plugin or "?", str(exc), function=fn.name))
            spans = [k for k, (source, key) in enumerate(index) if source == name and key is None]
            for k in reversed(spans):  # this source's span query: its KPIs are skipped with it
                queries.pop(k)
                index.pop(k)
            continue
        for query, key in built:
            queries.append(query)
            index.append(key)
    return queries, index


def _source_frames(
    plan: Plan,
    connectors: Mapping[str, Connector],
    env: Env,
    failures: list | None,
    queries: list[pl.LazyFrame],
    index: list[tuple[str, tuple | None]],
    skip: set[str] = frozenset(),  # type: ignore[assignment]
    spanned: set[str] = frozenset(),  # type: ignore[assignment]
    given: Mapping[str, pl.LazyFrame] | None = None,
) -> dict[str, tuple[pl.LazyFrame, list[GroupRequest], bool]]:
    """Each source's one frame (cached when several queries read it), the groups that scan it, and whether
    the data's span rides along in them; a separate span query is added to ``queries`` otherwise."""
    matched = Counter(
        name
        for sp in plan.sources.values()
        for g in sp.groups.values()
        if g.derive_from is None
        for r in g.aggs.values()
        if isinstance(r.agg, Conversions)
        for name, _ in r.agg.matched
    )
    out = {}
    given = given or {}
    lookups = lookup_frames(plan, connectors, env, skip | given.keys())
    for name, sp in list(plan.sources.items()):
        if name in skip:
            continue
        if name in given:  # read already (an incremental run): its span comes from its fingerprint
            out[name] = (given[name], [g for g in sp.groups.values() if g.derive_from is None], False)
            continue
        try:
            lf, _ = source_frame(sp, connectors[sp.source.connector], plan, env, lookups=lookups)
        except KpiError:
            raise
        except Exception as exc:  # a connector plugin's bug: skip its source, the other KPIs still run
            if failures is None:
                raise
            from .plugins import PluginError

            failures.append(PluginError(name, sp.source.connector, "", f"{type(exc).__name__}: {exc}"))
            continue
        scanned = [g for g in sp.groups.values() if g.derive_from is None]
        # the data's first and last day ride along in the groups: a separate query over the same scan would
        # make polars hold the scanned columns in memory to share them (2x the peak RSS at 10M rows)
        # (only when the groups see every row up to as-of: a --from/--to window must not move the span)
        whole = spans_whole_source(sp, plan)
        folded = whole and not sp.prefilter and any(plain(g.grain) for g in scanned) and name not in spanned
        own_span = not folded and name not in spanned  # (a database gave the span of those in ``spanned``)
        # one scan per source: every query of the source reads one cached frame (polars' own common-subplan
        # elimination misses it once projection pushdown has given each group different columns). A --from/--to
        # window is the exception: its data span is a second read of the time column alone (see spans_whole_source)
        readers = len(scanned) + (1 if whole and own_span else 0) + matched[name]
        lf = lf.cache() if readers > 1 else lf
        if own_span:
            span_lf = lf if whole else source_frame(sp, connectors[sp.source.connector], plan, env, False)[0]
            queries.append(
                span_lf.select(
                    pl.col(DATE).min().alias("first"), pl.col(DATE).max().alias("last"), pl.len().alias("rows")
                )
            )
            index.append((name, None))
        out[name] = (lf, scanned, folded)
    return out


INT64 = (-(2**63), 2**63 - 1)


def _ordered(frame: pl.DataFrame, dims: tuple[str, ...]) -> pl.DataFrame:
    """A group's rows sorted by its keys: ``group_by`` returns them in hash order, which changes from run to
    run, and every later sum (totals, weeks from days) would add floats in that order: same inputs, different
    last digits. Sorted, the same data gives the same bytes."""
    return frame.sort([PERIOD, *dims], nulls_last=False)


def _narrow(sp: SourcePlan, groups: dict, plan: Plan) -> None:
    """Integer sums were added in 128 bits: each must fit in 64, or the run stops naming it (never wraps)."""
    for key, frame in groups.items():
        wide = [c for c, t in frame.schema.items() if t == pl.Int128]
        for column in wide:
            outside = frame.filter(~pl.col(column).is_between(*INT64))
            if not outside.is_empty():
                group = sp.groups[key]
                agg = next(r.agg for r in group.aggs.values() if r.id == column)
                raise overflow_error(
                    agg.key,
                    [kp.id for kp in plan.kpis if agg in aggregates_of(kp.expr)],
                    periods.label(outside[PERIOD][0], group.grain, plan.calendar),
                    outside[column][0],
                )
        if wide:
            groups[key] = frame.with_columns(pl.col(wide).cast(pl.Int64))


def overflow_error(what: str, kpis: list[str], period: str, value: int) -> KpiError:
    """An exact integer result past the 64-bit range: reported, never printed wrapped or rounded."""
    return KpiError(
        Diagnostic(
            f"{what} is {value} in {period}, past the 64-bit integer range (±9.2e18)"
            + (f"; KPIs: {', '.join(sorted(kpis))}" if kpis else ""),
            hint="check the column's values (a unit error or a corrupt row), or sum a float column instead",
        )
    )


def _derive_groups(sp: SourcePlan, groups: dict, plan: Plan) -> None:
    """Groups derived from finer results (totals from per-dimension rows, weeks or months from days)."""
    pending = [g for g in sp.groups.values() if g.derive_from is not None]
    while pending:
        ready = [g for g in pending if g.derive_from in groups]
        if not ready:
            raise RuntimeError(f"plan of source {sp.source.name} derives groups from groups it never builds")
        for group in ready:
            finer = groups[group.derive_from].lazy()
            if isinstance(group.grain, periods.Trailing) and group.derive_from[0] != group.grain:
                # each daily row counts in every window that holds its day
                finer = finer.rename({PERIOD: "__day"})
                windows = windows_of(finer.select("__day").unique(), "__day", group.grain, plan)
                finer = finer.join(windows, on="__day").drop("__day")
            elif group.derive_from[0] != group.grain:
                finer = finer.with_columns(
                    periods.period_start(pl.col(PERIOD), group.grain, plan.calendar).alias(PERIOD)
                )
                finer = finer.filter(pl.col(PERIOD).is_not_null())
            schema = finer.collect_schema()
            exprs = [rollup_expr(r.rollup or "sum", r.id, schema[r.id]).alias(r.id) for r in group.aggs.values()]
            exprs += [pl.col(i).sum().alias(i) for i, _ in group.row_filters.values()]
            groups[group.key] = _ordered(finer.group_by([PERIOD, *group.dims]).agg(exprs).collect(), group.dims)
            pending.remove(group)
