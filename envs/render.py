"""Perspective views of an equirectangular panorama (the agent's eye), fast at any angle.

``render_view`` samples the panorama bilinearly through a pinhole camera at a head
pose (yaw, pitch) with ``cv2.remap``. The expensive part of a naive renderer is the
sampling map (an atan2/asin per view pixel); here it is built in three cheap steps:

1. **Sparse exact grid.** The panorama position (u, v) each view pixel samples is
   computed exactly (``map_kernels``: compiled, about 2 ns a point) only at grid nodes
   every ``step`` pixels. The step is chosen per (fov, view size, panorama width) so
   that bilinear interpolation of the nodes is within ``MAP_TOLERANCE_PX`` of the exact
   map wherever the map is smooth; when a pole is near the view a finer step is used,
   because the region where the map is not smooth shrinks as step^2 (``_pole_step``).
2. **Upsampling.** ``cv2.resize`` interpolates the node grid bilinearly to every pixel
   (vectorised and multi-threaded in OpenCV).
3. **Exact pixels where it is not smooth.** Cells whose corners straddle the 0/360 seam
   (or the longitude jump behind a pole), and cells close enough to a pole that the map
   bends too fast, are recomputed exactly pixel by pixel (``map_kernels.fix_cells``).

Sampling is ``cv2.remap`` with the float maps (OpenCV computes bilinear weights from the
float positions; converting to its 1/32-pixel fixed-point maps first would be both
slower and coarser) and ``BORDER_WRAP``, so it is seamless across the 0/360 seam. On a
``PreparedPanorama`` (RGB plus an unused byte) OpenCV's 4-channel path is faster still.

Map errors are measured as the angle between the exact and the used sampling
directions, in panorama pixels at the equator (``360 / W`` degrees); near a pole a
column offset is a much smaller angle than at the equator, which this metric respects.
``exact_maps`` and ``fast_maps`` expose both maps so tests can check the bound.

Memory: ``render_view`` reuses per-thread buffers for the maps (about 8 bytes per view
pixel, 17 MB at 1920x1080) and for the 4-channel view, because freshly allocated large
arrays can cost page faults at every call; for the same reason it hands out the memory of
its earlier views again once nothing references them (``_recycled_view``).

Threads: ``cv2.remap`` and ``cv2.resize`` use OpenCV's thread pool (all cores by
default). Processes that render in parallel (vectorised environments) should call
``cv2.setNumThreads(1)`` in each worker; this module does not change the global setting.
The compiled map kernels are single-threaded and release the GIL.
"""

from __future__ import annotations

import math
import sys
import threading
from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np

from panoseek.envs import geometry, map_kernels

#: Largest allowed sampling-direction error of the interpolated map (panorama pixels).
MAP_TOLERANCE_PX = 0.09
#: Fitted constant of the interpolation error away from the poles:
#: error ~ _SMOOTH_ERROR * pano_width * (step / focal)^2 (measured over all pitches).
_SMOOTH_ERROR = 0.03
#: Largest node spacing (pixels); beyond it the grid saves nothing measurable.
_MAX_STEP = 32


def _check_panorama(panorama: np.ndarray) -> None:
    """Refuse anything but an (H, 2H, 3) uint8 array, naming what was given."""
    is_rgb = isinstance(panorama, np.ndarray) and panorama.ndim == 3 and panorama.shape[2] == 3
    if not is_rgb or panorama.dtype != np.uint8:
        shape = getattr(panorama, "shape", None)
        dtype = getattr(panorama, "dtype", type(panorama).__name__)
        raise ValueError(f"panorama must be an (H, 2H, 3) uint8 array, got shape {shape} dtype {dtype}")
    height, width = panorama.shape[:2]
    if height < 2 or width != 2 * height:
        raise ValueError(f"panorama must be twice as wide as high, got {width}x{height}")


def _check_args(yaw: float, pitch: float, fov_deg: float, size: tuple[int, int]) -> tuple:
    """Validate the view arguments; return (yaw, pitch, fov, width, height) as plain numbers."""
    values = {"yaw": yaw, "pitch": pitch, "fov_deg": fov_deg}
    for name, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a finite number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        values[name] = number
    if not 0.0 < values["fov_deg"] < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg!r}")
    try:
        valid = len(size) == 2 and all(int(s) == s and s > 0 for s in size)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"size must be (width, height) with positive integers, got {size!r}")
    return values["yaw"], values["pitch"], values["fov_deg"], int(size[0]), int(size[1])


class PreparedPanorama:
    """A panorama kept in the layout ``render_view`` samples fastest: RGB plus an unused byte.

    OpenCV's bilinear ``remap`` has a faster vectorised path for 4-channel 8-bit images than
    for 3-channel ones (same pixels out; 1280x720 views of a 4096x2048 panorama: about 1 ms
    less per view, conversion back to RGB included, ``benchmarks/render.py``), so whoever
    renders many views of one panorama (the environment, per episode) converts it once and
    passes this object instead.
    """

    __slots__ = ("rgbx",)

    def __init__(self, panorama: np.ndarray) -> None:
        _check_panorama(panorama)
        #: (H, 2H, 4) uint8, read-only: the RGB pixels (a copy) and a fourth channel never read back.
        self.rgbx = cv2.cvtColor(panorama, cv2.COLOR_RGB2RGBA)
        self.rgbx.setflags(write=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, 3), the shape of the RGB panorama it holds."""
        return (*self.rgbx.shape[:2], 3)

    @property
    def rgb(self) -> np.ndarray:
        """A contiguous RGB copy of the panorama."""
        return cv2.cvtColor(self.rgbx, cv2.COLOR_RGBA2RGB)


def exact_maps(yaw: float, pitch: float, fov_deg: float, size: tuple[int, int], pano_shape: tuple) -> np.ndarray:
    """Exact (H, W, 2) float64 (u, v) panorama coordinates of every view pixel (the reference).

    Columns are wrapped into [-0.5, W - 0.5), rows clamped to [0, H - 1] (the last half row
    at each pole, as py360convert does); ``BORDER_WRAP`` handles columns in [-0.5, 0).
    """
    width, height = size
    pano_h, pano_w = pano_shape[:2]
    lon, lat = geometry.view_lonlat(geometry.wrap_yaw(yaw), geometry.clamp_pitch(pitch), fov_deg, width, height)
    u, v = geometry.lonlat_to_pixel(lon, lat, pano_w, pano_h)
    u -= pano_w * np.floor((u + 0.5) / pano_w)
    return np.dstack([u, np.clip(v, 0.0, pano_h - 1.0)])


def initial_step(fov_deg: float, width: int, pano_width: int) -> int:
    """Node spacing away from the poles: the largest whose interpolation error stays within
    ``MAP_TOLERANCE_PX`` where the map is smooth."""
    focal = geometry.focal_length_px(fov_deg, width)
    return max(1, min(_MAX_STEP, int(focal * math.sqrt(MAP_TOLERANCE_PX / (_SMOOTH_ERROR * pano_width)))))


def _pole_margin(step: int, focal: float, pano_w: int) -> float:
    """Cells with a corner nearer a pole than this (radians) are recomputed exactly.

    Around a pole the longitude turns through 360 degrees, so with nodes every ``step``
    pixels the interpolated direction errs by about ``W step^2 / (16 pi f^2 d)`` pixels at
    angle ``d`` from the pole (fitted on measured maps); the cell diagonal is added
    because the corners may be farther from the pole than the cell's pixels.
    """
    return pano_w * step**2 / (16.0 * math.pi * focal**2 * MAP_TOLERANCE_PX) + math.sqrt(2.0) * step / focal


def _pole_step(fov_deg: float, width: int, height: int, pano_w: int) -> int:
    """Node spacing when a pole is near the view: the one with the least exact points.

    Exact points are the nodes (``W H / step^2``) plus the pixels of the disc around the
    pole that is recomputed (radius ``_pole_margin``, growing as step^2): both cost about
    the same per point, so the best step balances the two.
    """
    focal = geometry.focal_length_px(fov_deg, width)

    def points(step: int) -> float:
        return width * height / step**2 + math.pi * (_pole_margin(step, focal, pano_w) * focal) ** 2

    return min(range(1, initial_step(fov_deg, width, pano_w) + 1), key=points)


class _Grid(NamedTuple):
    """Nodes every ``step`` pixels: their camera coordinates and the cells between them.

    Node j sits at pixel ``(j - 0.5) * step - 0.5``: ``cv2.resize`` by ``step`` puts it at
    ``(j + 0.5) * step - 0.5`` of the enlarged image, i.e. at the right pixel once ``step``
    pixels are cropped; the extra ring of nodes keeps border pixels interpolated. Cell c
    (between nodes c and c + 1) holds pixels ``cell_x[c] <= x < cell_x[c + 1]``.
    """

    step: int
    node_a: np.ndarray
    node_b: np.ndarray
    cell_x: np.ndarray
    cell_y: np.ndarray
    pole_rows: float  # cells with a corner this close to a pole (panorama rows) are recomputed


class _Plan(NamedTuple):
    """Everything about a map that does not depend on the head pose (cached per camera and panorama size)."""

    pixel_a: np.ndarray  # camera coordinates of the pixel columns and rows
    pixel_b: np.ndarray
    far: _Grid  # ``initial_step``: while no pole is near the view
    near: _Grid  # ``_pole_step``
    far_pitch: float  # below this |pitch| the pole disc of ``far`` cannot reach the view


@lru_cache(maxsize=16)
def _plan(fov_deg: float, width: int, height: int, pano_w: int, pano_h: int) -> _Plan:
    """The ``_Plan`` of a camera (fov, view size) on a panorama size."""
    focal = geometry.focal_length_px(fov_deg, width)

    def a(x: np.ndarray) -> np.ndarray:  # camera coordinates as in geometry.view_pixel_lonlat
        return ((x + (0.5 - width / 2.0)) / focal).astype(np.float32)

    def b(y: np.ndarray) -> np.ndarray:
        return (((height / 2.0 - 0.5) - y) / focal).astype(np.float32)

    def grid(step: int) -> _Grid:
        node_x = (np.arange(-(-width // step) + 2) - 0.5) * step - 0.5
        node_y = (np.arange(-(-height // step) + 2) - 0.5) * step - 0.5
        cell_x = np.clip(np.ceil(node_x), 0, width).astype(np.int64)
        cell_y = np.clip(np.ceil(node_y), 0, height).astype(np.int64)
        pole_rows = math.degrees(_pole_margin(step, focal, pano_w)) * pano_h / 180.0
        return _Grid(step, a(node_x), b(node_y), cell_x, cell_y, pole_rows)

    far = grid(initial_step(fov_deg, width, pano_w))
    # The view's pixel nearest a pole is the middle of its top (or bottom) edge.
    half_vertical = math.degrees(math.atan(height / (2.0 * focal)))
    far_pitch = 90.0 - half_vertical - math.degrees(_pole_margin(far.step, focal, pano_w))
    near = grid(_pole_step(fov_deg, width, height, pano_w))
    return _Plan(a(np.arange(width)), b(np.arange(height)), far, near, far_pitch)


def fast_maps(yaw: float, pitch: float, fov_deg: float, size: tuple[int, int], pano_shape: tuple) -> np.ndarray:
    """The (H, W, 2) float32 (u, v) map that ``render_view`` samples with (see module doc)."""
    return np.dstack(_maps(geometry.wrap_yaw(yaw), geometry.clamp_pitch(pitch), fov_deg, size, pano_shape, {}))


def _maps(yaw: float, pitch: float, fov_deg: float, size: tuple, pano_shape: tuple, scratch: dict) -> tuple:
    """(u, v): two (H, W) float32 maps (views of ``scratch`` buffers), for a wrapped yaw and clamped pitch."""
    width, height = size
    pano_h, pano_w = pano_shape[:2]
    plan = _plan(fov_deg, width, height, pano_w, pano_h)
    grid = plan.far if abs(pitch) < plan.far_pitch else plan.near
    rotation = tuple(geometry.rotation_matrix(yaw, pitch).astype(np.float32).flat)
    if grid.step < 2:  # every pixel is a node: no interpolation
        u = _scratch_array(scratch, "u", (height, width), np.float32)
        v = _scratch_array(scratch, "v", (height, width), np.float32)
        map_kernels.exact_grid(u, v, plan.pixel_a, plan.pixel_b, rotation, pano_w, pano_h)
        return u, v
    step, nodes = grid.step, (grid.node_b.size, grid.node_a.size)
    u_nodes = _scratch_array(scratch, "u_nodes", nodes, np.float32)
    v_nodes = _scratch_array(scratch, "v_nodes", nodes, np.float32)
    map_kernels.exact_grid(u_nodes, v_nodes, grid.node_a, grid.node_b, rotation, pano_w, pano_h)
    enlarged = (nodes[0] * step, nodes[1] * step)
    u = _scratch_array(scratch, "u", enlarged, np.float32)
    v = _scratch_array(scratch, "v", enlarged, np.float32)
    cv2.resize(u_nodes, enlarged[::-1], dst=u, interpolation=cv2.INTER_LINEAR)
    cv2.resize(v_nodes, enlarged[::-1], dst=v, interpolation=cv2.INTER_LINEAR)
    map_kernels.fix_cells(
        u, v, u_nodes, v_nodes, plan.pixel_a, plan.pixel_b, grid.cell_x, grid.cell_y, step, grid.pole_rows,
        rotation, pano_w, pano_h,
    )
    return u[step : step + height, step : step + width], v[step : step + height, step : step + width]


_THREAD_SCRATCH = threading.local()


def _scratch_array(scratch: dict, name: str, shape: tuple, dtype: type) -> np.ndarray:
    """A reusable contiguous array (the front of a buffer kept per name, grown when needed).

    Large arrays freshly allocated at every call can cost more than the map itself:
    depending on the allocator's state, each one comes back from the kernel as new pages
    to fault in and zero (measured: 1920x1080 views twice as slow). ``render_view`` keeps
    its intermediate maps per thread instead.
    """
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    buffer = scratch.get(name)
    if buffer is None or buffer.size < nbytes:
        buffer = scratch[name] = np.empty(nbytes, np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


#: Views ``render_view`` keeps per thread to hand out again once their callers drop them.
_RECYCLED_VIEWS = 4


def _recycled_view(scratch: dict, shape: tuple) -> np.ndarray:
    """A uint8 array for a new view: an earlier view that nobody references any more, else a new one.

    A freshly allocated view of this size usually comes back from the kernel as new pages
    to fault in and zero at every call (measured: about 1 ms of a 1280x720 view on this
    kind of machine). ``render_view`` therefore keeps its last few results and hands one
    out again when the reference count shows that only this pool holds it: a caller that
    keeps a view, a slice of it or a tensor made from it keeps it out of the pool.
    """
    pool = scratch.setdefault("views", [])
    for i in range(len(pool)):
        if pool[i].shape == shape and sys.getrefcount(pool[i]) == 2:  # the pool's and the call's
            return pool[i]
    view = np.empty(shape, np.uint8)
    pool.append(view)
    if len(pool) > _RECYCLED_VIEWS:
        pool.pop(0)
    return view


def render_view(
    panorama: np.ndarray | PreparedPanorama,
    yaw: float,
    pitch: float,
    *,
    fov_deg: float = 100.0,
    size: tuple[int, int] = (448, 252),
) -> np.ndarray:
    """Render the ``(height, width, 3)`` uint8 view seen at (yaw, pitch) degrees.

    ``panorama`` is an (H, 2H, 3) uint8 RGB array, or a ``PreparedPanorama`` of one
    (faster when many views are rendered from it; the pixels are the same). ``size``
    is (width, height); ``fov_deg`` is the horizontal field of view. Any finite angles
    are accepted (yaw wraps, pitch clamps to [-90, 90]); no crosshair.
    """
    if not isinstance(panorama, PreparedPanorama):
        _check_panorama(panorama)
    yaw, pitch, fov_deg, width, height = _check_args(yaw, pitch, fov_deg, size)
    scratch = _THREAD_SCRATCH.__dict__
    yaw, pitch = geometry.wrap_yaw(yaw), geometry.clamp_pitch(pitch)
    u, v = _maps(yaw, pitch, fov_deg, (width, height), panorama.shape, scratch)
    out = _recycled_view(scratch, (height, width, 3))
    if not isinstance(panorama, PreparedPanorama):
        return cv2.remap(panorama, u, v, cv2.INTER_LINEAR, dst=out, borderMode=cv2.BORDER_WRAP)
    view = _scratch_array(scratch, "view_rgbx", (height, width, 4), np.uint8)
    cv2.remap(panorama.rgbx, u, v, cv2.INTER_LINEAR, dst=view, borderMode=cv2.BORDER_WRAP)
    return cv2.cvtColor(view, cv2.COLOR_RGBA2RGB, dst=out)
