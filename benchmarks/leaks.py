"""What cheating agents score on a synth split: the adversarial audits of panoseek.scenes.leaks.

Run: ``python benchmarks/leaks.py [--fit synth:train] [--eval synth:test]``. Fits the
blind fixed offsets and the sign-style rule on ``--fit`` (all of it; synth:train takes
about a minute), then prints on ``--eval``: blind vs random-yaw chance per kind, the
sign-style rule vs a random opening, the category-only detector vs telling look-alikes
apart by chance, and the level proportions. Nothing is rendered.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter

from panoseek.envs.task import HOS, HPS, LEVEL_NAMES
from panoseek.scenes import load_suite
from panoseek.scenes.leaks import (
    blind_success, category_detector, fit_blind_offsets, fit_sign_rule, random_yaw_chance, sign_rule_success,
)


def _se(p: float, n: int) -> float:
    return math.sqrt(p * (1.0 - p) / max(n, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", default="synth:train", help="split the cheats are fitted on")
    parser.add_argument("--eval", default="synth:test", help="split they are scored on")
    args = parser.parse_args()
    fit, tasks = load_suite(args.fit), load_suite(args.eval)
    episodes = {kind: sum(len(t.start_yaws) for t in tasks if t.kind == kind) for kind in (HOS, HPS)}
    offsets = fit_blind_offsets(fit)
    blind, chance = blind_success(tasks, offsets), random_yaw_chance(tasks)
    print(f"blind offsets fitted on {args.fit}: " + ", ".join(f"{k} (yaw +{y:g}, pitch {p:g})" for k, (y, p) in offsets.items()))
    for kind in (HOS, HPS):
        print(f"{kind} blind {100 * blind[kind]:5.1f}%  chance {100 * chance[kind][0]:5.1f}% (pitch {chance[kind][1]:g})"
              f"  +- {100 * _se(chance[kind][0], episodes[kind]):.1f} (1 s.e., {episodes[kind]} episodes)")
    rule_success, random_opening = sign_rule_success(tasks, fit_sign_rule(fit))
    n_path = sum(t.kind == HPS for t in tasks)
    print(f"HPS sign-style rule {100 * rule_success:5.1f}%  random opening {100 * random_opening:5.1f}%"
          f"  +- {100 * _se(random_opening, n_path):.1f} (1 s.e., {n_path} tasks)")
    detector, by_chance = category_detector(tasks)
    print(f"HOS category-only detector {100 * detector:5.1f}%  picking one of the same-category objects "
          f"by chance {100 * by_chance:5.1f}%")
    for kind in (HOS, HPS):
        counts = Counter(level for t in tasks if t.kind == kind for level in t.levels)
        shares = ", ".join(f"{LEVEL_NAMES[kind][level]} {100 * counts[level] / episodes[kind]:.1f}%"
                           for level in sorted(counts))
        print(f"{kind} levels on {args.eval}: {shares}")


if __name__ == "__main__":
    main()
