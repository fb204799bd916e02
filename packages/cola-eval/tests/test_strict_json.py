import json
import math

import pytest
from cola_eval.strict_json import strict_dumps


def _reject(constant: str) -> None:
    raise ValueError(f"non-strict JSON constant {constant}")


def test_non_finite_numbers_become_null_and_metrics_say_why():
    report = {
        "m": {"value": math.nan, "n": 3},
        "curve": [1.0, math.inf, -math.inf],
        "ok": {"value": 2.5, "n": 1},
    }
    text = strict_dumps(report)
    parsed = json.loads(text, parse_constant=_reject)
    assert parsed["m"]["value"] is None and "not finite (nan)" in parsed["m"]["unavailable"]
    assert parsed["curve"] == [1.0, None, None] and parsed["ok"] == {"value": 2.5, "n": 1}
    kept = {"value": math.nan, "n": 0, "unavailable": "no weights"}
    assert json.loads(strict_dumps(kept))["unavailable"] == "no weights"  # an existing reason stays
    with pytest.raises(ValueError, match="NaN"):
        json.loads("NaN", parse_constant=_reject)
