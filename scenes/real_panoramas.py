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

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Mapping, Sequence

from panoseek.envs.panorama import PanoramaError, read_header
from panoseek.envs.task import DEFAULT_START_YAWS, HOS, Task, TaskError
from panoseek.scenes.levels import box_visibility, hos_level
from panoseek.scenes.suite import Suite, SuiteError, fingerprint, task_record

LOADER_VERSION = 2  # bump when a change in parsing or reading changes the tasks or pixels read from the same files
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_DIGEST_BLOCK = 64 * 1024


def check_image(path: Path) -> str:
    """Check cheaply (header only) that ``path`` is a panorama panoseek reads; return its digest.

    Grey, palette, 16-bit and RGBA images pass (they are converted on loading), and so do
    images that are not 2:1 (resampled on loading, with a warning naming the file, given
    here already); the error names the file for anything else.
    """
    try:
        read_header(path)
    except PanoramaError as error:
        raise SuiteError(str(error)) from None
    return _file_digest(path)


def _file_digest(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as file:
        for offset in sorted({0, max(size // 2 - _DIGEST_BLOCK // 2, 0), max(size - _DIGEST_BLOCK, 0)}):
            file.seek(offset)
            digest.update(file.read(_DIGEST_BLOCK))
    return f"{size}:{digest.hexdigest()[:16]}"


def make_task(where: str, *, file_fields: Mapping[str, str] | None = None, **fields: Any) -> Task:
    """The :class:`Task` of one parsed item, with the start and level rules; errors name ``where``.

    Rules (as H* Bench): no ``start_yaws`` -> 0, 90, 180, 270; ``levels`` is a list (one
    per start) or one number for every start. With no levels, an HOS task's are computed
    from the target box's visibility in each start view (``metadata["levels_from"]``);
    an HPS task's starts are unlabelled (``None``): HPS levels depend on the path cues in
    the picture, which no annotation holds. ``file_fields`` maps Task field names to the
    file's where they differ (``{"yaw_range": "yaw"}``), so messages name the field as
    the file spells it.
    """
    starts = DEFAULT_START_YAWS if fields.get("start_yaws") is None else fields["start_yaws"]
    levels = fields.get("levels")
    try:
        if isinstance(starts, (str, bytes)) or not isinstance(starts, Sequence) or not starts:
            raise TaskError(f"field 'start_yaws' must be a non-empty list of numbers, got {starts!r}")
        if levels is None or (isinstance(levels, int) and not isinstance(levels, bool)):
            levels = [levels] * len(starts)
        elif isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or len(levels) != len(starts):
            raise TaskError(
                f"field 'levels' must be one integer or a list with one per start yaw ({len(starts)}), got {levels!r}"
            )
        task = Task(**{**fields, "start_yaws": tuple(starts), "levels": tuple(levels)})
        if fields.get("levels") is None and task.kind == HOS:
            visibilities = box_visibility(task.yaw_range, task.pitch_range, task.start_yaws)
            levels = tuple(hos_level(float(visibility)) for visibility in visibilities)
            task = dataclasses.replace(task, levels=levels, metadata={**task.metadata, "levels_from": "box visibility"})
    except TaskError as error:
        message = str(error)
        for task_field, file_field in (file_fields or {}).items():
            message = message.replace(f"field {task_field!r}", f"field {file_field!r}")
        raise SuiteError(f"{where}: {message}") from None
    return task


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
