"""TextActions (the H* text protocol) and DiscreteRotations (turns for RL policies)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import make_task, smooth_panorama
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.prompts import task_prompt
from panoseek.envs.wrappers import DiscreteRotations, TextActions

VIEW = (48, 27)
PANO = smooth_panorama(128)

# check_env warns whenever it is handed a wrapper, whatever the wrapper does ("The
# environment ... is different from the unwrapped version"); that notice is expected
# here and every other warning fails the check.
WRAPPER_NOTICE = "is different from the unwrapped version"


def _tasks():
    return [
        make_task("hos", "HOS", panorama=PANO, yaw_range=(80.0, 100.0), pitch_range=(-5.0, 5.0)),
        make_task("hps", "HPS", panorama=PANO, yaw_range=(350.0, 10.0)),
    ]


gym.register(
    "panoseek-test/WrappedTasks-v0",
    entry_point=lambda **kwargs: PanoramaSearchEnv(_tasks(), view_size=VIEW, **kwargs),
    order_enforce=False,
    disable_env_checker=True,
)


def _other_warnings(env) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    return [str(w.message) for w in caught if WRAPPER_NOTICE not in str(w.message)]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda env: TextActions(env),
        lambda env: TextActions(env, strict=True, prompt_format="grounding"),
        lambda env: DiscreteRotations(env),
    ],
)
def test_check_env_passes_on_wrappers(wrap):
    env = wrap(gym.make("panoseek-test/WrappedTasks-v0", render_mode="rgb_array"))
    assert _other_warnings(env) == []


def _text_env(**kwargs):
    return TextActions(PanoramaSearchEnv(_tasks(), view_size=VIEW), **kwargs)


def test_reset_shows_the_task_prompt_and_steps_show_feedback():
    env = _text_env(prompt_format="no_think")
    obs, info = env.reset(options={"task_index": 0, "start_index": 0})
    assert obs["prompt"].startswith(task_prompt("HOS", "Find the red clock.", "no_think"))
    assert obs["prompt"].endswith("At the start, your current direction (yaw,pitch) is (0,0).")
    assert env.observation_space.contains(obs)
    obs, reward, terminated, _, info = env.step("<answer>rotate(-45,0)</answer>")
    assert obs["prompt"] == info["feedback"] and "(315,0)" in obs["prompt"]
    assert info["valid_action"] and info["well_formed"] and reward == 0.0 and not terminated
    assert env.observation_space.contains(obs)


def test_lenient_replies_move_but_lose_the_format_reward():
    env = _text_env()
    env.reset(options={"task_index": 0, "start_index": 0})
    _, _, _, _, info = env.step("<answer> ROTATE(90.4, 0) </answer>")
    assert info["valid_action"] and not info["well_formed"] and info["heading"] == (90.4, 0.0)
    _, reward, terminated, _, info = env.step("<answer>submit(90,0)</answer>")  # no <think>
    assert terminated and info["success"] and reward == 0.5


def test_strict_mode_rejects_lenient_replies():
    env = _text_env(strict=True)
    env.reset(options={"task_index": 0, "start_index": 0})
    _, _, _, _, info = env.step("<answer>rotate(90,0)</answer>")
    assert not info["valid_action"] and env.unwrapped.heading == (0.0, 0.0)
    _, reward, _, _, info = env.step("<think>ok</think><answer>submit(90,0)</answer>")
    assert info["success"] and reward == 1.0


def test_bad_prompt_format_is_named():
    with pytest.raises(ValueError, match="prompt format 'json'"):
        _text_env(prompt_format="json")


_HOSTILE = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "rotate(", "submit(", ")", ",", "1e400",
                         "nan", "-inf", "9" * 500, "３０", "\u0660", "<answer><answer>", "\x00", "\ud7ff", " "]),
        max_size=40,
    ).map("".join),
    st.binary(max_size=50),
    st.none(),
    st.integers(),
)


@settings(max_examples=150, deadline=None)
@given(reply=_HOSTILE, strict=st.booleans())
def test_hostile_replies_are_invalid_and_leave_the_state_unchanged(reply, strict):
    env = _text_env(strict=strict)
    before, _ = env.reset(options={"task_index": 1, "start_index": 2})
    obs, reward, terminated, truncated, info = env.step(reply)
    # none of the pieces is a finite number, so no combination spells a valid action
    assert not info["valid_action"] and info["action_error"] and not info["well_formed"] and info["turn"] == 1
    assert env.unwrapped.heading == (180.0, 0.0) and info["submitted"] is None
    assert np.array_equal(obs["image"], before["image"])
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert env.observation_space.contains(obs), "the feedback quoting the reply stays inside the Text space"


def test_a_megabyte_reply_is_invalid():
    env = _text_env()
    env.reset(options={"task_index": 0, "start_index": 0})
    _, _, _, _, info = env.step("<think>" + "</think><answer>" * 70_000)
    assert not info["valid_action"] and len(info["feedback"]) < 500


def test_discrete_rotations_turn_and_submit_the_current_heading():
    env = DiscreteRotations(PanoramaSearchEnv(_tasks(), view_size=VIEW), step_deg=30, big_step_deg=90)
    assert env.action_names == ("submit", "right", "left", "up", "down", "big_right", "big_left")
    assert env.action_space == gym.spaces.Discrete(7)
    env.reset(options={"task_index": 0, "start_index": 0})
    headings = [env.step(a)[4]["heading"] for a in (1, 3, 2, 2, 4, 6, 5, 5)]
    assert headings == [(30.0, 0.0), (30.0, 30.0), (0.0, 30.0), (330.0, 30.0), (330.0, 0.0),
                        (240.0, 0.0), (330.0, 0.0), (60.0, 0.0)]
    env.step(1)  # 90
    _, reward, terminated, _, info = env.step(0)
    assert terminated and info["submitted"] == (90.0, 0.0) and info["success"] and reward == 1.0


def test_discrete_rotations_without_big_turns_and_bad_indices():
    env = DiscreteRotations(PanoramaSearchEnv(_tasks(), view_size=VIEW), step_deg=10, big_step_deg=None)
    assert env.action_space.n == 5
    env.reset(options={"task_index": 0, "start_index": 0})
    for bad in (5, -1, 1.0, "left"):
        _, _, _, _, info = env.step(bad)
        assert not info["valid_action"] and "discrete action" in info["action_error"]
    assert env.unwrapped.heading == (0.0, 0.0)
    with pytest.raises(ValueError, match="step_deg"):
        DiscreteRotations(PanoramaSearchEnv(_tasks(), view_size=VIEW), step_deg=0)


def test_wrappers_vectorise_asynchronously():
    def factory():
        return DiscreteRotations(PanoramaSearchEnv(_tasks(), view_size=VIEW, max_turns=4))

    envs = gym.vector.AsyncVectorEnv([factory] * 2)
    obs, _ = envs.reset(seed=1)
    obs, reward, terminated, truncated, info = envs.step(np.array([1, 0]))
    assert obs["image"].shape == (2, VIEW[1], VIEW[0], 3) and terminated.tolist() == [False, True]
    envs.close()
    text_envs = gym.vector.SyncVectorEnv([lambda: _text_env()] * 2)
    text_envs.reset(seed=0)
    _, _, _, _, info = text_envs.step(("<think>a</think><answer>rotate(10,0)</answer>", "junk"))
    assert info["valid_action"].tolist() == [True, False]
    text_envs.close()
