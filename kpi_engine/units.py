"""Values as people read them, by unit."""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Callable, Iterable

from .errors import ErrorCollector, Location, did_you_mean
from .model import Money, Unit

Shown = Unit | Money  # what a value is written in: a unit, or a currency KPI's money


def format_value(value: float | None, unit: Shown, extra: int = 0) -> str:
    """A value as a person reads it: 2.31%, 1,234.50, £1,234.50, 1,234, 12.5 min (``extra`` more digits when
    asked)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(unit, Money):
        return _money(value, unit, extra)
    if unit is Unit.PERCENT:
        return f"{value:,.{2 + extra}f}%"
    if unit is Unit.CURRENCY:
        return f"{value:,.{2 + extra}f}"
    if unit is Unit.COUNT:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.{2 + extra}f}"
    suffix = {Unit.MINUTES: " min", Unit.SECONDS: " s", Unit.HOURS: " h", Unit.DAYS: " d"}.get(unit, "")
    return f"{value:,.{3 + extra}g}{suffix}" if abs(value) < 1 else f"{value:,.{2 + extra}f}{suffix}"


def formatter(
    values: Iterable[float | None], unit: Shown, written: Iterable[float | None] = ()
) -> Callable[[float | None], str]:
    """``format_value`` with enough decimals that values which differ read differently (0.0175% and
    0.0190%, not 0.02% and 0.02%), and that numbers ``written`` in the spec (a target of 0.835) print as
    written; values equal within 1e-9 relative may still print alike."""
    literal = [float(v) for v in written if v is not None and math.isfinite(v)]
    values = [*values, *literal]
    present = sorted({float(v) for v in values if v is not None and math.isfinite(v)})
    distinct = [(a, b) for a, b in zip(present, present[1:], strict=False) if not math.isclose(a, b, rel_tol=1e-9)]
    extra = max((_short_decimals(v, unit) for v in literal), default=0)
    while extra < 12 and any(format_value(a, unit, extra) == format_value(b, unit, extra) for a, b in distinct):
        extra += 1
    return lambda v: format_value(v, unit, extra)


def _short_decimals(value: float, unit: Shown) -> int:
    """The extra decimals a number written in the spec (a target of 0.835, a tolerance of 0.125) needs to
    print as written: 0.835 has no exact binary form and would round to 0.83."""
    money = isinstance(unit, Money) or unit in (Unit.PERCENT, Unit.CURRENCY)
    if not money and not (unit is Unit.COUNT and not float(value).is_integer()):
        return 0
    for extra in range(4):
        if abs(round(value, 2 + extra) - value) <= 1e-9 * max(1.0, abs(value)):
            return extra
    return 0


def format_date(day: dt.date) -> str:
    """12 May 2026: unambiguous in every locale."""
    return f"{day.day} {day.strftime('%b %Y')}"


def format_change(change: float | None, unit: Shown) -> str:
    """A difference between two values: +0.19 pp for percentages, -1,234.50 for money, +12 for counts; a
    change too small for the usual digits gets more (+0.004 pp, never +0.00 pp for a real change)."""
    if change is None:
        return "–"
    if abs(change) < 1e-9:  # float summation noise, not a change
        change = 0.0
    extra = 0
    while extra < 8 and change != 0 and not re.search(r"[1-9]", format_value(abs(change), unit, extra)):
        extra += 1
    text = format_value(abs(change), unit, extra)
    if unit is Unit.PERCENT:
        text = text.removesuffix("%") + " pp"
    return ("+" if change >= 0 else "-") + text


def format_move(value: float, before: float, unit: Shown) -> str:
    """A change as the unit calls for: points for percentages (+0.19 pp), else relative (-5.3%); against 0 a
    relative change is undefined, so it is the difference (+12)."""
    if unit is Unit.PERCENT or before == 0:
        return format_change(value - before, unit)
    rel = 100 * (value - before) / abs(before)
    digits = 1
    while digits < 6 and rel != 0 and f"{abs(rel):.{digits}f}".strip("0.") == "":
        digits += 1
    return f"{rel:+.{digits}f}%"


@functools.lru_cache(maxsize=64)
def _money_pattern(money: Money, extra: int) -> str:
    """The locale's currency pattern with the currency's decimals (0 for JPY, 2 for GBP) plus ``extra``."""
    from babel import Locale
    from babel.numbers import get_currency_precision

    digits = get_currency_precision(money.code) + extra
    pattern = Locale.parse(money.locale).currency_formats["standard"].pattern
    return re.sub(r"0(\.0+)?", "0" + ("." + "0" * digits if digits else ""), pattern)


def _money(value: float, money: Money, extra: int) -> str:
    from babel.numbers import format_currency  # (babel loads only when a spec names a currency)

    pattern = _money_pattern(money, extra)
    return format_currency(value, money.code, pattern, locale=money.locale, currency_digits=False)


def money_of(raw: object, loc: Location | None, errors: ErrorCollector) -> Money | None:
    """``currency:`` as written (``GBP``, or ``{code: EUR, locale: de_DE}``), checked against ISO 4217 and the
    CLDR locales; None (with the error added) when either is unknown."""
    from babel import Locale, UnknownLocaleError
    from babel.localedata import locale_identifiers
    from babel.numbers import list_currencies

    written = {"code": raw} if isinstance(raw, str) else dict(raw)  # type: ignore[call-overload]
    code, locale = written["code"], str(written.get("locale", "en"))
    locale = locale.replace("-", "_")
    if code not in list_currencies():
        codes = sorted(list_currencies())
        swapped = [c for c in codes if sorted(c) == sorted(str(code).upper())]  # GPB: letters swapped, GBP
        hint = did_you_mean(code, swapped) if swapped else did_you_mean(code, codes)
        errors.add(f"unknown currency `{code}`", loc, expected="an ISO 4217 code such as GBP, EUR or USD", hint=hint)
        return None
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError):
        hint = did_you_mean(locale, locale_identifiers())
        expected = "a CLDR locale such as en, en_GB, de_DE or fr_FR"
        errors.add(f"unknown locale `{locale}`", loc, expected=expected, hint=hint)
        return None
    return Money(code, locale)
