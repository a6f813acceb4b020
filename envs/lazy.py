"""Lazy public names for the folder packages (envs, and scenes and agents above it).

``import panoseek.envs`` should not pay for torch, OpenCV or the scene generator
until a name that needs them is used; each package lists ``name -> module`` and
gets a module-level ``__getattr__`` (PEP 562) from here.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_getattr(package: str, exports: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A ``__getattr__`` importing ``package.<module>`` on first use of each exported name."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
