"""Evaluation results on disk: episode records (JSONL), the run config, the summary.

A results folder holds

* ``episodes.jsonl``: one JSON object per finished episode, appended and flushed as
  each episode ends, so a crash loses at most the episode in flight. A half-written
  last line (the process died mid-write) is dropped when the file is read again;
* ``run.json``: what was run (suite spec and fingerprint, agent and its arguments,
  seed, view settings, shard), checked before resuming or merging;
* ``summary.json``: success overall, per kind and per level with standard errors,
  mean turns and angular errors, the fingerprint and library versions.

Only the standard library and numpy: the report and merge commands read these
folders without building environments. Every statistic comes from
:mod:`panoseek.envs.eval.stats`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from panoseek.envs.eval.stats import by_level, group_stats, privileges_used
from panoseek.envs.task import KINDS

EPISODES_FILE = "episodes.jsonl"
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"

# run.json keys that decide what the episodes measured: a folder is resumed or merged
# only when they agree (workers, progress bars and timings do not change results).
IDENTITY_KEYS = (
    "suite", "fingerprint", "agent", "agent_args", "model", "seed",
    "view_size", "fov_deg", "max_turns", "limit", "strict", "crosshair", "zoom",
)
# Identity keys added after results folders existed, with the value such a folder ran with.
IDENTITY_DEFAULTS = {"zoom": False}


class RecordsError(ValueError):
    """A results folder that cannot be read, resumed or merged; the message names the file."""


# ------------------------------------------------------------------------- episodes


def read_episodes(path: str | Path) -> list[dict[str, Any]]:
    """Records of an ``episodes.jsonl`` in file order; a torn last line is dropped.

    Any other unreadable line, or an episode id seen twice, is an error naming the
    file and line (those cannot come from an interrupted run).
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    last = len(lines) - 1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("episode_id"), str):
                raise ValueError("not an episode record")
        except ValueError as error:
            if number - 1 == last:  # no newline after it: a write cut short by a crash
                break
            raise RecordsError(f"{path}: line {number} is not an episode record ({error})") from None
        if record["episode_id"] in seen:
            raise RecordsError(
                f"{path}: episode {record['episode_id']!r} appears on lines {seen[record['episode_id']]} and {number}"
            )
        seen[record["episode_id"]] = number
        records.append(record)
    return records


def drop_torn_tail(path: str | Path) -> None:
    """Make an ``episodes.jsonl`` end with a complete line, so appends start clean.

    A last line without its newline is kept (and the newline added) when it is a whole
    record, which :func:`read_episodes` counts as done; otherwise it is cut off.
    """
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        end = data.rfind(b"\n") + 1
        if end == len(data):
            return
        try:
            complete = isinstance(json.loads(data[end:]), dict)
        except ValueError:
            complete = False
        if complete:
            handle.write(b"\n")
        else:
            handle.truncate(end)


class EpisodeWriter:
    """Appends records to ``episodes.jsonl``, one line each, flushed at once.

    Flushing hands the line to the operating system, which keeps it even if the
    process is killed; there is no fsync (a power cut may lose the last lines, and a
    resumed run then redoes them).
    """

    def __init__(self, path: str | Path) -> None:
        drop_torn_tail(path)
        self._handle = open(path, "a", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        # ASCII escapes keep any text writable, a lone surrogate from an agent's reply too.
        self._handle.write(json.dumps(record, ensure_ascii=True, allow_nan=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------- run config


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from a file, with an error naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RecordsError(f"{path}: cannot read JSON ({error})") from None
    if not isinstance(data, dict):
        raise RecordsError(f"{path}: expected a JSON object")
    return data


def write_json(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically (temporary file + rename), so readers never see half a file."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def config_mismatch(old: Mapping[str, Any], new: Mapping[str, Any], keys: Iterable[str] = IDENTITY_KEYS) -> list[str]:
    """The identity keys on which two run configs differ, as ``key: old != new`` lines."""
    # Round-trip through JSON so tuples and lists compare alike.
    old, new = ({**IDENTITY_DEFAULTS, **json.loads(json.dumps(dict(run)))} for run in (old, new))
    return [f"{key}: {old.get(key)!r} != {new.get(key)!r}" for key in keys if old.get(key) != new.get(key)]


# -------------------------------------------------------------------------- summary


def summarize(records: Sequence[Mapping[str, Any]], run: Mapping[str, Any], expected: int | None = None) -> dict[str, Any]:
    """The summary of a run: success (with standard error) overall, per kind, per level.

    Each group's statistics are :func:`~panoseek.envs.eval.stats.group_stats`. Levels
    are keyed by name in H* order (HOS Easy/Medium/Hard, HPS Easy/Medium/Hard/Extreme,
    then Unlabelled). ``complete`` says whether every expected episode ran;
    ``privileged`` lists the privileged data any agent was given (empty for search);
    ``zoom`` says whether the agent could zoom (the opt-in extension of the protocol: such
    numbers are not H*-protocol numbers).
    """
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        of_kind = [r for r in records if r.get("kind") == kind]
        if not of_kind:
            continue
        entry = group_stats(of_kind)
        entry["levels"] = {name: group_stats(group) for name, group in by_level(of_kind, kind).items()}
        kinds[kind] = entry
    return {
        "suite": run.get("suite"),
        "fingerprint": run.get("fingerprint"),
        "agent": run.get("agent"),
        "agent_args": run.get("agent_args"),
        "model": run.get("model"),
        "seed": run.get("seed"),
        "view_size": run.get("view_size"),
        "max_turns": run.get("max_turns"),
        "zoom": bool(run.get("zoom", False)),
        "complete": expected is None or len(records) == expected,
        "privileged": privileges_used(records),
        "expected_episodes": expected,
        "overall": group_stats(records),
        "kinds": kinds,
        "versions": run.get("versions"),
    }


# ---------------------------------------------------------------------------- merge


def merge_folders(out_dir: str | Path, folders: Sequence[str | Path]) -> dict[str, Any]:
    """Join the episodes of several results folders (e.g. shards) into ``out_dir``.

    The folders must have run the same suite (fingerprint), agent and settings; an
    episode present in two folders is an error (shards never overlap). Writes
    ``episodes.jsonl``, ``run.json`` and ``summary.json``; returns the summary.
    """
    if not folders:
        raise RecordsError("merge needs at least one results folder")
    if not str(out_dir).strip():  # Path("") would be the current folder
        raise RecordsError("the merged results folder name is empty: give a folder name")
    out_dir = Path(out_dir)
    runs, merged, origin = [], [], {}
    for folder in folders:
        folder = Path(folder)
        run_path = folder / RUN_FILE
        if not run_path.exists():
            raise RecordsError(f"{folder}: not a results folder (no {RUN_FILE})")
        run = read_json(run_path)
        if runs and (diff := config_mismatch(runs[0], run)):
            raise RecordsError(f"cannot merge {folder} with {folders[0]}: different runs ({'; '.join(diff)})")
        runs.append(run)
        for record in read_episodes(folder / EPISODES_FILE):
            if record["episode_id"] in origin:
                raise RecordsError(
                    f"episode {record['episode_id']!r} is in both {origin[record['episode_id']]} and {folder}"
                )
            origin[record["episode_id"]] = folder
            merged.append(record)
    if (out_dir / EPISODES_FILE).exists():
        raise RecordsError(f"{out_dir}: already holds {EPISODES_FILE}; merge into a new folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / EPISODES_FILE).touch()
    except OSError as error:
        raise RecordsError(f"{out_dir}: cannot write the merged results there ({error.strerror or error})") from None
    run = {key: value for key, value in runs[0].items() if key not in ("shard", "expected_episodes")}
    run["merged_from"] = [str(f) for f in folders]
    expected = run.get("total_episodes")
    with EpisodeWriter(out_dir / EPISODES_FILE) as writer:
        for record in merged:
            writer.write(record)
    write_json(out_dir / RUN_FILE, run)
    summary = summarize(merged, run, expected)
    write_json(out_dir / SUMMARY_FILE, summary)
    return summary
