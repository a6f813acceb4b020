"""What the evaluation harness costs: whole-suite time, and overhead per step.

Prints two figures for the performance goals of ``panoseek eval``:

1. **Harness overhead per step**: episodes played in one process; from each record,
   ``total - render - agent`` (render includes decoding or generating the panorama),
   divided by the steps. Measured alongside the rollout loop alone over the same
   episodes (:func:`panoseek.envs.rollout.play` with the same agent, no runner, no
   files), in the same run. Goal: at most 1 ms per step.
2. **Whole-suite time**: ``panoseek eval`` on the suite with K workers, wall clock.
   Goal: ``synth:test`` (4,000 episodes) with ``sweep`` in at most 10 minutes with 2
   workers. With ``--limit`` the time for the full suite is extrapolated (and says so).

    python benchmarks/harness.py                     # synth:test, sweep, 2 workers
    python benchmarks/harness.py --limit 400 --overhead-episodes 100
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

from panoseek.agents.registry import make_agent
from panoseek.envs.eval.records import read_episodes
from panoseek.envs.eval.runner import make_env, plan_episodes, run_benchmark
from panoseek.envs.rollout import EpisodeSettings, play
from panoseek.scenes import load_suite


def loop_alone(tasks, agent_name: str, episodes, settings: EpisodeSettings) -> dict[str, float]:
    """The same episodes through the rollout loop alone (no runner, no records): the baseline."""
    env = make_env(tasks, settings)
    start = time.perf_counter()
    rollouts = [play([env], [make_agent(agent_name)], [episode.spec], keep_turns=False)[0] for episode in episodes]
    wall = time.perf_counter() - start
    steps = sum(r.record["turns"] for r in rollouts)
    agent = sum(r.record["timings"]["agent_s"] for r in rollouts)
    return {"wall": wall, "steps": steps, "render": env.timings["render_s"], "agent": agent}


def overhead(spec: str, agent_name: str, n_episodes: int, settings: EpisodeSettings) -> None:
    # The suite's first tasks, whole: few panoramas, so their one-off generation or
    # decoding is a small, cache-warm part of the figure (it is excluded anyway).
    suite = load_suite(spec)
    tasks, count = [], 0
    for task in suite:
        if count >= n_episodes:
            break
        tasks.append(task)
        count += task.n_starts
    episodes = plan_episodes(tasks)
    loop_alone(tasks, agent_name, episodes, settings)  # warm-up: caches, imports
    bare = loop_alone(tasks, agent_name, episodes, settings)
    with tempfile.TemporaryDirectory() as folder:
        run_benchmark(tasks, functools.partial(make_agent, agent_name), folder,
                      run_info={"suite": spec, "agent": agent_name}, settings=settings, progress=False)
        records = read_episodes(Path(folder) / "episodes.jsonl")
    steps = sum(r["turns"] for r in records)
    total, render, load, agent, env = (
        sum(r["timings"][key] for r in records) for key in ("total_s", "render_s", "load_s", "agent_s", "env_s")
    )
    per_step = [(r["timings"]["total_s"] - r["timings"]["render_s"] - r["timings"]["agent_s"]) / r["turns"]
                for r in records if r["turns"]]
    ms = 1000.0 / steps
    harness = (total - render - agent) * ms
    baseline = (bare["wall"] - bare["render"] - bare["agent"]) * 1000.0 / bare["steps"]
    print(f"== harness overhead: {len(records)} episodes, {steps} steps of {agent_name} on {spec}, "
          f"view {settings.view_size[0]}x{settings.view_size[1]}, one process")
    print(f"  per step: total {total * ms:.2f} ms = render {(render - load) * ms:.2f} + panorama load {load * ms:.2f}"
          f" + agent {agent * ms:.2f} + env other {(env - render) * ms:.2f} + runner {(total - agent - env) * ms:.2f}")
    print(f"  harness overhead (total - render - load - agent): {harness:.3f} ms/step "
          f"(median over episodes {1000 * statistics.median(per_step):.3f}); goal <= 1 ms")
    print(f"  baseline, the rollout loop alone with the same agent (no runner, no records): {baseline:.3f} ms/step "
          f"beyond render and agent; the runner adds {harness - baseline:+.3f} ms/step to it")


def suite_time(spec: str, agent_name: str, workers: int, limit: int | None, settings: EpisodeSettings) -> None:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        summary = run_benchmark(load_suite(spec), functools.partial(make_agent, agent_name),
                                folder, limit=limit, workers=workers, run_info={"suite": spec, "agent": agent_name},
                                settings=settings, progress=True)
        wall = time.perf_counter() - start
    n = summary["overall"]["episodes"]
    full = len(plan_episodes(load_suite(spec)))
    print(f"== whole suite: {agent_name} on {spec}, {workers} workers, view {settings.view_size[0]}x{settings.view_size[1]}")
    print(f"  {n} episodes in {wall:.1f} s ({n / wall:.1f} episodes/s), success {summary['overall']['success']:.1%}")
    if n < full:
        print(f"  extrapolated to all {full} episodes: {wall * full / n:.0f} s (goal <= 600 s for synth:test)")
    else:
        print(f"  all {full} episodes: {wall:.0f} s (goal <= 600 s for synth:test)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="synth:test")
    parser.add_argument("--agent", default="sweep")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, help="episodes of the whole-suite run (default: all)")
    parser.add_argument("--overhead-episodes", type=int, default=200)
    parser.add_argument("--view-size", default="448x252")
    parser.add_argument("--skip-suite", action="store_true", help="only measure the overhead")
    args = parser.parse_args()
    width, height = (int(v) for v in args.view_size.split("x"))
    settings = EpisodeSettings(view_size=(width, height))
    overhead(args.suite, args.agent, args.overhead_episodes, settings)
    if not args.skip_suite:
        suite_time(args.suite, args.agent, args.workers, args.limit, settings)


if __name__ == "__main__":
    main()
