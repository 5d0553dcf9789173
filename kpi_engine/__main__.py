"""`python -m kpi_engine` is the `kpi` command."""

from .cli import main

main()
