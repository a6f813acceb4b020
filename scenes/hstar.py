"""``hstar:PATH``: read panoramas and tasks laid out as H* Bench folders.

PATH holds one folder per panorama (directly, or one level down, e.g. ``hos/`` and
``hps/``); each folder holds one ``.png``/``.jpg`` and an ``annotation.json`` with a
list of items::

    {"task": "Find the ...", "yaw": [y0, y1], "pitch": [p0, p1],
     "initial yaw": [0, 90, 180, 270], "level": [2, 0, 1, 2]}

As in H* Bench, an item without ``"pitch"`` is path search (HPS), with it object
search (HOS); an optional ``"kind"`` ("HOS"/"HPS") overrides that. Without
``"initial yaw"`` the starts are 0, 90, 180, 270. ``"level"`` is a list (one per
start) or one number; see :func:`panoseek.scenes.real_panoramas.make_task` when it is
missing. Other fields are kept in the task's metadata. Task ids are
``<folder relative to PATH>#<item index>`` (the folder's own name when PATH is a
single panorama folder).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from panoseek.envs.task import HOS, HPS, KINDS, Task
from panoseek.scenes.real_panoramas import IMAGE_SUFFIXES, check_image, make_task, real_suite
from panoseek.scenes.suite import Suite, SuiteError

ANNOTATION = "annotation.json"
_KNOWN_FIELDS = {"task", "yaw", "pitch", "initial yaw", "level", "kind"}
# Task field -> annotation field, so errors name the field as annotation.json spells it.
_FILE_FIELDS = {
    "instruction": "task", "yaw_range": "yaw", "pitch_range": "pitch", "start_yaws": "initial yaw", "levels": "level"
}


def load_hstar(path: str | Path) -> Suite:
    """All tasks of the H* Bench folders under ``path``, ordered by folder then item."""
    root = Path(path)
    if not root.is_dir():
        raise SuiteError(f"hstar:{path}: folder not found")
    annotations = _annotation_files(root)
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


def _annotation_files(root: Path) -> list[Path]:
    """The ``annotation.json`` of each panorama folder in ``root`` and up to two levels below.

    A folder reached twice through symbolic links (a link loop, two links to one folder)
    is read once, under its own path rather than a link's, with a warning. A wrong-case
    ``annotation.JSON`` is an error, since skipping it would silently drop its tasks on
    case-sensitive file systems.
    """
    found: dict[Path, Path] = {}  # resolved folder -> its annotation file
    real_root = root.resolve()
    folders = [root]
    for depth in range(3):
        subfolders = []
        for folder in folders:
            for entry in _entries(folder):
                if entry.name == ANNOTATION:
                    key = folder.resolve()
                    if key not in found:
                        found[key] = entry
                        continue
                    own_path = real_root / folder.relative_to(root) == key  # kept over a link to it
                    link, found[key] = (found[key], entry) if own_path else (entry, found[key])
                    warnings.warn(f"{link.parent} is {key} again (symbolic link); its tasks are read once")
                elif entry.name.lower() == ANNOTATION:
                    raise SuiteError(f"{entry}: an annotation file must be named {ANNOTATION} (lower case)")
                elif depth < 2 and entry.is_dir():
                    subfolders.append(entry)
        folders = subfolders
    return list(found.values())


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as error:
        raise SuiteError(f"{folder}: cannot list the folder ({error.strerror})") from None


def _panorama_file(folder: Path) -> Path:
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(images) != 1:
        found = ", ".join(p.name for p in images) or "none"
        raise SuiteError(f"{folder}: expected exactly one .png/.jpg panorama next to {ANNOTATION}, found {found}")
    return images[0].resolve()


def _read_items(annotation: Path) -> list[dict[str, Any]]:
    if annotation.is_dir():
        raise SuiteError(f"{annotation}: is a folder; expected a JSON file")
    if not annotation.exists():
        raise SuiteError(f"{annotation}: broken symbolic link (to {os.readlink(annotation)})")
    try:
        items = json.loads(annotation.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        position = f"line {error.lineno} column {error.colno}"
        raise SuiteError(f"{annotation}: invalid JSON at {position}: {error.msg}") from None
    except UnicodeDecodeError as error:
        raise SuiteError(f"{annotation}: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise SuiteError(f"{annotation}: cannot read the file ({error.strerror})") from None
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
    return make_task(
        where,
        file_fields=_FILE_FIELDS,
        id=task_id,
        kind=kind,
        instruction=item["task"],
        panorama=image,
        yaw_range=item["yaw"],
        pitch_range=item.get("pitch"),
        start_yaws=item.get("initial yaw"),
        levels=item.get("level"),
        metadata={key: value for key, value in item.items() if key not in _KNOWN_FIELDS},
    )
