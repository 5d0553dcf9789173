"""The formula language: tokenizer and Pratt parser into a frozen AST (``nodes``); ``printer`` writes it back.

Pure Python on purpose: no polars here, and nothing is ever evaluated as code.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .grammar import _INFIX, _PREFIX_NEG, _PREFIX_NOT, COMPARISONS, KEYWORDS, UNITS
from .nodes import (
    BinOp,
    Bool,
    Call,
    Column,
    InList,
    IsNull,
    Name,
    Node,
    Null,
    Number,
    Offset,
    String,
    Unary,
    children,
    walk,
)
from .printer import to_source

MAX_TOKENS = 4096
MAX_DEPTH = 64

__all__ = [
    "BinOp",
    "Bool",
    "Call",
    "Column",
    "InList",
    "IsNull",
    "Name",
    "Node",
    "Null",
    "Number",
    "Offset",
    "String",
    "Unary",
    "FormulaSyntaxError",
    "parse",
    "to_source",
    "tokenize",
    "walk",
]


class FormulaSyntaxError(Exception):
    """A parse error with the [start, end) span of the offending text."""

    def __init__(self, message: str, span: tuple[int, int], hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.span, self.hint = message, span, hint


# --- tokens ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # number string ident op kw eof
    text: str
    start: int
    end: int
    value: object = None


MAX_LITERAL = 1e300  # beyond this a literal is a typo or an attack, and float arithmetic overflows
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quoted>`[^`]*`)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|[-+*/%()\[\],.<>])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", '"': '"', "'": "'"}


def _unescape(body: str, start: int) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise FormulaSyntaxError(f"unknown escape `\\{nxt}` in string", (start + i + 1, start + i + 3))
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    """Split a formula into tokens; an unexpected character is an error pointing at it."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            ch = text[pos]
            hint = None
            if ch == "=":
                hint = "compare with `==`"
            elif ch in "&|!":
                hint = "use `and`, `or`, `not`"
            elif ch in "\"'":
                hint = "close the string with a matching quote"
            elif ch.isdigit() or ch.isnumeric():
                hint = "write numbers with the ASCII digits 0-9"
            raise FormulaSyntaxError(f"unexpected character `{ch}`", (pos, pos + 1), hint)
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "number":
            value: object = float(raw) if any(c in raw for c in ".eE") else int(raw)
            if not math.isfinite(float(raw)) or abs(float(raw)) > MAX_LITERAL:
                raise FormulaSyntaxError(
                    "number too large", (pos, m.end()), f"numbers in formulas are at most {MAX_LITERAL:g} in size"
                )
            tokens.append(Token("number", raw, pos, m.end(), value))
        elif kind == "ident":
            tokens.append(Token("kw" if raw in KEYWORDS else "ident", raw, pos, m.end(), raw))
        elif kind == "quoted":
            if len(raw) == 2:
                raise FormulaSyntaxError("empty quoted name", (pos, m.end()))
            tokens.append(Token("ident", raw, pos, m.end(), raw[1:-1]))
        elif kind == "string":
            tokens.append(Token("string", raw, pos, m.end(), _unescape(raw[1:-1], pos + 1)))
        elif kind == "op":
            tokens.append(Token("op", raw, pos, m.end(), raw))
        pos = m.end()
        if len(tokens) > MAX_TOKENS:
            raise FormulaSyntaxError(
                f"formula is longer than {MAX_TOKENS} tokens",
                (pos, pos),
                "split it into several KPIs that reference each other",
            )
    tokens.append(Token("eof", "", len(text), len(text)))
    return tokens


# --- parser ----------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str, what: str | None = None) -> Token:
        if self.tok.text != text or self.tok.kind not in ("op", "kw"):
            raise FormulaSyntaxError(
                f"expected `{text}`{' ' + what if what else ''}, found {self._describe(self.tok)}",
                (self.tok.start, max(self.tok.end, self.tok.start + 1)),
            )
        return self.advance()

    @staticmethod
    def _describe(tok: Token) -> str:
        return "end of formula" if tok.kind == "eof" else f"`{tok.text}`"

    def parse(self) -> Node:
        node = self.expr(0)
        if self.tok.kind != "eof":
            hint = (
                "an operator is missing between two values" if self.tok.kind in ("ident", "number", "string") else None
            )
            if self.tok.text == "where":
                hint = '`where` goes inside the aggregate\'s parentheses: sum(ads.cost where channel == "search")'
            raise FormulaSyntaxError(f"unexpected {self._describe(self.tok)}", (self.tok.start, self.tok.end), hint)
        return node

    def expr(self, min_bp: int) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaSyntaxError(
                f"formula is nested deeper than {MAX_DEPTH} levels", (self.tok.start, self.tok.end)
            )
        left = self.prefix()
        while True:
            tok = self.tok
            op = tok.text if tok.kind in ("op", "kw") else None
            bp = _INFIX.get(op or "")
            if bp is None or bp <= min_bp:
                break
            if op == "not" and self.tokens[self.i + 1].text != "in":
                break
            left = self.infix(left, op or "", bp)
        self.depth -= 1
        return left

    def infix(self, left: Node, op: str, bp: int) -> Node:
        start = left.span[0]
        self.advance()
        if op == "is":
            negated = False
            if self.tok.text == "not":
                self.advance()
                negated = True
            end = self.expect("null", "after `is`" if not negated else "after `is not`").end
            node: Node = IsNull(left, negated, span=(start, end))
        elif op in ("in", "not"):
            negated = op == "not"
            if negated:
                self.expect("in")
            items, end = self.list_literal()
            node = InList(left, items, negated, span=(start, end))
        else:
            right = self.expr(bp)
            node = BinOp(op, left, right, span=(start, right.span[1]))
        if bp == 40 and self.tok.text in (*COMPARISONS, "in", "is") and self.tok.kind in ("op", "kw"):
            raise FormulaSyntaxError(
                "comparisons cannot be chained", (self.tok.start, self.tok.end), "join them with `and`: a < b and b < c"
            )
        return node

    def list_literal(self) -> tuple[tuple[Node, ...], int]:
        self.expect("[", "to start a list after `in`")
        items: list[Node] = []
        while self.tok.text != "]":
            items.append(self.expr(0))
            if self.tok.text == ",":
                self.advance()
            elif self.tok.text != "]":
                raise FormulaSyntaxError(
                    f"expected `,` or `]` in list, found {self._describe(self.tok)}",
                    (self.tok.start, max(self.tok.end, self.tok.start + 1)),
                )
        end = self.advance().end
        return tuple(items), end

    def prefix(self) -> Node:
        tok = self.advance()
        span = (tok.start, tok.end)
        if tok.kind == "number":
            if self.tok.kind == "ident" and self.tok.text in UNITS and isinstance(tok.value, int):
                unit = self.advance()  # `1 month`: a calendar offset (only previous() accepts one)
                return Offset(tok.value, UNITS[unit.text], span=(tok.start, unit.end))
            return Number(tok.value, span=span)  # type: ignore[arg-type]
        if tok.kind == "string":
            return String(str(tok.value), span=span)
        if tok.kind == "kw":
            if tok.text in ("true", "false"):
                return Bool(tok.text == "true", span=span)
            if tok.text == "null":
                return Null(span=span)
            if tok.text == "not":
                operand = self.expr(_PREFIX_NOT)
                return Unary("not", operand, span=(tok.start, operand.span[1]))
            raise FormulaSyntaxError(
                f"unexpected keyword `{tok.text}`",
                span,
                '`where` goes inside an aggregate: sum(ads.cost where channel == "search")'
                if tok.text == "where"
                else None,
            )
        if tok.kind == "op":
            if tok.text == "-":
                operand = self.expr(_PREFIX_NEG)
                return Unary("-", operand, span=(tok.start, operand.span[1]))
            if tok.text == "+":
                return self.expr(_PREFIX_NEG)
            if tok.text == "(":
                inner = self.expr(0)
                close = self.expect(")", "to close `(`")
                return _respan(inner, (tok.start, close.end))
            raise FormulaSyntaxError(
                f"unexpected `{tok.text}`", span, "a value or `(` is missing" if tok.text in ")],*/%<>=" else None
            )
        if tok.kind == "ident":
            name = str(tok.value)
            if self.tok.text == "(" and self.tok.kind == "op":
                return self.call(name, tok)
            if self.tok.text == "." and self.tok.kind == "op":
                self.advance()
                col = self.advance()
                if col.kind not in ("ident", "kw"):
                    raise FormulaSyntaxError(
                        f"expected a column name after `{name}.`", (col.start, max(col.end, col.start + 1))
                    )
                return Column(name, str(col.value), span=(tok.start, col.end))
            return Name(name, span=span)
        raise FormulaSyntaxError(
            "formula ends too early" if tok.kind == "eof" else f"unexpected `{tok.text}`",
            (tok.start, max(tok.end, tok.start + 1)),
        )

    def call(self, name: str, tok: Token) -> Node:
        self.advance()  # (
        args: list[Node] = []
        where: Node | None = None
        per: str | None = None
        while self.tok.text != ")" or self.tok.kind != "op":
            if self.tok.kind == "eof":
                raise FormulaSyntaxError(f"`{name}(` is not closed", (tok.start, self.tok.start), "add `)`")
            args.append(self.expr(0))
            if self.tok.text == "per" and self.tok.kind == "ident" and per is None:  # a word only here
                self.advance()
                entity = self.advance()
                if entity.kind != "ident":
                    raise FormulaSyntaxError(
                        "expected an entity name after `per`, e.g. mean(count(orders) per customer)",
                        (entity.start, max(entity.end, entity.start + 1)),
                    )
                per = str(entity.value)
            if self.tok.text == "where" and self.tok.kind == "kw":
                self.advance()
                where = self.expr(0)
                if self.tok.text != ")":
                    raise FormulaSyntaxError(
                        f"expected `)` after the `where` filter, found {self._describe(self.tok)}",
                        (self.tok.start, max(self.tok.end, self.tok.start + 1)),
                    )
                break
            if self.tok.text == ",":
                self.advance()
            elif self.tok.kind == "eof":
                raise FormulaSyntaxError(f"`{name}(` is not closed", (tok.start, self.tok.start), "add `)`")
            elif self.tok.text != ")":
                raise FormulaSyntaxError(
                    f"expected `,` or `)` in call to `{name}`, found {self._describe(self.tok)}",
                    (self.tok.start, max(self.tok.end, self.tok.start + 1)),
                )
        close = self.advance()
        return Call(name, tuple(args), where, per, span=(tok.start, close.end))


def _respan(node: Node, span: tuple[int, int]) -> Node:
    import dataclasses

    return dataclasses.replace(node, span=span)


MAX_AST_DEPTH = 200


def parse(text: str) -> Node:
    """Parse a formula into its AST; raises FormulaSyntaxError with the span of the problem."""
    if not text.strip():
        raise FormulaSyntaxError("formula is empty", (0, 0))
    tree = _Parser(text).parse()
    stack = [(tree, 1)]
    while stack:  # iterative: a long chain like a + b + c + ... is deep even without parentheses
        node, depth = stack.pop()
        if depth > MAX_AST_DEPTH:
            raise FormulaSyntaxError(
                f"formula has more than {MAX_AST_DEPTH} chained operations",
                node.span,
                "split it into several KPIs that reference each other",
            )
        stack.extend((child, depth + 1) for child in children(node))
    return tree
