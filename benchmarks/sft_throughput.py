"""SFT throughput on this machine: samples/s and tokens/s of ``train_sft`` on expert rows.

    python benchmarks/sft_throughput.py                      # tiny model S, 16 episodes, 20 steps
    python benchmarks/sft_throughput.py --size M --steps 30 --view-size 448x252
    python benchmarks/sft_throughput.py --no-malloc          # glibc defaults, for comparison

It builds a tiny model and a small expert-data folder in a temporary directory, trains
``--steps`` steps and prints the median step time after the first two steps, samples/s
(rows per step / step time) and tokens/s (of the fixed-length, padded batches). Unless ``--no-malloc``, it re-runs itself with the malloc settings of
``panoseek train sft`` (panoseek.training.malloc).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="S", choices=("S", "M"))
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--view-size", default="112x63")
    parser.add_argument("--no-malloc", action="store_true", help="keep glibc's malloc defaults")
    args = parser.parse_args()

    from panoseek.training.malloc import MALLOC_ENV, malloc_settings_missing

    if not args.no_malloc and malloc_settings_missing():
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})

    import torch
    from transformers import TrainerCallback

    from panoseek.agents.tiny_model import build_tiny_model
    from panoseek.scenes import load_suite
    from panoseek.training.expert_data import build_expert_data
    from panoseek.training.sft import SFTOptions, train_sft

    class StepTimes(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, *unused, **kwargs):
            self.times.append(time.perf_counter())

    width, height = (int(v) for v in args.view_size.split("x"))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = build_tiny_model(root / "model", size=args.size, seed=0)
        build_expert_data(load_suite("synth:val"), root / "data", limit=args.episodes, view_size=(width, height),
                          progress=False)
        timer = StepTimes()
        options = SFTOptions(max_steps=args.steps, save_steps=args.steps, batch_size=args.batch_size)
        summary = train_sft(model, root / "data", root / "run", options, progress=False, callbacks=[timer])
    steps = [b - a for a, b in zip(timer.times, timer.times[1:])][1:]
    step = statistics.median(steps)
    samples = args.batch_size / step
    print(f"model {args.size}, views {args.view_size}, batch {args.batch_size} x {summary['length']} tokens (fixed), "
          f"{summary['rows']} rows, torch threads {torch.get_num_threads()}, "
          f"malloc settings {'off' if args.no_malloc else 'on'}")
    print(f"median step {step:.3f} s: {samples:.2f} samples/s, {samples * summary['length']:.0f} padded tokens/s")


if __name__ == "__main__":
    main()
