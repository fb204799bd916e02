"""Reading third-party pickled checkpoints that hold nothing but numpy arrays in nested dicts, without
letting the pickle run code: only the three globals numpy needs to rebuild an array are admitted.

Our own weights are never pickled (safetensors only); this exists to read, once, the Flax checkpoints that
metric networks are published in, and convert them.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

try:  # numpy >= 2 moved the module; pickles written by numpy 1.x still name `numpy.core.multiarray`.
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class UnsafePickle(ValueError):
    """The pickle asks for something other than numpy arrays in dicts."""


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickle(f"pickle refers to {module}.{name}; only numpy arrays are admitted") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickle("pickle uses persistent ids; only numpy arrays are admitted")


def _flatten(tree: Any, prefix: str, out: dict[str, np.ndarray]) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise UnsafePickle(f"dict key {key!r} under {prefix or '/'} is not a string")
            _flatten(value, f"{prefix}/{key}" if prefix else key, out)
    elif type(tree) is np.ndarray:
        if tree.dtype.hasobject:
            # An object array's elements are arbitrary Python objects, not numbers.
            raise UnsafePickle(f"array {prefix} has dtype {tree.dtype}; only numeric arrays are admitted")
        out[prefix] = tree
    else:
        raise UnsafePickle(f"{prefix or 'the pickle'} holds a {type(tree).__name__}, not an array or a dict")


def load_array_tree(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a pickled nested dict, keyed by their '/'-joined path ('params/Conv_0/kernel').

    Raises UnsafePickle when the pickle names any global but numpy's array reconstruction, or holds anything
    but string-keyed dicts and numeric arrays.
    """
    tree = _ArrayUnpickler(io.BytesIO(data)).load()
    out: dict[str, np.ndarray] = {}
    _flatten(tree, "", out)
    if not out:
        raise UnsafePickle("the pickle holds no arrays")
    return out
