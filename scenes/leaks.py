"""What an agent scores on a synth suite without really searching (adversarial audits).

Each audit is computed from the tasks and their scene layouts with the judge
(:mod:`panoseek.envs.judge`) alone: no panorama is drawn and no episode is run.

* **blind**: one fixed offset (yaw from the start, absolute pitch) per kind, submitted
  without looking. :func:`fit_blind_offsets` finds the best one on a split; against
  the start-independent targets it can do no better than :func:`random_yaw_chance`,
  a uniformly random yaw at the best fixed pitch.
* **sign style**: a rule that picks an HPS opening from the style of its own sign
  (arrows, pictograms, how its text is written, colour) but never reads the text;
  fitted on one split by :func:`fit_sign_rule`, compared with a random opening.
* **category only**: a perfect detector of the target's *category* that submits the
  centre of one same-category object at random (target or look-alike); it scores only
  what telling them apart by chance gives if no look-alike lies in the judged window.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from panoseek.envs.geometry import wrap_yaw
from panoseek.envs.judge import is_success, pitch_window, yaw_window
from panoseek.envs.task import HOS, HPS, Task
from panoseek.scenes.layout import Layout
from panoseek.scenes.synth import scene

PITCHES = np.arange(-90, 91)  # candidate fixed pitches (degrees)


def _layout(task: Task) -> Layout:
    return scene(task.metadata["scene_seed"], task.metadata["scene_type"]).layout


# ------------------------------------------------------------------------------- blind


def _pitch_hits(task: Task) -> np.ndarray:
    """Which of :data:`PITCHES` the judge accepts for ``task`` (all of them for HPS)."""
    window = pitch_window(task)
    return np.ones(len(PITCHES), bool) if window is None else np.asarray(window.contains(PITCHES))


def blind_success_grid(tasks: Sequence[Task], kind: str) -> tuple[np.ndarray, int]:
    """Judged successes of every integer offset (yaw 0..359 from the start, pitch -90..90), and the episodes.

    Each episode accepts a box of offsets (its yaw window shifted by the start, times its
    pitch window): boxes are added as 2-D differences and summed once.
    """
    diff = np.zeros((361, len(PITCHES) + 1))
    episodes = 0
    for task in (t for t in tasks if t.kind == kind):
        pitches = np.flatnonzero(_pitch_hits(task))
        if not len(pitches):
            episodes += len(task.start_yaws)
            continue
        p0, p1 = pitches[0], pitches[-1] + 1
        window = yaw_window(task)
        for start in task.start_yaws:
            episodes += 1
            lo = math.ceil(window.centre - window.half_width - start - 1e-9)
            hi = math.floor(window.centre + window.half_width - start + 1e-9)
            if hi - lo + 1 >= 360:
                spans = [(0, 360)]
            else:
                lo, hi = lo % 360, hi % 360
                spans = [(lo, hi + 1)] if lo <= hi else [(lo, 360), (0, hi + 1)]
            for y0, y1 in spans:
                diff[y0, p0] += 1
                diff[y0, p1] -= 1
                diff[y1, p0] -= 1
                diff[y1, p1] += 1
    return diff.cumsum(axis=0).cumsum(axis=1)[:360, : len(PITCHES)], episodes


def fit_blind_offsets(tasks: Sequence[Task]) -> dict[str, tuple[float, float]]:
    """The fixed (yaw offset, pitch) per kind with the most judged successes on ``tasks``.

    Ties go to the smallest yaw offset, then the pitch nearest the horizon. HPS pitch is 0.
    """
    offsets = {}
    for kind in (HOS, HPS):
        grid, episodes = blind_success_grid(tasks, kind)
        if not episodes:
            continue
        if kind == HPS:
            grid = grid[:, PITCHES == 0]
            offsets[kind] = (float(np.argmax(grid[:, 0])), 0.0)
            continue
        order = np.argsort(np.abs(PITCHES), kind="stable")  # prefer pitches near 0 among ties
        best = grid[:, order]
        yaw, column = np.unravel_index(int(np.argmax(best)), best.shape)
        offsets[kind] = (float(yaw), float(PITCHES[order[column]]))
    return offsets


def blind_success(tasks: Sequence[Task], offsets: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Judged success per kind of submitting ``start + yaw offset`` at the fixed pitch (the judge, per episode)."""
    result = {}
    for kind, (dyaw, pitch) in offsets.items():
        hits = [is_success(task, wrap_yaw(start + dyaw), pitch)
                for task in tasks if task.kind == kind for start in task.start_yaws]
        if hits:
            result[kind] = float(np.mean(hits))
    return result


def random_yaw_chance(tasks: Sequence[Task]) -> dict[str, tuple[float, float]]:
    """(success, pitch) per kind of a uniformly random yaw at the best fixed pitch, in closed form.

    A uniform yaw falls in the yaw window with probability width / 360, whatever the start.
    """
    result = {}
    for kind in (HOS, HPS):
        chosen = [t for t in tasks if t.kind == kind]
        if not chosen:
            continue
        share = np.array([2.0 * yaw_window(t).half_width / 360.0 for t in chosen]) * np.array(
            [len(t.start_yaws) for t in chosen])
        hits = np.array([_pitch_hits(t) for t in chosen])
        totals = share @ hits / sum(len(t.start_yaws) for t in chosen)
        best = int(np.argmax(totals))
        result[kind] = (float(totals[best]), float(PITCHES[best]) if kind == HOS else 0.0)
    return result


# -------------------------------------------------------------------------- sign style


def _text_form(text: str) -> str:
    """How a row's text is written, not what it says: none, a range, a number, or words."""
    if not text:
        return ""
    if re.search(r"\d+-\d+", text):
        return "range"
    return "number" if re.search(r"\d", text) else "words"


def sign_style(layout: Layout, opening: int) -> tuple:
    """Style of the sign(s) over an opening: colour and, per row, arrow, pictogram or not, text form."""
    centre = layout.openings[opening].centre
    signs = [p for p in layout.placements if p.role == "sign" and abs(p.yaw - centre) < 1e-6]
    return tuple(sorted((sign.spec.colour, tuple((arrow, bool(picto), _text_form(text))
                                                  for arrow, picto, text in sign.spec.lines)) for sign in signs))


def _path_tasks(tasks: Sequence[Task]) -> list[tuple[Task, list[tuple]]]:
    return [(t, [sign_style(_layout(t), i) for i in range(len(t.metadata["openings"]))]) for t in tasks if t.kind == HPS]


def fit_sign_rule(tasks: Sequence[Task]) -> dict[tuple, float]:
    """Score per sign style: the share of openings with that style that are a task's goal (Laplace-smoothed)."""
    goals: dict[tuple, int] = defaultdict(int)
    seen: dict[tuple, int] = defaultdict(int)
    for task, styles in _path_tasks(tasks):
        for index, style in enumerate(styles):
            seen[style] += 1
            goals[style] += index == task.metadata["goal_opening"]
    return {style: (goals[style] + 1.0) / (seen[style] + 2.0) for style in seen}


def sign_rule_success(tasks: Sequence[Task], rule: dict[tuple, float]) -> tuple[float, float]:
    """(expected success of picking the top-scored opening, ties at random; that of a random opening)."""
    prior = float(np.mean(list(rule.values()))) if rule else 0.0
    picked, uniform = [], []
    for task, styles in _path_tasks(tasks):
        scores = np.array([rule.get(style, prior) for style in styles])
        top = np.flatnonzero(scores == scores.max())
        picked.append(float(task.metadata["goal_opening"] in top) / len(top))
        uniform.append(1.0 / len(styles))
    return float(np.mean(picked)), float(np.mean(uniform))


# ----------------------------------------------------------------------- category only


def category_detector(tasks: Sequence[Task]) -> tuple[float, float]:
    """(success of submitting a random same-category object's centre; 1 / number of them), HOS means.

    The two agree exactly when no look-alike's centre lies in its target's judged window.
    """
    rates, blind_pick = [], []
    for task in (t for t in tasks if t.kind == HOS):
        target = _layout(task).placements[task.metadata["target_index"]]
        same = [p for p in _layout(task).placements if p.spec.category == target.spec.category]
        hits = [is_success(task, p.yaw, sum(p.pitch_range) / 2.0) for p in same]
        rates.append(float(np.mean(hits)))
        blind_pick.append(1.0 / len(same))
    return float(np.mean(rates)), float(np.mean(blind_pick))
