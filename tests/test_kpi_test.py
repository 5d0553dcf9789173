"""`kpi test`: fixture tests beside specs, their diffs and exit codes, and the catalogue's own tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def kpi(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "kpi_engine", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or ROOT,
        env={**os.environ, "KPI_ENGINE_CACHE": "/nonexistent-never-read"},
    )


def test_the_catalogue_tests_pass_without_reading_data():
    res = kpi("test", "kpi_specs")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith("8 passed, 0 failed")


def test_every_catalogue_kpi_has_a_fixture_test():
    covered = set()
    for file in (ROOT / "kpi_specs" / "tests").glob("*.test.yaml"):
        for body in yaml.safe_load(file.read_text())["tests"].values():
            covered |= set(body["expect"])
    kpis = set()
    for file in (ROOT / "kpi_specs").glob("*.yaml"):
        kpis |= set((yaml.safe_load(file.read_text()) or {}).get("kpis", {}))
    assert kpis - covered == set()


SPEC = """
version: 1
sources:
  ads: {connector: csv, path: nowhere.csv, time: ts}
kpis:
  ctr: {unit: percent, formula: 100 * sum(ads.clicks) / sum(ads.impressions), grain: week}
  spend: {unit: currency, formula: sum(ads.cost), grain: month}
"""


def write(tmp_path, test_text):
    (tmp_path / "k.yaml").write_text(textwrap.dedent(SPEC))
    (tmp_path / "k.test.yaml").write_text(textwrap.dedent(test_text))


def test_a_failing_test_shows_a_diff_and_exits_1(tmp_path):
    write(
        tmp_path,
        """
        tests:
          wrong_on_purpose:
            as_of: 2026-04-30
            given:
              ads:
                - {ts: "2026-04-06T10:00:00", clicks: 10, impressions: 1000}
            expect:
              ctr:
                - {period: 2026-W15, value: 2.0}
                - {period: 2026-W16, value: 1.0}
                - {period: 2026-W30, value: 1.0}
    """,
    )
    res = kpi("test", str(tmp_path))
    assert res.returncode == 1
    assert "FAIL" in res.stdout and "::wrong_on_purpose" in res.stdout
    assert "ctr 2026-W15: expected 2.0, got 1.0" in res.stdout
    assert "ctr 2026-W16: expected 1.0, got None" in res.stdout  # no rows that week: no data
    assert (
        "ctr 2026-W30: expected 1.0, but there is no such row (periods: 2026-W15, 2026-W16, 2026-W17, 2026-W18)"
        in res.stdout
    )
    assert res.stdout.strip().endswith("0 passed, 1 failed")


def test_broken_test_files_exit_2_with_a_location(tmp_path):
    write(
        tmp_path,
        """
        tests:
          needs_rows:
            given:
              ads:
                - {ts: "2026-04-06T10:00:00", cost: 3.0}
            expect:
              spnd:
                - {period: 2026-04, value: 3.0}
    """,
    )
    res = kpi("test", str(tmp_path))
    assert res.returncode == 2
    assert "k.test.yaml:8:7: test `needs_rows` expects unknown KPI `spnd`" in res.stderr
    assert "did you mean `spend`?" in res.stderr
    write(
        tmp_path,
        """
        tests:
          no_rows:
            given:
              other: [{ts: "2026-04-06T10:00:00"}]
            expect:
              spend: [{period: 2026-04, value: 3.0, oops: 1}]
    """,
    )
    res = kpi("test", str(tmp_path))
    assert res.returncode == 2
    assert "unknown field `oops`" in res.stderr
    write(
        tmp_path,
        """
        tests:
          no_rows:
            given:
              other: [{ts: "2026-04-06T10:00:00"}]
            expect:
              spend: [{period: 2026-04, value: 3.0}]
    """,
    )
    res = kpi("test", str(tmp_path))
    assert res.returncode == 2 and "gives no rows for source `ads`, which its KPIs read" in res.stderr


def test_the_kpi_dictionary_is_current():
    res = kpi("docs", "kpi_specs", "-o", "docs/kpis.md", "--check")
    assert res.returncode == 0, res.stderr + "\nregenerate: kpi docs kpi_specs -o docs/kpis.md"
    text = (ROOT / "docs" / "kpis.md").read_text()
    assert "### Customer lifetime value" in text and "`ltv / (sum(ads.cost) / count(orders.customer where new))`" in text


def test_docs_check_fails_when_stale(tmp_path):
    stale = tmp_path / "kpis.md"
    stale.write_text("old\n")
    res = kpi("docs", "kpi_specs", "-o", str(stale), "--check")
    assert res.returncode == 1 and "is out of date" in res.stderr
    assert stale.read_text() == "old\n"


def test_kpi_init_scaffolds_a_folder_that_validates_runs_tests_and_lints(tmp_path):
    folder = tmp_path / "growth"
    res = kpi("init", str(folder))
    assert res.returncode == 0, res.stderr
    assert {p.name for p in folder.iterdir()} == {
        "kpis.yaml",
        "kpis.test.yaml",
        "kpi.schema.json",
        "data",
        ".gitignore",
    }
    assert kpi("validate", str(folder)).stdout.startswith("ok: 1 KPIs, 1 sources")
    tested = kpi("test", str(folder))
    assert tested.returncode == 0 and tested.stdout.strip().endswith("1 passed, 0 failed")
    linted = kpi("lint", str(folder), "--strict")
    assert linted.returncode == 0 and "S M A R T  5/5  signup_rate" in linted.stdout
    ran = kpi("run", str(folder), "--format", "json")
    assert ran.returncode == 0
    import json

    doc = json.loads(ran.stdout)
    assert doc["kpis"][0]["id"] == "signup_rate" and doc["kpis"][0]["status"]["status"] in (
        "achieved",
        "on_track",
        "at_risk",
        "off_track",
    )
    again = kpi("init", str(folder))
    assert again.returncode == 2 and "kpis.yaml: file already exists" in again.stderr
