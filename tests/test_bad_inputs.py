"""The corpus of broken specs: each NAME.yaml (or folder NAME/) fails `kpi validate` with exit 2 and the
lines of NAME.expected in its message (file:line:column, field, what was expected, hint)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from kpi_engine.cli import main

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = sorted(p.stem for p in CORPUS.glob("*.expected"))


def test_corpus_is_not_empty():
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", CASES)
def test_bad_input(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    target = name if (CORPUS / name).is_dir() else f"{name}.yaml"
    result = CliRunner().invoke(main, ["validate", target])
    output = result.stderr if hasattr(result, "stderr") else result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    for line in (CORPUS / f"{name}.expected").read_text().splitlines():
        if line.strip():
            assert line in output, f"missing line:\n{line}\n--- got ---\n{output}"
    assert len(output.splitlines()) <= 40, "an error must fit on one screen"
    assert os.path.exists(CORPUS / target)
