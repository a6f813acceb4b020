"""How much of an object card a start view shows, computed from geometry (no pixels).

The start view of an episode looks at pitch 0 with H* Bench's camera (100° horizontal,
16:9). Visibility ``d`` is the fraction of points sampled over the card (edges
included) that land inside that view (``project_to_view``). A pitch-0 view turned by
``yaw`` sees what the view at yaw 0 sees of directions turned back by ``yaw``, so
all candidate start yaws are evaluated in one vectorised call.
"""

from __future__ import annotations

import numpy as np

from panoseek.envs.geometry import project_to_view, yaw_distance
from panoseek.scenes.layout import Placement
from panoseek.scenes.levels import HARD, VIEW_FOV_DEG, VIEW_SIZE, hos_level

SAMPLES = 9  # per side of the card
HARD_MARGIN_PX = 30  # a Hard start keeps the card this far outside the view (~2°): blur can't leak it in
AMBIGUOUS = -1  # neither Hard nor visible: too close to the view's edge to call, never used as a start


def visibility(card: Placement, start_yaws: np.ndarray, margin_px: float = 0.0) -> np.ndarray:
    """Fraction of the card's sample points inside each start view (pitch 0).

    ``margin_px`` grows the view by that many pixels on every side.
    """
    return _visibility(card, np.asarray(start_yaws, dtype=np.float64), (margin_px,))[0]


def _visibility(card: Placement, start_yaws: np.ndarray, margins: tuple[float, ...]) -> list[np.ndarray]:
    yaw, pitch = card.surface_directions(SAMPLES)
    relative, pitch = np.broadcast_arrays(yaw[None, :] - start_yaws[:, None], pitch[None, :])
    width, height = VIEW_SIZE
    x, y, in_front = project_to_view(relative, pitch, 0.0, 0.0, VIEW_FOV_DEG, width, height)
    result = []
    with np.errstate(invalid="ignore"):
        for margin in margins:
            inside = in_front & (x >= -0.5 - margin) & (x <= width - 0.5 + margin)
            inside &= (y >= -0.5 - margin) & (y <= height - 0.5 + margin)
            result.append(inside.mean(axis=1))
    return result


def start_levels(card: Placement, start_yaws: np.ndarray) -> np.ndarray:
    """HOS level (0 Easy, 1 Medium, 2 Hard) of each start yaw, or ``AMBIGUOUS``.

    A pinhole view at pitch 0 shows only directions within half its horizontal field
    of view in yaw (x / z = tan(yaw offset) at any pitch), so starts farther than that
    from every point of the card are Hard without projecting.
    """
    start_yaws = np.asarray(start_yaws, dtype=np.float64)
    levels = np.full(start_yaws.shape, HARD)
    reach = VIEW_FOV_DEG / 2.0 + card.half_yaw + 6.0
    near = yaw_distance(start_yaws, card.yaw) <= reach
    if near.any():
        d, d_margin = _visibility(card, start_yaws[near], (0.0, HARD_MARGIN_PX))
        near_levels = np.array([hos_level(float(v)) for v in d])
        near_levels[(near_levels == HARD) & (d_margin > 0)] = AMBIGUOUS
        levels[near] = near_levels
    return levels

