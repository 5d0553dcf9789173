"""Shared fixtures: the acceptance example with seeded data, and a DuckDB connection over the same files."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

import tempfile  # noqa: E402

from hypothesis import settings  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

import datagen  # noqa: E402

# the tests never write into the working tree: no example database, and hypothesis' caches in a temp folder
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="kpi-hypothesis-"))
settings.register_profile("kpi", database=None)
settings.load_profile("kpi")

EXAMPLE = TESTS / "fixtures" / "example"


def require(module: str):  # noqa: ANN201 - the module
    """Import a test dependency, or fail (never skip) saying how to get it: a missing checker is a defect."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"{module} is needed to check these numbers: pip install -e '.[test]'", pytrace=False)


@pytest.fixture(scope="session")
def example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the acceptance example (spec unchanged) with its data generated next to it."""
    root = tmp_path_factory.mktemp("example")
    shutil.copy(EXAMPLE / "kpis.yaml", root / "kpis.yaml")
    datagen.write_example_data(root / "data")
    return root


@pytest.fixture(scope="session")
def example_catalog(example_dir: Path):
    import kpi_engine

    return kpi_engine.load(example_dir)


@pytest.fixture()
def duck(example_dir: Path):
    """DuckDB in UTC with views named like the example's sources."""
    duckdb = require("duckdb")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    data = example_dir / "data"
    con.execute(f"CREATE VIEW ads AS SELECT * FROM read_parquet('{data / 'ad_events.parquet'}')")
    # sessions.ts is stored in Europe/Paris: bucket its instants in UTC, as the spec says
    con.execute(
        f"CREATE VIEW sessions AS SELECT * REPLACE (ts AT TIME ZONE 'UTC' AS ts) "
        f"FROM read_parquet('{data / 'sessions.parquet'}')"
    )
    con.execute(f"CREATE VIEW tickets AS SELECT * FROM read_csv_auto('{data / 'support_tickets.csv'}')")
    con.execute(f"CREATE VIEW mentions AS SELECT * FROM read_json_auto('{data / 'social_mentions.ndjson'}')")
    yield con
    con.close()


def write_spec(root: Path, text: str, name: str = "kpis.yaml") -> Path:
    """Write a spec file (dedented) and return its folder."""
    import textwrap

    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def same(ours, reference, label: str = "") -> int:  # noqa: ANN001 - two kpi_engine.Result
    """Every KPI's frame equal to the reference's (values to 1e-9 relative); the number of values compared.
    A difference names the backend (``label``), the KPI and the row."""
    import math

    compared = 0
    for kpi, expected in reference.series.items():
        got = ours[kpi]
        assert got.columns == expected.columns, (label, kpi)
        assert got.drop("value").equals(expected.drop("value")), (label, kpi, got, expected)
        for i, (a, b) in enumerate(zip(got["value"].to_list(), expected["value"].to_list(), strict=True)):
            assert (a is None) == (b is None), (label, kpi, expected.row(i, named=True), a)
            assert a is None or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (label, kpi, expected.row(i, named=True), a)
            compared += 1
    return compared


@pytest.fixture(scope="session")
def pg_server():
    """One throwaway PostgreSQL server for the session (tests/pgcluster.py); ``pg_database`` gives each
    module a database of its own on it. Without the server binaries the tests fail saying how to get them."""
    from pgcluster import NoServer, cluster

    try:
        running = cluster()
        url = running.__enter__()
    except NoServer as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield url
    finally:
        running.__exit__(None, None, None)


def pg_database(server: str, name: str, icu: str | None = None) -> str:
    """A new, empty database on the session's server; its URL. With ``icu`` (a locale such as ``en``), its
    text sorts by that ICU locale, as most servers' `en_US.UTF-8` does, not by bytes."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        locale = f" LOCALE_PROVIDER icu ICU_LOCALE '{icu}' LOCALE 'C.UTF-8' TEMPLATE template0" if icu else ""
        con.execute(f'CREATE DATABASE "{name}"{locale}')
    return server.rsplit("/", 1)[0] + f"/{name}"


def start_chromium(env: dict[str, str] | None = None):  # noqa: ANN201 - a Selenium driver
    """Headless Chromium driven by Selenium (``env``: the browser's environment, e.g. its ``TZ``); without
    Chromium and its driver the test fails with how to get them."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not driver_path or not chromium:
        pytest.fail(
            "these tests need Chromium and its driver: apt-get install chromium chromium-driver (CI installs them)",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path, env=env), options=options)


@pytest.fixture
def browser():
    """``start_chromium``'s browser for one test, quit afterwards."""
    driver = start_chromium()
    yield driver
    driver.quit()
