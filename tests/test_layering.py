"""Structure the project promises: light start-up, polars-free parsing, documented hooks."""

from __future__ import annotations

import datetime as dt
import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

from kpi_engine import ReportFormat, hookimpl, hookspecs
from kpi_engine.plugins import build_registry

ROOT = Path(__file__).parents[1]


def _imports_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_layering_contract_holds():
    """import-linter's layers contract (pyproject.toml): every import, inside functions too, points down."""
    tool = Path(sys.executable).parent / "lint-imports"
    assert tool.exists(), "lint-imports is missing: pip install -e '.[test]' installs import-linter"
    res = subprocess.run([str(tool), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 kept, 0 broken" in res.stdout


def test_the_layering_contract_names_every_module():
    """A module missing from the layers would be unconstrained: the contract must list them all."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    listed = {name.strip() for layer in config["layers"] for name in layer.split("|")}
    package = ROOT / "kpi_engine"
    modules = {f"kpi_engine.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {f"kpi_engine.{p.parent.name}" for p in package.glob("*/__init__.py")}
    assert modules == listed, f"not in the layers: {sorted(modules - listed)}; gone: {sorted(listed - modules)}"


def test_cli_and_formula_do_not_import_polars():
    assert "polars" not in _imports_after("import kpi_engine.cli")
    assert "polars" not in _imports_after("import kpi_engine.formula")
    assert "polars" not in _imports_after("import kpi_engine.spec")


def test_kpi_run_loads_only_what_it_needs(tmp_path):
    """`kpi run` of KPIs without targets: no numpy (forecasts), no charts or templates, no SQL generator, no
    mail or HTTP stack (channels)."""
    import polars as pl

    pl.DataFrame({"ts": [dt.datetime(2026, 6, 1, 9)], "channel": ["web"], "clicks": [3], "impressions": [90]}).write_parquet(tmp_path / "ads.parquet")
    (tmp_path / "kpis.yaml").write_text(
        "version: 1\nsources:\n  ads: {connector: parquet, path: ads.parquet, time: ts}\nkpis:\n"
        "  ctr: {unit: percent, formula: 100 * sum(ads.clicks) / sum(ads.impressions), grain: week, dimensions: [channel]}\n"
    )
    run = f"from kpi_engine.cli import main\ntry: main(['run', {str(tmp_path)!r}, '--as-of', '2026-06-30', '--format', 'json', '-o', {str(tmp_path / 'o.json')!r}])\nexcept SystemExit as e: assert not e.code, e.code"
    loaded = _imports_after(f"exec({run!r})")
    assert "polars" in loaded and (tmp_path / "o.json").exists()
    for heavy in ("numpy", "vl_convert", "jinja2", "sqlglot", "smtplib", "ssl", "urllib.request"):
        assert heavy not in loaded, f"`kpi run` loaded {heavy}"


def test_every_hook_is_documented_with_its_signature():
    docs = (ROOT / "docs" / "plugins.md").read_text()
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("register_"):
            continue
        params = ", ".join(inspect.signature(func).parameters)
        assert f"### {name}({params})" in docs, name


def test_report_formats_are_registered_through_the_hook():
    plugin = types.ModuleType("kpi_slack")

    @hookimpl
    def register_report_formats(register):
        register(ReportFormat(name="slack", extension="txt", render=lambda content: "summary"))

    plugin.register_report_formats = register_report_formats
    reg = build_registry(extra=[plugin])
    assert reg.formats["slack"].extension == "txt"
    assert "format:slack" in reg.plugins["kpi_slack"]


def test_modules_and_functions_stay_small():
    """About 400 lines a module and 80 a function (issue 12): past that, split along the pipeline."""
    import ast

    for path in [*(ROOT / "kpi_engine").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        text = path.read_text()
        lines = len(text.splitlines())
        assert lines <= 420, f"{path.name} has {lines} lines: split it along the pipeline"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                assert length <= 80, f"{path.name}: {node.name} has {length} lines"


def test_no_eval_or_exec():
    for path in (ROOT / "kpi_engine").rglob("*.py"):
        assert not re.search(r"\b(eval|exec)\(", path.read_text()), path


def test_plugins_use_only_the_public_namespace():
    """First-party plugins are written like a third party's: `from kpi_engine import ...`, nothing internal."""
    import ast

    for path in (ROOT / "plugins").rglob("*.py"):
        if "tests" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kpi_engine."):
                raise AssertionError(f"{path.relative_to(ROOT)} imports {node.module}: use `from kpi_engine import`")
    import kpi_engine

    for name in kpi_engine.__all__:
        assert getattr(kpi_engine, name) is not None, name
