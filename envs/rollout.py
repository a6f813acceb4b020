"""The one episode loop: agents play episodes in environments, turn by turn, in lock-step.

Everything that plays an episode goes through here: ``panoseek eval`` (the runner in
:mod:`panoseek.envs.eval`), the harness benchmark, batched language-model inference and
the training code. :func:`take_turn` is one turn (parse the agent's output with its
:class:`~panoseek.envs.protocol.ActionProtocol`, step the environment, pay the reward);
:class:`~panoseek.envs.wrappers.TextActions` is that same function as a Gym wrapper.
:func:`play` runs a batch of episodes in lock-step (a batch of one is a single
episode): each turn every unfinished episode's agent acts (in one call when its class
has ``act_batch``), every environment steps, finished episodes drop out.

An episode's outcome depends only on its :class:`EpisodeSpec` (task, start, seed) and
the agent, never on the batch it was played in or the order of play (agents sampling
in one batched call are the documented exception, see :mod:`panoseek.envs.agent`).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from panoseek.envs import judge
from panoseek.envs.agent import TaskInfo, declared_privileges
from panoseek.envs.geometry import yaw_distance
from panoseek.envs.prompts import feedback_message
from panoseek.envs.protocol import (
    SUBMIT, ZOOMS_PER_TURN, ActionProtocol, ParsedAction, as_structured, check_zoom_protocol, invalid,
)
from panoseek.envs.task import Task

RAW_LIMIT = 2000  # characters of an agent's raw output kept in a record
Exemplar = Callable[[Task], Any]


@dataclass(frozen=True)
class EpisodeSettings:
    """How episodes are played; part of a run's identity (see ``eval.records.IDENTITY_KEYS``)."""

    view_size: tuple[int, int] = (448, 252)
    fov_deg: float = 100.0
    max_turns: int = 10
    seed: int = 0
    strict: bool | str = False  # text parser: False lenient, True strict (ours), "hstar" the released H* env's
    crosshair: bool | int = True  # False none, True the default size, an int the arm length in px (H*: 10)
    zoom: bool = False  # the opt-in zoom(yaw, pitch, fov) action (PanoramaSearchEnv); refused with "hstar"

    def __post_init__(self) -> None:
        check_zoom_protocol(self.zoom, self.strict)


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode: which task, which start, and its seed."""

    task_index: int
    start_index: int
    episode_id: str
    seed: int


@dataclass
class Turn:
    """One turn as the agent lived it: what it saw, what it said, what followed."""

    observation: dict[str, Any]
    output: Any
    action: ParsedAction
    reward: float
    info: dict[str, Any]


@dataclass
class Rollout:
    """A played episode: its turns (unless not kept) and its JSON record."""

    spec: EpisodeSpec
    task_info: TaskInfo
    record: dict[str, Any]
    turns: list[Turn] = field(default_factory=list)


def episode_id(task_id: str, start_index: int) -> str:
    """The id of one episode: ``"<task_id>#<start_index>"``."""
    return f"{task_id}#{start_index}"


def episode_seed(run_seed: int, episode: str) -> int:
    """A 31-bit seed for one episode, from the run seed and the episode id only."""
    digest = hashlib.sha256(f"{run_seed}:{episode}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") >> 1


def episode_spec(task: Task, task_index: int, start_index: int, run_seed: int) -> EpisodeSpec:
    """The spec of episode (task, start) of a run with seed ``run_seed``."""
    eid = episode_id(task.id, start_index)
    return EpisodeSpec(task_index, start_index, eid, episode_seed(run_seed, eid))


def agent_protocol(agent: Any, strict: bool | str) -> ActionProtocol:
    """The protocol an agent's outputs are read in: its ``prompt_format`` and the run's parser."""
    return ActionProtocol(prompt_format=getattr(agent, "prompt_format", "free_think"), strict=strict)


# ------------------------------------------------------------------------- one turn


def take_turn(env: Any, output: Any, protocol: ActionProtocol) -> tuple[dict, float, bool, bool, dict, ParsedAction]:
    """Parse an agent's output, step ``env`` with it, and pay the protocol's reward.

    The environment takes only its action space, so an invalid output steps it with an
    out-of-space action (the turn counts, nothing changes) and ``info`` then carries the
    parser's reason. A text reply that parses but does not follow the strict layout of
    its prompt format does not earn the format reward the environment pays for a
    structured action. ``info["well_formed"]`` says which it was.
    """
    return apply_action(env, protocol.parse(output), hstar=protocol.hstar)


def apply_action(
    env: Any, action: ParsedAction, *, hstar: bool = False
) -> tuple[dict, float, bool, bool, dict, ParsedAction]:
    """Step ``env`` with a parsed action (see :func:`take_turn`); ``hstar``: H*'s invalid-action feedback."""
    observation, reward, terminated, truncated, info = env.step(as_structured(action))
    info = dict(info)
    if not action.valid:
        yaw, pitch = info["heading"]
        info["action_error"] = action.error
        info["feedback"] = feedback_message(False, yaw, pitch, action.error, done=terminated or truncated, hstar=hstar)
    elif action.kind == SUBMIT and terminated and not action.well_formed:
        reward -= judge.FORMAT_REWARD  # the environment paid it for the structured action
    info["well_formed"] = action.well_formed
    return observation, float(reward), terminated, truncated, info, action


# --------------------------------------------------------------------- the episode loop


def task_info(env: Any, spec: EpisodeSpec, protocol: ActionProtocol) -> TaskInfo:
    """What the agent of an episode is told at reset: only what a person playing knows."""
    task = env.tasks[spec.task_index]
    return TaskInfo(
        kind=task.kind,
        instruction=task.instruction,
        start_yaw=float(task.start_yaws[spec.start_index]),
        start_pitch=0.0,
        view_size=tuple(env.view_size),
        fov_deg=float(env.fov_deg),
        max_turns=int(env.max_turns),
        prompt_format=protocol.prompt_format,
        strict=protocol.strict,
        seed=spec.seed,
        **({"zooms_per_turn": ZOOMS_PER_TURN} if getattr(env, "zoom", False) else {}),
    )


def play(
    envs: Sequence[Any],
    agents: Sequence[Any],
    specs: Sequence[EpisodeSpec],
    *,
    strict: bool | str = False,
    exemplar: Exemplar | None = None,
    keep_turns: bool = True,
    turn_timeout: float | None = None,
) -> list[Rollout]:
    """Play episode ``specs[i]`` with ``agents[i]`` in ``envs[i]``, all in lock-step.

    The environments are :class:`~panoseek.envs.env.PanoramaSearchEnv` s made with
    ``diagnostics=True`` (the records need the privileged errors; agents never see
    ``info``). An agent's exception in ``reset`` fails its episode without an action;
    in ``act`` it is an invalid action for that turn. ``exemplar`` provides the
    ``"exemplar"`` privilege. ``keep_turns=False`` keeps only the records (no views).

    ``turn_timeout`` (seconds, main thread only: it uses ``SIGALRM``) bounds each
    ``act`` (or ``act_batch``) call: a late agent gets :class:`AgentTimeout` raised in
    its code, the turn is invalid, and the episode ends there, failed, since an agent
    interrupted mid-thought cannot be trusted to go on.

    Environments made with ``zoom=True`` allow the zoom action (refused with
    ``strict="hstar"``): a valid zoom is one more call of the agent within the same turn
    (its observation is the zoom view, ``turn`` unchanged), kept as a :class:`Turn` but
    recorded apart from the turns' actions: the record's ``zooms`` counts them and
    ``zoom_views`` lists ``{"turn", "yaw", "pitch", "fov"}`` for each.
    """
    if not (len(envs) == len(agents) == len(specs)):
        raise ValueError(f"play needs one env and one agent per episode, got {len(envs)}, {len(agents)}, {len(specs)}")
    if turn_timeout is not None and not (isinstance(turn_timeout, (int, float)) and turn_timeout > 0):
        raise ValueError(f"turn_timeout must be a positive number of seconds or None, got {turn_timeout!r}")
    if turn_timeout is not None and threading.current_thread() is not threading.main_thread():
        raise ValueError("turn_timeout needs the main thread (it uses SIGALRM); play without it in other threads")
    for env in envs:
        check_zoom_protocol(getattr(env, "zoom", False), strict)
    episodes = [_Episode(env, agent, spec, strict, exemplar, keep_turns) for env, agent, spec in zip(envs, agents, specs)]
    active = [episode for episode in episodes if not episode.done]
    while active:
        outputs = _act_all([episode.agent for episode in active], [episode.prompt() for episode in active], turn_timeout)
        for episode, output in zip(active, outputs):
            episode.step(output)
        active = [episode for episode in active if not episode.done]
    return [episode.finish() for episode in episodes]


class AgentTimeout(Exception):
    """Raised inside an agent's ``act`` that ran past the turn timeout."""


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`AgentTimeout` in the code running when ``seconds`` have passed."""
    if seconds is None:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise AgentTimeout(f"no action within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _act_all(agents: Sequence[Any], observations: Sequence[dict[str, Any]], timeout: float | None) -> list[Any]:
    """Each agent's output for its observation; an exception becomes that agent's error."""
    batch = getattr(type(agents[0]), "act_batch", None)
    if batch is not None and len(agents) > 1 and all(type(agent) is type(agents[0]) for agent in agents):
        tick = time.perf_counter()
        try:
            with _deadline(timeout):
                outputs = list(batch(list(agents), list(observations)))
            if len(outputs) != len(agents):
                raise ValueError(f"act_batch returned {len(outputs)} outputs for {len(agents)} agents")
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - an agent's failure is data
            outputs = [_AgentFailure(_error_text("act", exc), isinstance(exc, AgentTimeout))] * len(agents)
        share = (time.perf_counter() - tick) / len(agents)
        return [_Timed(output, share) for output in outputs]
    timed = []
    for agent, observation in zip(agents, observations):
        tick = time.perf_counter()
        try:
            with _deadline(timeout):
                output = agent.act(observation)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - an agent's failure is data
            output = _AgentFailure(_error_text("act", exc), isinstance(exc, AgentTimeout))
        timed.append(_Timed(output, time.perf_counter() - tick))
    return timed


@dataclass(frozen=True)
class _AgentFailure:
    error: str
    ends_episode: bool = False  # a timeout: the agent's state cannot be trusted any more


@dataclass(frozen=True)
class _Timed:
    output: Any
    seconds: float


class _Episode:
    """The state of one episode inside :func:`play`."""

    def __init__(self, env, agent, spec: EpisodeSpec, strict: bool | str, exemplar: Exemplar | None, keep_turns: bool) -> None:
        self.env, self.agent, self.spec, self.keep_turns = env, agent, spec, keep_turns
        self.start_time = time.perf_counter()
        self.timings_before = dict(env.timings)
        self.agent_s = self.env_s = 0.0
        self.turns: list[Turn] = []
        self.error: str | None = None
        self.reward, self.turn, self.feedback = 0.0, 0, ""
        self.first_seen: int | None = None
        task = env.tasks[spec.task_index]
        self.task = task

        tick = time.perf_counter()
        self.observation, self.info = env.reset(
            seed=spec.seed, options={"task_index": spec.task_index, "start_index": spec.start_index}
        )
        self.env_s += time.perf_counter() - tick
        self._note_seen()
        self.record: dict[str, Any] = {
            "episode_id": spec.episode_id,
            "task_id": task.id,
            "kind": task.kind,
            "level": self.info["level"],
            "level_name": self.info["level_name"],
            "start_index": spec.start_index,
            "start_yaw": float(task.start_yaws[spec.start_index]),
            "actions": [],
            "headings": [[float(a) for a in self.info["heading"]]],
        }
        if getattr(env, "zoom", False):
            self.record.update(zooms=0, zoom_views=[])
        try:
            self.protocol = agent_protocol(agent, strict)
            self.privileges = declared_privileges(agent)
        except ValueError as exc:  # a bad prompt_format or privileges attribute: the agent's fault
            self.protocol, self.privileges = ActionProtocol(strict=strict), ()
            self.error = _error_text("agent", exc)
        self.task_info = task_info(env, spec, self.protocol)
        if "target" in self.privileges:
            self.task_info["target"] = {"yaw_range": task.yaw_range, "pitch_range": task.pitch_range}
        if "exemplar" in self.privileges:
            self.task_info["exemplar"] = exemplar(task) if exemplar is not None else None
        tick = time.perf_counter()
        if self.error is None:
            try:
                agent.reset(self.task_info)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - an agent's failure is data
                self.error = _error_text("reset", exc)
        self.agent_s += time.perf_counter() - tick
        self.done = self.error is not None

    def prompt(self) -> dict[str, Any]:
        """The agent's observation for this turn."""
        return {**self.observation, "turn": self.turn, "feedback": self.feedback}

    def step(self, timed: _Timed) -> None:
        shown = self.prompt() if self.keep_turns else {}
        output = timed.output
        self.agent_s += timed.seconds
        tick = time.perf_counter()
        if isinstance(output, _AgentFailure):
            self.error = self.error or output.error
            observation, reward, terminated, truncated, info, action = apply_action(
                self.env, invalid(output.error), hstar=self.protocol.hstar
            )
            output = None
        else:
            observation, reward, terminated, truncated, info, action = take_turn(self.env, output, self.protocol)
        self.env_s += time.perf_counter() - tick
        self.observation, self.info = observation, info
        self.reward += reward
        if info.get("zoom") is not None:  # a zoom: same turn, recorded apart from the turns' actions
            self.record["zooms"] += 1
            self.record["zoom_views"].append(dict(zip(("turn", "yaw", "pitch", "fov"), (self.turn, *info["zoom"]))))
            if self.keep_turns:
                self.turns.append(Turn(shown, output, action, reward, info))
            self.feedback = info["feedback"]
            return
        heading = [float(a) for a in info["heading"]]
        self.record["actions"].append({
            "turn": self.turn,
            "raw": _raw_record(output),
            "parsed": {"kind": action.kind, "yaw": _finite_or_none(action.yaw), "pitch": _finite_or_none(action.pitch)},
            "valid": bool(info["valid_action"]),
            "well_formed": bool(info["well_formed"]),
            "error": info.get("action_error") or None,
            "heading": heading,
        })
        self.record["headings"].append(heading)
        if self.keep_turns:
            self.turns.append(Turn(shown, output, action, reward, info))
        self.feedback = info["feedback"]
        self.turn += 1
        self._note_seen()
        self.done = terminated or truncated or (isinstance(timed.output, _AgentFailure) and timed.output.ends_episode)

    def _note_seen(self) -> None:
        if self.first_seen is None and self.info.get("target_in_view"):
            self.first_seen = self.turn

    def finish(self) -> Rollout:
        info, task = self.info, self.task
        submitted = info.get("submitted")
        timings = self.env.timings
        self.record.update(
            submitted=None if submitted is None else [float(a) for a in submitted],
            success=bool(info.get("success")) and submitted is not None,
            turns=self.turn,
            yaw_error=None if submitted is None else _finite_or_none(info.get("yaw_error")),
            pitch_error=None if submitted is None or task.kind != "HOS" else _finite_or_none(info.get("pitch_error")),
            reward=self.reward,
            rotation_deg=_rotation_travelled(self.record["headings"]),
            first_seen_turn=self.first_seen,
            seen_before_submit=self.first_seen is not None and (submitted is None or self.first_seen < self.turn),
            prompt_format=self.protocol.prompt_format,
            privileged=list(self.privileges),
            timings={
                "render_s": timings["render_s"] - self.timings_before["render_s"],
                "load_s": timings["load_s"] - self.timings_before["load_s"],
                "agent_s": self.agent_s,
                "env_s": self.env_s,
                "total_s": time.perf_counter() - self.start_time,
            },
            error=self.error,
        )
        return Rollout(self.spec, self.task_info, self.record, self.turns)


def _rotation_travelled(headings: Sequence[Sequence[float]]) -> float:
    """Total head rotation in degrees: wrapped yaw steps plus pitch steps between headings."""
    total = 0.0
    for (yaw0, pitch0), (yaw1, pitch1) in zip(headings, headings[1:]):
        total += float(yaw_distance(yaw0, yaw1)) + abs(pitch1 - pitch0)
    return total


def _clip(text: str) -> str:
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + f"...[{len(text) - RAW_LIMIT} more]"


def _error_text(where: str, error: BaseException) -> str:
    return _clip(f"{where}: {type(error).__name__}: {error}")


def _finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _raw_record(raw: Any) -> Any:
    """The agent's raw output as JSON data; never raises, whatever the object does."""
    try:
        return _jsonable(raw)
    except Exception:  # noqa: BLE001 - hostile __len__, __iter__, items() ...
        return f"<{type(raw).__name__}>"


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of an agent's raw output (bounded in depth and size)."""
    if isinstance(value, str):
        return _clip(str.__str__(value))
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int.__int__(value) if abs(value) < 2**53 else _clip(repr(int.__int__(value)))
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, np.generic):
        return _jsonable(value.item(), depth)
    if depth < 3 and isinstance(value, Mapping):
        return {_clip(str(key)): _jsonable(item, depth + 1) for key, item in list(value.items())[:16]}
    if depth < 3 and (isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.size <= 16)):
        return [_jsonable(item, depth + 1) for item in list(value)[:16]]
    return _clip(f"<{type(value).__name__}>")
