"""Baseline agents (random, random_horizon, blind, sweep, oracle), their scorers, and the agent registry."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from conftest import make_task, smooth_panorama
from panoseek.agents.baselines import BLIND_OFFSETS, BlindAgent, OracleAgent, RandomAgent, SweepAgent
from panoseek.agents.registry import BUILTIN_AGENTS, AgentError, make_agent
from panoseek.agents.scorers import colour_scorer, colour_words, resolve_scorer, saliency_scorer
from panoseek.envs.eval.runner import run_benchmark
from panoseek.envs.rollout import EpisodeSettings
from panoseek.envs.geometry import lonlat_to_pixel
from panoseek.envs.eval.records import read_episodes
from panoseek.envs.task import HOS, HPS


def _info(**overrides):
    info = {"task_id": "t", "kind": HOS, "instruction": "Find the red clock.", "start_yaw": 0.0,
            "view_size": (96, 54), "fov_deg": 100.0, "max_turns": 10, "seed": 3}
    info.update(overrides)
    return info


# ------------------------------------------------------------------------ registry


def test_registry_builds_builtins_and_import_paths():
    assert isinstance(make_agent("random", seed=4), RandomAgent)
    assert isinstance(make_agent("panoseek.agents.baselines:SweepAgent", scorer="saliency"), SweepAgent)
    assert {"random", "random_horizon", "blind", "sweep", "oracle"} <= set(BUILTIN_AGENTS)
    assert isinstance(make_agent("blind"), BlindAgent)
    assert make_agent("random_horizon", seed=2).pitch == "horizon" and make_agent("random").pitch == "sphere"


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("randon", {}, "unknown agent 'randon'; built-in agents: .*oracle, ppo, random, random_horizon, sweep"),
        ("no_such_module_xyz:make", {}, "cannot import module 'no_such_module_xyz'"),
        ("panoseek.agents.baselines:Nothing", {}, "has no attribute 'Nothing'"),
        ("panoseek.agents.baselines:DEFAULT_PATTERN", {}, "is not callable"),
        ("random", {"temperature": 1.0}, "bad arguments \\['temperature'\\]"),
        ("panoseek.agents.scorers:colour_words", {"instruction": "red"}, "lacks reset\\(\\) and act\\(\\)"),
    ],
)
def test_registry_errors_name_the_problem(name, kwargs, message):
    with pytest.raises(AgentError, match=message):
        make_agent(name, **kwargs)


# -------------------------------------------------------------------------- random


def test_random_agent_is_seeded_and_submits_uniform_directions():
    agent = RandomAgent(max_rotations=0)
    pitches = []
    for seed in range(4000):
        agent.reset(_info(seed=seed))
        action = agent.act({})
        assert action["submit"] == 1 and 0 <= action["yaw"] < 360
        pitches.append(action["pitch"])
    pitches = np.array(pitches)
    # Uniform on the sphere: half of all directions lie within 30 degrees of the horizon
    # (a pitch uniform in degrees would put a third there).
    assert abs(np.mean(np.abs(pitches) < 30) - 0.5) < 0.03
    first = RandomAgent(seed=1)
    second = RandomAgent(seed=1)
    first.reset(_info(seed=9))
    second.reset(_info(seed=9))
    assert [first.act({}) for _ in range(4)] == [second.act({}) for _ in range(4)]


def test_random_horizon_submits_a_uniform_yaw_at_a_pitch_in_plus_minus_30():
    agent = make_agent("random_horizon", max_rotations=0)
    actions = []
    for seed in range(2000):
        agent.reset(_info(seed=seed))
        actions.append(agent.act({}))
    pitches = np.array([a["pitch"] for a in actions])
    yaws = np.array([a["yaw"] for a in actions])
    assert pitches.min() >= -30 and pitches.max() <= 30 and abs(np.mean(np.abs(pitches) < 15) - 0.5) < 0.05
    assert abs(np.mean(yaws < 180) - 0.5) < 0.05
    with pytest.raises(ValueError, match="pitch must be"):
        RandomAgent(pitch="uniform")


# --------------------------------------------------------------------------- blind


def test_blind_agent_submits_its_fixed_offset_from_the_start_on_the_first_turn():
    agent = BlindAgent()
    agent.reset({"kind": HOS, "start_yaw": 350.0})  # only what a person is told
    dyaw, pitch = BLIND_OFFSETS[HOS]
    assert agent.act({}) == {"submit": 1, "yaw": (350.0 + dyaw) % 360, "pitch": pitch}
    agent = BlindAgent(offsets={HOS: (10.0, 5.0), HPS: (-20.0, 0.0)})
    agent.reset(_info(kind=HPS, start_yaw=10.0))
    assert agent.act({}) == {"submit": 1, "yaw": 350.0, "pitch": 0.0}
    with pytest.raises(RuntimeError, match="before reset"):
        BlindAgent().act({})


def test_random_agent_submits_within_the_turn_budget():
    agent = RandomAgent(max_rotations=50)
    for seed in range(50):
        agent.reset(_info(seed=seed, max_turns=3))
        actions = [agent.act({}) for _ in range(3)]
        assert any(a["submit"] == 1 for a in actions)


# -------------------------------------------------------------------------- oracle


def test_oracle_submits_the_window_centre_even_through_the_seam():
    agent = OracleAgent()
    agent.reset(_info(target={"yaw_range": (350.0, 10.0), "pitch_range": (-10.0, 30.0)}))
    assert agent.act({}) == {"submit": 1, "yaw": 0.0, "pitch": 10.0}
    agent.reset(_info(kind=HPS, target={"yaw_range": (100.0, 120.0), "pitch_range": None}))
    assert agent.act({}) == {"submit": 1, "yaw": 110.0, "pitch": 0.0}
    with pytest.raises(ValueError, match="target"):
        OracleAgent().reset(_info())


# --------------------------------------------------------------------------- sweep


def _planted_panorama(yaw: float, pitch: float) -> np.ndarray:
    """A grey textured panorama with one red disc (about 8 degrees across) at (yaw, pitch)."""
    grey = smooth_panorama(512).mean(axis=2).astype(np.uint8)
    panorama = np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    lon = yaw if yaw < 180 else yaw - 360
    u, v = lonlat_to_pixel(lon, pitch, 512, 256)
    cv2.circle(panorama, (int(round(float(u))), int(round(float(v)))), 6, (220, 20, 20), -1)
    return panorama


def test_sweep_finds_a_red_target_behind_the_start(tmp_path):
    task = make_task("red", HOS, panorama=_planted_panorama(150.0, 12.0), instruction="Find the red clock.",
                     yaw_range=(147.0, 153.0), pitch_range=(9.0, 15.0))
    settings = EpisodeSettings(view_size=(128, 72))
    run_info = {"suite": "planted", "agent": "x"}
    sweep = run_benchmark([task], functools.partial(make_agent, "sweep"), tmp_path / "sweep",
                          run_info=run_info, settings=settings, progress=False)
    random = run_benchmark([task], functools.partial(make_agent, "random"), tmp_path / "random",
                           run_info=run_info, settings=settings, progress=False)
    assert sweep["overall"]["success"] == 1.0
    assert random["overall"]["success"] < 1.0
    for record in read_episodes(tmp_path / "sweep" / "episodes.jsonl"):
        assert record["turns"] <= 10 and record["yaw_error"] == 0.0


def test_sweep_covers_the_horizon_and_respects_a_short_budget(tmp_path):
    task = make_task("t", HPS, panorama=smooth_panorama(128))
    run_benchmark([task], functools.partial(make_agent, "sweep"), tmp_path, run_info={"agent": "sweep"},
                  settings=EpisodeSettings(view_size=(32, 18), max_turns=3), progress=False)
    for record in read_episodes(tmp_path / "episodes.jsonl"):
        assert record["turns"] == 3 and record["submitted"] is not None
    agent = SweepAgent()
    agent.reset(_info(start_yaw=30.0))
    yaws, heading = [], np.array([30.0, 0.0])
    image = np.zeros((54, 96, 3), np.uint8)
    for turn in range(8):
        yaws.append(heading[0] % 360)
        action = agent.act({"image": image, "heading": heading, "turn": turn})
        if action["submit"]:
            break
        heading = heading + (action["yaw"], action["pitch"])
    assert sorted(yaws[:4]) == [30.0, 120.0, 210.0, 300.0]  # four 100-degree views leave no gap


def test_colour_words_and_scorers():
    assert colour_words("Find the Gray bin next to the RED sign, not the red one") == ["grey", "red"]
    assert colour_words("Go to gate 12.") == []
    view = np.full((54, 96, 3), 120, np.uint8)
    view[10:20, 70:80] = (30, 60, 230)  # a blue patch at the upper right
    scores = colour_scorer(view, "the blue bag")
    row, col = np.unravel_index(np.argmax(scores), scores.shape)
    assert 10 <= row < 20 and 70 <= col < 80
    salient = saliency_scorer(view)
    row, col = np.unravel_index(np.argmax(salient), salient.shape)
    assert abs(row - 15) < 10 and abs(col - 75) < 10
    assert resolve_scorer("panoseek.agents.scorers:saliency_scorer") is saliency_scorer
    with pytest.raises(ValueError, match="unknown scorer 'sharpness'"):
        SweepAgent(scorer="sharpness")
