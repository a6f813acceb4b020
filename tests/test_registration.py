"""Gymnasium ids: ``gymnasium.make`` / ``make_vec`` over suites named by spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import panoseek  # noqa: F401  (registers the ids)
from panoseek.envs.panorama import save_image
from panoseek.envs.task import HOS, HPS
from panoseek.registration import DEFAULT_SUITE, ENV_IDS

from conftest import smooth_panorama

VIEW = (64, 36)


@pytest.fixture(scope="module")
def suite_spec(tmp_path_factory) -> str:
    """A jsonl suite of two HOS and one HPS task on small panoramas."""
    root = tmp_path_factory.mktemp("suite")
    for seed in range(2):
        save_image(root / f"pano{seed}.png", smooth_panorama(128, seed=seed))
    lines = [
        {"image": "pano0.png", "instruction": "Find the red clock.", "kind": "HOS", "yaw_range": [80, 100],
         "pitch_range": [-5, 5], "levels": [2, 0, 2, 1]},
        {"image": "pano1.png", "instruction": "Find the blue bag.", "kind": "HOS", "yaw_range": [350, 20],
         "pitch_range": [-20, -10], "start_yaws": [0, 180], "levels": [0, 2]},
        {"image": "pano1.png", "instruction": "Go to gate 12.", "kind": "HPS", "yaw_range": [170, 190],
         "levels": [0, 1, 2, 3]},
    ]
    manifest = root / "tasks.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"jsonl:{manifest}"


def test_ids_are_registered_on_import() -> None:
    code = "import gymnasium, panoseek; print(sorted(k for k in gymnasium.registry if k.startswith('panoseek/')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sorted(ENV_IDS))


@pytest.mark.parametrize(
    "env_id, kinds, n_tasks",
    [
        ("panoseek/ObjectSearch-v0", {HOS}, 2),
        ("panoseek/PathSearch-v0", {HPS}, 1),
        ("panoseek/Search-v0", {HOS, HPS}, 3),
    ],
)
def test_make_builds_the_env_over_the_suite(suite_spec: str, env_id: str, kinds: set, n_tasks: int) -> None:
    env = gymnasium.make(env_id, suite=suite_spec, view_size=VIEW)
    try:
        tasks = env.unwrapped.tasks
        assert len(tasks) == n_tasks and {task.kind for task in tasks} == kinds
        obs, info = env.reset(seed=3, options={"task_index": 0, "start_index": 0})
        assert obs["image"].shape == (VIEW[1], VIEW[0], 3) and obs["image"].dtype == np.uint8
        assert obs["instruction"] == tasks[0].instruction and info["task_id"] == tasks[0].id
        assert env.observation_space.contains(obs)
        task = tasks[0]
        centre = task.yaw_range[0] + 5.0
        pitch = 0.0 if task.pitch_range is None else sum(task.pitch_range) / 2
        obs, reward, terminated, truncated, info = env.step(
            {"submit": 1, "yaw": np.float32(centre), "pitch": np.float32(pitch)}
        )
        assert terminated and not truncated and info["success"] and reward > 0
    finally:
        env.close()


def test_make_with_env_arguments(suite_spec: str) -> None:
    env = gymnasium.make("panoseek/Search-v0", suite=suite_spec, view_size=(32, 18), max_turns=2, crosshair=False)
    try:
        env.reset(seed=0)
        rotate = {"submit": 0, "yaw": np.float32(30.0), "pitch": np.float32(0.0)}
        env.step(rotate)
        *_, terminated, truncated, _ = env.step(rotate)
        assert truncated and not terminated
        assert env.unwrapped.view_size == (32, 18) and not env.unwrapped.crosshair
    finally:
        env.close()


def test_make_with_a_bad_suite_names_it(suite_spec: str, tmp_path: Path) -> None:
    from panoseek.scenes.suite import SuiteError

    with pytest.raises(SuiteError, match="unknown suite 'nope'"):
        gymnasium.make("panoseek/Search-v0", suite="nope:x")
    save_image(tmp_path / "pano.png", smooth_panorama(64))
    hos_only = tmp_path / "hos.jsonl"
    hos_only.write_text(json.dumps({"image": "pano.png", "instruction": "Find it.", "kind": "HOS",
                                    "yaw_range": [0, 10], "pitch_range": [0, 10]}))
    with pytest.raises(SuiteError, match=r"suite 'jsonl:.*hos.jsonl' has no HPS tasks"):
        gymnasium.make("panoseek/PathSearch-v0", suite=f"jsonl:{hos_only}")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec(suite_spec: str, mode: str) -> None:
    envs = gymnasium.make_vec(
        "panoseek/Search-v0", num_envs=2, vectorization_mode=mode, suite=suite_spec, view_size=VIEW
    )
    try:
        obs, info = envs.reset(seed=[0, 1])
        assert obs["image"].shape == (2, VIEW[1], VIEW[0], 3)
        assert len(obs["instruction"]) == 2 and obs["heading"].shape == (2, 2)
        actions = {"submit": np.array([0, 1]), "yaw": np.array([45.0, 90.0], np.float32), "pitch": np.zeros(2, np.float32)}
        obs, reward, terminated, truncated, info = envs.step(actions)
        assert terminated.tolist() == [False, True] and not truncated.any()
        assert reward.shape == (2,)
    finally:
        envs.close()


def test_vector_envs_with_equal_seeds_agree(suite_spec: str) -> None:
    def first_episode(mode: str) -> tuple:
        envs = gymnasium.make_vec("panoseek/Search-v0", num_envs=2, vectorization_mode=mode, suite=suite_spec,
                                  view_size=VIEW)
        try:
            obs, info = envs.reset(seed=[5, 6])
            return tuple(info["task_id"]), obs["image"].copy()
        finally:
            envs.close()

    sync_ids, sync_images = first_episode("sync")
    async_ids, async_images = first_episode("async")
    assert sync_ids == async_ids
    np.testing.assert_array_equal(sync_images, async_images)


@pytest.mark.slow
def test_default_suite_is_synth() -> None:
    assert DEFAULT_SUITE.startswith("synth:")
    env = gymnasium.make("panoseek/ObjectSearch-v0", view_size=VIEW)
    try:
        obs, info = env.reset(seed=0)
        assert info["kind"] == HOS and obs["image"].shape == (VIEW[1], VIEW[0], 3)
        assert all(task.kind == HOS for task in env.unwrapped.tasks)
    finally:
        env.close()
