"""Compiled exact sampling positions for ``render_view``: where each view pixel looks.

A view pixel at camera coordinates (a, b) (``geometry.view_pixel_lonlat``: a to the
right, b up, in focal lengths) looks along the world ray ``R @ (a, b, 1)`` for the head
pose's rotation ``R``; its panorama position is that ray's (lon, lat) as an
equirectangular (u, v) (``geometry.lonlat_to_pixel``). These kernels evaluate exactly
that, per pixel, compiled with Numba: the same formulas as ``geometry`` (the tests hold
them to it) written so that LLVM vectorises the loops (float32, no branches, atan2 as a
polynomial). That makes an exact position cost about 2 ns, cheap enough for the grid
nodes of the interpolated map and for every pixel where interpolation is not accurate
enough (near a pole, across the 0/360 seam).

Why our own code: numpy's arctan2/arctan over float arrays cost 10-25 ns per element
here and allocate a temporary per operation; OpenCV has no accurate vectorised atan2
(``cv2.phase`` is accurate to about 0.3 degrees).

Kernels are single-threaded and release the GIL; ``cache=True`` keeps the compiled code
on disk (next to this file, or Numba's per-user cache folder when that is read-only).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# atan(t) ~ t * P(t^2) on [0, 1]: 7 odd terms, least squares on Chebyshev nodes refined
# towards minimax (Lawson); largest error 2.5e-7 rad = 1.6e-4 px of a 4096-wide panorama.
_C0 = np.float32(0.9999961256980896)
_C1 = np.float32(-0.3331736922264099)
_C2 = np.float32(0.19807815551757812)
_C3 = np.float32(-0.1323334276676178)
_C4 = np.float32(0.07962366938591003)
_C5 = np.float32(-0.0336042195558548)
_C6 = np.float32(0.006811792496591806)
_HALF_PI = np.float32(math.pi / 2)
_PI = np.float32(math.pi)
_ZERO = np.float32(0.0)
_TINY = np.float32(1e-30)

_INLINE = {"inline": "always", "nogil": True, "fastmath": True, "error_model": "numpy"}
_JIT = {"nogil": True, "fastmath": True, "error_model": "numpy", "cache": True}


@njit(**_INLINE)
def atan2(y: np.float32, x: np.float32) -> np.float32:
    """atan2(y, x) in radians, float32, branch-free (within 1e-6 rad, float32 rounding included)."""
    ax, ay = abs(x), abs(y)
    t = min(ax, ay) / max(max(ax, ay), _TINY)
    s = t * t
    p = t * (_C0 + s * (_C1 + s * (_C2 + s * (_C3 + s * (_C4 + s * (_C5 + s * _C6))))))
    p = _HALF_PI - p if ay > ax else p
    p = _PI - p if x < _ZERO else p
    return -p if y < _ZERO else p


@njit(**_INLINE)
def _pixel_scales(pano_w, pano_h):
    """Constants of ``geometry.lonlat_to_pixel`` in float32: (u per rad, u at lon 0, W, v per rad, v at lat 0, H - 1)."""
    return (
        np.float32(pano_w / (2.0 * math.pi)), np.float32(pano_w / 2.0 - 0.5), np.float32(pano_w),
        np.float32(pano_h / math.pi), np.float32(pano_h / 2.0 - 0.5), np.float32(pano_h - 1),
    )


@njit(**_INLINE)
def _position(a, b, rot, scales):
    """(u, v) seen at camera coordinates (a, b): u wrapped into [-0.5, W - 0.5], v clamped to [0, H - 1]."""
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = rot
    u_scale, u_offset, width, v_scale, v_offset, v_max = scales
    x = r00 * a + r01 * b + r02
    y = r10 * a + r11 * b + r12
    z = r20 * a + r21 * b + r22
    u = atan2(x, z) * u_scale + u_offset  # lon in (-pi, pi] -> u in (-0.5, W - 0.5]
    v = v_offset - atan2(y, math.sqrt(x * x + z * z)) * v_scale
    return (u - width if u > width - np.float32(0.5) else u), min(max(v, _ZERO), v_max)


@njit(**_JIT)
def exact_grid(u, v, a, b, rot, pano_w, pano_h):
    """Fill ``u[i, j], v[i, j]`` (float32) with the exact position seen at ``(a[j], b[i])``."""
    scales = _pixel_scales(pano_w, pano_h)
    for i in range(b.shape[0]):
        for j in range(a.shape[0]):
            u[i, j], v[i, j] = _position(a[j], b[i], rot, scales)


@njit(**_JIT)
def _cells_to_fix(u_nodes, v_nodes, pole_rows, pano_w, pano_h):
    """(rows, cols) bool: cells whose corner columns straddle the 0/360 seam (spread over half
    the panorama) or with a corner within ``pole_rows`` panorama rows of a pole."""
    half_width, near, v_max = np.float32(pano_w / 2.0), np.float32(pole_rows - 0.5), np.float32(pano_h - 1)
    rows, cols = u_nodes.shape[0] - 1, u_nodes.shape[1] - 1
    flagged = np.empty((rows, cols), np.bool_)
    for r in range(rows):
        u_top, u_bottom, v_top, v_bottom = u_nodes[r], u_nodes[r + 1], v_nodes[r], v_nodes[r + 1]
        for c in range(cols):
            u_high = max(max(u_top[c], u_top[c + 1]), max(u_bottom[c], u_bottom[c + 1]))
            u_low = min(min(u_top[c], u_top[c + 1]), min(u_bottom[c], u_bottom[c + 1]))
            v_high = max(max(v_top[c], v_top[c + 1]), max(v_bottom[c], v_bottom[c + 1]))
            v_low = min(min(v_top[c], v_top[c + 1]), min(v_bottom[c], v_bottom[c + 1]))
            flagged[r, c] = (u_high - u_low > half_width) | (v_low < near) | (v_max - v_high < near)
    return flagged


@njit(**_JIT)
def fix_cells(u, v, u_nodes, v_nodes, a, b, cell_x, cell_y, origin, pole_rows, rot, pano_w, pano_h):
    """Overwrite the pixels of an interpolated map where interpolation is not accurate enough.

    ``u, v`` were interpolated bilinearly from ``u_nodes, v_nodes``; cell (r, c) lies
    between nodes (r, c) and (r + 1, c + 1) and holds view pixels
    ``cell_y[r] <= y < cell_y[r + 1]``, ``cell_x[c] <= x < cell_x[c + 1]``; view pixel
    (x, y) is ``u[origin + y, origin + x]``. Cells that straddle the seam or lie near a
    pole (``_cells_to_fix``) are recomputed exactly; runs of them in a row are filled as
    one span, so the inner loop is long.
    """
    scales = _pixel_scales(pano_w, pano_h)
    flagged = _cells_to_fix(u_nodes, v_nodes, pole_rows, pano_w, pano_h)
    rows, cols = flagged.shape
    for r in range(rows):
        c = 0
        while c < cols:
            if not flagged[r, c]:
                c += 1
                continue
            first = c
            while c < cols and flagged[r, c]:
                c += 1
            x0, x1 = cell_x[first], cell_x[c]
            span_a = a[x0:x1]
            for y in range(cell_y[r], cell_y[r + 1]):
                span_u = u[origin + y, origin + x0 : origin + x1]
                span_v = v[origin + y, origin + x0 : origin + x1]
                for k in range(span_a.shape[0]):  # a plain loop over slices vectorises
                    span_u[k], span_v[k] = _position(span_a[k], b[y], rot, scales)
