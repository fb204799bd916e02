"""report.json is strict JSON (RFC 8259 has no NaN or Infinity, and many readers reject them): a non-finite
number becomes null, and a metric entry that held one says so in its "unavailable" reason."""

from __future__ import annotations

import json
import math
from typing import Any


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        out = {key: _strict(item) for key, item in value.items()}
        number = value.get("value")
        if isinstance(number, float) and not math.isfinite(number) and "unavailable" not in value:
            out["unavailable"] = f"the computed value was not finite ({number})"
        return out
    if isinstance(value, list | tuple):
        return [_strict(item) for item in value]
    return value


def strict_dumps(value: Any, indent: int = 2) -> str:
    """`json.dumps` of `value` with every NaN / Infinity replaced as above; never emits them."""
    return json.dumps(_strict(value), indent=indent, allow_nan=False)
