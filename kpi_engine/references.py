"""KPI references: how large a formula grows once the KPIs it names are inlined, and which sources it reads.

Read from the formulas themselves (a KPI whose source failed still names it), below binding.
"""

from __future__ import annotations

from .formula import Column, FormulaSyntaxError, Name, Node, parse, walk
from .ir import Agg, Previous
from .model import Project
from .nodes import children

#: References are inlined, so ``k1: k0 + k0, k2: k1 + k1, ...`` doubles at each level: 40 levels would be 2^40
#: terms to plan and compile. Sizes are counted on the shared tree (memoised), so counting is linear.
MAX_EXPANDED = 10_000


def expanded_size(node: Node, memo: dict[int, int] | None = None) -> int:
    """How many nodes ``node`` has once every shared subtree (an inlined KPI) is counted each time it appears."""
    memo = {} if memo is None else memo
    if id(node) not in memo:
        if isinstance(node, Previous):
            below: list[Node] = [node.expr]
        elif isinstance(node, Agg):
            below = []
        else:
            below = children(node)
        memo[id(node)] = 1 + sum(expanded_size(c, memo) for c in below)
    return memo[id(node)]


def sources_read(project: Project, kpi_id: str, seen: set[str] | None = None) -> set[str]:
    """Sources a KPI's formula reads, through the KPIs it references (read from the parsed formula)."""
    seen = seen if seen is not None else set()
    if kpi_id in seen or kpi_id not in project.kpis:
        return set()
    seen.add(kpi_id)
    try:
        tree = parse(project.kpis[kpi_id].formula.strip())
    except FormulaSyntaxError:
        return set()
    out: set[str] = set()
    for node in walk(tree):
        if isinstance(node, Column) and node.source in project.sources:
            out.add(node.source)
        elif isinstance(node, Name):
            if node.name in project.sources:
                out.add(node.name)
            elif node.name in project.kpis:
                out |= sources_read(project, node.name, seen)
    return out
