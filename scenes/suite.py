"""Benchmark suites: named, fingerprinted, immutable sequences of tasks.

A suite is named by a spec ``NAME:ARG`` (``synth:test``, ``hstar:/data/hstar_bench``,
``jsonl:my_tasks.jsonl``). Its fingerprint is a short hash of everything that decides
what an evaluation measures (task fields, pixels or their sources, generator and
library versions), so results files can say whether two numbers are comparable.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, overload

import numpy as np

from panoseek.envs.task import KINDS, LEVEL_NAMES, UNLABELLED, Task

SYNTH_SPLITS = ("train", "val", "test", "test-unseen")
FINGERPRINT_LENGTH = 16  # hex digits of sha256 kept: 64 bits, ample to tell suites apart


class SuiteError(ValueError):
    """An unknown suite or split, or suite data that cannot be read; the message names it."""


class Suite(Sequence[Task]):
    """An immutable sequence of tasks with a name (its spec) and a fingerprint.

    ``tasks`` may be any sequence; a list or other iterable is frozen into a tuple, a
    custom :class:`~collections.abc.Sequence` (e.g. one building tasks on demand for
    a large training split) is kept as given and must itself be immutable.
    """

    __slots__ = ("_name", "_tasks", "_fingerprint")

    def __init__(self, name: str, tasks: Sequence[Task], fingerprint: str) -> None:
        if not isinstance(tasks, Sequence) or isinstance(tasks, list):
            tasks = tuple(tasks)
        if isinstance(tasks, tuple):
            _check_tasks(name, tasks)
        self._name = name
        self._tasks = tasks
        self._fingerprint = fingerprint

    @property
    def name(self) -> str:
        return self._name

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def __len__(self) -> int:
        return len(self._tasks)

    @overload
    def __getitem__(self, index: int) -> Task: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Task, ...]: ...

    def __getitem__(self, index: int | slice) -> Task | tuple[Task, ...]:
        if isinstance(index, slice):
            return tuple(self._tasks[i] for i in range(*index.indices(len(self))))
        return self._tasks[index]

    def __iter__(self) -> Iterator[Task]:
        return (self._tasks[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"Suite({self._name!r}, {len(self)} tasks, fingerprint={self._fingerprint!r})"

    def describe(self) -> dict[str, Any]:
        """Counts of tasks and episodes per kind, and of episodes per level name.

        An episode is one (task, start yaw) pair; levels belong to episodes.
        """
        tasks: Counter[str] = Counter()
        episodes: Counter[str] = Counter()
        levels: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
        for task in self:
            tasks[task.kind] += 1
            episodes[task.kind] += task.n_starts
            levels[task.kind].update(task.level_name(start) for start in range(task.n_starts))
        return {
            "name": self._name,
            "fingerprint": self._fingerprint,
            "tasks": sum(tasks.values()),
            "episodes": sum(episodes.values()),
            "kinds": {
                kind: {
                    "tasks": tasks[kind],
                    "episodes": episodes[kind],
                    "levels": {
                        name: levels[kind][name]
                        for name in (*LEVEL_NAMES[kind], UNLABELLED)
                        if name != UNLABELLED or levels[kind][name]
                    },
                }
                for kind in KINDS
            },
        }


def _check_tasks(name: str, tasks: tuple) -> None:
    seen: set[str] = set()
    for position, task in enumerate(tasks):
        if not isinstance(task, Task):
            raise SuiteError(f"suite {name!r}: item {position} is a {type(task).__name__}, not a Task")
        if task.id in seen:
            raise SuiteError(f"suite {name!r}: task id {task.id!r} appears more than once")
        seen.add(task.id)


# ------------------------------------------------------------------------ fingerprints


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"cannot fingerprint a {type(value).__name__}: {value!r}")


def fingerprint(parts: Mapping[str, Any]) -> str:
    """Short, stable hash of JSON-able data: sha256 of its canonical JSON (sorted keys).

    Equal data gives the same string in any process and on any machine; tuples and
    lists hash alike, numpy scalars as Python numbers, paths as POSIX strings.
    """
    try:
        text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_json_default)
    except (TypeError, ValueError) as error:
        raise SuiteError(f"fingerprint parts are not JSON data: {error}") from None
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:FINGERPRINT_LENGTH]


def task_record(task: Task) -> dict[str, Any]:
    """A task's fields as JSON data, without its panorama (sources differ; pixels are hashed apart).

    Two tasks with equal records ask the same question from the same starts.
    """
    return {
        "id": task.id,
        "kind": task.kind,
        "instruction": task.instruction,
        "yaw_range": list(task.yaw_range),
        "pitch_range": None if task.pitch_range is None else list(task.pitch_range),
        "start_yaws": list(task.start_yaws),
        "levels": list(task.levels),
        "metadata": dict(task.metadata),
    }


# -------------------------------------------------------------------------- load_suite


def _load_synth(split: str) -> Suite:
    if split not in SYNTH_SPLITS:
        raise SuiteError(f"unknown synth split {split!r}; valid splits: {', '.join(SYNTH_SPLITS)}")
    try:
        synth = importlib.import_module("panoseek.scenes.synth")
    except ModuleNotFoundError as error:
        if error.name != "panoseek.scenes.synth":
            raise
        raise SuiteError("synth suites are unavailable: module panoseek.scenes.synth is missing") from None
    return synth.synth_suite(split)


def _load_hstar(path: str) -> Suite:
    from panoseek.scenes.hstar import load_hstar

    return load_hstar(path)


def _load_jsonl(path: str) -> Suite:
    from panoseek.scenes.jsonl import load_jsonl

    return load_jsonl(path)


_LOADERS: dict[str, Callable[[str], Suite]] = {"synth": _load_synth, "hstar": _load_hstar, "jsonl": _load_jsonl}
SUITE_NAMES = tuple(_LOADERS)


def load_suite(spec: str) -> Suite:
    """The tasks of the suite named by ``spec`` (``synth:SPLIT``, ``hstar:PATH``, ``jsonl:PATH``)."""
    usage = "synth:" + "|".join(SYNTH_SPLITS) + ", hstar:FOLDER or jsonl:FILE"
    if not isinstance(spec, str) or ":" not in spec:
        raise SuiteError(f"suite spec {spec!r} is not NAME:ARG; valid specs: {usage}")
    name, argument = spec.split(":", 1)
    loader = _LOADERS.get(name)
    if loader is None:
        raise SuiteError(f"unknown suite {name!r} in {spec!r}; valid suites: {', '.join(SUITE_NAMES)} ({usage})")
    if not argument:
        raise SuiteError(f"suite spec {spec!r} lacks its argument after ':'; valid specs: {usage}")
    return loader(argument)
