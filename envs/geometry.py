"""Angle conventions of panoseek, in one place.

Every other module does its angle arithmetic through these functions; a second copy
of angle math elsewhere is a bug (DESIGN.md).

Conventions (compatible with H* Bench):

* Angles are degrees. **yaw** 0 is the panorama's centre column, positive yaw turns
  right (towards larger column index), reported in [0, 360). **pitch** is positive
  looking up, clamped to [-90, 90].
* Equirectangular pixel (u, v) of a W x H panorama, pixel centres at +0.5:
  ``lon = (u + 0.5) / W * 360 - 180``, ``lat = 90 - (v + 0.5) / H * 180``;
  ``yaw == lon mod 360``.
* World frame: x right, y up, z forward (lon 0, lat 0). A direction (lon, lat) is
  ``(cos lat sin lon, sin lat, cos lat cos lon)``.
* Camera: pinhole, roll 0, horizontal field of view ``fov_deg``; pixel centres at +0.5.

All functions accept scalars or numpy arrays and broadcast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ArrayLike = float | np.ndarray


# --------------------------------------------------------------------------- angles


def _is_scalar(value: object) -> bool:
    """Plain Python numbers take math fast paths: the env calls these once per step."""
    return isinstance(value, (float, int)) and not isinstance(value, bool)


def wrap_yaw(yaw: ArrayLike) -> ArrayLike:
    """Yaw in [0, 360). NaN and inf stay NaN (callers validate finiteness)."""
    if _is_scalar(yaw):
        wrapped = float(yaw) % 360.0
        return 0.0 if wrapped >= 360.0 else wrapped
    wrapped = np.mod(yaw, 360.0)
    # np.mod(-1e-20, 360) == 360.0 in floating point; fold that back to 0.
    wrapped = np.where(wrapped >= 360.0, 0.0, wrapped)
    return float(wrapped) if np.ndim(wrapped) == 0 else wrapped


def clamp_pitch(pitch: ArrayLike) -> ArrayLike:
    """Pitch clamped to [-90, 90]."""
    if _is_scalar(pitch) and pitch == pitch:
        return min(max(float(pitch), -90.0), 90.0)
    clamped = np.clip(pitch, -90.0, 90.0)
    return float(clamped) if np.ndim(clamped) == 0 else clamped


def yaw_delta(from_yaw: ArrayLike, to_yaw: ArrayLike) -> ArrayLike:
    """Signed shortest turn from ``from_yaw`` to ``to_yaw``, in [-180, 180)."""
    if _is_scalar(from_yaw) and _is_scalar(to_yaw):
        delta = (float(to_yaw) - from_yaw + 180.0) % 360.0 - 180.0
        return -180.0 if delta >= 180.0 else delta
    delta = np.mod(np.asarray(to_yaw, dtype=np.float64) - from_yaw + 180.0, 360.0) - 180.0
    delta = np.where(delta >= 180.0, -180.0, delta)
    return float(delta) if np.ndim(delta) == 0 else delta


def yaw_distance(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """Unsigned shortest angular distance between two yaws, in [0, 180]."""
    if _is_scalar(a) and _is_scalar(b):
        return abs(yaw_delta(a, b))
    distance = np.abs(yaw_delta(a, b))
    return float(distance) if np.ndim(distance) == 0 else distance


def yaw_to_lon(yaw: ArrayLike) -> ArrayLike:
    """Yaw -> longitude in [-180, 180) (the ``u_deg`` of py360convert)."""
    return yaw_delta(0.0, yaw)


# ------------------------------------------------------------------- sphere <-> pixel


def pixel_to_lonlat(u: ArrayLike, v: ArrayLike, width: int, height: int) -> tuple:
    """Equirectangular pixel coordinates (may be fractional) -> (lon, lat) degrees."""
    lon = (np.asarray(u, dtype=np.float64) + 0.5) / width * 360.0 - 180.0
    lat = 90.0 - (np.asarray(v, dtype=np.float64) + 0.5) / height * 180.0
    return lon, lat


def lonlat_to_pixel(lon: ArrayLike, lat: ArrayLike, width: int, height: int) -> tuple:
    """(lon, lat) degrees -> fractional pixel coordinates (u, v); inverse of the above.

    ``lon`` is not wrapped: callers that need a column inside the image wrap it.
    """
    u = (np.asarray(lon, dtype=np.float64) + 180.0) / 360.0 * width - 0.5
    v = (90.0 - np.asarray(lat, dtype=np.float64)) / 180.0 * height - 0.5
    return u, v


def lonlat_to_vector(lon: ArrayLike, lat: ArrayLike) -> np.ndarray:
    """(lon, lat) degrees -> unit vectors, shape ``(..., 3)`` as (x right, y up, z fwd)."""
    lon_r = np.radians(lon)
    lat_r = np.radians(lat)
    cos_lat = np.cos(lat_r)
    return np.stack([cos_lat * np.sin(lon_r), np.sin(lat_r), cos_lat * np.cos(lon_r)], axis=-1)


def vector_to_lonlat(vectors: np.ndarray) -> tuple:
    """Vectors ``(..., 3)`` (any length) -> (lon in [-180, 180], lat in [-90, 90])."""
    return _xyz_to_lonlat(vectors[..., 0], vectors[..., 1], vectors[..., 2])


def _xyz_to_lonlat(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple:
    """:func:`vector_to_lonlat` on separate components (no ``(..., 3)`` array needed)."""
    lon = np.degrees(np.arctan2(x, z))
    lat = np.degrees(np.arctan2(y, np.hypot(x, z)))
    return lon, lat


def great_circle_distance(yaw_a: ArrayLike, pitch_a: ArrayLike, yaw_b: ArrayLike, pitch_b: ArrayLike) -> ArrayLike:
    """Angle in degrees between two viewing directions."""
    dot = np.sum(lonlat_to_vector(yaw_a, pitch_a) * lonlat_to_vector(yaw_b, pitch_b), axis=-1)
    angle = np.degrees(np.arccos(np.clip(dot, -1.0, 1.0)))
    return float(angle) if np.ndim(angle) == 0 else angle


# ---------------------------------------------------------------------------- camera


def focal_length_px(fov_deg: float, width: int) -> float:
    """Pinhole focal length in pixels for a horizontal field of view."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg!r}")
    return (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)


def vertical_fov_deg(fov_deg: float, width: int, height: int) -> float:
    """Vertical field of view of a ``width x height`` pinhole view."""
    return math.degrees(2.0 * math.atan((height / 2.0) / focal_length_px(fov_deg, width)))


@lru_cache(maxsize=32)
def camera_rays(fov_deg: float, width: int, height: int) -> np.ndarray:
    """Unnormalised camera-frame rays through pixel centres, ``(H, W, 3)`` float64.

    Cached per (fov, size) and read-only: the same rays serve every head pose.
    """
    f = focal_length_px(fov_deg, width)
    xs = (np.arange(width, dtype=np.float64) + 0.5 - width / 2.0) / f
    ys = -(np.arange(height, dtype=np.float64) + 0.5 - height / 2.0) / f
    rays = np.empty((height, width, 3), dtype=np.float64)
    rays[..., 0] = xs[None, :]
    rays[..., 1] = ys[:, None]
    rays[..., 2] = 1.0
    rays.setflags(write=False)
    return rays


def rotation_matrix(yaw: float, pitch: float) -> np.ndarray:
    """Camera -> world rotation for a head pose: pitch up about x, then yaw right about y.

    Applied to row vectors as ``rays @ R.T``; maps the camera's forward axis (0, 0, 1)
    to ``lonlat_to_vector(yaw, pitch)``.
    """
    y, p = math.radians(yaw), math.radians(pitch)
    return np.array(_rotation_rows(math.cos(y), math.sin(y), math.cos(p), math.sin(p), 0.0))


def rotation_matrices(yaw: ArrayLike, pitch: ArrayLike) -> np.ndarray:
    """:func:`rotation_matrix` for arrays of head poses at once: shape ``(..., 3, 3)``.

    Batched renderers build one matrix per view on the host without a Python loop.
    """
    y, p = np.broadcast_arrays(np.radians(np.asarray(yaw, dtype=np.float64)), np.radians(np.asarray(pitch, dtype=np.float64)))
    rows = _rotation_rows(np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.zeros_like(y))
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def _rotation_rows(cy, sy, cp, sp, zero) -> list:
    """Rows of ``yaw_right @ pitch_up`` (yaw about y, pitch about x) for scalars or arrays."""
    return [[cy, -sy * sp, sy * cp], [zero, cp, sp], [-sy, -cy * sp, cy * cp]]


def view_lonlat(yaw: float, pitch: float, fov_deg: float, width: int, height: int) -> tuple:
    """(lon, lat) seen by every pixel of a view, each ``(H, W)`` float64. Reference path."""
    rays = camera_rays(float(fov_deg), int(width), int(height)) @ rotation_matrix(yaw, pitch).T
    return vector_to_lonlat(rays)


def view_pixel_lonlat(
    x: ArrayLike, y: ArrayLike, yaw: float, pitch: float, fov_deg: float, width: int, height: int
) -> tuple:
    """(lon, lat) seen at view pixel coordinates (x, y) (fractional, any shape).

    Same camera as :func:`view_lonlat` but only at the given points: the fast renderer
    evaluates sparse grids and a few exact pixels with it. Inverse of :func:`project_to_view`.
    """
    f = focal_length_px(fov_deg, width)
    a = (np.asarray(x, dtype=np.float64) + (0.5 - width / 2.0)) / f
    b = ((height / 2.0 - 0.5) - np.asarray(y, dtype=np.float64)) / f
    r = rotation_matrix(yaw, pitch)
    # The world ray r @ (a, b, 1), one component at a time (no (..., 3) temporaries).
    x, y, z = (r[i, 0] * a + r[i, 1] * b + r[i, 2] for i in range(3))
    return _xyz_to_lonlat(x, y, z)


def project_to_view(
    yaw: ArrayLike, pitch: ArrayLike, view_yaw: float, view_pitch: float, fov_deg: float, width: int, height: int
) -> tuple:
    """World directions -> view pixel coordinates (x, y) and a mask of those in front.

    Inverse of :func:`view_lonlat`; used to draw targets and gaze paths on views.
    """
    world = lonlat_to_vector(yaw, pitch)
    cam = world @ rotation_matrix(view_yaw, view_pitch)  # R.T applied to row vectors
    f = focal_length_px(fov_deg, width)
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = cam[..., 0] / z * f + width / 2.0 - 0.5
        y = -cam[..., 1] / z * f + height / 2.0 - 0.5
    return x, y, z > 1e-9


def view_position(
    yaw: float, pitch: float, view_yaw: float, view_pitch: float, fov_deg: float, width: int, height: int
) -> tuple[float, float] | None:
    """Pixel ``(x, y)`` at which the direction (yaw, pitch) appears in the view, or None when
    it is outside the view (behind the camera, or beyond an edge's pixel centre by more than
    half a pixel). The one rule for "is it in view" (the env's ``target_in_view``, experts)."""
    x, y, in_front = project_to_view(yaw, pitch, view_yaw, view_pitch, fov_deg, width, height)
    if bool(in_front) and -0.5 <= float(x) <= width - 0.5 and -0.5 <= float(y) <= height - 0.5:
        return float(x), float(y)
    return None


# ------------------------------------------------------------- windows of the success rule


@dataclass(frozen=True)
class AngularWindow:
    """A target interval on one angle, as judged by the H* success rule.

    ``centre`` +- ``half_width``; yaw windows wrap through 0/360, pitch windows do not.
    A range narrower than ``2 * tolerance`` becomes ``centre +- tolerance``.
    """

    centre: float
    half_width: float
    wraps: bool

    @classmethod
    def from_yaw_range(cls, y0: float, y1: float, tolerance: float) -> "AngularWindow":
        """Yaw range [y0, y1] walked rightwards from y0 (wraps through 0 when y0 > y1)."""
        width = yaw_range_width(y0, y1)
        centre = wrap_yaw(y0 + width / 2.0)
        return cls(centre=centre, half_width=max(width / 2.0, tolerance), wraps=True)

    @classmethod
    def from_pitch_range(cls, p0: float, p1: float, tolerance: float) -> "AngularWindow":
        lo, hi = min(p0, p1), max(p0, p1)
        return cls(centre=(lo + hi) / 2.0, half_width=max((hi - lo) / 2.0, tolerance), wraps=False)

    def offset(self, angle: ArrayLike) -> ArrayLike:
        """Unsigned distance of ``angle`` from the window's centre (wrapped for yaw)."""
        if self.wraps:
            return yaw_distance(self.centre, angle)
        distance = np.abs(np.asarray(angle, dtype=np.float64) - self.centre)
        return float(distance) if np.ndim(distance) == 0 else distance

    def contains(self, angle: ArrayLike) -> ArrayLike:
        """Whether ``angle`` lies inside the window (edges included)."""
        inside = np.asarray(self.offset(angle)) <= self.half_width + 1e-9
        return bool(inside) if np.ndim(inside) == 0 else inside

    def outside_by(self, angle: ArrayLike) -> ArrayLike:
        """Degrees by which ``angle`` misses the window; 0 inside."""
        miss = np.maximum(np.asarray(self.offset(angle)) - self.half_width, 0.0)
        return float(miss) if np.ndim(miss) == 0 else miss


def yaw_range_width(y0: float, y1: float) -> float:
    """Width in degrees of the yaw range walked rightwards from y0 to y1.

    ``[10, 350]`` is 340 wide, ``[350, 10]`` is 20 wide (it wraps through 0), equal
    ends are 0 wide, and ``[0, 360]`` (ends 360 apart) is the full circle.
    """
    if abs(y1 - y0) >= 360.0:
        return 360.0
    return float(np.mod(y1 - y0, 360.0))
