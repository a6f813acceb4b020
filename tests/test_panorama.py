"""Panorama loading: grey, RGBA, 16-bit and palette are converted, anything else is refused naming the file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from panoseek.envs.panorama import PanoramaError, as_panorama, load_panorama, save_image


def test_rgb_round_trip_keeps_channel_order(tmp_path) -> None:
    image = np.zeros((8, 16, 3), np.uint8)
    image[..., 0] = 200  # red
    save_image(tmp_path / "red.png", image)
    loaded = load_panorama(tmp_path / "red.png")
    assert loaded.shape == (8, 16, 3)
    assert loaded[0, 0].tolist() == [200, 0, 0]


def test_grey_and_rgba_are_converted(tmp_path) -> None:
    grey = np.full((8, 16), 77, np.uint8)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    assert load_panorama(tmp_path / "grey.png")[3, 3].tolist() == [77, 77, 77]
    rgba = np.zeros((8, 16, 4), np.uint8)
    rgba[..., 2] = 255  # blue in RGBA order
    rgba[..., 3] = 10
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    assert load_panorama(tmp_path / "rgba.png")[0, 0].tolist() == [0, 0, 255]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: cv2.imwrite(str(p), np.zeros((1, 2, 3), np.uint8)), "at least 2x2 pixels"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n garbage"), "not a readable image"),
        (lambda p: None, "not found"),
    ],
)
def test_bad_files_are_refused_with_the_file_named(tmp_path, make, message) -> None:
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(PanoramaError, match=message) as error:
        load_panorama(path)
    assert "bad.png" in str(error.value)


def test_bad_arrays_are_refused() -> None:
    with pytest.raises(PanoramaError, match="uint8"):
        as_panorama(np.zeros((8, 16, 3), np.float32))
    with pytest.raises(PanoramaError, match="shape"):
        as_panorama(np.zeros((8, 16, 2), np.uint8))
    with pytest.raises(PanoramaError, match="numpy array"):
        as_panorama([[1, 2]])


def test_16_bit_and_palette_files_keep_their_look(tmp_path) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 65536, (8, 16), dtype=np.uint16)
    colour = rng.integers(0, 65536, (8, 16, 3), dtype=np.uint16)  # RGB order
    cv2.imwrite(str(tmp_path / "grey16.png"), grey)
    cv2.imwrite(str(tmp_path / "rgb16.png"), cv2.cvtColor(colour, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(load_panorama(tmp_path / "grey16.png"), np.dstack([grey >> 8] * 3).astype(np.uint8))
    np.testing.assert_array_equal(load_panorama(tmp_path / "rgb16.png"), (colour >> 8).astype(np.uint8))
    rgb = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).quantize(colors=16).save(tmp_path / "palette.png")
    expected = cv2.cvtColor(cv2.imread(str(tmp_path / "palette.png")), cv2.COLOR_BGR2RGB)  # as OpenCV reads it
    np.testing.assert_array_equal(load_panorama(tmp_path / "palette.png"), expected)
