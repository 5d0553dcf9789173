"""KPI references: how large a formula grows once the KPIs it names are inlined (checked while binding)."""

from __future__ import annotations

from .formula import Node
from .ir import Agg, Previous
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
