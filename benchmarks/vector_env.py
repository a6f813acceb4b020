"""What the natively batched vector env buys: steps per second against Gymnasium's SyncVectorEnv.

Measured in the same run over the same tasks and the same seeded action batches
(turns, ~15% submits):

1. **env only**: ``VectorSearchEnv`` (threads 1 and 2) against ``SyncVectorEnv`` of
   ``N`` copies of ``DiscreteRotations(PanoramaSearchEnv)``, both in ``SAME_STEP`` autoreset,
   the copies with their default panorama cache (4 per copy) or a cache that holds every
   task's panorama, each under OpenCV's default thread count and under
   ``cv2.setNumThreads(1)``: the ratios are against the fastest of these baselines.
2. **env + policy**: the same, plus one forward pass of the PPO policy
   (:class:`~panoseek.agents.policy.SearchPolicy`, torch with 1 thread) per step.
3. **working set**: what generating one synth panorama costs, and that cost spread
   over the episodes a panorama serves in the working set (``swap_every``).

Each config is measured ``--rounds`` times, interleaved with the others, and its median
is reported: the machines are shared and noisy. Ratios are printed against the fastest
synchronous baseline (goal: at least 3x).

    python benchmarks/vector_env.py                       # N=16, 128x72, 2 scenes of synth:train
    python benchmarks/vector_env.py --steps 100 --num-envs 8
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from panoseek.agents.policy import PolicyConfig, SearchPolicy, WordTokenizer
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.vector import VectorSearchEnv
from panoseek.envs.wrappers import DiscreteRotations
from panoseek.scenes import load_suite
from panoseek.scenes.raster import DEFAULT_WIDTH
from panoseek.scenes.synth import scene, scene_slot


def _turn(env, actions: np.ndarray, obs: dict, policy: SearchPolicy | None) -> dict:
    """One step of a vector env, after a policy forward pass on its observation when given."""
    if policy is not None:
        with torch.no_grad():
            x = policy.inputs(obs["image"], obs["instruction"], obs["heading"][:, 1], np.zeros(len(actions)), 10,
                              np.full(len(actions), policy.no_action))
            policy.get_action_and_value(x, policy.initial_state(len(actions)), torch.zeros(len(actions)))
    return env.step(actions)[0]


def steps_per_second(env, batches: np.ndarray, policy: SearchPolicy | None = None, warmup: int = 30) -> float:
    """Environment steps per second over ``batches[warmup:]`` (the first steps fill the panorama caches)."""
    obs, _ = env.reset(seed=0)
    for actions in batches[:warmup]:
        obs = _turn(env, actions, obs, policy)
    start = time.perf_counter()
    for actions in batches[warmup:]:
        obs = _turn(env, actions, obs, policy)
    return (len(batches) - warmup) * batches.shape[1] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300, help="vector steps per measurement")
    parser.add_argument("--scenes", type=int, default=2, help="synth:train scenes (5 tasks each)")
    parser.add_argument("--view-size", default="128x72")
    parser.add_argument("--swap-every", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measurements per config (median)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    view = tuple(int(v) for v in args.view_size.split("x"))
    n = args.num_envs
    tasks = list(load_suite("synth:train")[: 5 * args.scenes])
    rng = np.random.default_rng(0)
    batches = rng.integers(1, 7, (args.steps + 30, n))
    batches[rng.random(batches.shape) < 0.15] = 0

    def sync(cache: int) -> SyncVectorEnv:
        return SyncVectorEnv([lambda: DiscreteRotations(PanoramaSearchEnv(tasks, view_size=view, panorama_cache=cache))
                              for _ in range(n)], autoreset_mode=AutoresetMode.SAME_STEP)

    def vector(threads: int) -> VectorSearchEnv:
        return VectorSearchEnv(tasks, n, view_size=view, threads=threads)

    opencv_default = cv2.getNumThreads()
    configs = {f"sync (cache {cache}, cv2 {threads})": (lambda cache=cache: sync(cache), threads)
               for cache in (4, len(tasks)) for threads in dict.fromkeys((opencv_default, 1))}
    configs.update({f"vector threads={threads}": (lambda threads=threads: vector(threads), opencv_default)
                    for threads in (1, 2)})

    def measure(name: str, policy: SearchPolicy | None) -> float:
        """One measurement of a fresh env under its OpenCV thread setting (restored afterwards)."""
        make, opencv_threads = configs[name]
        cv2.setNumThreads(opencv_threads)
        env = make()
        try:
            return steps_per_second(env, batches, policy)
        finally:
            env.close()
            cv2.setNumThreads(opencv_default)

    tokenizer = WordTokenizer.from_texts(task.instruction for task in tasks)
    policy = SearchPolicy(PolicyConfig(vocabulary=tokenizer.vocabulary, action_names=vector(1).action_names,
                                       view_size=view)).eval()
    print(f"N={n}, views {view[0]}x{view[1]}, {len(tasks)} tasks of synth:train, {args.steps} vector steps per "
          f"measurement, median of {args.rounds} interleaved rounds, torch threads 1")
    for label, with_policy in (("env only", None), ("env + policy", policy)):
        runs: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.rounds):  # interleaved, so a noisy spell of the machine hits every config alike
            for name in configs:
                runs[name].append(measure(name, with_policy))
        median = {name: float(np.median(values)) for name, values in runs.items()}
        best_base = max(sps for name, sps in median.items() if name.startswith("sync"))
        print(f"{label}:")
        for name, sps in median.items():
            print(f"  {name:26s} {sps:8.0f} steps/s   x{sps / best_base:.2f} vs the fastest sync")

    seeds = [scene_slot("train", 1000 + i) for i in range(3)]
    start = time.perf_counter()
    for seed, type_name in seeds:
        scene(seed, type_name).render(DEFAULT_WIDTH)
    generate = (time.perf_counter() - start) / len(seeds)
    print(f"working set: generating one synth panorama takes {generate * 1000:.0f} ms; with swap_every="
          f"{args.swap_every} that is {generate / args.swap_every * 1000:.2f} ms per episode")


if __name__ == "__main__":
    main()
