"""Many perspective views of equirectangular panoramas in one call (the GPU renderer).

A vectorised environment renders hundreds of head poses per step. On the CPU,
``panoseek.envs.render.render_view`` draws one view at a time with OpenCV;
:func:`sample_equirect` draws a whole batch, from one panorama or from many, with the
same camera and sampling rules: pinhole camera (rays through pixel centres, at +0.5),
bilinear interpolation, columns wrapping through the 0/360 seam, rows clamped at the
poles. The kernels package imports nothing of the project, so the caller passes the
head poses as rotation matrices and the camera as its focal length in pixels
(:func:`panoseek.envs.render_torch.render_views_torch` does that from yaw, pitch and
field of view with the engine's geometry).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from panoseek.kernels.dispatch import choose_backend


def sample_equirect(
    panoramas: torch.Tensor,
    rotations: torch.Tensor | np.ndarray,
    focal_px: float,
    *,
    size: tuple[int, int] = (448, 252),
    pano_index: Sequence[int] | torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Render ``[views, height, width, channels]`` from ``panoramas`` ``[P, H, W, C]`` (or ``[H, W, C]``).

    ``rotations`` ``[views, 3, 3]`` turns camera rays (x right, y up, z forward) into
    world directions, one matrix per view. ``focal_px`` is the pinhole focal length in
    pixels. ``pano_index[i]`` names the panorama of view ``i``; by default every view
    uses panorama 0 when ``P == 1`` and view ``i`` uses panorama ``i`` when ``P``
    equals the number of views. ``size`` is (width, height). uint8 panoramas give
    rounded uint8 views; float panoramas give float views.
    """
    panoramas, view_pano, rotations = _validate(panoramas, rotations, focal_px, size, pano_index)
    if choose_backend(backend, panoramas) == "triton":
        from panoseek.kernels.equirect_sampling_triton import sample_views_triton

        return sample_views_triton(panoramas.contiguous(), view_pano, rotations, float(focal_px), size)
    return sample_equirect_reference(panoramas, view_pano, rotations, float(focal_px), size)


def _camera_rays(focal_px: float, width: int, height: int, device: torch.device) -> torch.Tensor:
    """Unnormalised rays through the pixel centres, ``[height, width, 3]`` (x right, y up, z = 1)."""
    xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5 - width / 2.0) / focal_px
    ys = -(torch.arange(height, dtype=torch.float32, device=device) + 0.5 - height / 2.0) / focal_px
    return torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None], torch.ones((), device=device)), dim=-1)


def sample_equirect_reference(
    panoramas: torch.Tensor, view_pano: torch.Tensor, rotations: torch.Tensor, focal_px: float, size: tuple[int, int]
) -> torch.Tensor:
    """PyTorch path: per-pixel coordinates on the device, then one ``grid_sample`` per panorama.

    The seam is handled by padding each panorama with one wrapped column on each side;
    views of the same panorama are stacked along the sampling grid's height.
    """
    width, height = size
    n_views = view_pano.numel()
    pano_h, pano_w, channels = panoramas.shape[1:]
    device = panoramas.device
    rays = _camera_rays(focal_px, width, height, device)
    world = torch.einsum("hwj,vij->vhwi", rays, rotations.view(n_views, 3, 3))
    # Direction -> longitude/latitude -> pixel, the equirectangular convention of DESIGN.md.
    lon = torch.atan2(world[..., 0], world[..., 2])
    lat = torch.atan2(world[..., 1], torch.hypot(world[..., 0], world[..., 2]))
    u = torch.remainder((lon / (2 * math.pi) + 0.5) * pano_w - 0.5, pano_w)
    v = ((0.5 - lat / math.pi) * pano_h - 0.5).clamp(0.0, pano_h - 1.0)
    # align_corners=True: -1 and 1 are the centres of the first and last padded columns/rows.
    grid = torch.stack([(u + 1.0) / (pano_w + 1) * 2 - 1, v / max(pano_h - 1, 1) * 2 - 1], dim=-1)

    out = torch.empty((n_views, height, width, channels), device=device, dtype=panoramas.dtype)
    for p in torch.unique(view_pano).tolist():
        views = torch.nonzero(view_pano == p).flatten()
        image = panoramas[p].permute(2, 0, 1).float()
        image = torch.cat([image[:, :, -1:], image, image[:, :, :1]], dim=2)[None]
        sampled = F.grid_sample(
            image, grid[views].reshape(1, -1, width, 2), mode="bilinear", padding_mode="border", align_corners=True
        )
        sampled = sampled[0].permute(1, 2, 0).reshape(len(views), height, width, channels)
        if panoramas.dtype == torch.uint8:
            sampled = torch.floor(sampled + 0.5).clamp(0, 255)
        out[views] = sampled.to(panoramas.dtype)
    return out


def _validate(panoramas, rotations, focal_px, size, pano_index) -> tuple:
    """Check the arguments; return (panoramas [P, H, W, C], view_pano int64, rotations [V, 9] float32)."""
    if not isinstance(panoramas, torch.Tensor):
        raise ValueError(f"panoramas must be a torch tensor [P, H, W, C] or [H, W, C], got {type(panoramas).__name__}")
    if panoramas.ndim == 3:
        panoramas = panoramas[None]
    if panoramas.ndim != 4 or panoramas.shape[1] < 2 or panoramas.shape[2] != 2 * panoramas.shape[1]:
        raise ValueError(f"panoramas must be [P, H, 2H, C] equirectangular images, got shape {tuple(panoramas.shape)}")
    if panoramas.dtype != torch.uint8 and not panoramas.is_floating_point():
        raise ValueError(f"panoramas must be uint8 or floating, got {panoramas.dtype}")
    rotations = torch.as_tensor(rotations, dtype=torch.float32)
    if rotations.ndim == 2:
        rotations = rotations[None]
    if rotations.ndim != 3 or tuple(rotations.shape[1:]) != (3, 3):
        raise ValueError(f"rotations must be [views, 3, 3], got shape {tuple(rotations.shape)}")
    if not torch.isfinite(rotations).all():
        raise ValueError("rotations must be finite")
    if isinstance(focal_px, bool) or not isinstance(focal_px, (int, float)) or not (math.isfinite(focal_px) and focal_px > 0):
        raise ValueError(f"focal_px must be a positive number of pixels, got {focal_px!r}")
    if not (len(size) == 2 and all(isinstance(s, (int, np.integer)) and s > 0 for s in size)):
        raise ValueError(f"size must be (width, height) with positive integers, got {size!r}")
    n_views, n_panos = rotations.shape[0], panoramas.shape[0]
    if pano_index is None:
        if n_panos not in (1, n_views):
            raise ValueError(f"{n_panos} panoramas for {n_views} views: pass pano_index to say which view uses which")
        view_pano = torch.zeros(n_views, dtype=torch.int64) if n_panos == 1 else torch.arange(n_views)
    else:
        view_pano = torch.as_tensor(pano_index, dtype=torch.int64).reshape(-1).cpu()
        if view_pano.numel() != n_views:
            raise ValueError(f"pano_index has {view_pano.numel()} entries for {n_views} views")
        bad = view_pano[(view_pano < 0) | (view_pano >= n_panos)]
        if bad.numel():
            raise ValueError(f"pano_index value {int(bad[0])} is out of range for {n_panos} panoramas")
    return panoramas, view_pano.to(panoramas.device), rotations.reshape(-1, 9).to(panoramas.device)
