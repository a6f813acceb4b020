"""Path search (HPS): walkable openings, the signs over them, and path tasks.

Every opening leads to two destinations, each a numbered range ("Gates 10-20") or a
service shown by a pictogram ("taxis"). A task names one destination; the way there
is exactly one opening. Levels follow the cue the scene offers (H* Bench):

* Easy: a sign naming the goal hangs over the correct opening (arrow up);
* Medium: a sign names the goal, but it hangs over a neighbouring opening and its
  arrow points to the correct one;
* Hard: no sign names the goal; an indirect cue does, over the correct opening (the
  range that contains it, or the bare pictogram);
* Extreme: the indirect cue hangs over a neighbour, its arrow pointing the way.

Every opening's sign follows one rule whatever its role, so the sign's style never
singles out the goal: two rows, an up arrow with one destination reached through the
opening, then a side arrow with one reached through the next opening that way (the
side is the same for the whole scene). Each destination appears exactly once, on its
own opening's up row or on its neighbour's side row; a row names it ("Gate 12",
"Taxis") or gives the indirect cue (its range, the bare pictogram) with the same odds
for goals and other destinations.

Openings are spaced so that the success window of each (its extent, at least centre
+- 10°) contains no part of another opening: the answer is well defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from panoseek.envs.geometry import wrap_yaw, yaw_distance
from panoseek.envs.judge import YAW_TOLERANCE
from panoseek.envs.task import HPS
from panoseek.scenes.layout import AngularPlanner, Layout, Opening, Placement
from panoseek.scenes.library import ObjectSpec

EASY, MEDIUM, HARD, EXTREME = range(4)
LEVEL_WEIGHTS = (0.3, 0.25, 0.25, 0.2)  # Easy, Medium, Hard, Extreme share of path tasks
# Odds that a row names its destination: a goal's row does at Easy and Medium.
NAMED_SHARE = LEVEL_WEIGHTS[EASY] + LEVEL_WEIGHTS[MEDIUM]
SIGN_DISTANCE = 7.0  # m: signs hang from the ceiling in front of far openings, as in big halls
SIGN_ROW_DEG = 6.0  # angular height of one sign row
SIGN_ROW_WIDTH = 6.0  # a sign is at least this many rows wide (room for arrow, pictogram and text)
SIGN_MAX_DEG = 34.0  # and at most this wide, so that neighbouring signs never overlap
WINDOW_MARGIN = 2.0  # degrees kept free between a window's edge and any other opening
INSTRUCTIONS = (
    "I need to get to {goal}. Turn to face the way I should walk.",
    "Which way is {goal}? Face that direction.",
    "Find the way to {goal}.",
    "Head towards {goal}: face the path that leads there.",
)


# How instructions name a service destination; signs write the key, title-cased.
SERVICE_PHRASES = {
    "toilets": "the toilets", "trains": "the trains", "buses": "the buses", "taxis": "the taxi rank",
    "flights": "the flights", "exit": "the exit", "lifts": "the lifts", "stairs": "the stairs", "cafe": "the cafe",
    "first aid": "first aid", "information": "the information desk", "parking": "the car park",
    "bicycles": "the bicycle parking",
}


@dataclass(frozen=True)
class Destination:
    """Where an opening leads: a number range of one kind, or a service."""

    singular: str = ""  # "Gate"
    plural: str = ""  # "Gates"
    first: int = 0
    last: int = 0
    service: str = ""  # pictogram key, e.g. "taxis"

    def range_line(self, arrow: str) -> tuple[str, str, str]:
        """The indirect cue: the range, or the bare pictogram."""
        if self.service:
            return (arrow, self.service, "")
        return (arrow, "", f"{self.plural} {self.first}-{self.last}")

    def named_line(self, arrow: str, number: int | None) -> tuple[str, str, str]:
        """The direct cue: the goal's own name (with its pictogram for services)."""
        if self.service:
            return (arrow, self.service, self.service.title())
        return (arrow, "", f"{self.singular} {number}")

    def goal_name(self, number: int | None) -> str:
        return SERVICE_PHRASES[self.service] if self.service else f"{self.singular} {number}"

    def sign_text(self, number: int | None) -> str:
        """How a sign naming this goal writes it."""
        return self.named_line("up", number)[2]


@dataclass(frozen=True)
class PathTaskSpec:
    """One path task of a scene (before it becomes a :class:`~panoseek.envs.task.Task`)."""

    instruction: str
    opening: int  # index into layout.openings
    level: int
    goal: str
    sign_text: str  # the goal's name as a sign would write it (Easy/Medium signs carry it)
    cue_opening: int  # the opening whose sign carries the cue
    start_yaws: tuple[float, ...]


def window_half_width(opening: Opening) -> float:
    """Half width of the success window of an opening (H* rule: at least tau)."""
    return max(opening.width_deg / 2.0, YAW_TOLERANCE[HPS])


def opening_overlaps_window(opening: Opening, centre: float, half_width: float) -> bool:
    """Whether any part of ``opening`` lies within ``half_width`` of ``centre``."""
    if yaw_distance(opening.centre, centre) <= half_width:
        return True
    return min(yaw_distance(edge, centre) for edge in opening.yaw_range) <= half_width


def add_openings(layout: Layout, planner: AngularPlanner, rng: np.random.Generator) -> None:
    """Cut 3-5 openings into the walls, away from corners, from each other's windows and signs."""
    room = layout.room
    corners = room.corner_yaws()
    wanted = int(rng.integers(3, 6))
    for _ in range(200):
        if len(layout.openings) == wanted:
            break
        centre = float(rng.uniform(0, 360))
        distance = room.wall_distance(centre)
        width_m = rng.uniform(1.8, 4.0) if room.indoor else rng.uniform(6.0, 12.0)
        half = math.degrees(math.atan2(width_m / 2.0, distance))
        if not 3.0 <= half <= 25.0 or min(yaw_distance(c, centre) for c in corners) < half + 4.0:
            continue
        height = math.inf if not room.indoor else min(rng.uniform(2.3, 3.2), room.height - 1.3)
        depth = rng.uniform(6.0, 20.0) if room.indoor else rng.uniform(40.0, 90.0)
        tone = tuple(int(v) for v in rng.integers(200, 250, 3))
        opening = Opening((wrap_yaw(centre - half), wrap_yaw(centre + half)), height, depth, tone)
        if all(_well_separated(opening, other) for other in layout.openings):
            layout.openings.append(opening)
    layout.openings.sort(key=lambda o: o.centre)
    for opening in layout.openings:
        top = opening.height if room.indoor else 0.6 * room.height
        pitch_top = math.degrees(math.atan2(top - room.camera_height, room.wall_distance(opening.centre)))
        planner.add(opening.centre, opening.width_deg / 2.0, (-90.0, pitch_top))


def _well_separated(a: Opening, b: Opening) -> bool:
    if yaw_distance(a.centre, b.centre) < SIGN_MAX_DEG + 4.0:  # room for both signs side by side
        return False
    for first, second in ((a, b), (b, a)):
        if opening_overlaps_window(second, first.centre, window_half_width(first) + WINDOW_MARGIN):
            return False
    return True


def make_path_tasks(layout: Layout, planner: AngularPlanner, rng: np.random.Generator, levels: list[int]) -> list[PathTaskSpec]:
    """Pick goals for the wanted levels, write the signs that realise those levels (module doc)."""
    openings = layout.openings
    n = len(openings)
    destinations = _destinations(layout, rng, 2 * n)
    reach = [destinations[2 * i : 2 * i + 2] for i in range(n)]  # the two destinations through opening i
    step = 1 if rng.random() < 0.5 else -1
    side = "right" if step == 1 else "left"  # side rows point to the next opening that way
    up_rows: list = [None] * n  # the row over opening i naming a destination through i
    side_rows: list = [None] * n  # the row over opening i - step pointing to a destination through i
    goals = rng.permutation(n)[: len(levels)]
    tasks = []
    for goal_index, level in zip(goals, levels):
        goal_index = int(goal_index)
        which = int(rng.integers(2))
        dest, other = reach[goal_index][which], reach[goal_index][1 - which]
        number = None if dest.service else int(rng.integers(dest.first, dest.last + 1))
        direct = level in (EASY, HARD)  # the cue hangs over the goal itself
        arrow = "up" if direct else side
        cue = dest.named_line(arrow, number) if level in (EASY, MEDIUM) else dest.range_line(arrow)
        if direct:
            up_rows[goal_index], side_rows[goal_index] = cue, _row(other, side, rng)
        else:
            up_rows[goal_index], side_rows[goal_index] = _row(other, "up", rng), cue
        template = INSTRUCTIONS[int(rng.integers(len(INSTRUCTIONS)))]
        start = float(rng.integers(0, 90))
        tasks.append(PathTaskSpec(
            template.format(goal=dest.goal_name(number)), goal_index, int(level), dest.goal_name(number),
            dest.sign_text(number), goal_index if direct else (goal_index - step) % n,
            tuple(wrap_yaw(start + 90.0 * k) for k in range(4)),
        ))
    for index in range(n):
        if up_rows[index] is None:
            first, second = reach[index] if rng.random() < 0.5 else reach[index][::-1]
            up_rows[index], side_rows[index] = _row(first, "up", rng), _row(second, side, rng)
    for index, opening in enumerate(openings):
        _hang_sign(layout, planner, rng, opening, (up_rows[index], side_rows[(index + step) % n]))
    return tasks


def _row(dest: Destination, arrow: str, rng: np.random.Generator) -> tuple[str, str, str]:
    """A sign row for a destination no task asks for: its name or its indirect cue."""
    if rng.random() < NAMED_SHARE:
        return dest.named_line(arrow, None if dest.service else dest.first)
    return dest.range_line(arrow)


def _destinations(layout: Layout, rng: np.random.Generator, n: int) -> list[Destination]:
    """Distinct destinations for ``n`` openings: disjoint number ranges and distinct services."""
    style = layout.scene_type
    services = list(rng.permutation(style.services))
    singular, plural = style.numbered[int(rng.integers(len(style.numbered)))]
    next_number = int(rng.integers(1, 20))
    result = []
    for _ in range(n):
        if services and rng.random() < 0.45:
            result.append(Destination(service=str(services.pop())))
        else:
            size = int(rng.integers(3, 10))
            result.append(Destination(singular, plural, next_number, next_number + size))
            next_number += size + int(rng.integers(1, 6))
    return result


def _hang_sign(layout: Layout, planner: AngularPlanner, rng, opening: Opening, lines) -> None:
    """Hang a direction sign in front of an opening (or on a gantry above a street).

    It hangs at most :data:`SIGN_DISTANCE` away with rows :data:`SIGN_ROW_DEG` high, so
    its text stays legible at the standard view (cap height >= 8 px at 448x252).
    """
    room = layout.room
    distance = min(room.wall_distance(opening.centre) - 0.25, SIGN_DISTANCE)
    row = distance * math.tan(math.radians(SIGN_ROW_DEG))
    height = row * (len(lines) + 0.15)
    width = max(SIGN_ROW_WIDTH * row, 2.0 * distance * math.tan(math.radians(opening.width_deg / 2.0)) * 0.95)
    width = min(width, 2.0 * distance * math.tan(math.radians(SIGN_MAX_DEG / 2.0)))
    bottom = opening.height + 0.15 if room.indoor else rng.uniform(3.5, 5.0)
    if room.indoor and bottom + height > room.height - 0.1:
        bottom = max(opening.height + 0.02, room.height - 0.1 - height)
    colour = ("blue", "green", "black", "yellow", "teal")[int(rng.integers(5))]
    spec = ObjectSpec("direction_sign", colour, "plain", "", int(rng.integers(1 << 30)), tuple(lines))
    sign = Placement(spec, opening.centre, distance, bottom, width, height, room.camera_height, "sign")
    planner.add_placement(sign)
    layout.placements.append(sign)
