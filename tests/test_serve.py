"""`kpi serve`: the JSON API against `kpi run --format json` and hand-written polars, its 400s and 404s, spec
errors in the page, and end to end in headless Chromium: click into a KPI, filter a channel, edit a spec and
see the page update."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from kpi_engine.cli import main

AS_OF = "2026-06-03"
ARTIFACTS = Path(os.environ.get("KPI_TEST_ARTIFACTS") or tempfile.mkdtemp(prefix="kpi-artifacts-"))


@pytest.fixture
def project(example_dir: Path, tmp_path: Path) -> Path:
    """A copy of the acceptance example that tests may edit."""
    root = tmp_path / "example"
    shutil.copytree(example_dir, root)
    return root


@pytest.fixture
def client(project: Path):
    from starlette.testclient import TestClient

    from kpi_engine.serve import Live, build_app

    return TestClient(build_app(Live(project, dt.date.fromisoformat(AS_OF))))


def test_the_api_mirrors_kpi_run_json(client, project, tmp_path):
    out = tmp_path / "run.json"
    run = CliRunner().invoke(main, ["run", str(project), "--as-of", AS_OF, "--format", "json", "-o", str(out)])
    assert run.exit_code == 0, run.output
    api = client.get("/api/kpis")
    assert api.status_code == 200
    assert api.json() == json.loads(out.read_text())


def test_a_kpi_filtered_by_channel_and_period_matches_polars(client, project):
    res = client.get("/api/kpis/ctr", params={"dims": "channel:search", "from": "2026-05-04", "to": "2026-05-31"})
    assert res.status_code == 200, res.text
    rows = res.json()["series"]
    assert [r["period"] for r in rows] == ["2026-W19", "2026-W20", "2026-W21", "2026-W22"]
    assert all(r["dims"] == {"channel": "search"} for r in rows)
    ads = pl.read_parquet(project / "data" / "ad_events.parquet")
    weekly = (
        ads.filter(pl.col("channel") == "search")
        .group_by(pl.col("ts").dt.truncate("1w").dt.date().alias("start"))
        .agg((100 * pl.col("clicks").cast(pl.Int64).sum() / pl.col("impressions").cast(pl.Int64).sum()).alias("ctr"))
    )
    expected = dict(weekly.iter_rows())
    for r in rows:
        assert r["value"] == pytest.approx(expected[dt.date.fromisoformat(r["start"])], rel=1e-12)
    totals = client.get("/api/kpis/ctr", params={"from": "2026-05-04", "to": "2026-05-10"}).json()["series"]
    assert [r["dims"] for r in totals] == [{}]  # without a filter: the totals


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/api/kpis/ctr", {"from": "4 May"}, 400, "from=4 May is not a date: write it like 2026-06-30"),
        ("/api/kpis/ctr", {"from": "2026-06-01", "to": "2026-05-01"}, 400, "from=2026-06-01 is after to=2026-05-01"),
        ("/api/kpis/ctr", {"dims": "chanel:search"}, 400, "no dimension `chanel`; did you mean `channel`?"),
        ("/api/kpis/ctr", {"dims": "channel:serach"}, 400, "`channel` has no value `serach`; did you mean `search`?"),
        ("/api/kpis/ctr", {"dims": "search"}, 400, "write each as dimension:value"),
        ("/api/kpis/roi", {"dims": "channel:search"}, 400, "KPI roi has no dimension `channel`; it has none"),
        ("/api/kpis/crt", {}, 404, "no KPI `crt`; did you mean `ctr`?"),
    ],
)
def test_bad_parameters_get_a_message(client, path, params, status, message):
    res = client.get(path, params=params)
    assert res.status_code == status
    assert message in res.json()["error"]
    page = client.get(path.replace("/api", ""), params=params)
    assert page.status_code == status and message.split("`")[0] in page.text


def test_a_spec_error_shows_in_the_page_and_its_fix_brings_the_review_back(client, project):
    assert client.get("/").status_code == 200
    spec = project / "kpis.yaml"
    good = spec.read_text()
    spec.write_text(good.replace("formula: 100 * sum(ads.clicks) / sum(ads.impressions)", "formula: 100 * sum(ads.clickz)"))
    page = client.get("/")
    assert page.status_code == 200 and "The specs do not load" in page.text
    assert "kpis.yaml:19:" in page.text and "did you mean `clicks`" in page.text
    assert client.get("/api/kpis").status_code == 422
    before = client.get("/api/version").json()["stamp"]
    spec.write_text(good)
    assert client.get("/api/version").json()["stamp"] != before
    assert "Click-through rate" in client.get("/").text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(project: Path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kpi_engine", "serve", str(project), "--port", str(port), "--as-of", AS_OF],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"kpi serve exited: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_click_into_a_kpi_filter_a_channel_and_see_a_spec_edit(served, browser, project):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(served + "/")
    link = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "table.scorecard a[href='/kpis/ctr']")))
    link.click()
    wait.until(ec.url_contains("/kpis/ctr"))
    assert browser.find_element(By.ID, "kpi-name").text == "Click-through rate"

    Select(browser.find_element(By.CSS_SELECTOR, "select[data-dim='channel']")).select_by_visible_text("search")
    browser.find_element(By.ID, "apply").click()
    wait.until(ec.url_contains("dims=channel%3Asearch"))
    cells = browser.find_elements(By.CSS_SELECTOR, "#series tbody tr td:nth-child(2)")
    assert cells and {c.text for c in cells} == {"search"}
    # the charts are drawn with the runtime the server sends once (/assets/charts.js), not one inlined per page
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".vega-chart[data-drawn] svg")) >= 2)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "serve-kpi.png"))

    spec = project / "kpis.yaml"
    spec.write_text(spec.read_text().replace("name: Click-through rate", "name: Click-through rate (ads)"))
    wait.until(ec.text_to_be_present_in_element((By.ID, "kpi-name"), "Click-through rate (ads)"))
    assert "dims=channel%3Asearch" in browser.current_url  # the reload kept the filter
    print(f"serve screenshot: {ARTIFACTS / 'serve-kpi.png'}")


def test_pages_load_the_chart_runtime_from_the_server(client):
    page = client.get("/kpis/ctr").text
    assert '<script src="/assets/charts.js"></script>' in page and "vegaEmbed=" not in page
    runtime = client.get("/assets/charts.js")
    assert runtime.status_code == 200 and runtime.headers["content-type"].startswith("text/javascript")
    assert "window.vegaEmbed=" in runtime.text


def test_a_data_file_change_is_evaluated_again(client, project):
    before = client.get("/api/version").json()["stamp"]
    first = client.get("/api/kpis/ctr", params={"from": "2026-05-04", "to": "2026-05-10"}).json()["series"][0]["value"]
    path = project / "data" / "ad_events.parquet"
    ads = pl.read_parquet(path)
    ads.filter(pl.col("channel") != "search").write_parquet(path)  # an export without one channel
    assert client.get("/api/version").json()["stamp"] != before
    after = client.get("/api/kpis/ctr", params={"from": "2026-05-04", "to": "2026-05-10"}).json()["series"][0]["value"]
    assert after != first


def test_a_kpi_page_shows_the_same_section_as_the_whole_review(project):
    """A KPI's page builds a review of that KPI alone (its own charts only): its section must read as the
    whole review's does."""
    from kpi_engine.serve import Live

    live = Live(project, dt.date.fromisoformat(AS_OF))
    state = live.state()
    alone = {k: live.review(state, k).kpis[0] for k in state.catalog.project.kpis}
    whole = {k.id: k for k in live.review(state).kpis}
    assert alone.keys() == whole.keys()
    for kpi_id, section in alone.items():
        other = whole[kpi_id]
        for name in ("value_text", "why", "status", "target_text", "change_previous", "change_year", "moved", "to_date"):
            assert getattr(section, name) == getattr(other, name), (kpi_id, name)
        assert [b.rows for b in section.breakdowns] == [b.rows for b in other.breakdowns], kpi_id


def test_a_port_in_use_is_a_clear_error(project):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        res = CliRunner().invoke(main, ["serve", str(project), "--port", str(port)])
    assert res.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in res.output and "--port" in res.output
    assert "Traceback" not in res.output
