"""Reports of evaluation results: H*-style tables, success-by-turn curves, trajectories.

A results folder (written by the benchmark runner) holds ``episodes.jsonl`` (one
record per episode) and ``run.json`` (suite spec, fingerprint, agent). Every number
in a report is recomputed from the episode records, so a report always agrees with
the records it names. Trajectory pictures need the tasks themselves (panorama and
target); they come through a ``task_lookup`` callable, because ``envs`` never
imports ``scenes`` (DESIGN.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from panoseek.envs.eval.figures import plot_success_by_turn, sample_episodes, trajectory_picture
from panoseek.envs.eval.records import EPISODES_FILE, RUN_FILE, RecordsError, read_episodes, read_json
from panoseek.envs.eval.stats import (
    by_level, group_stats, level_columns, level_name, paired_difference, privileges_used,
)
from panoseek.envs.panorama import save_image
from panoseek.envs.task import HOS, HPS, KINDS, UNLABELLED, Task

REQUIRED_FIELDS = ("task_id", "kind", "success", "turns")  # besides episode_id, checked on reading
TaskLookup = Callable[[str], "Task | None"]


class ReportError(ValueError):
    """A results folder or record that cannot be reported; the message names it."""


# ------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Results:
    """One results folder: its run configuration and its episode records."""

    path: Path
    run: dict[str, Any]
    episodes: tuple[dict[str, Any], ...]

    @property
    def agent(self) -> str:
        return str(self.run.get("agent") or "?")

    @property
    def suite(self) -> str:
        return str(self.run.get("suite") or "?")

    @property
    def fingerprint(self) -> str:
        return str(self.run.get("fingerprint") or "?")

    @property
    def label(self) -> str:
        """The agent's name, marked "(zoom)" when it could zoom (an extension of the protocol)
        and "(privileged: ...)" when it was given privileged data."""
        used = privileges_used(self.episodes)
        name = f"{self.agent} (zoom)" if self.run.get("zoom") else self.agent
        return f"{name} (privileged: {', '.join(used)})" if used else name


def load_results(directory: str | os.PathLike) -> Results:
    """Read a results folder; a malformed record is an error naming file and line.

    A half-written last line (an evaluation still running or killed mid-write) is
    skipped, as the runner itself does when it resumes.
    """
    path = Path(directory)
    episodes_path = path / EPISODES_FILE
    if not episodes_path.is_file():
        raise ReportError(f"{path}: not a results folder (no {EPISODES_FILE})")
    try:
        run = read_json(path / RUN_FILE) if (path / RUN_FILE).is_file() else {}
        episodes = read_episodes(episodes_path)
    except RecordsError as error:
        raise ReportError(str(error)) from None
    for number, record in enumerate(episodes, start=1):
        _check_record(record, f"{episodes_path} record {number} ({record['episode_id']!r})")
    return Results(path=path, run=run, episodes=tuple(episodes))


def _check_record(record: Any, where: str) -> None:
    if not isinstance(record, dict):
        raise ReportError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in REQUIRED_FIELDS:
        if name not in record:
            raise ReportError(f"{where}: record lacks field {name!r}")
    if record["kind"] not in KINDS:
        raise ReportError(f"{where}: field 'kind' must be one of {KINDS}, got {record['kind']!r}")
    if level_name(record) not in level_columns(record["kind"]):
        raise ReportError(f"{where}: unknown level {record.get('level_name', record.get('level'))!r} for {record['kind']}")


# ------------------------------------------------------------------------ tables


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100.0 * value:.1f}"


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def row_labels(results: Sequence[Results]) -> list[str]:
    """Row labels, with the folder name added where two rows share a label."""
    labels = [r.label for r in results]
    return [f"{label} ({r.path.name})" if labels.count(label) > 1 else label for label, r in zip(labels, results)]


def table_columns(results: Sequence[Results]) -> list[tuple[str, str]]:
    """The H* table's columns as (kind, column): overall then each level, HOS then HPS
    (an ``Unlabelled`` column only where some episode has no level)."""
    columns = []
    for kind in (HOS, HPS):
        columns.append((kind, "overall"))
        present = {level_name(e) for r in results for e in r.episodes if e["kind"] == kind}
        columns += [(kind, name) for name in level_columns(kind) if name != UNLABELLED or name in present]
    return columns


def markdown_tables(results: Sequence[Results]) -> str:
    """The H*-style success table (one row per results folder) and a statistics table."""
    columns = table_columns(results)
    header = ["Agent"] + [f"{kind} {name}" if name == "overall" else name for kind, name in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    labels = row_labels(results)
    cells = []
    for result in results:
        groups = {}
        for kind in (HOS, HPS):
            of_kind = [e for e in result.episodes if e["kind"] == kind]
            groups[(kind, "overall")] = group_stats(of_kind)
            groups.update({(kind, name): group_stats(g) for name, g in by_level(of_kind, kind).items()})
        cells.append([groups.get(column, group_stats([])) for column in columns])
    for label, row in zip(labels, cells):
        lines.append("| " + " | ".join([label] + [_percent(cell["success"]) for cell in row]) + " |")
    counts = [[str(cell["episodes"]) for cell in row] for row in cells]
    if all(row == counts[0] for row in counts):  # the same episodes everywhere: one row says it
        lines.append("| " + " | ".join(["*episodes*"] + counts[0]) + " |")
    else:
        lines += ["| " + " | ".join([f"*episodes ({label})*"] + row) + " |" for label, row in zip(labels, counts)]
    lines += [
        "",
        "| Agent | Episodes | Success % (± s.e.) | Mean turns | Submitted % | Median yaw error (°) | Invalid actions % "
        "| Agent errors | Rotation (°) | Target seen % | First seen (turn) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, result in zip(labels, results):
        s = group_stats(result.episodes)
        lines.append(
            f"| {label} | {s['episodes']} | {_percent(s['success'])} ± {_percent(s['stderr'])} | "
            f"{_number(s['mean_turns'], 2)} | {_percent(s['submitted_rate'])} | {_number(s['median_yaw_error'], 1)} | "
            f"{_percent(s['invalid_rate'])} | {s['agent_errors']} | {_number(s['mean_rotation_deg'], 0)} | "
            f"{_percent(s['seen_rate'])} | {_number(s['mean_first_seen_turn'], 2)} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------ reports


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def write_report(results: Results, out: str | os.PathLike | None = None, *, task_lookup: TaskLookup | None = None, trajectories: int = 6) -> Path:
    """Write ``report.md`` (default: inside the results folder) with its pictures beside it.

    Pictures go to ``<report stem>_files/``. Trajectories need ``task_lookup``
    (task id -> Task or None); without it, or for unknown tasks, they are left out
    and the report says so.
    """
    out_path = Path(out) if out is not None else results.path / "report.md"
    files = out_path.parent / f"{out_path.stem}_files"
    files.mkdir(parents=True, exist_ok=True)
    title = f"# {results.label} on {results.suite}"
    lines = [
        title,
        "",
        f"- Results: `{results.path}` ({len(results.episodes)} episodes)",
        f"- Suite: `{results.suite}`, fingerprint `{results.fingerprint}`",
        f"- Agent: `{results.agent}`" + (f", arguments `{json.dumps(results.run['agent_args'])}`" if results.run.get("agent_args") else ""),
    ]
    if results.run.get("command"):
        lines.append(f"- Command: `{results.run['command']}`")
    lines += ["", "## Success rate (%)", "", markdown_tables([results]), ""]
    curve = plot_success_by_turn([results], row_labels([results]), files / "success_by_turn.png")
    lines += ["## Success by turn", "", f"![success by turn]({files.name}/{curve.name})", ""]
    lines += _trajectory_section(results, files, task_lookup, trajectories)
    out_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_path


def _trajectory_section(results: Results, files: Path, task_lookup: TaskLookup | None, count: int) -> list[str]:
    if count <= 0:
        return []
    lines = ["## Trajectories", ""]
    if task_lookup is None:
        return lines + ["Trajectory pictures need the suite's tasks, which could not be loaded.", ""]
    fov_deg = float(results.run.get("fov_deg") or 100.0)
    view_size = results.run.get("view_size") or (16, 9)
    aspect = float(view_size[0]) / float(view_size[1])
    lines += [
        "Yellow: the judged target window. Cyan: the gaze path (white dot: start, numbers: turns). "
        "Cross: the submitted direction (green: success, red: failure). Below: the views seen at each turn "
        "(yellow circle: the target's centre when in view).",
        "",
    ]
    for record in sample_episodes(results.episodes, count):
        task = task_lookup(str(record["task_id"]))
        if task is None:
            lines += [f"- `{record['episode_id']}`: task not found in the suite, no picture", ""]
            continue
        picture = files / f"trajectory_{_safe_name(str(record['episode_id']))}.png"
        save_image(picture, trajectory_picture(record, task, fov_deg=fov_deg, aspect=aspect))
        outcome = "success" if record["success"] else "failure"
        lines += [f"### `{record['episode_id']}`: {record['kind']} {level_name(record)}, {outcome}", "", f"![{record['episode_id']}]({files.name}/{picture.name})", ""]
    return lines


def paired_section(results: Sequence[Results]) -> list[str]:
    """Each later folder against the first, over the same episodes: the difference in success
    with its paired standard error (``stats.paired_difference``), overall and per kind. With
    one folder: nothing; when the folders' suites or episodes differ: one line saying so."""
    if len(results) < 2:
        return []
    labels = row_labels(results)
    title = [f"## Paired differences against {labels[0]}", ""]
    kinds = {str(e["episode_id"]): e["kind"] for e in results[0].episodes}
    if len({r.fingerprint for r in results}) > 1:
        return title + ["Left out: the folders come from different suites or suite versions.", ""]
    if any({str(e["episode_id"]): e["kind"] for e in r.episodes} != kinds for r in results[1:]):
        return title + ["Left out: the folders did not play the same episodes (an unfinished run, another "
                        "`--limit` or shard).", ""]
    lines = title + [
        "The same episodes, so each difference has the paired standard error (stdev of the per-episode "
        "differences / sqrt n, a normal approximation: with few episodes solved by one run only, prefer an "
        "exact test); gained / lost: episodes that only the later run / only the first run solved.", "",
        "| Agent | Overall (pts ± s.e.) | HOS (pts ± s.e.) | HPS (pts ± s.e.) | Gained / lost |",
        "|---|---|---|---|---|",
    ]
    for label, result in zip(labels[1:], results[1:]):
        diffs = [paired_difference(_of_kind(results[0], kind), _of_kind(result, kind)) for kind in (None, HOS, HPS)]
        cells = [_signed_points(diff) for diff in diffs]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {diffs[0]['gained']} / {diffs[0]['lost']} |")
    return lines + [""]


def _of_kind(result: Results, kind: str | None) -> list[dict[str, Any]]:
    return [e for e in result.episodes if kind is None or e["kind"] == kind]


def _signed_points(diff: dict[str, Any]) -> str:
    if diff["difference"] is None:
        return "-"
    error = "-" if diff["stderr"] is None else f"{100 * diff['stderr']:.1f}"
    return f"{100 * diff['difference']:+.1f} ± {error}"


def write_comparison(results: Sequence[Results], out: str | os.PathLike) -> Path:
    """Write one Markdown page comparing several results folders (one table row each)."""
    if not results:
        raise ReportError("nothing to compare: no results folders given")
    out_path = Path(out)
    files = out_path.parent / f"{out_path.stem}_files"
    files.mkdir(parents=True, exist_ok=True)
    suites = sorted({r.suite for r in results})
    lines = [f"# Comparison on {', '.join(suites)}", ""]
    fingerprints = {r.fingerprint for r in results}
    if len(fingerprints) > 1:
        lines += [
            "**Warning: these results come from different suites or suite versions (fingerprints differ); "
            "their numbers are not comparable.**",
            "",
        ]
    lines += ["| Agent | Results | Suite | Fingerprint |", "|---|---|---|---|"]
    lines += [f"| {label} | `{r.path}` | `{r.suite}` | `{r.fingerprint}` |" for label, r in zip(row_labels(results), results)]
    lines += ["", "## Success rate (%)", "", markdown_tables(results), ""]
    lines += paired_section(results)
    curve = plot_success_by_turn(results, row_labels(results), files / "success_by_turn.png")
    lines += ["## Success by turn", "", f"![success by turn]({files.name}/{curve.name})", ""]
    out_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_path
