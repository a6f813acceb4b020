"""Pixel sizes of synth targets at the standard view (448x252, 100°), per class.

Run: ``python benchmarks/legibility.py [--suite synth:test]``. For every object task's
target, centred, prints the min and median of its shorter side, and of the detail its
task reads: the cap height of text targets, the face of clocks. The rules they must
meet are in panoseek.scenes.legibility. Nothing is rendered.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from panoseek.envs.task import HOS
from panoseek.scenes import load_suite
from panoseek.scenes.legibility import cap_px, pixel_size, reads_detail
from panoseek.scenes.synth import scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="synth:test")
    args = parser.parse_args()
    sides, details = defaultdict(list), defaultdict(list)
    for task in (t for t in load_suite(args.suite) if t.kind == HOS):
        card = scene(task.metadata["scene_seed"], task.metadata["scene_type"]).layout.placements[task.metadata["target_index"]]
        width, height = pixel_size(card)
        detail = reads_detail(card.spec, task.metadata["instruction_type"])
        name = {"clock": "clock", "text": "text"}.get(detail, "screen" if card.spec.category == "screen" else "other")
        for group in (name, "all"):
            sides[group].append(min(width, height))
        if detail == "text":
            details[name].append(cap_px(card.spec, height))
        elif detail == "clock":
            details[name].append(min(width, height))
    print(f"{args.suite}: target sizes in px at 448x252, centred (min / median)")
    for name in ("text", "clock", "screen", "other", "all"):
        if sides[name]:
            line = f"{name:6s} n={len(sides[name]):4d}  shorter side {np.min(sides[name]):5.1f} / {np.median(sides[name]):5.1f}"
            if details[name]:
                what = "cap height" if name == "text" else "face"
                line += f"  {what} {np.min(details[name]):5.1f} / {np.median(details[name]):5.1f}"
            print(line)


if __name__ == "__main__":
    main()
