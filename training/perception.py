"""A supervised perception warm-up for the PPO policy: where is the target in this view?

PPO's own auxiliary target loss learns slowly: in 200k environment steps it only fell
from ~1.0 to ~0.8 (docs/rl.md), because the views of a rollout are few, correlated and
mostly of the same 64 panoramas. Before PPO starts, this warm-up trains the same
network path (instruction embedding, CNN with FiLM, joint layer, one GRU step from a
zero state, target head) on the same loss, :meth:`SearchPolicy.target_loss`, over fresh
labelled views of the training suite: a batch of ``batch_size`` views, each of a random
task at a random heading, rendered as the environment renders its observations
(:func:`render_view` plus the crosshair: the OpenCV renderer's observation exactly; the
CUDA renderer matches it within rounding). Half the headings are drawn near the target
so that "in view" is not a rare label; pitches are 0, ±30 and ±60 (±90, three turns up
or down, is left out). The labels come from
:func:`panoseek.envs.judge.target_direction`: privileged, a training signal only, like
the PPO run's own target loss; the acting policy never reads the head.

Turn count and previous action are drawn at random too (they are inputs of the joint
layer and would otherwise be seen only at their first-turn values). The last
``HELD_OUT`` panoramas of the suite (at most a quarter of a suite of 8 or more, one of
a smaller one) are never trained on by the warm-up (PPO trains on them afterwards); a
fixed batch of their views measures held-out in-view accuracy and the offset error,
logged to ``warmup.csv``.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import optim
from tqdm import tqdm

from panoseek.agents.policy import SearchPolicy, target_head_labels
from panoseek.envs import judge
from panoseek.envs.env import draw_crosshair
from panoseek.envs.geometry import wrap_yaw
from panoseek.envs.panorama_cache import PanoramaCache
from panoseek.envs.render import render_view
from panoseek.envs.task import Task, panorama_groups
from panoseek.envs.vector import swap_oldest

#: Panoramas at the end of the suite kept out of the warm-up's training views (see the module doc).
HELD_OUT = 16
#: Pitches of the drawn headings and their probabilities (episodes start level and turn by 30).
PITCHES = (0.0, 30.0, -30.0, 60.0, -60.0)
PITCH_WEIGHTS = (0.6, 0.15, 0.15, 0.05, 0.05)
WARMUP_FIELDS = ("step", "views", "loss", "in_view_accuracy", "held_out_loss", "held_out_in_view_accuracy",
                 "held_out_offset_deg", "seconds")


class ViewSampler:
    """Random labelled views of ``tasks``: a working set of panoramas, one swapped every ``swap_every`` views."""

    def __init__(self, tasks: Sequence[Task], groups: Sequence[Sequence[int]], *, view_size: tuple[int, int],
                 fov_deg: float, crosshair: bool | int, rng: np.random.Generator, working_set: int = 32,
                 swap_every: int = 64) -> None:
        self.tasks, self.groups, self.rng = tasks, list(groups), rng
        self.view_size, self.fov_deg, self.crosshair = tuple(view_size), fov_deg, crosshair
        self.swap_every = swap_every
        self.cache = PanoramaCache(min(working_set, len(self.groups)))
        self.working = [int(g) for g in rng.choice(len(self.groups), self.cache.size, replace=False)]
        self.timings = {"load_s": 0.0}
        self._drawn = 0

    def batch(self, size: int) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """(images (B, H, W, 3) uint8, instructions, pitches (B,), target directions (B, 2) degrees)."""
        width, height = self.view_size
        images = np.zeros((size, height, width, 3), np.uint8)
        instructions, pitches, directions = [], np.zeros(size), np.zeros((size, 2))
        for row in range(size):
            task_index = self._draw_task()
            task = self.tasks[task_index]
            yaw, pitch = self._draw_heading(task)
            images[row] = render_view(self.cache.get(self.tasks, task_index, self.timings), yaw, pitch,
                                      fov_deg=self.fov_deg, size=self.view_size)
            draw_crosshair(images[row], self.crosshair)
            instructions.append(task.instruction)
            pitches[row] = pitch
            directions[row] = judge.target_direction(task, yaw, pitch)
        return images, instructions, pitches, directions

    def _draw_task(self) -> int:
        self._drawn += 1
        if self._drawn % self.swap_every == 0 and len(self.working) < len(self.groups):
            self.working = swap_oldest(self.working, len(self.groups), self.rng)
        group = self.groups[self.working[int(self.rng.integers(len(self.working)))]]
        return group[int(self.rng.integers(len(group)))]

    def _draw_heading(self, task: Task) -> tuple[float, float]:
        """Integer degrees, as the environment's headings are: half near the target, half anywhere."""
        pitch = float(self.rng.choice(PITCHES, p=PITCH_WEIGHTS))
        if self.rng.random() < 0.5:
            return float(self.rng.integers(360)), pitch
        centre_yaw, centre_pitch = judge.target_centre(task)
        yaw = wrap_yaw(round(centre_yaw + self.rng.uniform(-self.fov_deg / 2, self.fov_deg / 2)))
        near_pitch = min(PITCHES, key=lambda p: abs(p - centre_pitch))
        return float(yaw), near_pitch if self.rng.random() < 0.5 else pitch


def _forward(policy: SearchPolicy, batch: tuple, rng: np.random.Generator, max_turns: int,
             half_fov: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, in-view logits, labels as tensors) of one batch through embed, one GRU step and the head."""
    images, instructions, pitches, directions = batch
    size = len(images)
    turns = rng.integers(max(1, max_turns - 1), size=size)  # the last turn (only submit there) is left out
    previous = np.where(turns == 0, policy.no_action, rng.integers(policy.no_action, size=size))
    x = policy.inputs(images, instructions, pitches, turns, max_turns, previous)
    device = policy.actor.weight.device
    hidden, _ = policy.memory(x, policy.initial_state(size), torch.ones(size, device=device))
    direction = torch.as_tensor(directions, dtype=torch.float32, device=device)
    return policy.target_loss(hidden, direction, half_fov), policy.target(hidden), direction


def _scores(prediction: torch.Tensor, direction: torch.Tensor, half_fov: tuple[float, float]) -> dict[str, float]:
    """In-view accuracy and the mean offset error (degrees) over the views whose target is in view."""
    scale = direction.new_tensor(half_fov)
    _, in_view = target_head_labels(direction, half_fov)
    accuracy = ((prediction[:, 0] > 0) == in_view).float().mean().item()
    error = ((prediction[:, 1:] * scale - direction) ** 2).sum(dim=1).sqrt()
    offset = error[in_view].mean().item() if in_view.any() else float("nan")
    return {"in_view_accuracy": accuracy, "offset_deg": offset}


def warm_up_perception(policy: SearchPolicy, tasks: Sequence[Task], *, steps: int, batch_size: int,
                       learning_rate: float, max_turns: int, fov_deg: float, half_fov: tuple[float, float],
                       crosshair: bool | int, seed: int, out: Path, max_grad_norm: float = 0.5,
                       progress: bool = True) -> dict[str, Any]:
    """Train the policy's perception path on ``steps`` batches of labelled views (see module doc);
    writes ``out/warmup.csv`` and returns its last row."""
    if policy.target is None:
        raise ValueError("the perception warm-up trains the target head: use --target-loss > 0")
    groups = panorama_groups(tasks)
    if len(groups) < 2:
        raise ValueError("the perception warm-up holds out panoramas to measure itself: "
                         f"the suite needs at least 2, it has {len(groups)}")
    held_out_count = max(1, min(HELD_OUT, len(groups) // 4))
    rng = np.random.default_rng([seed, 1])
    common = {"view_size": policy.config.view_size, "fov_deg": fov_deg, "crosshair": crosshair}
    sampler = ViewSampler(tasks, groups[:-held_out_count], rng=rng, **common)
    held_out = ViewSampler(tasks, groups[-held_out_count:], rng=np.random.default_rng([seed, 2]),
                           working_set=held_out_count, **common).batch(256)
    optimizer = optim.Adam(policy.parameters(), lr=learning_rate, eps=1e-5)
    policy.train()
    rows, start = [], time.perf_counter()
    log_every = max(1, steps // 50)
    with (out / "warmup.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=WARMUP_FIELDS)
        writer.writeheader()
        for step in tqdm(range(1, steps + 1), desc="perception warm-up", unit="batch", disable=not progress):
            optimizer.param_groups[0]["lr"] = learning_rate * (1.0 - (step - 1) / steps)
            loss, prediction, direction = _forward(policy, sampler.batch(batch_size), rng, max_turns, half_fov)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
            optimizer.step()
            if step % log_every and step != steps:
                continue
            policy.eval()
            with torch.no_grad():
                held_loss, held_prediction, held_direction = _forward(
                    policy, held_out, np.random.default_rng([seed, 3]), max_turns, half_fov)
            policy.train()
            held = _scores(held_prediction, held_direction, half_fov)
            row = {"step": step, "views": step * batch_size, "loss": loss.item(),
                   "in_view_accuracy": _scores(prediction.detach(), direction, half_fov)["in_view_accuracy"],
                   "held_out_loss": held_loss.item(), "held_out_in_view_accuracy": held["in_view_accuracy"],
                   "held_out_offset_deg": held["offset_deg"], "seconds": time.perf_counter() - start}
            writer.writerow(row)
            handle.flush()
            rows.append(row)
    policy.eval()
    return rows[-1]
