"""Reports of evaluation results: H*-style tables, success-by-turn curves, trajectories.

A results folder (written by the benchmark runner) holds ``episodes.jsonl`` (one
record per episode) and ``run.json`` (suite spec, fingerprint, agent). Every number
in a report is recomputed from the episode records, so a report always agrees with
the records it names. Trajectory pictures need the tasks themselves (panorama and
target); they come through a ``task_lookup`` callable, because ``envs`` never
imports ``scenes`` (DESIGN.md).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from panoseek.envs import geometry
from panoseek.envs.judge import pitch_window, yaw_window
from panoseek.envs.panorama import save_image
from panoseek.envs.records import EPISODES_FILE, RUN_FILE, RecordsError, read_episodes, read_json
from panoseek.envs.render import render_view
from panoseek.envs.task import HOS, HPS, KINDS, LEVEL_NAMES, Task

REQUIRED_FIELDS = ("task_id", "kind", "success", "turns")  # besides episode_id, checked on reading
TaskLookup = Callable[[str], "Task | None"]


class ReportError(ValueError):
    """A results folder or record that cannot be reported; the message names it."""


# ------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Results:
    """One results folder: its run configuration and its episode records."""

    path: Path
    run: dict[str, Any]
    episodes: tuple[dict[str, Any], ...]

    @property
    def agent(self) -> str:
        return str(self.run.get("agent") or "?")

    @property
    def suite(self) -> str:
        return str(self.run.get("suite") or "?")

    @property
    def fingerprint(self) -> str:
        return str(self.run.get("fingerprint") or "?")


def load_results(directory: str | os.PathLike) -> Results:
    """Read a results folder; a malformed record is an error naming file and line.

    A half-written last line (an evaluation still running or killed mid-write) is
    skipped, as the runner itself does when it resumes.
    """
    path = Path(directory)
    episodes_path = path / EPISODES_FILE
    if not episodes_path.is_file():
        raise ReportError(f"{path}: not a results folder (no {EPISODES_FILE})")
    try:
        run = read_json(path / RUN_FILE) if (path / RUN_FILE).is_file() else {}
        episodes = read_episodes(episodes_path)
    except RecordsError as error:
        raise ReportError(str(error)) from None
    for number, record in enumerate(episodes, start=1):
        _check_record(record, f"{episodes_path} record {number} ({record['episode_id']!r})")
    return Results(path=path, run=run, episodes=tuple(episodes))


def _check_record(record: Any, where: str) -> None:
    if not isinstance(record, dict):
        raise ReportError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in REQUIRED_FIELDS:
        if name not in record:
            raise ReportError(f"{where}: record lacks field {name!r}")
    if record["kind"] not in KINDS:
        raise ReportError(f"{where}: field 'kind' must be one of {KINDS}, got {record['kind']!r}")
    if level_name(record) not in LEVEL_NAMES[record["kind"]]:
        raise ReportError(f"{where}: unknown level {record.get('level_name', record.get('level'))!r} for {record['kind']}")


def level_name(record: dict[str, Any]) -> str:
    """The record's difficulty level name (``level_name``, else from ``level``)."""
    if record.get("level_name"):
        return str(record["level_name"])
    level = record.get("level")
    names = LEVEL_NAMES[record["kind"]]
    return names[level] if isinstance(level, int) and 0 <= level < len(names) else str(level)


# ------------------------------------------------------------------------ numbers


@dataclass(frozen=True)
class Cell:
    """Successes out of episodes for one column of the table."""

    episodes: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.episodes if self.episodes else math.nan

    @property
    def stderr(self) -> float:
        """Binomial standard error of the rate."""
        return math.sqrt(self.rate * (1.0 - self.rate) / self.episodes) if self.episodes else math.nan


def table_columns() -> list[tuple[str, str]]:
    """The H* table's columns as (kind, column): overall then each level, HOS then HPS."""
    return [(kind, column) for kind in (HOS, HPS) for column in ("overall", *LEVEL_NAMES[kind])]


def success_table(episodes: Sequence[dict[str, Any]]) -> dict[tuple[str, str], Cell]:
    """Success counts per (kind, "overall" or level name)."""
    counts = {column: [0, 0] for column in table_columns()}
    for record in episodes:
        for column in ((record["kind"], "overall"), (record["kind"], level_name(record))):
            counts[column][0] += 1
            counts[column][1] += bool(record["success"])
    return {column: Cell(n, k) for column, (n, k) in counts.items()}


def success_by_turn(episodes: Sequence[dict[str, Any]], max_turns: int) -> np.ndarray:
    """Fraction of episodes that succeeded within t turns, for t = 1..max_turns."""
    if not episodes:
        return np.zeros(max_turns)
    finished = np.array([int(r["turns"]) for r in episodes if r["success"]], dtype=np.int64)
    turns = np.arange(1, max_turns + 1)
    return (finished[None, :] <= turns[:, None]).sum(axis=1) / len(episodes)


def episode_stats(episodes: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Episode count, success rate, mean turns, median yaw error, invalid actions, agent errors."""
    cell = Cell(len(episodes), sum(bool(r["success"]) for r in episodes))
    yaw_errors = [r["yaw_error"] for r in episodes if isinstance(r.get("yaw_error"), (int, float))]
    actions = [a for r in episodes for a in r.get("actions") or ()]
    return {
        "episodes": cell.episodes,
        "success": cell.rate,
        "stderr": cell.stderr,
        "mean_turns": float(np.mean([r["turns"] for r in episodes])) if episodes else math.nan,
        "submitted": sum(r.get("submitted") is not None for r in episodes) / max(len(episodes), 1),
        "median_yaw_error": float(np.median(yaw_errors)) if yaw_errors else math.nan,
        "invalid_actions": sum(not a.get("valid", True) for a in actions) / max(len(actions), 1),
        "agent_errors": sum(bool(r.get("error")) for r in episodes),
    }


# ------------------------------------------------------------------------ markdown


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{100.0 * value:.1f}"


def _row_labels(results: Sequence[Results]) -> list[str]:
    """Agent names, with the folder name added where two rows share an agent name."""
    agents = [r.agent for r in results]
    return [f"{a} ({r.path.name})" if agents.count(a) > 1 else a for a, r in zip(agents, results)]


def markdown_tables(results: Sequence[Results]) -> str:
    """The H*-style success table (one row per results folder) and a statistics table."""
    columns = table_columns()
    header = ["Agent"] + [f"{kind} {name}" if name == "overall" else name for kind, name in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    labels = _row_labels(results)
    tables = [success_table(r.episodes) for r in results]
    for label, table in zip(labels, tables):
        lines.append("| " + " | ".join([label] + [_percent(table[c].rate) for c in columns]) + " |")
    counts = [[str(table[c].episodes) for c in columns] for table in tables]
    if all(row == counts[0] for row in counts):  # the same episodes everywhere: one row says it
        lines.append("| " + " | ".join(["*episodes*"] + counts[0]) + " |")
    else:
        lines += ["| " + " | ".join([f"*episodes ({label})*"] + row) + " |" for label, row in zip(labels, counts)]
    lines += [
        "",
        "| Agent | Episodes | Success % (± s.e.) | Mean turns | Submitted % | Median yaw error (°) | Invalid actions % | Agent errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, result in zip(labels, results):
        s = episode_stats(result.episodes)
        error = "–" if math.isnan(s["median_yaw_error"]) else f"{s['median_yaw_error']:.1f}"
        turns = "–" if math.isnan(s["mean_turns"]) else f"{s['mean_turns']:.2f}"
        lines.append(
            f"| {label} | {s['episodes']} | {_percent(s['success'])} ± {_percent(s['stderr'])} | {turns} | "
            f"{_percent(s['submitted'])} | {error} | {_percent(s['invalid_actions'])} | {s['agent_errors']} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------ pictures


def plot_success_by_turn(results: Sequence[Results], path: Path, max_turns: int | None = None) -> Path:
    """Success-by-turn curves (HOS and HPS panels, one line per results folder) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    if max_turns is None:
        max_turns = max([int(r.run.get("max_turns") or 0) for r in results] + [int(e["turns"]) for r in results for e in r.episodes] + [1])
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    turns = np.arange(1, max_turns + 1)
    for axis, kind in zip(axes, (HOS, HPS)):
        for label, result in zip(_row_labels(results), results):
            episodes = [e for e in result.episodes if e["kind"] == kind]
            if episodes:
                curve = 100.0 * success_by_turn(episodes, max_turns)
                axis.plot(turns, curve, marker="o", markersize=3, label=f"{label} (n={len(episodes)})")
        axis.set_title(f"{kind}: {'object' if kind == HOS else 'path'} search")
        axis.set_xlabel("turn")
        axis.set_xticks(turns)
        axis.set_xlim(0.5, max_turns + 0.5)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(loc="best", fontsize=8)
    axes[0].set_ylabel("episodes succeeded by turn t (%)")
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
    target_yaw = yaw_window(task).centre
    target_pitch = 0.0 if task.kind == HPS else pitch_window(task).centre
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


# ------------------------------------------------------------------------ reports


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def write_report(results: Results, out: str | os.PathLike | None = None, *, task_lookup: TaskLookup | None = None, trajectories: int = 6) -> Path:
    """Write ``report.md`` (default: inside the results folder) with its pictures beside it.

    Pictures go to ``<report stem>_files/``. Trajectories need ``task_lookup``
    (task id -> Task or None); without it, or for unknown tasks, they are left out
    and the report says so.
    """
    out_path = Path(out) if out is not None else results.path / "report.md"
    files = out_path.parent / f"{out_path.stem}_files"
    files.mkdir(parents=True, exist_ok=True)
    title = f"# {results.agent} on {results.suite}"
    lines = [
        title,
        "",
        f"- Results: `{results.path}` ({len(results.episodes)} episodes)",
        f"- Suite: `{results.suite}`, fingerprint `{results.fingerprint}`",
        f"- Agent: `{results.agent}`" + (f", arguments `{json.dumps(results.run['agent_args'])}`" if results.run.get("agent_args") else ""),
    ]
    if results.run.get("command"):
        lines.append(f"- Command: `{results.run['command']}`")
    lines += ["", "## Success rate (%)", "", markdown_tables([results]), ""]
    curve = plot_success_by_turn([results], files / "success_by_turn.png")
    lines += ["## Success by turn", "", f"![success by turn]({files.name}/{curve.name})", ""]
    lines += _trajectory_section(results, files, task_lookup, trajectories)
    out_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_path


def _trajectory_section(results: Results, files: Path, task_lookup: TaskLookup | None, count: int) -> list[str]:
    if count <= 0:
        return []
    lines = ["## Trajectories", ""]
    if task_lookup is None:
        return lines + ["Trajectory pictures need the suite's tasks, which could not be loaded.", ""]
    fov_deg = float(results.run.get("fov_deg") or 100.0)
    view_size = results.run.get("view_size") or (16, 9)
    aspect = float(view_size[0]) / float(view_size[1])
    lines += [
        "Yellow: the judged target window. Cyan: the gaze path (white dot: start, numbers: turns). "
        "Cross: the submitted direction (green: success, red: failure). Below: the views seen at each turn "
        "(yellow circle: the target's centre when in view).",
        "",
    ]
    for record in sample_episodes(results.episodes, count):
        task = task_lookup(str(record["task_id"]))
        if task is None:
            lines += [f"- `{record['episode_id']}`: task not found in the suite, no picture", ""]
            continue
        picture = files / f"trajectory_{_safe_name(str(record['episode_id']))}.png"
        save_image(picture, trajectory_picture(record, task, fov_deg=fov_deg, aspect=aspect))
        outcome = "success" if record["success"] else "failure"
        lines += [f"### `{record['episode_id']}`: {record['kind']} {level_name(record)}, {outcome}", "", f"![{record['episode_id']}]({files.name}/{picture.name})", ""]
    return lines


def write_comparison(results: Sequence[Results], out: str | os.PathLike) -> Path:
    """Write one Markdown page comparing several results folders (one table row each)."""
    if not results:
        raise ReportError("nothing to compare: no results folders given")
    out_path = Path(out)
    files = out_path.parent / f"{out_path.stem}_files"
    files.mkdir(parents=True, exist_ok=True)
    suites = sorted({r.suite for r in results})
    lines = [f"# Comparison on {', '.join(suites)}", ""]
    fingerprints = {r.fingerprint for r in results}
    if len(fingerprints) > 1:
        lines += [
            "**Warning: these results come from different suites or suite versions (fingerprints differ); "
            "their numbers are not comparable.**",
            "",
        ]
    lines += ["| Agent | Results | Suite | Fingerprint |", "|---|---|---|---|"]
    lines += [f"| {label} | `{r.path}` | `{r.suite}` | `{r.fingerprint}` |" for label, r in zip(_row_labels(results), results)]
    lines += ["", "## Success rate (%)", "", markdown_tables(results), ""]
    curve = plot_success_by_turn(results, files / "success_by_turn.png")
    lines += ["## Success by turn", "", f"![success by turn]({files.name}/{curve.name})", ""]
    out_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_path
