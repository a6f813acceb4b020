"""The head-rotation search environment: look around a panorama, then submit a direction."""

from __future__ import annotations

import string
import time
from collections.abc import Sequence
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from panoseek.envs import judge
from panoseek.envs.geometry import clamp_pitch, view_position, wrap_yaw
from panoseek.envs.prompts import feedback_message, zoom_feedback
from panoseek.envs.protocol import (
    ANGLE_LIMIT, ROTATE, SUBMIT, ZOOM, ZOOM_MIN_FOV, ZOOMS_PER_TURN, ParsedAction, check_zoom, parse_structured,
    zoom_inside_view,
)
from panoseek.envs.panorama_cache import PanoramaCache
from panoseek.envs.render import render_view
from panoseek.envs.task import Task

CROSSHAIR_COLOUR = (0, 255, 0)  # RGB green, as H* draws it
MAX_VIEW_SIDE = 8192  # pixels; larger views (8K is 7680 wide) are refused before any memory is taken
HSTAR_CROSSHAIR_ARM_PX = 10  # H* draws arms of 10 px at every view size


class PanoramaSearchEnv(gym.Env):
    """Turn your head inside a 360° panorama to find an object (HOS) or a way to walk (HPS).

    ## Description

    Each episode is one (task, start direction) pair. The agent starts at the task's
    start yaw with pitch 0 and sees a pinhole view (horizontal field of view
    ``fov_deg``) with a thin green crosshair at its centre. It may turn its head any
    number of times, up to ``max_turns`` turns in all, and ends the episode by
    submitting an absolute direction, which is judged by the H* success rule
    (:mod:`panoseek.envs.judge`).

    ## Action Space

    ``Dict(submit=Discrete(2), yaw=Box(-360, 360, (), float32), pitch=Box(-360, 360, (), float32))``:

    | submit | meaning                                                        |
    |--------|----------------------------------------------------------------|
    | 0      | rotate by ``(yaw, pitch)`` degrees, relative to the heading    |
    | 1      | submit ``(yaw, pitch)`` degrees, absolute; ends the episode    |

    The angles are two scalar boxes rather than one ``(2,)`` box so the space stays in
    degrees without Gymnasium's advice to normalise vector action boxes to [-1, 1].

    **Zoom** (``zoom=True``, an opt-in extension of the H* protocol, off by default):
    the space gains ``zoom=Discrete(2)`` and ``fov=Box(ZOOM_MIN_FOV, fov_deg, ())``. An
    action with ``zoom`` 1 (and ``submit`` 0) is ``zoom(yaw, pitch, fov)``: a view of
    horizontal field of view ``fov`` (the same ``view_size``, so a closer look at full
    resolution) rendered from the panorama toward the *absolute* direction (yaw, pitch),
    drawn without the crosshair. It does not turn the head and does not use a turn. It
    must lie wholly inside the current view (its four corner rays inside the current
    view's frustum), so it shows only what the current view already shows, sharper; and
    at most ``ZOOMS_PER_TURN`` (2) zooms may come between two turns. A zoom that breaks a
    rule, or any zoom when ``zoom=False``, is an invalid action (it uses the turn). The
    3-key rotate/submit actions stay valid. The rules live in
    :func:`~panoseek.envs.protocol.check_action` and :func:`~panoseek.envs.protocol.check_zoom`.

    Positive dyaw turns right, positive dpitch looks up; the resulting pitch is clamped
    to [-90, 90]. An action outside this space (NaN, out of bounds, wrong type or
    shape, or a submitted pitch outside [-90, 90]) is *invalid*: it is not an
    exception, the turn counts, the heading does not change, and ``info`` says why.

    ## Observation Space

    ``Dict(image, instruction, heading)``:

    - ``image``: ``Box(0, 255, (H, W, 3), uint8)``, the current view (``view_size`` is (W, H)).
    - ``instruction``: ``Text``, the task's instruction (charset: printable ASCII plus
      every character of the tasks' instructions).
    - ``heading``: ``Box([0, -90], [360, 90], (2,), float32)``, the current (yaw, pitch).
    - ``zoom`` (only with ``zoom=True``): ``Box([0, -90, 0], [360, 90, 180], (3,), float32)``,
      the (yaw, pitch, fov) of a zoom view when ``image`` is one (right after a zoom),
      all zeros when ``image`` is the ordinary view at the heading.

    ## Rewards

    0 for every turn but the last. Submitting pays ``0.5`` for success and ``0.5``
    for a well-formed final answer (a structured action inside the space is always
    well-formed; the text wrapper pays it only for a reply in the exact layout of its format), plus the
    distance shaping of the H* paper when ``distance_reward=True``. An episode that
    runs out of turns is truncated and earns nothing.

    ## Starting State

    ``reset(options={"task_index": i, "start_index": j})`` picks an episode; without
    options the episode is drawn with the environment's seeded ``np_random``.

    ## Episode End

    Terminated when the agent submits; truncated after ``max_turns`` turns without a
    submission (a failure).

    ## Info

    ``task_id``, ``kind``, ``turn``, ``heading`` (yaw, pitch), ``valid_action``,
    ``action_error`` ("" when valid), ``success`` and ``submitted`` (None or
    (yaw, pitch)), ``feedback`` (the message a language agent is shown): what a person
    playing the protocol learns. With ``diagnostics=True`` also the privileged values
    (for evaluation records and training statistics, never for a benchmarked agent):
    ``level``, ``level_name``, ``yaw_error`` / ``pitch_error`` (degrees by which the
    submitted direction, or the current heading before a submission, misses the target
    window: 0 inside; pitch 0 for HPS), ``yaw_offset`` / ``pitch_offset`` (degrees to
    the window centres), ``target_in_view`` (whether the target's centre is inside the
    current view). After a valid zoom, ``zoom``: its (yaw, pitch, fov).

    ## Arguments

    ``tasks`` (a non-empty sequence of :class:`~panoseek.envs.task.Task`), ``view_size``
    (width, height), ``fov_deg``, ``max_turns``, ``crosshair`` (``True``: arms of about
    2% of the view width; a positive int: arms of that many pixels, as H*'s
    ``HSTAR_CROSSHAIR_ARM_PX``; ``False``: none), ``render_mode``
    (None or ``"rgb_array"``), ``distance_reward``, ``panorama_cache`` (how many
    decoded panoramas to keep, each as a ``PreparedPanorama``: 4 bytes a pixel; panoramas
    are loaded lazily, and tasks sharing one (``Task.panorama_id``, or the same file)
    share its copy; or a :class:`~panoseek.envs.panorama_cache.PanoramaCache` shared by
    environments over the same tasks, as the runner's batch slots share one),
    ``diagnostics``, ``zoom`` (see Action Space).

    ``timings`` accumulates the seconds spent loading panoramas (``load_s``) and
    rendering views (``render_s``, loading included), for the evaluation records.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(
        self,
        tasks: Sequence[Task],
        *,
        view_size: tuple[int, int] = (448, 252),
        fov_deg: float = 100.0,
        max_turns: int = 10,
        crosshair: bool | int = True,
        render_mode: str | None = None,
        distance_reward: bool = False,
        panorama_cache: int | PanoramaCache = 4,
        diagnostics: bool = False,
        zoom: bool = False,
    ) -> None:
        self.tasks = _check_tasks(tasks)
        self.view_size = _check_view_size(view_size)
        if not (isinstance(fov_deg, (int, float)) and 0.0 < fov_deg < 180.0):
            raise ValueError(f"fov_deg must be a number in (0, 180), got {fov_deg!r}")
        if isinstance(max_turns, bool) or not isinstance(max_turns, (int, np.integer)) or max_turns < 1:
            raise ValueError(f"max_turns must be a positive integer, got {max_turns!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if not isinstance(panorama_cache, PanoramaCache) and (
                isinstance(panorama_cache, bool) or not isinstance(panorama_cache, int) or panorama_cache < 1):
            raise ValueError(f"panorama_cache must be a positive integer or a PanoramaCache, got {panorama_cache!r}")
        if not isinstance(crosshair, bool) and not (isinstance(crosshair, (int, np.integer)) and crosshair > 0):
            raise ValueError(f"crosshair must be True, False or a positive arm length in pixels, got {crosshair!r}")
        self.fov_deg = float(fov_deg)
        self.max_turns = int(max_turns)
        self.crosshair = crosshair if isinstance(crosshair, bool) else int(crosshair)
        self.render_mode = render_mode
        self.distance_reward = bool(distance_reward)
        self.panorama_cache = panorama_cache
        self.diagnostics = bool(diagnostics)
        if not isinstance(zoom, bool):
            raise ValueError(f"zoom must be True or False, got {zoom!r}")
        if zoom and self.fov_deg <= ZOOM_MIN_FOV:
            raise ValueError(f"zoom needs fov_deg above the narrowest zoom, {ZOOM_MIN_FOV:g} degrees, got {fov_deg!r}")
        self.zoom = zoom
        self.timings = {"load_s": 0.0, "render_s": 0.0}

        width, height = self.view_size
        instructions = [task.instruction for task in self.tasks]
        self.observation_space = spaces.Dict(
            image=spaces.Box(0, 255, (height, width, 3), np.uint8),
            instruction=spaces.Text(
                max_length=max(len(text) for text in instructions),
                charset=frozenset(string.printable).union(*instructions),
            ),
            heading=spaces.Box(np.array([0.0, -90.0], np.float32), np.array([360.0, 90.0], np.float32), dtype=np.float32),
            **({"zoom": spaces.Box(np.array([0.0, -90.0, 0.0], np.float32), np.array([360.0, 90.0, 180.0], np.float32),
                                   dtype=np.float32)} if zoom else {}),
        )
        self.action_space = spaces.Dict(
            submit=spaces.Discrete(2),
            yaw=spaces.Box(-ANGLE_LIMIT, ANGLE_LIMIT, (), np.float32),
            pitch=spaces.Box(-ANGLE_LIMIT, ANGLE_LIMIT, (), np.float32),
            **({"zoom": spaces.Discrete(2), "fov": spaces.Box(ZOOM_MIN_FOV, self.fov_deg, (), np.float32)} if zoom else {}),
        )

        self._panoramas = panorama_cache if isinstance(panorama_cache, PanoramaCache) else PanoramaCache(panorama_cache)
        self._task_index: int | None = None
        self._start_index = 0
        self._yaw = 0.0
        self._pitch = 0.0
        self._turn = 0
        self._done = False
        self._submitted: tuple[float, float] | None = None
        self._image: np.ndarray | None = None
        self._zooms = 0  # zooms since the last turn

    # ------------------------------------------------------------------ public state

    @property
    def task(self) -> Task:
        """The task of the current episode."""
        if self._task_index is None:
            raise RuntimeError("no episode yet: call reset() first")
        return self.tasks[self._task_index]

    @property
    def heading(self) -> tuple[float, float]:
        """Current (yaw, pitch) in degrees."""
        return self._yaw, self._pitch

    @property
    def episode(self) -> tuple[int, int]:
        """(task_index, start_index) of the current episode."""
        if self._task_index is None:
            raise RuntimeError("no episode yet: call reset() first")
        return self._task_index, self._start_index

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"task_index", "start_index"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; expected task_index, start_index")
        if "task_index" in options:
            task_index = _check_index("task_index", options["task_index"], len(self.tasks))
        else:
            task_index = int(self.np_random.integers(len(self.tasks)))
        n_starts = self.tasks[task_index].n_starts
        if "start_index" in options:
            start_index = _check_index("start_index", options["start_index"], n_starts)
        else:
            start_index = int(self.np_random.integers(n_starts))
        self._task_index, self._start_index = task_index, start_index
        self._yaw, self._pitch = self.task.start_yaws[start_index], 0.0
        self._turn = 0
        self._done = False
        self._submitted = None
        self._zooms = 0
        self._image = self._render_current()
        return self._observation(), self._info(valid=True, error="", feedback="")

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        """Rotate, submit or zoom (see the class docstring); an action outside the space only uses up a turn."""
        if self._task_index is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode is over: call reset() before step()")
        action = parse_structured(action)
        if action.kind == ZOOM:
            inside = self.zoom and self._zoom_inside_view(action)
            action = check_zoom(action, allowed=self.zoom, view_fov=self.fov_deg, used=self._zooms, inside_view=inside)
        if action.kind == ZOOM:
            return self._zoom_step(action)
        self._zooms = 0
        self._turn += 1
        reward, terminated = 0.0, False
        if action.kind == ROTATE:
            self._yaw = wrap_yaw(self._yaw + action.yaw)
            self._pitch = clamp_pitch(self._pitch + action.pitch)
            self._image = self._render_current()
        elif action.kind == SUBMIT:
            self._submitted = (wrap_yaw(action.yaw), float(action.pitch))
            terminated = True
            reward = judge.final_reward(self.task, *self._submitted, well_formed=True, shaping=self.distance_reward)
        truncated = not terminated and self._turn >= self.max_turns
        self._done = terminated or truncated
        feedback = feedback_message(action.valid, self._yaw, self._pitch, action.error, done=self._done)
        info = self._info(valid=action.valid, error=action.error, feedback=feedback)
        return self._observation(), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The current view (with the crosshair if enabled) for ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array" or self._image is None:
            return None
        return self._image.copy()

    # ------------------------------------------------------------------ helpers

    def _zoom_step(self, action: ParsedAction) -> tuple[dict, float, bool, bool, dict]:
        """A valid zoom: the zoom view as the observation; heading, turn and episode unchanged."""
        self._zooms += 1
        start = time.perf_counter()
        view = render_view(
            self._panoramas.get(self.tasks, self._task_index, self.timings), action.yaw, action.pitch,
            fov_deg=action.fov, size=self.view_size
        )
        self.timings["render_s"] += time.perf_counter() - start
        zoom = (float(wrap_yaw(action.yaw)), float(action.pitch), float(action.fov))
        feedback = zoom_feedback(*zoom, self._yaw, self._pitch, ZOOMS_PER_TURN - self._zooms)
        info = self._info(valid=True, error="", feedback=feedback)
        info["zoom"] = zoom
        return self._observation(view, zoom), 0.0, False, False, info

    def _zoom_inside_view(self, action: ParsedAction) -> bool:
        """Whether the zoom view (all of it) lies inside the current view."""
        return zoom_inside_view(action.yaw, action.pitch, action.fov, self._yaw, self._pitch, self.fov_deg, *self.view_size)

    def _render_current(self) -> np.ndarray:
        start = time.perf_counter()
        view = render_view(
            self._panoramas.get(self.tasks, self._task_index, self.timings), self._yaw, self._pitch,
            fov_deg=self.fov_deg, size=self.view_size
        )
        if self.crosshair is not False:
            draw_crosshair(view, self.crosshair)
        self.timings["render_s"] += time.perf_counter() - start
        return view

    def _observation(self, zoom_view: np.ndarray | None = None, zoom: tuple = (0.0, 0.0, 0.0)) -> dict:
        """The observation: the current view, or ``zoom_view`` right after a zoom (then ``zoom`` says which)."""
        observation = {
            "image": (self._image if zoom_view is None else zoom_view).copy(),  # callers keep observations
            "instruction": self.task.instruction,
            "heading": np.array([self._yaw, self._pitch], dtype=np.float32),
        }
        if self.zoom:
            observation["zoom"] = np.array(zoom, dtype=np.float32)
        return observation

    def _info(self, *, valid: bool, error: str, feedback: str) -> dict:
        task = self.task
        info = {
            "task_id": task.id,
            "kind": task.kind,
            "turn": self._turn,
            "heading": (self._yaw, self._pitch),
            "valid_action": valid,
            "action_error": error,
            "success": self._submitted is not None and judge.is_success(task, *self._submitted),
            "submitted": self._submitted,
            "feedback": feedback,
        }
        if self.diagnostics:
            judged = self._submitted if self._submitted is not None else (self._yaw, self._pitch)
            yaw_error, pitch_error = judge.angular_errors(task, *judged)
            yaw_offset, pitch_offset = judge.centre_offsets(task, *judged)
            info.update(
                level=task.levels[self._start_index], level_name=task.level_name(self._start_index),
                yaw_error=yaw_error, pitch_error=pitch_error, yaw_offset=yaw_offset, pitch_offset=pitch_offset,
                target_in_view=self._target_in_view(),
            )
        return info

    def _target_in_view(self) -> bool:
        """Whether the centre of the task's target projects inside the current view."""
        yaw, pitch = judge.target_centre(self.task)
        position = view_position(yaw, pitch, self._yaw, self._pitch, self.fov_deg, *self.view_size)
        return position is not None


def draw_crosshair(view: np.ndarray, crosshair: bool | int = True) -> None:
    """Thin green cross at the view centre, drawn in place: ``True`` arms of ~2% of the
    width, an int arms of that many pixels (H*: 10), ``False`` none."""
    if crosshair is False:
        return
    height, width = view.shape[:2]
    cx, cy = width // 2, height // 2
    arm = max(3, round(0.02 * width)) if crosshair is True else int(crosshair)
    cv2.line(view, (cx - arm, cy), (cx + arm, cy), CROSSHAIR_COLOUR, 1)
    cv2.line(view, (cx, cy - arm), (cx, cy + arm), CROSSHAIR_COLOUR, 1)


def _check_tasks(tasks: Sequence[Task]) -> tuple[Task, ...]:
    try:
        tasks = tuple(tasks)
    except TypeError:
        raise TypeError(f"tasks must be a sequence of Task, got {type(tasks).__name__}") from None
    if not tasks:
        raise ValueError("tasks is empty: the environment needs at least one Task")
    for index, task in enumerate(tasks):
        if not isinstance(task, Task):
            raise TypeError(f"tasks[{index}] is a {type(task).__name__}, not a Task")
    return tasks


def parse_view_size(text: str) -> tuple[int, int]:
    """``"WIDTHxHEIGHT"`` (a command-line ``--view-size``) as ``(width, height)``, checked
    as the environment checks its ``view_size``; a bad value is a ValueError naming it."""
    try:
        width, height = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"--view-size must be WIDTHxHEIGHT, e.g. 448x252, got {text!r}") from None
    try:
        return _check_view_size((width, height))
    except ValueError as error:
        raise ValueError(f"--view-size {text!r}: {error}") from None


def _check_view_size(view_size: Any) -> tuple[int, int]:
    try:
        width, height = view_size
        ok = all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in (width, height))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"view_size must be (width, height) with positive integers, got {view_size!r}")
    if max(width, height) > MAX_VIEW_SIDE:
        raise ValueError(f"view_size sides must be at most {MAX_VIEW_SIDE} pixels, got {view_size!r}")
    return int(width), int(height)


def _check_index(name: str, value: Any, size: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < size:
        raise ValueError(f"reset option {name!r} must be an integer in [0, {size}), got {value!r}")
    return int(value)
