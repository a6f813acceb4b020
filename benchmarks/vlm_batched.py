"""Episodes per second of the language agent: lock-step batches vs one episode at a time.

Builds the tiny Qwen2.5-VL model offline, plays the same B episodes (text actions,
greedy decoding) through the rollout loop (:func:`panoseek.envs.rollout.play`) once one
episode at a time and once as one lock-step batch (``VLMAgent.act_batch``: one
``generate`` call per turn), checks that both produced exactly the same replies, and
prints both rates and their ratio (goal: >= 3x at B = 16 on CPU).

    python benchmarks/vlm_batched.py [--episodes 16] [--size S] [--max-turns 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from panoseek.agents.tiny_model import build_tiny_model
from panoseek.agents.vlm import VLMAgent, VLMPolicy
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.rollout import episode_spec, play
from panoseek.envs.task import HOS, HPS, Task


def panorama(seed: int, width: int = 512) -> np.ndarray:
    """A smooth random panorama (low-frequency noise upsampled), enough to give distinct views."""
    import cv2

    coarse = np.random.default_rng(seed).integers(0, 256, (8, 16, 3), dtype=np.uint8)
    return cv2.resize(coarse, (width, width // 2), interpolation=cv2.INTER_CUBIC)


def make_tasks(count: int) -> list[Task]:
    tasks = []
    for index in range(count):
        kind = HOS if index % 2 == 0 else HPS
        tasks.append(Task(
            id=f"bench{index}", kind=kind,
            instruction="Find the red clock." if kind == HOS else "Go to gate 12.",
            panorama=panorama(index), yaw_range=(80.0, 100.0),
            pitch_range=(-5.0, 5.0) if kind == HOS else None,
            start_yaws=(0.0,), levels=(0,),
        ))
    return tasks


def replies(rollouts) -> list[list[str]]:
    return [[turn.output for turn in rollout.turns] for rollout in rollouts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=16, help="B: episodes, all in one lock-step batch")
    parser.add_argument("--size", choices=("S", "M"), default="S", help="tiny model size")
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--history", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        policy = VLMPolicy.from_pretrained(
            build_tiny_model(folder, size=args.size), dtype="float32", max_new_tokens=args.max_new_tokens
        )
    tasks = make_tasks(args.episodes)
    specs = [episode_spec(task, index, 0, run_seed=0) for index, task in enumerate(tasks)]
    envs = [PanoramaSearchEnv(tasks, max_turns=args.max_turns, diagnostics=True) for _ in specs]

    def agents(count: int) -> list[VLMAgent]:
        return [VLMAgent(policy, history=args.history) for _ in range(count)]

    play(envs[:1], agents(1), specs[:1])  # warm-up
    start = time.perf_counter()
    single = [replies(play(envs[:1], agents(1), [spec]))[0] for spec in specs]
    single_s = time.perf_counter() - start

    start = time.perf_counter()
    batched = replies(play(envs, agents(len(specs)), specs))
    batched_s = time.perf_counter() - start

    assert batched == single, "batched and one-at-a-time greedy replies differ"
    turns = sum(len(replies) for replies in single)
    print(f"tiny model {args.size}, {torch.get_num_threads()} threads, B={args.episodes} episodes, "
          f"{turns} turns in all, {args.max_new_tokens} new tokens at most per turn")
    print(f"one at a time: {args.episodes / single_s:8.2f} episodes/s ({single_s:.2f} s)")
    print(f"batched:       {args.episodes / batched_s:8.2f} episodes/s ({batched_s:.2f} s)")
    print(f"speed-up: {single_s / batched_s:.1f}x (goal >= 3x at B=16); greedy replies identical: yes")


if __name__ == "__main__":
    main()
