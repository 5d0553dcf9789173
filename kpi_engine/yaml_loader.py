"""Safe YAML loading that keeps every value's line and column, refuses duplicate keys and bombs."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from .errors import Diagnostic, KpiError, Location

Path_ = tuple[str | int, ...]

MAX_NODES = 200_000  # alias expansion beyond this is an attack or a mistake
MAX_DEPTH = 64
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")  # what YAML refuses, found with its place
MAX_BYTES = 5_000_000
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: composing is ~10x faster


@dataclass
class Positions:
    """Line/column (1-based) of each value and each mapping key, by path from the document root."""

    file: str
    values: dict[Path_, tuple[int, int]]
    keys: dict[Path_, tuple[int, int]]
    styles: dict[Path_, str | None]

    def location(self, path: Path_, *, key: bool = False) -> Location:
        """The location of the value at ``path`` (or its key), falling back to the nearest parent."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe and probe not in table:
            probe = probe[:-1]
        line, col = table.get(probe, self.values.get(probe, (None, None)))  # type: ignore[arg-type]
        return Location(file=self.file, line=line, column=col, field=dotted(path) or None)


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_FORMULA_KEY = re.compile(r"(?:^|(?<=[{,\s]))formula:[ \t]+")
_FLOW_CHARS = set("[]{},")


def _protect_formulas(text: str) -> tuple[str, dict[str, str]]:
    """Let unquoted formulas hold brackets and commas even inside a flow mapping ``{...}``.

    YAML ends a plain value at `,` `]` or `}` in flow context, so `{formula: x in ["a", "b"]}` would not
    parse. Each such formula is swapped for a placeholder of the same length (so every line and column
    stays true) and put back after parsing.
    """
    out, swaps, pos = [], {}, 0
    for m in _FORMULA_KEY.finditer(text):
        start = m.end()
        if start < pos or start >= len(text) or text[start] in "\"'|>&*!\n":
            continue
        end, stack, quote, broken = start, [], "", False
        while end < len(text) and text[end] != "\n":
            ch = text[end]
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "\"'":
                quote = ch
            elif ch in "([{":
                stack.append(")]}"["([{".index(ch)])
            elif ch in ")]}":
                if not stack:
                    break
                if stack.pop() != ch:
                    broken = True
                    break
            elif ch == "," and not stack or ch == "#" and text[end - 1] in " \t" and not stack:
                break
            end += 1
        raw = text[start:end].rstrip()
        if broken or stack or quote:  # unbalanced: leave it to YAML, and then to the formula parser's error
            continue
        if not _FLOW_CHARS & set(raw) or len(raw) < 3:
            continue
        key = f"~{len(swaps)}~"
        key = key + "~" * (len(raw) - len(key))
        if len(key) != len(raw):
            continue
        swaps[key] = raw
        out.append(text[pos:start] + key)
        pos = start + len(raw)
    out.append(text[pos:])
    return "".join(out), swaps


class _Builder:
    def __init__(self, file: str, swaps: dict[str, str] | None = None) -> None:
        self.file = file
        self.swaps = swaps or {}
        self.constructor = SafeConstructor()
        self.expanded = 0  # nodes built again because an alias repeats them
        self.seen: set[int] = set()
        self.pos = Positions(file, {}, {}, {})

    def _fail(self, node: yaml.Node, message: str, hint: str | None = None) -> KpiError:
        mark = node.start_mark
        return KpiError(Diagnostic(message, Location(self.file, mark.line + 1, mark.column + 1), hint=hint))

    def build(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        if id(node) in self.seen:  # only alias expansion counts: a large plain file is not an attack
            self.expanded += 1
            if self.expanded > MAX_NODES:
                raise self._fail(
                    node,
                    f"YAML aliases expand to more than {MAX_NODES:,} values",
                    hint="YAML aliases (*name) that repeat large anchors are refused",
                )
        else:
            self.seen.add(id(node))
        if depth > MAX_DEPTH:
            raise self._fail(node, f"nesting deeper than {MAX_DEPTH} levels")
        self.pos.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            if node.tag not in ("tag:yaml.org,2002:map",):
                raise self._fail(node, f"YAML tag `{node.tag}` is not allowed")
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self._fail(
                        key_node,
                        "YAML merge keys (<<) are not supported",
                        hint="write the fields out; shared values can live in `params`",
                    )
                key = self.build_scalar(key_node)
                if not isinstance(key, str):
                    key = str(key)
                if key in out:
                    first = self.pos.keys[path + (key,)]
                    raise self._fail(
                        key_node, f"duplicate key `{key}`", hint=f"first defined at line {first[0]}; keep one of them"
                    )
                self.pos.keys[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self.build(value_node, path + (key,), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise self._fail(node, f"YAML tag `{node.tag}` is not allowed")
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        self.pos.styles[path] = node.style
        return self.build_scalar(node)

    def build_scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self._fail(node, "a mapping key must be a plain value")
        try:
            value = self.constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            raise self._fail(
                node,
                f"YAML tag `{node.tag}` is not allowed",
                hint="only plain YAML values (strings, numbers, booleans, dates, lists, maps)",
            ) from exc
        except ValueError as exc:
            if node.tag == "tag:yaml.org,2002:timestamp":
                raise KpiError(
                    Diagnostic(
                        f"invalid date `{node.value}`",
                        Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1),
                        expected="a date YYYY-MM-DD",
                        hint=f"{exc}",
                    )
                ) from None
            raise self._fail(node, f"invalid value `{node.value}`: {exc}") from exc
        if isinstance(value, str) and value in self.swaps:
            return self.swaps[value]
        if isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        return value


def load_yaml(text: str, file: str) -> tuple[Any, Positions]:
    """Parse one YAML document safely; dates become ISO strings so that the JSON Schema can check them."""
    if len(text) > MAX_BYTES:
        raise KpiError(Diagnostic(f"spec file is larger than {MAX_BYTES // 1_000_000} MB", Location(file)))
    if "\t" in text:
        for lineno, line in enumerate(text.splitlines(), 1):
            indent = line[: len(line) - len(line.lstrip())]
            if "\t" in indent:
                raise KpiError(
                    Diagnostic(
                        "tab character in indentation",
                        Location(file, lineno, indent.index("\t") + 1),
                        hint="YAML indents with spaces only; replace the tab with spaces",
                    )
                )
    bad = _CONTROL.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        col = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise KpiError(
            Diagnostic(
                f"control character U+{ord(bad.group()):04X} is not allowed in a spec file",
                Location(file, line, col),
                hint="the file may be binary or damaged: remove the character, or re-save the file as text",
            )
        )
    text, swaps = _protect_formulas(text)
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = exc.problem or exc.context or "invalid YAML"
        raise KpiError(
            Diagnostic(f"YAML syntax error: {problem}", Location(file, line, col), hint=_syntax_hint(problem))
        ) from None
    except yaml.YAMLError as exc:
        raise KpiError(Diagnostic(f"YAML syntax error: {exc}", Location(file))) from None
    builder = _Builder(file, swaps)
    if node is None:
        return None, builder.pos
    return builder.build(node, (), 0), builder.pos


def _syntax_hint(problem: str) -> str | None:
    if "mapping values are not allowed" in problem:
        return "a value containing `: ` must be quoted, or the indentation is off"
    if "found character '\\t'" in problem:
        return "YAML indents with spaces only"
    if "could not find expected ':'" in problem:
        return "a key is missing its `:`, or a quote is not closed"
    return None
