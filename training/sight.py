"""What an expert sees in one view of a synth scene: the object cards and signs in it.

The expert of :mod:`panoseek.training.experts` may know what is in its current view,
never where unseen things are. :class:`SceneSight` is the only door to a scene's
layout it gets: asked about a heading, it answers with the things whose centre
projects inside that view (the rule the environment's ``target_in_view`` uses), with
where they appear in the picture. It is built by the data builder from a task's
metadata and handed to the expert's constructor, never through ``task_info``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from panoseek.envs.geometry import view_position
from panoseek.envs.task import Task
from panoseek.scenes.catalog import scene_type
from panoseek.scenes.layout import Placement
from panoseek.scenes.library import describe

_RANGE = re.compile(r"^(.+) (\d+)-(\d+)$")
_NUMBERED = re.compile(r"^(.+) (\d+)$")


@dataclass(frozen=True)
class Seen:
    """One thing in the view: what it is, its direction, and where it is in the picture."""

    placement: Placement
    yaw: float
    pitch: float
    x: float  # view pixel column of its centre
    y: float  # view pixel row of its centre

    @property
    def role(self) -> str:
        return self.placement.role

    def phrase(self) -> str:
        """A noun phrase for the thing, e.g. ``green striped backpack showing 'BAKERY'``."""
        spec = self.placement.spec
        text = describe(spec, colour=True, pattern=True)
        return f"{text} showing '{spec.text}'" if spec.text else text


@dataclass(frozen=True)
class SignRow:
    """One row of a direction sign: its arrow, pictogram and text."""

    arrow: str  # "up", "left", "right" or ""
    pictogram: str
    text: str

    def words(self) -> str:
        """How a person would read the row out, e.g. ``'Gates 10-20' (arrow right)``."""
        what = f"'{self.text}'" if self.text else f"{article(self.pictogram)} {self.pictogram} pictogram"
        return f"{what} (arrow {self.arrow})" if self.arrow else what


def _centre_pitch(placement: Placement) -> float:
    low, high = placement.pitch_range
    return (low + high) / 2.0


class SceneSight:
    """The object cards and signs of one synth scene, answered view by view.

    ``goal_sign_text`` is how a sign would write an HPS task's goal (``"Gate 12"``,
    ``"Taxis"``): what a person reads in the instruction. ``numbered`` holds the
    (singular, plural) names of numbered destinations of the scene type, so a range
    row (``"Gates 10-20"``) can be read as containing the goal.
    """

    def __init__(self, placements: list[Placement], goal_sign_text: str = "",
                 numbered: tuple[tuple[str, str], ...] = ()) -> None:
        self._placements = list(placements)
        self.goal_sign_text = goal_sign_text
        self._numbered = tuple(numbered)

    @classmethod
    def from_task(cls, task: Task) -> "SceneSight | None":
        """The sight of a synth task's scene; None for tasks without scene metadata."""
        from panoseek.scenes.synth import scene

        meta = task.metadata
        if "scene_seed" not in meta or "scene_type" not in meta:
            return None
        built = scene(int(meta["scene_seed"]), str(meta["scene_type"]))
        return cls(built.layout.placements, str(meta.get("goal_sign_text", "")),
                   scene_type(str(meta["scene_type"])).numbered)

    def in_view(self, yaw: float, pitch: float, fov_deg: float, size: tuple[int, int]) -> list[Seen]:
        """Everything whose centre projects inside the view at (yaw, pitch), largest first."""
        seen = []
        for placement in self._placements:
            centre_pitch = _centre_pitch(placement)
            position = view_position(placement.yaw, centre_pitch, yaw, pitch, fov_deg, *size)
            if position is not None:
                seen.append(Seen(placement, placement.yaw, centre_pitch, *position))
        return sorted(seen, key=lambda item: -item.placement.angular_size)

    def rows(self, sign: Seen) -> list[SignRow]:
        """The rows of a sign in view."""
        return [SignRow(*line) for line in sign.placement.spec.lines]

    def names_goal(self, row: SignRow) -> bool:
        """Whether a sign row points to the goal: by name, pictogram, or a number range holding it."""
        goal = self.goal_sign_text
        if not goal:
            return False
        if row.text == goal:
            return True
        if row.pictogram and not row.text:
            return row.pictogram == goal.lower()
        numbered, in_range = _NUMBERED.match(goal), _RANGE.match(row.text)
        if not (numbered and in_range):
            return False
        plural_of = dict(self._numbered)
        return (plural_of.get(numbered.group(1)) == in_range.group(1)
                and int(in_range.group(2)) <= int(numbered.group(2)) <= int(in_range.group(3)))


def article(phrase: str) -> str:
    """``a`` or ``an`` for a noun phrase."""
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def is_sign(seen: Seen) -> bool:
    """Whether a thing in view is a direction sign (which rows can be read from)."""
    return bool(seen.placement.spec.lines)


def where_in_view(x: float, y: float, size: tuple[int, int]) -> str:
    """Where a pixel lies in the picture, in words: ``on the left, high up``."""
    width, height = size
    horizontal = "on the left" if x < width / 3 else "on the right" if x > 2 * width / 3 else "near the centre"
    vertical = ", high up" if y < height / 3 else ", low down" if y > 2 * height / 3 else ""
    return horizontal + vertical


def describe_view(seen: list[Seen], limit: int = 3) -> str:
    """A short sentence naming the largest things in view (signs excluded)."""
    phrases = [f"{article(item.phrase())} {item.phrase()}" for item in seen if not is_sign(item)][:limit]
    if not phrases:
        return "I see bare walls and floor."
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"I see {listed}."
