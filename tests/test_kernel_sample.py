"""sample_equirect: Triton (CPU interpreter) and PyTorch paths against the CPU renderer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from panoseek.envs import geometry
from panoseek.envs.render import render_view
from panoseek.envs.render_torch import render_views_torch

from conftest import smooth_panorama

SIZE = (37, 21)  # odd view size: the last pixel block of every view is partial
# Poses through the seam, both poles, and far outside [0, 360) (yaw wraps, pitch clamps).
YAWS = [0.0, 359.7, 90.2, 180.0, -450.0, 725.0]
PITCHES = [0.0, 12.0, -89.9, 90.0, 45.0, -120.0]
PANO_INDEX = [0, 1, 0, 1, 0, 1]


@pytest.fixture(scope="module")
def panoramas() -> np.ndarray:
    return np.stack([smooth_panorama(128, seed=1), smooth_panorama(128, seed=2)])


def cpu_renderer(panoramas: np.ndarray) -> np.ndarray:
    return np.stack(
        [render_view(panoramas[i], y, p, fov_deg=100.0, size=SIZE) for y, p, i in zip(YAWS, PITCHES, PANO_INDEX)]
    )


def exact_bilinear(panorama: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """Float64 bilinear sampling at the renderer's coordinates (geometry module), no rounding."""
    height, width = panorama.shape[:2]
    lon, lat = geometry.view_lonlat(geometry.wrap_yaw(yaw), geometry.clamp_pitch(pitch), 100.0, *SIZE)
    u, v = geometry.lonlat_to_pixel(lon, lat, width, height)
    u, v = np.mod(u, width), np.clip(v, 0, height - 1)
    x0, y0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fx, fy = (u - x0)[..., None], (v - y0)[..., None]
    x1, y1 = (x0 + 1) % width, np.minimum(y0 + 1, height - 1)
    image = panorama.astype(np.float64)
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_views_equal_the_cpu_renderer_within_rounding(panoramas, backend):
    views = render_views_torch(
        torch.from_numpy(panoramas), YAWS, PITCHES, fov_deg=100.0, size=SIZE, pano_index=PANO_INDEX, backend=backend
    )
    assert views.dtype == torch.uint8 and views.shape == (6, 21, 37, 3)
    # Our views are the exact bilinear values at the geometry module's coordinates, rounded.
    exact = np.stack([exact_bilinear(panoramas[i], y, p) for y, p, i in zip(YAWS, PITCHES, PANO_INDEX)])
    assert np.abs(views.numpy() - exact).max() <= 0.5 + 1e-3
    # The CPU renderer samples an interpolated map (within 0.1 px of exact): within rounding of it.
    diff = np.abs(views.numpy().astype(int) - cpu_renderer(panoramas).astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.25


def test_triton_and_torch_paths_agree_on_float_panoramas(panoramas):
    floats = torch.from_numpy(panoramas).float() / 255.0
    args = dict(fov_deg=80.0, size=SIZE, pano_index=PANO_INDEX)
    triton_views = render_views_torch(floats, YAWS, PITCHES, backend="triton", **args)
    torch_views = render_views_torch(floats, YAWS, PITCHES, backend="torch", **args)
    assert triton_views.dtype == torch.float32
    torch.testing.assert_close(triton_views, torch_views, atol=2e-4, rtol=0)


def test_seam_wraps_instead_of_clamping():
    # Left half dark, right half bright: the view centred on the seam (yaw 180) sees both
    # edges of the image side by side, bright on the left and dark on the right.
    pano = np.zeros((32, 64, 3), dtype=np.uint8)
    pano[:, 32:] = 200
    view = render_views_torch(torch.from_numpy(pano), 180.0, 0.0, fov_deg=60.0, size=(16, 8), backend="triton")[0]
    assert (view[:, :7] == 200).all() and (view[:, 9:] == 0).all()


def test_one_panorama_serves_many_views_and_default_pairing(panoramas):
    one = torch.from_numpy(panoramas[0])
    shared = render_views_torch(one, [10.0, 200.0], 5.0, size=SIZE, backend="torch")
    assert shared.shape == (2, 21, 37, 3)
    paired = render_views_torch(torch.from_numpy(panoramas), [10.0, 200.0], [5.0, 5.0], size=SIZE, backend="torch")
    torch.testing.assert_close(paired[0], shared[0])
    assert not torch.equal(paired[1], shared[1])


def test_kernel_takes_rotations_and_focal_length_and_names_bad_ones():
    from panoseek.kernels import sample_equirect

    pano = torch.zeros(8, 16, 3, dtype=torch.uint8)
    rotations = torch.eye(3)[None]
    assert sample_equirect(pano, rotations, 2.0, size=(4, 4)).shape == (1, 4, 4, 3)
    for args, message in [
        ((np.zeros((8, 16, 3), np.uint8), rotations, 2.0), "must be a torch tensor"),
        ((pano, torch.eye(4)[None], 2.0), r"rotations must be \[views, 3, 3\]"),
        ((pano, torch.full((1, 3, 3), float("nan")), 2.0), "rotations must be finite"),
        ((pano, rotations, 0.0), "focal_px"),
    ]:
        with pytest.raises(ValueError, match=message):
            sample_equirect(*args, size=(4, 4))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(panoramas=torch.zeros(8, 8, 3, dtype=torch.uint8)), r"\[P, H, 2H, C\]"),
        (dict(panoramas=torch.zeros(8, 16, 3, dtype=torch.int32)), "uint8 or floating"),
        (dict(yaw=[0.0, float("nan")], pitch=0.0), "yaw must be finite"),
        (dict(yaw=[0.0, 1.0, 2.0], pitch=[0.0, 1.0]), "one value per view"),
        (dict(fov_deg=180.0), "fov_deg"),
        (dict(size=(0, 4)), "size must be"),
        (dict(panoramas=torch.zeros(3, 8, 16, 3, dtype=torch.uint8), yaw=[0.0, 1.0]), "pass pano_index"),
        (dict(pano_index=[2]), "pano_index value 2 is out of range"),
        (dict(pano_index=[0, 0]), "pano_index has 2 entries for 1 views"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    args = dict(panoramas=torch.zeros(8, 16, 3, dtype=torch.uint8), yaw=0.0, pitch=0.0, fov_deg=90.0, size=(4, 4))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        render_views_torch(args.pop("panoramas"), args.pop("yaw"), args.pop("pitch"), **args)
