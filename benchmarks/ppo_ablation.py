"""PPO runs of two (or more) settings over several seeds: learning curves and evaluated success.

Each group is one setting (e.g. with and without the codebook) trained with several seeds
by ``panoseek train ppo``. The figure shows each group's training success (per update,
smoothed over ``--window`` updates) as the mean over its seeds with a band of one standard
error; the table gives each seed's ``panoseek eval`` success and the mean +- s.e. over
seeds (``stats.mean_and_stderr``), overall and per task kind. Evaluations of one table must
share a suite fingerprint and episode count, so that every seed was scored on the same
episodes.

    python benchmarks/ppo_ablation.py \\
        --group plain=runs/plain-s0,runs/plain-s1,runs/plain-s2 \\
        --group codebook=runs/codebook-s0,runs/codebook-s1,runs/codebook-s2 \\
        --evals plain=results/plain-s0,results/plain-s1,results/plain-s2 \\
        --evals codebook=results/codebook-s0,results/codebook-s1,results/codebook-s2 \\
        --out docs/ppo-codebook-ablation.png
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from panoseek.envs.eval import stats


def _groups(items: list[str], flag: str) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for item in items:
        name, sep, folders = item.partition("=")
        if not sep or not name or not folders:
            raise SystemExit(f"{flag} takes NAME=DIR[,DIR...], got {item!r}")
        groups[name] = [Path(folder) for folder in folders.split(",")]
    return groups


def _success_curve(run: Path, window: int) -> tuple[np.ndarray, np.ndarray]:
    path = run / "progress.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: no progress.csv (not a panoseek train ppo run folder)")
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["success"] not in ("", "None")]
    steps = np.array([int(row["global_step"]) for row in rows])
    success = np.array([float(row["success"]) for row in rows])
    kernel = np.ones(min(window, len(success))) / min(window, len(success))
    return steps[len(kernel) - 1:], np.convolve(success, kernel, mode="valid")


def plot(groups: dict[str, list[Path]], out: Path, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 3.8), dpi=100)
    for name, runs in groups.items():
        curves = [_success_curve(run, window) for run in runs]
        length = min(len(steps) for steps, _ in curves)
        steps = curves[0][0][:length]
        for run, (other, _) in zip(runs, curves):
            if not np.array_equal(other[:length], steps):
                raise SystemExit(f"{run}: its updates fall at other environment steps than {runs[0]}'s "
                                 "(other --num-envs/--num-steps, or updates without finished episodes)")
        values = np.stack([success[:length] for _, success in curves])
        mean = values.mean(axis=0)
        stderr = values.std(axis=0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros_like(mean)
        axes.plot(steps, 100 * mean, label=f"{name} ({len(runs)} seeds)")
        axes.fill_between(steps, 100 * (mean - stderr), 100 * (mean + stderr), alpha=0.25)
    axes.set_xlabel("environment steps")
    axes.set_ylabel(f"training success % ({window}-update mean)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)


def cell(values: list[float | None]) -> str:
    """Mean ± s.e. over seeds in percent (``stats.mean_and_stderr``); "-" without values."""
    result = stats.mean_and_stderr(values)
    if result["mean"] is None:
        return "-"
    stderr = "" if result["stderr"] is None else f" ± {100 * result['stderr']:.1f}"
    return f"{100 * result['mean']:.1f}{stderr}"


def table(evals: dict[str, list[Path]]) -> str:
    summaries = {}
    for name, folders in evals.items():
        for folder in folders:
            path = folder / "summary.json"
            if not path.is_file():
                raise SystemExit(f"{path}: no summary.json (run panoseek eval first)")
            summaries[(name, folder)] = json.loads(path.read_text())
    identities = {(s["suite"], s["fingerprint"], s["overall"]["episodes"], tuple(s["view_size"]), s["max_turns"])
                  for s in summaries.values()}
    if len(identities) != 1:
        raise SystemExit(f"the evaluations did not score the same episodes: {sorted(identities)}")
    suite, fingerprint, episodes, view_size, max_turns = identities.pop()
    lines = [f"`{suite}` (fingerprint `{fingerprint}`), {episodes} episodes per seed, {view_size[0]}x{view_size[1]} "
             f"views, {max_turns} turns; success %:", "",
             "| setting | per seed (overall) | overall | HOS | HPS |", "|---|---|---|---|---|"]
    for name, folders in evals.items():
        runs = [summaries[(name, folder)] for folder in folders]
        per_seed = ", ".join(f"{100 * run['overall']['success']:.1f}" for run in runs)
        kinds = {kind: [run["kinds"].get(kind, {}).get("success") for run in runs] for kind in ("HOS", "HPS")}
        lines.append(f"| {name} | {per_seed} | {cell([run['overall']['success'] for run in runs])} | "
                     f"{cell(kinds['HOS'])} | {cell(kinds['HPS'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", default=[], metavar="NAME=DIR,...",
                        help="a setting and its run folders (one per seed); repeat for each setting")
    parser.add_argument("--evals", action="append", default=[], metavar="NAME=DIR,...",
                        help="a setting and its panoseek eval result folders (one per seed)")
    parser.add_argument("--out", type=Path, help="learning-curve PNG to write")
    parser.add_argument("--window", type=int, default=20, help="updates averaged per curve point (default 20)")
    args = parser.parse_args(argv)
    if args.group and args.out:
        plot(_groups(args.group, "--group"), args.out, args.window)
        print(f"curves in {args.out}")
    if args.evals:
        print(table(_groups(args.evals, "--evals")))
    if not (args.group and args.out) and not args.evals:
        parser.error("give --group ... --out PNG, --evals ..., or both")
    return 0


if __name__ == "__main__":
    sys.exit(main())
