"""The formula grammar's words and binding powers, shared by the parser and the printer (no other imports)."""

from __future__ import annotations

KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false", "where"}
COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
#: words that make a whole number a calendar offset (``previous(x, 1 month)``), singular or plural
UNITS = {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year"}
UNITS |= {f"{unit}s": unit for unit in list(UNITS)}

_INFIX = {
    "or": 10,
    "and": 20,
    "==": 40,
    "!=": 40,
    "<": 40,
    "<=": 40,
    ">": 40,
    ">=": 40,
    "in": 40,
    "is": 40,
    "not": 40,
    "+": 50,
    "-": 50,
    "*": 60,
    "/": 60,
    "%": 60,
}
_PREFIX_NOT = 30
_PREFIX_NEG = 70
