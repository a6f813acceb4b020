"""The PPO policy's perception warm-up (training/perception.py): its views, labels, held-out split and resume."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from panoseek.cli import main
from panoseek.envs import judge
from panoseek.envs.agent import rotate
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.geometry import yaw_delta
from panoseek.envs.task import panorama_groups
from panoseek.scenes import load_suite
from panoseek.training import perception, ppo
from panoseek.training.perception import ViewSampler
from panoseek.training.ppo import train

from test_ppo import _args, _suite


def _recorded(sampler: ViewSampler) -> tuple[list, list]:
    """Record the (task index, heading) of every view the sampler draws."""
    picked, drawn = [], []
    draw_task, draw_heading = sampler._draw_task, sampler._draw_heading
    sampler._draw_task = lambda: picked.append(draw_task()) or picked[-1]
    sampler._draw_heading = lambda task: drawn.append(draw_heading(task)) or drawn[-1]
    return picked, drawn


def test_sampled_views_are_the_envs_observations_and_labels_are_the_judges(tmp_path):
    tasks = list(load_suite(_suite(tmp_path / "suite")))
    env = PanoramaSearchEnv(tasks, view_size=(64, 36))
    sampler = ViewSampler(tasks, panorama_groups(tasks), view_size=(64, 36), fov_deg=env.fov_deg,
                          crosshair=env.crosshair, rng=np.random.default_rng(0))
    picked, drawn = _recorded(sampler)
    images, instructions, pitches, directions = sampler.batch(12)
    for row, (task_index, (yaw, pitch)) in enumerate(zip(picked, drawn)):
        task = tasks[task_index]
        observation, _ = env.reset(options={"task_index": task_index, "start_index": 0})
        start_yaw = float(observation["heading"][0])
        observation, *_ = env.step(rotate(yaw_delta(start_yaw, yaw), pitch))
        assert tuple(observation["heading"]) == pytest.approx((yaw, pitch))
        assert np.array_equal(images[row], observation["image"])
        assert instructions[row] == task.instruction and pitches[row] == pitch
        assert tuple(directions[row]) == judge.target_direction(task, yaw, pitch)
        assert yaw == int(yaw) and pitch in perception.PITCHES


def test_half_the_headings_are_drawn_near_the_target(tmp_path):
    tasks = list(load_suite(_suite(tmp_path / "suite")))
    sampler = ViewSampler(tasks, panorama_groups(tasks), view_size=(64, 36), fov_deg=100.0, crosshair=True,
                          rng=np.random.default_rng(1))
    near = [abs(judge.target_direction(tasks[0], *sampler._draw_heading(tasks[0]))[0]) <= 50.0 for _ in range(2000)]
    # uniform headings alone would put the target within 50 degrees of yaw 100/360 = 28% of the time
    assert 0.58 < np.mean(near) < 0.70


def test_held_out_panoramas_are_never_trained_on(tmp_path, monkeypatch):
    tasks = list(load_suite(_suite(tmp_path / "suite")))
    groups = panorama_groups(tasks)
    assert [len(g) for g in groups] == [2, 2, 2]
    samplers: list[tuple[ViewSampler, list]] = []
    real_init = ViewSampler.__init__

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        samplers.append((self, _recorded(self)[0]))

    monkeypatch.setattr(ViewSampler, "__init__", recording_init)
    train(_args(tmp_path, "run", warmup_steps=3, warmup_batch=8))
    (training, trained), (held_out, measured) = samplers
    assert training.groups == groups[:2] and held_out.groups == groups[2:]
    assert len(trained) == 3 * 8 and set(trained) <= {0, 1, 2, 3}
    assert len(measured) == 256 and set(measured) <= {4, 5}  # the last panorama's tasks


def test_the_warm_up_trains_the_perception_path_and_a_rerun_reuses_it(tmp_path, monkeypatch):
    calls = []
    real = ppo.warm_up_perception
    monkeypatch.setattr(ppo, "warm_up_perception", lambda *a, **k: calls.append(1) or real(*a, **k))
    before = {}
    real_init = ppo.SearchPolicy.__init__

    def recording_init(self, config):
        real_init(self, config)
        before.update({k: v.clone() for k, v in self.state_dict().items()})

    monkeypatch.setattr(ppo.SearchPolicy, "__init__", recording_init)
    straight = _args(tmp_path, "straight", warmup_steps=4, warmup_batch=8, total_steps=32)  # codebook on
    train(straight)
    run = Path(straight.out)
    with (run / "warmup.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert int(rows[-1]["step"]) == 4 and all(0.0 <= float(r["held_out_in_view_accuracy"]) <= 1.0 for r in rows)
    warmed = torch.load(run / "warmup.pt", weights_only=True)["policy"]["state_dict"]
    for name in ("cnn.0.weight", "target.weight", "words.weight"):
        assert not torch.equal(warmed[name], before[name]), name
    for name in ("actor.weight", "critic.weight"):
        assert torch.equal(warmed[name], before[name]), name  # the warm-up never trains acting or values
    assert len(calls) == 1

    # Killed before its first PPO checkpoint: the rerun loads warmup.pt and ends where the straight run did.
    final = torch.load(run / "checkpoint.pt", weights_only=True)
    (run / "checkpoint.pt").unlink()
    train(straight)
    assert len(calls) == 1
    again = torch.load(run / "checkpoint.pt", weights_only=True)
    for key, tensor in final["policy"]["state_dict"].items():
        assert torch.equal(tensor, again["policy"]["state_dict"][key]), key
    assert final["env"] == again["env"]

    # Other warm-up settings in the same folder: the stored warm-up is not reused.
    (run / "checkpoint.pt").unlink()
    train(dataclasses.replace(straight, warmup_steps=2))
    assert len(calls) == 2


def test_old_checkpoints_without_the_newer_settings_resume(tmp_path):
    args = _args(tmp_path, "run", total_steps=16)
    train(args)
    path = Path(args.out) / "checkpoint.pt"
    data = torch.load(path, weights_only=True)
    assert set(ppo.ADDED_SETTINGS) <= set(data["args"])
    for key in ppo.ADDED_SETTINGS:
        del data["args"][key]
    torch.save(data, path)
    train(dataclasses.replace(args, total_steps=32))
    assert torch.load(path, weights_only=True)["loop"]["update"] == 2


@pytest.mark.parametrize("flags,message", [
    (["--warmup-steps", "5", "--target-loss", "0"], "needs --target-loss > 0"),
    (["--warmup-steps", "-1"], "--warmup-steps must be >= 0"),
    (["--warmup-steps", "5", "--warmup-lr", "0"], "--warmup-lr must be > 0, got 0.0"),
])
def test_bad_warm_up_settings_are_refused(tmp_path, capsys, flags, message):
    suite = _suite(tmp_path / "suite")
    code = main(["train", "ppo", "--suite", suite, "--out", str(tmp_path / "run"), "--quiet", *flags])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
