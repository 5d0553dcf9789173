"""Fuzz target (atheris, coverage-guided) for the spec loader: YAML, schema, binding, planning, evaluation.

    python tests/fuzz/fuzz_spec.py -max_total_time=60 -timeout=10 CORPUS_DIR SEED_DIR

Each input is written as the kpis.yaml of a folder that also holds a small CSV (``data/ads.csv``) and is
loaded, then evaluated when it loads. It must end in a result or a KpiError (the one-screen error the CLI
prints with exit 2); any other exception is a finding (libFuzzer writes crash-*; add it to tests/bad_inputs
once fixed).
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

PIPELINE = ("yaml_loader", "spec", "schema", "formula", "resolve", "rowbind", "plan", "compile", "execute", "series")

with atheris.instrument_imports(include=["kpi_engine"]):  # only modules imported here are instrumented
    import kpi_engine
    from kpi_engine.errors import KpiError

    for module in PIPELINE:
        importlib.import_module(f"kpi_engine.{module}")

HERE = Path(__file__).parent
# libFuzzer ends the process without running atexit: the caller names a folder it cleans up itself
FOLDER = Path(os.environ.get("KPI_FUZZ_WORKDIR") or tempfile.mkdtemp(prefix="kpi-fuzz-"))
FOLDER.mkdir(parents=True, exist_ok=True)
shutil.copytree(
    HERE.parent / "bad_inputs" / "data", FOLDER / "data", ignore=shutil.ignore_patterns("broken"), dirs_exist_ok=True
)


def test_one_input(data: bytes) -> None:
    spec = FOLDER / "kpis.yaml"
    spec.write_bytes(data)
    try:
        catalog = kpi_engine.load(spec)
        catalog.evaluate(dt.date(2026, 6, 30))
    except KpiError as exc:
        assert exc.render().strip(), "an error with no text"


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
