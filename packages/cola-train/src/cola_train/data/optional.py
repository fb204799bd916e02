"""The PushT simulator and what it needs (gym-pusht, pygame, OpenCV) are the `cola-train[pusht]` extra, so the
package (and cola-eval, for its metrics) installs without a simulator or a GUI build of OpenCV; the modules
that need them are imported on first use, through here."""

from __future__ import annotations

import importlib
from typing import Any

PUSHT_MODULES = ("gym_pusht", "pygame", "cv2")


def require_pusht(what: str = "PushT") -> None:
    """Raise ImportError with the install command when the PushT extra is missing."""
    for module in PUSHT_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(
                f"{what} needs the PushT simulator ({module} is not installed): "
                'pip install "cola-train[pusht]"'
            ) from error


def lazy_attribute(package: str, name: str, modules: dict[str, str], what: str = "PushT") -> Any:
    """Module-level ``__getattr__`` body: import ``modules[name]`` (a PushT module) on first use."""
    if name not in modules:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    require_pusht(what)
    return getattr(importlib.import_module(modules[name]), name)
