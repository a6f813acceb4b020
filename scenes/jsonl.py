"""``jsonl:PATH``: read tasks on one's own panoramas from a JSON-lines manifest.

One JSON object per line (blank lines are skipped)::

    {"image": "panos/lobby.jpg", "instruction": "Find the red fire extinguisher.",
     "kind": "HOS", "yaw_range": [350, 12], "pitch_range": [-20, -5],
     "start_yaws": [0, 90, 180, 270], "levels": [0, 2, 2, 1],
     "id": "lobby-extinguisher", "metadata": {"room": "lobby"}}

Required: ``image`` (relative to the manifest's folder, or absolute), ``instruction``,
``kind`` ("HOS" or "HPS"), ``yaw_range``, and ``pitch_range`` for HOS. Optional:
``start_yaws`` (default 0, 90, 180, 270), ``levels`` (a list, one per start, or one
number; rules of :func:`panoseek.scenes.real_panoramas.make_task`), ``id``
(default ``line-N``), ``metadata`` (a JSON object). Unknown fields are refused, so a
misspelt field does not go unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from panoseek.envs.task import HOS, KINDS, Task
from panoseek.scenes.real_panoramas import check_image, make_task, real_suite
from panoseek.scenes.suite import Suite, SuiteError

REQUIRED_FIELDS = ("image", "instruction", "kind", "yaw_range")
OPTIONAL_FIELDS = ("pitch_range", "start_yaws", "levels", "id", "metadata")


def load_jsonl(path: str | Path) -> Suite:
    """All tasks of the manifest at ``path``, in line order."""
    manifest = Path(path)
    if not manifest.is_file():
        raise SuiteError(f"jsonl:{path}: manifest file not found")
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise SuiteError(f"{manifest}: not UTF-8 text ({error.reason})") from None
    tasks: list[Task] = []
    digests: list[str] = []
    checked: dict[Path, str] = {}  # image -> digest, so a panorama shared by tasks is read once
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{manifest} line {number}"
        item = _parse_line(where, line)
        image = (manifest.parent / str(item["image"])).resolve()
        if image not in checked:
            try:
                checked[image] = check_image(image)
            except SuiteError as error:
                raise SuiteError(f"{where}: {error}") from None
        tasks.append(_task(where, f"line-{number}", image, item))
        digests.append(checked[image])
    return real_suite(f"jsonl:{path}", tasks, digests)


def _parse_line(where: str, line: str) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        raise SuiteError(f"{where}: invalid JSON at column {error.colno}: {error.msg}") from None
    if not isinstance(item, dict):
        raise SuiteError(f"{where}: expected a JSON object, got {type(item).__name__}")
    for field in REQUIRED_FIELDS:
        if field not in item:
            raise SuiteError(f"{where}: missing field {field!r}")
    unknown = sorted(set(item) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        valid = ", ".join(REQUIRED_FIELDS + OPTIONAL_FIELDS)
        raise SuiteError(f"{where}: unknown field {unknown[0]!r} (valid fields: {valid})")
    if not isinstance(item["image"], str) or not item["image"] or "\0" in item["image"]:
        raise SuiteError(f"{where}: field 'image' must be a file path, got {item['image']!r}")
    if not isinstance(item.get("metadata", {}), dict):
        raise SuiteError(f"{where}: field 'metadata' must be a JSON object, got {item['metadata']!r}")
    return item


def _task(where: str, default_id: str, image: Path, item: dict[str, Any]) -> Task:
    kind = item["kind"]
    if kind not in KINDS:
        raise SuiteError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == HOS and "pitch_range" not in item:
        raise SuiteError(f"{where}: missing field 'pitch_range' (an HOS task needs its pitch range)")
    return make_task(
        where,
        id=item.get("id", default_id),
        kind=kind,
        instruction=item["instruction"],
        panorama=image,
        yaw_range=item["yaw_range"],
        pitch_range=item.get("pitch_range"),
        start_yaws=item.get("start_yaws"),
        levels=item.get("levels"),
        metadata=dict(item.get("metadata", {})),
    )
