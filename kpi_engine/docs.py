"""`kpi docs`: a KPI dictionary in Markdown, generated from the specs so that it never drifts from them."""

from __future__ import annotations

from .model import KpiSpec, Project, TargetSpec
from .units import format_value, formatter

HEADER = "<!-- Generated from the spec files by `kpi docs`: edit the specs, not this file. -->\n"


def _target(t: TargetSpec, kpi: KpiSpec) -> str:
    fmt = formatter([], kpi.shown, written=[t.value, t.min, t.max, t.tolerance, t.baseline])  # 0.835 as written
    if t.direction == "range":
        what = f"keep between {fmt(t.min)} and {fmt(t.max)}"
    elif t.direction == "maintain":
        what = f"maintain {fmt(t.value)} ± {fmt(t.tolerance)}"
    else:
        goal = (
            fmt(t.value) if t.value is not None else f"{t.change:+.0%} on the baseline" if t.change is not None else "?"
        )
        base = "auto" if t.baseline_auto else (fmt(t.baseline) if t.baseline is not None else "none")
        what = f"{t.direction} to {goal} (baseline {base})"
    when = f" from {t.start} to {t.deadline}" if t.start and t.deadline else ""
    measure = ", measured over the whole window" if t.measure == "window" else ""
    return what + when + measure


def _unit(kpi: KpiSpec) -> str:
    return f"{kpi.unit.value} ({kpi.money.code})" if kpi.money else kpi.unit.value


def render(project: Project) -> str:
    """The dictionary: one section per spec file, one entry per KPI, in file order."""
    lines = [HEADER, "# KPI dictionary", ""]
    lines.append(
        f"{len(project.kpis)} KPIs over {len(project.sources)} sources; periods in {project.calendar.timezone}."
    )
    lines.append("")
    by_file: dict[str, list[KpiSpec]] = {}
    for kpi in project.kpis.values():
        by_file.setdefault(kpi.loc().file or "", []).append(kpi)
    for file, kpis in by_file.items():
        name = file.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml").replace("_", " ")
        lines += [
            f"## {name.capitalize()}",
            "",
            "| KPI | unit | grain | owner | key | review |",
            "|---|---|---|---|---|---|",
        ]
        for k in kpis:
            review = (
                f"{k.review.cadence}" + (f", {k.review.meeting}" if k.review and k.review.meeting else "")
                if k.review
                else "-"
            )
            lines.append(
                f"| [{k.name}](#{k.id}) | {_unit(k)} | {k.grain.value} | {k.owner or '-'} | "
                f"{'yes' if k.key else ''} | {review} |"
            )
        lines.append("")
        for k in kpis:
            lines += [
                f"### {k.name}",
                "",
                f'<a id="{k.id}"></a>`{k.id}`' + (f": {k.description}" if k.description else ""),
                "",
            ]
            lines.append(f"- **Formula**: `{' '.join(k.formula.split())}`")
            lines.append(
                f"- **Unit**: {_unit(k)}; **grain**: {k.grain.value}"
                + (f"; **by**: {', '.join(k.dimensions)}" if k.dimensions else "")
                + ("; **qualitative** (sample size and 95% interval reported)" if k.kind == "qualitative" else "")
                + (f"; **window**: {k.window}" if k.window else "")
                + (f"; **cohort matrix**: {k.cohort} {k.grain.value}s ahead" if k.cohort else "")
            )
            if k.owner or k.stakeholders:
                lines.append(f"- **Owner**: {k.owner or '-'}; **stakeholders**: {', '.join(k.stakeholders) or '-'}")
            if k.target:
                if k.target.objective:
                    lines.append(f"- **Objective**: {k.target.objective}")
                lines.append(f"- **Target**: {_target(k.target, k)}")
                for dim, values in k.target.by.items():
                    lines.append(
                        f"- **Targets by {dim}**: "
                        + ", ".join(f"{v}: {format_value(x, k.shown)}" for v, x in values.items())
                    )
            if k.review:
                day = f" on {k.review.day}" if k.review.day else ""
                lines.append(
                    f"- **Review**: {k.review.cadence}{day}"
                    + (f" in *{k.review.meeting}*" if k.review.meeting else "")
                    + (" (key KPI)" if k.key else "")
                )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
