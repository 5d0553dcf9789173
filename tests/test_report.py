"""`kpi report`: every format rendered and inspected, values equal to `kpi run`, escaping, no external
URL, template overrides, plugin formats, and a real browser (headless Chromium) rendering the HTML."""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import types
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

# screenshots for a person to look at: KPI_TEST_ARTIFACTS=DIR keeps them; by default they go to a temporary
# folder, so that running the tests never writes into the working tree
ARTIFACTS = Path(os.environ.get("KPI_TEST_ARTIFACTS") or tempfile.mkdtemp(prefix="kpi-artifacts-"))
AS_OF = "2026-04-15"


def kpi(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "kpi_engine", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ},
    )


@pytest.fixture(scope="module")
def fixture_project(tmp_path_factory):
    """KPIs built to hit every status, an empty dimension, a KPI with no data and a name that is markup."""
    root = tmp_path_factory.mktemp("report")
    start = dt.datetime(2026, 1, 1, 12)
    days = 181
    pl.DataFrame(
        {
            "ts": [start + dt.timedelta(days=i) for i in range(days)],
            "v": [100.0 + i for i in range(days)],
            "channel": ["a" if i % 2 else "b" for i in range(days)],
            "rare": [None] * days,
        },
        schema_overrides={"rare": pl.String},
    ).write_csv(root / "m.csv")
    pl.DataFrame({"ts": [start + dt.timedelta(days=i) for i in range(40)], "v": [1.0] * 40}).write_csv(root / "old.csv")
    target = "direction: increase, start: 2026-01-01, deadline: 2026-12-31"
    review = "review: {cadence: monthly, meeting: Review}"
    (root / "k.yaml").write_text(
        textwrap.dedent(f"""
        version: 1
        events:
          - {{date: 2026-03-02, label: Launch}}
        sources:
          m: {{connector: csv, path: m.csv, time: ts}}
          old: {{connector: csv, path: old.csv, time: ts}}
        kpis:
          at_risk: {{name: "<script>alert(1)</script> & co", unit: number, owner: ops, formula: mean(m.v), grain: month, {review}, target: {{{target}, baseline: 150, value: 250}}, notes: [Check the <b>tagging</b>]}}
          on_track: {{unit: number, formula: mean(m.v), grain: month, dimensions: [channel], {review}, target: {{{target}, baseline: 140, value: 250}}}}
          off_track: {{unit: number, formula: mean(m.v), grain: month, {review}, target: {{{target}, baseline: 170, value: 300}}}}
          achieved: {{unit: number, formula: mean(m.v), grain: month, {review}, target: {{{target}, baseline: 150, value: 170}}}}
          not_started: {{unit: number, formula: mean(m.v), grain: month, {review}, target: {{direction: increase, baseline: 150, value: 250, start: 2026-05-01, deadline: 2026-12-31}}}}
          missed: {{unit: number, formula: mean(m.v), grain: month, {review}, target: {{direction: increase, baseline: 150, value: 250, start: 2026-01-01, deadline: 2026-03-31}}}}
          no_data: {{unit: count, formula: count(old), grain: month, {review}, target: {{{target}, baseline: 30, value: 40}}}}
          empty_dim: {{unit: count, formula: count(m where v < 0), grain: month, dimensions: [rare], {review}}}
          other_meeting: {{unit: count, formula: count(m), grain: month, review: {{cadence: weekly, meeting: Other}}}}
    """)
    )
    return root


@pytest.fixture(scope="module")
def html_report(fixture_project):
    out = fixture_project / "out" / "review.html"
    res = kpi("report", str(fixture_project), "--as-of", AS_OF, "--meeting", "Review", "-o", str(out))
    assert res.returncode == 0, res.stderr
    return out


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.scripts, self.urls, self._row = {}, [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        for key in ("src", "href"):
            if a.get(key, "").startswith(("http:", "https:", "//")):
                self.urls.append(a[key])
        if tag == "tr" and "data-kpi" in a:
            self._row = self.rows.setdefault(a["data-kpi"], {"status": a.get("data-status")})
        if tag == "td" and self._row is not None and "data-value" in a:
            self._row["value"] = float(a["data-value"]) if a["data-value"] else None


def test_html_content_matches_kpi_run(fixture_project, html_report):
    html = html_report.read_text()
    parser = Collector()
    parser.feed(html)
    # scripts: each chart's data, and the chart runtime inline (nothing loaded from anywhere)
    charts = html.count('class="chart vega-chart"')
    code = [s for s in parser.scripts if s != {"type": "application/json"}]
    assert code == [{}, {}] and len(parser.scripts) == charts + 2
    assert parser.urls == []
    outside = html[: html.rindex("<script>", 0, html.rindex("<script>"))]  # the page without the runtime's code
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?https?:", outside) and "url(http" not in outside
    run = kpi("run", str(fixture_project), "--as-of", AS_OF, "--format", "json")
    doc = json.loads(run.stdout)
    statuses = {k["id"]: k["status"] for k in doc["kpis"]}
    reviewed = {k for k in statuses if k != "other_meeting"}
    assert set(parser.rows) == reviewed  # the meeting's KPIs only
    for kpi_id, row in parser.rows.items():
        status = statuses[kpi_id]
        assert row["status"] == (status["status"] if status else "")
        if status and status["value"] is not None:
            assert row["value"] == pytest.approx(status["value"], rel=1e-12)
    assert {r["status"] for r in parser.rows.values()} >= {
        "achieved",
        "on_track",
        "at_risk",
        "off_track",
        "no_data",
        "not_started",
        "missed",
    }


def test_html_escapes_names_and_notes(html_report):
    html = html_report.read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "Check the &lt;b&gt;tagging&lt;/b&gt;" in html


def test_html_structure(html_report):
    html = html_report.read_text()
    attention = html.index('id="attention"')
    assert attention < html.index('id="scorecard"') < html.index('id="details"')
    # needs attention lists the severe ones first: missed, off track, no data, at risk
    order = [m.group(1) for m in re.finditer(r'<li data-kpi="([a-z_]+)">', html)]
    assert order == ["missed", "off_track", "no_data", "at_risk"]
    assert html.count('class="chart vega-chart"') >= 9
    # before/after the launch: mean of 100 + day index over 2 Feb-1 Mar (days 32-59) and 2-29 Mar (days 60-87)
    assert "<strong>Launch</strong> (2 Mar 2026): 28 days before: 145.50; 28 days after: 173.50 (+28.00)" in html
    assert "No rare values in this period." in html  # an empty dimension
    assert re.search(r"kpi-engine \S+ · spec [0-9a-f]{12}</footer>", html)
    assert "Period under review: <strong>1 Mar 2026 to 31 Mar 2026</strong>" in html


def test_markdown_email_and_template_override(fixture_project, tmp_path):
    md = tmp_path / "r.md"
    res = kpi("report", str(fixture_project), "--as-of", AS_OF, "--meeting", "Review", "-o", str(md))
    assert res.returncode == 0, res.stderr
    text = md.read_text()
    assert "| KPI | owner | period | value |" in text and "\\<script\\>alert(1)\\</script\\> & co" in text
    charts = sorted((tmp_path / "r_files").glob("*.svg"))
    assert len(charts) == 8 and all(f"(<r_files/{c.name}>)" in text for c in charts)
    eml = tmp_path / "r.eml"
    assert kpi("report", str(fixture_project), "--as-of", AS_OF, "--meeting", "Review", "-o", str(eml)).returncode == 0
    message = email.message_from_bytes(eml.read_bytes())
    assert message["Subject"] == "Review: 15 Apr 2026"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "NEEDS ATTENTION (4)" in parts["text/plain"] and "&lt;script&gt;" in parts["text/html"]
    custom = tmp_path / "templates"
    custom.mkdir()
    (custom / "email.txt.j2").write_text(
        "Custom digest for {{ report.meeting }}: {{ report.attention | length }} to discuss\n"
    )
    assert (
        kpi(
            "report",
            str(fixture_project),
            "--as-of",
            AS_OF,
            "--meeting",
            "Review",
            "-o",
            str(eml),
            "--templates",
            str(custom),
        ).returncode
        == 0
    )
    assert "Custom digest for Review: 4 to discuss" in eml.read_bytes().decode()


def test_a_failed_report_keeps_the_previous_file(fixture_project, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("previous")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "report.html.j2").write_text("{% for x in %}")
    res = kpi("report", str(fixture_project), "--as-of", AS_OF, "-o", str(out), "--templates", str(bad))
    assert res.returncode == 2 and "template syntax error" in res.stderr
    assert out.read_text() == "previous" and [p.name for p in tmp_path.iterdir() if p.is_file()] == ["r.html"]
    res = kpi("report", str(fixture_project), "--meeting", "Reveiw")
    assert (
        res.returncode == 2 and "no KPI matches the selection" in res.stderr and "did you mean `Review`?" in res.stderr
    )


def test_plugin_formats_render_through_the_hook(fixture_project, tmp_path):
    import types

    import kpi_engine
    from kpi_engine import content
    from kpi_engine.plugins import build_registry
    from kpi_engine.report import write_report
    from kpi_engine.targets import assess

    folder = tmp_path / "slack"
    folder.mkdir()
    (folder / "slack.txt.j2").write_text(
        "{% for k in report.attention %}:warning: {{ k.name }}: {{ k.status_label }}\n{% endfor %}"
    )
    plugin = types.ModuleType("kpi_slack")
    plugin.register_report_formats = kpi_engine.hookimpl(
        lambda register: register(kpi_engine.ReportFormat("slack", "txt", "slack.txt.j2", templates_dir=folder))
    )
    registry = build_registry(extra=[plugin])
    catalog = kpi_engine.load(fixture_project, registry=registry)
    kpis = content.select(catalog.project, "Review")
    result = catalog.evaluate(dt.date.fromisoformat(AS_OF), kpis=[k.id for k in kpis])
    report = content.build(catalog, result, assess(result), kpis, meeting="Review")
    out = tmp_path / "summary.txt"
    write_report(report, registry, "slack", out)
    assert out.read_text().splitlines()[0] == ":warning: missed: Missed"


def test_demo_catalogue_renders_in_every_format(tmp_path, request):
    env = {**os.environ, "KPI_ENGINE_CACHE": str(tmp_path / "cache")}
    root = request.config.rootpath
    formats = ["html", "md", "email"] + (["pdf"] if shutil.which("chromium") else [])
    for fmt in formats:
        out = tmp_path / f"demo.{fmt}"
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "kpi_engine",
                "report",
                "kpi_specs",
                "--as-of",
                "2026-06-30",
                "--format",
                fmt,
                "-o",
                str(out),
            ],
            capture_output=True,
            text=True,
            cwd=root,
            env=env,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr
        assert out.stat().st_size > 1000
    html = (tmp_path / "demo.html").read_text()
    assert html.count('class="kpi"') == 40 and "Needs attention (18)" in html
    # month-1 retention carries its cohort matrix: 12 cohorts x 6 months ahead, shaded where known
    cohort = html[html.index("Cohorts: 1 to 6 months later") :]
    cohort = cohort[: cohort.index("</table>")]
    assert cohort.count("<tr><td>") == 12 and cohort.count("rgba(37, 99, 235,") == 12 * 6 - (1 + 2 + 3 + 4 + 5 + 6)
    if "pdf" in formats:
        assert (tmp_path / "demo.pdf").read_bytes().startswith(b"%PDF")


def test_chromium_renders_the_report_without_console_errors(html_report):
    from kpi_reports.writers import CHROMIUM_FLAGS, chromium

    browser = chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium for the browser test")
        pytest.fail("this test needs Chromium: apt-get install chromium (CI installs it)", pytrace=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    run = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={html_report.parent / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            html_report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    narrow = ARTIFACTS / "report-phone.png"
    run = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={html_report.parent / 'profile'}",
            "--hide-scrollbars",
            "--window-size=390,2000",
            f"--screenshot={narrow}",
            html_report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and narrow.exists()


def test_a_third_party_format_end_to_end(fixture_project, tmp_path):
    """Issue 12, items 4 and 10: render() returns the content and the engine writes it; a plugin's template
    folder is its own (its report.md.j2 no longer replaces the built-in Markdown); what a plugin's format does
    wrong is reported as that plugin's failure, and no file is written."""
    import kpi_engine
    from kpi_engine import ReportFormat, hookimpl
    from kpi_engine.plugins import build_registry
    from kpi_engine.report import PluginFormatError, write_report

    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "report.md.j2").write_text("not the built-in markdown")
    (folder / "digest.txt.j2").write_text("{{ report.kpis | length }} KPIs")
    plugin = types.ModuleType("kpi_digest")
    formats = [
        ReportFormat("digest", "txt", "digest.txt.j2", templates_dir=folder),
        ReportFormat("count", "txt", render=lambda report: f"{len(report.kpis)} KPIs\n"),
        ReportFormat("broken", "txt", render=lambda report: {"oops": 1}),
        ReportFormat("raises", "txt", render=lambda report: 1 / 0),
    ]
    plugin.register_report_formats = hookimpl(lambda register: [register(f) for f in formats])
    registry = build_registry(extra=[plugin])
    catalog = kpi_engine.load(fixture_project, registry=registry)
    from kpi_engine import content
    from kpi_engine.targets import assess

    kpis = content.select(catalog.project, "Review")
    result = catalog.evaluate(dt.date.fromisoformat(AS_OF), kpis=[k.id for k in kpis])
    report = content.build(catalog, result, assess(result), kpis, meeting="Review")
    n = len(report.kpis)
    assert write_report(report, registry, "digest", tmp_path / "d.txt") == [tmp_path / "d.txt"]
    assert (tmp_path / "d.txt").read_text() == f"{n} KPIs"
    write_report(report, registry, "count", tmp_path / "c.txt")
    assert (tmp_path / "c.txt").read_text() == f"{n} KPIs\n"
    write_report(report, registry, "md", tmp_path / "r.md")
    assert (tmp_path / "r.md").read_text() != "not the built-in markdown"
    for name, message in (("broken", "render() returned dict, not str or bytes"), ("raises", "ZeroDivisionError")):
        with pytest.raises(PluginFormatError, match=re.escape(message)):
            write_report(report, registry, name, tmp_path / f"{name}.txt")
        assert not (tmp_path / f"{name}.txt").exists()
    assert registry.formats["count"].plugin == "kpi_digest"
