"""The expert of the SFT data: its trajectories succeed when replayed, it is causal (never
turns toward what it has not seen), its thoughts are true of the view, and its sight
reports only what is inside the view."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import make_task
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.geometry import project_to_view, wrap_yaw
from panoseek.envs.protocol import PROMPT_FORMATS, parse_action
from panoseek.envs.rollout import episode_spec, play
from panoseek.training.experts import ExpertAgent
from panoseek.training.sight import SceneSight

VIEW = (112, 63)
TASKS = (0, 1, 2, 3, 4, 5, 8, 9)  # the first scenes of synth:val: object and path tasks, mixed levels


@pytest.fixture(scope="module")
def val():
    from panoseek.scenes import load_suite

    return load_suite("synth:val")


class Replay:
    """Replies from a recorded episode, in order."""

    def __init__(self, replies, prompt_format):
        self.replies, self.prompt_format = list(replies), prompt_format

    def reset(self, task_info):
        self.turn = 0

    def act(self, observation):
        self.turn += 1
        return self.replies[self.turn - 1]


def _play(tasks, agent, task_index, start_index, strict=True):
    env = PanoramaSearchEnv(tasks, view_size=VIEW, diagnostics=True)
    spec = episode_spec(tasks[task_index], task_index, start_index, 0)
    return play([env], [agent], [spec], strict=strict, keep_turns=True)[0]


@pytest.mark.parametrize("prompt_format", PROMPT_FORMATS)
def test_expert_trajectories_replayed_in_the_env_all_succeed(val, prompt_format):
    for index in TASKS:
        task = val[index]
        start = index % task.n_starts
        rollout = _play(val, ExpertAgent(prompt_format, SceneSight.from_task(task)), index, start)
        assert rollout.record["success"], (task.id, [turn.output for turn in rollout.turns])
        assert rollout.record["privileged"] == ["target"]
        replies = [turn.output for turn in rollout.turns]
        assert all(parse_action(reply, strict=True, prompt_format=prompt_format).well_formed for reply in replies)
        replayed = _play(val, Replay(replies, prompt_format), index, start)
        assert replayed.record["success"] and replayed.record["submitted"] == rollout.record["submitted"]
        assert replayed.record["privileged"] == []


def _moved(task):
    """The same task with its target window on the opposite side (the scene unchanged)."""
    y0, y1 = task.yaw_range
    return dataclasses.replace(task, yaw_range=(float(wrap_yaw(y0 + 180.0)), float(wrap_yaw(y1 + 180.0))))


def test_expert_never_turns_toward_the_target_before_seeing_it(val):
    for index in TASKS:
        task = val[index]
        for start in range(task.n_starts):
            real = _play(val, ExpertAgent("no_think", SceneSight.from_task(task)), index, start)
            tasks = list(val[:10])
            tasks[index] = _moved(task)
            moved = _play(tasks, ExpertAgent("no_think", SceneSight.from_task(task)), index, start)
            seen = [turn for turn in (real.record["first_seen_turn"], moved.record["first_seen_turn"]) if turn is not None]
            before = min(seen, default=real.record["turns"])
            # Until either target is in view, moving the target changes nothing the expert does.
            assert [t.output for t in real.turns[:before]] == [t.output for t in moved.turns[:before]], task.id
            assert real.record["first_seen_turn"] is not None


def test_object_thoughts_are_true_of_the_view(val):
    for index in (0, 1, 2, 5):
        task = val[index]
        for start in range(task.n_starts):
            rollout = _play(val, ExpertAgent("free_think", SceneSight.from_task(task)), index, start)
            first = rollout.record["first_seen_turn"]
            for number, turn in enumerate(rollout.turns):
                if number < first:
                    assert "The target is not in view." in turn.output
                else:
                    assert " is in view, " in turn.output


def test_sight_reports_only_what_is_inside_the_view(val):
    sight = SceneSight.from_task(val[0])
    rng = np.random.default_rng(0)
    for yaw, pitch in zip(rng.uniform(0, 360, 20), rng.uniform(-40, 40, 20)):
        seen = sight.in_view(yaw, pitch, 100.0, VIEW)
        for item in seen:
            x, y, front = project_to_view(item.yaw, item.pitch, yaw, pitch, 100.0, *VIEW)
            assert front and -0.5 <= x <= VIEW[0] - 0.5 and -0.5 <= y <= VIEW[1] - 0.5
        inside = {id(item.placement) for item in seen}
        for placement in sight._placements:
            if id(placement) not in inside:
                centre = sum(placement.pitch_range) / 2
                x, y, front = project_to_view(placement.yaw, centre, yaw, pitch, 100.0, *VIEW)
                assert not (front and -0.5 <= x <= VIEW[0] - 0.5 and -0.5 <= y <= VIEW[1] - 0.5)


@pytest.mark.parametrize("kind", ["HOS", "HPS"])
def test_without_scene_metadata_the_expert_scans_until_the_window_is_in_view(kind):
    task = make_task("plain", kind)  # a jsonl-like task: only the target window is known
    assert SceneSight.from_task(task) is None
    for start in range(task.n_starts):
        rollout = _play([task], ExpertAgent("free_think", None), 0, start)
        assert rollout.record["success"]
        first = rollout.record["first_seen_turn"]
        assert all("The target is not in view." in t.output for t in rollout.turns[:first])


def test_the_expert_needs_the_target_privilege():
    with pytest.raises(ValueError, match="target"):
        ExpertAgent().reset({"kind": "HOS", "instruction": "x", "start_yaw": 0.0, "fov_deg": 100.0,
                             "view_size": VIEW, "max_turns": 10})
