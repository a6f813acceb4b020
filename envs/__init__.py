"""panoseek.envs: the engine (geometry, renderer, tasks, protocol, environment, rollout loop).

The evaluation harness built on it is the subpackage :mod:`panoseek.envs.eval`.

Public names are loaded lazily so ``import panoseek.envs`` stays cheap and workers
that only need geometry do not pay for the environment's imports.
"""

from __future__ import annotations

from panoseek.envs.lazy import lazy_getattr

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
    "parse_structured": "protocol",
    "check_action": "protocol",
    "ActionProtocol": "protocol",
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
    "Agent": "agent",
    "TaskInfo": "agent",
    "PRIVILEGES": "agent",
    "rotate": "agent",
    "submit": "agent",
    "play": "rollout",
    "take_turn": "rollout",
    "EpisodeSettings": "rollout",
    "EpisodeSpec": "rollout",
    "Rollout": "rollout",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
