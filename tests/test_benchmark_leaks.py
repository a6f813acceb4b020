"""Adversarial content tests: agents that do not really search score at chance on synth.

Computed from tasks and scene layouts with the judge alone (panoseek.scenes.leaks): no
panorama is drawn, no episode is run. Cheats are fitted on a deterministic sample of
synth:train (every 8th scene) and scored on all of synth:val. Figures on synth:test:
``python benchmarks/leaks.py`` (docs/benchmark.md).
"""

from __future__ import annotations

import math

import pytest

from panoseek.agents.baselines import BLIND_OFFSETS, BlindAgent
from panoseek.envs.judge import is_success
from panoseek.envs.task import HOS, HPS
from panoseek.scenes import load_suite
from panoseek.scenes.leaks import (
    blind_success, blind_success_grid, category_detector, fit_blind_offsets, fit_sign_rule, random_yaw_chance, sign_rule_success,
)
from panoseek.scenes.synth import TASKS_PER_SCENE


def _se(p: float, n: int) -> float:
    return math.sqrt(p * (1.0 - p) / n)


@pytest.fixture(scope="module")
def val():
    return load_suite("synth:val")


@pytest.fixture(scope="module")
def train_sample():
    train = load_suite("synth:train")
    return [train[scene * TASKS_PER_SCENE + k] for scene in range(0, 1200, 8) for k in range(TASKS_PER_SCENE)]


def _episodes(tasks, kind):
    return sum(len(t.start_yaws) for t in tasks if t.kind == kind)


def test_blind_fixed_offset_fitted_on_train_scores_chance_on_val(train_sample, val):
    blind = blind_success(val, fit_blind_offsets(train_sample))
    chance = random_yaw_chance(val)
    for kind in (HOS, HPS):
        p = chance[kind][0]
        assert abs(blind[kind] - p) <= 2 * _se(p, _episodes(val, kind)), (kind, blind[kind], p)


def test_stored_blind_offsets_are_the_fit_on_train(train_sample):
    """The landscape is flat in yaw (starts ignore the target): the stored offsets need only score
    as well as a refit on the sample, up to the noise of a maximum over 360 yaws."""
    refit = fit_blind_offsets(train_sample)
    stored, best = blind_success(train_sample, BLIND_OFFSETS), blind_success(train_sample, refit)
    for kind in (HOS, HPS):
        assert stored[kind] >= best[kind] - 4 * _se(best[kind], _episodes(train_sample, kind)), kind
    assert abs(BLIND_OFFSETS[HOS][1] - refit[HOS][1]) <= 5  # the pitch is where the targets are


def test_the_blind_fit_counts_exactly_what_the_judge_accepts(val):
    tasks = val[:100]
    for kind in (HOS, HPS):
        grid, episodes = blind_success_grid(tasks, kind)
        for dyaw, pitch in ((0, 0), (37, -12), (359, 19), (180, -90)):
            judged = blind_success(tasks, {kind: (float(dyaw), float(pitch))})[kind]
            assert grid[dyaw, pitch + 90] == pytest.approx(judged * episodes), (kind, dyaw, pitch)


def test_sign_style_rule_fitted_on_train_picks_goals_at_random_opening_level(train_sample, val):
    success, random_opening = sign_rule_success(val, fit_sign_rule(train_sample))
    n = sum(t.kind == HPS for t in val)
    assert abs(success - random_opening) <= 2 * _se(random_opening, n), (success, random_opening)


def test_category_only_detector_cannot_score_by_a_look_alike(val):
    detector, by_chance = category_detector(val)
    assert detector == pytest.approx(by_chance, abs=1e-12)  # no look-alike centre in any judged window
    assert by_chance < 0.7  # look-alikes are common: the category alone does not find the target


def test_blind_agent_reads_only_kind_and_start_yaw(val):
    agent = BlindAgent()
    for task in val[:10]:
        agent.reset({"kind": task.kind, "start_yaw": task.start_yaws[1]})  # nothing else given
        action = agent.act({})
        dyaw, pitch = BLIND_OFFSETS[task.kind]
        assert action == {"submit": 1, "yaw": (task.start_yaws[1] + dyaw) % 360, "pitch": pitch}
        assert isinstance(is_success(task, action["yaw"], action["pitch"]), bool)
