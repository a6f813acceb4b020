"""panoseek.scenes: content (procedural scenes, benchmark suites, loaders for real panoramas).

Public names are loaded lazily so ``import panoseek.scenes`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # name: module inside panoseek.scenes
    "Suite": "suite",
    "SuiteError": "suite",
    "load_suite": "suite",
    "fingerprint": "suite",
    "task_record": "suite",
    "SYNTH_SPLITS": "suite",
    "load_hstar": "hstar",
    "load_jsonl": "jsonl",
    "synth_suite": "synth",
    "exemplar_image": "synth",
    "build_scene": "scene",
    "render_layout": "raster",
    "CATEGORIES": "library",
    "SCENE_TYPES": "catalog",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'panoseek.scenes' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"panoseek.scenes.{module}"), name)
    globals()[name] = value
    return value
