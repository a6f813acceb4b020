"""What the loaders of real panoramas share: file checks, start/level rules, fingerprints.

``hstar:`` and ``jsonl:`` read different formats into the same tasks; everything after
parsing lives here so both make identical :class:`Task` objects and fingerprints.

Fingerprint of a real suite: sha256 over every task's fields (:func:`task_record`)
and, per task, a digest of its image file: the byte size plus sha256 of three 64 KiB
blocks (start, middle, end). Copying or moving the data keeps the fingerprint;
re-encoding or editing an image changes its size or sampled bytes in practice. Full
content hashes would cost seconds per load on a benchmark of large panoramas.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image, UnidentifiedImageError

from panoseek.envs.task import DEFAULT_START_YAWS, HOS, LEVEL_NAMES, Task, TaskError
from panoseek.scenes.levels import box_visibility, hos_level
from panoseek.scenes.suite import Suite, SuiteError, fingerprint, task_record

LOADER_VERSION = 1  # bump when a change in parsing changes the tasks read from the same files
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Pillow modes that panoseek.envs.panorama.load_panorama turns into RGB uint8.
_READABLE_MODES = {
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I;16", "I;16B", "I;16L", "I"
}
_DIGEST_BLOCK = 64 * 1024


def check_image(path: Path) -> str:
    """Check cheaply that ``path`` is a readable 2:1 panorama (header only); return its digest.

    Grey, palette, 16-bit and RGBA images pass (they are converted on loading); the
    error names the file for anything else.
    """
    if not path.is_file():
        raise SuiteError(f"{path}: panorama file not found")
    try:
        # Pillow only reads the header here (OpenCV decodes later), so its warning about
        # very large images does not apply; sizes past its hard limit are still refused.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                mode = image.mode
                image_format = image.format
    except Image.DecompressionBombError as error:
        raise SuiteError(f"{path}: image too large ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise SuiteError(f"{path}: not a readable image ({error})") from None
    if mode not in _READABLE_MODES:
        raise SuiteError(f"{path}: {image_format} pixels of mode {mode!r} are not grey, RGB or RGBA")
    if height < 2 or width != 2 * height:
        raise SuiteError(f"{path}: an equirectangular panorama is twice as wide as it is high, got {width}x{height}")
    return _file_digest(path)


def _file_digest(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as file:
        for offset in sorted({0, max(size // 2 - _DIGEST_BLOCK // 2, 0), max(size - _DIGEST_BLOCK, 0)}):
            file.seek(offset)
            digest.update(file.read(_DIGEST_BLOCK))
    return f"{size}:{digest.hexdigest()[:16]}"


def starts_and_levels(
    where: str,
    kind: str,
    yaw_range: Any,
    pitch_range: Any,
    start_yaws: Sequence[float] | None,
    levels: int | Sequence[int] | None,
) -> tuple[tuple[float, ...], tuple[int, ...], bool]:
    """Start yaws and one level per start, and whether the levels were computed.

    Rules (as H* Bench): no starts -> 0, 90, 180, 270. ``levels`` is a list (one per
    start) or one number for every start. Missing HOS levels are computed from the
    target box's visibility in each start view; missing HPS levels are an error,
    because they depend on the path cues in the picture, which no annotation holds.
    """
    if start_yaws is None:
        start_yaws = DEFAULT_START_YAWS
    elif isinstance(start_yaws, (str, bytes)) or not isinstance(start_yaws, Sequence) or not start_yaws:
        raise SuiteError(f"{where}: the start yaws must be a non-empty list of numbers, got {start_yaws!r}")
    if levels is None:
        if kind != HOS:
            names = ", ".join(f"{i} {name}" for i, name in enumerate(LEVEL_NAMES[kind]))
            raise SuiteError(
                f"{where}: an {kind} item needs its level ({names}); it depends on the path cues "
                "and cannot be computed (write 0 if unknown)"
            )
        try:
            visibilities = box_visibility(yaw_range, pitch_range, [float(yaw) for yaw in start_yaws])
        except (TypeError, ValueError):
            raise SuiteError(
                f"{where}: cannot compute levels from yaw range {yaw_range!r}, "
                f"pitch range {pitch_range!r} and starts {start_yaws!r}"
            ) from None
        return tuple(start_yaws), tuple(hos_level(float(v)) for v in visibilities), True
    if isinstance(levels, int) and not isinstance(levels, bool):
        levels = [levels] * len(start_yaws)
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or len(levels) != len(start_yaws):
        raise SuiteError(
            f"{where}: the levels must be one integer or a list with one per start yaw ({len(start_yaws)}), "
            f"got {levels!r}"
        )
    return tuple(start_yaws), tuple(levels), False


def make_task(where: str, **fields: Any) -> Task:
    """A :class:`Task`, with any field error re-raised naming ``where`` (file, folder or line)."""
    try:
        return Task(**fields)
    except TaskError as error:
        raise SuiteError(f"{where}: {error}") from None


def real_suite(name: str, tasks: Sequence[Task], image_digests: Sequence[str]) -> Suite:
    """The suite of loaded tasks, fingerprinted by task fields and image digests (module doc)."""
    if not tasks:
        raise SuiteError(f"suite {name!r} holds no tasks")
    parts: Mapping[str, Any] = {
        "loader_version": LOADER_VERSION,
        "tasks": [task_record(task) for task in tasks],
        "images": list(image_digests),
    }
    return Suite(name, tasks, fingerprint(parts))
