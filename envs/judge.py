"""The H* success rule and rewards, as pure functions of a task and submitted angles.

Success is judged on the *submitted* direction (DESIGN.md). The target yaw range and
pitch range become :class:`~panoseek.envs.geometry.AngularWindow` s: a range narrower
than twice the tolerance becomes centre +- tolerance. HOS: yaw tolerance 30 and pitch
tolerance 20, both must hold. HPS: yaw tolerance 10, pitch ignored.

Because every value here is computed from the task at call time, nothing carries over
from one episode to the next (the released H* code stored the HPS tolerance on the
environment and judged later HOS episodes with it).
"""

from __future__ import annotations

import math

from panoseek.envs.geometry import AngularWindow, yaw_delta, yaw_distance
from panoseek.envs.task import HOS, HPS, Task

YAW_TOLERANCE = {HOS: 30.0, HPS: 10.0}
PITCH_TOLERANCE = 20.0
SUCCESS_REWARD = 0.5
FORMAT_REWARD = 0.5


def yaw_window(task: Task) -> AngularWindow:
    """The window the submitted yaw must fall in."""
    return AngularWindow.from_yaw_range(*task.yaw_range, YAW_TOLERANCE[task.kind])


def pitch_window(task: Task) -> AngularWindow | None:
    """The window the submitted pitch must fall in; ``None`` for HPS (pitch not judged)."""
    if task.kind == HPS:
        return None
    return AngularWindow.from_pitch_range(*task.pitch_range, PITCH_TOLERANCE)


def target_centre(task: Task) -> tuple[float, float]:
    """The (yaw, pitch) of the target windows' centres; pitch 0 for HPS (the way to walk is
    level). Privileged: for the env's ``target_in_view``, training labels and report
    pictures, never an agent's input."""
    window = pitch_window(task)
    return yaw_window(task).centre, 0.0 if window is None else window.centre


def angular_errors(task: Task, yaw: float, pitch: float) -> tuple[float, float]:
    """Degrees by which (yaw, pitch) miss their windows; 0 inside, pitch 0 for HPS."""
    window = pitch_window(task)
    return yaw_window(task).outside_by(yaw), 0.0 if window is None else window.outside_by(pitch)


def centre_offsets(task: Task, yaw: float, pitch: float) -> tuple[float, float]:
    """Degrees from (yaw, pitch) to the windows' centres (yaw wrapped); pitch 0 for HPS."""
    window = pitch_window(task)
    return yaw_window(task).offset(yaw), 0.0 if window is None else window.offset(pitch)


def target_direction(task: Task, yaw: float, pitch: float) -> tuple[float, float]:
    """Signed degrees to turn from (yaw, pitch) to the windows' centres (yaw wrapped to
    [-180, 180), positive right and up); pitch 0 for HPS. Privileged: a training label only."""
    window = pitch_window(task)
    return yaw_delta(yaw, yaw_window(task).centre), 0.0 if window is None else window.centre - pitch


def is_success(task: Task, yaw: float, pitch: float) -> bool:
    """Whether a submitted direction solves the task (both windows hold for HOS)."""
    window = pitch_window(task)
    return bool(yaw_window(task).contains(yaw)) and (window is None or bool(window.contains(pitch)))


def distance_reward(task: Task, yaw: float, pitch: float) -> float:
    """Optional shaping ``[pi - d(yaw) + pi - d(pitch)] / 2pi`` of the H* paper, in [-1, 1].

    ``d(a, a*) = |a - (a* - tau)| + |a - (a* + tau)|`` in radians, with a* the window's
    centre and tau its half width: d is 2 tau anywhere inside the window and grows
    with the miss outside it. Yaw differences are wrapped; for HPS d(pitch) is 0.
    """
    yaw_win = yaw_window(task)
    d_yaw = yaw_distance(yaw, yaw_win.centre - yaw_win.half_width) + yaw_distance(yaw, yaw_win.centre + yaw_win.half_width)
    pitch_win = pitch_window(task)
    d_pitch = 0.0
    if pitch_win is not None:
        d_pitch = abs(pitch - (pitch_win.centre - pitch_win.half_width)) + abs(pitch - (pitch_win.centre + pitch_win.half_width))
    return (2 * math.pi - math.radians(d_yaw) - math.radians(d_pitch)) / (2 * math.pi)


def progress(task: Task, before: tuple[float, float], after: tuple[float, float]) -> float:
    """Degrees by which a turn from ``before`` to ``after`` (yaw, pitch) closed the miss of the windows.

    The sum of :func:`angular_errors` before minus after: positive toward the target, 0 for
    a turn within the windows. A training signal only (the progress shaping of PPO, as
    ObjectNav rewards the change in distance to the goal); never part of a score.
    """
    return sum(angular_errors(task, *before)) - sum(angular_errors(task, *after))


def final_reward(task: Task, yaw: float, pitch: float, *, well_formed: bool, shaping: bool = False) -> float:
    """Reward for a submitted answer: success 0.5 + format 0.5 (+ distance shaping if asked)."""
    reward = SUCCESS_REWARD * is_success(task, yaw, pitch) + FORMAT_REWARD * bool(well_formed)
    if shaping:
        reward += distance_reward(task, yaw, pitch)
    return float(reward)
