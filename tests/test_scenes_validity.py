"""Every task of a split is answerable as stated (geometry over all of synth:val; pixels on a sample).

synth:val (400 tasks, 80 scenes) is checked whole: it is drawn from the same generator
and scene types as synth:test and train, at a size CI runs in seconds. Pixel checks
render panoramas (~0.15 s each), so they run on a spread sample.
"""

from __future__ import annotations

import numpy as np
import pytest

from panoseek.envs.geometry import project_to_view, yaw_distance
from panoseek.envs.judge import yaw_window
from panoseek.envs.render import render_view
from panoseek.envs.task import HOS, HPS
from panoseek.scenes import load_suite
from panoseek.scenes.legibility import (
    MAX_CROSSHAIR_COVER, MIN_CAP_PX, MIN_CLOCK_PX, MIN_SIDE_PX, cap_px, crosshair_cover, pixel_size, reads_detail,
)
from panoseek.scenes.levels import HARD, VIEW_FOV_DEG, VIEW_SIZE, box_visibility, hos_level
from panoseek.scenes.library import cap_fraction
from panoseek.scenes.synth import scene
from panoseek.scenes.visibility import visibility


@pytest.fixture(scope="module")
def val():
    return load_suite("synth:val")


def _target(task):
    return scene(task.metadata["scene_seed"], task.metadata["scene_type"]).layout.placements[task.metadata["target_index"]]


def test_object_targets_are_the_true_extent_seen_whole_from_their_centre(val):
    width, height = VIEW_SIZE
    for task in (t for t in val if t.kind == HOS):
        card = _target(task)
        assert np.allclose(task.yaw_range, card.yaw_range, atol=1e-3) and np.allclose(task.pitch_range, card.pitch_range, atol=1e-3)
        yaw, pitch = card.surface_directions()
        centre_pitch = sum(task.pitch_range) / 2
        x, y, front = project_to_view(yaw, pitch, yaw_window(task).centre, centre_pitch, VIEW_FOV_DEG, width, height)
        inside = front & (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
        assert inside.all(), task.id


def test_starts_are_four_integer_yaws_90_degrees_apart(val):
    for task in val:
        starts = np.array(task.start_yaws)
        assert len(starts) == 4 and np.array_equal(starts, np.round(starts)), task.id
        assert np.allclose(np.mod(starts - starts[0], 360.0), [0, 90, 180, 270]), task.id


def test_object_levels_match_visibility_and_hard_starts_miss_the_whole_box(val):
    for task in (t for t in val if t.kind == HOS):
        card = _target(task)
        for start, level in zip(task.start_yaws, task.levels):
            assert hos_level(float(visibility(card, [start])[0])) == level, (task.id, start)
            if level == HARD:  # the annotated box (a superset of the object) is out of view too
                assert box_visibility(task.yaw_range, task.pitch_range, [start])[0] == 0.0, (task.id, start)


def test_path_goal_lies_in_its_window_and_no_other_opening_does(val):
    for task in (t for t in val if t.kind == HPS):
        window = yaw_window(task)
        openings = task.metadata["openings"]
        goal = task.metadata["goal_opening"]
        assert window.contains(task.yaw_range[0]) and window.contains(task.yaw_range[1])
        assert [round(v, 3) for v in task.yaw_range] == openings[goal]
        for index, (y0, y1) in enumerate(openings):
            if index == goal:
                continue
            samples = y0 + np.linspace(0.0, (y1 - y0) % 360, 64)
            assert not np.any(window.contains(samples)), (task.id, index)


def test_path_cues_follow_the_level_definitions(val):
    for task in (t for t in val if t.kind == HPS):
        layout = scene(task.metadata["scene_seed"], task.metadata["scene_type"]).layout
        goal_name = task.metadata["goal_sign_text"].lower()
        signs = [p for p in layout.placements if p.role == "sign"]
        naming = [(p, line) for p in signs for line in p.spec.lines if line[2].lower() == goal_name]
        level = task.levels[0]
        goal_opening = layout.openings[task.metadata["goal_opening"]]
        if level in (0, 1):  # Easy, Medium: exactly one sign names the goal
            assert len(naming) == 1, task.id
            sign, (arrow, _, _) = naming[0]
            over_goal = yaw_distance(sign.yaw, goal_opening.centre) < 1e-6
            assert (arrow == "up" and over_goal) if level == 0 else (arrow in ("left", "right") and not over_goal)
        else:  # Hard, Extreme: no sign names it
            assert not naming, task.id


def _sample(val, kind, count):
    tasks = [t for t in val if t.kind == kind]
    return [tasks[i] for i in np.linspace(0, len(tasks) - 1, count).astype(int)]


def test_target_pixels_show_in_the_centred_view_and_never_in_a_hard_start(val):
    checked_hard = 0
    for task in _sample(val, HOS, 6):
        built = scene(task.metadata["scene_seed"], task.metadata["scene_type"])
        with_target = built.render()
        without = built.render(exclude=(task.metadata["target_index"],))
        centre = yaw_window(task).centre, sum(task.pitch_range) / 2
        view_with = render_view(with_target, *centre).astype(int)
        view_without = render_view(without, *centre).astype(int)
        assert (np.abs(view_with - view_without).sum(axis=2) > 30).sum() >= 10, task.id
        for start, level in zip(task.start_yaws, task.levels):
            if level == HARD:
                assert np.array_equal(render_view(with_target, start, 0.0), render_view(without, start, 0.0)), task.id
                checked_hard += 1
    assert checked_hard >= 3


def test_each_object_instruction_singles_out_its_target(val):
    from panoseek.scenes.hos import FAMILIES

    for task in (t for t in val if t.kind == HOS):
        layout = scene(task.metadata["scene_seed"], task.metadata["scene_type"]).layout
        target = _target(task).spec
        kind = task.metadata["instruction_type"]
        family = next((f for f in FAMILIES if target.category in f), {target.category})
        same_kind = [p.spec for p in layout.placements if p.spec.category in family]
        if kind == "category":
            assert len(same_kind) == 1, task.id
        elif kind == "attribute":  # no other object shares colour and pattern
            assert sum(s.colour == target.colour and s.pattern == target.pattern for s in same_kind) == 1, task.id
        elif kind == "text":
            assert sum(s.text == target.text for s in same_kind) == 1, task.id
            assert f"{target.text}" in task.instruction
        else:  # relation: an identical twin exists, so only the anchor tells them apart
            twins = [s for s in same_kind if (s.colour, s.pattern) == (target.colour, target.pattern)]
            assert len(twins) == 2, task.id
            assert task.metadata["attributes"]["anchor"] in {p.spec.category for p in layout.placements}


def _asked_about(task):
    """The target and its same-category look-alikes (the objects a task's legibility rules cover)."""
    layout = scene(task.metadata["scene_seed"], task.metadata["scene_type"]).layout
    return [p for p in layout.placements if p.spec.category == _target(task).spec.category]


def test_every_target_and_look_alike_is_legible_at_the_standard_view(val):
    for task in (t for t in val if t.kind == HOS):
        kind = task.metadata["instruction_type"]
        for card in _asked_about(task):
            width, height = pixel_size(card)
            assert min(width, height) >= MIN_SIDE_PX, (task.id, width, height)
            assert crosshair_cover(width, height) <= MAX_CROSSHAIR_COVER, task.id
            detail = reads_detail(card.spec, kind)
            if detail == "clock":
                assert min(width, height) >= MIN_CLOCK_PX, task.id
            elif detail == "text":
                assert cap_px(card.spec, height) >= MIN_CAP_PX, task.id


def test_direction_sign_text_is_legible_at_the_standard_view(val):
    for index in range(0, len(val), 5):  # one task per scene
        layout = scene(val[index].metadata["scene_seed"], val[index].metadata["scene_type"]).layout
        for sign in (p for p in layout.placements if p.role == "sign" and any(row[2] for row in p.spec.lines)):
            cap = cap_fraction(sign.spec, sign.width / sign.height) * pixel_size(sign)[1]
            assert cap >= MIN_CAP_PX, (val[index].id, sign.spec.lines, cap)


def test_no_look_alike_reaches_into_the_target_judged_window(val):
    for task in (t for t in val if t.kind == HOS):
        window = yaw_window(task)
        target = _target(task)
        for card in _asked_about(task):
            if card is not target:  # its whole yaw extent stays out of the window
                samples = card.yaw_range[0] + np.linspace(0.0, (card.yaw_range[1] - card.yaw_range[0]) % 360, 32)
                assert not np.any(window.contains(samples)), task.id


def test_every_opening_sign_follows_one_rule_whatever_its_role(val):
    """Two rows: an up arrow, then a side arrow that is the same for the whole scene."""
    for index in range(0, len(val), 5):
        layout = scene(val[index].metadata["scene_seed"], val[index].metadata["scene_type"]).layout
        assert 3 <= len(layout.openings) <= 5, val[index].id
        signs = [p for p in layout.placements if p.role == "sign"]
        assert sorted(s.yaw for s in signs) == pytest.approx(sorted(o.centre for o in layout.openings))
        arrows = {tuple(row[0] for row in sign.spec.lines) for sign in signs}
        assert arrows in ({("up", "left")}, {("up", "right")}), val[index].id


def test_test_unseen_scenes_have_three_to_five_openings():
    for task in load_suite("synth:test-unseen"):
        if task.kind == HPS:
            assert 3 <= len(task.metadata["openings"]) <= 5, task.id
