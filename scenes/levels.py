"""Difficulty levels of object-search episodes from the target's visibility at the start.

DESIGN.md: with d the fraction of the target visible in the start view (pitch 0,
100° horizontal field of view, 16:9), Easy is d >= 0.5, Medium 0 < d < 0.5, Hard d = 0.
Procedural scenes measure d on their object masks; real panoramas only have the
annotated box, so :func:`box_visibility` measures d on that box.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from panoseek.envs.geometry import project_to_view, yaw_range_width

EASY, MEDIUM, HARD = 0, 1, 2
VIEW_FOV_DEG = 100.0
VIEW_SIZE = (1920, 1080)  # H* Bench's evaluation view; only its 16:9 aspect matters here
_SAMPLES = 32  # per axis: the view edge is located to 1/32 of the box size


def hos_level(visibility: float) -> int:
    """Level index (0 Easy, 1 Medium, 2 Hard) of an HOS episode whose target is ``visibility`` visible."""
    if not 0.0 <= visibility <= 1.0:
        raise ValueError(f"visibility must lie in [0, 1], got {visibility!r}")
    if visibility >= 0.5:
        return EASY
    return MEDIUM if visibility > 0.0 else HARD


def box_visibility(
    yaw_range: tuple[float, float],
    pitch_range: tuple[float, float],
    start_yaws: Sequence[float],
    fov_deg: float = VIEW_FOV_DEG,
    size: tuple[int, int] = VIEW_SIZE,
) -> np.ndarray:
    """Fraction of the target box's solid angle inside the view at each (start yaw, pitch 0).

    The box spans ``yaw_range`` (walked rightwards, wrapping through 0) by
    ``pitch_range``; directions are sampled on a regular grid weighted by cos(pitch).
    A pitch-0 view turned by ``s`` sees what the view at yaw 0 sees of directions
    turned back by ``s``, so all starts are projected in one call.
    """
    y0, _ = yaw_range
    width_deg = yaw_range_width(*yaw_range)
    lo, hi = sorted(pitch_range)
    yaws = y0 + (np.arange(_SAMPLES) + 0.5) / _SAMPLES * width_deg
    pitches = lo + (np.arange(_SAMPLES) + 0.5) / _SAMPLES * (hi - lo)
    yaw_grid, pitch_grid = (grid.ravel() for grid in np.meshgrid(yaws, pitches))
    starts = np.asarray(start_yaws, dtype=np.float64)
    relative, pitch = np.broadcast_arrays(yaw_grid[None, :] - starts[:, None], pitch_grid[None, :])
    width, height = size
    x, y, in_front = project_to_view(relative, pitch, 0.0, 0.0, fov_deg, width, height)
    with np.errstate(invalid="ignore"):
        inside = in_front & (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    weights = np.cos(np.radians(pitch_grid))
    total = weights.sum()
    return (inside * weights).sum(axis=1) / total if total > 0 else np.zeros(len(starts))
