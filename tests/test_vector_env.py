"""VectorSearchEnv: N discrete-rotation episodes stepped natively equal N single environments."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from conftest import make_task, smooth_panorama
from panoseek.envs import judge
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.vector import VectorSearchEnv
from panoseek.envs.wrappers import DiscreteRotations
from panoseek.envs.task import HOS, HPS

VIEW = (32, 18)
SETTINGS = dict(view_size=VIEW, max_turns=4)


def _tasks(panoramas: int = 3, per_panorama: int = 2) -> list:
    tasks = []
    for p in range(panoramas):
        image = smooth_panorama(128, seed=p)
        for k in range(per_panorama):
            kind = HOS if k % 2 == 0 else HPS
            tasks.append(make_task(f"p{p}-{k}", kind, panorama=image, panorama_id=f"pano{p}",
                                   yaw_range=(30.0 * k + 10 * p, 30.0 * k + 10 * p + 40.0),
                                   start_yaws=(0.0, 45.0, 200.0)[: 2 + k % 2], levels=(0, 1, 1)[: 2 + k % 2]))
    return tasks


def _actions(steps: int, num_envs: int, seed: int = 0) -> np.ndarray:
    """Random turns with some submits and some indices outside the table (invalid turns)."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(1, 7, (steps, num_envs))
    actions[rng.random((steps, num_envs)) < 0.2] = 0
    actions[rng.random((steps, num_envs)) < 0.05] = 7
    return actions


def _assert_obs_equal(a: dict, b: dict) -> None:
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["heading"], b["heading"])
    assert tuple(a["instruction"]) == tuple(b["instruction"])


def test_equals_sync_vector_env_over_a_seeded_rollout_with_autoreset():
    tasks, num_envs = _tasks(), 3
    vector = VectorSearchEnv(tasks, num_envs, threads=2, **SETTINGS)
    sync = SyncVectorEnv([lambda: DiscreteRotations(PanoramaSearchEnv(tasks, **SETTINGS)) for _ in range(num_envs)],
                         autoreset_mode=AutoresetMode.SAME_STEP)
    assert vector.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert vector.single_action_space == sync.single_action_space
    assert vector.action_names == sync.envs[0].action_names
    _assert_obs_equal(vector.reset(seed=5)[0], sync.reset(seed=5)[0])
    finished = 0
    for actions in _actions(40, num_envs):
        obs, reward, terminated, truncated, info = vector.step(actions)
        obs_s, reward_s, terminated_s, truncated_s, info_s = sync.step(actions)
        _assert_obs_equal(obs, obs_s)
        np.testing.assert_array_equal(reward, reward_s)
        np.testing.assert_array_equal(terminated, terminated_s)
        np.testing.assert_array_equal(truncated, truncated_s)
        for i in range(num_envs):  # Gymnasium keeps the info of a finished step in final_info
            source = info_s["final_info"] if terminated[i] or truncated[i] else info_s
            assert (info["valid_action"][i], info["success"][i]) == (source["valid_action"][i], source["success"][i])
        for i in np.flatnonzero(terminated | truncated):
            _assert_obs_equal(info["final_obs"][i], info_s["final_obs"][i])
            assert info["final_info"]["turn"][i] == info_s["final_info"]["turn"][i]
            finished += 1
    assert finished > 10 and vector.timings["render_s"] > 0


def test_working_set_episodes_replay_in_single_envs():
    """Episodes come from K panoramas at a time, the set rotates, and each episode replays exactly."""
    tasks, num_envs = _tasks(panoramas=5), 2
    vector = VectorSearchEnv(tasks, num_envs, working_set=2, swap_every=3, threads=1, **SETTINGS)
    singles = [DiscreteRotations(PanoramaSearchEnv(tasks, **SETTINGS)) for _ in range(num_envs)]
    obs, info = vector.reset(seed=1)

    def restart(i: int, info: dict) -> dict:
        options = {"task_index": int(info["task_index"][i]), "start_index": int(info["start_index"][i])}
        return singles[i].reset(options=options)[0]

    single_obs = [restart(i, info) for i in range(num_envs)]
    panoramas_seen = set()
    for actions in _actions(60, num_envs, seed=3):
        panoramas_seen.update(tasks[t].panorama_id for t in info["task_index"])
        obs, reward, terminated, truncated, info = vector.step(actions)
        for i in range(num_envs):
            o, r, term, trunc, _ = singles[i].step(int(actions[i]))
            assert (r, term, trunc) == (reward[i], terminated[i], truncated[i])
            if term or trunc:
                _assert_obs_equal(info["final_obs"][i], o)
                o = restart(i, info)
            single_obs[i] = o
            _assert_obs_equal({key: value[i] for key, value in obs.items()}, o)
        assert len(vector._working) == 2
    assert len(panoramas_seen) > 2  # the working set rotated


def test_state_round_trip_continues_identically():
    tasks = _tasks()
    env = VectorSearchEnv(tasks, 2, working_set=2, swap_every=2, threads=1, **SETTINGS)
    env.reset(seed=0)
    actions = _actions(20, 2, seed=7)
    for a in actions[:5]:
        env.step(a)
    state = env.get_state()
    copy = VectorSearchEnv(tasks, 2, working_set=2, swap_every=2, threads=1, **SETTINGS)
    copy.set_state(state)
    for a in actions[5:]:
        first, second = env.step(a), copy.step(a)
        _assert_obs_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])


def test_torch_renderer_matches_the_opencv_renderer_within_rounding():
    tasks = _tasks(panoramas=2)
    opencv = VectorSearchEnv(tasks, 2, threads=1, **SETTINGS)
    torch_env = VectorSearchEnv(tasks, 2, renderer="torch", device="cpu", **SETTINGS)
    a, b = opencv.reset(seed=2)[0], torch_env.reset(seed=2)[0]
    for actions in _actions(6, 2, seed=4):
        diff = np.abs(a["image"].astype(int) - b["image"].astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 8
        np.testing.assert_array_equal(a["heading"], b["heading"])
        a, b = opencv.step(actions)[0], torch_env.step(actions)[0]


def test_bad_arguments_and_actions_are_refused_clearly():
    tasks = _tasks(panoramas=1)
    with pytest.raises(ValueError, match="num_envs"):
        VectorSearchEnv(tasks, 0)
    with pytest.raises(ValueError, match="renderer"):
        VectorSearchEnv(tasks, 1, renderer="vulkan")
    for threads in (0, 1.5, True):
        with pytest.raises(ValueError, match=f"threads must be a positive integer, got {threads!r}"):
            VectorSearchEnv(tasks, 1, threads=threads)
    with pytest.raises(ValueError, match="step_deg"):
        VectorSearchEnv(tasks, 1, step_deg=0)
    env = VectorSearchEnv(tasks, 2, **SETTINGS)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2, np.int64))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="2 integers"):
        env.step(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="2 integers"):
        env.step(np.zeros(2))


def test_progress_and_target_direction_are_what_the_judge_says():
    tasks = _tasks()
    plain = VectorSearchEnv(tasks, 4, **SETTINGS)
    _, info = plain.reset(seed=3)
    assert "target_direction" not in info  # the labels cost nothing unless asked for
    assert not {"progress", "target_direction"} & set(plain.step(_actions(1, 4, seed=5)[0])[4])
    env = VectorSearchEnv(tasks, 4, training_labels=True, **SETTINGS)
    env.reset(seed=3)
    seen_positive = seen_negative = False
    for actions in _actions(12, 4, seed=5):
        before = np.stack([env._yaw, env._pitch], axis=1).copy()
        task_index = env._task.copy()
        _, _, _, _, info = env.step(actions)
        for i, action in enumerate(actions):
            progress = info["final_info"]["progress"][i] if info.get("_final_info", np.zeros(4, bool))[i] else info["progress"][i]
            if action in (0, 7):  # a submission or an invalid turn moves nothing
                assert progress == 0.0
                continue
            turn = env._dyaw[action], env._dpitch[action]
            after = ((before[i, 0] + turn[0]) % 360.0, float(np.clip(before[i, 1] + turn[1], -90.0, 90.0)))
            assert progress == pytest.approx(judge.progress(tasks[task_index[i]], tuple(before[i]), after))
            seen_positive |= progress > 0
            seen_negative |= progress < 0
        for i in range(4):  # the labels of the target head: from each returned observation's heading
            expected = judge.target_direction(tasks[env._task[i]], env._yaw[i], env._pitch[i])
            assert tuple(info["target_direction"][i]) == pytest.approx(expected)
    assert seen_positive and seen_negative
