"""panoseek.envs: the engine (geometry, renderer, tasks, protocol, environment, runner).

Public names are loaded lazily so ``import panoseek.envs`` stays cheap and workers
that only need geometry do not pay for the environment's imports.
"""

from __future__ import annotations

from panoseek.lazy import lazy_getattr

_EXPORTS = {
    # name: module inside panoseek.envs
    "AngularWindow": "geometry",
    "Task": "task",
    "TaskError": "task",
    "HOS": "task",
    "HPS": "task",
    "LEVEL_NAMES": "task",
    "PanoramaError": "panorama",
    "load_panorama": "panorama",
    "as_panorama": "panorama",
    "save_image": "panorama",
    "render_view": "render",
    "PreparedPanorama": "render",
    "render_views_torch": "render_torch",
    "parse_action": "protocol",
    "ParsedAction": "protocol",
    "feedback_text": "protocol",
    "format_action": "protocol",
    "format_reply": "protocol",
    "PROMPT_FORMATS": "protocol",
    "task_prompt": "prompts",
    "is_success": "judge",
    "PanoramaSearchEnv": "env",
    "TextActions": "wrappers",
    "DiscreteRotations": "wrappers",
    "ReportError": "report",
    "load_results": "report",
    "write_report": "report",
    "write_comparison": "report",
    "run_benchmark": "benchmark",
    "EpisodeSettings": "benchmark",
    "read_episodes": "records",
    "summarize": "records",
    "merge_folders": "records",
    "RecordsError": "records",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
