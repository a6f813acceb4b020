"""Loading and validating equirectangular panoramas.

In memory a panorama is always an ``(H, W, 3)`` uint8 RGB array with ``W == 2 * H``.
Grey, palette, 16-bit and RGBA images are converted; an image that is not 2:1 is
resampled to ``2H x H`` with a warning; anything else is refused with the source named.

Files are decoded with Pillow, as common readers (and H* Bench's) do: the EXIF
orientation is applied, and a truncated file is an error rather than a picture with
flat grey rows.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow modes that load_panorama turns into RGB uint8 (16-bit ones keep their high byte).
READABLE_MODES = frozenset(
    {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I;16", "I;16B", "I;16L", "I"}
)
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I"}
_SIDEWAYS_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_ORIENTATION_TAG = 0x0112


class PanoramaError(ValueError):
    """A panorama file or array that panoseek cannot use; the message names it."""


def equirectangular_size(source: str, width: int, height: int) -> tuple[int, int]:
    """The ``(width, height)`` a ``width x height`` image is used at: ``(2 * height, height)``.

    A panorama that is not 2:1 is resampled to that size (warning naming ``source`` and
    both sizes, once per process and source); one less than 2 pixels high or wide is refused.
    """
    if height < 2 or width < 2:
        raise PanoramaError(f"{source}: a panorama needs at least 2x2 pixels, got {width}x{height}")
    if width != 2 * height:
        warnings.warn(
            f"{source}: an equirectangular panorama is twice as wide as it is high, got {width}x{height}; "
            f"resampled to {2 * height}x{height}"
        )
    return 2 * height, height


def as_panorama(image: np.ndarray, source: str = "panorama array") -> np.ndarray:
    """Validate and normalise an image array to ``(H, 2H, 3)`` uint8 RGB.

    Grey ``(H, W)`` / ``(H, W, 1)`` is replicated, RGBA drops alpha, a non-2:1 image is
    resampled (:func:`equirectangular_size`); other dtypes are refused rather than guessed at.
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
    size = equirectangular_size(source, width, height)
    if size != (width, height):
        shrinking = size[0] < width
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.ascontiguousarray(image)


def read_header(path: str | Path) -> tuple[int, int]:
    """Check cheaply (header only) that ``path`` is an image :func:`load_panorama` reads.

    Returns the ``(width, height)`` it will be read at (EXIF orientation applied, then
    :func:`equirectangular_size`). Damaged pixel data behind an intact header is only
    found by :func:`load_panorama`.
    """
    path = Path(path)
    with _opened(path) as image:
        width, height = image.size
        # Pillow decodes a whole PNG to look for an EXIF chunk after its pixels; the header
        # check only reads EXIF that comes before them (always so in JPEG).
        has_exif = image.format != "PNG" or "exif" in image.info
        if has_exif and image.getexif().get(_ORIENTATION_TAG) in _SIDEWAYS_ORIENTATIONS:
            width, height = height, width
    return equirectangular_size(str(path), width, height)


def load_panorama(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB panorama, EXIF orientation applied; the error names the file."""
    path = Path(path)
    with _opened(path) as image:
        try:
            ImageOps.exif_transpose(image, in_place=True)
            image.load()  # raises on a truncated file instead of filling it with grey
            if image.mode in _SIXTEEN_BIT_MODES:
                pixels = (np.clip(np.asarray(image), 0, 65535) >> 8).astype(np.uint8)
            else:
                pixels = np.array(image if image.mode == "RGB" else image.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as error:
            raise PanoramaError(f"{path}: not a readable image ({error})") from None
    return as_panorama(pixels, source=str(path))


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """Pillow's lazy open of a file of a readable mode; every failure a PanoramaError naming it."""
    try:
        # Pillow's warning about very large images is meant for untrusted uploads; sizes
        # past its hard limit are still refused.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (FileNotFoundError, IsADirectoryError):
        raise PanoramaError(f"{path}: panorama file not found") from None
    except Image.DecompressionBombError as error:
        raise PanoramaError(f"{path}: image too large ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise PanoramaError(f"{path}: not a readable image ({error})") from None
    with image:
        if image.mode not in READABLE_MODES:
            raise PanoramaError(f"{path}: {image.format} pixels of mode {image.mode!r} are not grey, RGB or RGBA")
        yield image


def save_image(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB (or grey) uint8 image to a PNG/JPEG file, creating folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), bgr):
        raise OSError(f"{path}: could not write image")
