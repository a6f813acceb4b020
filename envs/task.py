"""The unit of work: one search task in one panorama, with its start directions.

A :class:`Task` is what every suite, loader and environment exchanges. It is
validated on construction, so a bad annotation fails where it is read, with the
task named, instead of deep inside an episode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Union

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
        object.__setattr__(self, "yaw_range", _angle_pair(name, "yaw_range", self.yaw_range))
        if self.kind == HOS:
            if self.pitch_range is None:
                raise TaskError(f"{name}: an HOS task needs field 'pitch_range'")
            pitch = _angle_pair(name, "pitch_range", self.pitch_range)
            if not all(-90.0 <= p <= 90.0 for p in pitch):
                raise TaskError(f"{name}: field 'pitch_range' must lie in [-90, 90], got {pitch}")
            object.__setattr__(self, "pitch_range", pitch)
        elif self.pitch_range is not None:
            object.__setattr__(self, "pitch_range", _angle_pair(name, "pitch_range", self.pitch_range))
        starts = tuple(float(wrap_yaw(_finite(name, "start_yaws", y))) for y in self.start_yaws)
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


def _finite(name: str, field_name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TaskError(f"{name}: field {field_name!r} holds a non-number {value!r}") from None
    if not math.isfinite(number):
        raise TaskError(f"{name}: field {field_name!r} holds a non-finite value {value!r}")
    return number


def _angle_pair(name: str, field_name: str, pair: Any) -> tuple[float, float]:
    try:
        first, second = pair
    except (TypeError, ValueError):
        raise TaskError(f"{name}: field {field_name!r} must be a pair [a, b], got {pair!r}") from None
    return _finite(name, field_name, first), _finite(name, field_name, second)
