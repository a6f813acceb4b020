"""``hstar:PATH``: read panoramas and tasks laid out as H* Bench folders.

PATH holds one folder per panorama (directly, or one level down, e.g. ``hos/`` and
``hps/``); each folder holds one ``.png``/``.jpg`` and an ``annotation.json`` with a
list of items::

    {"task": "Find the ...", "yaw": [y0, y1], "pitch": [p0, p1],
     "initial yaw": [0, 90, 180, 270], "level": [2, 0, 1, 2]}

As in H* Bench, an item without ``"pitch"`` is path search (HPS), with it object
search (HOS); an optional ``"kind"`` ("HOS"/"HPS") overrides that. Without
``"initial yaw"`` the starts are 0, 90, 180, 270. ``"level"`` is a list (one per
start) or one number; see :func:`panoseek.scenes.real_panoramas.starts_and_levels`
when it is missing. Other fields are kept in the task's metadata. Task ids are
``<folder relative to PATH>#<item index>`` (the folder's own name when PATH is a
single panorama folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from panoseek.envs.task import HOS, HPS, KINDS, Task
from panoseek.scenes.real_panoramas import IMAGE_SUFFIXES, check_image, make_task, real_suite, starts_and_levels
from panoseek.scenes.suite import Suite, SuiteError

ANNOTATION = "annotation.json"
_KNOWN_FIELDS = {"task", "yaw", "pitch", "initial yaw", "level", "kind"}


def load_hstar(path: str | Path) -> Suite:
    """All tasks of the H* Bench folders under ``path``, ordered by folder then item."""
    root = Path(path)
    if not root.is_dir():
        raise SuiteError(f"hstar:{path}: folder not found")
    annotations = [found for pattern in ("", "*/", "*/*/") for found in sorted(root.glob(pattern + ANNOTATION))]
    if not annotations:
        raise SuiteError(f"hstar:{path}: no panorama folder with an {ANNOTATION} (looked two levels down)")
    tasks: list[Task] = []
    digests: list[str] = []
    for annotation in annotations:
        folder = annotation.parent
        image = _panorama_file(folder)
        digest = check_image(image)
        name = folder.relative_to(root).as_posix() if folder != root else root.resolve().name
        for index, item in enumerate(_read_items(annotation)):
            tasks.append(_task(f"{annotation} item {index}", f"{name}#{index}", image, item))
            digests.append(digest)
    return real_suite(f"hstar:{path}", tasks, digests)


def _panorama_file(folder: Path) -> Path:
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(images) != 1:
        found = ", ".join(p.name for p in images) or "none"
        raise SuiteError(f"{folder}: expected exactly one .png/.jpg panorama next to {ANNOTATION}, found {found}")
    return images[0].resolve()


def _read_items(annotation: Path) -> list[dict[str, Any]]:
    try:
        items = json.loads(annotation.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        position = f"line {error.lineno} column {error.colno}"
        raise SuiteError(f"{annotation}: invalid JSON at {position}: {error.msg}") from None
    except UnicodeDecodeError as error:
        raise SuiteError(f"{annotation}: not UTF-8 text ({error.reason})") from None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items:
        raise SuiteError(f"{annotation}: expected a non-empty list of task items")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise SuiteError(f"{annotation} item {index}: expected a JSON object, got {type(item).__name__}")
    return items


def _task(where: str, task_id: str, image: Path, item: dict[str, Any]) -> Task:
    for field in ("task", "yaw"):
        if field not in item:
            raise SuiteError(f"{where}: missing field {field!r}")
    kind = item.get("kind", HOS if "pitch" in item else HPS)
    if kind not in KINDS:
        raise SuiteError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == HOS and "pitch" not in item:
        raise SuiteError(f"{where}: missing field 'pitch' (an HOS item needs its pitch range)")
    starts, levels, computed = starts_and_levels(
        where, kind, item["yaw"], item.get("pitch"), item.get("initial yaw"), item.get("level")
    )
    metadata = {key: value for key, value in item.items() if key not in _KNOWN_FIELDS}
    if computed:
        metadata["levels_from"] = "box visibility"
    return make_task(
        where,
        id=task_id,
        kind=kind,
        instruction=item["task"],
        panorama=image,
        yaw_range=item["yaw"],
        pitch_range=item.get("pitch"),
        start_yaws=starts,
        levels=levels,
        metadata=metadata,
    )
