"""The demo report's layout in headless Chromium at phone, laptop and desktop widths: nothing wider than the
viewport (a wide table scrolls inside its own box), and the whole scorecard visible from 1,100 px."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
ARTIFACTS = Path(os.environ.get("KPI_TEST_ARTIFACTS") or tempfile.mkdtemp(prefix="kpi-artifacts-"))
WIDTHS = (390, 1100, 1440)
# each width is an iframe of the report (Chromium's headless window is at least 500 px wide); after load,
# the page notes each frame's page width, its viewport width and its scorecard's scrolled and shown widths
PROBE = """
window.addEventListener('load', () => {
  const frames = [...document.querySelectorAll('iframe')];
  const drawn = doc => doc.querySelectorAll('.vega-chart').length === doc.querySelectorAll('.vega-chart[data-drawn] svg').length;
  const tick = setInterval(() => {  // measured once every chart is drawn (the runtime draws them after load)
    if (!frames.every(f => drawn(f.contentDocument))) return;
    clearInterval(tick);
    for (const f of frames) {
      const doc = f.contentDocument, score = doc.querySelector('.scorecard').parentElement;
      document.body.setAttribute('data-' + f.id, [doc.documentElement.scrollWidth, f.contentWindow.innerWidth,
        score.scrollWidth, score.clientWidth, doc.querySelectorAll('.vega-chart svg').length].join(' '));
    }
  }, 50);
});
"""


def chromium() -> str:
    from kpi_reports.writers import chromium as find

    browser = find()
    if browser is None:
        pytest.fail("these tests need Chromium: apt-get install chromium (CI installs it)", pytrace=False)
    return browser


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("layout") / "demo.html"
    run = subprocess.run([sys.executable, "-m", "kpi_engine", "report", str(ROOT / "kpi_specs"), "--as-of", "2026-06-30", "-o", str(out)],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return out


def frames_page(report: Path, widths: tuple[int, ...], height: int = 900) -> Path:
    text = html.escape(report.read_text(), quote=True)
    frames = "".join(
        f'<iframe id="w{w}" style="width:{w}px;height:{height}px;border:0;display:block" srcdoc="{text}"></iframe>'
        for w in widths
    )
    page = report.with_name(f"frames-{'-'.join(map(str, widths))}.html")
    page.write_text(f"<!DOCTYPE html><html><body style='margin:0'>{frames}<script>{PROBE}</script></body></html>")
    return page


def browse(page: Path, *flags: str) -> subprocess.CompletedProcess:
    from kpi_reports.writers import CHROMIUM_FLAGS

    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={page.parent / 'profile'}", "--hide-scrollbars", *flags, page.as_uri()],
                          capture_output=True, text=True, timeout=180)  # fmt: skip


def test_nothing_is_wider_than_the_viewport(demo_report: Path):
    run = browse(
        frames_page(demo_report, WIDTHS), "--window-size=1600,1000", "--virtual-time-budget=60000", "--dump-dom"
    )
    assert run.returncode == 0, run.stderr[-1500:]
    seen = {int(w): list(map(int, v.split())) for w, v in re.findall(r'data-w(\d+)="([^"]*)"', run.stdout)}
    assert set(seen) == set(WIDTHS), run.stdout[-500:]
    charts = demo_report.read_text().count('class="chart vega-chart"')
    for width, (page, viewport, score, shown, drawn) in seen.items():
        assert viewport == width and drawn == charts > 40
        assert page == width, f"at {width} px the page is {page} px wide: something does not fit"
        if width >= 1100:
            assert score == shown, f"at {width} px the scorecard needs {score} px and shows {shown}: columns hidden"


def test_screenshots_at_each_width(demo_report: Path):
    """Kept in $KPI_TEST_ARTIFACTS (or a printed temp folder) for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        shot = ARTIFACTS / f"report-{width}.png"
        shot.unlink(missing_ok=True)
        page = frames_page(demo_report, (width,), height=1800)
        run = browse(
            page, f"--window-size={max(width, 500)},1800", "--virtual-time-budget=30000", f"--screenshot={shot}"
        )
        assert run.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", run.stderr[-1500:]
    print(f"layout screenshots: {ARTIFACTS}")
