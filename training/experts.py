"""The expert searcher whose trajectories SFT imitates: it searches as a careful person does.

What it may know (docs/training.md): the task info a person gets; the judged target
(privilege ``"target"``), used only to recognise the target once its centre is inside
the current view (the environment's ``target_in_view`` rule) and to centre it; and, for
synth tasks, a :class:`~panoseek.training.sight.SceneSight` that tells it which objects
and signs are in its current view. It never uses where unseen things are.

How it searches: it scans a ring of headings (seeded turn direction and yaw step; object
search looks a little down first, then up; path search looks a little up, where signs
hang). Object search: once the target is in view it turns to centre it, then submits.
Path search on synth scenes: it reads every sign in view; a row naming the goal (by name,
pictogram or a number range holding it) with an up arrow marks the way under that
sign; a side arrow sends it on to the next passage that way (the next sign it meets).
On suites without scene metadata it scans until the target window is in view.

Each reply is a well-formed H* reply in the agent's prompt format whose ``<think>`` says
what is in view and what the expert decides.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from panoseek.envs.geometry import AngularWindow, view_position, wrap_yaw, yaw_delta
from panoseek.envs.protocol import PROMPT_FORMATS, format_action, format_reply
from panoseek.envs.task import HOS
from panoseek.training.sight import SceneSight, Seen, describe_view, is_sign, where_in_view

STEPS = (80.0, 90.0)  # yaw step of a scan ring, drawn per episode
HOS_RINGS = (-10.0, 30.0)  # object search: pitch of the first ring, then the second
HPS_RING = 10.0  # path search scans a little above level, where the signs hang
FOLLOW_STEP = 60  # degrees turned per turn while following a side arrow
CENTRED_DEG = 1.0  # closer than this to the goal counts as centred


class ExpertAgent:
    """A privileged but causal searcher for expert trajectories (see the module docstring).

    Args:
        prompt_format: the reply layout (``free_think``, ``no_think``, ``grounding``).
        sight: what the scene shows in a view (synth tasks), or None where only the
            target window is known (``hstar:``, ``jsonl:`` suites).
    """

    privileges = ("target",)

    def __init__(self, prompt_format: str = "free_think", sight: SceneSight | None = None) -> None:
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
        self.prompt_format = prompt_format
        self.sight = sight

    def reset(self, task_info: dict[str, Any]) -> None:
        target = task_info.get("target")
        if not target or "yaw_range" not in target:
            raise ValueError("the expert needs the 'target' privilege (play it through panoseek.envs.rollout.play)")
        self.kind = task_info["kind"]
        self.fov = float(task_info["fov_deg"])
        self.size = tuple(int(v) for v in task_info["view_size"])
        self.max_turns = int(task_info["max_turns"])
        pitch_range = target.get("pitch_range")
        self.target = (
            AngularWindow.from_yaw_range(*target["yaw_range"], tolerance=0.0).centre,
            0.0 if pitch_range is None else AngularWindow.from_pitch_range(*pitch_range, tolerance=0.0).centre,
        )
        rng = np.random.default_rng(int(task_info.get("seed", 0)))
        direction = 1 if rng.random() < 0.5 else -1
        step = float(STEPS[int(rng.integers(len(STEPS)))])
        self.plan = scan_plan(float(task_info["start_yaw"]), direction, step, self.fov, self.kind)
        self.next = 0
        self.goal: tuple[float, float] | None = None
        self.follow: tuple[int, float] | None = None  # (direction, yaw of the sign whose arrow we follow)
        self.signs_seen: dict[float, Seen] = {}  # every sign seen so far, by direction
        self.reach = 0.0  # degrees beyond the followed sign that views have covered
        self.heading = (float(task_info["start_yaw"]), 0.0)
        self.reads_signs = self.kind != HOS and self.sight is not None and bool(self.sight.goal_sign_text)

    def act(self, observation: dict[str, Any]) -> str:
        yaw, pitch = (float(angle) for angle in observation["heading"])
        turns_left = self.max_turns - int(observation.get("turn", 0))
        self.heading = (yaw, pitch)
        seen = self.sight.in_view(yaw, pitch, self.fov, self.size) if self.sight is not None else []
        notes = self._look(yaw, pitch, seen)
        action, decision = self._decide(yaw, pitch, turns_left)
        observed = " ".join(notes)
        think = decision if self.prompt_format == "grounding" else f"{observed} {decision}"
        return format_reply(action, think=think, observation=observed, prompt_format=self.prompt_format)

    # ------------------------------------------------------------------ seeing

    def _look(self, yaw: float, pitch: float, seen: list[Seen]) -> list[str]:
        """Update the goal from what is in view; return sentences saying what that is."""
        if self.reads_signs:
            return self._read_signs(seen)
        position = self._target_position(yaw, pitch)
        notes = [describe_view(seen)] if self.sight is not None else []
        if position is None:
            lookalikes = [item for item in seen if item.role == "distractor"]
            if lookalikes:
                notes.append(f"The {lookalikes[0].phrase()} is not the one the instruction asks for.")
            notes.append("The target is not in view.")
            return notes
        self.goal = self.target
        names = [item.phrase() for item in seen if item.role == "target"]
        what = f"The {names[0]}" if names else "The target"
        notes.append(f"{what} is in view, {where_in_view(*position, self.size)}.")
        return notes

    def _target_position(self, yaw: float, pitch: float) -> tuple[float, float] | None:
        """Pixel of the target's centre if it is inside the view (the env's ``target_in_view``)."""
        return view_position(self.target[0], self.target[1], yaw, pitch, self.fov, *self.size)

    def _read_signs(self, seen: list[Seen]) -> list[str]:
        """Read the signs in view; a row naming the goal sets the goal or the way to follow."""
        signs = [item for item in seen if is_sign(item)]
        self.signs_seen.update({round(sign.yaw, 3): sign for sign in signs})
        if not signs:
            return ["No sign is in view."]
        notes = []
        for sign in signs:
            rows = self.sight.rows(sign)
            words = "; ".join(row.words() for row in rows)
            notes.append(f"A sign {where_in_view(sign.x, sign.y, self.size)} reads {words}.")
            if self.goal is not None or self.follow is not None:
                continue
            for row in rows:
                if not self.sight.names_goal(row):
                    continue
                if row.arrow in ("left", "right"):
                    self.follow = (1 if row.arrow == "right" else -1, sign.yaw)
                    self.reach = self.follow[0] * yaw_delta(sign.yaw, self.heading[0]) + self.fov / 2.0
                    notes.append(f"It points {row.arrow} to {self.sight.goal_sign_text}: the way is the next passage that way.")
                else:
                    self.goal = (sign.yaw, 0.0)
                    notes.append(f"It marks the passage under it as the way to {self.sight.goal_sign_text}.")
        if self.goal is None and self.follow is not None:
            notes += self._next_passage(signs)
        if self.goal is None and self.follow is None:
            notes.append(f"No sign here leads to {self.sight.goal_sign_text}.")
        return notes

    def _next_passage(self, signs: list[Seen]) -> list[str]:
        """Find the passage a side arrow points to: the first sign seen beyond the arrow's sign.

        Every passage has a sign over it. The scan from the arrow's sign towards the side it
        points has covered ``reach`` degrees (up to the view's leading edge), so the nearest sign seen inside
        that stretch (in this view or an earlier one) hangs over the next passage.
        """
        direction, origin = self.follow
        ahead = [((direction * yaw_delta(origin, sign.yaw)) % 360.0, sign) for sign in self.signs_seen.values()]
        ahead = [(delta, sign) for delta, sign in ahead if 5.0 < delta < min(self.reach, 355.0)]
        if not ahead:
            return []
        sign = min(ahead, key=lambda pair: pair[0])[1]
        self.goal = (sign.yaw, 0.0)
        if any(item.placement is sign.placement for item in signs):
            return [f"The next passage that way, under the sign {where_in_view(sign.x, sign.y, self.size)}, is the way."]
        return [f"The next passage that way is the one under the sign I saw at yaw {round(wrap_yaw(sign.yaw)) % 360}."]

    # ------------------------------------------------------------------ deciding

    def _decide(self, yaw: float, pitch: float, turns_left: int) -> tuple[str, str]:
        """The action text and the sentence that explains it."""
        if self.goal is not None:
            goal_yaw, goal_pitch = self.goal
            dyaw, dpitch = round(yaw_delta(yaw, goal_yaw)), round(goal_pitch - pitch)
            if abs(yaw_delta(yaw, goal_yaw)) <= CENTRED_DEG and abs(goal_pitch - pitch) <= CENTRED_DEG:
                heading = (round(wrap_yaw(round(yaw))) % 360, round(pitch))
                return format_action("submit", *heading), "It is under the green cross, so I submit this direction."
            if turns_left <= 1:
                goal = (round(wrap_yaw(goal_yaw)) % 360, round(goal_pitch))
                return format_action("submit", *goal), "This is my last turn, so I submit that direction."
            return format_action("rotate", dyaw, dpitch), f"I {_turn_words(dyaw, dpitch)} to bring it under the green cross."
        if turns_left <= 1:
            heading = (round(wrap_yaw(round(yaw))) % 360, round(pitch))
            return format_action("submit", *heading), "I have no turns left to search, so I submit where I look."
        if self.follow is not None:
            dyaw, dpitch = self.follow[0] * FOLLOW_STEP, round(HPS_RING - pitch)
            self.reach += FOLLOW_STEP
            return format_action("rotate", dyaw, dpitch), f"I {_turn_words(dyaw, dpitch)} to find that passage."
        while self.next < len(self.plan):
            plan_yaw, plan_pitch = self.plan[self.next]
            self.next += 1
            dyaw, dpitch = round(yaw_delta(yaw, plan_yaw)), round(plan_pitch - pitch)
            if dyaw or dpitch:
                return format_action("rotate", dyaw, dpitch), f"I {_turn_words(dyaw, dpitch)} to keep scanning."
        heading = (round(wrap_yaw(round(yaw))) % 360, round(pitch))
        return format_action("submit", *heading), "I have looked everywhere, so I submit where I look."


def scan_plan(start_yaw: float, direction: int, step: float, fov_deg: float, kind: str) -> list[tuple[float, float]]:
    """Headings of the scan after the start view: a ring that covers 360 degrees at
    ``fov_deg`` with overlap, and for object search a second ring at another pitch,
    swept back the other way."""
    step = min(step, fov_deg - 10.0)
    views = math.ceil((360.0 - fov_deg) / step) + 1
    yaws = [float(wrap_yaw(start_yaw + direction * k * step)) for k in range(views)]
    if kind != HOS:
        return [(yaw, HPS_RING) for yaw in yaws[1:]]
    first, second = HOS_RINGS
    return [(yaw, first) for yaw in yaws[1:]] + [(yaw, second) for yaw in reversed(yaws)]


def _turn_words(dyaw: int, dpitch: int) -> str:
    """``turn right 90 degrees and look up 40 degrees``."""
    parts = []
    if dyaw:
        parts.append(f"turn {'right' if dyaw > 0 else 'left'} {abs(dyaw)} degrees")
    if dpitch:
        parts.append(f"look {'up' if dpitch > 0 else 'down'} {abs(dpitch)} degrees")
    return " and ".join(parts) or "stay"
