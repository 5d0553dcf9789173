"""A throwaway PostgreSQL cluster for the tests and the benchmark: ``initdb`` in a temporary folder, ``pg_ctl``
on a free port, stopped afterwards. Without the server binaries ``NoServer`` says how to get them (the tests
turn it into a failure, never a skip)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOW = "install PostgreSQL's server: apt-get install postgresql (CI's .ci/run does), or put pg_ctl on PATH"


class NoServer(RuntimeError):
    """PostgreSQL's server binaries are missing, or the cluster would not start (the message says how)."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise NoServer(f"PostgreSQL's `{name}` is needed: {HOW}")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def cluster() -> Iterator[str]:
    """A running server for the duration of the block; yields its URL (user ``kpi``, password ``s3cret``).

    Its folder is a new one in the system's temporary directory (pytest's are private to the user running
    the tests, which the server's user cannot enter), removed afterwards."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="kpi-pg-"))
    data, pwfile = folder / "pgdata", folder / "pw"
    pwfile.write_text("s3cret\n")
    # the server refuses to run as root: then it runs as the `postgres` user Debian's package creates
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(pwfile, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    run = lambda *args: subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)  # noqa: E731
    done = run(initdb, "-D", str(data), "-U", "kpi", f"--pwfile={pwfile}", "-A", "scram-sha-256", "-E", "UTF8")
    if done.returncode:
        raise NoServer(f"initdb failed: {done.stderr[-1500:]}")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off -c TimeZone=UTC"
    started = run(pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    if started.returncode:
        raise NoServer(f"pg_ctl start failed: {started.stderr[-1500:]}")
    try:
        yield f"postgresql://kpi:s3cret@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
