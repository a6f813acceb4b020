"""PPO (training/ppo.py): a few updates run, checkpoint, resume to the same state; the CLI and the agent."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import smooth_panorama
from panoseek.cli import main
from panoseek.envs.panorama import save_image
from panoseek.training.ppo import train
from panoseek.training.ppo_args import Args


def _suite(folder: Path) -> str:
    """Three panoramas with one object and one path task each."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for p in range(3):
        save_image(folder / f"p{p}.png", smooth_panorama(128, seed=p))
        lines.append({"image": f"p{p}.png", "instruction": f"Find the red clock {p}.", "kind": "HOS",
                      "yaw_range": [80, 120], "pitch_range": [-5, 5], "start_yaws": [0, 180], "levels": [2, 2],
                      "id": f"clock{p}"})
        lines.append({"image": f"p{p}.png", "instruction": "Go to gate 12.", "kind": "HPS", "yaw_range": [200, 230],
                      "start_yaws": [0, 90], "levels": [0, 1], "id": f"gate{p}"})
    (folder / "tasks.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"jsonl:{folder / 'tasks.jsonl'}"


def _args(tmp_path: Path, out: str, **overrides) -> Args:
    settings = dict(suite=_suite(tmp_path / "suite"), out=str(tmp_path / out), total_steps=3 * 2 * 8, num_envs=2,
                    num_steps=8, num_minibatches=2, view_size=(64, 36), working_set=2, swap_every=3, update_epochs=1,
                    checkpoint_every=10, progress=False, codebook=True, target_loss=0.5)
    settings.update(overrides)
    return Args(**settings)


def _rows(run: Path) -> list[dict]:
    with (run / "progress.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k != "sps"} for row in csv.DictReader(handle)]


def test_ppo_runs_checkpoints_and_resumes_to_the_same_state(tmp_path):
    straight = _args(tmp_path, "straight")
    train(straight)
    interrupted = _args(tmp_path, "resumed", total_steps=2 * 8)  # stops after one update
    train(interrupted)
    assert len(_rows(Path(interrupted.out))) == 1
    train(dataclasses.replace(interrupted, total_steps=straight.total_steps))  # the same command, longer

    a = torch.load(Path(straight.out) / "checkpoint.pt", weights_only=True)
    b = torch.load(Path(interrupted.out) / "checkpoint.pt", weights_only=True)
    assert a["loop"]["update"] == b["loop"]["update"] == 3
    for key, tensor in a["policy"]["state_dict"].items():
        assert torch.equal(tensor, b["policy"]["state_dict"][key]), key
    assert a["env"] == b["env"]
    assert _rows(Path(straight.out)) == _rows(Path(interrupted.out))
    assert (Path(straight.out) / "curves.png").stat().st_size > 0


def test_resuming_with_other_settings_is_refused(tmp_path):
    args = _args(tmp_path, "run", total_steps=16)
    train(args)
    with pytest.raises(ValueError, match="codebook=True"):
        train(dataclasses.replace(args, codebook=False))


def test_a_second_run_into_a_busy_folder_is_refused(tmp_path):
    import fcntl

    args = _args(tmp_path, "run", total_steps=16)
    Path(args.out).mkdir(parents=True)
    with (Path(args.out) / ".lock").open("w") as held:  # as another process training there holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="another training run is using this folder"):
            train(args)
    assert not (Path(args.out) / "progress.csv").exists()
    train(args)  # free again
    assert len(_rows(Path(args.out))) == 1


def test_cli_trains_and_the_ppo_agent_plays_under_eval(tmp_path):
    suite = _suite(tmp_path / "suite")
    run = tmp_path / "cli"
    assert main(["train", "ppo", "--suite", suite, "--out", str(run), "--total-steps", "32", "--num-envs", "4",
                 "--num-steps", "8", "--view-size", "64x36", "--working-set", "2", "--target-loss", "0.5",
                 "--quiet"]) == 0
    assert (run / "checkpoint.pt").is_file() and (run / "progress.csv").is_file()
    results = tmp_path / "eval"
    assert main(["eval", "--agent", "ppo", "--agent-arg", f"checkpoint={run / 'checkpoint.pt'}", "--suite", suite,
                 "--out", str(results), "--view-size", "128x72", "--quiet", "--batch-size", "3"]) == 0
    summary = json.loads((results / "summary.json").read_text())
    assert summary["overall"]["episodes"] == 12
    assert summary["overall"]["submitted_rate"] == 1.0  # the policy submits on its last turn at the latest
    assert main(["eval", "--agent", "ppo", "--agent-arg", f"checkpoint={run / 'checkpoint.pt'}",
                 "--agent-arg", "codebook=true", "--suite", suite, "--out", str(tmp_path / "bad"), "--quiet"]) == 2


def test_the_training_reward_adds_progress_shaping_and_the_csv_return_stays_the_envs(tmp_path):
    args = _args(tmp_path, "shaped", total_steps=2 * 8, progress_reward=0.5)
    train(args)
    rows = _rows(Path(args.out))
    assert rows[0]["target_loss"] not in ("", "None")
    from panoseek.training import ppo

    class Step:  # a vector env stand-in returning fixed rewards and progress
        action_names = ("submit", "right")

        def step(self, action):
            info = {"progress": np.array([45.0, -90.0]), "turn": np.array([1, 0]),
                    "target_direction": np.zeros((2, 2)), "final_info": {"success": np.array([False, True]),
                                                                          "turn": np.array([0, 3])}}
            return {}, np.array([0.0, 1.0]), np.array([False, True]), np.array([False, False]), info

    loop = {"done": torch.zeros(2)}
    finished = {"return": [], "success": [], "length": []}
    reward = ppo._env_turn(Step(), loop, np.array([1, 0]), finished, progress_reward=0.5)
    assert reward.tolist() == pytest.approx([0.25, 0.5])  # 0.5 per 90 degrees of progress, added to the env's
    assert finished == {"return": [1.0], "success": [True], "length": [3]}  # logged: the env's reward only


def test_negative_training_signal_weights_are_refused(tmp_path, capsys):
    for flag in ("--target-loss", "--progress-reward"):
        assert main(["train", "ppo", "--out", str(tmp_path / "run"), flag, "-1", "--quiet"]) == 2
        assert "must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written
