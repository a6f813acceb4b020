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

from panoseek.envs import geometry
from panoseek.kernels.equirect_sampling import sample_equirect


def render_views_torch(
    panoramas: torch.Tensor | np.ndarray,
    yaw: float | Sequence[float] | torch.Tensor,
    pitch: float | Sequence[float] | torch.Tensor,
    *,
    fov_deg: float = 100.0,
    size: tuple[int, int] = (448, 252),
    pano_index: Sequence[int] | torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Render ``(B, height, width, C)`` views on the panoramas' device.

    ``panoramas`` is one ``(H, 2H, C)`` panorama (every view looks into it) or a batch
    ``(P, H, 2H, C)``, uint8 (rounded uint8 views) or float; numpy arrays are accepted.
    ``yaw``/``pitch`` are degrees, one per view (scalars broadcast): yaw wraps, pitch is
    clamped to [-90, 90]. ``pano_index[i]`` names the panorama of view ``i`` (default:
    panorama 0 for one panorama, panorama ``i`` for one per view). ``backend`` is the
    kernel dispatcher's (``auto``, ``triton``, ``torch``).
    """
    if isinstance(panoramas, np.ndarray):
        panoramas = torch.from_numpy(np.ascontiguousarray(panoramas))
    yaw = np.atleast_1d(np.asarray(torch.as_tensor(yaw, dtype=torch.float64).cpu(), dtype=np.float64))
    pitch = np.atleast_1d(np.asarray(torch.as_tensor(pitch, dtype=torch.float64).cpu(), dtype=np.float64))
    if yaw.ndim != 1 or pitch.ndim != 1:
        raise ValueError(f"yaw and pitch must be scalars or 1-D, got shapes {yaw.shape} and {pitch.shape}")
    try:
        yaw, pitch = np.broadcast_arrays(yaw, pitch)
    except ValueError:
        raise ValueError(f"yaw ({yaw.size}) and pitch ({pitch.size}) must have one value per view") from None
    for name, values in (("yaw", yaw), ("pitch", pitch)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} must be finite, got {values[~np.isfinite(values)][0]!r}")
    if not (isinstance(fov_deg, (int, float)) and 0.0 < fov_deg < 180.0):
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg!r}")
    if not (len(size) == 2 and all(isinstance(s, (int, np.integer)) and s > 0 for s in size)):
        raise ValueError(f"size must be (width, height) with positive integers, got {size!r}")
    rotations = geometry.rotation_matrices(geometry.wrap_yaw(yaw), geometry.clamp_pitch(pitch)).reshape(-1, 3, 3)
    focal = geometry.focal_length_px(float(fov_deg), int(size[0]))
    return sample_equirect(panoramas, rotations, focal, size=size, pano_index=pano_index, backend=backend)
