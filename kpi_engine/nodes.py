"""The formula AST: frozen dataclasses whose ``span`` (the text they came from) is left out of equality."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

N = TypeVar("N", bound="Node")


@dataclass(frozen=True)
class Node:
    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Number(Node):
    value: int | float


@dataclass(frozen=True)
class Offset(Node):
    """A calendar offset, ``1 month`` or ``7 days``: the second argument of ``previous()``."""

    n: int
    unit: str  # day, week, month, quarter, year


@dataclass(frozen=True)
class String(Node):
    value: str


@dataclass(frozen=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True)
class Null(Node):
    pass


@dataclass(frozen=True)
class Name(Node):
    """A bare identifier: a KPI reference, a param, or (inside an aggregate) a column of its source."""

    name: str


@dataclass(frozen=True)
class Column(Node):
    """A qualified column, ``source.column``."""

    source: str
    column: str


@dataclass(frozen=True)
class Call(Node):
    """A function call; ``where`` is the optional row filter of an aggregate, ``per`` the entity an aggregate
    over entities is computed for (``mean(count(orders) per customer)``)."""

    func: str
    args: tuple[Node, ...]
    where: Node | None = None
    per: str | None = None


@dataclass(frozen=True)
class BinOp(Node):
    op: str  # + - * / % == != < <= > >= and or
    left: Node
    right: Node


@dataclass(frozen=True)
class Unary(Node):
    op: str  # - not
    operand: Node


@dataclass(frozen=True)
class InList(Node):
    operand: Node
    items: tuple[Node, ...]
    negated: bool = False


@dataclass(frozen=True)
class IsNull(Node):
    operand: Node
    negated: bool = False


def children(node: Node) -> list[Node]:
    """The nodes directly below ``node``, in source order: every field that holds a node or a tuple of nodes
    (so the bound IR's ``Agg`` and ``Previous`` are traversed like the parser's nodes, with no per-type code)."""
    out: list[Node] = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            out.append(value)
        elif isinstance(value, tuple):
            out.extend(v for v in value if isinstance(v, Node))
    return out


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every node below it, depth first, in source order."""
    yield node
    for child in children(node):
        yield from walk(child)


def find_all(node: Node, kind: type[N] | tuple[type[N], ...], *, below: bool = True) -> list[N]:
    """Every node of ``kind`` in the tree, in source order; ``below=False`` does not look inside a match."""
    found: list[N] = []

    def visit(n: Node) -> None:
        if isinstance(n, kind):
            found.append(n)  # type: ignore[arg-type]
            if not below:
                return
        for child in children(n):
            visit(child)

    visit(node)
    return found


def map_children(node: Node, fn: Callable[[Node], Node]) -> Node:
    """The node with ``fn`` applied to each direct child node (``fn`` decides whether to go deeper)."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            changes[f.name] = fn(value)
        elif isinstance(value, tuple) and any(isinstance(v, Node) for v in value):
            changes[f.name] = tuple(fn(v) if isinstance(v, Node) else v for v in value)
    return dataclasses.replace(node, **changes) if changes else node


def transform(node: Node, fn: Callable[[Node], Node]) -> Node:
    """The tree rebuilt bottom-up with ``fn`` applied to every node (``fn`` returns the node to keep it)."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            changes[f.name] = transform(value, fn)
        elif isinstance(value, tuple) and any(isinstance(v, Node) for v in value):
            changes[f.name] = tuple(transform(v, fn) if isinstance(v, Node) else v for v in value)
    rebuilt = dataclasses.replace(node, **changes) if changes else node
    return fn(rebuilt)
