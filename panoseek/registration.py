"""Gymnasium ids of panoseek, wired to the bundled suites.

``gymnasium.make("panoseek/ObjectSearch-v0", suite="synth:val", view_size=(448, 252))``
builds a :class:`panoseek.envs.PanoramaSearchEnv` over the tasks of a suite. The
envs package itself never imports scenes; this root module joins the two.
"""

from __future__ import annotations

from typing import Any

import gymnasium

ENV_IDS = {
    "panoseek/ObjectSearch-v0": "HOS",
    "panoseek/PathSearch-v0": "HPS",
    "panoseek/Search-v0": None,
}
DEFAULT_SUITE = "synth:val"


def make_search_env(kind: str | None = None, suite: str = DEFAULT_SUITE, **env_kwargs: Any):
    """Build the environment over the tasks of ``suite`` (only ``kind`` tasks when given)."""
    from panoseek.envs import PanoramaSearchEnv
    from panoseek.scenes import SuiteError, load_suite

    tasks = [task for task in load_suite(suite) if kind is None or task.kind == kind]
    if not tasks:
        raise SuiteError(f"suite {suite!r} has no {kind} tasks")
    return PanoramaSearchEnv(tasks, **env_kwargs)


def register_envs() -> None:
    """Register the ids once (idempotent across re-imports)."""
    for env_id, kind in ENV_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="panoseek.registration:make_search_env",
                kwargs={"kind": kind},
                max_episode_steps=None,
            )
