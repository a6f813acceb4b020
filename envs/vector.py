"""N search episodes stepped and rendered in one call: the vector env for small RL policies.

:class:`VectorSearchEnv` is what ``N`` copies of
``DiscreteRotations(PanoramaSearchEnv(tasks, ...))`` in a Gymnasium ``SyncVectorEnv``
are, without the Python loop over ``N`` environments: the episode states are arrays
(task, start, yaw, pitch, turn), an action batch updates them at once, and the ``N``
views are rendered together, by :func:`~panoseek.envs.render.render_view` one after the
other (optionally on a thread pool: OpenCV releases the GIL) or, with ``renderer="torch"``, by
:func:`~panoseek.envs.render_torch.render_views_torch` (the Triton sampler on a GPU).

* **Actions**: ``MultiDiscrete([n] * N)`` with the indices of
  :class:`~panoseek.envs.wrappers.DiscreteRotations` (its own table is read from a
  wrapper built here, never copied): submit the current heading, right, left, up, down,
  big right, big left. Every action goes through the one validator
  (:func:`~panoseek.envs.protocol.parse_structured`); an index outside the table is an
  invalid turn (it counts, nothing moves), as in the wrapper.
* **Rewards**: :func:`panoseek.envs.judge.final_reward` on submission, 0 otherwise.
* **Autoreset**: Gymnasium's ``SAME_STEP`` mode (``metadata["autoreset_mode"]``). A step
  that ends an episode returns its reward and termination flags together with the
  *first* observation of the next episode; the last observation of the finished episode
  is in ``info["final_obs"][i]`` and its info in ``info["final_info"]`` (masks
  ``info["_final_obs"]``). This is the convention CleanRL's PPO was written for: a
  done flag means "the next observation starts a new episode".
* **Episodes** are drawn as ``PanoramaSearchEnv.reset`` draws them (a uniform task, then a
  uniform start) with environment ``i`` seeded ``seed + i``, as ``SyncVectorEnv`` seeds
  its copies: with ``working_set=None`` the observations, rewards and flags equal those
  of ``SyncVectorEnv(..., autoreset_mode=SAME_STEP)`` over the single environments
  (``tests/test_vector_env.py``).
* **Working set** (``working_set=K``): generating a synth panorama costs ~0.1-0.25 s,
  far more than the episodes played on it, so episodes are drawn only from the tasks of
  ``K`` panoramas held in memory, and after every ``swap_every`` finished episodes the
  oldest panorama of the set is replaced by a random other one. ``info["task_index"]``
  and ``info["start_index"]`` name each running episode, so any episode can be replayed
  in a single environment.

``info`` holds arrays: ``task_index``, ``start_index``, ``turn`` (of the returned
observation), ``valid_action`` and ``success`` (of this step's action). With
``training_labels=True`` also ``progress`` (of this step's action: degrees by which a
turn closed the miss of the target's windows, :func:`panoseek.envs.judge.progress`, 0
for a submission) and ``target_direction`` (of the returned observation: signed degrees
from its heading to the target, :func:`panoseek.envs.judge.target_direction`); off by
default, so stepping costs nothing for them. Nothing in it is shown to an agent: the
training code reads the rewards and flags, and optionally progress (shaping) and
target_direction (an auxiliary loss's labels).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from panoseek.envs import judge
from panoseek.envs.agent import submit
from panoseek.envs.env import PanoramaSearchEnv, draw_crosshair
from panoseek.envs.geometry import clamp_pitch, wrap_yaw
from panoseek.envs.protocol import parse_structured
from panoseek.envs.panorama_cache import PanoramaCache
from panoseek.envs.render import PreparedPanorama, render_view
from panoseek.envs.task import panorama_groups, panorama_key
from panoseek.envs.wrappers import DiscreteRotations

RENDERERS = ("opencv", "torch")


class VectorSearchEnv(gym.vector.VectorEnv):
    """``num_envs`` discrete-rotation search episodes over ``tasks``, stepped together (see module doc).

    Arguments as :class:`~panoseek.envs.env.PanoramaSearchEnv` (``view_size``, ``fov_deg``,
    ``max_turns``, ``crosshair``, ``distance_reward``) and
    :class:`~panoseek.envs.wrappers.DiscreteRotations` (``step_deg``, ``big_step_deg``),
    plus ``working_set`` (None: any task; K: the tasks of K panoramas at a time),
    ``swap_every`` (finished episodes between two swaps of the working set),
    ``renderer`` (``"opencv"``: the single environment's renderer, identical pixels;
    ``"torch"``: ``render_views_torch`` on ``device``, within rounding of it),
    ``threads`` (views rendered side by side by a pool of that many threads; the default 1
    leaves the parallelism to OpenCV's own threads inside each ``remap``, which was faster
    on a 2-core machine: ``benchmarks/vector_env.py``) and ``training_labels`` (add ``progress`` and
    ``target_direction`` to ``info``).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        tasks: Sequence,
        num_envs: int,
        *,
        view_size: tuple[int, int] = (448, 252),
        fov_deg: float = 100.0,
        max_turns: int = 10,
        crosshair: bool = True,
        distance_reward: bool = False,
        step_deg: float = 30.0,
        big_step_deg: float | None = 90.0,
        working_set: int | None = None,
        swap_every: int = 500,
        renderer: str = "opencv",
        device: str = "cuda",
        threads: int = 1,
        training_labels: bool = False,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if renderer not in RENDERERS:
            raise ValueError(f"renderer must be one of {RENDERERS}, got {renderer!r}")
        # The single environment and wrapper check every shared argument and define the
        # spaces and the action table; they are never stepped.
        self.single = DiscreteRotations(
            PanoramaSearchEnv(tasks, view_size=view_size, fov_deg=fov_deg, max_turns=max_turns,
                              crosshair=crosshair, distance_reward=distance_reward),
            step_deg=step_deg, big_step_deg=big_step_deg,
        )
        base: PanoramaSearchEnv = self.single.unwrapped
        self.tasks = base.tasks
        self.view_size, self.fov_deg, self.max_turns = base.view_size, base.fov_deg, base.max_turns
        self.crosshair, self.distance_reward = base.crosshair, base.distance_reward
        self.step_deg, self.big_step_deg = step_deg, big_step_deg
        self.action_names: tuple[str, ...] = self.single.action_names
        self.submit_index = self.action_names.index("submit")
        self._dyaw = np.zeros(len(self.action_names))  # the turn of each index (0 for submit)
        self._dpitch = np.zeros(len(self.action_names))
        for index in range(len(self.action_names)):
            if index != self.submit_index:
                turn = parse_structured(self.single.action(index))
                self._dyaw[index], self._dpitch[index] = turn.yaw, turn.pitch

        self.num_envs = num_envs
        self.single_observation_space = base.observation_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.single_action_space = self.single.action_space
        self.action_space = spaces.MultiDiscrete([self.single_action_space.n] * num_envs)

        self._groups = panorama_groups(self.tasks)
        if working_set is not None and (isinstance(working_set, bool) or not isinstance(working_set, int) or working_set < 1):
            raise ValueError(f"working_set must be None or a positive integer, got {working_set!r}")
        if isinstance(swap_every, bool) or not isinstance(swap_every, int) or swap_every < 1:
            raise ValueError(f"swap_every must be a positive integer, got {swap_every!r}")
        self.working_set = None if working_set is None else min(working_set, len(self._groups))
        self.swap_every = swap_every
        self.training_labels = bool(training_labels)
        self.timings = {"load_s": 0.0, "render_s": 0.0}
        self._cache = PanoramaCache(self.working_set or num_envs + 4)

        self.renderer, self.device = renderer, device
        self._gpu: dict[str, Any] = {}  # panorama key -> its pixels on the device (torch renderer)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        self._pool = ThreadPoolExecutor(threads) if renderer == "opencv" and threads > 1 else None

        width, height = self.view_size
        self._task = np.zeros(num_envs, np.int64)
        self._start = np.zeros(num_envs, np.int64)
        self._yaw = np.zeros(num_envs)
        self._pitch = np.zeros(num_envs)
        self._turn = np.zeros(num_envs, np.int64)
        self._images = np.zeros((num_envs, height, width, 3), np.uint8)
        self._pano: list[PreparedPanorama | None] = [None] * num_envs
        self._keys: list[str] = [""] * num_envs  # panorama key of each running episode
        self._rngs: list[np.random.Generator] = []
        self._set_rng: np.random.Generator | None = None
        self._working: list[int] = []  # group indices of the working set, oldest first
        self._finished = 0  # episodes finished since the last swap

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Start a new episode in every environment; ``seed`` seeds environment ``i`` with ``seed + i``."""
        if options:
            raise ValueError(f"unknown reset option(s) {sorted(options)}; VectorSearchEnv takes none")
        if seed is not None or not self._rngs:
            self._rngs = [seeding.np_random(None if seed is None else seed + i)[0] for i in range(self.num_envs)]
            self._set_rng = np.random.default_rng(None if seed is None else [seed, self.num_envs])
            self._finished = 0
            if self.working_set is not None:
                self._working = [int(g) for g in self._set_rng.choice(len(self._groups), self.working_set, replace=False)]
        everyone = np.arange(self.num_envs)
        self._new_episodes(everyone)
        self._render(everyone, self._images)
        info = self._info(np.ones(self.num_envs, bool), np.zeros(self.num_envs, bool))
        if self.training_labels:
            info["target_direction"] = self._target_directions()
        return self._observation(), info

    def step(self, actions: Any) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict]:
        """One turn of every episode; finished episodes restart at once (``SAME_STEP``)."""
        if not self._rngs:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be {self.num_envs} integers, got {actions.dtype} array of shape {actions.shape}")
        valid = (actions >= 0) & (actions < len(self.action_names))
        submits = valid & (actions == self.submit_index)
        turning = valid & ~submits
        self._turn += 1
        rewards = np.zeros(self.num_envs)
        success = np.zeros(self.num_envs, bool)
        before = np.stack([self._yaw, self._pitch], axis=1) if self.training_labels else None
        self._yaw[turning] = wrap_yaw(self._yaw[turning] + self._dyaw[actions[turning]])
        self._pitch[turning] = clamp_pitch(self._pitch[turning] + self._dpitch[actions[turning]])
        for i in np.flatnonzero(submits):
            action = parse_structured(submit(float(self._yaw[i]), float(self._pitch[i])))
            task = self.tasks[self._task[i]]
            answer = (wrap_yaw(action.yaw), float(action.pitch))
            rewards[i] = judge.final_reward(task, *answer, well_formed=True, shaping=self.distance_reward)
            success[i] = judge.is_success(task, *answer)
        terminated = submits
        truncated = ~terminated & (self._turn >= self.max_turns)
        self._render(np.flatnonzero(turning), self._images)
        step_info = self._info(valid, success)
        if self.training_labels:
            step_info["progress"] = np.zeros(self.num_envs)
            for i in np.flatnonzero(turning):
                step_info["progress"][i] = judge.progress(self.tasks[self._task[i]], tuple(before[i]),
                                                          (self._yaw[i], self._pitch[i]))
        info = dict(step_info)
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            final_obs = self._observation()
            for i in done:
                final = {key: value[i] for key, value in final_obs.items()}
                final_info = {key: value[i] for key, value in step_info.items()}
                info = self._add_info(info, {"final_obs": final, "final_info": final_info}, int(i))
            self._new_episodes(done)
            self._render(done, self._images)
            info.update({key: getattr(self, attr).copy() for key, attr in _EPISODE_INFO.items()})
            self._finished += done.size
            if self.working_set is not None and self.working_set < len(self._groups) and self._finished >= self.swap_every:
                self._swap()
        if self.training_labels:
            info["target_direction"] = self._target_directions()
        return self._observation(), rewards, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    # ------------------------------------------------------------------ state (for resumable training)

    def get_state(self) -> dict[str, Any]:
        """Everything that decides the future of the episodes, as plain Python data (views are re-rendered)."""
        return {
            "rngs": [rng.bit_generator.state for rng in self._rngs],
            "set_rng": None if self._set_rng is None else self._set_rng.bit_generator.state,
            "working": list(self._working), "finished": self._finished,
            "arrays": {name: getattr(self, name).tolist() for name in ("_task", "_start", "_yaw", "_pitch", "_turn")},
        }

    def set_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """Continue exactly where :meth:`get_state` was taken (in a fresh env over the same tasks);
        returns the current observation."""
        self._rngs = [seeding.np_random(0)[0] for _ in range(self.num_envs)]
        for rng, rng_state in zip(self._rngs, state["rngs"], strict=True):
            rng.bit_generator.state = rng_state
        self._set_rng = np.random.default_rng(0)
        if state["set_rng"] is not None:
            self._set_rng.bit_generator.state = state["set_rng"]
        self._working, self._finished = list(state["working"]), int(state["finished"])
        for name, value in state["arrays"].items():
            getattr(self, name)[:] = value
        self._pano = [self._panorama(int(t)) for t in self._task]
        self._keys = [panorama_key(self.tasks[t], int(t)) for t in self._task]
        self._render(np.arange(self.num_envs), self._images)
        return self._observation()

    # ------------------------------------------------------------------ helpers

    def _new_episodes(self, indices: np.ndarray) -> None:
        """Draw the next episode of each environment in ``indices`` (as PanoramaSearchEnv.reset draws)."""
        for i in indices:
            rng = self._rngs[i]
            if self.working_set is None:
                task = int(rng.integers(len(self.tasks)))
            else:
                group = self._groups[self._working[int(rng.integers(len(self._working)))]]
                task = group[int(rng.integers(len(group)))]
            start = int(rng.integers(self.tasks[task].n_starts))
            self._task[i], self._start[i] = task, start
            self._yaw[i], self._pitch[i], self._turn[i] = self.tasks[task].start_yaws[start], 0.0, 0
            self._pano[i], self._keys[i] = self._panorama(task), panorama_key(self.tasks[task], task)

    def _swap(self) -> None:
        """Replace the oldest panorama of the working set by a random one outside it."""
        self._finished = 0
        self._working = swap_oldest(self._working, len(self._groups), self._set_rng)

    def _panorama(self, task_index: int) -> PreparedPanorama:
        """A task's prepared panorama, from a cache shared by the episodes of all environments."""
        return self._cache.get(self.tasks, task_index, self.timings)

    def _render(self, indices: np.ndarray, out: np.ndarray) -> None:
        """Render the current view of each environment in ``indices`` into ``out[i]``."""
        if not len(indices):
            return
        start = time.perf_counter()
        if self.renderer == "torch":
            self._render_torch(indices, out)
        else:
            def one(i: int) -> None:
                out[i] = render_view(self._pano[i], self._yaw[i], self._pitch[i], fov_deg=self.fov_deg, size=self.view_size)

            if self._pool is None or len(indices) == 1:
                for i in indices:
                    one(i)
            else:
                list(self._pool.map(one, indices))
        if self.crosshair:
            for i in indices:
                draw_crosshair(out[i], self.crosshair)
        self.timings["render_s"] += time.perf_counter() - start

    def _render_torch(self, indices: np.ndarray, out: np.ndarray) -> None:
        """One ``render_views_torch`` call per distinct panorama among ``indices``."""
        import torch

        from panoseek.envs.render_torch import render_views_torch

        by_panorama: dict[str, list[int]] = {}
        for i in indices:
            by_panorama.setdefault(self._keys[i], []).append(int(i))
        for key in [key for key in self._gpu if key not in self._keys]:
            del self._gpu[key]  # no running episode looks into it any more
        for key, members in by_panorama.items():
            pano = self._pano[members[0]]
            if key not in self._gpu:
                self._gpu[key] = torch.from_numpy(np.ascontiguousarray(pano.rgbx[..., :3])).to(self.device)
            views = render_views_torch(self._gpu[key], self._yaw[members], self._pitch[members],
                                       fov_deg=self.fov_deg, size=self.view_size)
            out[members] = views.cpu().numpy()

    def _observation(self) -> dict[str, Any]:
        return {
            "image": self._images.copy(),
            "instruction": tuple(self.tasks[t].instruction for t in self._task),
            "heading": np.stack([self._yaw, self._pitch], axis=1).astype(np.float32),
        }

    def _info(self, valid: np.ndarray, success: np.ndarray) -> dict[str, Any]:
        info = {key: getattr(self, attr).copy() for key, attr in _EPISODE_INFO.items()}
        info.update(valid_action=valid.copy(), success=success.copy())
        return info

    def _target_directions(self) -> np.ndarray:
        """(N, 2) signed degrees from each environment's heading to its target (a training label)."""
        return np.array([judge.target_direction(self.tasks[t], y, p) for t, y, p in zip(self._task, self._yaw, self._pitch)])


_EPISODE_INFO = {"task_index": "_task", "start_index": "_start", "turn": "_turn"}


def swap_oldest(working: list[int], groups: int, rng: np.random.Generator) -> list[int]:
    """A working set of group indices with its oldest (first) one replaced by a random group
    outside it (of ``range(groups)``): how a working set of panoramas turns over."""
    inside = set(working)
    outside = [g for g in range(groups) if g not in inside]
    return working[1:] + [outside[int(rng.integers(len(outside)))]]

