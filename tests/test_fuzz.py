"""The fuzz targets run briefly on every test run (KPI_FUZZ_SECONDS each, default 20) and must find nothing.

Longer runs: ``python tests/fuzz/fuzz_spec.py -max_total_time=3600 corpus/ seeds/``. Findings are written
as crash-* files; once fixed, each goes to tests/fuzz/findings/<target>/ (replayed on every run as a seed)
and, when it is a broken input, to tests/bad_inputs with the error it must give.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).parent
SECONDS = int(os.environ.get("KPI_FUZZ_SECONDS", "20"))
# a fixed seed keeps CI's short run repeatable (a red build means the change, not luck); explore with another
SEED = int(os.environ.get("KPI_FUZZ_SEED", "1"))


def _seeds(target: str, folder: Path) -> None:
    """Seed inputs: the corpus of broken specs and the shipped catalogue (specs), or their formulas."""
    folder.mkdir()
    specs = sorted((HERE / "bad_inputs").glob("*.yaml")) + sorted((HERE.parent / "kpi_specs").glob("*.yaml"))
    formulas: set[str] = set()
    for n, path in enumerate(specs):
        data = path.read_bytes()
        if target == "spec":
            (folder / f"{n}.yaml").write_bytes(data)
            continue
        try:
            doc = yaml.safe_load(data)
        except (yaml.YAMLError, ValueError):  # broken on purpose: bad dates, tabs, ...
            continue
        for body in (doc or {}).get("kpis", {}).values() if isinstance(doc, dict) else ():
            if isinstance(body, dict) and isinstance(body.get("formula"), str):
                formulas.add(body["formula"])
    for n, formula in enumerate(sorted(formulas)):
        (folder / f"{n}.txt").write_text(formula)
    for finding in sorted((HERE / "fuzz" / "findings" / target).glob("[!.]*")):  # replayed on every run
        (folder / f"finding-{finding.name}").write_bytes(finding.read_bytes())


@pytest.mark.parametrize("target", ["formula", "spec"])
def test_fuzz_target_finds_nothing(target: str, tmp_path: Path) -> None:
    if not os.environ.get("CI"):
        pytest.importorskip("atheris")
    _seeds(target, tmp_path / "seeds")
    (tmp_path / "corpus").mkdir()
    res = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz" / f"fuzz_{target}.py"),
            f"-max_total_time={SECONDS}",
            f"-seed={SEED}",
            "-timeout=10",
            "-rss_limit_mb=4096",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path / "corpus"),
            str(tmp_path / "seeds"),
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 300,
        env={**os.environ, "KPI_FUZZ_WORKDIR": str(tmp_path / "work")},
    )
    findings = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    cut = res.stderr.find("=== Uncaught Python exception")
    tail = res.stderr[cut : cut + 4000] if cut >= 0 else "\n".join(res.stderr.splitlines()[-30:])
    assert res.returncode == 0 and not findings, f"fuzz_{target} found {findings}:\n{tail}"
    runs = re.findall(r"Done (\d+) runs", res.stderr)
    assert runs and int(runs[-1]) >= 100, f"the fuzzer barely ran:\n{tail}"
