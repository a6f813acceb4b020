"""Time to generate one procedural panorama (goal: median <= 150 ms at 2048x1024 on one core).

Run: ``python benchmarks/scenes.py [--scenes 18] [--width 2048]``. OpenCV is pinned to
one thread so the figure is per core. Prints the median and quartiles of drawing a
panorama (layout built beforehand), of building a layout alone, and, as a baseline
measured in the same run, the time to read the same panorama back from a PNG file
(what the on-disk cache costs instead). Wall-clock and CPU time of the process are
both shown: on a shared, busy machine the CPU time is the figure per core.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from panoseek.envs.panorama import load_panorama, save_image
from panoseek.scenes.catalog import SCENE_TYPES
from panoseek.scenes.scene import build_scene


def _quartiles(samples: list[float]) -> str:
    q1, q2, q3 = np.percentile(np.array(samples) * 1000.0, [25, 50, 75])
    return f"median {q2:7.1f} ms  (quartiles {q1:.1f} - {q3:.1f} ms, n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=18, help="scenes timed (cycling through the 18 types)")
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3, help="timed renders per scene (after one warm-up)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    types = list(SCENE_TYPES)
    layout_times, render_times, render_cpu, read_times = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.scenes):
            start = time.perf_counter()
            scene = build_scene(5_000_000 + i, types[i % len(types)])
            layout_times.append(time.perf_counter() - start)
            panorama = scene.render(args.width)  # warm-up (first call builds cached ray grids)
            for _ in range(args.repeats):
                start, cpu = time.perf_counter(), time.process_time()
                scene.render(args.width)
                render_times.append(time.perf_counter() - start)
                render_cpu.append(time.process_time() - cpu)
            path = Path(folder) / f"{i}.png"
            save_image(path, panorama)
            start = time.perf_counter()
            load_panorama(path)
            read_times.append(time.perf_counter() - start)
    print(f"panorama {args.width}x{args.width // 2}, opencv threads = {cv2.getNumThreads()}")
    print(f"render panorama      {_quartiles(render_times)}  wall clock")
    print(f"render panorama      {_quartiles(render_cpu)}  CPU time")
    print(f"build layout + tasks {_quartiles(layout_times)}")
    print(f"baseline: read PNG   {_quartiles(read_times)}")
    ratio = statistics.median(render_times) / statistics.median(read_times)
    print(f"render / PNG read = {ratio:.2f}x (wall clock); goal: render median <= 150 ms on one core")


if __name__ == "__main__":
    main()
