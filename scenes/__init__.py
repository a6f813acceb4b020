"""panoseek.scenes: content (procedural scenes, benchmark suites, loaders for real panoramas).

Public names are loaded lazily so ``import panoseek.scenes`` stays cheap.
"""

from __future__ import annotations

from panoseek.envs.lazy import lazy_getattr

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

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
