"""The evaluation runner: every episode of a list of tasks, played by an agent, recorded.

``run_benchmark`` plays the (task, start) episodes of a suite through the one rollout
loop (:func:`panoseek.envs.rollout.play`), in one process or in K spawned worker
processes, and appends one record per finished episode to ``DIR/episodes.jsonl`` (see
:mod:`panoseek.envs.eval.records`). Rerunning it on the same folder plays only the
episodes not recorded yet, so a crash, Ctrl-C or SIGKILL loses at most the episodes in
flight.

Results never depend on the number of workers, the batch size or on resuming: each
episode's seed comes from the run seed and the episode id, every episode gets a fresh
agent from the factory, and the environment is reset with that seed. Episodes are
handed out in bundles of a few panoramas (tasks with the same ``panorama_id``, or
the same file, share one), so panorama caches serve them; inside a bundle the order is
a seeded shuffle that interleaves tasks, so a worker never plays the starts of one task
back to back (when the bundle holds more than one task).

The runner takes tasks and agents through small protocols and never imports scenes
or agents (DESIGN.md); the ``panoseek eval`` command wires them in.
"""

from __future__ import annotations

import ctypes
import fcntl
import multiprocessing as mp
import os
import queue
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.eval.records import (
    EPISODES_FILE, IDENTITY_KEYS, RUN_FILE, SUMMARY_FILE, EpisodeWriter, RecordsError,
    config_mismatch, read_episodes, read_json, summarize, write_json,
)
from panoseek.envs.panorama_cache import PanoramaCache
from panoseek.envs.rollout import EpisodeSettings, EpisodeSpec, Exemplar, episode_spec, play
from panoseek.envs.task import Task, panorama_key

LIMIT_SAMPLE_SEED = 0  # seed of the episode sample that --limit takes
BUNDLE_PANORAMAS = 4  # panoramas per bundle of episodes (the environment caches as many)


@dataclass(frozen=True)
class PlannedEpisode:
    """One planned episode and the bundle of panoramas it is played in."""

    spec: EpisodeSpec
    bundle: int


# -------------------------------------------------------------------------- planning


def plan_episodes(
    tasks: Sequence[Task], *, seed: int = 0, limit: int | None = None, shard: tuple[int, int] | None = None
) -> list[PlannedEpisode]:
    """The episodes of a run in play order, deterministic for the same tasks and seed.

    Episodes are grouped by panorama, the groups cut into bundles of
    ``BUNDLE_PANORAMAS``, and each bundle ordered by a shuffle seeded from ``seed`` that
    deals its tasks' starts round-robin (see the module docstring). ``limit`` keeps a
    fixed pseudo-random sample of N episodes, the same for every run seed (so a small
    run still sees every kind and level); ``shard=(i, n)`` then keeps the i-th of n
    contiguous slices (0-based) of the play order, so shards never overlap and together
    cover all.
    """
    pairs = [(index, start) for index, task in enumerate(tasks) for start in range(task.n_starts)]
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive number of episodes, got {limit!r}")
        if limit < len(pairs):
            # A fixed pseudo-random sample (not a stride, which can alias with the
            # suite's layout); a smaller limit's sample is part of a larger one's.
            keep = np.random.default_rng(LIMIT_SAMPLE_SEED).permutation(len(pairs))[:limit]
            pairs = [pairs[i] for i in sorted(keep)]
    groups: dict[str, dict[int, list[int]]] = {}
    for index, start in pairs:
        groups.setdefault(panorama_key(tasks[index], index), {}).setdefault(index, []).append(start)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED])
    ordered: list[PlannedEpisode] = []
    group_list = list(groups.values())
    for bundle, first in enumerate(range(0, len(group_list), BUNDLE_PANORAMAS)):
        starts_of = {index: starts for group in group_list[first : first + BUNDLE_PANORAMAS] for index, starts in group.items()}
        for index, start in _interleaved(starts_of, rng):
            ordered.append(PlannedEpisode(episode_spec(tasks[index], index, start, seed), bundle))
    return ordered if shard is None else shard_of(ordered, shard)


def shard_of(ordered: Sequence[PlannedEpisode], shard: tuple[int, int]) -> list[PlannedEpisode]:
    """The i-th of n contiguous slices (0-based) of a play order (``shard=(i, n)``)."""
    index, count = shard
    if not (isinstance(index, int) and isinstance(count, int) and count >= 1 and 0 <= index < count):
        raise ValueError(f"shard must be I/N with 0 <= I < N, got {index}/{count}")
    return list(ordered[(index * len(ordered)) // count : ((index + 1) * len(ordered)) // count])


def _interleaved(starts_of: Mapping[int, list[int]], rng: np.random.Generator) -> list[tuple[int, int]]:
    """(task, start) pairs: tasks in shuffled order, dealt round-robin, starts shuffled per task."""
    tasks = [list(starts_of)[i] for i in rng.permutation(len(starts_of))]
    queues = {task: [starts_of[task][i] for i in rng.permutation(len(starts_of[task]))] for task in tasks}
    order = []
    while any(queues.values()):
        for task in tasks:
            if queues[task]:
                order.append((task, queues[task].pop()))
    return order


# ------------------------------------------------------------------------- the run


class EpisodeFailure(RuntimeError):
    """The environment failed on an episode (not the agent): the run stops, naming it."""


class AgentFactoryError(EpisodeFailure):
    """The agent factory raised: no episode can be played; the message names the error."""


def make_env(tasks: Sequence[Task], settings: EpisodeSettings,
             panorama_cache: int | PanoramaCache = BUNDLE_PANORAMAS) -> PanoramaSearchEnv:
    """The environment the runner plays episodes in (with the diagnostics records need)."""
    return PanoramaSearchEnv(
        tasks, view_size=settings.view_size, fov_deg=settings.fov_deg, max_turns=settings.max_turns,
        crosshair=settings.crosshair, diagnostics=True, panorama_cache=panorama_cache, zoom=settings.zoom,
    )


class _Player:
    """Plays planned episodes in lock-step batches, a fresh agent each, in one process; the
    batch's environments share one panorama cache (a panorama two episodes of a batch use
    is loaded once)."""

    def __init__(self, tasks, agent_factory, settings: EpisodeSettings, exemplar, batch_size: int,
                 turn_timeout: float | None) -> None:
        cache = PanoramaCache(BUNDLE_PANORAMAS)  # a batch never leaves its bundle
        self.envs = [make_env(tasks, settings, cache) for _ in range(batch_size)]
        self.agent_factory, self.settings, self.exemplar = agent_factory, settings, exemplar
        self.turn_timeout = turn_timeout

    def records(self, episodes: Sequence[PlannedEpisode]) -> list[dict[str, Any]]:
        specs = [episode.spec for episode in episodes]
        try:
            agents = [self.agent_factory() for _ in specs]
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a configuration error, named once
            raise AgentFactoryError(f"cannot build the agent: {type(exc).__name__}: {exc}") from exc
        try:
            rollouts = play(self.envs[: len(specs)], agents, specs, strict=self.settings.strict,
                            exemplar=self.exemplar, keep_turns=False, turn_timeout=self.turn_timeout)
        except Exception as exc:  # noqa: BLE001 - re-raised with the episodes named
            names = ", ".join(spec.episode_id for spec in specs)
            raise EpisodeFailure(f"episode {names}: {type(exc).__name__}: {exc}") from exc
        return [rollout.record for rollout in rollouts]


def _batches(episodes: Sequence[PlannedEpisode], batch_size: int) -> list[list[PlannedEpisode]]:
    """Consecutive batches of at most ``batch_size`` episodes, never across bundles, and never
    two starts of one task in a batch: an agent's ``act_batch`` sees every view of its batch,
    and the views of another start of the same task would be free looks around."""
    batches: list[list[PlannedEpisode]] = []
    for episode in episodes:
        current = batches[-1] if batches else []
        if (current and len(current) < batch_size and current[-1].bundle == episode.bundle
                and all(other.spec.task_index != episode.spec.task_index for other in current)):
            current.append(episode)
        else:
            batches.append([episode])
    return batches


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a SIGKILLed ``panoseek eval``
    must not leave workers running an agent, and the resource tracker, as orphans)."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _worker(tasks, agent_factory, settings, exemplar, batch_size, turn_timeout, jobs, results, parent_pid: int) -> None:
    """A worker process: plays the bundles of episodes it takes from ``jobs``."""
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    cv2.setNumThreads(1)  # the workers already fill the cores; nested thread pools would fight
    try:
        player = _Player(tasks, agent_factory, settings, exemplar, batch_size, turn_timeout)
        for bundle in iter(jobs.get, None):
            for batch in _batches(bundle, batch_size):
                for record in player.records(batch):
                    results.put(("record", record))
    except (ValueError, EpisodeFailure) as exc:  # their messages name the value or the episode
        results.put(("fatal", f"{type(exc).__name__}: {exc}"))
    except BaseException as exc:  # noqa: BLE001 - e.g. an agent raising KeyboardInterrupt: one line to the parent
        results.put(("fatal", f"{type(exc).__name__} in a worker: {exc}".rstrip(": ")))


def _run_in_process(tasks, agent_factory, settings, exemplar, batch_size, turn_timeout, pending, emit) -> None:
    player = _Player(tasks, agent_factory, settings, exemplar, batch_size, turn_timeout)
    for batch in _batches(pending, batch_size):
        for record in player.records(batch):
            emit(record)


def _run_in_workers(tasks, agent_factory, settings, exemplar, batch_size, turn_timeout, pending, emit, workers: int) -> None:
    context = mp.get_context("spawn")
    jobs, results = context.Queue(), context.Queue()
    bundles: dict[int, list[PlannedEpisode]] = {}
    for episode in pending:
        bundles.setdefault(episode.bundle, []).append(episode)
    for bundle in bundles.values():
        jobs.put(bundle)
    count = min(workers, len(bundles))
    for _ in range(count):
        jobs.put(None)
    processes = [
        context.Process(
            target=_worker,
            args=(tasks, agent_factory, settings, exemplar, batch_size, turn_timeout, jobs, results, os.getpid()),
            daemon=True,
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
                failure = AgentFactoryError if payload.startswith("AgentFactoryError") else EpisodeFailure
                raise failure(f"a worker failed: {payload}")
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


def _set_aside(out_dir: Path) -> None:
    """Move a folder's results files into ``previous-N/`` (the first free N), losing nothing."""
    files = [out_dir / name for name in (EPISODES_FILE, RUN_FILE, SUMMARY_FILE) if (out_dir / name).exists()]
    if not files:
        return
    number = 1
    while (out_dir / f"previous-{number}").exists():
        number += 1
    target = out_dir / f"previous-{number}"
    target.mkdir()
    for file in files:
        file.rename(target / file.name)


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
    batch_size: int = 1,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    exemplar: Exemplar | None = None,
    turn_timeout: float | None = None,
    restart: bool = False,
    isolate: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Play every episode not yet recorded in ``out_dir``; write the summary; return it.

    With ``workers > 1`` the tasks, ``agent_factory`` and ``exemplar`` are sent to
    spawned processes, so they must pickle (module-level functions,
    ``functools.partial`` of them, tasks with path, array or picklable callable
    panoramas). ``run_info`` describes the run for ``run.json`` (``suite``,
    ``fingerprint``, ``agent``, ``agent_args``, ``model``, ``command``). A folder that
    holds a different run with recorded episodes is refused (with no episode recorded,
    its ``run.json`` is replaced); ``restart=True`` first moves the folder's results
    into ``previous-N/`` inside it, so nothing is lost. ``turn_timeout`` bounds each
    agent turn (see :func:`panoseek.envs.rollout.play`). ``isolate=True`` plays even a
    single worker in a spawned process, so an agent that kills its process (``os._exit``,
    a crash in native code) stops the run with a message instead of taking the caller
    with it (``panoseek eval`` does this unless ``--in-process``).
    """
    for name, value in (("workers", workers), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    task_list = tuple(tasks)
    if not str(out_dir).strip():  # Path("") would be the current folder
        raise RecordsError("the results folder name is empty: give a folder name")
    out_dir = Path(out_dir)
    every = plan_episodes(task_list, seed=settings.seed, limit=limit)
    planned = every if shard is None else shard_of(every, shard)
    total = len(every)
    run = {
        **{key: run_info.get(key) for key in ("suite", "fingerprint", "agent", "agent_args", "model", "command")},
        **asdict(settings),
        "limit": limit,
        "shard": None if shard is None else list(shard),
        "expected_episodes": len(planned),
        "total_episodes": total,
        "versions": library_versions(),
    }
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = open(out_dir / ".lock", "w")
    except OSError as error:
        raise RecordsError(f"{out_dir}: cannot write results there ({error.strerror or error})") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RecordsError(f"{out_dir}: another evaluation is writing to this folder") from None
        if restart:
            _set_aside(out_dir)
        run_path = out_dir / RUN_FILE
        recorded = read_episodes(out_dir / EPISODES_FILE)
        if run_path.exists() and recorded:
            diff = config_mismatch(read_json(run_path), run, (*IDENTITY_KEYS, "shard"))
            if diff:
                raise RecordsError(
                    f"{out_dir} holds a different run with {len(recorded)} recorded episodes ({'; '.join(diff)}); "
                    "use a new --out folder, or add --restart to move those results aside into "
                    f"{out_dir}/previous-N/ and start again"
                )
        elif recorded:
            raise RecordsError(f"{out_dir}: has {EPISODES_FILE} but no {RUN_FILE}; use a new --out folder")
        write_json(run_path, run)

        planned_ids = {episode.spec.episode_id for episode in planned}
        done = read_episodes(out_dir / EPISODES_FILE)
        strays = [r["episode_id"] for r in done if r["episode_id"] not in planned_ids]
        if strays:
            raise RecordsError(f"{out_dir / EPISODES_FILE}: episode {strays[0]!r} is not part of this run")
        done_ids = {r["episode_id"] for r in done}
        pending = [episode for episode in planned if episode.spec.episode_id not in done_ids]
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

            if pending and workers == 1 and not isolate:
                _run_in_process(task_list, agent_factory, settings, exemplar, batch_size, turn_timeout, pending, emit)
            elif pending:
                _run_in_workers(
                    task_list, agent_factory, settings, exemplar, batch_size, turn_timeout, pending, emit, workers
                )

        records = read_episodes(out_dir / EPISODES_FILE)
        summary = summarize(records, run, expected=len(planned))
        write_json(out_dir / SUMMARY_FILE, summary)
    return summary
