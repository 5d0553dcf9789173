"""Report rendering against evaluation: `kpi report` and `kpi run` on the demo catalogue, and on the same
catalogue grown to 200 KPIs.

    python bench/report.py                # 40 and 200 KPIs, median of 3
    python bench/report.py --kpis 40 --repeat 1

The 200-KPI catalogue repeats the demo's KPIs under new ids (`ctr_2`, ...): same formulas, sources and
reviews, so every one is evaluated and charted. Both commands are timed as whole processes. Appends a JSON
line per size to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from timing import compile_engine, timed  # noqa: E402

AS_OF = "2026-06-30"


def catalogue(kpis: int, folder: Path) -> Path:
    """The demo's spec files, plus copies of its KPIs under new ids up to ``kpis`` in all."""
    for file in (ROOT / "kpi_specs").glob("*.yaml"):
        shutil.copy(file, folder / file.name)
    originals = {}
    for file in sorted(folder.glob("*.yaml")):
        originals.update((yaml.safe_load(file.read_text()) or {}).get("kpis") or {})
    extra, copy = {}, 2
    while len(originals) + len(extra) < kpis:
        for kpi_id, body in originals.items():
            if len(originals) + len(extra) >= kpis:
                break
            extra[f"{kpi_id}_{copy}"] = body
        copy += 1
    if extra:
        (folder / "copies.yaml").write_text(yaml.safe_dump({"version": 1, "kpis": extra}, sort_keys=False))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kpis", type=int, action="append")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--results", type=Path, default=HERE / "results.jsonl")
    args = parser.parse_args()
    compile_engine()
    for size in args.kpis or [40, 200]:
        with tempfile.TemporaryDirectory(prefix="kpi-bench-report-") as tmp:
            spec = catalogue(size, Path(tmp))
            kpi = [sys.executable, "-m", "kpi_engine"]
            subprocess.run(
                [*kpi, "run", str(spec), "--as-of", AS_OF, "--format", "json", "-o", f"{tmp}/warm.json"],
                check=True,
                capture_output=True,
            )
            run = timed(
                [*kpi, "run", str(spec), "--as-of", AS_OF, "--format", "json", "-o", f"{tmp}/run.json"], args.repeat
            )
            report = timed([*kpi, "report", str(spec), "--as-of", AS_OF, "-o", f"{tmp}/report.html"], args.repeat)
            sections = (Path(tmp) / "report.html").read_text().count('class="kpi"')
        print(
            f"{size} KPIs ({sections} report sections): kpi report {report:.2f} s, kpi run {run:.2f} s, ratio {report / run:.2f}x"
        )
        with args.results.open("a") as f:
            f.write(
                json.dumps(
                    {
                        "bench": "report",
                        "kpis": size,
                        "report_s": round(report, 2),
                        "run_s": round(run, 2),
                        "ratio": round(report / run, 2),
                    }
                )
                + "\n"
            )


if __name__ == "__main__":
    main()
