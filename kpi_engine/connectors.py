"""What a connector plugin implements, and the request the engine hands it for each source."""

from __future__ import annotations

import datetime as dt
import glob
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from .errors import Diagnostic, KpiError, did_you_mean
from .model import SourceSpec


@dataclass(frozen=True)
class ScanRequest:
    """What the plan needs from one source: these columns, rows with ``start <= time < end`` (UTC instants).

    A connector may push both down (a SQL connector does); the engine applies them again, so ignoring them is
    always correct, only slower.
    """

    columns: tuple[str, ...]
    time_column: str
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    #: only these of the files ``Connector.files`` lists (an incremental run reads the changed ones); a
    #: connector whose ``files`` returns None never gets this
    files: tuple[Path, ...] | None = None


@dataclass
class Env:
    """Run-time context shared by connectors: in-memory frames for the Python API and path policy.

    Data may be read below a spec file's folder, below its ``data_root:``, and below any of ``data_dirs``
    (``--data DIR``); ``allow_outside`` lifts the rule.
    """

    frames: Mapping[str, pl.DataFrame | pl.LazyFrame] = field(default_factory=dict)
    allow_outside: bool = False
    data_dirs: tuple[Path, ...] = ()
    skip_outside: bool = False  # validate/lint: data outside is not read (OutsideData), and not an error
    offline: bool = False  # validate: a connector's declared columns stand in for reading its source
    skipped: set[str] = field(default_factory=set)


class OutsideData(KpiError):
    """Data outside the allowed folders, met while ``Env.skip_outside`` is set: the source is left unread."""


class Database:
    """A database that aggregates a source's rows itself (pushdown), returned by ``Connector.database``.

    The engine compiles each group of the plan to one SELECT in ``dialect`` (a sqlglot dialect name) over
    ``relation()``, runs it with ``fetch`` and reads only the aggregates back.
    """

    dialect: str = ""

    def relation(self) -> Any:
        """The source's rows as a sqlglot expression: a quoted table name, or a subquery of the source's SQL."""
        raise NotImplementedError

    def fetch(self, sql: str, params: dict[str, Any]) -> pl.DataFrame:
        """Run one query (its values are the named ``params``) and return its rows, columns by their names."""
        raise NotImplementedError

    def where(self) -> str:
        """Where the data is, for ``--explain`` and errors: a file or a URL without its password."""
        return ""

    def collated(self) -> Collated:
        """The source's text columns that the database does not compare by their bytes: the engine then
        compares them by their bytes in SQL, as polars does. The default, unknown, has every text column so
        compared; a database that knows its columns saves the ``COLLATE`` where a plan would pay for it."""
        return Collated()


@dataclass(frozen=True)
class Collated:
    """Text columns whose database collation differs from comparing bytes (``Database.collated``): in
    equality (``loose``: a case-insensitive collation; group keys, entities) and in order (``ordered``:
    any linguistic one; ``<`` and ``>``). None: unknown, so every text column."""

    loose: frozenset[str] | None = None
    ordered: frozenset[str] | None = None

    def differs(self, name: str, key: bool = False) -> bool:
        """Whether text column ``name`` may compare otherwise than by bytes: as a ``key`` (grouped, joined),
        in equality; else in order too. True when unknown."""
        known = self.loose if key else self.ordered
        return known is None or name in known

    def __or__(self, other: Collated) -> Collated:
        """Both tables' columns (a source and the lookups joined to it): unknown where either is."""
        join = lambda a, b: None if a is None or b is None else a | b  # noqa: E731
        return Collated(join(self.loose, other.loose), join(self.ordered, other.ordered))


class Connector:
    """Base class of data connectors. Subclasses set ``name`` and ``options_schema`` and implement both methods."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: JSON Schema fragment for the connector's own options: {"properties": {...}, "required": [...]}
    options_schema: ClassVar[dict[str, Any]] = {"properties": {}, "required": []}

    def schema(self, source: SourceSpec, env: Env) -> pl.Schema:
        """Column names and types of the source, read without reading the data (metadata or a sample)."""
        raise NotImplementedError

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        """A lazy frame of the source's rows; it should at least hold ``request.columns``."""
        raise NotImplementedError

    def database(self, source: SourceSpec, env: Env) -> Database | None:
        """A database that can aggregate the source's rows itself (pushdown); None (the default): the engine
        reads the rows with ``scan`` and aggregates them in polars."""
        return None

    def files(self, source: SourceSpec, env: Env) -> list[Path] | None:
        """The files the source reads, in read order, when ``scan`` can read a subset of them
        (``ScanRequest.files``) with the same column types: an incremental run then reads only the files that
        changed and those its recomputed periods need. None (the default): the source is read whole."""
        return None

    def declared_schema(self, source: SourceSpec) -> pl.Schema | None:
        """The source's columns known without reading anything (an API's fixed fields, or the source's options).

        ``kpi validate`` then needs no network, token or file; ``kpi run`` still calls ``schema`` and stops if
        the data disagrees with the declaration. None (the default): validate calls ``schema``.
        """
        return None

    def explain_error(self, source: SourceSpec, env: Env, exc: BaseException) -> KpiError:
        """The error shown when reading the source failed: override to name the file, line or column at fault.

        Called on the error path only, so it may re-read the data.
        """
        return data_error(source, exc)

    def sniff(self, path: Path) -> dict[str, Any] | None:
        """How this connector would read the file at ``path`` (``kpi inspect``): ``{"options": {...}, "time":
        column or None}``, or None when the file is not of its kind. May raise KpiError (ambiguous dates)."""
        return None

    def locate_row(self, source: SourceSpec, env: Env, row: int) -> str | None:
        """Where the source's ``row``-th row (0-based, in scan order) is, e.g. ``data/a.csv line 12``.

        Called on the error path only; None when the connector cannot say.
        """
        return None


def allowed_roots(source: SourceSpec, env: Env) -> list[Path]:
    """The folders a source's data may be read from: its spec folder, its ``data_root``, ``--data`` folders."""
    return [source.base_dir.resolve(), *(r.resolve() for r in source.roots), *(d.resolve() for d in env.data_dirs)]


def _resolve(raw: str, source: SourceSpec) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else source.base_dir / path


def check_file(
    path: Path, raw: str, source: SourceSpec, env: Env, key: str = "path", roots: list[Path] | None = None
) -> Path:
    """``path`` (a match of option ``key``) as a resolved regular file inside the allowed folders (``roots``:
    ``allowed_roots``, resolved once by a caller that checks many files).

    Every link is followed before the check, so a link inside the folder that points outside is refused,
    and so is anything that is not a regular file (a FIFO would block the run forever).
    """
    real = path.resolve()
    loc = source.loc(key)
    roots = roots if roots is not None else allowed_roots(source, env)
    if not env.allow_outside and not any(_within(real, root) for root in roots):
        if env.skip_outside:
            raise OutsideData(Diagnostic(f"data of source `{source.name}` is outside the spec folder", loc))
        shown = ", ".join(str(r) for r in roots)
        linked = path.is_symlink() or any(p.is_symlink() for p in path.parents)
        via = f" (it is a link to {real})" if linked else ""
        where = "the spec folder" if len(roots) == 1 else "the spec folder and its data folders"
        raise KpiError(
            Diagnostic(
                f"path `{raw}` of source `{source.name}` is outside {where}{via}",
                loc,
                expected=f"a file below {shown}",
                hint="data is read only below the spec folder, so that a spec cannot read other files: move the "
                "data there, add `data_root: ../data` (relative to the spec file) to the spec file, pass "
                "--data DIR, or pass --allow-outside",
            )
        )
    if real.exists() and not real.is_file() and not real.is_dir():
        raise KpiError(
            Diagnostic(
                f"`{raw}` of source `{source.name}` is not a regular file (a FIFO, socket or device)",
                loc,
                hint="point the source at a regular file; a pipe would block the run waiting for a writer",
            )
        )
    return real


def source_files(
    source: SourceSpec, env: Env, key: str = "path", suffixes: tuple[str, ...] = (), allow_dir: bool = True
) -> list[Path]:
    """The files option ``key`` names (a file, a glob, or a folder's files ending in ``suffixes``), each checked.

    Globs and folders are expanded here, once, and every match is resolved and checked with ``check_file``:
    connectors read this list, never the pattern, so a link met during expansion cannot escape the check.
    """
    raw = str(source.options[key])
    path = _resolve(raw, source)
    loc = source.loc(key)
    if glob.has_magic(str(path)):
        matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
        roots = allowed_roots(source, env)
        files = [check_file(m, raw, source, env, key, roots) for m in matches]
        files = [f for f in files if f.is_file()]
        if not files:
            raise KpiError(
                Diagnostic(
                    f"no file matches `{raw}` for source `{source.name}`",
                    loc,
                    hint=f"paths are relative to {source.base_dir}",
                )
            )
        return files
    real = check_file(path, raw, source, env, key)
    if not path.exists() and not path.is_symlink():
        siblings = sorted(p.name for p in path.parent.glob("*")) if path.parent.is_dir() else []
        hint = did_you_mean(path.name, siblings) or f"paths are relative to the spec file's folder ({source.base_dir})"
        raise KpiError(Diagnostic(f"data file `{raw}` of source `{source.name}` does not exist", loc, hint=hint))
    if not real.exists():
        raise KpiError(Diagnostic(f"`{raw}` of source `{source.name}` is a link to {real}, which does not exist", loc))
    if real.is_dir():
        if not allow_dir:
            raise KpiError(
                Diagnostic(
                    f"`{raw}` of source `{source.name}` is a directory, not a file",
                    loc,
                    hint="name a file, or a glob such as data/*.csv",
                )
            )
        found = sorted(p for p in real.rglob("*") if p.name.endswith(suffixes) and not p.name.startswith("."))
        roots = allowed_roots(source, env)
        files = [check_file(p, raw, source, env, key, roots) for p in found]
        files = [f for f in files if f.is_file()]
        if not files:
            kinds = " or ".join(f"*{s}" for s in suffixes) or "files"
            raise KpiError(Diagnostic(f"folder `{raw}` of source `{source.name}` holds no {kinds}", loc))
        return files
    return [real]


def source_path(source: SourceSpec, env: Env, key: str = "path", allow_dir: bool = False) -> str:
    """The source's ``path`` option as one checked file (or folder, with ``allow_dir``), resolved.

    Globs are refused here: a connector that reads several files takes ``source_files``.
    """
    raw = str(source.options[key])
    path = _resolve(raw, source)
    if glob.has_magic(str(path)):
        files = source_files(source, env, key)
        if len(files) > 1:
            raise KpiError(
                Diagnostic(
                    f"`{raw}` of source `{source.name}` matches {len(files)} files; this connector reads one",
                    source.loc(key),
                )
            )
        return str(files[0])
    if allow_dir and path.is_dir() and not path.is_symlink():
        return str(check_file(path, raw, source, env, key))
    return str(source_files(source, env, key, allow_dir=False)[0])


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


_ENV_REF = re.compile(r"\$\{(env|profile):([A-Za-z_][A-Za-z0-9_.-]*)\}")
_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def profiles_path() -> Path:
    """The connection profiles file, outside any repository: ``$KPI_PROFILES``, else ``~/.kpi/profiles.yml``."""
    return Path(os.environ.get("KPI_PROFILES") or Path.home() / ".kpi" / "profiles.yml")


def _profile_value(ref: str, source: SourceSpec, key: str) -> str:
    """``crm.url`` from the profiles file: profile ``crm``, its setting ``url``."""
    import yaml

    path = profiles_path()
    name, _, setting = ref.partition(".")
    where = source.loc(key)
    if not setting:
        raise KpiError(Diagnostic(f"`${{profile:{ref}}}` names no setting", where, hint=f"e.g. ${{profile:{ref}.url}}"))
    try:
        profiles = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        raise KpiError(
            Diagnostic(
                f"source `{source.name}` reads profile `{name}`, but there is no profiles file at {path}",
                where,
                hint="write it there (outside the repository), or point KPI_PROFILES at it",
            )
        ) from None
    except yaml.YAMLError as exc:
        raise KpiError(Diagnostic(f"cannot read the profiles file {path}: {exc}", where)) from None
    profile = profiles.get(name) if isinstance(profiles, dict) else None
    if not isinstance(profile, dict):
        known = profiles if isinstance(profiles, dict) else {}
        raise KpiError(
            Diagnostic(f"no profile `{name}` in {path}", where, hint=did_you_mean(name, known, "profiles") or None)
        )
    if setting not in profile:
        raise KpiError(
            Diagnostic(
                f"profile `{name}` in {path} has no `{setting}`",
                where,
                hint=did_you_mean(setting, profile, "settings") or None,
            )
        )
    return str(profile[setting])


def expand_env(value: str, source: SourceSpec, key: str) -> str:
    """An option with its ``${env:NAME}`` and ``${profile:NAME.SETTING}`` references replaced by the
    environment's values or the profiles file's (``profiles_path``), so that specs hold no secrets
    (``url: ${env:CRM_DATABASE_URL}``, ``url: ${profile:crm.url}``); a missing one is an error naming it."""

    def value_of(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "profile":
            return _profile_value(name, source, key)
        if name not in os.environ:
            raise KpiError(
                Diagnostic(
                    f"source `{source.name}` reads the environment variable `{name}` (option `{key}`), "
                    "which is not set",
                    source.loc(key),
                    hint=f"set it before running: export {name}=... (in CI, from its secrets)",
                )
            )
        return os.environ[name]

    return _ENV_REF.sub(value_of, value)


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (errors, ``--explain``, reports)."""
    return _PASSWORD.sub(r"\1***@", text)


def repeated_key(name: str, spec: SourceSpec, value: object, n: int) -> KpiError:
    """A lookup whose key repeats: each row that joins it would be counted ``n`` times."""
    return KpiError(
        Diagnostic(
            f"lookup `{name}` has {n} rows with {spec.key} = {value!r}: its key must be unique, or each "
            f"row that joins it would be counted {n} times",
            spec.loc("key"),
            hint="remove the duplicates, or read the lookup through a query that keeps one row per key",
        )
    )


def data_error(source: SourceSpec, exc: BaseException, what: str = "cannot read") -> KpiError:
    """A one-screen error for a data problem found while reading a source (never a traceback)."""
    text = redact(str(exc)).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    hint = None
    low = first.lower()
    if "could not parse" in low or "conversion" in low:
        hint = "check the column's values, or declare its type in the source's `dtypes`"
    elif "found more fields" in low or "expected" in low and "fields" in low:
        hint = "a row has a different number of fields than the header"
    elif "parquet" in low or "magic" in low or "eof" in low:
        hint = "the file looks truncated or is not Parquet; regenerate or re-export it"
    return KpiError(Diagnostic(f"{what} source `{source.name}`: {first}", source.loc(), hint=hint))
