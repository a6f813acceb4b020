"""DPO preference pairs at the expert's histories: the expert's reply against the model's worse one.

``build_preferences(expert_dir, model, out)`` takes every turn of every successful expert
episode of ``panoseek data experts`` and lets the model answer at that same history:
a :class:`BranchAgent` replays the expert's replies up to the turn, then samples the
model's own reply, and the episode is played through the one rollout loop
(:func:`panoseek.envs.rollout.play`) in an environment whose turn budget ends it right
after that reply. So the model sees exactly the chat (rendered by
:class:`~panoseek.agents.chat.EpisodeChat`, same history window; for ``--turns-left`` data
with the turns-left note of the expert episode's own budget, not the branch's) and the
views the expert row holds, checked message by message and pixel by pixel, and the
environment and protocol judge its reply exactly as ``panoseek eval`` does by default
(lenient parser: a reply it reads but that breaks the strict layout is an action without
the format reward).

A sampled reply becomes the *rejected* side of a pair when the judgement says it is worse
than the expert's (which is strict, well-formed and on a successful trajectory):

* ``invalid``: the strict protocol does not read an action (the turn is lost);
* ``malformed``: an action, but not the strict layout of the prompt format (no format reward);
* ``failed_submit``: a submission the judge fails (the episode ends, lost);
* ``delays_submit``: a rotation where the expert submitted (the target was centred);
* ``revisit``: a rotation back to a heading the episode already looked at (a wasted turn).

Anything else (the expert's own action, a successful submission, a rotation to a new heading) is not judged worse
and gives no pair; the counts say how many. The folder::

    preferences.json   what was built (expert data and fingerprint, model, sampling, the data's chat options)
    episodes.jsonl     one line per expert episode: every sampled reply, its verdict, its pairs
    images/<episode>/<turn>.png   the views, copied from the expert folder

A pair is ``{"id", "prompt": [...], "images": [...], "chosen": [...], "rejected": [...],
"reason"}``: the conversational prompt + preference layout of TRL's
``DataCollatorForVisionPreference`` (images only in the prompt, hence one pair per turn).
Lines are flushed per episode, so a rerun with the same settings continues.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from panoseek.agents.chat import EpisodeChat
from panoseek.envs.eval.records import EpisodeWriter, RecordsError, config_mismatch, read_episodes, read_json, write_json
from panoseek.envs.eval.runner import make_env
from panoseek.envs.geometry import yaw_distance
from panoseek.envs.protocol import SUBMIT
from panoseek.envs.rollout import EpisodeSettings, Turn, episode_seed, play
from panoseek.training.expert_data import DATA_FILE, EPISODES_FILE, OLD_DEFAULTS, plan

PREFERENCES_FILE = "preferences.json"
FORMAT = "panoseek-preferences/1"
IDENTITY = ("format", "expert_data", "fingerprint", "model", "samples", "temperature", "max_new_tokens", "seed",
            "prompt_format", "chat", "history", "turns_left", "short_budgets")  # the data's chat options too
REASONS = ("invalid", "malformed", "failed_submit", "delays_submit", "revisit")
SAME_HEADING_DEG = 1.0  # headings closer than this in yaw and pitch are the same view
JUDGED_STRICT = False  # replies are read as `panoseek eval` reads them by default (lenient parser)


class PreferenceError(ValueError):
    """A data folder, model folder, option or pairs row that cannot be used; the message names it."""


class BranchAgent:
    """Replays the expert's replies up to turn ``turn``, then answers that turn with the model.

    ``act_batch`` answers all branches due at a turn with one ``generate`` call; ``prompt``
    keeps the chat (messages and views) the model was shown. ``max_turns`` is the expert
    episode's budget for the turns-left note (None: no note), not the branch environment's.
    """

    def __init__(self, policy: Any, replies: Sequence[str], turn: int, prompt_format: str, history: int,
                 seed: int, structure: str = "panoseek", max_turns: int | None = None) -> None:
        self.policy, self.replies, self.turn = policy, list(replies), int(turn)
        self.prompt_format, self.history, self.seed = prompt_format, int(history), int(seed)
        self.structure, self.max_turns = structure, max_turns
        self.chat: EpisodeChat | None = None
        self.prompt: tuple[list[dict], list[Image.Image]] | None = None

    def reset(self, task_info: dict[str, Any]) -> None:
        self.chat = EpisodeChat(task_info["kind"], task_info["instruction"], self.prompt_format, self.history,
                                self.structure, self.max_turns)

    def act(self, observation: dict[str, Any]) -> str:
        return BranchAgent.act_batch([self], [observation])[0]

    @staticmethod
    def act_batch(agents: Sequence["BranchAgent"], observations: Sequence[dict[str, Any]]) -> list[str]:
        replies: list[str | None] = []
        for agent, observation in zip(agents, observations):
            agent.chat.observe(observation)
            turn = len(agent.chat.turns) - 1
            replies.append(agent.replies[turn] if turn < agent.turn else None)
        due = [index for index, reply in enumerate(replies) if reply is None]
        if due:
            for index in due:
                agents[index].prompt = agents[index].chat.messages()
            first = agents[due[0]]
            sampled = first.policy.generate([agents[i].chat for i in due], seed=first.seed)
            for index, reply in zip(due, sampled):
                replies[index] = reply
        for agent, reply in zip(agents, replies):
            agent.chat.reply(reply)
        return replies


def verdict(candidate: Turn, expert_action: dict[str, Any], headings: Sequence[Sequence[float]]) -> str | None:
    """Why ``candidate`` (the model's turn) is worse than the expert's action there, or None.

    ``headings`` are the episode's headings up to and including the one the turn started from.
    """
    info = candidate.info
    if not info["valid_action"]:
        return "invalid"
    if not info["well_formed"]:
        return "malformed"
    if candidate.action.kind == SUBMIT:
        return None if info["success"] else "failed_submit"
    if expert_action["parsed"]["kind"] == SUBMIT:
        return "delays_submit"
    yaw, pitch = (float(angle) for angle in info["heading"])

    def same(old: Sequence[float]) -> bool:
        return float(yaw_distance(yaw, float(old[0]))) < SAME_HEADING_DEG and abs(pitch - float(old[1])) < SAME_HEADING_DEG

    if same(expert_action["heading"]):
        return None  # where the expert turned (its own rotation, which may go back to a seen heading): not worse
    return "revisit" if any(same(old) for old in headings) else None


def _reply_message(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def _check_shown(expert_dir: Path, row: dict[str, Any], prompt: tuple[list[dict], list[Image.Image]]) -> None:
    """The model was shown exactly the expert row's chat and views (else the data and env disagree)."""
    messages, views = prompt
    if messages != row["messages"][:-1] or len(views) != len(row["images"]):
        raise PreferenceError(f"{expert_dir}: row {row['id']!r}: the replayed chat differs from the stored one "
                              "(expert data built by another version of the chat or suite); rebuild it")
    for view, path in zip(views, row["images"]):
        if not np.array_equal(np.asarray(view), np.asarray(Image.open(expert_dir / path).convert("RGB"))):
            raise PreferenceError(f"{expert_dir}: row {row['id']!r}: view {path!r} differs from the one the "
                                  "environment renders (expert data built by another renderer); rebuild it")


def load_policy(model: Any, *, temperature: float, max_new_tokens: int, dtype: str = "float32", device: str = "cpu"):
    """A sampling :class:`~panoseek.agents.vlm.VLMPolicy` for a model folder; anything else is
    taken as a loaded policy (it has ``generate(chats, seed)``)."""
    from panoseek.agents.vlm import VLMError, VLMPolicy, load_vlm

    if not isinstance(model, (str, Path)):
        return model
    try:
        loaded, processor = load_vlm(model, dtype=dtype, device=device)
        if not getattr(processor, "chat_template", None):
            raise PreferenceError(f"model folder {str(model)!r} has no chat template (chat_template.jinja, or "
                                  "chat_template in tokenizer_config.json / processor_config.json): the prompts "
                                  "are rendered with it")
        return VLMPolicy(loaded, processor, sample=True, temperature=temperature, max_new_tokens=max_new_tokens)
    except VLMError as error:
        raise PreferenceError(str(error)) from None


def build_preferences(
    expert_dir: str | Path,
    model: Any,
    out_dir: str | Path,
    *,
    samples: int = 2,
    temperature: float = 1.0,
    max_new_tokens: int = 96,
    seed: int = 0,
    limit: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool = True,
) -> dict[str, int]:
    """Sample ``samples`` model replies at every turn of the successful expert episodes of
    ``expert_dir`` (the first ``limit`` of them), judge them, write the pairs into ``out_dir``;
    returns counts (episodes, sampled replies, pairs, pairs per reason).

    ``model`` is a model folder or a loaded sampling :class:`~panoseek.agents.vlm.VLMPolicy`
    (or any object with its ``generate(chats, seed)``). A folder built with other settings
    is refused; the same settings resume.
    """
    from panoseek.scenes import load_suite

    expert_dir, out = Path(expert_dir).resolve(), Path(out_dir)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise PreferenceError(f"--limit must be a positive number of episodes, got {limit!r}")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise PreferenceError(f"--samples must be a positive integer, got {samples!r}")
    if not (expert_dir / DATA_FILE).is_file():
        raise PreferenceError(f"--data {str(expert_dir)!r} is not an expert-data folder (it has no {DATA_FILE}; "
                              "build one with `panoseek data experts`)")
    data = {**OLD_DEFAULTS, **read_json(expert_dir / DATA_FILE)}  # older data: built without the turns-left note
    try:
        records = read_episodes(expert_dir / EPISODES_FILE)
    except RecordsError as error:
        raise PreferenceError(str(error)) from None
    config = {
        "format": FORMAT, "expert_data": str(expert_dir), "fingerprint": data.get("fingerprint"),
        "model": str(Path(model).resolve()) if isinstance(model, (str, Path)) else type(model).__name__,
        "samples": samples,
        "temperature": float(temperature), "max_new_tokens": int(max_new_tokens), "seed": int(seed),
        "prompt_format": data["prompt_format"], "chat": data.get("chat", "panoseek"), "history": data["history"],
        "view_size": data["view_size"], "strict": JUDGED_STRICT, "turns_left": data["turns_left"],
        "short_budgets": data["short_budgets"],
    }
    if out.exists() and not out.is_dir():
        raise PreferenceError(f"--out {str(out)!r} exists and is not a folder")
    if (out / PREFERENCES_FILE).exists():
        older = {**OLD_DEFAULTS, "chat": "panoseek"}  # what folders from before those options were built with
        mismatch = config_mismatch({**older, **read_json(out / PREFERENCES_FILE)}, config, IDENTITY)
        if mismatch:
            raise PreferenceError(f"--out {str(out)!r} holds preference pairs built with other settings "
                                  f"({'; '.join(mismatch)}); give a new folder")
    elif out.is_dir() and any(out.iterdir()):
        raise PreferenceError(f"--out {str(out)!r} is not empty and holds no preference pairs ({PREFERENCES_FILE}); "
                              "give a new folder")
    suite = load_suite(data["suite"])
    if suite.fingerprint != data.get("fingerprint"):
        raise PreferenceError(f"--data {str(expert_dir)!r} was built on suite {data['suite']!r} with fingerprint "
                              f"{data.get('fingerprint')!r}, which is now {suite.fingerprint!r}; rebuild the expert data")
    policy = load_policy(model, temperature=temperature, max_new_tokens=max_new_tokens, dtype=dtype, device=device)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / PREFERENCES_FILE, config)

    done = {record["episode_id"] for record in read_episodes(out / EPISODES_FILE)}
    todo = [record for record in records if record.get("rows")][:limit]
    todo = [record for record in todo if record["episode_id"] not in done]
    # The environments hold only the tasks played (as the expert data builder's): building
    # one over a lazy suite would generate every scene of it.
    planned = {spec.episode_id: spec for spec in plan(suite, data["seed"], len(records))}
    used = sorted({planned[record["episode_id"]].task_index for record in todo})
    tasks, local = [suite[index] for index in used], {index: position for position, index in enumerate(used)}
    specs = {eid: replace(spec, task_index=local[spec.task_index]) for eid, spec in planned.items()
             if spec.task_index in local}
    settings = EpisodeSettings(view_size=tuple(data["view_size"]), fov_deg=data["fov_deg"], seed=data["seed"])
    counts = {"episodes": len(done), "new": 0, "candidates": 0, "pairs": 0, **{reason: 0 for reason in REASONS}}
    with EpisodeWriter(out / EPISODES_FILE) as writer:
        for record in tqdm(todo, desc="preference episodes", unit="ep", disable=not progress):
            line = _episode_pairs(expert_dir, out, record, specs[record["episode_id"]], tasks, settings, policy, data,
                                  samples, seed)
            writer.write(line)
            counts["new"] += 1
            counts["candidates"] += len(line["candidates"])
            counts["pairs"] += len(line["pairs"])
            for pair in line["pairs"]:
                counts[pair["reason"]] += 1
    counts["episodes"] += counts["new"]
    return counts


def _episode_pairs(expert_dir: Path, out: Path, record: dict[str, Any], spec: Any, tasks: Sequence[Any],
                   settings: EpisodeSettings, policy: Any, data: dict, samples: int, seed: int) -> dict:
    """Branch the model off every turn of one expert episode; its line of ``episodes.jsonl``."""
    rows = record["rows"]
    replies = [row["messages"][-1]["content"][0]["text"] for row in rows]
    branches = [(turn, sample) for turn in range(len(rows)) for sample in range(samples)]
    # One environment per branch, its turn budget ending the episode right after the model's turn;
    # the chat's turns-left note counts down the budget the expert episode was played (and rendered) with.
    envs = [make_env(tasks, replace(settings, max_turns=turn + 1)) for turn, _ in branches]
    budget = int(record["max_turns"]) if data["turns_left"] else None  # the budget the expert row was rendered with
    agents = [BranchAgent(policy, replies, turn, data["prompt_format"], data["history"],
                          episode_seed(seed, f"{spec.episode_id}/{turn}"), data.get("chat", "panoseek"), budget)
              for turn, _ in branches]
    rollouts = play(envs, agents, [spec] * len(branches), strict=JUDGED_STRICT, keep_turns=True)
    candidates, pairs = [], []
    for (turn, sample), agent, rollout in zip(branches, agents, rollouts):
        row = rows[turn]
        if rollout.record["error"]:
            raise PreferenceError(f"episode {spec.episode_id}, turn {turn}: the model failed: {rollout.record['error']}")
        _check_shown(expert_dir, row, agent.prompt)
        candidate = rollout.turns[turn]
        reason = verdict(candidate, record["actions"][turn], record["headings"][: turn + 1])
        candidates.append({"turn": turn, "sample": sample, "reply": candidate.output, "reason": reason})
        if reason is None:
            continue
        images = []
        for path in row["images"]:
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            if not (out / path).exists():
                shutil.copy2(expert_dir / path, out / path)
            images.append(path)
        pairs.append({"id": f"{row['id']}/{sample}", "prompt": row["messages"][:-1], "images": images,
                      "chosen": _reply_message(replies[turn]), "rejected": _reply_message(candidate.output),
                      "reason": reason})
    return {"episode_id": record["episode_id"], "candidates": candidates, "pairs": pairs}


# ------------------------------------------------------------------------ reading back


def _image_entries(messages: list[dict[str, Any]]) -> int:
    return sum(1 for message in messages for part in message.get("content") or []
               if isinstance(part, dict) and part.get("type") == "image")


def _reply_text(pair: dict[str, Any], side: str, name: str) -> str:
    value = pair.get(side)
    if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
            and value[0].get("role") == "assistant"):
        raise PreferenceError(f"{name}: {side!r} must be one assistant message")
    parts = value[0].get("content")
    if not (isinstance(parts, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in parts)):
        raise PreferenceError(f"{name}: {side!r} must hold text parts only (images belong in the prompt)")
    return "".join(str(p.get("text", "")) for p in parts)


def check_pair(folder: Path, pair: dict[str, Any]) -> None:
    """Raise :class:`PreferenceError` unless ``pair`` is a trainable preference pair with its images."""
    name = f"{folder}: pair {pair.get('id')!r}"
    prompt, images = pair.get("prompt"), pair.get("images")
    if not isinstance(prompt, list) or not prompt or not all(isinstance(m, dict) for m in prompt):
        raise PreferenceError(f"{name} has no prompt messages")
    if prompt[-1].get("role") != "user":
        raise PreferenceError(f"{name}: the prompt must end with a user turn, not {prompt[-1].get('role')!r}")
    if not isinstance(images, list) or _image_entries(prompt) != len(images):
        raise PreferenceError(f"{name} has {_image_entries(prompt)} image entries but lists "
                              f"{len(images) if isinstance(images, list) else images!r} images")
    for image in images:
        if not (folder / str(image)).is_file():
            raise PreferenceError(f"{name}: image {str(image)!r} is missing")
    if _reply_text(pair, "chosen", name) == _reply_text(pair, "rejected", name):
        raise PreferenceError(f"{name}: chosen and rejected are the same reply (nothing to prefer)")


def read_pairs(folder: str | Path) -> list[dict[str, Any]]:
    """Every pair of a preferences folder, checked (see :func:`check_pair`)."""
    folder = Path(folder)
    if not (folder / PREFERENCES_FILE).is_file():
        raise PreferenceError(f"--data {str(folder)!r} is not a preferences folder (it has no {PREFERENCES_FILE}; "
                              "build one with `panoseek data preferences`)")
    try:
        lines = read_episodes(folder / EPISODES_FILE)
    except RecordsError as error:
        raise PreferenceError(str(error)) from None
    pairs = [pair for line in lines for pair in line.get("pairs") or []]
    for pair in pairs:
        check_pair(folder, pair)
    if not pairs:
        raise PreferenceError(f"--data {str(folder)!r} holds no preference pairs (no sampled reply was judged worse)")
    return pairs


def load_preference_dataset(folder: str | Path):
    """The pairs of ``folder`` as a ``datasets.Dataset`` (prompt, images, chosen, rejected)."""
    import datasets

    folder = Path(folder)
    records = [{"id": pair["id"], "prompt": pair["prompt"], "images": [str(folder / p) for p in pair["images"]],
                "chosen": pair["chosen"], "rejected": pair["rejected"]} for pair in read_pairs(folder)]
    return datasets.Dataset.from_list(records).cast_column("images", datasets.List(datasets.Image()))
