"""Issue 11: every wrong number, escape and crash found on real exports and by attack, each read back exactly.

Each test names the item it guards. Numbers are checked against an independent computation (DuckDB SQL or a
hand-written polars expression), messages against their exact text, and exit codes against the README's table.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from kpi_engine.cli import main

from conftest import require, write_spec


def run(*args: str) -> tuple[int, str, str]:
    """`kpi ARGS` in process: exit code, stdout, stderr."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def run_json(*args: str) -> dict:
    code, out, err = run(*args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


# 1. A period's value, coverage and has_data never depend on the requested window.
def test_window_does_not_move_the_data_span(tmp_path: Path) -> None:
    days = [dt.date(2019, 12, 1) + dt.timedelta(days=i) for i in range(397) if i % 5 == 1]
    pl.DataFrame({"ts": [dt.datetime.combine(d, dt.time(10)) for d in days], "x": [1] * len(days)}).write_csv(
        tmp_path / "b.csv"
    )
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          b: {connector: csv, path: b.csv, time: ts}
        kpis:
          n: {name: N, unit: count, formula: count(b), grain: week}
        """,
    )
    spec = str(tmp_path / "kpis.yaml")
    windows = [("--to", "2020-01-12"), ("--to", "2020-01-31"), ("--from", "2020-01-06", "--to", "2020-01-12"), ()]
    outputs = [run_json("run", spec, "--as-of", "2021-01-31", *w) for w in windows]
    for out in outputs:
        assert out["sources"]["b"] == str(max(days))
        w02 = next(r for r in out["kpis"][0]["series"] if r["period"] == "2020-W02")
        expected = sum(1 for d in days if dt.date(2020, 1, 6) <= d <= dt.date(2020, 1, 12))
        assert (w02["value"], w02["coverage"], w02["has_data"]) == (expected, 1.0, True)
    by_period = [{r["period"]: r for r in o["kpis"][0]["series"]} for o in outputs]
    for period, row in by_period[2].items():
        assert all(b[period] == row for b in by_period if period in b)


def _spec(root: Path, sources: str, kpis: str) -> str:
    write_spec(root, f"version: 1\nsources:\n{sources}\nkpis:\n{kpis}\n")
    return str(root / "kpis.yaml")


# 2. Non-ISO dates are read only with a declared format, never day-first by guess.
def test_us_dates_need_a_declared_format(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "InvoiceDate,qty\n12/1/2010 08:26,1\n12/06/2010 10:08,2\n2/20/11 11:39,4\n1/12/2011 10:00,8\n"
    )
    spec = _spec(
        tmp_path,
        "  o: {connector: csv, path: orders.csv, time: InvoiceDate, dtypes: {InvoiceDate: datetime}}",
        "  q: {name: Q, unit: count, formula: sum(o.qty), grain: month}",
    )
    code, _, err = run("run", spec, "--as-of", "2011-12-31")
    assert code == 2
    assert "orders.csv line 2: time `12/1/2010 08:26` is not ISO 8601" in err
    assert 'time_format: "%m/%d/%Y %H:%M" (month first, US) or time_format: "%d/%m/%Y %H:%M"' in err
    text = Path(spec).read_text().replace(
        "dtypes: {InvoiceDate: datetime}", 'time_format: ["%m/%d/%Y %H:%M", "%m/%d/%y %H:%M"]'
    )
    Path(spec).write_text(text)
    out = run_json("run", spec, "--as-of", "2011-12-31")
    values = {r["period"]: r["value"] for r in out["kpis"][0]["series"] if r["value"]}
    assert values == {"2010-12": 3, "2011-01": 8, "2011-02": 4}
    Path(spec).write_text(text.replace('["%m/%d/%Y %H:%M", "%m/%d/%y %H:%M"]', '"%m/%d/%Y %H:%M"'))
    code, _, err = run("run", spec, "--as-of", "2011-12-31")
    assert code == 2, err
    assert 'orders.csv line 4: time `2/20/11 11:39` matches no time_format ("%m/%d/%Y %H:%M")' in err


def test_a_format_that_cannot_read_a_date_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("d,x\n20260401,1\n")
    spec = _spec(tmp_path, '  a: {connector: csv, path: a.csv, time: d, time_format: "%H:%M"}', "  n: {unit: count, formula: count(a), grain: day}")
    code, _, err = run("validate", spec)
    assert code == 2 and "kpis.yaml:3:58: time_format `%H:%M` cannot read the dates it describes" in err


def test_compact_dates_of_analytics_exports(tmp_path: Path) -> None:
    (tmp_path / "ga.csv").write_text("date,users\n20260401,10\n20260402,12\n20260501,7\n")
    spec = _spec(tmp_path, '  ga: {connector: csv, path: ga.csv, time: date, time_format: "%Y%m%d"}', "  u: {unit: count, formula: sum(ga.users), grain: month}")
    out = run_json("run", spec, "--as-of", "2026-05-31")
    assert [(r["period"], r["value"]) for r in out["kpis"][0]["series"]] == [("2026-04", 22), ("2026-05", 7)]


# 3. and 4. Integer sums never wrap and integer KPIs never pass through a float.
def test_integer_sums_are_exact_or_refused(tmp_path: Path) -> None:
    big = 2**53 + 1
    (tmp_path / "d.csv").write_text(f"ts,x\n2026-04-01T10:00:00,{5 * 10**18}\n2026-04-01T11:00:00,{5 * 10**18}\n")
    spec = _spec(tmp_path, "  b: {connector: csv, path: d.csv, time: ts}", "  n: {name: N, unit: count, formula: sum(b.x), grain: day}")
    code, out, err = run("run", spec, "--as-of", "2026-04-01", "--format", "json")
    assert code == 2 and out == ""
    assert "sum(b.x) is 10000000000000000000 in 2026-04-01, past the 64-bit integer range" in err
    (tmp_path / "d.csv").write_text(f"ts,x\n2026-04-01T10:00:00,{big}\n2026-04-02T10:00:00,1\n")
    Path(spec).write_text(Path(spec).read_text() + "  r: {name: R, unit: ratio, formula: sum(b.x) / 2, grain: day}\n")
    out = run_json("run", spec, "--as-of", "2026-04-02")
    assert out["kpis"][0]["series"][0]["value"] == big
    code, text, _ = run("run", spec, "--as-of", "2026-04-02", "--format", "csv")
    assert f"n,count,2026-04-01,2026-04-01,2026-04-01,true,true,1.0,true,{big}\n" in text
    assert "n,count,2026-04-02,2026-04-02,2026-04-02,true,true,1.0,true,1\n" in text  # 26: not 1.0
    code, _, err = run("run", spec, "--as-of", "2026-04-02", "--format", "parquet", "-o", str(tmp_path / "o.parquet"))
    frame = pl.read_parquet(tmp_path / "o.parquet")
    assert frame.filter(pl.col("kpi") == "n")["value_int"].to_list() == [big, 1]
    assert frame.filter(pl.col("kpi") == "r")["value"].to_list() == [big / 2, 0.5]


# 5. Epoch numbers are read with a declared unit, never as microseconds (1970).
def test_epoch_timestamps_need_a_unit(tmp_path: Path) -> None:
    import sqlite3

    con = sqlite3.connect(tmp_path / "crm.db")
    con.execute("CREATE TABLE t (ts TIMESTAMP, n INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(1775001600, 1), (1777593600, 2)])  # 2026-04-01, 2026-05-01
    con.commit()
    con.close()
    spec = _spec(tmp_path, "  t: {connector: sql, path: crm.db, table: t, time: ts}", "  n: {name: N, unit: count, formula: sum(t.n), grain: month}")
    code, _, err = run("run", spec, "--as-of", "2026-05-31")
    assert code == 2
    assert "table `t` column `ts` is declared TIMESTAMP but row 1 holds 1775001600" in err
    assert "time_unit: s" in err
    Path(spec).write_text(Path(spec).read_text().replace("time: ts}", "time: ts, time_unit: s}"))
    out = run_json("run", spec, "--as-of", "2026-05-31")
    assert out["sources"]["t"] == "2026-05-01"
    assert [(r["period"], r["value"]) for r in out["kpis"][0]["series"]] == [("2026-04", 1), ("2026-05", 2)]


# 8. A header naming a column twice is refused.
def test_duplicated_csv_column(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ts,clicks,clicks\n2026-04-01T10:00:00,1,2\n")
    spec = _spec(tmp_path, "  a: {connector: csv, path: a.csv, time: ts}", "  n: {unit: count, formula: sum(a.clicks), grain: day}")
    code, _, err = run("validate", spec)
    assert code == 2 and "the header of a.csv names column `clicks` 2 times" in err


# 10. and 17. Every glob match is resolved and checked; only regular files are read.
@pytest.mark.parametrize("pattern", ["data/*.csv", "d*/x.csv", "data/**/*.csv"])
def test_links_out_of_the_folder_are_refused(tmp_path: Path, pattern: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.csv").write_text("ts,v\n2026-04-01T10:00:00,666\n")
    root = tmp_path / "spec"
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "a.csv").write_text("ts,v\n2026-04-01T10:00:00,1\n")
    if pattern == "data/*.csv":
        (root / "data" / "x.csv").symlink_to(outside / "x.csv")
    elif pattern == "d*/x.csv":
        (root / "dlinked").symlink_to(outside)
    else:
        (root / "data" / "sub" / "linked").symlink_to(outside)
    spec = _spec(root, f"  a: {{connector: csv, path: '{pattern}', time: ts}}", "  n: {unit: count, formula: sum(a.v), grain: day}")
    code, _, err = run("run", spec, "--as-of", "2026-04-01")
    assert code == 2
    assert f"path `{pattern}` of source `a` is outside the spec folder (it is a link to {outside / 'x.csv'})" in err
    assert "666" not in err


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.csv")
    spec = _spec(tmp_path, "  a: {connector: csv, path: pipe.csv, time: ts}", "  n: {unit: count, formula: count(a), grain: day}")
    code, _, err = run("validate", spec)
    assert code == 2 and "`pipe.csv` of source `a` is not a regular file (a FIFO, socket or device)" in err


# 21. and 22. Data problems name the row; offsets are valid data.
def test_sql_text_times_with_offsets_and_bad_integers(tmp_path: Path) -> None:
    import sqlite3

    con = sqlite3.connect(tmp_path / "crm.db")
    con.execute("CREATE TABLE t (at TEXT, n INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [("2026-04-01T23:30:00+02:00", 1), ("2026-04-01T23:30:00Z", 2)])
    con.commit()
    spec = _spec(tmp_path, "  t: {connector: sql, path: crm.db, table: t, time: at}", "  n: {name: N, unit: count, formula: sum(t.n), grain: day}")
    out = run_json("run", spec, "--as-of", "2026-04-02")
    assert [(r["period"], r["value"]) for r in out["kpis"][0]["series"]] == [("2026-04-01", 3), ("2026-04-02", None)]
    con.execute("INSERT INTO t VALUES ('2026-04-02T10:00:00', 'lots')")
    con.commit()
    con.close()
    code, _, err = run("run", spec, "--as-of", "2026-04-02")
    assert code == 2, err
    assert "table `t` column `n` is declared INTEGER but row 3 holds 'lots'" in err


def test_a_type_change_after_inference_names_the_line(tmp_path: Path) -> None:
    rows = "".join(f"2026-04-01T10:00:00,{i}\n" for i in range(10_005))
    (tmp_path / "a.csv").write_text("ts,v\n" + rows + "2026-04-01T11:00:00,n/a\n")
    spec = _spec(tmp_path, "  a: {connector: csv, path: a.csv, time: ts}", "  n: {unit: count, formula: sum(a.v), grain: day}")
    code, _, err = run("run", spec, "--as-of", "2026-04-01")
    assert code == 2
    assert "a.csv line 10007: column `v` holds `n/a`, but it is read as integers from its first rows" in err
    assert "add `n/a` to null_values" in err
    Path(spec).write_text(Path(spec).read_text().replace("time: ts}", "time: ts, null_values: [n/a]}"))
    assert run_json("run", spec, "--as-of", "2026-04-01")["kpis"][0]["series"][0]["value"] == sum(range(10_005))


# 6. and 18. Non-finite and absurdly large numbers are refused with their line; JSON never holds NaN.
def test_non_finite_and_huge_numbers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ts,x\n2026-04-01T10:00:00,1\n")
    huge = "1" + "0" * 400
    spec = _spec(
        tmp_path,
        f"  a: {{connector: csv, path: a.csv, time: ts}}\nparams:\n  huge: {huge}",
        "  n:\n    unit: count\n    formula: count(a)\n    grain: day\n"
        "    target: {direction: increase, value: .nan, baseline: -.inf, start: 2026-01-01, deadline: 2026-12-31}",
    )
    code, _, err = run("validate", spec)
    assert code == 2
    assert "kpis.yaml:5:9: number 100000000000... (401 digits) is too large" in err
    assert "kpis.yaml:11:42: `nan` is not a finite number" in err
    assert "kpis.yaml:11:58: `-inf` is not a finite number" in err
    Path(spec).write_text(f"version: 1\nsources:\n  a: {{connector: csv, path: a.csv, time: ts}}\nkpis:\n  n: {{unit: count, formula: count(a) * {huge}, grain: day}}\n")
    code, _, err = run("validate", spec)
    assert code == 2 and "number too large" in err and "Traceback" not in err


def test_json_never_holds_nan() -> None:
    from kpi_engine.jsonout import json_text

    text = json_text({"a": float("nan"), "b": [float("inf"), 1.5], "c": -float("inf")})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": None}


# 7. change: is relative to the size of the baseline.
def test_change_of_a_negative_baseline_goes_the_right_way() -> None:
    from kpi_engine.spec import TargetSpec
    from kpi_engine.targets import target_value

    up = TargetSpec("increase", change=0.2, baseline=-100.0)
    assert target_value(up, dt.date(2026, 1, 1), -100.0) == -80.0
    assert target_value(TargetSpec("decrease", change=-0.1, baseline=50.0), dt.date(2026, 1, 1), 50.0) == 45.0
    assert target_value(up, dt.date(2026, 1, 1), 0.0) is None


# 9. Formula literals are ASCII digits only.
@pytest.mark.parametrize("digit", ["৪", "３"])
def test_non_ascii_digits_are_not_numbers(tmp_path: Path, digit: str) -> None:
    (tmp_path / "a.csv").write_text("ts,x\n2026-04-01T10:00:00,1\n")
    spec = _spec(tmp_path, "  a: {connector: csv, path: a.csv, time: ts}", f"  n: {{unit: count, formula: 'sum(a.x) * {digit}', grain: day}}")
    code, _, err = run("validate", spec)
    assert code == 2
    assert f"unexpected character `{digit}`" in err and "write numbers with the ASCII digits 0-9" in err


# 13. and 14. Templates run in Jinja's sandbox; Markdown escapes every field a spec supplies.
HOSTILE = """
version: 1
sources:
  a: {connector: csv, path: a.csv, time: ts}
events:
  - {date: 2026-03-01, label: "<img src=x onerror=alert(1)> launch"}
kpis:
  clicks:
    name: "<script>alert(1)</script> *clicks*"
    owner: "growth | team"
    unit: count
    formula: sum(a.clicks)
    grain: month
    dimensions: [channel]
    notes: ["check [link](http://evil) <b>bold</b>", "second | note"]
    target: {objective: "Grow <i>clicks</i>", direction: increase, value: 500, baseline: 100, start: 2026-01-01, deadline: 2026-12-31}
    review: {cadence: monthly, meeting: "Growth sync"}
"""


@pytest.fixture()
def hostile(tmp_path: Path) -> Path:
    rows = ["ts,channel,clicks"]
    day = dt.date(2026, 1, 1)
    while day <= dt.date(2026, 6, 30):
        rows += [f"{day}T10:00:00,search,{day.day}", f"{day}T11:00:00,social,{day.month}"]
        day += dt.timedelta(days=1)
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    write_spec(tmp_path, HOSTILE)
    return tmp_path


def test_a_template_cannot_run_python(hostile: Path) -> None:
    (hostile / "tpl").mkdir()
    marker = hostile / "pwned"
    (hostile / "tpl" / "report.html.j2").write_text(
        "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"
    )
    out = hostile / "r.html"
    code, _, err = run("report", str(hostile), "--as-of", "2026-06-30", "--templates", str(hostile / "tpl"), "-o", str(out))
    assert code == 2 and not marker.exists() and not out.exists()
    assert "template `report.html.j2` tried something templates may not do" in err


def test_markdown_report_escapes_spec_text(hostile: Path) -> None:
    from markdown_it import MarkdownIt

    out = hostile / "r.md"
    code, _, err = run("report", str(hostile), "--as-of", "2026-06-30", "--format", "md", "-o", str(out))
    assert code == 0, err
    html = MarkdownIt("commonmark").enable("table").render(out.read_text())
    for tag in ("<script", "<img src=x", "<i>", "<b>", "<em>", 'href="http://evil"'):
        assert tag not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; *clicks*" in html
    scorecard = html.split("<tbody>")[1].split("</tr>")[0]
    assert scorecard.count("<td") == 10 and "growth | team" in scorecard
    notes = html.split("Agenda and actions:")[1]
    assert "<li>check [link](http://evil) &lt;b&gt;bold&lt;/b&gt;</li>" in notes and "<li>second | note</li>" in notes


# 11. and 12. SQL sources stay inside the folder too, whatever form names the database.
def _crm(path: Path) -> None:
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (ts TEXT, n INTEGER)")
    con.execute("INSERT INTO t VALUES ('2026-04-01T10:00:00', 7)")
    con.commit()
    con.close()


@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_sql_urls_are_checked_like_paths(tmp_path: Path, form: str) -> None:
    _crm(tmp_path / "outside" / "crm.db")
    root = tmp_path / "spec"
    url = "sqlite:///../outside/crm.db" if form == "relative" else f"sqlite:///{tmp_path / 'outside' / 'crm.db'}"
    spec = _spec(root, f"  t: {{connector: sql, url: '{url}', table: t, time: ts}}", "  n: {unit: count, formula: sum(t.n), grain: day}")
    code, _, err = run("run", spec, "--as-of", "2026-04-01")
    assert code == 2 and "of source `t` is outside the spec folder" in err
    code, _, err = run("validate", spec)
    assert code == 0 and "note: source `t` reads data outside" in err  # validate reads no outside data
    code, _, err = run("run", spec, "--as-of", "2026-04-01", "--allow-outside")
    assert code == 0, err


def test_percent_encoded_names_are_not_decoded(tmp_path: Path) -> None:
    _crm(tmp_path / "outside" / "crm.db")
    root = tmp_path / "spec"
    root.mkdir()
    (root / "x%2F..%2F..%2Foutside%2Fcrm.db").write_bytes(b"")  # an empty file inside the folder
    spec = _spec(root, "  t: {connector: sql, path: 'x%2F..%2F..%2Foutside%2Fcrm.db', table: t, time: ts}", "  n: {unit: count, formula: sum(t.n), grain: day}")
    code, _, err = run("validate", spec)
    assert code == 2 and "table `t` not found" in err  # the empty file was opened, not ../outside/crm.db


def test_duckdb_queries_cannot_read_other_files(tmp_path: Path) -> None:
    duckdb = require("duckdb")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.csv").write_text("ts,n\n2026-04-01 10:00:00,666\n")
    root = tmp_path / "spec"
    root.mkdir()
    with duckdb.connect(str(root / "w.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT TIMESTAMP '2026-04-01 10:00:00' AS ts, 7 AS n")
    query = "SELECT * FROM read_csv_auto('../outside/x.csv')"
    spec = _spec(root, f'  t: {{connector: sql, path: w.duckdb, query: "{query}", time: ts}}', "  n: {unit: count, formula: sum(t.n), grain: day}")
    code, _, err = run("run", spec, "--as-of", "2026-04-01")
    assert code == 2 and "666" not in err
    assert "cannot query source `t`" in err


# 19. Extreme dates are refused with the range, never an internal error.
@pytest.mark.parametrize("flag, day", [("--as-of", "9999-12-31"), ("--as-of", "0001-01-01"), ("--from", "1800-01-01")])
def test_extreme_dates_on_the_command_line(tmp_path: Path, flag: str, day: str) -> None:
    (tmp_path / "a.csv").write_text("ts,x\n2026-04-01T10:00:00,1\n")
    spec = _spec(tmp_path, "  a: {connector: csv, path: a.csv, time: ts}", "  n: {unit: count, formula: count(a), grain: week}")
    args = ["run", spec, flag, day] + (["--as-of", "2026-04-05"] if flag != "--as-of" else [])
    code, _, err = run(*args)
    assert code == 2 and f"{day} is outside the dates the engine reads (1900-01-01 to 2199-12-31)" in err


def test_extreme_dates_in_data_and_specs(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ts,x\n2026-04-01T10:00:00,1\n9999-12-31T10:00:00,1\n")
    spec = _spec(tmp_path, "  a: {connector: csv, path: a.csv, time: ts}", "  n: {unit: count, formula: count(a), grain: week}")
    code, _, err = run("run", spec, "--as-of", "2026-04-05")
    assert code == 2
    assert "a.csv line 3: time `9999-12-31T10:00:00` is outside the dates the engine reads" in err
    pl.DataFrame({"ts": [dt.datetime(11, 2, 20), dt.datetime(2026, 4, 1)]}).write_parquet(tmp_path / "p.parquet")
    spec = _spec(tmp_path, "  p: {connector: parquet, path: p.parquet, time: ts}", "  n: {unit: count, formula: count(p), grain: week}")
    code, _, err = run("run", spec, "--as-of", "2026-04-05")
    assert code == 2 and "source `p` has rows dated 0011-02-20, before 1900-01-01" in err
    Path(spec).write_text(Path(spec).read_text() + "    events: [{date: 9999-12-31, label: x}]\n".replace("    events", "  m: {unit: count, formula: count(p), grain: week, events: [{date: 9999-12-31, label: x}]}\n#"))
    code, _, err = run("validate", spec)
    assert code == 2 and "date `9999-12-31` is outside the dates the engine reads" in err


# 20. A plugin that calls sys.exit() at import is contained and reported.
def test_a_plugin_calling_sys_exit_is_contained(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    (site / "kpi_exits-1.0.dist-info").mkdir(parents=True)
    (site / "kpi_exits.py").write_text("import sys\nsys.exit(3)\n")
    (site / "kpi_exits-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: kpi-exits\nVersion: 1.0\n")
    (site / "kpi_exits-1.0.dist-info" / "entry_points.txt").write_text("[kpi_engine]\nexits = kpi_exits\n")
    (tmp_path / "a.csv").write_text("ts,x\n2026-04-01T10:00:00,1\n")
    spec = _spec(tmp_path, "  a: {connector: csv, path: a.csv, time: ts}", "  n: {unit: count, formula: count(a), grain: day}")
    env = {**os.environ, "PYTHONPATH": str(site)}
    plugins = subprocess.run([sys.executable, "-m", "kpi_engine", "plugins"], capture_output=True, text=True, env=env, timeout=120)
    assert plugins.returncode == 1  # reported, and not a clean bill of health
    assert "FAILED exits (import): called sys.exit(3)" in plugins.stderr
    check = subprocess.run([sys.executable, "-m", "kpi_engine", "validate", spec], capture_output=True, text=True, env=env, timeout=120)
    assert check.returncode == 0 and check.stdout.startswith("ok: 1 KPIs"), check.stdout + check.stderr


# 23. A NUL byte is located; a large plain spec is not mistaken for an alias bomb.
def test_a_nul_byte_in_a_spec_is_located(tmp_path: Path) -> None:
    (tmp_path / "kpis.yaml").write_bytes(b"version: 1\nkpis:\n  n: {unit: count, formula: \"cou\x00nt(a)\", grain: day}\n")
    code, _, err = run("validate", str(tmp_path / "kpis.yaml"))
    assert code == 2 and "kpis.yaml:3:33: control character U+0000 is not allowed in a spec file" in err


def test_a_large_plain_spec_loads(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ts,x\n2026-04-01T10:00:00,1\n")
    lines = ["version: 1", "sources:", "  a: {connector: csv, path: a.csv, time: ts}", "kpis:"]
    size, i = 0, 0
    while size < 4_900_000:
        line = f"  k{i}: {{name: KPI number {i}, unit: count, formula: sum(a.x) + count(a), grain: day, owner: growth}}"
        lines.append(line)
        size += len(line) + 1
        i += 1
    (tmp_path / "kpis.yaml").write_text("\n".join(lines) + "\n")
    code, out, err = run("validate", str(tmp_path / "kpis.yaml"))
    assert code == 0, err
    assert out.startswith(f"ok: {i} KPIs")


def test_an_alias_bomb_is_still_refused(tmp_path: Path) -> None:
    bomb = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}]" for n in range(1, 9)]
    (tmp_path / "kpis.yaml").write_text("\n".join(bomb) + "\n")
    code, _, err = run("validate", str(tmp_path / "kpis.yaml"))
    assert code == 2 and "YAML aliases expand to more than 200,000 values" in err


# 16. References that double at each level are bounded at validation, in time.
def test_reference_blowup_is_refused_quickly(tmp_path: Path) -> None:
    import time

    (tmp_path / "a.csv").write_text("ts,clicks\n2026-04-01T10:00:00,1\n")
    kpis = ["  k0: {unit: count, formula: sum(a.clicks), grain: day}"]
    kpis += [f"  k{i}: {{unit: count, formula: k{i - 1} + k{i - 1}, grain: day}}" for i in range(1, 41)]
    spec = _spec(tmp_path, "  a: {connector: csv, path: a.csv, time: ts}", "\n".join(kpis))
    started = time.monotonic()
    code, _, err = run("run", spec, "--kpi", "k40", "--as-of", "2026-04-01")
    assert time.monotonic() - started < 60  # was minutes and gigabytes; a bound, not a benchmark
    assert code == 2 and "formula expands to 16,383 terms" in err and "kpis.k13.formula" in err
    spec = _spec(tmp_path, "  a: {connector: csv, path: a.csv, time: ts}", "\n".join(kpis[:13]))
    out = run_json("run", spec, "--kpi", "k12", "--as-of", "2026-04-01")
    assert out["kpis"][0]["series"][0]["value"] == 2**12  # 12 doublings of one click, below the bound


# 25. A float-summation difference is not a change; a real one prints with the digits that show it.
def test_history_compares_values_at_a_tolerance() -> None:
    from kpi_engine.history import Snapshot, changes

    def snap(value: float) -> Snapshot:
        return Snapshot(1, "", "2026-06-30", "h", "k", "2026-06", value, None, None, "on_track", "", None, None)

    assert changes(snap(22576.9), snap(22576.899999999998)) == []
    assert changes(snap(22576.9), snap(22576.91)) == ["value 22576.9 -> 22576.91"]
    assert changes(snap(0.1 + 0.2), snap(0.3)) == []


# 31. Why texts and the scorecard never round away the difference they report.
def test_values_compared_read_differently() -> None:
    from kpi_engine.spec import Unit
    from kpi_engine.units import formatter

    fmt = formatter([0.0175, 0.0190, 0.0150], Unit.PERCENT)
    assert (fmt(0.0175), fmt(0.0190), fmt(0.0150)) == ("0.018%", "0.019%", "0.015%")
    fmt = formatter([1234.5, 1234.5], Unit.CURRENCY)
    assert fmt(1234.5) == "1,234.50"
    fmt = formatter([0.123456, 0.123457], Unit.RATIO)
    assert fmt(0.123456) != fmt(0.123457)
    from kpi_engine.units import format_change

    assert format_change(0.0042, Unit.PERCENT) == "+0.004 pp"  # was +0.00 pp
    assert format_change(-0.19, Unit.PERCENT) == "-0.19 pp"
    assert format_change(1e-13, Unit.CURRENCY) == "+0.00"


def test_status_text_shows_the_difference(tmp_path: Path) -> None:
    rows = ["ts,clicks,views"]
    for day in range(1, 31):
        rows.append(f"2026-04-{day:02d}T10:00:00,{175 if day <= 30 else 0},1000000")
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    spec = _spec(
        tmp_path,
        "  a: {connector: csv, path: a.csv, time: ts}",
        "  ctr:\n    unit: percent\n    formula: 100 * sum(a.clicks) / sum(a.views)\n    grain: month\n"
        "    target: {direction: increase, value: 0.0190, baseline: 0.0190, start: 2026-04-01, deadline: 2026-12-31, pace: none}",
    )
    out = run_json("run", spec, "--as-of", "2026-05-01")
    why = out["kpis"][0]["status"]["why"]
    assert why.startswith("off track: 0.018% in 2026-04 vs target 0.019%"), why  # was 0.02% vs 0.02%


# 30. A forecast uses only complete, covered periods of the target window: it stops moving after the deadline.
def test_forecast_ignores_periods_after_the_deadline(tmp_path: Path) -> None:
    import numpy as np

    rows = ["ts,n"]
    day = dt.date(2026, 1, 1)
    while day <= dt.date(2026, 9, 1):  # the export stops on 1 Sep: September is 1/30 covered
        rows.append(f"{day}T10:00:00,{day.month * 10 + (day.day % 3)}")
        day += dt.timedelta(days=1)
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    target = "{direction: increase, value: 5000, baseline: 300, start: 2026-01-01, deadline: 2026-06-30}"
    spec = _spec(tmp_path, "  a: {connector: csv, path: a.csv, time: ts}", f"  s: {{unit: count, formula: sum(a.n), grain: month, target: {target}}}")
    forecasts = {
        as_of: run_json("run", spec, "--as-of", as_of)["kpis"][0]["status"]["forecast"]
        for as_of in ("2026-07-15", "2026-08-31", "2026-09-30", "2026-11-30")
    }
    assert len({f["value"] for f in forecasts.values()}) == 1, forecasts
    frame = pl.read_csv(tmp_path / "a.csv", try_parse_dates=True).group_by(pl.col("ts").dt.month_start()).agg(pl.col("n").sum()).sort("ts")
    months = frame.filter(pl.col("ts") < dt.datetime(2026, 7, 1))
    x = np.array([(d.date() - dt.date(2026, 1, 1)).days for d in months["ts"]], dtype=float)
    slope, intercept = np.polyfit(x, months["n"].to_numpy().astype(float), 1)
    expected = intercept + slope * (dt.date(2026, 6, 1) - dt.date(2026, 1, 1)).days
    assert forecasts["2026-11-30"]["value"] == pytest.approx(expected)
    assert forecasts["2026-11-30"]["periods"] == [f"2026-{m:02d}" for m in range(1, 7)]


# 32. A comparison against a partly covered period says so.
def test_comparisons_with_partial_periods_are_flagged(tmp_path: Path) -> None:
    rows = ["ts,spend"] + [f"2026-04-{d:02d}T10:00:00,100" for d in range(9, 27)]  # from Thursday 9 April
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    spec = _spec(
        tmp_path,
        "  a: {connector: csv, path: a.csv, time: ts}",
        "  spend: {unit: currency, formula: sum(a.spend), grain: week, review: {cadence: weekly, day: monday, meeting: Sync}}",
    )
    code, out, err = run("due", spec, "--as-of", "2026-04-20", "--format", "json")
    assert code == 0, err
    review = json.loads(out)["reviews"][0]
    previous = review["comparisons"][0]
    assert (previous["label"], previous["value"], previous["warning"]) == ("previous review", 400, "partial: data for 4 of 7 days")
    assert previous["coverage"] == pytest.approx(4 / 7, abs=1e-4)
    code, text, _ = run("due", spec, "--as-of", "2026-04-20")
    assert "[partial: data for 4 of 7 days]" in text
    out_file = tmp_path / "r.md"
    code, _, err = run("report", spec, "--as-of", "2026-04-20", "--format", "md", "-o", str(out_file))
    assert code == 0, err
    assert "+75.0% (partial: data for 4 of 7 days)" in out_file.read_text()  # 700 against 400: a relative change


# 33. A stale source gives one warning and a series that stops at the first period without data.
def test_stale_sources_warn_and_stop_the_series(tmp_path: Path) -> None:
    rows = ["ts,x"] + [f"2020-{m:02d}-15T10:00:00,1" for m in range(1, 13)]
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    spec = _spec(tmp_path, "  a: {connector: csv, path: a.csv, time: ts}", "  n: {name: N, unit: count, formula: count(a), grain: week}")
    code, out, err = run("run", spec, "--as-of", "2026-06-30", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    warning = "stale data: source `a` ends on 2020-12-15, 2023 days before as-of 2026-06-30; series stop at the first period without data (pass --to for more)"
    assert doc["warnings"] == [warning] and err == f"warning: {warning}\n"
    series = doc["kpis"][0]["series"]
    assert series[-1]["period"] == "2020-W52" and series[-1]["has_data"] is False
    assert [r for r in series if not r["has_data"]] == [series[-1]]
    explicit = run_json("run", spec, "--as-of", "2026-06-30", "--to", "2021-03-31")
    assert explicit["kpis"][0]["series"][-1]["period"] == "2021-W13"


# 34. A count that is not a whole number is flagged in the run and by lint.
def test_fractional_counts_are_flagged(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ts,orders\n2026-04-01T10:00:00,2.5\n2026-04-02T10:00:00,3\n")
    spec = _spec(tmp_path, "  a: {connector: csv, path: a.csv, time: ts}", "  orders: {name: Orders, unit: count, formula: sum(a.orders), grain: month}")
    code, out, err = run("run", spec, "--as-of", "2026-05-31", "--format", "json")
    assert code == 0
    assert "warning: KPI `orders` is a count but is 5.5 in 2026-04 (1 fractional values)" in err
    code, out, err = run("lint", spec, "--as-of", "2026-05-31")
    assert "a count that is not a whole number: 5.5 in 2026-04" in out + err


# 35. and 28. Diagnostic KPIs are linted as such; the README's tour KPIs are SMART as written.
def test_diagnostic_kpis_and_the_readme_tour(tmp_path: Path) -> None:
    import re

    from kpi_engine.lint import lint_kpi
    from kpi_engine.plugins import default_registry
    from kpi_engine.spec import load_project

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    tour = re.search(r"## A tour of the spec\n\n```yaml\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "kpis").mkdir()
    (tmp_path / "data").mkdir()  # the tour's data_root
    (tmp_path / "kpis" / "tour.yaml").write_text(tour)
    project = load_project(tmp_path / "kpis" / "tour.yaml", default_registry().connector_schemas())
    scores = {k: lint_kpi(kpi, None) for k, kpi in project.kpis.items()}
    assert scores["ctr"].score == 5 and scores["ctr"].findings == []
    assert scores["spend"].score == 5 and scores["spend"].findings == []  # role: diagnostic, no target
    assert {f.rule for f in scores["cpl"].findings} >= {"no-target", "no-objective", "no-owner"}
    bare = load_project(_write(tmp_path / "d.yaml", "version: 1\nsources:\n  a: {connector: csv, path: a.csv, time: ts}\nkpis:\n  d: {unit: count, formula: count(a), grain: day, role: diagnostic}\n"), default_registry().connector_schemas())
    rules = {f.rule for f in lint_kpi(bare.kpis["d"], None).findings}
    assert "no-description" in rules and not rules & {"no-target", "no-objective", "no-deadline"}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# validate shows every problem in one pass: a bad grain no longer hides a misspelt column or source.
def test_validate_reports_spec_data_and_formula_problems_together(tmp_path: Path) -> None:
    (tmp_path / "ads.csv").write_text("ts,clicks,channel\n2026-04-01T10:00:00,1,a\n")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          visits: {connector: csv, path: ads.csv, time: ts}
          broken: {connector: csv, time: ts}
        kpis:
          a: {unit: count, formula: sum(visits.clikcs), grain: monthly}
          b: {unit: count, formula: count(visit where clicks > 1), grain: day}
          c: {unit: count, formula: sum(broken.x), grain: day}
          d: {unit: count, formula: a + c, grain: day, target: {direction: up}}
        """,
    )
    code, _, err = run("validate", str(tmp_path / "kpis.yaml"))
    assert code == 2
    for line in (
        "kpis.yaml:6:56: invalid value `monthly` (at `kpis.a.grain`)",
        "kpis.yaml:9:68: invalid value `up` (at `kpis.d.target.direction`)",
        "kpis.yaml:4:11: missing required field `path` (at `sources.broken`)",
        "kpis.yaml:6:33: unknown column `clikcs` in source `visits` (at `kpis.a.formula`)",
        "kpis.yaml:7:35: unknown source `visit` (at `kpis.b.formula`)",
        "hint: did you mean `visits`? (sources: visits)",
    ):
        assert line in err
    assert err.rstrip().endswith("5 errors")  # nothing said twice about `broken` or the KPIs built on it


# Data beside the spec folder: data_root, --data, and validate/lint without --allow-outside.
@pytest.fixture()
def beside(tmp_path: Path) -> Path:
    (tmp_path / "kpis").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("ts,clicks\n2026-04-01T10:00:00,3\n")
    (tmp_path / "kpis" / "k.yaml").write_text(
        "version: 1\nsources:\n  a: {connector: csv, path: ../data/a.csv, time: ts}\n"
        "kpis:\n  n: {unit: count, formula: sum(a.clicks), grain: day}\n"
    )
    return tmp_path


def test_data_beside_the_spec_folder(beside: Path) -> None:
    spec = str(beside / "kpis")
    code, _, err = run("run", spec, "--as-of", "2026-04-01")
    assert code == 2 and "path `../data/a.csv` of source `a` is outside the spec folder" in err
    assert "add `data_root: ../data`" in err and "--data DIR" in err
    out = run_json("run", spec, "--as-of", "2026-04-01", "--data", str(beside / "data"))
    assert out["kpis"][0]["series"][0]["value"] == 3
    code, out, err = run("validate", spec)
    assert code == 0 and out.startswith("ok: 1 KPIs")
    assert "note: source `a` reads data outside the folders data may be read from" in err
    code, out, err = run("lint", spec, "--as-of", "2026-04-01")
    assert code == 0 and "note: source `a`" in err
    code, out, err = run("test", spec, "--data", str(beside / "data"))
    assert "no such option" not in err
    text = (beside / "kpis" / "k.yaml").read_text()
    (beside / "kpis" / "k.yaml").write_text("data_root: ../data\n" + text)
    assert run_json("run", spec, "--as-of", "2026-04-01")["kpis"][0]["series"][0]["value"] == 3
    (beside / "kpis" / "k.yaml").write_text("data_root: ../nowhere\n" + text)
    code, _, err = run("validate", spec)
    assert code == 2 and "data_root `../nowhere` is not a folder" in err


def test_a_symlinked_data_folder_is_explained(beside: Path) -> None:
    (beside / "kpis" / "data").symlink_to(beside / "data")
    (beside / "kpis" / "k.yaml").write_text((beside / "kpis" / "k.yaml").read_text().replace("../data/a.csv", "data/a.csv"))
    code, _, err = run("run", str(beside / "kpis"), "--as-of", "2026-04-01")
    assert code == 2
    assert f"path `data/a.csv` of source `a` is outside the spec folder (it is a link to {beside / 'data' / 'a.csv'})" in err


# 27. A folder path reads every file of the connector's type below it; their headers must agree.
def test_a_folder_of_csv_files(tmp_path: Path) -> None:
    (tmp_path / "data" / "2026").mkdir(parents=True)
    (tmp_path / "data" / "jan.csv").write_text("ts,n\n2026-01-10T10:00:00,1\n")
    (tmp_path / "data" / "2026" / "feb.csv").write_text("ts,n\n2026-02-10T10:00:00,2\n2026-02-11T10:00:00,3\n")
    (tmp_path / "data" / "notes.md").write_text("not data")
    spec = _spec(tmp_path, "  a: {connector: csv, path: data, time: ts}", "  n: {unit: count, formula: sum(a.n), grain: month}")
    out = run_json("run", spec, "--as-of", "2026-02-28")
    assert [(r["period"], r["value"]) for r in out["kpis"][0]["series"]] == [("2026-01", 1), ("2026-02", 5)]
    (tmp_path / "data" / "mar.csv").write_text("ts,count\n2026-03-10T10:00:00,2\n")
    code, _, err = run("run", spec, "--as-of", "2026-03-31")
    assert code == 2 and "data/mar.csv has columns ['ts', 'count'], but data/2026/feb.csv has ['ts', 'n']" in err


# csv options that the exports test does not reach: quotes, UTF-16, Latin-1, lossy UTF-8.
@pytest.mark.parametrize(
    "options, payload, expected",
    [
        ("quote_char: \"'\"", b"ts,label,n\n2026-04-01T10:00:00,'a, b',4\n", 4),
        ("quote_char: null", b'ts,label,n\n2026-04-01T10:00:00,"a b",4\n', 4),
        ("encoding: utf16, separator: \"\\t\"", "ts\tlabel\tn\n2026-04-01T10:00:00\tété\t4\n".encode("utf-16"), 4),
        ("encoding: latin1", "ts,label,n\n2026-04-01T10:00:00,été,4\n".encode("latin-1"), 4),
        ("encoding: utf8-lossy", b"ts,label,n\n2026-04-01T10:00:00,\xe9t\xe9,4\n", 4),
        ("skip_rows: 2", b"Report: April\nGenerated 2026-05-01\nts,label,n\n2026-04-01T10:00:00,x,4\n", 4),
    ],
)
def test_csv_options(tmp_path: Path, options: str, payload: bytes, expected: int) -> None:
    (tmp_path / "a.csv").write_bytes(payload)
    spec = _spec(tmp_path, f"  a: {{connector: csv, path: a.csv, time: ts, {options}}}", "  n: {unit: count, formula: sum(a.n), grain: day}")
    assert run_json("run", spec, "--as-of", "2026-04-01")["kpis"][0]["series"][0]["value"] == expected


def test_ndjson_time_options(tmp_path: Path) -> None:
    (tmp_path / "e.ndjson").write_text(
        '{"at": "30/06/2026 23:30", "n": 1}\n\n{"at": "01/07/2026 00:10", "n": 2}\n{"at": 1782864000, "n": 4}\n'
    )
    spec = _spec(tmp_path, '  e: {connector: ndjson, path: e.ndjson, time: at, time_format: "%d/%m/%Y %H:%M", time_zone: Europe/London}', "  n: {unit: count, formula: sum(e.n), grain: month}")
    code, _, err = run("run", spec, "--as-of", "2026-07-31")
    assert code == 2 and "e.ndjson line 4: time `1782864000` matches no time_format" in err
    (tmp_path / "e.ndjson").write_text('{"at": "30/06/2026 23:30", "n": 1}\n{"at": "01/07/2026 00:10", "n": 2}\n')
    out = run_json("run", spec, "--as-of", "2026-07-31")
    # 00:10 on 1 July in London is 23:10 UTC on 30 June: a June order in this UTC calendar
    assert [(r["period"], r["value"]) for r in out["kpis"][0]["series"]] == [("2026-06", 3), ("2026-07", None)]


def test_bad_source_options_say_what_is_expected(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ts,x\n2026-04-01T10:00:00,1\n")
    spec = _spec(tmp_path, '  a: {connector: csv, path: a.csv, time: ts, time_format: 5, time_unit: h, separator: ";;"}', "  n: {unit: count, formula: count(a), grain: day}")
    code, _, err = run("validate", spec)
    assert code == 2
    assert 'invalid value `";;"` (at `sources.a.separator`)\n  expected: Field separator, one character' in err
    assert "invalid value `5` (at `sources.a.time_format`)\n  expected: How to read a text" in err
    assert "invalid value `h` (at `sources.a.time_unit`)\n  expected: one of: s, ms, us, ns" in err


# Same data, same bytes: float sums must not depend on polars' thread scheduling, hash seed or engine.
def test_same_data_gives_the_same_bytes(tmp_path: Path) -> None:
    import math
    import random
    import subprocess
    import sys

    rng = random.Random(7)
    n = 300_000
    start = dt.datetime(2026, 1, 1)
    frame = pl.DataFrame(
        {
            "ts": [start + dt.timedelta(minutes=rng.randrange(60 * 24 * 90)) for _ in range(n)],
            "channel": [rng.choice(["ads", "email", "social", "seo", None]) for _ in range(n)],
            "amount": [round(rng.lognormvariate(3, 2), 2) for _ in range(n)],
        }
    )
    frame.write_parquet(tmp_path / "orders.parquet")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          orders: {connector: parquet, path: orders.parquet, time: ts}
        kpis:
          revenue: {name: Revenue, unit: currency, formula: sum(orders.amount), grain: day, dimensions: [channel]}
          weekly: {name: Weekly revenue, unit: currency, formula: sum(orders.amount), grain: week}
          aov: {name: AOV, unit: currency, formula: mean(orders.amount), grain: month, dimensions: [channel]}
        """,
    )
    command = [sys.executable, "-m", "kpi_engine", "run", str(tmp_path), "--as-of", "2026-03-31", "--format", "json"]
    runs = [command] * 3 + [[*command, "--streaming"]] * 2
    outputs = {subprocess.run(c, capture_output=True, check=True).stdout for c in runs}
    assert len(outputs) == 1
    weekly = {r["start"]: r["value"] for r in json.loads(outputs.pop())["kpis"][1]["series"]}
    by_week = frame.group_by(pl.col("ts").dt.truncate("1w").dt.date()).agg("amount")
    exact = {str(d): math.fsum(v) for d, v in by_week.iter_rows()}
    assert weekly.keys() == exact.keys()
    assert all(math.isclose(weekly[w], exact[w], rel_tol=4e-16) for w in exact)  # within about an ulp
