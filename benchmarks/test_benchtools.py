"""benchmarks/benchtools.py: the even spread of clips and pairs the studies score on."""

import itertools
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchtools import evenly_spread, spread_indices


# No deadline: the cores may be shared with a training run, which makes even a list slow to build.
@settings(deadline=None)
@given(count=st.integers(1, 5000), n=st.integers(1, 5000))
def test_spread_indices_are_distinct_and_a_fixed_stride_apart(count: int, n: int) -> None:
    picks = spread_indices(count, n)
    assert len(picks) == min(count, n)
    assert picks[0] == 0 and picks[-1] < count
    assert len({b - a for a, b in itertools.pairwise(picks)}) <= 1


def test_evenly_spread_takes_the_items_at_the_spread_indices() -> None:
    items = [f"clip{i}" for i in range(10)]
    assert evenly_spread(items, 3) == ["clip0", "clip3", "clip6"]
    assert evenly_spread(items, 20) == items
