"""Loading and validating equirectangular panoramas.

In memory a panorama is always an ``(H, W, 3)`` uint8 RGB array with ``W == 2 * H``.
Grey and RGBA images are converted; anything else is refused with the source named.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class PanoramaError(ValueError):
    """A panorama file or array that panoseek cannot use; the message names it."""


def as_panorama(image: np.ndarray, source: str = "panorama array") -> np.ndarray:
    """Validate and normalise an image array to ``(H, 2H, 3)`` uint8 RGB.

    Grey ``(H, W)`` / ``(H, W, 1)`` is replicated, RGBA drops alpha; other dtypes are
    refused rather than guessed at.
    """
    if not isinstance(image, np.ndarray):
        raise PanoramaError(f"{source}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise PanoramaError(f"{source}: expected uint8 pixels, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise PanoramaError(f"{source}: expected grey, RGB or RGBA pixels, got shape {image.shape}")
    height, width = image.shape[:2]
    if height < 2 or width != 2 * height:
        raise PanoramaError(
            f"{source}: an equirectangular panorama is twice as wide as it is high, got {width}x{height}"
        )
    return np.ascontiguousarray(image)


def load_panorama(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB panorama; the error names the file."""
    path = Path(path)
    if not path.is_file():
        raise PanoramaError(f"{path}: panorama file not found")
    # IMREAD_UNCHANGED keeps grey/alpha visible so as_panorama converts them explicitly.
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise PanoramaError(f"{path}: not a readable image (corrupt or unsupported format)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return as_panorama(image, source=str(path))


def save_image(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB (or grey) uint8 image to a PNG/JPEG file, creating folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), bgr):
        raise OSError(f"{path}: could not write image")
