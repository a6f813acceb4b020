"""Renderer speed: render_view against py360convert and the naive per-step renderer.

Prints, in one run and on the same random float head poses, the median time per view
from a 4096 x 2048 panorama for

* ``render_view`` (panoseek.envs.render) on a ``PreparedPanorama`` (RGB plus an unused
  byte, the layout OpenCV samples fastest; the environment prepares each panorama once,
  and the time that takes is printed too), and on the plain RGB array,
* ``py360convert.e2p`` (bilinear),
* the floor: ``cv2.remap`` alone, as ``render_view`` calls it, with the maps made beforehand,
* the naive per-step approach of the released H* environment: every call builds all
  camera rays with numpy, rotates them, takes atan2/asin and samples with ``cv2.remap``
  on float maps (written out below as the baseline),

with the ratios, and the views per second of the batched torch renderer
(``render_views_torch``) on the CPU and, when present, on CUDA.

Example::

    python benchmarks/render.py --repeats 30 --sizes 1920x1080,1280x720,448x252
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import py360convert
import torch

from panoseek.envs import geometry
from panoseek.envs.render import PreparedPanorama, fast_maps, render_view
from panoseek.envs.render_torch import render_views_torch


def naive_view(panorama: np.ndarray, yaw: float, pitch: float, fov_deg: float, size: tuple[int, int]) -> np.ndarray:
    """Baseline: per-call rays, rotation, atan2/asin and float-map cv2.remap (as H* renders).

    Deliberately self-contained and unoptimised: it is what the speed goal is measured against.
    """
    width, height = size
    pano_h, pano_w = panorama.shape[:2]
    f = (width / 2.0) / np.tan(np.radians(fov_deg) / 2.0)
    xs, ys = np.meshgrid(np.arange(width) + 0.5 - width / 2.0, height / 2.0 - np.arange(height) - 0.5)
    rays = np.stack([xs, ys, np.full_like(xs, f)], axis=-1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    world = rays @ geometry.rotation_matrix(yaw, pitch).T
    lon = np.arctan2(world[..., 0], world[..., 2])
    lat = np.arcsin(np.clip(world[..., 1], -1.0, 1.0))
    map_x = ((lon / (2 * np.pi) + 0.5) * pano_w - 0.5).astype(np.float32)
    map_y = ((0.5 - lat / np.pi) * pano_h - 0.5).astype(np.float32)
    return cv2.remap(panorama, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


def py360_view(panorama: np.ndarray, yaw: float, pitch: float, fov_deg: float, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    fov = (fov_deg, geometry.vertical_fov_deg(fov_deg, width, height))
    return py360convert.e2p(panorama, fov, geometry.yaw_to_lon(yaw), pitch, (height, width), mode="bilinear")


def fast_view(panorama, yaw: float, pitch: float, fov_deg: float, size: tuple[int, int]) -> np.ndarray:
    return render_view(panorama, yaw, pitch, fov_deg=fov_deg, size=size)


def remap_floor(prepared: PreparedPanorama, yaw: float, pitch: float, fov_deg: float, size: tuple[int, int], clock):
    """Seconds of the cv2.remap call alone (render_view's sampling, maps made beforehand): the floor."""
    maps = fast_maps(yaw, pitch, fov_deg, size, prepared.shape)
    map_u, map_v = np.ascontiguousarray(maps[..., 0]), np.ascontiguousarray(maps[..., 1])
    view = np.empty((size[1], size[0], 4), np.uint8)
    start = clock()
    cv2.remap(prepared.rgbx, map_u, map_v, cv2.INTER_LINEAR, dst=view, borderMode=cv2.BORDER_WRAP)
    return clock() - start


def prepare_seconds(panorama: np.ndarray, clock, repeats: int = 5) -> float:
    """Median seconds to make a PreparedPanorama (once per panorama in the environment)."""
    seconds = []
    for _ in range(repeats):
        start = clock()
        PreparedPanorama(panorama)
        seconds.append(clock() - start)
    return float(np.median(seconds))


def time_interleaved(methods: dict, poses: np.ndarray, clock) -> dict:
    """Seconds per call of each method, taking turns pose by pose so that all of them see the
    same machine state (this kind of machine is shared and its speed drifts within a run).

    ``methods`` maps a name to (call(yaw, pitch) -> seconds, number of poses to time);
    each method is called once first as a warm-up.
    """
    seconds = {name: [] for name in methods}
    for name, (call, _) in methods.items():
        call(float(poses[0, 0]), float(poses[0, 1]))
    for i, (yaw, pitch) in enumerate(poses):
        for name, (call, count) in methods.items():
            if i < count:
                seconds[name].append(call(float(yaw), float(pitch)))
    return {name: np.array(values) for name, values in seconds.items()}


def timed(method, panorama, fov_deg: float, size: tuple[int, int], clock):
    """A call(yaw, pitch) that returns the seconds ``method`` took for that view."""
    def call(yaw: float, pitch: float) -> float:
        start = clock()
        method(panorama, yaw, pitch, fov_deg, size)
        return clock() - start
    return call


def batched_views_per_second(panorama: np.ndarray, batch: int, size, fov_deg: float, device: str, repeats: int, rng):
    pano = torch.from_numpy(panorama).to(device)
    best = []
    for i in range(repeats + 1):
        yaw = rng.uniform(0.0, 360.0, batch)
        pitch = rng.uniform(-90.0, 90.0, batch)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        render_views_torch(pano, yaw, pitch, fov_deg=fov_deg, size=size)
        if device == "cuda":
            torch.cuda.synchronize()
        if i:  # the first batch warms up (allocations, kernel compilation)
            best.append(time.perf_counter() - start)
    return batch / float(np.median(best))


def parse_sizes(text: str) -> list[tuple[int, int]]:
    try:
        sizes = [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must look like 1280x720,448x252, got {text!r}") from None
    if any(len(s) != 2 or min(s) <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"sizes must look like 1280x720,448x252, got {text!r}")
    return sizes


def parse_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=parse_sizes, default="1920x1080,1280x720,448x252",
                        help="view sizes WIDTHxHEIGHT, comma-separated (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=30,
                        help="random head poses timed per size and method (default: 30)")
    parser.add_argument("--py360-repeats", type=int, default=10, help="poses for the slow py360convert (default: 10)")
    parser.add_argument("--pano-width", type=int, default=4096, help="panorama width; height is half (default: 4096)")
    parser.add_argument("--fov", type=float, default=100.0, help="horizontal field of view in degrees (default: 100)")
    parser.add_argument("--threads", type=int, default=None,
                        help="cv2.setNumThreads for OpenCV (default: OpenCV's own choice, all cores)")
    parser.add_argument("--batches", type=parse_ints, default="64,256",
                        help="batch sizes for the torch renderer at 448x252 (default: 64,256)")
    parser.add_argument("--batch-repeats", type=int, default=3, help="timed batches per batch size (default: 3)")
    parser.add_argument("--no-torch", action="store_true", help="skip the batched torch renderer")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time (the goal's measure); cpu: this process's CPU time summed over its "
                             "threads, steadier on a machine shared with other jobs (default: wall)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the head poses and the panorama")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.py360_repeats < 1 or args.pano_width < 4 or args.pano_width % 2:
        parser.error("--repeats and --py360-repeats must be >= 1, --pano-width even and >= 4")

    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    rng = np.random.default_rng(args.seed)
    # Content does not change the timing; random noise defeats any caching of pixels.
    panorama = rng.integers(0, 256, (args.pano_width // 2, args.pano_width, 3), dtype=np.uint8)
    prepared = PreparedPanorama(panorama)
    print(f"panorama {args.pano_width}x{args.pano_width // 2}, fov {args.fov:g} deg, "
          f"cv2 threads {cv2.getNumThreads()}, "
          f"torch threads {torch.get_num_threads()}, {args.clock} clock; "
          f"poses: yaw uniform [0, 360), pitch uniform [-90, 90]")
    print(f"PreparedPanorama of it (once per panorama): {prepare_seconds(panorama, clock) * 1e3:.1f} ms")
    print()
    header = (f"{'view size':>10} | {'render_view ms':>14} | {'(p90 ms)':>8} | {'RGB array ms':>12} | "
              f"{'floor ms':>8} | {'naive ms':>8} | {'py360 ms':>8} | {'naive/ours':>10} | {'py360/ours':>10}")
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        poses = np.column_stack([rng.uniform(0.0, 360.0, args.repeats), rng.uniform(-90.0, 90.0, args.repeats)])
        methods = {
            "ours": (timed(fast_view, prepared, args.fov, size, clock), args.repeats),
            "plain": (timed(fast_view, panorama, args.fov, size, clock), args.repeats),
            "floor": (lambda yaw, pitch: remap_floor(prepared, yaw, pitch, args.fov, size, clock), args.repeats),
            "naive": (timed(naive_view, panorama, args.fov, size, clock), args.repeats),
            "py360": (timed(py360_view, panorama, args.fov, size, clock), args.py360_repeats),
        }
        timings = time_interleaved(methods, poses, clock)
        ours = timings["ours"]
        med = {name: float(np.median(t)) * 1e3 for name, t in timings.items()}
        if size == (448, 252):
            small_ms = med["ours"]
        p90 = np.percentile(ours, 90) * 1e3
        print(f"{size[0]:>5}x{size[1]:<4} | {med['ours']:>14.2f} | {p90:>8.2f} | {med['plain']:>12.2f} | "
              f"{med['floor']:>8.2f} | {med['naive']:>8.1f} | {med['py360']:>8.1f} | "
              f"{med['naive'] / med['ours']:>9.1f}x | {med['py360'] / med['ours']:>9.1f}x")

    if not args.no_torch:
        print()
        if (448, 252) in args.sizes:
            print(f"(render_view one view at a time, 448x252, from the table above: {1e3 / small_ms:.0f} views/s)")
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            for batch in args.batches:
                rate = batched_views_per_second(panorama, batch, (448, 252), args.fov, device, args.batch_repeats, rng)
                print(f"render_views_torch {device:>4} 448x252 batch {batch:>4}: {rate:>9.0f} views/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
