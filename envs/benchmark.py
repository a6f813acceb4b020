"""The evaluation runner: every episode of a list of tasks, played by an agent, recorded.

``run_benchmark`` plays the (task, start) episodes of a suite with an agent built
by a factory, in one process or in K spawned worker processes, and appends one record
per finished episode to ``DIR/episodes.jsonl`` (see :mod:`panoseek.envs.records`).
Rerunning it on the same folder plays only the episodes not recorded yet, so a crash,
Ctrl-C or SIGKILL loses at most the episodes in flight.

Results never depend on the number of workers or on resuming: each episode's seed
comes from the run seed and the episode id, agents are reset before every episode, and
the environment is reset with that seed. Episodes that share a panorama (the task
metadata's ``scene_seed``, or the same panorama file) are handed to a worker together,
so that panorama caches (the environment's and the suite's own) serve them in turn.

The runner takes tasks and agents through small protocols and never imports scenes
or agents (DESIGN.md); the ``panoseek eval`` command wires them in.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import math
import multiprocessing as mp
import os
import queue
import signal
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.protocol import ParsedAction, invalid, parse_action
from panoseek.envs.render import PreparedPanorama
from panoseek.envs.records import (
    EPISODES_FILE, IDENTITY_KEYS, RUN_FILE, SUMMARY_FILE, EpisodeWriter, RecordsError,
    config_mismatch, episode_id, read_episodes, read_json, summarize, write_json,
)
from panoseek.envs.task import Task

RAW_LIMIT = 2000  # characters of an agent's raw output kept in a record
LIMIT_SAMPLE_SEED = 0  # seed of the episode sample that --limit takes


@dataclass(frozen=True)
class EpisodeSettings:
    """How episodes are played; part of a run's identity (see ``records.IDENTITY_KEYS``)."""

    view_size: tuple[int, int] = (448, 252)
    fov_deg: float = 100.0
    max_turns: int = 10
    seed: int = 0
    strict: bool = False  # strict H* parsing of text actions (lenient by default)
    crosshair: bool = True


@dataclass(frozen=True)
class Episode:
    """One planned episode: which task, which start, and its panorama group."""

    task_index: int
    start_index: int
    episode_id: str
    group: str


# -------------------------------------------------------------------------- planning


def panorama_key(task: Task, task_index: int) -> str:
    """Tasks with equal keys share a panorama: the scene seed, else the file path."""
    scene_seed = task.metadata.get("scene_seed") if isinstance(task.metadata, Mapping) else None
    if scene_seed is not None:
        return f"scene:{scene_seed}"
    if isinstance(task.panorama, (str, os.PathLike)):
        return f"file:{os.fspath(task.panorama)}"
    return f"task:{task_index}"


def plan_episodes(tasks: Sequence[Task], *, limit: int | None = None, shard: tuple[int, int] | None = None) -> list[Episode]:
    """The episodes of a run, grouped by panorama, deterministic for the same tasks.

    ``limit`` keeps a fixed pseudo-random sample of N episodes, the same for every
    run seed (so a small run still sees every kind and level); ``shard=(i, n)`` then
    keeps the i-th of n contiguous slices (0-based) of the grouped order, so shards
    never overlap and together cover all.
    """
    episodes = [
        Episode(index, start, episode_id(task.id, start), panorama_key(task, index))
        for index, task in enumerate(tasks)
        for start in range(task.n_starts)
    ]
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be a positive number of episodes, got {limit}")
        if limit < len(episodes):
            # A fixed pseudo-random sample (not a stride, which can alias with the
            # suite's layout, e.g. always the first task of each scene); a smaller
            # limit's sample is part of a larger one's.
            keep = np.random.default_rng(LIMIT_SAMPLE_SEED).permutation(len(episodes))[:limit]
            episodes = [episodes[i] for i in sorted(keep)]
    order: dict[str, list[Episode]] = {}
    for episode in episodes:
        order.setdefault(episode.group, []).append(episode)
    grouped = [episode for group in order.values() for episode in group]
    if shard is not None:
        index, count = shard
        if not (isinstance(index, int) and isinstance(count, int) and count >= 1 and 0 <= index < count):
            raise ValueError(f"shard must be I/N with 0 <= I < N, got {index}/{count}")
        grouped = grouped[(index * len(grouped)) // count : ((index + 1) * len(grouped)) // count]
    return grouped


def episode_seed(run_seed: int, episode: str) -> int:
    """A 31-bit seed for one episode, from the run seed and the episode id only."""
    digest = hashlib.sha256(f"{run_seed}:{episode}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") >> 1


# ------------------------------------------------------------------------- one episode


class _TimedSearchEnv(PanoramaSearchEnv):
    """The environment with clocks on panorama loading and view rendering.

    It wraps the environment's two internal hooks for those; the runner's tests
    check that the clocks run, so a renamed hook cannot go unnoticed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.load_seconds = 0.0
        self.render_seconds = 0.0  # includes load_seconds

    def _panorama(self, task_index: int) -> PreparedPanorama:
        start = time.perf_counter()
        try:
            return super()._panorama(task_index)
        finally:
            self.load_seconds += time.perf_counter() - start

    def _render_current(self) -> np.ndarray:
        start = time.perf_counter()
        try:
            return super()._render_current()
        finally:
            self.render_seconds += time.perf_counter() - start


def make_env(tasks: Sequence[Task], settings: EpisodeSettings) -> PanoramaSearchEnv:
    """The environment the runner plays episodes in."""
    return _TimedSearchEnv(
        tasks, view_size=settings.view_size, fov_deg=settings.fov_deg,
        max_turns=settings.max_turns, crosshair=settings.crosshair,
    )


def _clip(text: str) -> str:
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + f"...[{len(text) - RAW_LIMIT} more]"


def _raw_record(raw: Any) -> Any:
    """The agent's raw output as JSON data; never raises, whatever the object does."""
    try:
        return _jsonable(raw)
    except Exception:  # noqa: BLE001 - hostile __len__, __iter__, items() ...
        return f"<{type(raw).__name__}>"


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of an agent's raw output (bounded in depth and size)."""
    if isinstance(value, str):
        return _clip(str.__str__(value))
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int.__int__(value) if abs(value) < 2**53 else _clip(repr(int.__int__(value)))
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, np.generic):
        return _jsonable(value.item(), depth)
    if depth < 3 and isinstance(value, Mapping):
        return {_clip(str(key)): _jsonable(item, depth + 1) for key, item in list(value.items())[:16]}
    if depth < 3 and (isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.size <= 16)):
        return [_jsonable(item, depth + 1) for item in list(value)[:16]]
    return _clip(f"<{type(value).__name__}>")


def _finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _error_text(where: str, error: BaseException) -> str:
    return _clip(f"{where}: {type(error).__name__}: {error}")


def to_parsed_action(env: PanoramaSearchEnv, raw: Any, strict: bool) -> ParsedAction:
    """An agent's output as a parsed action: text via the H* parser, dicts via the env."""
    if isinstance(raw, str):
        return parse_action(str.__str__(raw), strict=strict)
    if isinstance(raw, Mapping):
        return env.parse_structured(raw)
    return invalid(f"an action must be a string or a dict, got {type(raw).__name__}")


def run_episode(
    env: PanoramaSearchEnv,
    agent: Any,
    task_index: int,
    start_index: int,
    settings: EpisodeSettings,
    exemplar: Callable[[Task], Any] | None = None,
) -> dict[str, Any]:
    """Play one episode and return its record; agent failures never propagate.

    An exception from ``agent.act``, or an output that is neither H* text nor a valid
    structured action, is an invalid action for that turn. An exception from
    ``agent.reset`` fails the episode without any action. ``error`` keeps the first
    agent exception.
    """
    start_time = time.perf_counter()
    task = env.tasks[task_index]
    eid = episode_id(task.id, start_index)
    seed = episode_seed(settings.seed, eid)
    agent_s = env_s = 0.0
    render_before, load_before = getattr(env, "render_seconds", 0.0), getattr(env, "load_seconds", 0.0)

    tick = time.perf_counter()
    observation, info = env.reset(seed=seed, options={"task_index": task_index, "start_index": start_index})
    env_s += time.perf_counter() - tick
    record: dict[str, Any] = {
        "episode_id": eid,
        "task_id": task.id,
        "kind": task.kind,
        "level": int(info["level"]),
        "level_name": info["level_name"],
        "start_index": start_index,
        "start_yaw": float(task.start_yaws[start_index]),
        "actions": [],
        "headings": [[float(a) for a in info["heading"]]],
    }
    error: str | None = None
    task_info = {
        "task_id": task.id,
        "episode_id": eid,
        "kind": task.kind,
        "instruction": task.instruction,
        "start_yaw": float(task.start_yaws[start_index]),
        "start_index": start_index,
        "view_size": tuple(settings.view_size),
        "fov_deg": settings.fov_deg,
        "max_turns": settings.max_turns,
        "seed": seed,
        "metadata": dict(task.metadata),
    }
    tick = time.perf_counter()
    try:
        if _declares(agent, "wants_exemplar"):
            task_info["exemplar"] = exemplar(task) if exemplar is not None else None
        if _declares(agent, "wants_privileged"):
            task_info["privileged"] = {"yaw_range": task.yaw_range, "pitch_range": task.pitch_range}
        agent.reset(task_info)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - an agent's failure is data
        error = _error_text("reset", exc)
    agent_s += time.perf_counter() - tick

    done = error is not None
    reward, feedback, turn = 0.0, "", 0
    while not done and turn < settings.max_turns:
        tick = time.perf_counter()
        try:
            raw = agent.act({**observation, "turn": turn, "feedback": feedback})
            action = to_parsed_action(env, raw, settings.strict)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - an agent's failure is data
            raw, action = None, invalid(_error_text("act", exc))
            error = error or action.error
        agent_s += time.perf_counter() - tick
        tick = time.perf_counter()
        observation, step_reward, terminated, truncated, info = env.step_parsed(action)
        env_s += time.perf_counter() - tick
        reward += float(step_reward)
        heading = [float(a) for a in info["heading"]]
        record["actions"].append({
            "turn": turn,
            "raw": _raw_record(raw),
            "parsed": {"kind": action.kind, "yaw": _finite_or_none(action.yaw), "pitch": _finite_or_none(action.pitch)},
            "valid": bool(info["valid_action"]),
            "error": info.get("action_error") or None,
            "heading": heading,
        })
        record["headings"].append(heading)
        feedback = info["feedback"]
        turn += 1
        done = terminated or truncated

    submitted = info.get("submitted")
    record.update(
        submitted=None if submitted is None else [float(a) for a in submitted],
        success=bool(info.get("success")) and submitted is not None,
        turns=turn,
        yaw_error=None if submitted is None else _finite_or_none(info.get("yaw_error")),
        pitch_error=None if submitted is None or task.kind != "HOS" else _finite_or_none(info.get("pitch_error")),
        reward=reward,
        timings={
            "render_s": getattr(env, "render_seconds", 0.0) - render_before,
            "load_s": getattr(env, "load_seconds", 0.0) - load_before,
            "agent_s": agent_s,
            "env_s": env_s,
            "total_s": time.perf_counter() - start_time,
        },
        error=error,
    )
    return record


def _declares(agent: Any, flag: str) -> bool:
    """Whether an agent sets a protocol flag (``wants_privileged``, ``wants_exemplar``) to True."""
    return getattr(agent, flag, False) is True


# ------------------------------------------------------------------------- the run


class EpisodeFailure(RuntimeError):
    """The environment failed on an episode (not the agent): the run stops, naming it."""


def _play(env, agent, episode: Episode, settings: EpisodeSettings, exemplar) -> dict[str, Any]:
    try:
        return run_episode(env, agent, episode.task_index, episode.start_index, settings, exemplar)
    except Exception as exc:  # noqa: BLE001 - re-raised with the episode named
        raise EpisodeFailure(f"episode {episode.episode_id}: {type(exc).__name__}: {exc}") from exc


def _worker(tasks: tuple[Task, ...], agent_factory, settings, exemplar, jobs, results, parent_pid: int) -> None:
    """A worker process: plays the groups of episodes it takes from ``jobs``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    cv2.setNumThreads(1)  # the workers already fill the cores; nested thread pools would fight
    try:
        env = make_env(tasks, settings)
        agent = agent_factory()
        for group in iter(jobs.get, None):
            for episode in group:
                if os.getppid() != parent_pid:  # the parent died (e.g. SIGKILL): stop
                    return
                results.put(("record", _play(env, agent, episode, settings, exemplar)))
    except (ValueError, EpisodeFailure) as exc:  # their messages name the value or the episode
        results.put(("fatal", f"{type(exc).__name__}: {exc}"))
    except BaseException:  # noqa: BLE001 - reported to the parent, which stops the run
        results.put(("fatal", traceback.format_exc()))


def _run_in_process(tasks, agent_factory, settings, exemplar, pending, emit) -> None:
    env = make_env(tasks, settings)
    agent = agent_factory()
    for episode in pending:
        emit(_play(env, agent, episode, settings, exemplar))


def _run_in_workers(tasks, agent_factory, settings, exemplar, pending, emit, workers: int) -> None:
    context = mp.get_context("spawn")
    jobs, results = context.Queue(), context.Queue()
    groups = [list(group) for _, group in itertools.groupby(pending, key=lambda episode: episode.group)]
    for group in groups:
        jobs.put(group)
    count = min(workers, len(groups))
    for _ in range(count):
        jobs.put(None)
    processes = [
        context.Process(
            target=_worker, args=(tasks, agent_factory, settings, exemplar, jobs, results, os.getpid()), daemon=True
        )
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    try:
        remaining = len(pending)
        while remaining:
            try:
                kind, payload = results.get(timeout=1.0)
            except queue.Empty:
                if not any(process.is_alive() for process in processes):
                    codes = [process.exitcode for process in processes]
                    raise EpisodeFailure(f"all workers exited (codes {codes}) with {remaining} episodes left")
                continue
            if kind == "fatal":
                raise EpisodeFailure(f"a worker failed: {payload}")
            emit(payload)
            remaining -= 1
        for process in processes:
            process.join(timeout=10)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that can change results (read from metadata, no imports)."""
    versions: dict[str, str | None] = {}
    for name in ("panoseek", "numpy", "opencv-python-headless", "opencv-python", "gymnasium", "torch", "transformers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_benchmark(
    tasks: Sequence[Task],
    agent_factory: Callable[[], Any],
    out_dir: str | Path,
    *,
    run_info: Mapping[str, Any],
    settings: EpisodeSettings = EpisodeSettings(),
    workers: int = 1,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    exemplar: Callable[[Task], Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Play every episode not yet recorded in ``out_dir``; write the summary; return it.

    With ``workers > 1`` the tasks, ``agent_factory`` and ``exemplar`` are sent to
    spawned processes, so they must pickle (module-level functions,
    ``functools.partial`` of them, tasks with path, array or picklable callable
    panoramas). ``run_info`` describes the
    run for ``run.json`` (``suite``, ``fingerprint``, ``agent``, ``agent_args``,
    ``model``, ``command``); a folder that holds a different run is refused.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    task_list = tuple(tasks)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    planned = plan_episodes(task_list, limit=limit, shard=shard)
    total = len(plan_episodes(task_list, limit=limit))
    run = {
        **{key: run_info.get(key) for key in ("suite", "fingerprint", "agent", "agent_args", "model", "command")},
        **asdict(settings),
        "limit": limit,
        "shard": None if shard is None else list(shard),
        "expected_episodes": len(planned),
        "total_episodes": total,
        "versions": library_versions(),
    }
    with open(out_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RecordsError(f"{out_dir}: another evaluation is writing to this folder") from None
        run_path = out_dir / RUN_FILE
        if run_path.exists():
            diff = config_mismatch(read_json(run_path), run, (*IDENTITY_KEYS, "strict", "crosshair", "shard"))
            if diff:
                raise RecordsError(
                    f"{out_dir} holds a different run ({'; '.join(diff)}); use a new --out folder"
                )
        elif (out_dir / EPISODES_FILE).exists():
            raise RecordsError(f"{out_dir}: has {EPISODES_FILE} but no {RUN_FILE}; use a new --out folder")
        write_json(run_path, run)

        planned_ids = {episode.episode_id for episode in planned}
        done = read_episodes(out_dir / EPISODES_FILE)
        strays = [r["episode_id"] for r in done if r["episode_id"] not in planned_ids]
        if strays:
            raise RecordsError(f"{out_dir / EPISODES_FILE}: episode {strays[0]!r} is not part of this run")
        done_ids = {r["episode_id"] for r in done}
        pending = [episode for episode in planned if episode.episode_id not in done_ids]
        finished, successes = len(done), sum(1 for r in done if r.get("success"))

        bar = tqdm(total=len(planned), initial=len(done), desc=str(run.get("agent") or "eval"),
                   unit="ep", disable=not progress, dynamic_ncols=True)
        with EpisodeWriter(out_dir / EPISODES_FILE) as writer, bar:
            def emit(record: dict[str, Any]) -> None:
                nonlocal finished, successes
                writer.write(record)
                finished, successes = finished + 1, successes + bool(record["success"])
                bar.set_postfix(success=f"{successes / finished:.1%}", refresh=False)
                bar.update(1)

            if pending and workers == 1:
                _run_in_process(task_list, agent_factory, settings, exemplar, pending, emit)
            elif pending:
                _run_in_workers(task_list, agent_factory, settings, exemplar, pending, emit, workers)

        records = read_episodes(out_dir / EPISODES_FILE)
        summary = summarize(records, run, expected=len(planned))
        write_json(out_dir / SUMMARY_FILE, summary)
    return summary
