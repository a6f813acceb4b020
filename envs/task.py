"""The unit of work: one search task in one panorama, with its start directions.

A :class:`Task` is what every suite, loader and environment exchanges. It is
validated on construction, so a bad annotation fails where it is read, with the
task named, instead of deep inside an episode.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np

from panoseek.envs.geometry import wrap_yaw
from panoseek.envs.panorama import as_panorama, load_panorama

HOS = "HOS"  # object search: find and face an object (yaw and pitch judged)
HPS = "HPS"  # path search: face the way to walk (yaw judged)
KINDS = (HOS, HPS)

LEVEL_NAMES = {
    HOS: ("Easy", "Medium", "Hard"),
    HPS: ("Easy", "Medium", "Hard", "Extreme"),
}

UNLABELLED = "Unlabelled"  # level name of a start whose level the annotation does not give

DEFAULT_START_YAWS = (0.0, 90.0, 180.0, 270.0)

# Bounds of a task's angles, in degrees: start yaws and the start of a yaw range lie in
# [-YAW_LIMIT, YAW_LIMIT] (every usual way of writing a yaw), a yaw range ends at most one
# turn from its start, pitches lie in [-PITCH_LIMIT, PITCH_LIMIT]. Anything else is a
# typo or a unit error, refused rather than wrapped into a plausible-looking target.
YAW_LIMIT = 360.0
PITCH_LIMIT = 90.0

PanoramaSource = Union[str, Path, np.ndarray, Callable[[], np.ndarray]]


class TaskError(ValueError):
    """A task description that cannot be used; the message names the task and field."""


@dataclass(frozen=True, eq=False)
class Task:
    """One search task.

    Attributes:
        id: unique within its suite.
        kind: ``"HOS"`` (object search) or ``"HPS"`` (path search).
        instruction: what the agent is asked to find, in natural language.
        panorama: a file path, an ``(H, 2H, 3)`` uint8 RGB array, or a zero-argument
            callable producing one lazily (procedural scenes).
        yaw_range: target ``(y0, y1)`` in degrees, walked rightwards from y0; wraps
            through 0 when ``y0 > y1``.
        pitch_range: target ``(p0, p1)`` for HOS; ``None`` for HPS.
        start_yaws: the episode start directions (pitch always starts at 0).
        levels: difficulty level of each start (``LEVEL_NAMES[kind][level]``), or
            ``None`` for a start whose level is unknown (reported as ``Unlabelled``).
        metadata: free data (scene type, object category, exemplar path, ...).
            Privileged: agents never see it unless they declare so.
        panorama_id: tasks with the same id share one panorama (a suite sets it, e.g.
            ``"synth:<scene seed>"``); the runner plays them in one worker so caches serve
            them. ``None``: the panorama file path, if any, identifies it.
    """

    id: str
    kind: str
    instruction: str
    panorama: PanoramaSource
    yaw_range: tuple[float, float]
    pitch_range: tuple[float, float] | None = None
    start_yaws: tuple[float, ...] = DEFAULT_START_YAWS
    levels: tuple[int | None, ...] = (0, 0, 0, 0)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    panorama_id: str | None = None

    def __post_init__(self) -> None:
        name = f"task {self.id!r}"
        if not isinstance(self.id, str) or not self.id:
            raise TaskError(f"task id must be a non-empty string, got {self.id!r}")
        if self.kind not in KINDS:
            raise TaskError(f"{name}: field 'kind' must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise TaskError(f"{name}: field 'instruction' must be a non-empty string")
        yaw = _angle_pair(name, "yaw_range", self.yaw_range)
        if abs(yaw[0]) > YAW_LIMIT or abs(yaw[1] - yaw[0]) > 360.0 + 1e-6:  # slack for y0 + 360 in floats
            raise TaskError(
                f"{name}: field 'yaw_range' must start within [-{YAW_LIMIT:g}, {YAW_LIMIT:g}] and end at most "
                f"one turn (360) from its start, got {self.yaw_range!r}"
            )
        object.__setattr__(self, "yaw_range", yaw)
        if self.kind == HOS and self.pitch_range is None:
            raise TaskError(f"{name}: an HOS task needs field 'pitch_range'")
        if self.pitch_range is not None:
            object.__setattr__(self, "pitch_range", _angle_pair(name, "pitch_range", self.pitch_range, PITCH_LIMIT))
        if isinstance(self.start_yaws, (str, bytes)) or not isinstance(self.start_yaws, Iterable):
            raise TaskError(f"{name}: field 'start_yaws' must be a list of numbers, got {self.start_yaws!r}")
        starts = tuple(float(wrap_yaw(_finite(name, "start_yaws", y, YAW_LIMIT))) for y in self.start_yaws)
        if not starts:
            raise TaskError(f"{name}: field 'start_yaws' is empty")
        levels = tuple(self.levels)
        if len(levels) != len(starts):
            raise TaskError(
                f"{name}: field 'levels' has {len(levels)} entries for {len(starts)} start yaws"
            )
        n_levels = len(LEVEL_NAMES[self.kind])
        for level in levels:
            if level is None:
                continue
            if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level < n_levels:
                raise TaskError(f"{name}: level {level!r} is not in 0..{n_levels - 1} for {self.kind}")
        object.__setattr__(self, "start_yaws", starts)
        object.__setattr__(self, "levels", tuple(None if level is None else int(level) for level in levels))
        if self.panorama_id is not None and not (isinstance(self.panorama_id, str) and self.panorama_id):
            raise TaskError(f"{name}: field 'panorama_id' must be None or a non-empty string, got {self.panorama_id!r}")
        if not (isinstance(self.panorama, (str, Path, np.ndarray)) or callable(self.panorama)):
            raise TaskError(
                f"{name}: field 'panorama' must be a path, an array or a callable, "
                f"got {type(self.panorama).__name__}"
            )

    @property
    def n_starts(self) -> int:
        return len(self.start_yaws)

    def level_name(self, start_index: int) -> str:
        level = self.levels[start_index]
        return UNLABELLED if level is None else LEVEL_NAMES[self.kind][level]

    def load_panorama(self) -> np.ndarray:
        """The panorama as ``(H, 2H, 3)`` uint8 RGB (read or generated on each call)."""
        source = self.panorama
        if isinstance(source, np.ndarray):
            return as_panorama(source, source=f"task {self.id!r} panorama")
        if isinstance(source, (str, Path)):
            return load_panorama(source)
        return as_panorama(source(), source=f"task {self.id!r} panorama")


def panorama_key(task: Task, task_index: int) -> str:
    """Tasks with equal keys share a panorama: the task's ``panorama_id``, else its file path
    (else the task alone, by its index in its list)."""
    if task.panorama_id is not None:
        return f"id:{task.panorama_id}"
    if isinstance(task.panorama, (str, Path)):
        return f"file:{task.panorama}"
    return f"task:{task_index}"


def panorama_groups(tasks: Sequence[Task]) -> list[list[int]]:
    """Task indices grouped by :func:`panorama_key`, groups in the order of their first task."""
    groups: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        groups.setdefault(panorama_key(task, index), []).append(index)
    return list(groups.values())


def _finite(name: str, field_name: str, value: Any, limit: float = math.inf) -> float:
    """``value`` as a float: a real number (not a bool or text), finite, within [-limit, limit]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TaskError(f"{name}: field {field_name!r} holds a non-number {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise TaskError(f"{name}: field {field_name!r} holds a non-finite value {value!r}")
    if abs(number) > limit:
        raise TaskError(f"{name}: field {field_name!r} must lie in [-{limit:g}, {limit:g}], got {value!r}")
    return number


def _angle_pair(name: str, field_name: str, pair: Any, limit: float = math.inf) -> tuple[float, float]:
    """A pair ``[a, b]`` of numbers (a list, tuple or array, never text) within [-limit, limit]."""
    if isinstance(pair, np.ndarray):
        pair = pair.tolist()
    if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
        raise TaskError(f"{name}: field {field_name!r} must be a pair [a, b] of numbers, got {pair!r}")
    return _finite(name, field_name, pair[0], limit), _finite(name, field_name, pair[1], limit)
