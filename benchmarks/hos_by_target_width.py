"""Object-search success by target width, for results folders of one suite.

The perception question of attention-guided cropping is whether small targets are found
more often; this splits each folder's HOS episodes at a target width (the yaw extent of
the target's box, from the suite's tasks) and prints success ± standard error per side::

    python benchmarks/hos_by_target_width.py results/vlm results/vlm-rel-att --suite synth:val --width 8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from panoseek.scenes import load_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="results folders (panoseek eval --out) of the same suite")
    parser.add_argument("--suite", default="synth:val", help="the suite the folders were played on")
    parser.add_argument("--width", type=float, default=8.0, help="split at this target width in degrees (default 8)")
    args = parser.parse_args()
    widths = {task.id: (task.yaw_range[1] - task.yaw_range[0]) % 360 for task in load_suite(args.suite) if task.kind == "HOS"}
    print(f"| results | HOS targets < {args.width:g}° | HOS targets >= {args.width:g}° |\n| --- | --- | --- |")
    for folder in args.folders:
        records = [json.loads(line) for line in (Path(folder) / "episodes.jsonl").read_text().splitlines() if line]
        cells = []
        for small in (True, False):
            group = [r for r in records if r["kind"] == "HOS" and (widths[r["task_id"]] < args.width) == small]
            share = sum(r["success"] for r in group) / len(group) if group else 0.0
            error = (share * (1 - share) / len(group)) ** 0.5 if group else 0.0
            cells.append(f"{100 * share:.1f} ± {100 * error:.1f} (n={len(group)})")
        print(f"| {folder} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
