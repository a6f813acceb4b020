"""PanoramaSearchEnv: spaces, episodes, invalid actions, rendering, seeding, vectorisation, memory."""

from __future__ import annotations

import functools
import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import make_task, smooth_panorama
from gymnasium.utils.env_checker import check_env

from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.protocol import ParsedAction
from panoseek.envs.wrappers import DiscreteRotations
from panoseek.envs.render import render_view

VIEW = (48, 27)
PANO = smooth_panorama(128)

def _tasks():
    return [
        make_task("hos", "HOS", panorama=PANO, yaw_range=(80.0, 100.0), pitch_range=(-5.0, 5.0)),
        make_task("hps", "HPS", panorama=PANO, yaw_range=(350.0, 10.0), instruction="Walk to the exit, go."),
    ]


def _env(**kwargs):
    return PanoramaSearchEnv(_tasks(), view_size=VIEW, **kwargs)


def _rotate(dyaw, dpitch):
    return {"submit": 0, "yaw": np.float32(dyaw), "pitch": np.float32(dpitch)}


def _submit(yaw, pitch):
    return {"submit": 1, "yaw": np.float32(yaw), "pitch": np.float32(pitch)}


def caught_warnings(function, *args, **kwargs) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        function(*args, **kwargs)
    return [str(warning.message) for warning in caught]


gym.register(
    "panoseek-test/TwoTasks-v0",
    entry_point=lambda **kwargs: PanoramaSearchEnv(_tasks(), view_size=VIEW, **kwargs),
    order_enforce=False,
    disable_env_checker=True,
)


def test_check_env_passes():
    """Through gymnasium.make so the checker also renders every declared render mode."""
    env = gym.make("panoseek-test/TwoTasks-v0", render_mode="rgb_array")
    assert env.unwrapped is env
    messages = caught_warnings(check_env, env)
    assert messages == []


def test_spaces_match_the_documented_interface():
    env = _env()
    assert env.action_space["submit"] == gym.spaces.Discrete(2)
    for key in ("yaw", "pitch"):
        angle = env.action_space[key]
        assert angle.shape == () and angle.dtype == np.float32 and angle.low == -360 and angle.high == 360
    image, heading = env.observation_space["image"], env.observation_space["heading"]
    assert image.shape == (VIEW[1], VIEW[0], 3) and image.dtype == np.uint8
    assert heading.low.tolist() == [0, -90] and heading.high.tolist() == [360, 90]
    text = env.observation_space["instruction"]
    assert {" ", ".", ","} <= set(text.character_set)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_unicode_instructions_stay_inside_the_text_space():
    task = make_task("u", panorama=PANO, instruction="Trouvez la tasse à café — près de l'évier.")
    env = PanoramaSearchEnv([task], view_size=VIEW)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_reset_options_pick_the_episode():
    env = _env(diagnostics=True)
    obs, info = env.reset(options={"task_index": 0, "start_index": 2})
    assert env.task.id == "hos" and env.heading == (180.0, 0.0) and env.episode == (0, 2)
    assert obs["heading"].tolist() == [180.0, 0.0] and obs["instruction"] == "Find the red clock."
    assert info["task_id"] == "hos" and info["kind"] == "HOS" and info["level"] == 2
    assert info["level_name"] == "Hard" and info["turn"] == 0 and info["submitted"] is None
    assert info["valid_action"] and not info["success"]
    expected = render_view(PANO, 180.0, 0.0, size=VIEW)
    centre_free = np.ones(expected.shape[:2], bool)
    centre_free[VIEW[1] // 2 - 4 : VIEW[1] // 2 + 5, VIEW[0] // 2 - 4 : VIEW[0] // 2 + 5] = False
    assert np.array_equal(obs["image"][centre_free], expected[centre_free])


@pytest.mark.parametrize(
    "options, field",
    [({"task_index": 2}, "task_index"), ({"task_index": -1}, "task_index"), ({"start_index": 4}, "start_index"),
     ({"task_index": 1.0}, "task_index"), ({"level": 1}, "level")],
)
def test_bad_reset_options_are_named(options, field):
    with pytest.raises(ValueError, match=field):
        _env().reset(options=options)


def test_seeded_reset_is_reproducible_and_samples_all_episodes():
    first = [(_env().reset(seed=s)[1]["task_id"], _env().reset(seed=s)[0]["heading"].tolist()) for s in range(3)]
    again = [(_env().reset(seed=s)[1]["task_id"], _env().reset(seed=s)[0]["heading"].tolist()) for s in range(3)]
    assert first == again
    env = _env()
    env.reset(seed=123)
    seen = {env.reset()[1]["task_id"] + str(env.heading) for _ in range(200)}
    assert len(seen) == 8  # 2 tasks x 4 starts, all drawn by the env's np_random


def test_rotation_wraps_yaw_and_clamps_pitch():
    env = _env()
    env.reset(options={"task_index": 0, "start_index": 0})
    obs, reward, terminated, truncated, info = env.step(_rotate(-45, 10))
    assert env.heading == (315.0, 10.0) and obs["heading"].tolist() == [315.0, 10.0]
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["turn"] == 1 and info["valid_action"] and info["feedback"].endswith("Decide your next action.")
    assert "your current direction (yaw,pitch) is (315,10)" in info["feedback"]
    env.step(_rotate(90, 200))
    assert env.heading == (45.0, 90.0)
    env.step(_rotate(360, -360))
    assert env.heading == (45.0, -90.0)


@pytest.mark.parametrize(
    "action, reason",
    [
        (_rotate(np.nan, 0), "finite"),
        (_rotate(0, np.inf), "finite"),
        (_rotate(400, 0), "finite angle in [-360, 360]"),
        ({"submit": 0, "yaw": 10**400, "pitch": 0}, "too large"),
        ({"submit": 0, "yaw": np.ones((1, 1)), "pitch": 0.0}, "'yaw' must be a number"),
        ({"submit": 2, "yaw": 0.0, "pitch": 0.0}, "'submit'"),
        ({"submit": True, "yaw": 0.0, "pitch": 0.0}, "'submit'"),
        ({"submit": 0, "yaw": np.zeros(3, np.float32), "pitch": 0.0}, "'yaw'"),
        ({"submit": 0, "yaw": 0.0, "pitch": "up"}, "'pitch'"),
        ({"submit": 0}, "keys"),
        ({"submit": 0, "yaw": 1.0, "pitch": 2.0, "extra": 1}, "keys"),
        ("rotate(30,0)", "keys"),
        (None, "keys"),
        (_submit(10, 95), "pitch"),
    ],
)
def test_invalid_actions_use_a_turn_and_change_nothing(action, reason):
    env = _env()
    before, _ = env.reset(options={"task_index": 0, "start_index": 1})
    obs, reward, terminated, truncated, info = env.step(action)
    assert not info["valid_action"] and reason in info["action_error"]
    assert info["turn"] == 1 and env.heading == (90.0, 0.0) and info["submitted"] is None
    assert np.array_equal(obs["image"], before["image"]) and obs["heading"].tolist() == before["heading"].tolist()
    assert not np.shares_memory(obs["image"], before["image"]), "each observation owns its pixels"
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert "not carried out" in info["feedback"]


def test_info_holds_only_what_a_player_knows_unless_diagnostics_are_asked_for():
    for env, privileged in ((_env(), False), (_env(diagnostics=True), True)):
        _, info = env.reset(options={"task_index": 0, "start_index": 1})
        _, _, _, _, after = env.step(_rotate(10, 0))
        for keys in (info, after):
            hidden = {"level", "level_name", "yaw_error", "pitch_error", "yaw_offset", "pitch_offset", "target_in_view"}
            assert (hidden <= set(keys)) == privileged and (hidden & set(keys) == set()) == (not privileged)


def test_target_in_view_follows_the_heading():
    env = _env(diagnostics=True)
    _, info = env.reset(options={"task_index": 0, "start_index": 1})  # looking at yaw 90: the target's centre
    assert info["target_in_view"]
    _, _, _, _, info = env.step(_rotate(180, 0))
    assert not info["target_in_view"]
    _, _, _, _, info = env.step(_rotate(-130, 0))  # yaw 140: the centre 50 degrees left, at the view's edge
    assert info["target_in_view"]


def test_submit_judges_the_submitted_angles_and_ends_the_episode():
    env = _env(diagnostics=True)
    env.reset(options={"task_index": 0, "start_index": 0})  # looking at yaw 0, far from the target
    _, reward, terminated, truncated, info = env.step(_submit(95, -3))
    assert terminated and not truncated and info["success"] and reward == 1.0
    assert info["submitted"] == (95.0, -3.0) and env.heading == (0.0, 0.0)
    assert info["yaw_error"] == 0.0 and info["pitch_error"] == 0.0 and info["yaw_offset"] == pytest.approx(5.0)
    assert info["feedback"].endswith("The episode is over.")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(_rotate(1, 1))


def test_failed_submit_reports_the_miss():
    env = _env(diagnostics=True)
    env.reset(options={"task_index": 0, "start_index": 0})
    _, reward, terminated, _, info = env.step(_submit(-90, 30))  # yaw 270
    assert terminated and not info["success"] and reward == 0.5  # format half only
    assert info["yaw_error"] == pytest.approx(150.0) and info["pitch_error"] == pytest.approx(10.0)


def test_errors_before_submission_describe_the_current_heading():
    env = _env(diagnostics=True)
    _, info = env.reset(options={"task_index": 1, "start_index": 1})  # HPS, target 0 +- 10, looking at 90
    assert info["yaw_error"] == pytest.approx(80.0) and info["pitch_error"] == 0.0
    assert info["yaw_offset"] == pytest.approx(90.0)


def test_running_out_of_turns_truncates_without_reward():
    env = PanoramaSearchEnv(_tasks(), view_size=VIEW, max_turns=3)
    env.reset(options={"task_index": 0, "start_index": 1})  # already facing the target
    results = [env.step(_rotate(0, 0)) for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True] and not any(r[2] for r in results)
    assert results[-1][1] == 0.0 and not results[-1][4]["success"]


def test_distance_reward_is_added_on_submission_when_enabled():
    plain, shaped = _env(), _env(distance_reward=True)
    rewards = []
    for env in (plain, shaped):
        env.reset(options={"task_index": 0, "start_index": 0})
        rewards.append(env.step(_submit(180, 0))[1])
    assert rewards[0] == 0.5 and 0.0 < rewards[1] - 0.5 < 1.0


def test_step_takes_only_its_action_space_and_standard_action_wrappers_compose():
    env = _env()
    env.reset(options={"task_index": 0, "start_index": 0})
    _, _, _, _, info = env.step(ParsedAction("rotate", 30.0, -5.0, well_formed=True))
    assert not info["valid_action"] and "expected a dict" in info["action_error"]

    class Halve(gym.ActionWrapper):  # any standard wrapper in between sees plain space actions
        def action(self, action):
            assert self.env.action_space.contains({k: np.asarray(v, np.float32) if k != "submit" else v for k, v in action.items()})
            return {**action, "yaw": action["yaw"] / 2}

    wrapped = DiscreteRotations(Halve(_env()), step_deg=30)
    wrapped.reset(options={"task_index": 0, "start_index": 0})
    _, _, _, _, info = wrapped.step(wrapped.action_names.index("right"))
    assert info["heading"] == (15.0, 0.0)


def test_step_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        _env().step(_rotate(1, 1))
    with pytest.raises(RuntimeError, match="reset"):
        _ = _env().task


def test_render_returns_the_current_view_with_a_green_crosshair():
    env = _env(render_mode="rgb_array")
    obs, _ = env.reset(options={"task_index": 0, "start_index": 3})
    frame = env.render()
    assert frame.shape == (VIEW[1], VIEW[0], 3) and np.array_equal(frame, obs["image"])
    cx, cy = VIEW[0] // 2, VIEW[1] // 2
    assert frame[cy, cx].tolist() == [0, 255, 0] and frame[cy, cx + 3].tolist() == [0, 255, 0]
    assert frame[cy - 3, cx].tolist() == [0, 255, 0]
    env.step(_rotate(10, 0))
    assert not np.array_equal(env.render(), frame)
    assert _env().render() is None


def test_crosshair_can_be_switched_off():
    env = _env(crosshair=False)
    obs, _ = env.reset(options={"task_index": 0, "start_index": 0})
    assert np.array_equal(obs["image"], render_view(PANO, 0.0, 0.0, size=VIEW))


def test_panoramas_load_lazily_and_only_a_few_stay_cached():
    loads = []

    def source(index):
        loads.append(index)
        return PANO

    tasks = [make_task(f"t{i}", panorama=functools.partial(source, i)) for i in range(6)]
    env = PanoramaSearchEnv(tasks, view_size=VIEW, panorama_cache=2)
    assert loads == []
    for index in (0, 1, 0, 2, 0, 1):
        env.reset(options={"task_index": index, "start_index": 0})
        env.step(_rotate(5, 0))  # re-rendering uses the cache, not a reload
    assert loads == [0, 1, 2, 1] and len(env._panoramas) == 2


def test_tasks_sharing_a_panorama_share_one_loaded_copy():
    loads = []

    def source(index):
        loads.append(index)
        return PANO

    # Six tasks on two panoramas, played interleaved as the runner does: two loads, not six.
    tasks = [make_task(f"t{i}", panorama=functools.partial(source, i % 2), panorama_id=f"scene{i % 2}") for i in range(6)]
    env = PanoramaSearchEnv(tasks, view_size=VIEW, panorama_cache=2)
    for index in (0, 1, 2, 3, 4, 5, 0, 3):
        env.reset(options={"task_index": index, "start_index": 0})
    assert loads == [0, 1] and len(env._panoramas) == 2


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"view_size": (0, 10)}, "view_size"),
        ({"view_size": (10.5, 10)}, "view_size"),
        ({"view_size": 448}, "view_size"),
        ({"fov_deg": 180}, "fov_deg"),
        ({"max_turns": 0}, "max_turns"),
        ({"render_mode": "human"}, "render_mode"),
        ({"panorama_cache": 0}, "panorama_cache"),
    ],
)
def test_bad_arguments_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PanoramaSearchEnv(_tasks(), **kwargs)


def test_bad_task_lists_are_refused():
    with pytest.raises(ValueError, match="empty"):
        PanoramaSearchEnv([])
    with pytest.raises(TypeError, match=r"tasks\[1\]"):
        PanoramaSearchEnv([_tasks()[0], "task.json"])


def _rollout(vector_env, seed, steps=6):
    vector_env.action_space.seed(seed)
    obs, _ = vector_env.reset(seed=seed)
    trace = [obs["heading"].copy()]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = vector_env.step(vector_env.action_space.sample())
        trace += [obs["heading"].copy(), reward.copy(), terminated.copy(), truncated.copy()]
        assert obs["image"].shape == (vector_env.num_envs, VIEW[1], VIEW[0], 3)
    vector_env.close()
    return trace


@pytest.mark.parametrize("vector_class", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
def test_vector_envs_from_factories_are_reproducible(vector_class):
    factory = functools.partial(PanoramaSearchEnv, _tasks(), view_size=VIEW, max_turns=3)
    first = _rollout(vector_class([factory] * 2), seed=7)
    again = _rollout(vector_class([factory] * 2), seed=7)
    other = _rollout(vector_class([factory] * 2), seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_works_in_both_modes(mode):
    envs = gym.make_vec("panoseek-test/TwoTasks-v0", num_envs=2, vectorization_mode=mode)
    obs, info = envs.reset(seed=3)
    assert obs["image"].shape == (2, VIEW[1], VIEW[0], 3) and list(info["task_id"]) != []
    obs, reward, *_ = envs.step(envs.action_space.sample())
    assert reward.shape == (2,)
    envs.close()


def test_ten_thousand_steps_do_not_grow_memory():
    """Rotations, invalid actions, submissions and resets over more tasks than the cache holds."""
    psutil = pytest.importorskip("psutil")
    tasks = [make_task(f"t{i}", panorama=smooth_panorama(128, seed=i)) for i in range(5)]
    env = PanoramaSearchEnv(tasks, view_size=(32, 18), panorama_cache=2)
    rng = np.random.default_rng(0)
    actions = [_rotate(30, -10), _rotate(np.nan, 0), _rotate(-45, 20), _submit(90, 0), _rotate(500, 0)]

    def run(steps):
        env.reset(seed=0)
        for _ in range(steps):
            *_, terminated, truncated, _ = env.step(actions[rng.integers(len(actions))])
            if terminated or truncated:
                env.reset()

    run(1_000)  # warm caches and allocator pools first
    process = psutil.Process()
    before = process.memory_info().rss
    run(10_000)
    grown_mb = (process.memory_info().rss - before) / 2**20
    assert grown_mb < 50, f"process grew by {grown_mb:.1f} MB over 10,000 steps"
