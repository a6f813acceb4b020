"""Pictures of evaluation results: success-by-turn curves and trajectory pictures.

Both are drawn from episode records (and, for trajectories, the task's panorama and
target, which the report command looks up in the suite).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from panoseek.envs import geometry
from panoseek.envs.eval.stats import level_name, seen_by_turn, success_by_turn
from panoseek.envs.judge import pitch_window, target_centre, yaw_window
from panoseek.envs.render import render_view
from panoseek.envs.task import HOS, HPS, Task


def plot_success_by_turn(results: Sequence[Any], labels: Sequence[str], path: Path, max_turns: int | None = None) -> Path:
    """Success-by-turn curves (HOS and HPS panels, one line per results folder) as a PNG.

    ``results`` are :class:`~panoseek.envs.eval.report.Results` (``run`` and ``episodes``).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    if max_turns is None:
        max_turns = max([int(r.run.get("max_turns") or 0) for r in results] + [int(e["turns"]) for r in results for e in r.episodes] + [1])
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    turns = np.arange(1, max_turns + 1)
    for axis, kind in zip(axes, (HOS, HPS)):
        for label, result in zip(labels, results):
            episodes = [e for e in result.episodes if e["kind"] == kind]
            if episodes:
                curve = 100.0 * success_by_turn(episodes, max_turns)
                (line,) = axis.plot(turns, curve, marker="o", markersize=3, label=f"{label} (n={len(episodes)})")
                seen = seen_by_turn(episodes, max_turns)
                if seen is not None:  # dashed: the target had been in view by turn t (search, not judgement)
                    axis.plot(turns, 100.0 * seen, linestyle="--", linewidth=1, color=line.get_color())
        axis.set_title(f"{kind}: {'object' if kind == HOS else 'path'} search")
        axis.set_xlabel("turn")
        axis.set_xticks(turns)
        axis.set_xlim(0.5, max_turns + 0.5)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(loc="best", fontsize=8)
    axes[0].set_ylabel("succeeded by turn t (%); dashed: target seen by t")
    axes[0].set_ylim(-2, 103)  # room for lines at 0% and 100%
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _ascii(text: str) -> str:
    """Text OpenCV's Hershey fonts can draw (they know ASCII only)."""
    return text.encode("ascii", "replace").decode("ascii")


def _draw_label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.5, colour=(255, 255, 255)) -> None:
    """Text on a dark box, legible on any background; ``origin`` is the baseline's left end."""
    text = _ascii(text)
    (w, h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    cv2.rectangle(image, (x - 2, y - h - 3), (x + w + 2, y + baseline), (20, 20, 20), -1)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _unwrapped_path(record: dict[str, Any]) -> np.ndarray:
    """Headings as (yaw, pitch) with yaw unwrapped along the turns actually taken.

    A rotation's yaw step is the action's own delta when it agrees with the headings
    (a turn of +200 is drawn rightwards, not as -160); otherwise the shortest turn.
    """
    headings = [(float(y), float(p)) for y, p in record.get("headings") or ()]
    if not headings:
        return np.zeros((0, 2))
    deltas: dict[int, float] = {}
    for index, action in enumerate(record.get("actions") or ()):
        parsed = action.get("parsed") or {}
        if action.get("valid") and parsed.get("kind") == "rotate" and parsed.get("yaw") is not None:
            deltas[index] = float(parsed["yaw"])
    path = [headings[0]]
    for index in range(1, len(headings)):
        step = geometry.yaw_delta(headings[index - 1][0], headings[index][0])
        hinted = deltas.get(index - 1)
        if hinted is not None and abs(geometry.yaw_delta(step, hinted)) < 1e-3:
            step = hinted
        path.append((path[-1][0] + step, headings[index][1]))
    return np.asarray(path)


def _yaw_to_x(yaw: float, width: int) -> float:
    """Unwrapped yaw -> x; yaw 0 is the centre column, every 360° adds one width."""
    return (yaw + 180.0) / 360.0 * width - 0.5


def _pitch_to_y(pitch: float, height: int) -> float:
    return float(geometry.lonlat_to_pixel(0.0, pitch, 2 * height, height)[1])


def _draw_target(canvas: np.ndarray, task: Task) -> None:
    """The judged target window, translucent, repeated across the seam."""
    height, width = canvas.shape[:2]
    yaws, pitches = yaw_window(task), pitch_window(task)
    top, bottom = (0, height - 1) if pitches is None else (
        _pitch_to_y(min(pitches.centre + pitches.half_width, 90.0), height),
        _pitch_to_y(max(pitches.centre - pitches.half_width, -90.0), height),
    )
    overlay = canvas.copy()
    for shift in (-width, 0, width):
        left = _yaw_to_x(yaws.centre - yaws.half_width, width) + shift
        right = _yaw_to_x(yaws.centre + yaws.half_width, width) + shift
        corners = (round(left), round(top)), (round(right), round(bottom))
        cv2.rectangle(overlay, *corners, (255, 220, 0), -1)
        cv2.rectangle(canvas, *corners, (255, 220, 0), 2, cv2.LINE_AA)
    cv2.addWeighted(overlay, 0.25, canvas, 0.75, 0.0, dst=canvas)


def _draw_gaze(canvas: np.ndarray, path: np.ndarray, submitted: Any, success: bool) -> None:
    """Gaze path (cyan, numbered turns), start (white) and submitted point (green/red)."""
    height, width = canvas.shape[:2]
    points = [(_yaw_to_x(y, width), _pitch_to_y(p, height)) for y, p in path]
    # A turn that did not move the head (a submit, an invalid action) adds no point of its own.
    fresh = [i == 0 or np.hypot(points[i][0] - points[i - 1][0], points[i][1] - points[i - 1][1]) > 1.0 for i in range(len(points))]
    for shift in (-2 * width, -width, 0, width, 2 * width):  # unwrapped yaw may run round more than once
        moved = [(round(x + shift), round(y)) for x, y in points]
        for a, b in zip(moved, moved[1:]):
            cv2.line(canvas, a, b, (0, 0, 0), 5, cv2.LINE_AA)
            cv2.line(canvas, a, b, (0, 230, 255), 2, cv2.LINE_AA)
        for index, point in enumerate(moved):
            if fresh[index] and -20 <= point[0] < width + 20:
                cv2.circle(canvas, point, 7 if index == 0 else 5, (255, 255, 255) if index == 0 else (0, 230, 255), -1, cv2.LINE_AA)
                cv2.circle(canvas, point, 7 if index == 0 else 5, (0, 0, 0), 1, cv2.LINE_AA)
                _draw_label(canvas, "start" if index == 0 else str(index), (point[0] + 8, point[1] - 8), 0.45)
    if submitted is not None:
        x = _yaw_to_x(float(geometry.yaw_to_lon(submitted[0])), width)
        y = _pitch_to_y(float(submitted[1]), height)
        colour = (0, 200, 0) if success else (230, 0, 0)
        for size, thickness, ink in ((11, 6, (0, 0, 0)), (10, 3, colour)):
            cv2.drawMarker(canvas, (round(x), round(y)), ink, cv2.MARKER_TILTED_CROSS, 2 * size, thickness, cv2.LINE_AA)


def _view_strip(panorama: np.ndarray, record: dict[str, Any], task: Task, width: int, fov_deg: float, aspect: float) -> np.ndarray:
    """Thumbnails of the views the agent saw at each turn, then the submitted direction."""
    headings = list(record.get("headings") or ())
    seen = headings[: int(record["turns"])] or headings[:1]  # the heading after the last action is never seen
    views = [(f"t{i}", y, p) for i, (y, p) in enumerate(seen)]
    if record.get("submitted") is not None:
        views.append(("submit", *record["submitted"]))
    per_row = 6
    thumb_w = width // per_row
    thumb_h = round(thumb_w / aspect)
    rows = max(1, math.ceil(len(views) / per_row))
    strip = np.full((rows * thumb_h, width, 3), 30, dtype=np.uint8)
    target_yaw, target_pitch = target_centre(task)
    for index, (label, yaw, pitch) in enumerate(views):
        view = render_view(panorama, float(yaw), float(pitch), fov_deg=fov_deg, size=(thumb_w - 4, thumb_h - 4))
        x, y, in_front = geometry.project_to_view(target_yaw, target_pitch, float(yaw), float(pitch), fov_deg, thumb_w - 4, thumb_h - 4)
        if in_front and 0 <= x < thumb_w - 4 and 0 <= y < thumb_h - 4:
            cv2.circle(view, (round(float(x)), round(float(y))), 6, (255, 220, 0), 2, cv2.LINE_AA)
        cx, cy = view.shape[1] // 2, view.shape[0] // 2
        cv2.drawMarker(view, (cx, cy), (0, 255, 0), cv2.MARKER_CROSS, 10, 1)
        _draw_label(view, f"{label} ({float(geometry.wrap_yaw(yaw)):.0f},{float(pitch):.0f})", (4, 16), 0.45)
        row, column = divmod(index, per_row)
        strip[row * thumb_h + 2 : (row + 1) * thumb_h - 2, column * thumb_w + 2 : (column + 1) * thumb_w - 2] = view
    return strip


def trajectory_picture(record: dict[str, Any], task: Task, *, width: int = 1200, fov_deg: float = 100.0, aspect: float = 16 / 9) -> np.ndarray:
    """The panorama with target window, gaze path and submitted point, over a strip of the views seen.

    Returns an RGB uint8 image ``width`` pixels wide.
    """
    panorama = task.load_panorama()
    canvas = cv2.resize(panorama, (width, width // 2), interpolation=cv2.INTER_AREA)
    _draw_target(canvas, task)
    _draw_gaze(canvas, _unwrapped_path(record), record.get("submitted"), bool(record["success"]))
    header = np.full((54, width, 3), 30, dtype=np.uint8)
    outcome = "SUCCESS" if record["success"] else "FAIL"
    error = record.get("yaw_error")
    error_text = f", yaw error {error:.1f} deg" if isinstance(error, (int, float)) else ""
    _draw_label(header, f"{record['episode_id']}  {record['kind']} {level_name(record)}  {outcome} in {record['turns']} turns{error_text}", (8, 20), 0.55, (0, 230, 0) if record["success"] else (255, 90, 90))
    _draw_label(header, task.instruction[:150], (8, 44), 0.5)
    strip = _view_strip(panorama, record, task, width, fov_deg, aspect)
    return np.concatenate([header, canvas, strip], axis=0)


def sample_episodes(episodes: Sequence[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` episodes spread evenly over the records sorted by (kind, episode id)."""
    ordered = sorted(episodes, key=lambda r: (r["kind"], str(r["episode_id"])))
    if count <= 0 or not ordered:
        return []
    if count >= len(ordered):
        return ordered
    return [ordered[int(i)] for i in np.linspace(0, len(ordered) - 1, count).round()]


