"""Property tests (hypothesis) for the angle module: round trips, wrapping, windows, projection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from panoseek.envs import geometry
from panoseek.envs.geometry import AngularWindow

settings.register_profile("panoseek", max_examples=200, deadline=None, derandomize=True)
settings.load_profile("panoseek")

ANY_ANGLE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
YAW = st.floats(min_value=0.0, max_value=360.0, exclude_max=True)
LON = st.floats(min_value=-180.0, max_value=180.0, exclude_max=True)
LAT = st.floats(min_value=-89.0, max_value=89.0)
PITCH = st.floats(min_value=-90.0, max_value=90.0)
PANO_HEIGHT = st.integers(min_value=2, max_value=4096)
VIEW = st.tuples(st.integers(1, 1920), st.integers(1, 1080), st.floats(min_value=10.0, max_value=170.0))


def angle_close(a: float, b: float, tol: float = 1e-7) -> bool:
    return geometry.yaw_distance(a, b) <= tol


@given(ANY_ANGLE)
def test_wrap_yaw_range_and_periodicity(yaw):
    wrapped = geometry.wrap_yaw(yaw)
    assert 0.0 <= wrapped < 360.0
    assert angle_close(wrapped, yaw, 1e-6 * max(1.0, abs(yaw) / 360.0))
    assert geometry.wrap_yaw(wrapped) == wrapped


@given(ANY_ANGLE)
def test_clamp_pitch_range(pitch):
    clamped = geometry.clamp_pitch(pitch)
    assert -90.0 <= clamped <= 90.0
    assert clamped == pitch or abs(pitch) > 90.0


@given(YAW, YAW)
def test_yaw_delta_range_antisymmetry_and_arrival(a, b):
    delta = geometry.yaw_delta(a, b)
    assert -180.0 <= delta < 180.0
    assert angle_close(a + delta, b, 1e-9)
    back = geometry.yaw_delta(b, a)
    if abs(delta) < 180.0 - 1e-9:
        assert math.isclose(back, -delta, abs_tol=1e-9)
    else:  # exactly opposite: both ways are -180 by convention
        assert back == -180.0 or math.isclose(abs(back), 180.0, abs_tol=1e-9)
    assert math.isclose(geometry.yaw_distance(a, b), abs(delta))
    assert math.isclose(geometry.yaw_distance(b, a), abs(delta), abs_tol=1e-9)


@given(YAW)
def test_yaw_to_lon_is_yaw_in_minus_180_180(yaw):
    lon = geometry.yaw_to_lon(yaw)
    assert -180.0 <= lon < 180.0 and angle_close(lon, yaw, 1e-9)


@given(PANO_HEIGHT, st.floats(0.0, 1.0, exclude_max=True), st.floats(0.0, 1.0))
def test_pixel_lonlat_round_trip(height, fu, fv):
    width = 2 * height
    u, v = fu * width - 0.5, fv * height - 0.5  # the whole image, edges included
    lon, lat = geometry.pixel_to_lonlat(u, v, width, height)
    assert -180.0 <= lon < 180.0 and -90.0 <= lat <= 90.0
    u2, v2 = geometry.lonlat_to_pixel(lon, lat, width, height)
    assert math.isclose(u2, u, abs_tol=1e-6) and math.isclose(v2, v, abs_tol=1e-6)


def test_pixel_centres_follow_the_design_card():
    lon, lat = geometry.pixel_to_lonlat(np.array([0, 1023, 2047]), np.array([0, 511, 1023]), 2048, 1024)
    np.testing.assert_allclose(lon, [-180 + 180 / 2048, -180 / 2048, 180 - 180 / 2048])
    np.testing.assert_allclose(lat, [90 - 90 / 1024, 90 / 1024, -90 + 90 / 1024])


@given(LON, LAT, st.floats(min_value=1e-3, max_value=1e3))
def test_lonlat_vector_round_trip_any_length(lon, lat, length):
    vector = geometry.lonlat_to_vector(lon, lat)
    assert math.isclose(np.linalg.norm(vector), 1.0, abs_tol=1e-12)
    lon2, lat2 = geometry.vector_to_lonlat(vector * length)
    assert angle_close(float(lon2), lon, 1e-7) and math.isclose(float(lat2), lat, abs_tol=1e-7)


@given(LON, LAT, LON, LAT)
def test_great_circle_distance_is_a_metric_on_directions(lon_a, lat_a, lon_b, lat_b):
    d = geometry.great_circle_distance(lon_a, lat_a, lon_b, lat_b)
    assert 0.0 <= d <= 180.0
    assert math.isclose(d, geometry.great_circle_distance(lon_b, lat_b, lon_a, lat_a), abs_tol=1e-9)
    assert d >= abs(lat_a - lat_b) - 1e-6  # a meridian is the shortest way between latitudes


@given(YAW, PITCH)
def test_rotation_is_orthonormal_and_looks_at_the_pose(yaw, pitch):
    r = geometry.rotation_matrix(yaw, pitch)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert math.isclose(np.linalg.det(r), 1.0, abs_tol=1e-12)
    np.testing.assert_allclose(r @ [0.0, 0.0, 1.0], geometry.lonlat_to_vector(yaw, pitch), atol=1e-12)
    np.testing.assert_allclose(geometry.rotation_matrices([yaw], [pitch])[0], r, atol=1e-15)


@given(VIEW, YAW, PITCH, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_project_to_view_inverts_view_pixel_lonlat(view, yaw, pitch, fx, fy):
    width, height, fov = view
    x, y = fx * width - 0.5, fy * height - 0.5
    lon, lat = geometry.view_pixel_lonlat(x, y, yaw, pitch, fov, width, height)
    px, py, in_front = geometry.project_to_view(lon, lat, yaw, pitch, fov, width, height)
    assert in_front
    assert math.isclose(px, x, abs_tol=1e-6 * width) and math.isclose(py, y, abs_tol=1e-6 * width)


@given(VIEW, YAW, PITCH)
def test_view_centre_sees_the_head_direction(view, yaw, pitch):
    width, height, fov = view
    lon, lat = geometry.view_pixel_lonlat((width - 1) / 2, (height - 1) / 2, yaw, pitch, fov, width, height)
    assert math.isclose(float(lat), pitch, abs_tol=1e-7)
    if abs(pitch) < 90.0 - 1e-6:
        assert angle_close(float(lon), yaw, 1e-6)


@settings(max_examples=25)
@given(st.integers(1, 64), st.integers(1, 48), st.floats(20.0, 160.0), YAW, PITCH)
def test_view_pixel_lonlat_matches_the_full_grid(width, height, fov, yaw, pitch):
    lon, lat = geometry.view_lonlat(yaw, pitch, fov, width, height)
    ys, xs = np.mgrid[0:height, 0:width]
    lon2, lat2 = geometry.view_pixel_lonlat(xs, ys, yaw, pitch, fov, width, height)
    np.testing.assert_allclose(lat2, lat, atol=1e-9)
    assert np.all(geometry.yaw_distance(lon2, lon) <= 1e-9)


def test_horizontal_field_of_view_spans_the_view():
    lon, _ = geometry.view_pixel_lonlat(np.array([-0.5, 1279.5]), np.array([359.5, 359.5]), 0.0, 0.0, 100.0, 1280, 720)
    np.testing.assert_allclose(lon, [-50.0, 50.0])
    vertical = 2 * math.degrees(math.atan(math.tan(math.radians(50)) * 9 / 16))
    assert math.isclose(geometry.vertical_fov_deg(100.0, 1280, 720), vertical)


# ----------------------------------------------------------------------------- windows


@given(YAW, st.floats(0.0, 359.0), st.floats(1.0, 60.0), st.floats(0.0, 1.0))
def test_yaw_window_contains_its_whole_range_even_through_zero(y0, width, tolerance, t):
    y1 = geometry.wrap_yaw(y0 + width)
    window = AngularWindow.from_yaw_range(y0, y1, tolerance)
    assert window.contains(geometry.wrap_yaw(y0 + t * width))
    assert window.outside_by(geometry.wrap_yaw(y0 + t * width)) < 1e-9


@given(YAW, st.floats(0.0, 179.0), st.floats(1.0, 60.0))
def test_yaw_window_excludes_the_opposite_side(y0, width, tolerance):
    y1 = geometry.wrap_yaw(y0 + width)
    window = AngularWindow.from_yaw_range(y0, y1, tolerance)
    half = max(width / 2.0, tolerance)
    assume(half < 179.0)
    outside = geometry.wrap_yaw(window.centre + half + 1.0)
    assert not window.contains(outside)
    assert math.isclose(window.outside_by(outside), 1.0, abs_tol=1e-6)


def test_yaw_window_wrapping_through_zero():
    window = AngularWindow.from_yaw_range(350.0, 10.0, 5.0)
    assert window.centre == 0.0 and window.half_width == 10.0
    for inside in (350.0, 355.0, 0.0, 5.0, 10.0):
        assert window.contains(inside)
    for outside in (340.0, 20.0, 180.0):
        assert not window.contains(outside)


@given(YAW, st.floats(0.0, 1.0), st.floats(5.0, 40.0))
def test_narrow_range_widens_to_plus_minus_tolerance(y0, fraction, tolerance):
    width = fraction * 2.0 * tolerance * 0.999  # narrower than 2 tau
    window = AngularWindow.from_yaw_range(y0, geometry.wrap_yaw(y0 + width), tolerance)
    assert window.half_width == tolerance
    assert window.contains(geometry.wrap_yaw(window.centre + tolerance - 1e-6))
    assert window.contains(geometry.wrap_yaw(window.centre - tolerance + 1e-6))
    assert not window.contains(geometry.wrap_yaw(window.centre + tolerance + 0.01))


@given(st.floats(-90.0, 90.0), st.floats(-90.0, 90.0), st.floats(1.0, 40.0), st.floats(-90.0, 90.0))
def test_pitch_window_does_not_wrap(p0, p1, tolerance, pitch):
    window = AngularWindow.from_pitch_range(p0, p1, tolerance)
    lo, hi = min(p0, p1), max(p0, p1)
    half = max((hi - lo) / 2.0, tolerance)
    centre = (lo + hi) / 2.0
    assert window.contains(pitch) == (abs(pitch - centre) <= half + 1e-9)


@pytest.mark.parametrize("y0,y1,width", [(10, 350, 340), (350, 10, 20), (90, 90, 0), (0, 360, 360), (-10, 10, 20)])
def test_yaw_range_width(y0, y1, width):
    assert geometry.yaw_range_width(y0, y1) == width


def test_view_position_is_the_centre_for_the_head_direction_and_none_outside():
    assert geometry.view_position(30.0, 10.0, 30.0, 10.0, 100.0, 448, 252) == pytest.approx((223.5, 125.5))
    assert geometry.view_position(30.0 + 180.0, 0.0, 30.0, 0.0, 100.0, 448, 252) is None  # behind
    assert geometry.view_position(30.0 + 51.0, 0.0, 30.0, 0.0, 100.0, 448, 252) is None  # past the 50° edge
    x, _ = geometry.view_position(30.0 + 49.0, 0.0, 30.0, 0.0, 100.0, 448, 252)
    assert x == pytest.approx(223.5 + 224.0 * math.tan(math.radians(49)) / math.tan(math.radians(50)))
