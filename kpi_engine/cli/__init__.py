"""The `kpi` command: parse arguments, call the library, print. Exit 0 ok, 2 bad input, 1 internal error."""

from __future__ import annotations

from . import alerts_cmd, authoring, core, inspect_cmd, report_cmd, reviews, send_cmd, serve_cmd  # noqa: F401  (register their commands on `main`)
from .common import EXIT_BAD_INPUT, EXIT_INTERNAL, main

__all__ = ["main", "EXIT_BAD_INPUT", "EXIT_INTERNAL"]

if __name__ == "__main__":
    main()
