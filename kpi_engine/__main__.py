"""`python -m kpi_engine` is the `kpi` command."""

from .cli import main

if __name__ == "__main__":  # (a worker process that draws charts imports this module too: it must not run)
    main()
