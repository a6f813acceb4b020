"""Many views at once with PyTorch: the batched counterpart of ``render_view``.

A vectorised environment or a batch of agents needs hundreds of views per step. This
is the engine's entry point for that: same camera, conventions and sampling rules as
:func:`panoseek.envs.render.render_view` (bilinear, seamless at 0/360, rows clamped
at the poles), on the CPU or a GPU. The sampling itself lives in
:mod:`panoseek.kernels.equirect_sampling` (a ``grid_sample`` PyTorch path, and a Triton
kernel chosen automatically on CUDA), so there is one batched sampler in the project.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from panoseek.kernels.equirect_sampling import sample_equirect


def render_views_torch(
    panoramas: torch.Tensor | np.ndarray,
    yaw: float | Sequence[float] | torch.Tensor,
    pitch: float | Sequence[float] | torch.Tensor,
    *,
    fov_deg: float = 100.0,
    size: tuple[int, int] = (448, 252),
) -> torch.Tensor:
    """Render ``(B, height, width, 3)`` uint8 views on the panoramas' device.

    ``panoramas`` is one ``(H, 2H, 3)`` uint8 panorama (every view looks into it) or a
    batch ``(B, H, 2H, 3)`` (view ``i`` looks into panorama ``i``); numpy arrays are
    accepted. ``yaw``/``pitch`` are degrees, one per view; scalars broadcast.
    """
    if isinstance(panoramas, np.ndarray):
        panoramas = torch.from_numpy(np.ascontiguousarray(panoramas))
    if not isinstance(panoramas, torch.Tensor) or panoramas.dtype != torch.uint8 or panoramas.ndim not in (3, 4):
        shape = tuple(getattr(panoramas, "shape", ()))
        dtype = getattr(panoramas, "dtype", type(panoramas).__name__)
        raise ValueError(f"panoramas must be uint8 (H, 2H, 3) or (B, H, 2H, 3), got shape {shape} dtype {dtype}")
    if panoramas.shape[-1] != 3:
        raise ValueError(f"panoramas must have 3 (RGB) channels, got shape {tuple(panoramas.shape)}")
    return sample_equirect(panoramas, yaw, pitch, fov_deg=fov_deg, size=size)
