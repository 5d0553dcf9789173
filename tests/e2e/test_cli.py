"""The `kpi` command end to end, as a user runs it: real files, real processes, exit codes, outputs."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import polars as pl
import pytest
import yaml


def kpi(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kpi_engine", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_validate_ok(example_dir):
    res = kpi("validate", str(example_dir))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok: 11 KPIs, 4 sources, 0 params in 1 file(s)"


def test_validate_reports_all_errors_with_exit_2(tmp_path, example_dir):
    spec = (example_dir / "kpis.yaml").read_text()
    broken = spec.replace("sum(ads.clicks)", "sum(ads.clikcs)").replace(
        "grain: month, dimensions: [channel]}", "grain: monthly, dimensions: [channel]}"
    )
    shutil.copytree(example_dir / "data", tmp_path / "data")
    (tmp_path / "kpis.yaml").write_text(broken)
    res = kpi("validate", "kpis.yaml", cwd=tmp_path)
    assert res.returncode == 2
    assert "kpis.yaml:30:65:" in res.stderr and "invalid value `monthly`" in res.stderr
    assert "Traceback" not in res.stderr
    (tmp_path / "kpis.yaml").write_text(spec.replace("sum(ads.clicks)", "sum(ads.clikcs)"))
    res = kpi("validate", "kpis.yaml", cwd=tmp_path)
    assert res.returncode == 2
    assert "kpis.yaml:19:24: unknown column `clikcs` in source `ads`" in res.stderr
    assert "did you mean `clicks`?" in res.stderr


def test_run_json_shape(example_dir, tmp_path):
    out = tmp_path / "nested" / "dir" / "result.json"
    res = kpi("run", str(example_dir), "--as-of", "2026-06-30", "-o", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert doc["as_of"] == "2026-06-30"
    assert [k["id"] for k in doc["kpis"]][:3] == ["ctr", "ad_spend", "roi"]
    ctr = doc["kpis"][0]
    assert {k: ctr[k] for k in ("id", "name", "unit", "grain", "dimensions")} == {
        "id": "ctr",
        "name": "Click-through rate",
        "unit": "percent",
        "grain": "week",
        "dimensions": ["channel"],
    }
    row = ctr["series"][0]
    assert set(row) == {"period", "start", "end", "complete", "has_data", "coverage", "dims", "value"}
    assert row["period"] == "2026-W01" and row["start"] == "2025-12-29"
    totals = [r for r in ctr["series"] if r["dims"] == {}]
    per_channel = [r for r in ctr["series"] if r["dims"]]
    assert {tuple(r["dims"]) for r in per_channel} == {("channel",)}
    assert totals[-1]["complete"] is False and totals[-2]["complete"] is True
    # nulls are JSON null (zero-impression weeks of print), never NaN
    assert any(r["value"] is None for r in per_channel)
    assert "NaN" not in out.read_text() and "Infinity" not in out.read_text()
    # targets: status with its why, expected value, forecast; SMART lint per KPI
    status = ctr["status"]
    assert status["status"] in ("achieved", "on_track", "at_risk", "off_track")
    assert status["period"] == "2026-W26" and status["target"] == 2.5
    assert status["why"].startswith(status["status"].replace("_", " "))
    assert status["forecast"]["method"].startswith("least squares over")
    assert ctr["target"] == {
        "direction": "increase",
        "objective": "Lift CTR to 2.5% by the end of Q2 2026 to feed the conversion funnel.",
        "value": 2.5,
        "baseline": 1.8,
        "start": "2026-04-01",
        "deadline": "2026-06-30",
        "measure": "latest",
        "pace": "linear",
        "at_risk": 0.1,
    }
    assert ctr["smart"]["letters"] == {"S": True, "M": True, "A": ctr["smart"]["letters"]["A"], "R": True, "T": True}
    assert doc["kpis"][1]["status"] is None and doc["kpis"][1]["smart"]["score"] < 5
    leads = next(k for k in doc["kpis"] if k["id"] == "leads")
    assert all(isinstance(r["value"], int) for r in leads["series"])  # counts print as integers


def test_run_csv_and_parquet_agree_with_json(example_dir, tmp_path):
    assert kpi("run", str(example_dir), "--as-of", "2026-06-30", "-o", str(tmp_path / "r.parquet")).returncode == 0
    res = kpi("run", str(example_dir), "--as-of", "2026-06-30", "--format", "csv", "--kpi", "ctr", "--kpi", "cpl")
    assert res.returncode == 0, res.stderr
    csv_path = tmp_path / "r.csv"
    csv_path.write_text(res.stdout)
    table = pl.read_csv(csv_path)
    assert set(table["kpi"]) == {"ctr", "cpl"}
    parquet = pl.read_parquet(tmp_path / "r.parquet")
    assert set(parquet["kpi"]) == {
        "ctr",
        "ad_spend",
        "roi",
        "leads",
        "cpl",
        "bounce_rate",
        "unique_visitors",
        "avg_response_minutes",
        "mentions_count",
        "sentiment",
        "revenue_growth",
    }
    joined = (
        table.filter(pl.col("kpi") == "cpl")
        .select("period", "value")
        .join(parquet.filter(pl.col("kpi") == "cpl").select("period", pl.col("value").alias("pq")), on="period")
    )
    assert joined.height == 6
    assert (joined["value"] - joined["pq"]).abs().max() < 1e-9


def test_run_table_filters_and_unknown_kpi(example_dir):
    res = kpi("run", str(example_dir), "--as-of", "2026-06-30", "--kpi", "ctr", "--from", "2026-06-01")
    assert res.returncode == 0
    assert "Click-through rate (ctr)" in res.stdout and "2026-W23" in res.stdout and "2026-W22" not in res.stdout
    assert "2026-W27 (partial)" in res.stdout
    res = kpi("run", str(example_dir), "--kpi", "crt")
    assert res.returncode == 2 and "unknown KPI `crt`" in res.stderr and "did you mean `ctr`?" in res.stderr


def test_bad_dates_and_missing_path(example_dir, tmp_path):
    res = kpi("run", str(example_dir), "--as-of", "2026-02-30")
    assert res.returncode == 2 and "expected YYYY-MM-DD" in res.stderr
    res = kpi("run", str(tmp_path / "nope"))
    assert res.returncode == 2 and "no such file or directory" in res.stderr
    res = kpi("run", str(example_dir), "--from", "2026-06-01", "--to", "2026-05-01")
    assert res.returncode == 2 and "--from 2026-06-01 is after --to 2026-05-01" in res.stderr


def test_failed_run_keeps_previous_output(example_dir, tmp_path):
    out = tmp_path / "result.json"
    out.write_text("previous good output")
    res = kpi("run", str(example_dir), "--kpi", "nope", "-o", str(out))
    assert res.returncode == 2
    assert out.read_text() == "previous good output"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left behind


def test_schema_validates_the_example(example_dir):
    res = kpi("schema")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    assert schema["$schema"].endswith("2020-12/schema")
    spec = yaml.safe_load(
        (Path(__file__).parents[1] / "fixtures" / "example" / "kpis.yaml")
        .read_text()
        .replace('["x", "instagram"]', "['x', 'instagram']")
        .replace(
            "formula: mean(mentions.sentiment where platform in ['x', 'instagram'])",
            "formula: \"mean(mentions.sentiment where platform in ['x', 'instagram'])\"",
        )
    )
    spec["kpis"]["ctr"]["target"] = {
        k: str(v) if isinstance(v, dt.date) else v for k, v in spec["kpis"]["ctr"]["target"].items()
    }
    jsonschema.Draft202012Validator(schema).validate(spec)
    assert set(schema["$defs"]["source"]["properties"]["connector"]["enum"]) >= {
        "csv",
        "parquet",
        "ndjson",
        "sql",
        "dataframe",
    }


def test_plugins_lists_connectors():
    res = kpi("plugins")
    assert res.returncode == 0
    for line in (
        "files: connector:csv, connector:parquet, connector:ndjson",
        "sql: connector:sql",
        "connector dataframe:",
    ):
        assert line in res.stdout


def test_explain_shows_one_scan_per_source(example_dir):
    res = kpi("run", str(example_dir), "--explain", "--as-of", "2026-06-30")
    assert res.returncode == 0
    assert res.stdout.count("source ads (parquet)") == 1
    assert "rolled up from week x ['channel']" in res.stdout


def test_help_is_fast_and_lists_commands():
    res = kpi("--help")
    assert res.returncode == 0
    for command in ("validate", "run", "schema", "plugins"):
        assert command in res.stdout


@pytest.mark.parametrize(
    "broken, message",
    [
        (
            "ts,channel,impressions,clicks,cost\n2026-04-01T10:00:00,search,1,2,3\n2026-04-02T10:00:00,search,1,2,3,9,9\n",
            "cannot read source `ads`",
        ),
        (
            "ts,channel,impressions,clicks,cost\nyesterday,search,1,2,3\n2026-04-02T10:00:00,search,1,2,3\n",
            "ads.csv line 2: time `yesterday` is not ISO 8601",
        ),
    ],
)
def test_data_errors_exit_2_and_name_the_source(tmp_path, broken, message):
    (tmp_path / "ads.csv").write_text(broken)
    (tmp_path / "kpis.yaml").write_text(
        "version: 1\nsources:\n  ads: {connector: csv, path: ads.csv, time: ts}\n"
        "kpis:\n  clicks: {unit: count, formula: sum(ads.clicks), grain: day}\n"
    )
    res = kpi("run", str(tmp_path), "--as-of", "2026-04-30")
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr and "kpis.yaml:3:" in res.stderr
    assert "Traceback" not in res.stderr


def test_truncated_parquet_and_empty_file(tmp_path, example_dir):
    data = (example_dir / "data" / "ad_events.parquet").read_bytes()
    (tmp_path / "ads.parquet").write_bytes(data[: len(data) // 2])
    (tmp_path / "kpis.yaml").write_text(
        "version: 1\nsources:\n  ads: {connector: parquet, path: ads.parquet, time: ts}\n"
        "kpis:\n  clicks: {unit: count, formula: sum(ads.clicks), grain: day}\n"
    )
    res = kpi("validate", str(tmp_path))
    assert res.returncode == 2 and "source `ads`" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "ads.parquet").write_bytes(b"")
    res = kpi("validate", str(tmp_path))
    assert res.returncode == 2 and "source `ads`" in res.stderr


def test_empty_csv_has_no_data(tmp_path):
    (tmp_path / "ads.csv").write_text("ts,clicks\n")
    (tmp_path / "kpis.yaml").write_text(
        "version: 1\nsources:\n  ads: {connector: csv, path: ads.csv, time: ts, dtypes: {ts: datetime, clicks: int}}\n"
        "kpis:\n  clicks: {unit: count, formula: sum(ads.clicks), grain: month}\n"
    )
    res = kpi("run", str(tmp_path), "--as-of", "2026-04-30", "--format", "json")
    assert res.returncode == 0, res.stderr
    series = json.loads(res.stdout)["kpis"][0]["series"]
    assert series == [
        {
            "period": "2026-04",
            "start": "2026-04-01",
            "end": "2026-04-30",
            "complete": True,
            "has_data": False,
            "coverage": 0.0,
            "dims": {},
            "value": None,
        }
    ]


def test_internal_error_exits_1_without_traceback(example_dir, monkeypatch):
    from click.testing import CliRunner

    from kpi_engine import api
    from kpi_engine.cli import main

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(api.Catalog, "evaluate", boom)
    monkeypatch.delenv("KPI_DEBUG", raising=False)
    result = CliRunner().invoke(main, ["run", str(example_dir), "--as-of", "2026-06-30"])
    assert result.exit_code == 1
    assert "internal error: RuntimeError: boom" in result.output
    assert "Traceback" not in result.output


def test_unwritable_output_is_a_clear_error(example_dir):
    res = kpi("run", str(example_dir), "--as-of", "2026-06-30", "--kpi", "leads", "-o", "/proc/kpi-engine/result.json")
    assert res.returncode == 2
    assert "cannot write /proc/kpi-engine/result.json" in res.stderr and "Traceback" not in res.stderr
