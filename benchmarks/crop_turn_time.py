"""Benchmark: seconds per turn of the language agent with and without attention-guided cropping.

Builds the tiny Qwen2.5-VL model offline and plays the same lock-step batch of episodes
through the rollout loop once per ``crop`` option (greedy, the random model never
submits, so every episode plays ``--max-turns`` turns). Prints seconds per turn, the
part of it spent in the crop step (``VLMPolicy.crop_views``: the prefill forward with the
map, the generic prompt's short forward for relative maps, the boxes and crops), and a
plain prefill forward of the same batch for scale: the goal is a crop step of at most
about one extra forward pass per turn. Times are CPU seconds of this process on one
torch thread (``time.process_time``), so other work on a shared machine does not count.

    nice -n 10 python benchmarks/crop_turn_time.py [--episodes 8] [--max-turns 3] [--view 448x252]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vlm_batched import make_tasks  # noqa: E402

from panoseek.agents.cropping import CROP_METHODS  # noqa: E402
from panoseek.agents.tiny_model import build_tiny_model  # noqa: E402
from panoseek.agents.vlm import VLMAgent, VLMPolicy  # noqa: E402
from panoseek.envs.env import PanoramaSearchEnv  # noqa: E402
from panoseek.envs.rollout import episode_spec, play  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--view", default="448x252", help="view size WxH")
    args = parser.parse_args()
    view = tuple(int(v) for v in args.view.split("x"))
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        policy = VLMPolicy.from_pretrained(build_tiny_model(folder, size="S", seed=0), dtype="float32",
                                           max_new_tokens=args.max_new_tokens)
    tasks = make_tasks(args.episodes)
    specs = [episode_spec(task, index, 0, run_seed=0) for index, task in enumerate(tasks)]
    print(f"tiny model S, {args.episodes} episodes in one lock-step batch, {args.max_turns} turns, views {args.view}, "
          "CPU seconds on one thread")
    print(f"{'crop':>9} {'s/turn':>7} {'crop step s/turn':>16} {'prefill forward s':>17}")
    crop_views, spent = policy.crop_views, []

    def timed_crop_views(chats, crop):
        start = time.process_time()
        boxes = crop_views(chats, crop)
        spent.append(time.process_time() - start)
        return boxes

    policy.crop_views = timed_crop_views
    for crop in CROP_METHODS:
        envs = [PanoramaSearchEnv(tasks, view_size=view, max_turns=args.max_turns, diagnostics=True) for _ in specs]
        agents = [VLMAgent(policy, crop=crop) for _ in specs]
        spent.clear()
        start = time.process_time()
        rollouts = play(envs, agents, specs)
        turns = max(len(r.turns) for r in rollouts)
        per_turn = (time.process_time() - start) / turns
        inputs = policy.inputs([agent.chat for agent in agents])  # the last turn's prompts
        start = time.process_time()
        with torch.no_grad():
            policy.model(**inputs, logits_to_keep=1)
        prefill = time.process_time() - start
        print(f"{crop:>9} {per_turn:>7.2f} {sum(spent) / turns:>16.2f} {prefill:>17.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
