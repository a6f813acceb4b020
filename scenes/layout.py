"""The 3D layout of a scene around the viewer, and where objects can go in it.

The viewer stands at the origin, eyes ``camera_height`` above the floor. The place is
a box (a hall, or a street between facades) rotated about the vertical axis, with
openings (corridors, exits, side streets) cut into its walls. Objects are upright
flat cards facing the viewer at a horizontal distance; their angular extent follows
from that distance, their size and their height above the floor.

Everything here is numbers, no pixels: building a layout is cheap, so suites can list
thousands of tasks without drawing a panorama (:mod:`panoseek.scenes.raster` draws).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from panoseek.envs.geometry import vector_to_lonlat, wrap_yaw, yaw_distance, yaw_range_width
from panoseek.scenes.catalog import SceneType
from panoseek.scenes.library import FLOOR, WALL, ObjectSpec, category


@dataclass(frozen=True)
class Room:
    """A box around the viewer: half sizes, the viewer's offset from its centre, rotation."""

    half_x: float
    half_z: float
    offset_x: float
    offset_z: float
    rotation: float  # degrees about the vertical axis
    height: float  # ceiling height indoors, facade height outdoors (m)
    camera_height: float
    indoor: bool

    def to_room(self, yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Horizontal unit directions of world yaws in the room's frame."""
        angle = np.radians(np.asarray(yaw, dtype=np.float64) + self.rotation)
        return np.sin(angle), np.cos(angle)

    def wall_distance(self, yaw) -> np.ndarray | float:
        """Horizontal distance from the viewer to the wall in direction ``yaw``."""
        dx, dz = self.to_room(yaw)
        with np.errstate(divide="ignore"):
            tx = np.where(dx > 0, self.half_x - self.offset_x, -self.half_x - self.offset_x) / dx
            tz = np.where(dz > 0, self.half_z - self.offset_z, -self.half_z - self.offset_z) / dz
        t = np.minimum(np.where(np.isfinite(tx), tx, np.inf), np.where(np.isfinite(tz), tz, np.inf))
        return float(t) if np.ndim(t) == 0 else t

    def corner_yaws(self) -> np.ndarray:
        """World yaws of the four wall corners (openings must keep clear of them)."""
        xs = np.array([1, 1, -1, -1]) * self.half_x - self.offset_x
        zs = np.array([1, -1, -1, 1]) * self.half_z - self.offset_z
        return wrap_yaw(np.degrees(np.arctan2(xs, zs)) - self.rotation)


@dataclass(frozen=True)
class Opening:
    """A walkable gap in the wall: corridor, doorway, exit or side street."""

    yaw_range: tuple[float, float]  # world yaws of its edges, walked rightwards
    height: float  # top of the gap above the floor (m); inf where the sky shows
    depth: float  # how far the passage runs before its far end (m)
    far_tone: tuple[int, int, int]  # colour at the far end (daylight, a lit hall, ...)

    @property
    def centre(self) -> float:
        return wrap_yaw(self.yaw_range[0] + self.width_deg / 2.0)

    @property
    def width_deg(self) -> float:
        return yaw_range_width(*self.yaw_range)


@dataclass(frozen=True)
class Placement:
    """An object standing in the scene: an upright card facing the viewer."""

    spec: ObjectSpec
    yaw: float  # centre direction (degrees)
    distance: float  # horizontal distance of the card (m)
    bottom: float  # height of its lower edge above the floor (m)
    width: float  # metres
    height: float  # metres
    camera_height: float
    role: str = "clutter"  # "target", "distractor", "anchor", "sign", "clutter"

    @property
    def half_yaw(self) -> float:
        return math.degrees(math.atan2(self.width / 2.0, self.distance))

    @property
    def yaw_range(self) -> tuple[float, float]:
        return wrap_yaw(self.yaw - self.half_yaw), wrap_yaw(self.yaw + self.half_yaw)

    @property
    def pitch_range(self) -> tuple[float, float]:
        """Exact pitch extent: the card's edges seen straight ahead (its nearest column)."""
        low = math.degrees(math.atan2(self.bottom - self.camera_height, self.distance))
        high = math.degrees(math.atan2(self.bottom + self.height - self.camera_height, self.distance))
        return low, high

    @property
    def angular_size(self) -> float:
        """The larger of its angular width and height (degrees)."""
        p0, p1 = self.pitch_range
        return max(2.0 * self.half_yaw, p1 - p0)

    def surface_directions(self, samples: int = 9) -> tuple[np.ndarray, np.ndarray]:
        """(yaw, pitch) of a ``samples x samples`` grid over the card (for visibility)."""
        s = (np.arange(samples) + 0.5) / samples
        lateral = (s - 0.5) * self.width
        up = self.bottom + s * self.height - self.camera_height
        lat_grid, up_grid = np.meshgrid(lateral, up)
        yaw = math.radians(self.yaw)
        forward = np.array([math.sin(yaw), 0.0, math.cos(yaw)])
        right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
        points = self.distance * forward + lat_grid[..., None] * right + up_grid[..., None] * np.array([0.0, 1.0, 0.0])
        lon, lat = vector_to_lonlat(points.reshape(-1, 3))
        return wrap_yaw(lon), lat

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "yaw": round(self.yaw, 3),
            "distance": round(self.distance, 3),
            "bottom": round(self.bottom, 3),
            "size": [round(self.width, 3), round(self.height, 3)],
            "role": self.role,
        }


@dataclass
class Layout:
    """Everything needed to draw one scene; built by :func:`panoseek.scenes.scene.build_scene`."""

    seed: int
    scene_type: SceneType
    room: Room
    floor: str
    wall: str
    wall_tone: tuple[int, int, int]
    floor_tone: tuple[int, int, int]
    ceiling_tone: tuple[int, int, int]
    sky_tone: tuple[int, int, int]
    brightness: float
    tint: tuple[float, float, float]
    openings: list[Opening] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)


# ------------------------------------------------------------------- angular planning

MAX_MOUNTED_SCALE = 3.0  # wall and high objects may be up to 3x their usual size (big posters, station clocks)


class AngularPlanner:
    """Keeps objects from overlapping in the panorama (so none hides another).

    Each occupied region is a yaw interval (centre, half width) by a pitch interval.
    """

    def __init__(self) -> None:
        self._regions = np.empty((0, 4))  # rows: yaw centre, half width, pitch low, pitch high

    def fits(self, yaw: float, half_yaw: float, pitch: tuple[float, float], margin: float = 1.0) -> bool:
        if not len(self._regions):
            return True
        centre, half, low, high = self._regions.T
        clash = (yaw_distance(centre, yaw) < half + half_yaw + margin) & (pitch[0] < high + margin) & (pitch[1] > low - margin)
        return not clash.any()

    def add(self, yaw: float, half_yaw: float, pitch: tuple[float, float]) -> None:
        self._regions = np.vstack([self._regions, [yaw, half_yaw, pitch[0], pitch[1]]])

    def add_placement(self, placement: Placement) -> None:
        self.add(placement.yaw, placement.half_yaw, placement.pitch_range)


def place(
    layout: Layout,
    planner: AngularPlanner,
    rng: np.random.Generator,
    spec: ObjectSpec,
    *,
    yaw: float | None = None,
    role: str = "clutter",
    angular_size: tuple[float, float] | None = None,
    bottom: float | None = None,
    distance: float | None = None,
    tries: int = 12,
    margin: float = 1.0,
    accept: Callable[[Placement], bool] | None = None,
) -> Placement | None:
    """Find a free spot for ``spec`` (at ``yaw`` if given), register and return it.

    ``angular_size`` bounds the object's larger angular dimension, drawn log-uniformly
    inside it: floor objects stand at the distance that gives it, wall and high
    objects (just in front of the wall) are scaled up to :data:`MAX_MOUNTED_SCALE`
    towards it. ``accept`` may refuse a candidate (legibility rules). Returns None when
    no spot is free.
    """
    cat = category(spec.category)
    room = layout.room
    for _ in range(tries):
        at = float(wrap_yaw(rng.uniform(0, 360) if yaw is None else yaw))
        wall = room.wall_distance(at)
        scale = rng.uniform(0.85, 1.15)
        wanted = math.exp(rng.uniform(*np.log(angular_size))) if angular_size is not None else 0.0  # log-uniform
        if cat.mount != FLOOR and wanted:
            at_wall = 2.0 * math.degrees(math.atan2(max(cat.size) / 2.0, wall))
            scale = max(scale, min(wanted / at_wall, MAX_MOUNTED_SCALE))
        width, height = cat.size[0] * scale, cat.size[1] * scale
        if cat.mount == FLOOR:
            low, high = 1.6, wall - 0.6
            if angular_size is not None:
                low = max(low, max(width, height) / (2.0 * math.tan(math.radians(wanted) / 2.0)))
            if distance is not None:
                low = max(low, distance)
            if low > high:
                continue
            dist = low if (angular_size is not None or distance is not None) else rng.uniform(low, high)
            base = 0.0
        else:
            dist = wall - (0.08 if cat.mount == WALL else 0.15)
            if cat.mount == WALL:
                base = rng.uniform(0.9, 1.5)
            else:
                top = room.height - 0.3 if room.indoor else min(room.height - 1.0, 6.0)
                base = rng.uniform(2.3, max(2.4, top - height))
            if bottom is not None:
                base = bottom
        candidate = Placement(spec, at, float(dist), float(base), width, height, room.camera_height, role)
        if angular_size is not None and not angular_size[0] <= candidate.angular_size <= angular_size[1]:
            continue
        if candidate.pitch_range[1] > 75.0 or (room.indoor and base + height > room.height - 0.05):
            continue
        if accept is not None and not accept(candidate):
            continue
        if planner.fits(candidate.yaw, candidate.half_yaw, candidate.pitch_range, margin):
            planner.add_placement(candidate)
            layout.placements.append(candidate)
            return candidate
    return None

