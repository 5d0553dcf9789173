"""One error type for everything a user can get wrong, rendered like a compiler diagnostic."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file position and/or a field path, optionally a span inside a formula."""

    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    field: str | None = None  # dotted path such as ``kpis.ctr.formula``
    formula: str | None = None  # the formula text, to underline ``span`` in it
    span: tuple[int, int] | None = None  # [start, end) offsets into ``formula``

    def prefix(self) -> str:
        parts = [p for p in (self.file, self.line, self.column) if p is not None]
        return ":".join(str(p) for p in parts)


@dataclass(frozen=True)
class Diagnostic:
    """One problem: what was found, where, what was expected and how to fix it."""

    message: str
    location: Location = field(default_factory=Location)
    expected: str | None = None
    hint: str | None = None

    def render(self) -> str:
        loc = self.location
        head = loc.prefix()
        lines = [f"{head}: {self.message}" if head else self.message]
        if loc.field:
            lines[0] += f" (at `{loc.field}`)"
        if loc.formula is not None:
            lines.append(f"    formula: {loc.formula}")
            if loc.span is not None:
                start, end = loc.span
                lines.append("             " + " " * start + "^" * max(1, end - start))
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


MAX_SHOWN = 8


class KpiError(Exception):
    """Bad input (spec, formula or data). Carries one or more diagnostics; the CLI exits 2 on it."""

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic] | str, **kwargs: object) -> None:
        if isinstance(diagnostics, str):
            diagnostics = Diagnostic(diagnostics, **kwargs)  # type: ignore[arg-type]
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__(self.render())

    def render(self, limit: int = MAX_SHOWN) -> str:
        """Every diagnostic up to ``limit`` (one screen), then how many more there are."""
        shown = self.diagnostics[:limit]
        body = "\n\n".join(d.render() for d in shown)
        hidden = len(self.diagnostics) - len(shown)
        if hidden:
            body += f"\n\n... and {hidden} more"
        if len(self.diagnostics) > 1:
            body += f"\n\n{len(self.diagnostics)} errors"
        return body


class ErrorCollector:
    """Collects diagnostics so that validation reports every problem, not only the first."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def add(self, message: str, location: Location | None = None, **kwargs: str | None) -> None:
        self.diagnostics.append(Diagnostic(message, location or Location(), **kwargs))

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics.extend(diagnostics)

    def __bool__(self) -> bool:
        return bool(self.diagnostics)

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise KpiError(self.diagnostics)


def did_you_mean(name: str, candidates: Iterable[str], what: str = "") -> str | None:
    """A hint naming the closest candidates to a misspelled ``name`` (and listing them when few)."""
    options = sorted(set(candidates))
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    listing = ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
    label = f" ({what}: {listing})" if what and options else ""
    if close:
        quoted = " or ".join(f"`{c}`" for c in close)
        return f"did you mean {quoted}?{label}"
    if what and options:
        return f"{what}: {listing}"
    return None
