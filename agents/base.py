"""The agent protocol: what the evaluation runner calls, and what it hands over.

An agent is any object with two methods (duck-typed; subclassing is not needed):

* ``reset(task_info)`` at the start of every episode. ``task_info`` is a plain dict:

  ==============  ==========================================================
  ``task_id``      the task's id (str)
  ``episode_id``   ``"<task_id>#<start_index>"`` (str)
  ``kind``         ``"HOS"`` (object search) or ``"HPS"`` (path search)
  ``instruction``  what to find, in natural language
  ``start_yaw``    start heading yaw in degrees; the start pitch is always 0
  ``start_index``  which of the task's start directions this episode uses
  ``view_size``    ``(width, height)`` of the observed views in pixels
  ``fov_deg``      horizontal field of view of the views
  ``max_turns``    actions allowed before the episode ends unsubmitted
  ``seed``         an integer seed for this episode (agents that draw random
                   numbers seed from it, so runs are reproducible)
  ``metadata``     the task's free metadata (scene type, category, ...)
  ``exemplar``     only for agents with ``wants_exemplar = True``: an RGB
                   uint8 picture of the target when the suite provides one,
                   else ``None``
  ``privileged``   only for agents with ``wants_privileged = True`` (upper
                   bounds such as the oracle): ``{"yaw_range": (y0, y1),
                   "pitch_range": (p0, p1) or None}``, the judged target
  ==============  ==========================================================

* ``act(observation)`` once per turn, returning the action. ``observation`` is the
  environment's observation (``image`` (H, W, 3) uint8, ``instruction``, ``heading``
  ``[yaw, pitch]``) plus ``turn`` (0-based) and ``feedback`` (the H* feedback text
  after the previous action, empty on the first turn). The action is either

  - an H*-format text string, e.g. ``"<think>...</think><answer>rotate(30,0)</answer>"``
    or ``"<answer>submit(90,10)</answer>"`` (parsed leniently), or
  - a structured action ``{"submit": 0 or 1, "yaw": a, "pitch": b}``: submit 0 rotates
    by ``(dyaw, dpitch)``, submit 1 submits the absolute ``(yaw, pitch)``.

  Anything else (an exception, a wrong type, an unparsable string) is recorded as an
  invalid action for that turn; the episode goes on.

A factory is any callable returning an agent; ``panoseek.agents.registry.make_agent``
resolves built-in names and ``package.module:factory`` import paths.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

@runtime_checkable
class Agent(Protocol):
    """Structural type of an agent (see the module docstring for the dict contents)."""

    def reset(self, task_info: dict[str, Any]) -> None: ...

    def act(self, observation: dict[str, Any]) -> str | dict[str, Any]: ...


AgentFactory = Callable[..., Agent]


def rotate(dyaw: float, dpitch: float) -> dict[str, Any]:
    """Structured action: turn the head by ``(dyaw, dpitch)`` degrees."""
    return {"submit": 0, "yaw": float(dyaw), "pitch": float(dpitch)}


def submit(yaw: float, pitch: float) -> dict[str, Any]:
    """Structured action: submit the absolute direction ``(yaw, pitch)``; ends the episode."""
    return {"submit": 1, "yaw": float(yaw), "pitch": float(pitch)}
