"""First-party `dataframe` connector: sources backed by polars frames handed to the Python API."""

from __future__ import annotations

import polars as pl

from kpi_engine import Connector, Diagnostic, Env, KpiError, ScanRequest, SourceSpec, did_you_mean, hookimpl


class DataFrameConnector(Connector):
    name = "dataframe"
    description = "A polars DataFrame or LazyFrame passed as kpi_engine.load(..., frames={name: df})."
    options_schema = {
        "properties": {"frame": {"type": "string", "description": "Key in `frames` (default: the source name)."}},
        "required": [],
    }

    def _frame(self, source: SourceSpec, env: Env) -> pl.LazyFrame:
        key = source.options.get("frame", source.name)
        if key not in env.frames:
            raise KpiError(
                Diagnostic(
                    f"no frame `{key}` was passed for source `{source.name}`",
                    source.loc(),
                    hint=did_you_mean(key, env.frames, "frames passed")
                    or f"pass it: kpi_engine.load(path, frames={{'{key}': df}})",
                )
            )
        frame = env.frames[key]
        return frame.lazy() if isinstance(frame, pl.DataFrame) else frame

    def schema(self, source: SourceSpec, env: Env) -> pl.Schema:
        return self._frame(source, env).collect_schema()

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        return self._frame(source, env)


@hookimpl
def register_connectors(register) -> None:  # type: ignore[no-untyped-def]
    register(DataFrameConnector())
