"""Scripted baseline agents: ``random``, ``random_horizon``, ``blind``, ``sweep`` and ``oracle``.

They bracket every learned agent. The floors: ``random`` submits a direction uniform
on the sphere (its expected success is known in closed form from the target windows,
which checks the judge); ``random_horizon`` is the table's floor, a uniform yaw at a
sensible pitch (uniform in [-30, 30]); ``blind`` submits the best fixed offset from
its start without looking. ``oracle`` is the ceiling (it reads the judged target, so
anything below 100% is a harness bug), and ``sweep`` is the simplest honest searcher:
look around on a fixed pattern, score every view, submit the best spot seen.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from panoseek.envs.agent import rotate, submit
from panoseek.agents.scorers import Scorer, resolve_scorer
from panoseek.envs.geometry import (
    AngularWindow, camera_rays, clamp_pitch, rotation_matrix, vector_to_lonlat, wrap_yaw, yaw_delta,
)
from panoseek.envs.task import HOS, HPS

HORIZON_PITCH = 30.0  # random_horizon: submitted pitch uniform in [-30, 30], where targets are

# Best fixed (yaw offset from the start, pitch) per kind on all of synth:train (generator
# 2.0), fitted by panoseek.scenes.leaks.fit_blind_offsets; refit with
#   python benchmarks/leaks.py --fit synth:train
# (tests/test_benchmark_leaks.py checks them against a refit on a sample of train).
BLIND_OFFSETS: dict[str, tuple[float, float]] = {HOS: (2.0, -14.0), HPS: (69.0, 0.0)}


class RandomAgent:
    """Turns the head at random a few times, then submits a random direction.

    The submitted yaw is uniform on [0, 360). With ``pitch="sphere"`` (``random``) the
    pitch is uniform *on the sphere* (``asin`` of a uniform sine), i.e. the direction is
    uniform over all directions: the success probability of an episode is then the
    judged window's share of yaw times its share of ``sin(pitch)``, whatever the head
    turns before were (the runner's tests check the judge against exactly this). With
    ``pitch="horizon"`` (``random_horizon``) the pitch is uniform in [-30, 30].
    """

    def __init__(self, seed: int = 0, max_rotations: int = 3, pitch: str = "sphere") -> None:
        if pitch not in ("sphere", "horizon"):
            raise ValueError(f"pitch must be 'sphere' or 'horizon', got {pitch!r}")
        self.seed = int(seed)
        self.max_rotations = int(max_rotations)
        self.pitch = pitch
        self._rng = np.random.default_rng(self.seed)
        self._rotations_left = 0

    def reset(self, task_info: dict[str, Any]) -> None:
        self._rng = np.random.default_rng([self.seed, int(task_info.get("seed", 0))])
        budget = max(0, min(self.max_rotations, int(task_info.get("max_turns", 10)) - 1))
        self._rotations_left = int(self._rng.integers(0, budget + 1))

    def act(self, observation: dict[str, Any]) -> dict[str, Any]:
        if self._rotations_left > 0:
            self._rotations_left -= 1
            return rotate(self._rng.uniform(-180.0, 180.0), self._rng.uniform(-30.0, 30.0))
        yaw = self._rng.uniform(0.0, 360.0)
        if self.pitch == "horizon":
            return submit(yaw, self._rng.uniform(-HORIZON_PITCH, HORIZON_PITCH))
        pitch = math.degrees(math.asin(self._rng.uniform(-1.0, 1.0)))
        return submit(yaw, pitch)


def horizon_random_agent(seed: int = 0, max_rotations: int = 3) -> RandomAgent:
    """``random_horizon``: :class:`RandomAgent` with a uniform yaw and a pitch uniform in [-30, 30]."""
    return RandomAgent(seed, max_rotations, pitch="horizon")


class BlindAgent:
    """Submits its start yaw plus a fixed offset per kind on the first turn, never looking.

    A floor that measures how much a suite leaks the target's direction through the
    start: it reads only ``task_info["kind"]`` and ``task_info["start_yaw"]``. The
    offsets default to :data:`BLIND_OFFSETS`, the best on synth:train.
    """

    def __init__(self, offsets: dict[str, tuple[float, float]] | None = None) -> None:
        self.offsets = dict(BLIND_OFFSETS if offsets is None else offsets)
        self._answer: tuple[float, float] | None = None

    def reset(self, task_info: dict[str, Any]) -> None:
        dyaw, pitch = self.offsets[task_info["kind"]]
        self._answer = (wrap_yaw(float(task_info["start_yaw"]) + dyaw), pitch)

    def act(self, observation: dict[str, Any]) -> dict[str, Any]:
        if self._answer is None:
            raise RuntimeError("BlindAgent.act called before reset")
        return submit(*self._answer)


# Default scan: the horizon ring (4 views 90 degrees apart: a 100-degree view leaves
# no gap), then a staggered ring alternately above and below it. 8 views = 7 turns
# plus the submit, inside H*'s 10-turn budget. Offsets are (yaw from start, pitch).
DEFAULT_PATTERN: tuple[tuple[float, float], ...] = (
    (0.0, 0.0), (90.0, 0.0), (180.0, 0.0), (270.0, 0.0),
    (315.0, 35.0), (225.0, -35.0), (135.0, 35.0), (45.0, -35.0),
)


class SweepAgent:
    """Looks in a fixed pattern of directions, scores each view, submits the best spot.

    ``scorer`` maps ``(view RGB uint8, instruction)`` to a 2-D score map over the view
    (any resolution); the best score over all views wins and the agent submits the
    direction of that map cell. Built-in scorers are described in
    :mod:`panoseek.agents.scorers`; an import path ``package.module:function`` plugs
    in any other.
    """

    def __init__(self, scorer: str | Scorer = "colour", pattern: tuple[tuple[float, float], ...] = DEFAULT_PATTERN) -> None:
        self.scorer = resolve_scorer(scorer)
        self.pattern = tuple((float(y), float(p)) for y, p in pattern)
        if not self.pattern:
            raise ValueError("sweep pattern is empty")
        self._info: dict[str, Any] = {}
        self._next = 0
        self._best: tuple[float, tuple[float, float], tuple[float, float]] | None = None

    def reset(self, task_info: dict[str, Any]) -> None:
        self._info = task_info
        self._next = 0
        self._best = None

    def act(self, observation: dict[str, Any]) -> dict[str, Any]:
        yaw, pitch = (float(a) for a in observation["heading"])
        self._score_view(observation["image"], yaw, pitch)
        turns_left = int(self._info.get("max_turns", 10)) - int(observation.get("turn", 0))
        while self._next < len(self.pattern) and turns_left > 1:
            offset_yaw, target_pitch = self.pattern[self._next]
            self._next += 1
            target_yaw = wrap_yaw(float(self._info.get("start_yaw", 0.0)) + offset_yaw)
            dyaw, dpitch = yaw_delta(yaw, target_yaw), target_pitch - pitch
            if abs(dyaw) > 1e-3 or abs(dpitch) > 1e-3:  # already looking there: skip
                return rotate(dyaw, dpitch)
        return submit(*self._best_direction())

    def _score_view(self, image: np.ndarray, yaw: float, pitch: float) -> None:
        scores = np.asarray(self.scorer(image, self._info.get("instruction", "")), dtype=np.float64)
        if scores.ndim != 2 or scores.size == 0:
            raise ValueError(f"scorer must return a non-empty 2-D score map, got shape {scores.shape}")
        row, col = np.unravel_index(int(np.argmax(scores)), scores.shape)
        height, width = image.shape[:2]
        # Cell centre of the score map in view pixel coordinates.
        x = (col + 0.5) * width / scores.shape[1] - 0.5
        y = (row + 0.5) * height / scores.shape[0] - 0.5
        score = float(scores[row, col])
        if self._best is None or score > self._best[0]:
            self._best = (score, (yaw, pitch), (x, y))

    def _best_direction(self) -> tuple[float, float]:
        if self._best is None:
            return float(self._info.get("start_yaw", 0.0)), 0.0
        _, (yaw, pitch), (x, y) = self._best
        width, height = (int(v) for v in self._info.get("view_size", (448, 252)))
        col = int(np.clip(round(x), 0, width - 1))
        row = int(np.clip(round(y), 0, height - 1))
        # One ray, rotated with a 3x3 product: exact and the same in every process
        # (a whole-view matrix product goes through multi-threaded BLAS).
        ray = camera_rays(float(self._info.get("fov_deg", 100.0)), width, height)[row, col]
        lon, lat = vector_to_lonlat(rotation_matrix(yaw, pitch) @ ray)
        return wrap_yaw(float(lon)), clamp_pitch(float(lat))


class OracleAgent:
    """Submits the centre of the judged target at once: the harness's upper bound.

    It declares the ``"target"`` privilege, so the runner hands it the target ranges
    (and marks its runs privileged); any episode it fails is a bug in the judge, the
    runner or the suite.
    """

    privileges = ("target",)

    def __init__(self) -> None:
        self._target: tuple[float, float] | None = None

    def reset(self, task_info: dict[str, Any]) -> None:
        privileged = task_info.get("target")
        if not privileged or "yaw_range" not in privileged:
            raise ValueError("the oracle needs task_info['target']['yaw_range'] (run it through the runner)")
        # The window centres do not depend on the tolerance, so 0 stands in for it.
        yaw = AngularWindow.from_yaw_range(*privileged["yaw_range"], tolerance=0.0).centre
        pitch_range = privileged.get("pitch_range")
        pitch = 0.0 if pitch_range is None else AngularWindow.from_pitch_range(*pitch_range, tolerance=0.0).centre
        self._target = (yaw, pitch)

    def act(self, observation: dict[str, Any]) -> dict[str, Any]:
        if self._target is None:
            raise RuntimeError("OracleAgent.act called before reset")
        return submit(*self._target)
