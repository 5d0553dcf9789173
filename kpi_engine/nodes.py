"""The formula AST: frozen dataclasses whose ``span`` (the text they came from) is left out of equality."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Node:
    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Number(Node):
    value: int | float


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
    """A function call; ``where`` is the optional row filter of an aggregate."""

    func: str
    args: tuple[Node, ...]
    where: Node | None = None


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
    """The nodes directly below ``node`` (a call's arguments and filter, an operator's operands)."""
    if isinstance(node, Call):
        return [*node.args, *([node.where] if node.where is not None else [])]
    if isinstance(node, BinOp):
        return [node.left, node.right]
    if isinstance(node, Unary | IsNull):
        return [node.operand]
    if isinstance(node, InList):
        return [node.operand, *node.items]
    return []


def walk(node: Node):  # type: ignore[no-untyped-def]
    """Yield ``node`` and every node below it, depth first."""
    yield node
    if isinstance(node, Call):
        for a in node.args:
            yield from walk(a)
        if node.where is not None:
            yield from walk(node.where)
    elif isinstance(node, BinOp):
        yield from walk(node.left)
        yield from walk(node.right)
    elif isinstance(node, Unary | InList | IsNull):
        yield from walk(node.operand)
        if isinstance(node, InList):
            for i in node.items:
                yield from walk(i)
