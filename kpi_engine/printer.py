"""Formula trees back to text: the shortest source that parses to the same tree (round trips are tested)."""

from __future__ import annotations

import json
import re

from .grammar import _INFIX, _PREFIX_NEG, _PREFIX_NOT, KEYWORDS
from .nodes import BinOp, Bool, Call, Column, InList, IsNull, Name, Node, Null, Number, Offset, String, Unary

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _name(name: str) -> str:
    return name if _IDENT_RE.match(name) and name not in KEYWORDS else f"`{name}`"


def _prec(node: Node) -> int:
    if isinstance(node, BinOp):
        return _INFIX[node.op]
    if isinstance(node, InList | IsNull):
        return 40
    if isinstance(node, Unary):
        return _PREFIX_NOT if node.op == "not" else _PREFIX_NEG
    return 100


def to_source(node: Node) -> str:
    """Print an AST back to formula text, with only the parentheses precedence needs."""
    return _source(node, tail=True)


def _source(node: Node, tail: bool) -> str:
    """``tail``: nothing follows this text in its enclosing brackets, so a trailing low-precedence prefix
    operator (``- not x``) needs no parentheses; each pair would add a nesting level the parser counts."""

    def brackets(child: Node, looser: bool, child_tail: bool) -> bool:
        """A child that binds looser than its place needs brackets, except a prefix operator with nothing after it."""
        return looser and not (child_tail and isinstance(child, Unary))

    def wrap(child: Node, looser: bool, child_tail: bool) -> str:
        if brackets(child, looser, child_tail):
            return f"({_source(child, True)})"
        return _source(child, child_tail)

    if isinstance(node, Offset):
        return f"{node.n} {node.unit}{'' if node.n == 1 else 's'}"
    if isinstance(node, Number):
        return repr(node.value)
    if isinstance(node, String):
        return json.dumps(node.value, ensure_ascii=False)
    if isinstance(node, Bool):
        return "true" if node.value else "false"
    if isinstance(node, Null):
        return "null"
    if isinstance(node, Name):
        return _name(node.name)
    if isinstance(node, Column):
        return f"{_name(node.source)}.{_name(node.column)}"
    if isinstance(node, Call):
        args = ", ".join(_source(a, True) for a in node.args)
        if node.per is not None:
            args += f" per {_name(node.per)}"
        if node.where is not None:
            args += f" where {_source(node.where, True)}"
        return f"{_name(node.func)}({args})"
    if isinstance(node, BinOp):
        p = _prec(node)
        cmp = p == 40
        left = wrap(node.left, _prec(node.left) < p or (cmp and _prec(node.left) <= p), False)
        return f"{left} {node.op} {wrap(node.right, _prec(node.right) <= p, tail)}"
    if isinstance(node, Unary):
        if node.op == "not":
            return f"not {wrap(node.operand, _prec(node.operand) < _PREFIX_NOT, tail)}"
        operand, looser = node.operand, _prec(node.operand) < _PREFIX_NEG
        signed = isinstance(operand, Unary) or (isinstance(operand, Number) and operand.value < 0)
        gap = " " if signed and not brackets(operand, looser, tail) else ""  # `- -x`, `- not x`: no `--`
        return f"-{gap}{wrap(operand, looser, tail)}"
    if isinstance(node, InList):
        items = ", ".join(_source(i, True) for i in node.items)
        operand = wrap(node.operand, _prec(node.operand) <= 40, False)
        return f"{operand} {'not in' if node.negated else 'in'} [{items}]"
    if isinstance(node, IsNull):
        return f"{wrap(node.operand, _prec(node.operand) <= 40, False)} is {'not ' if node.negated else ''}null"
    raise TypeError(f"not a formula node: {node!r}")
