"""Unusual periods in a KPI's series, judged against a robust baseline that respects its pattern.

For period ``t`` the baseline is the series' level (the median of the ``level`` periods before ``t``) plus,
for daily series, its weekday's usual offset from that level (the median over the 8 same weekdays before).
What the baseline leaves over the ``scale`` periods before ``t`` gives the scale: 1.4826 times their median
absolute deviation (the standard deviation of normal noise, unmoved by earlier spikes). Period ``t`` is
unusual when it sits ``threshold`` scales or more from its baseline. Medians everywhere: a Black Friday or an
outage in the history neither bends the baseline nor widens the scale, and a yearly pattern moves the level
with it. Every judgement reads only periods before ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class Pattern:
    """How a grain's baseline is built: the pattern's length (7 weekdays, or 1: none), and how many periods
    the level and the scale are read from."""

    season: int
    level: int
    scale: int
    threshold: float  # the default: about one false alert a quarter on the demo (docs/delivery.md)

    @property
    def history(self) -> int:
        return max(self.level, self.scale) + (8 * self.season if self.season > 1 else 0)


PATTERNS = {
    "day": Pattern(season=7, level=28, scale=56, threshold=4.0),
    "week": Pattern(season=1, level=8, scale=26, threshold=1.8),
    "month": Pattern(season=1, level=6, scale=12, threshold=1.8),
}


@dataclass(frozen=True)
class Verdict:
    """Period ``index`` against its baseline: robust z-score, expected value and scale (None: too little history)."""

    index: int
    value: float
    expected: float | None
    scale: float | None
    z: float | None

    def unusual(self, threshold: float) -> bool:
        return self.z is not None and abs(self.z) >= threshold


def _median_before(values: np.ndarray, t: int, n: int) -> float:
    window = values[max(0, t - n) : t]
    window = window[~np.isnan(window)]
    return float(np.median(window)) if len(window) >= max(2, n // 2) else float("nan")


def baselines(values: np.ndarray, pattern: Pattern) -> np.ndarray:
    """Each period's expected value from the periods before it (NaN where there are too few)."""
    levels = np.array([_median_before(values, t, pattern.level) for t in range(len(values))])
    if pattern.season == 1:
        return levels
    offsets = values - levels
    out = np.full(len(values), np.nan)
    for t in range(len(values)):
        same = offsets[[t - pattern.season * k for k in range(1, 9) if t - pattern.season * k >= 0]]
        same = same[~np.isnan(same)]
        if len(same) >= 4 and not np.isnan(levels[t]):
            out[t] = levels[t] + np.median(same)
    return out


def judge(values: np.ndarray, t: int, pattern: Pattern, expected: np.ndarray | None = None) -> Verdict:
    """Period ``t`` of ``values`` (NaN where a period has no data) against the periods before it."""
    value = float(values[t])
    expected = baselines(values[: t + 1].astype(float), pattern) if expected is None else expected
    base = float(expected[t])
    if np.isnan(value) or np.isnan(base):
        return Verdict(t, value, None, None, None)
    lo = max(0, t - pattern.scale)
    left = values[lo:t] - expected[lo:t]
    left = left[~np.isnan(left)]
    if len(left) < pattern.scale // 2:
        return Verdict(t, value, base, None, None)
    deviation = np.abs(left - np.median(left))
    scale = MAD_TO_SD * float(np.median(deviation)) or 1.2533 * float(np.mean(deviation))
    if scale == 0:  # a flat series: any move is unusual
        return Verdict(t, value, base, None, 0.0 if value == base else float(np.sign(value - base)) * np.inf)
    return Verdict(t, value, base, scale, (value - base) / scale)
