"""Expert trajectories as an SFT dataset: play the expert, render each turn's chat, write it.

``build_expert_data(suite, out)`` plays :class:`~panoseek.training.experts.ExpertAgent`
through the one rollout loop (:func:`panoseek.envs.rollout.play`) and turns every turn
of every successful episode into one training row: the chat exactly as
:class:`~panoseek.agents.chat.EpisodeChat` renders it for the ``vlm`` agent at that turn
(same prompt format, same ``history`` window of views), followed by the expert's reply.
One row is one decision, and the SFT loss falls on that reply (docs/training.md).

The folder::

    data.json        what was built (suite and fingerprint, prompt format, history, views)
    episodes.jsonl   one line per played episode: its record and, if it succeeded, its rows
    images/<episode>/<turn>.png   the views, each stored once and shared by the rows

A row is ``{"id", "messages": [...], "images": ["images/..png", ...]}``: the ``messages``
+ ``images`` layout TRL's vision collators take.

``turns_left`` renders the chat with the turns-left note of ``EpisodeChat(max_turns=...)``
(the ``vlm`` agent's ``turns_left=true``). ``short_budgets`` (a share P, with ``turns_left``)
plays a seeded share of the episodes with a turn budget of 3..max_turns-1
(:func:`episode_budget`), so the data shows the expert submitting on its last turn, which
full-budget episodes almost never reach; each record says its budget (``max_turns``).

Lines are appended and flushed per episode, so a rerun with the same settings continues
where the last one stopped.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import replace
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from panoseek.agents.chat import STRUCTURES, EpisodeChat
from panoseek.envs.eval.records import EpisodeWriter, config_mismatch, read_episodes, read_json, write_json
from panoseek.envs.eval.runner import make_env
from panoseek.envs.protocol import PROMPT_FORMATS
from panoseek.envs.rollout import EpisodeSettings, EpisodeSpec, Rollout, episode_spec, play
from panoseek.envs.task import Task
from panoseek.training.experts import ExpertAgent
from panoseek.training.sight import SceneSight

DATA_FILE = "data.json"
EPISODES_FILE = "episodes.jsonl"
FORMAT = "panoseek-expert-sft/1"
IDENTITY = ("format", "suite", "fingerprint", "prompt_format", "chat", "history", "view_size", "fov_deg", "max_turns", "seed",
            "turns_left", "short_budgets")
# What a folder written before these options were recorded was built with.
OLD_DEFAULTS = {"turns_left": False, "short_budgets": 0.0}
SHORTEST_BUDGET = 3
BUDGET_STREAM = 0x7475726E  # mixed into the episode seed: budget draws apart from the expert's own


class ExpertDataError(ValueError):
    """An output folder or option that cannot be used; the message names it."""


def plan(tasks: Sequence[Task], seed: int, limit: int | None = None) -> Iterator[EpisodeSpec]:
    """Episodes in build order: every task once (its start rotating with the task index),
    then every task's next start, and so on. Lazy, so ``--limit`` on the 6,000-task
    train split touches only the tasks it uses."""
    produced = 0
    for offset in itertools.count():
        more = False
        for index in range(len(tasks)):
            if limit is not None and produced >= limit:
                return
            task = tasks[index]
            if offset < task.n_starts:
                more, produced = True, produced + 1
                yield episode_spec(task, index, (index + offset) % task.n_starts, seed)
        if not more:
            return


def episode_budget(seed: int, max_turns: int, short_budgets: float) -> int:
    """The turn budget of the episode with seed ``seed``: with probability ``short_budgets`` one
    drawn uniformly from 3..max_turns-1, else ``max_turns``; depends on the seed only, so
    reruns and resumes play the same budgets."""
    rng = np.random.default_rng([int(seed), BUDGET_STREAM])
    if rng.random() < short_budgets:
        return int(rng.integers(SHORTEST_BUDGET, max_turns))
    return max_turns


def conversation_rows(
    rollout: Rollout, prompt_format: str, history: int, image_paths: Sequence[str], structure: str = "panoseek",
    turns_left: bool = False,
) -> list[dict]:
    """One training row per turn: the inference chat at that turn plus the expert's reply
    (with ``turns_left``, the chat of ``VLMAgent(turns_left=True)``: the episode's budget)."""
    info = rollout.task_info
    max_turns = int(info["max_turns"]) if turns_left else None
    chat = EpisodeChat(info["kind"], info["instruction"], prompt_format, history, structure, max_turns)
    rows = []
    for number, turn in enumerate(rollout.turns):
        chat.observe(turn.observation)
        messages, _ = chat.messages()
        shown = [image_paths[index] for index in chat.shown()]
        chat.reply(turn.output)
        messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.output}]})
        rows.append({"id": f"{rollout.spec.episode_id}/{number}", "messages": messages, "images": shown})
    return rows


def _folder_name(episode: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", episode)


def build_expert_data(
    suite: Any,
    out_dir: str | Path,
    *,
    limit: int | None = None,
    prompt_format: str = "free_think",
    chat: str = "panoseek",
    history: int = 2,
    view_size: tuple[int, int] = (448, 252),
    max_turns: int = 10,
    seed: int = 0,
    turns_left: bool = False,
    short_budgets: float = 0.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Play the expert on ``suite`` (a loaded suite) into ``out_dir``; returns counts.

    A folder built with other settings is refused (naming them); the same settings
    resume: episodes already in ``episodes.jsonl`` are skipped.
    """
    if prompt_format not in PROMPT_FORMATS:
        raise ExpertDataError(f"--prompt-format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
    if chat not in STRUCTURES or chat == "hstar":
        raise ExpertDataError(f"--chat must be 'panoseek' or 'compact', got {chat!r}")
    if not isinstance(history, int) or history < 1:
        raise ExpertDataError(f"--history must be a positive number of views, got {history!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ExpertDataError(f"--limit must be a positive number of episodes, got {limit!r}")
    if not isinstance(turns_left, bool):
        raise ExpertDataError(f"--turns-left must be True or False, got {turns_left!r}")
    if (isinstance(short_budgets, bool) or not isinstance(short_budgets, (int, float))
            or not math.isfinite(short_budgets) or not 0.0 <= short_budgets <= 1.0):
        raise ExpertDataError(f"--short-budgets must be a share in [0, 1], got {short_budgets!r}")
    if short_budgets and not turns_left:
        raise ExpertDataError(f"--short-budgets {short_budgets:g} needs --turns-left (a model told no budget "
                              "cannot learn from shorter ones)")
    if short_budgets and max_turns <= SHORTEST_BUDGET:
        raise ExpertDataError(f"--short-budgets needs max_turns above {SHORTEST_BUDGET}, got {max_turns!r}")
    out = Path(out_dir)
    settings = EpisodeSettings(view_size=tuple(view_size), max_turns=max_turns, seed=seed)
    config = {
        "format": FORMAT, "suite": suite.name, "fingerprint": suite.fingerprint, "prompt_format": prompt_format,
        "chat": chat, "history": history, "view_size": list(settings.view_size), "fov_deg": settings.fov_deg,
        "max_turns": max_turns, "seed": seed, "turns_left": turns_left, "short_budgets": float(short_budgets),
        "agent": "expert", "privileged": ["target"],
    }
    if out.exists() and not out.is_dir():
        raise ExpertDataError(f"--out {str(out)!r} exists and is not a folder")
    if (out / DATA_FILE).exists():
        mismatch = config_mismatch({**OLD_DEFAULTS, **read_json(out / DATA_FILE)}, config, IDENTITY)
        if mismatch:
            raise ExpertDataError(f"--out {str(out)!r} holds expert data built with other settings ({'; '.join(mismatch)}); "
                                  "give a new folder")
    elif out.is_dir() and any(out.iterdir()):
        raise ExpertDataError(f"--out {str(out)!r} is not empty and holds no expert data ({DATA_FILE}); give a new folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / DATA_FILE, config)

    done = {record["episode_id"] for record in read_episodes(out / EPISODES_FILE)}
    specs = [spec for spec in plan(suite, seed, limit) if spec.episode_id not in done]
    counts = {"episodes": len(done), "new": 0, "successes": 0, "rows": 0}
    if not specs:
        return counts  # finished: nothing to build
    # The environment holds only the tasks played: building it over a lazy suite would
    # generate every scene of it (a minute for synth:train) to check the tasks.
    used = sorted({spec.task_index for spec in specs})
    tasks = [suite[index] for index in used]
    envs: dict[int, Any] = {}  # one environment per turn budget, made when first needed
    local = {index: position for position, index in enumerate(used)}
    with EpisodeWriter(out / EPISODES_FILE) as writer:
        for spec in tqdm(specs, desc="expert episodes", unit="ep", disable=not progress):
            task = suite[spec.task_index]
            agent = ExpertAgent(prompt_format, sight=SceneSight.from_task(task))
            budget = episode_budget(spec.seed, max_turns, short_budgets)
            if budget not in envs:
                envs[budget] = make_env(tasks, replace(settings, max_turns=budget))
            [rollout] = play([envs[budget]], [agent], [replace(spec, task_index=local[spec.task_index])], strict=True,
                             keep_turns=True)
            record = dict(rollout.record)
            record["max_turns"] = budget
            record["rows"] = []
            if record["success"] and all(action["well_formed"] for action in record["actions"]):
                folder = Path("images") / _folder_name(spec.episode_id)
                (out / folder).mkdir(parents=True, exist_ok=True)
                paths = []
                for number, turn in enumerate(rollout.turns):
                    path = folder / f"{number}.png"
                    Image.fromarray(turn.observation["image"]).save(out / path)
                    paths.append(path.as_posix())
                record["rows"] = conversation_rows(rollout, prompt_format, history, paths, chat, turns_left)
            writer.write(record)
            counts["new"] += 1
            counts["successes"] += bool(record["rows"])
            counts["rows"] += len(record["rows"])
    counts["episodes"] += counts["new"]
    return counts
