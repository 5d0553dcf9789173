"""The corpus of broken inputs: each NAME.yaml (or folder NAME/) fails `kpi validate` with exit 2 and the
lines of NAME.expected in its message (file:line:column, field, what was expected, hint).

Broken data that only a run can find (ragged rows, bad timestamps, types changing between files) says so
in the first line of its .expected: ``$ kpi run --as-of 2026-06-30`` runs that command on the spec instead.
"""

from __future__ import annotations

import os
import shlex
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
    expected = (CORPUS / f"{name}.expected").read_text().splitlines()
    command = ["validate"]
    if expected and expected[0].startswith("$ kpi "):
        command = shlex.split(expected.pop(0)[len("$ kpi ") :])
    result = CliRunner().invoke(main, [command[0], target, *command[1:]])
    output = result.stderr if hasattr(result, "stderr") else result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    for line in expected:
        if line.strip():
            assert line in output, f"missing line:\n{line}\n--- got ---\n{output}"
    assert len(output.splitlines()) <= 40, "an error must fit on one screen"
    assert os.path.exists(CORPUS / target)
