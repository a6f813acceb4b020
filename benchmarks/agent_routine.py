"""Does an agent look, or play a memorised routine? ``stats.routine_stats`` per kind for
results folders: the share of episodes that open with the most common three actions, the
share that end at the most common turn count, and the share of submissions made at the
heading the agent was looking at. A search that uses its views varies its opening with the
scene and submits where it looks; ``sweep`` (a fixed scan by design) and a blind routine do not::

    python benchmarks/agent_routine.py results/sweep results/tiny-searcher
"""

from __future__ import annotations

import argparse
from pathlib import Path

from panoseek.envs.eval.records import read_episodes
from panoseek.envs.eval.stats import routine_stats
from panoseek.envs.task import HOS, HPS


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="results folders (panoseek eval --out)")
    parser.add_argument("--opening", type=int, default=3, help="actions that make the opening (default 3)")
    args = parser.parse_args()
    missing = [str(folder) for folder in args.folders if not (folder / "episodes.jsonl").is_file()]
    if missing:
        parser.error(f"not a results folder (no episodes.jsonl): {', '.join(missing)}")
    print("| results | kind | episodes | top opening % | top opening | at the usual turn count % "
          "| submitted at heading % |")
    print("| --- | --- | ---: | ---: | --- | ---: | ---: |")
    for folder in args.folders:
        records = read_episodes(folder / "episodes.jsonl")
        for kind in (HOS, HPS):
            row = routine_stats([r for r in records if r["kind"] == kind], args.opening)
            print(f"| `{folder}` | {kind} | {row['episodes']} | {_percent(row['top_opening_rate'])} | "
                  f"{', '.join(row['top_opening'])} | {_percent(row['turns_mode_rate'])} | "
                  f"{_percent(row['submitted_at_heading_rate'])} |")


if __name__ == "__main__":
    main()
