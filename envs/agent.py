"""The agent contract: what an agent is given, what it returns, and what it may know.

An agent is any object with two methods (duck-typed; subclassing is not needed):

* ``reset(task_info)`` at the start of every episode, with a :class:`TaskInfo`: what a
  person playing the protocol knows (the instruction, the kind of task, the start
  heading, the view settings, the turn budget, the reply layout) and nothing else.
* ``act(observation)`` once per turn: the environment's observation (``image`` (H, W, 3)
  uint8, ``instruction``, ``heading`` ``[yaw, pitch]``) plus ``turn`` (0-based) and
  ``feedback`` (the feedback text after the previous action, empty on the first turn).
  It returns an H*-format reply string (parsed in the agent's ``prompt_format``) or a
  structured action (:func:`rotate`, :func:`submit`, and :func:`zoom` where the run allows it). Anything else, or an exception,
  is an invalid action for that turn; the episode goes on.

Optional attributes:

* ``prompt_format`` (``"free_think"`` by default): the reply layout the agent's text is
  parsed and rewarded in (:class:`~panoseek.envs.protocol.ActionProtocol`).
* ``privileges``: names from :data:`PRIVILEGES` the agent asks for. ``"target"`` adds
  ``task_info["target"]`` (the judged yaw and pitch ranges), ``"exemplar"`` adds
  ``task_info["exemplar"]`` (a picture of the target, or None). Each episode record
  lists the privileges it was given, and summaries and reports mark such runs
  ``privileged``: their numbers are not search.
* ``act_batch(agents, observations)`` (a static or class method): answers a lock-step
  batch of agents of this class at once (one ``generate`` call for many episodes);
  the rollout loop uses it when every agent of a batch is of that class.

Scene layout, levels, metadata and the environment's ``info`` diagnostics are never
handed to an agent. The evaluation runner builds a fresh agent for every episode.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict, runtime_checkable

PRIVILEGES = ("target", "exemplar")


class TaskInfo(TypedDict, total=False):
    """What an agent is told at the start of an episode (see the module docstring)."""

    kind: str  # "HOS" (object search) or "HPS" (path search)
    instruction: str
    start_yaw: float  # degrees; the start pitch is always 0
    start_pitch: float
    view_size: tuple[int, int]  # (width, height) of the views in pixels
    fov_deg: float  # horizontal field of view of the views
    max_turns: int  # actions allowed before the episode ends unsubmitted
    prompt_format: str  # the layout replies are parsed in
    strict: bool | str  # False lenient, True strict (exact layout), "hstar" the released H* parser
    seed: int  # for agents that draw random numbers, so runs are reproducible
    zooms_per_turn: int  # only when the run allows the zoom action: how many zooms may come between turns
    target: dict[str, Any]  # privilege "target": {"yaw_range": (y0, y1), "pitch_range": (p0, p1) or None}
    exemplar: Any  # privilege "exemplar": RGB uint8 picture of the target, or None


@runtime_checkable
class Agent(Protocol):
    """Structural type of an agent (see the module docstring)."""

    def reset(self, task_info: TaskInfo) -> None: ...

    def act(self, observation: dict[str, Any]) -> str | dict[str, Any]: ...


def declared_privileges(agent: Any) -> tuple[str, ...]:
    """The privileges an agent asks for, checked against :data:`PRIVILEGES`."""
    names = getattr(agent, "privileges", ())
    if isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{type(agent).__name__}.privileges must be a collection of names from {PRIVILEGES}, got {names!r}")
    unknown = sorted(set(names) - set(PRIVILEGES))
    if unknown:
        raise ValueError(f"{type(agent).__name__}.privileges names unknown privileges {unknown}; known: {PRIVILEGES}")
    return tuple(name for name in PRIVILEGES if name in names)


def rotate(dyaw: float, dpitch: float) -> dict[str, Any]:
    """Structured action: turn the head by ``(dyaw, dpitch)`` degrees."""
    return {"submit": 0, "yaw": float(dyaw), "pitch": float(dpitch)}


def submit(yaw: float, pitch: float) -> dict[str, Any]:
    """Structured action: submit the absolute direction ``(yaw, pitch)``; ends the episode."""
    return {"submit": 1, "yaw": float(yaw), "pitch": float(pitch)}


def zoom(yaw: float, pitch: float, fov: float) -> dict[str, Any]:
    """Structured action: a closer view toward the absolute ``(yaw, pitch)`` with a horizontal
    field of view of ``fov`` degrees; no turn is used (only where the run allows zooms)."""
    return {"submit": 0, "zoom": 1, "yaw": float(yaw), "pitch": float(pitch), "fov": float(fov)}
