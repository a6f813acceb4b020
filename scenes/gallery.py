"""Contact sheets of a suite: panoramas with their targets, starts and a few views.

People judge scenes by looking. Each row of the sheet shows one panorama with

* object targets as boxes (their yaw x pitch range) numbered like the task list,
* path goals as a band over their yaw window (target +- 10° at least),
* the start directions of the first task as ticks on the top edge (E/M/H/X = level),

and, at the right, views rendered with :func:`panoseek.envs.render.render_view`
centred on the first object target and on the first path goal.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from panoseek.envs.geometry import lonlat_to_pixel, yaw_range_width, yaw_to_lon
from panoseek.envs.judge import yaw_window
from panoseek.envs.render import render_view
from panoseek.envs.task import HOS, Task

COLOURS = ((255, 60, 60), (60, 200, 255), (255, 210, 40), (120, 255, 120), (255, 120, 255), (255, 160, 60))
LEVEL_LETTERS = {HOS: "EMH", "HPS": "EMHX"}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _scene_key(task: Task):
    meta = task.metadata
    if "scene_seed" in meta:
        return ("synth", meta["scene_seed"])
    source = task.panorama
    return ("file", str(source)) if not callable(source) else ("callable", id(source))


def pick_scenes(tasks: Sequence[Task], count: int) -> list[list[Task]]:
    """``count`` panoramas with all their tasks: spread over the suite, one per macro category first."""
    groups: dict = {}
    for task in tasks:
        groups.setdefault(_scene_key(task), []).append(task)
    keys = list(groups)
    spread = keys[:: max(1, len(keys) // max(count, 1))]
    order = spread + [key for key in keys if key not in set(spread)]
    chosen, macros = [], set()
    for key in order:  # first pass: a new macro category each time
        macro = groups[key][0].metadata.get("macro")
        if len(chosen) < count and (macro is None or macro not in macros):
            chosen.append(key)
            macros.add(macro)
    chosen += [key for key in order if key not in chosen][: count - len(chosen)]
    return [groups[key] for key in chosen]


def _yaw_spans(yaw_range: tuple[float, float], width: int) -> list[tuple[int, int]]:
    """Column spans of a yaw range in a panorama ``width`` wide (two if it crosses the edge)."""
    y0 = yaw_range[0]
    span = yaw_range_width(*yaw_range)
    u0 = lonlat_to_pixel(yaw_to_lon(y0), 0.0, width, 2)[0] + 0.5
    u1 = u0 + span / 360.0 * width
    if u1 <= width:
        return [(int(u0), int(np.ceil(u1)))]
    return [(int(u0), width - 1), (0, int(np.ceil(u1 - width)))]


def annotate(panorama: np.ndarray, tasks: Sequence[Task], width: int) -> np.ndarray:
    """The panorama ``width`` wide with target boxes, path windows and start ticks drawn on."""
    height = width // 2
    image = cv2.resize(panorama, (width, height), interpolation=cv2.INTER_AREA)
    overlay = image.copy()
    for number, task in enumerate(tasks, 1):
        colour = COLOURS[(number - 1) % len(COLOURS)]
        if task.kind == HOS:
            p0, p1 = task.pitch_range
            v_top = int(lonlat_to_pixel(0.0, max(p0, p1), width, height)[1]) - 2
            v_bottom = int(np.ceil(lonlat_to_pixel(0.0, min(p0, p1), width, height)[1])) + 2
            for a, b in _yaw_spans(task.yaw_range, width):
                cv2.rectangle(image, (a - 2, v_top), (b + 2, v_bottom), colour, 2, cv2.LINE_AA)
            anchor = (_yaw_spans(task.yaw_range, width)[0][0], max(12, v_top - 4))
        else:
            window = yaw_window(task)
            band = (window.centre - window.half_width, window.centre + window.half_width)
            for a, b in _yaw_spans(band, width):
                cv2.rectangle(overlay, (a, int(height * 0.5)), (b, height - 1), colour, -1)
            for a, b in _yaw_spans(task.yaw_range, width):
                cv2.rectangle(image, (a, int(height * 0.5)), (b, height - 1), colour, 2)
            anchor = (_yaw_spans(band, width)[0][0] + 3, int(height * 0.5) + 16)
        cv2.putText(image, str(number), anchor, FONT, 0.55, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(image, str(number), anchor, FONT, 0.55, colour, 1, cv2.LINE_AA)
    image = cv2.addWeighted(overlay, 0.25, image, 0.75, 0)
    first = tasks[0]
    for start, level in zip(first.start_yaws, first.levels):
        u = int(lonlat_to_pixel(yaw_to_lon(start), 0.0, width, height)[0])
        cv2.fillPoly(image, [np.array([(u - 7, 0), (u + 7, 0), (u, 14)], np.int32)], (255, 255, 255))
        cv2.putText(image, LEVEL_LETTERS[first.kind][level], (u - 5, 28), FONT, 0.5, (255, 255, 255), 2, cv2.LINE_AA)
    return image


def _caption(lines: list[tuple[str, tuple]], width: int, line_height: int = 18) -> np.ndarray:
    strip = np.full((line_height * len(lines) + 6, width, 3), 24, np.uint8)
    for i, (text, colour) in enumerate(lines):
        cv2.putText(strip, text[: width // 8], (6, line_height * (i + 1)), FONT, 0.45, colour, 1, cv2.LINE_AA)
    return strip


def scene_row(tasks: Sequence[Task], pano_width: int = 1024) -> np.ndarray:
    """One row of the sheet: annotated panorama, two 16:9 views and the task list."""
    view_size = (pano_width * 3 // 8, pano_width * 3 // 8 * 9 // 16)  # two views fit beside the panorama
    panorama = tasks[0].load_panorama()
    left = annotate(panorama, tasks, pano_width)
    views = []
    for kind in (HOS, "HPS"):
        task = next((t for t in tasks if t.kind == kind), None)
        if task is None:
            continue
        window = yaw_window(task)
        pitch = sum(task.pitch_range) / 2 if task.pitch_range is not None else 0.0
        view = render_view(panorama, window.centre, pitch, size=view_size)
        cv2.drawMarker(view, (view_size[0] // 2, view_size[1] // 2), (0, 255, 0), cv2.MARKER_CROSS, 14, 1)
        label = f"view on task {tasks.index(task) + 1}"
        cv2.putText(view, label, (6, 18), FONT, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(view, label, (6, 18), FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        views.append(view)
    right = np.vstack(views) if views else np.zeros((0, view_size[0], 3), np.uint8)
    right = np.vstack([right, np.full((left.shape[0] - right.shape[0], view_size[0], 3), 24, np.uint8)])
    meta = tasks[0].metadata
    title = f"{meta.get('scene_label', meta.get('scene_type', ''))} ({meta.get('macro', '')})  -  {tasks[0].id}"
    lines = [(title, (255, 255, 255))]
    for number, task in enumerate(tasks, 1):
        levels = "".join(LEVEL_LETTERS[task.kind][level] for level in task.levels)
        lines.append((f"{number}. [{task.kind} {levels}] {task.instruction}", COLOURS[(number - 1) % len(COLOURS)]))
    body = np.hstack([left, right])
    return np.vstack([body, _caption(lines, body.shape[1])])


def contact_sheet(tasks: Sequence[Task], scenes: int = 4, pano_width: int = 1024) -> np.ndarray:
    """The whole sheet: ``scenes`` rows, separated by thin gaps."""
    rows = [scene_row(group, pano_width) for group in pick_scenes(tasks, scenes)]
    if not rows:
        raise ValueError("the suite has no tasks to show")
    gap = np.full((6, rows[0].shape[1], 3), 255, np.uint8)
    parts = []
    for row in rows:
        parts += [row, gap]
    return np.vstack(parts[:-1])
