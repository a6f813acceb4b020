"""Agents by name: the built-in baselines, or any ``package.module:factory`` path.

``make_agent("sweep")`` builds a built-in agent; ``make_agent("mylab.agents:make",
temperature=0.2)`` imports ``mylab.agents`` and calls its ``make`` with the keyword
arguments, so users evaluate their own agents without touching panoseek.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from panoseek.envs.agent import Agent

# name -> "module:factory" inside panoseek.agents (imported only when asked for, so
# naming an agent never pays for another agent's dependencies).
BUILTIN_AGENTS: dict[str, str] = {
    "random": "panoseek.agents.baselines:RandomAgent",  # direction uniform on the sphere
    "random_horizon": "panoseek.agents.baselines:horizon_random_agent",  # uniform yaw, pitch in [-30, 30]
    "blind": "panoseek.agents.baselines:BlindAgent",  # best fixed offset from the start, never looks
    "sweep": "panoseek.agents.baselines:SweepAgent",
    "oracle": "panoseek.agents.baselines:OracleAgent",
    "foveated": "panoseek.agents.foveated:FoveatedAgent",
    "vlm": "panoseek.agents.vlm:VLMAgent",
    "ppo": "panoseek.agents.ppo_agent:PPOAgent",  # a policy trained by `panoseek train ppo` (checkpoint=PATH)
}


class AgentError(ValueError):
    """An agent name or import path that cannot be resolved, or a factory that fails."""


def resolve_factory(name_or_path: str) -> Callable[..., Agent]:
    """The factory behind a built-in name or a ``package.module:factory`` import path."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise AgentError(f"agent must be a built-in name or 'package.module:factory', got {name_or_path!r}")
    target = BUILTIN_AGENTS.get(name_or_path, name_or_path)
    if ":" not in target:
        raise AgentError(
            f"unknown agent {name_or_path!r}; built-in agents: {', '.join(sorted(BUILTIN_AGENTS))} "
            "(or give an import path 'package.module:factory')"
        )
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise AgentError(f"agent {name_or_path!r}: cannot import module {module_name!r} ({error})") from error
    factory = module
    for part in attribute.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise AgentError(f"agent {name_or_path!r}: module {module_name!r} has no attribute {attribute!r}")
    if not callable(factory):
        raise AgentError(f"agent {name_or_path!r}: {target!r} is not callable")
    return factory


def make_agent(name_or_path: str, **kwargs: Any) -> Agent:
    """Build an agent by built-in name or import path, passing ``kwargs`` to its factory."""
    factory = resolve_factory(name_or_path)
    try:
        agent = factory(**kwargs)
    except TypeError as error:
        raise AgentError(f"agent {name_or_path!r}: bad arguments {sorted(kwargs)} ({error})") from error
    if not (callable(getattr(agent, "reset", None)) and callable(getattr(agent, "act", None))):
        raise AgentError(
            f"agent {name_or_path!r}: the factory returned {type(agent).__name__}, which lacks reset() and act()"
        )
    return agent
