"""The one definition of every statistic of a set of episode records.

``summary.json``, the report tables, the comparison page and the training logs all
compute their numbers here, so "success", "invalid actions" or "yaw error" mean the
same thing wherever they are printed.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from panoseek.envs.geometry import yaw_distance
from panoseek.envs.task import HPS, LEVEL_NAMES, UNLABELLED

Record = Mapping[str, Any]


def rate(successes: int, n: int) -> dict[str, Any]:
    """``successes`` of ``n`` with the binomial standard error sqrt(p (1 - p) / n); None when n = 0."""
    p = successes / n if n else None
    stderr = math.sqrt(p * (1.0 - p) / n) if n else None
    return {"episodes": n, "successes": successes, "success": p, "stderr": stderr}


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def mean(values: Sequence[Any]) -> float | None:
    """Mean of the finite numbers (exact sum, so independent of record order); None if none."""
    finite = _finite(values)
    return math.fsum(finite) / len(finite) if finite else None


def mean_and_stderr(values: Sequence[Any]) -> dict[str, Any]:
    """Mean of independent runs' figures (e.g. one success rate per training seed) with the
    standard error of that mean, stdev / sqrt(n); stderr None for fewer than two values."""
    finite = _finite(values)
    stderr = statistics.stdev(finite) / math.sqrt(len(finite)) if len(finite) > 1 else None
    return {"n": len(finite), "mean": mean(finite), "stderr": stderr}


def paired_difference(baseline: Sequence[Record], other: Sequence[Record]) -> dict[str, Any]:
    """Success of ``other`` minus success of ``baseline`` over the same episodes, with the
    paired standard error (stdev of the per-episode differences / sqrt n).

    Both runs played the same episodes, so their outcomes are correlated; the paired error
    is the right yardstick for "raised success by more than two standard errors" and is
    smaller than combining the two binomial errors. Records are matched by ``episode_id``;
    different episode sets are refused (ValueError naming what differs).
    """
    first = {str(r["episode_id"]): bool(r.get("success")) for r in baseline}
    second = {str(r["episode_id"]): bool(r.get("success")) for r in other}
    if len(first) != len(baseline) or len(second) != len(other):
        raise ValueError("paired_difference: an episode_id occurs twice in one run")
    if first.keys() != second.keys():
        only = sorted(first.keys() ^ second.keys())
        raise ValueError(f"paired_difference: the runs played different episodes ({len(only)} not in both, "
                         f"e.g. {only[0]!r})")
    n = len(first)
    diffs = [float(second[key]) - float(first[key]) for key in first]
    stderr = statistics.stdev(diffs) / math.sqrt(n) if n > 1 else None
    return {
        "episodes": n, "difference": mean(diffs) if n else None, "stderr": stderr,
        "gained": sum(1 for d in diffs if d > 0), "lost": sum(1 for d in diffs if d < 0),
    }


def routine_stats(records: Sequence[Record], opening_turns: int = 3) -> dict[str, Any]:
    """How much an agent's play repeats itself whatever it sees. A searcher that centres the
    target before submitting (as the expert and the PPO policies do) opens differently in
    different scenes and submits where it is looking; a memorised routine does neither
    (``sweep`` is a fixed scan by design and submits a remembered heading, so it scores
    100% / 100% / 0% and still searches: read the shares against the agent's design).

    * ``top_opening``/``top_opening_rate``: the most common sequence of the first
      ``opening_turns`` parsed actions (``rotate(yaw,pitch)``, ...) and the share of
      episodes that open with it;
    * ``turns_mode_rate``: the share of episodes that end at the most common turn count;
    * ``submitted_at_heading_rate``: of submitted episodes, the share whose submission is
      within 5° of the heading the agent was looking at, i.e. of its view's centre (yaw
      and pitch for HOS; yaw only for HPS, whose pitch is not judged).
    """
    openings = Counter(tuple(_action_text(a) for a in (r.get("actions") or ())[:opening_turns]) for r in records)
    top, top_count = openings.most_common(1)[0] if records else ((), 0)
    turns = Counter(r.get("turns") for r in records)
    submitted = [r for r in records if r.get("submitted") is not None and r.get("headings")]
    at_heading = sum(1 for r in submitted
                     if float(yaw_distance(r["submitted"][0], r["headings"][-1][0])) <= 5.0
                     and (r.get("kind") == HPS or abs(float(r["submitted"][1]) - float(r["headings"][-1][1])) <= 5.0))
    return {
        "episodes": len(records), "top_opening": list(top),
        "top_opening_rate": top_count / len(records) if records else None,
        "turns_mode_rate": turns.most_common(1)[0][1] / len(records) if records else None,
        "submitted_at_heading_rate": at_heading / len(submitted) if submitted else None,
    }


def _action_text(action: Record) -> str:
    parsed = action.get("parsed") or {}
    return f"{parsed.get('kind')}({parsed.get('yaw') or 0:g},{parsed.get('pitch') or 0:g})"


def median(values: Sequence[Any]) -> float | None:
    finite = _finite(values)
    return float(statistics.median(finite)) if finite else None


def group_stats(records: Sequence[Record]) -> dict[str, Any]:
    """Success, effort and errors of a group of episodes.

    * ``success``/``stderr``: judged success of the submitted direction; an episode
      that never submits fails.
    * ``submitted``: episodes that submitted (count) and ``submitted_rate``.
    * ``mean_turns``: turns used, submission included.
    * ``mean_yaw_error``/``median_yaw_error``/``mean_pitch_error``: degrees by which
      submitted directions miss the judged window (0 inside), over submitted episodes.
    * ``invalid_actions``: count of invalid actions; ``invalid_rate``: per action.
    * ``agent_errors``: episodes in which the agent raised.
    * ``mean_rotation_deg``: head rotation travelled (wrapped yaw plus pitch steps).
    * ``seen_rate``: episodes whose target centre entered the view before the end;
      ``mean_first_seen_turn``: at which turn it first did (0 = the start view), over those.
    """
    submitted = [r for r in records if r.get("submitted") is not None]
    actions = [a for r in records for a in r.get("actions") or ()]
    invalid = sum(1 for a in actions if not a.get("valid", True))
    seen = [r for r in records if r.get("first_seen_turn") is not None]
    stats = rate(sum(1 for r in records if r.get("success")), len(records))
    stats.update(
        mean_turns=mean([r.get("turns") for r in records]),
        submitted=len(submitted),
        submitted_rate=len(submitted) / len(records) if records else None,
        mean_yaw_error=mean([r.get("yaw_error") for r in submitted]),
        median_yaw_error=median([r.get("yaw_error") for r in submitted]),
        mean_pitch_error=mean([r.get("pitch_error") for r in submitted]),
        invalid_actions=invalid,
        invalid_rate=invalid / len(actions) if actions else None,
        agent_errors=sum(1 for r in records if r.get("error")),
        mean_rotation_deg=mean([r.get("rotation_deg") for r in records]),
        seen_rate=len(seen) / len(records) if records and all("first_seen_turn" in r for r in records) else None,
        mean_first_seen_turn=mean([r.get("first_seen_turn") for r in seen]),
    )
    return stats


def level_name(record: Record) -> str:
    """The record's difficulty level name (``level_name``, else from ``level``; None is unlabelled)."""
    if record.get("level_name"):
        return str(record["level_name"])
    level = record.get("level")
    if level is None:
        return UNLABELLED
    names = LEVEL_NAMES[record["kind"]]
    return names[level] if isinstance(level, int) and 0 <= level < len(names) else str(level)


def level_columns(kind: str) -> tuple[str, ...]:
    """The level names of a kind in H* order, then ``Unlabelled``."""
    return (*LEVEL_NAMES[kind], UNLABELLED)


def by_level(records: Sequence[Record], kind: str) -> dict[str, list[Record]]:
    """The records of one kind per level name, in H* order (levels without episodes left out)."""
    groups: dict[str, list[Record]] = {name: [] for name in level_columns(kind)}
    for record in records:
        if record.get("kind") == kind:
            groups.setdefault(level_name(record), []).append(record)
    return {name: group for name, group in groups.items() if group}


def success_by_turn(records: Sequence[Record], max_turns: int) -> np.ndarray:
    """Fraction of episodes that succeeded within t turns, for t = 1..max_turns."""
    if not records:
        return np.zeros(max_turns)
    finished = np.array([int(r["turns"]) for r in records if r.get("success")], dtype=np.int64)
    turns = np.arange(1, max_turns + 1)
    return (finished[None, :] <= turns[:, None]).sum(axis=1) / len(records)


def seen_by_turn(records: Sequence[Record], max_turns: int) -> np.ndarray | None:
    """Fraction of episodes whose target had been in view by turn t (the start view is
    turn 0), for t = 1..max_turns; None when the records do not say (older results)."""
    if not records or not all("first_seen_turn" in r for r in records):
        return None
    seen = np.array([r["first_seen_turn"] for r in records if r["first_seen_turn"] is not None], dtype=np.int64)
    turns = np.arange(1, max_turns + 1)
    return (seen[None, :] < turns[:, None]).sum(axis=1) / len(records)


def privileges_used(records: Sequence[Record]) -> list[str]:
    """The privileges any episode's agent was given (empty: the run is search only)."""
    return sorted({name for r in records for name in r.get("privileged") or ()})
