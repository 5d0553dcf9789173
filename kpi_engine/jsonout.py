"""Strict JSON for every command: NaN and infinities become null (they are not JSON). No polars here."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None: JSON has no such numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def json_text(doc: Any, indent: int | None = 2, default: Any = str) -> str:
    """Strict JSON (never NaN or Infinity, which are not JSON) for every command's ``--format json``."""
    return json.dumps(finite(doc), indent=indent, ensure_ascii=False, default=default, allow_nan=False)
