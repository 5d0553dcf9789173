"""Fuzz target (atheris, coverage-guided) for the formula tokenizer, parser and printer.

    python tests/fuzz/fuzz_formula.py -max_total_time=60 -timeout=5 CORPUS_DIR SEED_DIR

Any input must either parse, print and re-parse to the same tree, or raise FormulaSyntaxError with a span
inside the text. Anything else (another exception, a hang past -timeout) is a finding: libFuzzer writes
the input to crash-*/timeout-*; add it to tests/bad_inputs as a corpus case once fixed.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["kpi_engine"]):
    from kpi_engine.formula import FormulaSyntaxError, parse, to_source


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        tree = parse(text)
    except FormulaSyntaxError as exc:
        start, end = exc.span  # "found end of formula" points one past the last character
        assert 0 <= start <= end <= len(text) + 1, f"span {exc.span} outside a text of {len(text)} characters"
        return
    printed = to_source(tree)
    assert parse(printed) == tree, f"{text!r} printed as {printed!r} parses differently"


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
