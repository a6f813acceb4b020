"""render_view and render_views_torch: agreement with py360convert, conventions, seam, poles, errors."""

from __future__ import annotations

import cv2
import numpy as np
import py360convert
import pytest
import torch

from panoseek.envs import geometry
from panoseek.envs import map_kernels
from panoseek.envs.render import PreparedPanorama, exact_maps, fast_maps, initial_step, render_view
from panoseek.envs.render_torch import render_views_torch

from conftest import smooth_panorama

RNG = np.random.default_rng(7)
# The seam (yaw 180 is longitude +-180), both poles, and random float angles.
POSES = [(180.0, 0.0), (179.99, 12.5), (0.01, -30.0), (359.99, 5.0)]
POSES += [(33.3, 90.0), (250.0, -90.0), (181.0, 85.0), (2.0, -85.0)]
POSES += [(float(y), float(p)) for y, p in zip(RNG.uniform(0, 360, 8), RNG.uniform(-90, 90, 8))]


@pytest.fixture(scope="module")
def panorama() -> np.ndarray:
    return smooth_panorama(1024, seed=3)


def py360_view(panorama: np.ndarray, yaw: float, pitch: float, size: tuple[int, int], fov_deg: float = 100.0):
    """py360convert's view at our pose.

    Checked empirically: its ``u_deg`` is our yaw as a longitude in [-180, 180)
    (positive to the right), its ``v_deg`` our pitch (positive up), and with a
    (horizontal, vertical) ``fov_deg`` pair it uses the same pinhole camera.
    """
    width, height = size
    fov = (fov_deg, geometry.vertical_fov_deg(fov_deg, width, height))
    return py360convert.e2p(panorama, fov, geometry.yaw_to_lon(yaw), pitch, (height, width), mode="bilinear")


@pytest.mark.parametrize("yaw,pitch", POSES)
def test_agrees_with_py360convert(panorama, yaw, pitch):
    size = (320, 180)  # large enough for the fast path (nodes every few pixels)
    assert initial_step(100.0, size[0], panorama.shape[1]) >= 4
    ours = render_view(panorama, yaw, pitch, size=size).astype(np.float64)
    reference = py360_view(panorama, yaw, pitch, size).astype(np.float64)
    assert ours.shape == reference.shape == (180, 320, 3)
    assert np.abs(ours - reference).mean() <= 2.0


def test_py360convert_conventions_differ_when_flipped(panorama):
    """The agreement above is not vacuous: a flipped yaw or pitch sign disagrees badly."""
    ours = render_view(panorama, 40.0, 25.0, size=(160, 90)).astype(np.float64)
    width, height = 160, 90
    fov = (100.0, geometry.vertical_fov_deg(100.0, width, height))
    flipped_yaw = py360convert.e2p(panorama, fov, -40.0, 25.0, (height, width)).astype(np.float64)
    flipped_pitch = py360convert.e2p(panorama, fov, 40.0, -25.0, (height, width)).astype(np.float64)
    assert np.abs(ours - flipped_yaw).mean() > 10.0
    assert np.abs(ours - flipped_pitch).mean() > 10.0


def angular_error_px(maps: np.ndarray, exact: np.ndarray, pano_w: int, pano_h: int) -> np.ndarray:
    """Angle between the used and the exact sampling directions, in panorama pixels at the equator."""
    maps = maps.astype(np.float64)
    lon_a, lat_a = geometry.pixel_to_lonlat(maps[..., 0], maps[..., 1], pano_w, pano_h)
    lon_b, lat_b = geometry.pixel_to_lonlat(exact[..., 0], exact[..., 1], pano_w, pano_h)
    return geometry.great_circle_distance(lon_a, lat_a, lon_b, lat_b) / 360.0 * pano_w


@pytest.mark.slow
@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720), (448, 252)])
def test_fast_maps_within_a_tenth_of_a_pixel_of_exact(size):
    """The positions render_view samples are within 0.1 px of exact, poles and seam included.

    Measured on the 4096 x 2048 panorama of the speed goal (only its shape matters);
    cv2.remap samples at these float positions as they are.
    """
    pano_shape = (2048, 4096)
    assert initial_step(100.0, size[0], pano_shape[1]) >= 4
    rng = np.random.default_rng(size[0])
    poses = [(180.0, 0.0), (0.0, 90.0), (123.4, -90.0), (359.9, 62.0), (10.0, -48.0), (343.6, 27.7)]
    poses += [(float(rng.uniform(0, 360)), float(rng.uniform(-90, 90)))]
    for yaw, pitch in poses:
        maps = fast_maps(yaw, pitch, 100.0, size, pano_shape)
        exact = exact_maps(yaw, pitch, 100.0, size, pano_shape)
        assert maps.shape == (size[1], size[0], 2)
        assert (maps[..., 0] >= -0.5).all() and (maps[..., 0] <= pano_shape[1] - 0.5).all()
        assert (maps[..., 1] >= 0.0).all() and (maps[..., 1] <= pano_shape[0] - 1.0).all()
        error = angular_error_px(maps, exact, pano_shape[1], pano_shape[0])
        assert error.max() < 0.1, (yaw, pitch, error.max())
        assert np.abs(maps[..., 1] - exact[..., 1]).max() < 0.1  # rows: raw pixels


def blob_panorama(lon: float, lat: float, width: int = 1024) -> np.ndarray:
    """Grey panorama with a small bright disc (radius 1.5 degrees on the sphere) at (lon, lat)."""
    height = width // 2
    lons, lats = geometry.pixel_to_lonlat(*np.meshgrid(np.arange(width), np.arange(height)), width, height)
    distance = geometry.great_circle_distance(lons, lats, lon, lat)
    panorama = np.full((height, width, 3), 40, dtype=np.uint8)
    panorama[distance < 1.5] = 255
    return panorama


def blob_centre(view: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(view[..., 0] > 150)
    assert xs.size > 0, "the marked dot is not in the view"
    return float(xs.mean()), float(ys.mean())


@pytest.mark.parametrize("lon,lat", [(30.0, 10.0), (179.0, -20.0), (-100.0, 70.0)])
def test_marked_dot_follows_the_design_conventions(lon, lat):
    """A dot at (lon, lat) is centred when looked at; right when yaw is smaller, up when pitch is smaller."""
    panorama = blob_panorama(lon, lat)
    size = (320, 180)
    centre = ((size[0] - 1) / 2, (size[1] - 1) / 2)
    yaw = geometry.wrap_yaw(lon)
    x, y = blob_centre(render_view(panorama, yaw, lat, size=size))
    assert abs(x - centre[0]) < 1.0 and abs(y - centre[1]) < 1.0

    # (A yaw turn moves the dot less at high latitude: cos(70 deg) of 10 degrees is ~9 px here.)
    x, y = blob_centre(render_view(panorama, yaw - 10.0, lat, size=size))
    assert x > centre[0] + 5
    x, _ = blob_centre(render_view(panorama, yaw + 10.0, lat, size=size))
    assert x < centre[0] - 5
    _, y = blob_centre(render_view(panorama, yaw, lat - 10.0, size=size))
    assert y < centre[1] - 20
    _, y = blob_centre(render_view(panorama, yaw, lat + 10.0, size=size))
    assert y > centre[1] + 20

    # Where exactly: geometry.project_to_view predicts the dot's pixel.
    px, py, in_front = geometry.project_to_view(lon, lat, yaw - 12.0, lat + 7.0, 100.0, *size)
    x, y = blob_centre(render_view(panorama, yaw - 12.0, lat + 7.0, size=size))
    assert in_front and abs(x - px) < 1.0 and abs(y - py) < 1.0


def test_seam_is_invisible(panorama):
    """Looking across the seam equals looking at a panorama rolled by half a turn."""
    size = (320, 180)
    rolled = np.roll(panorama, panorama.shape[1] // 2, axis=1)
    for yaw, pitch in [(180.0, 0.0), (170.0, 40.0), (190.0, -89.0)]:
        across = render_view(panorama, yaw, pitch, size=size).astype(int)
        away = render_view(rolled, yaw - 180.0, pitch, size=size).astype(int)
        assert np.abs(across - away).max() <= 1, (yaw, pitch)
    near_left = render_view(panorama, 179.9, 0.0, size=size).astype(int)
    near_right = render_view(panorama, 180.1, 0.0, size=size).astype(int)
    assert np.abs(near_left - near_right).mean() < 1.0


def test_no_dark_pixels_anywhere():
    """No black border, column or hole at the seam or the poles: every view pixel samples the panorama."""
    panorama = (smooth_panorama(512, seed=5) // 2 + 100).astype(np.uint8)  # values in [100, 227]
    for yaw, pitch in [(180.0, 0.0), (0.0, 90.0), (180.0, -90.0), (359.999, 89.99), (91.0, -60.0)]:
        view = render_view(panorama, yaw, pitch, size=(256, 144))
        assert view.min() >= 100, (yaw, pitch)


def test_any_float_angle_wraps_and_clamps(panorama):
    size = (160, 90)
    base = render_view(panorama, 37.25, 20.0, size=size)
    assert np.array_equal(render_view(panorama, 37.25 + 720.0, 20.0, size=size), base)
    assert np.array_equal(render_view(panorama, 37.25 - 1080.0, 20.0, size=size), base)
    assert np.array_equal(render_view(panorama, 10.0, 135.0, size=size), render_view(panorama, 10.0, 90.0, size=size))
    assert np.array_equal(render_view(panorama, np.float32(37.25), 20, size=size), base)


def test_small_views_and_other_fields_of_view(panorama):
    # A 1 x 1 view sees exactly the direction it looks at.
    u, v = geometry.lonlat_to_pixel(12.0, -7.0, panorama.shape[1], panorama.shape[0])
    dot = cv2.getRectSubPix(panorama, (1, 1), (float(u), float(v)))
    assert np.abs(render_view(panorama, 12.0, -7.0, size=(1, 1)).astype(int) - dot.astype(int)).max() <= 1
    for size, fov in [((37, 21), 60.0), ((64, 64), 120.0), ((300, 100), 170.0)]:
        view = render_view(panorama, 12.0, -7.0, size=size, fov_deg=fov)
        assert view.shape == (size[1], size[0], 3) and view.dtype == np.uint8
        reference = py360_view(panorama, 12.0, -7.0, size, fov)
        assert np.abs(view.astype(int) - reference.astype(int)).mean() <= 2.0, (size, fov)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(yaw=float("nan")), "yaw must be a finite number, got nan"),
        (dict(pitch=float("inf")), "pitch must be a finite number, got inf"),
        (dict(yaw="left"), "yaw must be a finite number, got 'left'"),
        (dict(fov_deg=0.0), r"fov_deg must be in \(0, 180\), got 0.0"),
        (dict(fov_deg=180.0), r"fov_deg must be in \(0, 180\), got 180.0"),
        (dict(size=(0, 10)), r"size must be \(width, height\) with positive integers, got \(0, 10\)"),
        (dict(size=(10.5, 10)), r"size must be .* got \(10.5, 10\)"),
        (dict(size=(10, 10, 3)), r"size must be .* got \(10, 10, 3\)"),
        (dict(size="big"), r"size must be .* got 'big'"),
    ],
)
def test_bad_arguments_are_named(panorama, kwargs, match):
    args = dict(yaw=0.0, pitch=0.0, fov_deg=100.0, size=(32, 18)) | kwargs
    with pytest.raises(ValueError, match=match):
        render_view(panorama, args.pop("yaw"), args.pop("pitch"), **args)


@pytest.mark.parametrize(
    "image,match",
    [
        (np.zeros((64, 128, 3), dtype=np.float32), "dtype float32"),
        (np.zeros((64, 128), dtype=np.uint8), r"shape \(64, 128\)"),
        (np.zeros((64, 100, 3), dtype=np.uint8), "twice as wide as high, got 100x64"),
        ([[0, 0, 0]], "dtype list"),
    ],
)
def test_bad_panoramas_are_named(image, match):
    with pytest.raises(ValueError, match=match):
        render_view(image, 0.0, 0.0, size=(32, 18))


def test_batched_torch_renderer_agrees_with_render_view(panorama):
    """Many views of one panorama (seam and poles included): mean difference under 1 grey level."""
    size = (320, 180)
    yaws = [p[0] for p in POSES]
    pitches = [p[1] for p in POSES]
    views = render_views_torch(torch.from_numpy(panorama), yaws, pitches, size=size)
    assert views.shape == (len(POSES), 180, 320, 3) and views.dtype == torch.uint8
    for view, yaw, pitch in zip(views.numpy(), yaws, pitches):
        diff = np.abs(view.astype(int) - render_view(panorama, yaw, pitch, size=size).astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 2, (yaw, pitch, diff.mean(), diff.max())


def test_batched_torch_renderer_one_view_per_panorama():
    panoramas = np.stack([smooth_panorama(256, seed=s) for s in range(3)])
    poses = [(180.0, 0.0), (0.0, 90.0), (300.5, -89.5)]
    views = render_views_torch(panoramas, [p[0] for p in poses], [p[1] for p in poses], size=(96, 54))
    assert views.shape == (3, 54, 96, 3)
    for i, (yaw, pitch) in enumerate(poses):
        diff = np.abs(views[i].numpy().astype(int) - render_view(panoramas[i], yaw, pitch, size=(96, 54)).astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 2


def test_batched_torch_renderer_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8 or floating"):
        render_views_torch(np.zeros((64, 128, 3), dtype=np.int32), 0.0, 0.0)
    with pytest.raises(ValueError, match="2H"):
        render_views_torch(np.zeros((64, 64, 3), dtype=np.uint8), 0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        render_views_torch(np.zeros((64, 128, 3), dtype=np.uint8), float("nan"), 0.0)


@pytest.mark.parametrize("size", [(320, 180), (1280, 720), (37, 21)])
def test_prepared_panorama_renders_the_same_pixels(panorama, size):
    """A PreparedPanorama is only a faster layout: every pose gives the same view as the array."""
    prepared = PreparedPanorama(panorama)
    assert prepared.shape == panorama.shape and np.array_equal(prepared.rgb, panorama)
    assert not prepared.rgbx.flags.writeable  # a copy that cannot drift from what was prepared
    for yaw, pitch in POSES[:10]:
        view = render_view(prepared, yaw, pitch, size=size)
        assert view.flags.c_contiguous and view.shape == (size[1], size[0], 3)
        assert np.array_equal(view, render_view(panorama, yaw, pitch, size=size)), (yaw, pitch)


@pytest.mark.parametrize("prepare", [True, False])
def test_views_kept_by_callers_are_never_overwritten(panorama, prepare):
    """render_view reuses the memory of views nobody holds any more; anything still held
    (the view, a slice of it, a tensor made from it) must keep its pixels, and a dropped
    view's memory is in fact handed out again."""
    source = PreparedPanorama(panorama) if prepare else panorama
    size = (64, 36)
    kept = [render_view(source, 10.0 * i, 5.0, size=size) for i in range(6)]  # more than the pool holds
    a_slice = render_view(source, 100.0, -30.0, size=size)[5:9]
    a_tensor = torch.from_numpy(render_view(source, 150.0, 60.0, size=size))
    expected = [v.copy() for v in kept] + [a_slice.copy(), a_tensor.clone()]
    addresses = set()
    for i in range(40):  # views dropped at once: their memory comes back
        view = render_view(source, 7.0 * i, -20.0, size=size)
        addresses.add(view.__array_interface__["data"][0])
        del view
    for before, after in zip(expected[:6], kept):
        assert np.array_equal(before, after)
    assert np.array_equal(expected[6], a_slice) and torch.equal(expected[7], a_tensor)
    assert len(addresses) < 40
    assert not any(np.shares_memory(kept[i], kept[j]) for i in range(6) for j in range(i))


@pytest.mark.parametrize(
    "image,match",
    [
        (np.zeros((64, 128, 4), dtype=np.uint8), r"shape \(64, 128, 4\)"),
        (np.zeros((64, 100, 3), dtype=np.uint8), "twice as wide as high, got 100x64"),
        (np.zeros((64, 128, 3), dtype=np.float32), "dtype float32"),
    ],
)
def test_prepared_panorama_rejects_bad_arrays(image, match):
    with pytest.raises(ValueError, match=match):
        PreparedPanorama(image)


def test_exact_position_kernel_agrees_with_geometry():
    """The compiled kernel's float32 atan2 matches numpy's within 1e-6 rad in every quadrant and at
    the awkward inputs (zeros, signed zeros, tiny and huge ratios), and its positions match
    geometry's exact map to 1e-3 px at random poses (the map test above allows 0.1 px)."""
    rng = np.random.default_rng(5)
    special = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 1.0, -1.0, 1e7, -1e7], dtype=np.float32)
    ys, xs = np.meshgrid(special, special)
    ys = np.concatenate([ys.ravel(), rng.normal(size=5000).astype(np.float32)])
    xs = np.concatenate([xs.ravel(), rng.normal(size=5000).astype(np.float32)])
    ours = np.array([map_kernels.atan2(y, x) for y, x in zip(ys, xs)], dtype=np.float64)
    difference = np.abs(ours - np.arctan2(ys.astype(np.float64), xs.astype(np.float64)))
    difference = np.minimum(difference, 2 * np.pi - difference)  # +-pi are the same direction
    both_zero = (ys == 0) & (xs == 0)  # undefined direction: any finite angle will do
    assert np.isfinite(ours).all() and difference[~both_zero].max() < 1e-6
    for yaw, pitch in [(0.0, 0.0), (179.99, 0.0), (12.3, 89.99), (301.0, -45.0)]:
        size, shape = (96, 54), (512, 1024)
        focal = geometry.focal_length_px(100.0, size[0])
        a = ((np.arange(size[0]) + 0.5 - size[0] / 2) / focal).astype(np.float32)
        b = ((size[1] / 2 - 0.5 - np.arange(size[1])) / focal).astype(np.float32)
        rotation = tuple(np.float32(r) for r in geometry.rotation_matrix(yaw, pitch).ravel())
        u, v = np.empty((size[1], size[0]), np.float32), np.empty((size[1], size[0]), np.float32)
        map_kernels.exact_grid(u, v, a, b, rotation, shape[1], shape[0])
        exact = exact_maps(yaw, pitch, 100.0, size, shape)
        error = angular_error_px(np.dstack([u, v]), exact, shape[1], shape[0])
        assert error.max() < 1e-3, (yaw, pitch, error.max())
