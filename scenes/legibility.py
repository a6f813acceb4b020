"""Legibility rules: how large a target must look at the standard view to be recognisable.

Small agents see the benchmark at 448x252 (100° horizontal field of view), where one
degree at the centre is about 3.3 px and the env draws a 1-px green cross with arms
of 9 px over the centre. Every object a task asks for (targets and their look-alikes,
which share one size distribution so that size tells nothing) is placed only if, in
the view centred on it:

* its shorter side is at least :data:`MIN_SIDE_PX` (16 px) and the crosshair covers at
  most :data:`MAX_CROSSHAIR_COVER` (10%) of its box;
* printed text a text task reads has a cap height of at least :data:`MIN_CAP_PX` (8 px);
* a clock face (whose hands a text task reads) is at least :data:`MIN_CLOCK_PX` (36 px)
  across: its minute hand reaches past the crosshair's arm and its hands are 2-3 px
  thick, so a 1-px line over one never hides it.

Sizes are measured by projecting the card's edges into that view (no pixels drawn).
"""

from __future__ import annotations

import math

import numpy as np

from panoseek.envs.geometry import focal_length_px, project_to_view, vector_to_lonlat
from panoseek.scenes.layout import Placement
from panoseek.scenes.library import ObjectSpec, category, text_cap_fraction
from panoseek.scenes.levels import VIEW_FOV_DEG

STANDARD_VIEW = (448, 252)
MIN_SIDE_PX = 16.0
MIN_CAP_PX = 8.0
MIN_CLOCK_PX = 36.0
MAX_CROSSHAIR_COVER = 0.10
CROSSHAIR_ARM_PX = max(3, round(0.02 * STANDARD_VIEW[0]))  # as the env draws it
# Pixels per degree at the centre of the standard view: a lower bound anywhere in it.
PX_PER_DEG = focal_length_px(VIEW_FOV_DEG, STANDARD_VIEW[0]) * math.pi / 180.0


def pixel_size(card: Placement) -> tuple[float, float]:
    """(width, height) in px of ``card`` in the standard view centred on its judged centre."""
    yaw = math.radians(card.yaw)
    forward = card.distance * np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)]) * card.width / 2.0
    up = np.array([0.0, 1.0, 0.0])
    low, high = card.bottom - card.camera_height, card.bottom + card.height - card.camera_height
    middle = (low + high) / 2.0
    points = np.stack([forward - right + middle * up, forward + right + middle * up, forward + low * up, forward + high * up])
    lon, lat = vector_to_lonlat(points)
    x, y, _ = project_to_view(lon, lat, card.yaw, sum(card.pitch_range) / 2.0, VIEW_FOV_DEG, *STANDARD_VIEW)
    return float(x[1] - x[0]), float(y[2] - y[3])


def crosshair_cover(width_px: float, height_px: float) -> float:
    """Share of a centred ``width x height`` box that the crosshair's two 1-px lines cover."""
    span = 2 * CROSSHAIR_ARM_PX + 1
    return (min(width_px, span) + min(height_px, span) - 1.0) / max(width_px * height_px, 1.0)


def reads_detail(spec: ObjectSpec, kind: str) -> str:
    """What a task of ``kind`` must read on ``spec``: "text", "clock" or "" (its shape and colour)."""
    if spec.category == "clock":
        return "clock"
    return "text" if kind == "text" else ""


def cap_px(spec: ObjectSpec, height_px: float) -> float:
    """Cap height in px of the text on ``spec`` when the object is ``height_px`` high."""
    return text_cap_fraction(spec.category, spec.text) * height_px


def min_angular_size(spec: ObjectSpec, kind: str) -> float:
    """Larger angular dimension (degrees) from which on ``spec`` meets the rules.

    A conservative estimate from the category's aspect and the pixels per degree at the
    view centre, used to draw sizes; the exact check is :func:`is_legible` on the card.
    """
    aspect = category(spec.category).aspect
    elongation = max(aspect, 1.0 / aspect)
    side = max(MIN_SIDE_PX, 2 * CROSSHAIR_ARM_PX + 1) / PX_PER_DEG  # the crosshair rule needs ~19 px
    needed = side * elongation
    detail = reads_detail(spec, kind)
    if detail == "clock":
        needed = max(needed, MIN_CLOCK_PX / PX_PER_DEG)
    elif detail == "text":
        fraction = text_cap_fraction(spec.category, spec.text)
        needed = max(needed, math.inf if fraction <= 0 else MIN_CAP_PX / fraction / PX_PER_DEG * max(aspect, 1.0))
    return needed


def is_legible(card: Placement, kind: str) -> bool:
    """Whether ``card`` meets every rule above for a task of ``kind``."""
    width, height = pixel_size(card)
    if min(width, height) < MIN_SIDE_PX or crosshair_cover(width, height) > MAX_CROSSHAIR_COVER:
        return False
    detail = reads_detail(card.spec, kind)
    if detail == "clock":
        return min(width, height) >= MIN_CLOCK_PX
    if detail == "text":
        return cap_px(card.spec, height) >= MIN_CAP_PX
    return True
