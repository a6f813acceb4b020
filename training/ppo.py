"""PPO for the small recurrent search policy, CleanRL style (after ``ppo_atari_lstm.py``).

One file, readable top to bottom: settings, the vector env and the policy, then the
loop of updates: collect ``num_steps`` turns of ``num_envs`` episodes, compute GAE
advantages, optimise the clipped policy loss, the clipped value loss and an entropy
bonus over minibatches of whole environments (the GRU needs its sequences), with a
linearly annealed learning rate.

Autoreset: :class:`~panoseek.envs.vector.VectorSearchEnv` uses Gymnasium's ``SAME_STEP``
mode, which is what CleanRL's loop assumes (it was written for gym 0.29, whose vector
envs reset in the same step): ``done`` after a step means the returned observation
starts a new episode, so it resets the GRU state and cuts the GAE recursion there.
A truncated episode (turn budget spent) is a failure with reward 0, not a cut to
bootstrap through: the turn count is part of the policy's input. By default the only
action on the last turn is submit (``last_turn_submits``), so no episode is truncated.

Reward: the env's reward (:func:`panoseek.envs.judge.final_reward` on submission, the
reward ``panoseek eval`` reports) plus, with ``progress_reward`` = c, a shaping term of
c per 90 degrees by which a turn closed the miss of the target's windows
(:func:`panoseek.envs.judge.progress`), as ObjectNav agents (allenai/procthor-rl) are
rewarded for the change in distance to the goal. Over an episode it sums to c times the
start's miss minus the submitted miss, so with gamma 1 (the default) it cannot be farmed
by turning back and forth; it pays for turning toward a target that is in view long before success alone
teaches the policy to see. The CSV's ``return`` is the env's reward only. With
``target_loss`` = w > 0 the policy grows a target head (:meth:`SearchPolicy.target_loss`):
w times an auxiliary loss on privileged labels (is the target in view, where) is added
to the PPO loss, a dense signal for perception (auxiliary tasks as in UNREAL). Both are
training signals only: the trained policy acts on the views, instruction and heading
alone, and ``panoseek eval`` scores it like any other agent. With ``warmup_steps`` > 0 a
fresh run first trains that head's path on labelled random views
(:mod:`panoseek.training.perception`, ``OUT/warmup.csv``); its result is kept in
``OUT/warmup.pt``, so a run killed before its first checkpoint does not redo it.

Rollouts sample from the policy in eval mode (no codebook dropout); updates run in
train mode. Every ``checkpoint_every`` updates the whole state is saved to
``OUT/checkpoint.pt`` (policy, optimiser, RNGs, the env's episode states, the GRU
states), so rerunning the same command continues to exactly the state an
uninterrupted run reaches. ``OUT/progress.csv`` holds one row per update and
``OUT/curves.png`` plots it.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn, optim
from tqdm import tqdm

from panoseek.agents.policy import PolicyConfig, SearchPolicy, WordTokenizer, policy_checkpoint
from panoseek.envs.eval import stats
from panoseek.envs.geometry import vertical_fov_deg
from panoseek.envs.vector import VectorSearchEnv
from panoseek.scenes import load_suite
from panoseek.training.perception import warm_up_perception
from panoseek.training.ppo_args import Args

CSV_FIELDS = ("update", "global_step", "episodes", "return", "success", "success_stderr", "length", "lr",
              "policy_loss", "value_loss", "entropy", "target_loss", "approx_kl", "clipfrac", "explained_variance",
              "sps")


RUN_FREE = ("out", "total_steps", "progress", "checkpoint_every")  # may change between a run and its resume
#: Settings added after runs were made: a checkpoint without them was made with these values.
ADDED_SETTINGS = {"warmup_steps": 0, "warmup_batch": 64, "warmup_lr": 1e-3, "cnn": "nature", "spatial_attention": False}


def train(args: Args) -> dict[str, Any]:
    """Train (or resume) a run; returns the last progress row. A second process training into
    the same folder at the same time is refused (``OUT/.lock``), not interleaved."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{out}: another training run is using this folder; wait for it, "
                             "or use another --out") from None
        return _train(args, out)


def _train(args: Args, out: Path) -> dict[str, Any]:
    """:func:`train` once the run folder is held."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # the only global RNG used: sampling and minibatch shuffles
    device = torch.device(args.device)

    # ------------------------------------------------------------------ env and policy
    tasks = list(load_suite(args.suite))
    envs = VectorSearchEnv(
        tasks, args.num_envs, view_size=tuple(args.view_size), max_turns=args.max_turns,
        distance_reward=args.distance_reward, working_set=args.working_set, swap_every=args.swap_every,
        renderer="torch" if device.type == "cuda" else "opencv", device=args.device, training_labels=True,
    )
    tokenizer = WordTokenizer.from_texts(task.instruction for task in tasks)
    config = PolicyConfig(vocabulary=tokenizer.vocabulary, action_names=envs.action_names,
                          step_deg=envs.step_deg, big_step_deg=envs.big_step_deg,
                          view_size=tuple(args.view_size), codebook=args.codebook, cnn=args.cnn,
                          spatial_attention=args.spatial_attention,
                          last_turn_submits=args.last_turn_submits, target_head=args.target_loss > 0)
    policy = SearchPolicy(config).to(device)
    optimizer = optim.Adam(policy.parameters(), lr=args.learning_rate, eps=1e-5)

    half_fov = (envs.fov_deg / 2, vertical_fov_deg(envs.fov_deg, *envs.view_size) / 2)
    batch_size = args.num_envs * args.num_steps
    num_updates = args.total_steps // batch_size
    envs_per_batch = args.num_envs // args.num_minibatches
    width, height = args.view_size

    # Rollout storage (CleanRL layout: time first).
    images = torch.zeros((args.num_steps, args.num_envs, height, width, 3), dtype=torch.uint8, device=device)
    words = [None] * args.num_steps  # instruction indices per step: (num_envs, L) tensors
    scalars = torch.zeros((args.num_steps, args.num_envs, 2), device=device)
    previous = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long, device=device)
    last_turns = torch.zeros((args.num_steps, args.num_envs), dtype=torch.bool, device=device)
    directions = torch.zeros((args.num_steps, args.num_envs, 2), device=device)  # target-head labels
    actions = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long, device=device)
    logprobs = torch.zeros((args.num_steps, args.num_envs), device=device)
    rewards = torch.zeros((args.num_steps, args.num_envs), device=device)
    dones = torch.zeros((args.num_steps, args.num_envs), device=device)
    values = torch.zeros((args.num_steps, args.num_envs), device=device)

    # ------------------------------------------------------------------ start or resume
    checkpoint_path = out / "checkpoint.pt"
    if checkpoint_path.is_file():
        loop = _resume(checkpoint_path, args, policy, optimizer, envs)
    else:
        if args.warmup_steps > 0:
            _warm_up(out / "warmup.pt", args, policy, tasks, envs, half_fov)
        obs, info = envs.reset(seed=args.seed)
        loop = {
            "update": 0, "global_step": 0, "obs": obs, "direction": info["target_direction"],
            "state": policy.initial_state(args.num_envs),
            "done": torch.ones(args.num_envs, device=device),  # every first observation starts an episode
            "previous": np.full(args.num_envs, policy.no_action), "turn": np.zeros(args.num_envs, np.int64),
            "episodes": 0,
        }
        (out / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=2) + "\n")
        _truncate_csv(out / "progress.csv", 0)
    row: dict[str, Any] = {}
    bar = tqdm(total=num_updates * batch_size, initial=loop["global_step"], unit="step", disable=not args.progress,
               desc="ppo")

    for update in range(loop["update"] + 1, num_updates + 1):
        start_time = time.perf_counter()
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - (update - 1.0) / num_updates) * args.learning_rate
        initial_state = loop["state"].clone()
        finished: dict[str, list] = {"return": [], "success": [], "length": []}

        # -------------------------------------------------------------- rollout
        policy.eval()
        for step in range(args.num_steps):
            loop["global_step"] += args.num_envs
            x = _policy_inputs(policy, loop, args.max_turns)
            images[step], words[step], scalars[step], previous[step] = x["image"], x["words"], x["scalars"], x["previous"]
            last_turns[step] = x["last_turn"]
            directions[step] = torch.as_tensor(loop["direction"], dtype=torch.float32, device=device)
            dones[step] = loop["done"]
            with torch.no_grad():
                action, logprob, _, value, loop["state"] = policy.get_action_and_value(x, loop["state"], loop["done"])
            values[step], actions[step], logprobs[step] = value, action, logprob
            reward = _env_turn(envs, loop, action.cpu().numpy(), finished, args.progress_reward)
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32, device=device)

        # -------------------------------------------------------------- advantages (GAE)
        with torch.no_grad():
            next_value = policy.get_value(_policy_inputs(policy, loop, args.max_turns), loop["state"], loop["done"])
            advantages = torch.zeros_like(rewards)
            last_gae = 0.0
            for t in reversed(range(args.num_steps)):
                next_nonterminal = 1.0 - (loop["done"] if t == args.num_steps - 1 else dones[t + 1])
                next_values = next_value if t == args.num_steps - 1 else values[t + 1]
                delta = rewards[t] + args.gamma * next_values * next_nonterminal - values[t]
                advantages[t] = last_gae = delta + args.gamma * args.gae_lambda * next_nonterminal * last_gae
            returns = advantages + values

        # -------------------------------------------------------------- optimise
        policy.train()
        length = max(w.shape[1] for w in words)
        b_words = torch.stack([nn.functional.pad(w, (0, length - w.shape[1])) for w in words])
        env_indices = np.arange(args.num_envs)
        clipfracs, losses = [], {}
        for _ in range(args.update_epochs):
            env_indices = env_indices[torch.randperm(args.num_envs).numpy()]
            for first in range(0, args.num_envs, envs_per_batch):
                mb_envs = env_indices[first : first + envs_per_batch]
                batch = {
                    "x": {"image": images[:, mb_envs].flatten(0, 1), "words": b_words[:, mb_envs].flatten(0, 1),
                          "scalars": scalars[:, mb_envs].flatten(0, 1), "previous": previous[:, mb_envs].flatten(0, 1),
                          "last_turn": last_turns[:, mb_envs].flatten(0, 1)},
                    "state": initial_state[:, mb_envs], "starts": dones[:, mb_envs].flatten(),
                    "actions": actions[:, mb_envs].flatten(), "logprobs": logprobs[:, mb_envs].flatten(),
                    "advantages": advantages[:, mb_envs].flatten(), "returns": returns[:, mb_envs].flatten(),
                    "values": values[:, mb_envs].flatten(), "direction": directions[:, mb_envs].flatten(0, 1),
                }
                losses = _minibatch_update(policy, optimizer, batch, args, half_fov)
                clipfracs.append(losses["clipfrac"])

        y_pred, y_true = values.flatten().cpu().numpy(), returns.flatten().cpu().numpy()
        var_y = np.var(y_true)
        success = stats.rate(int(sum(finished["success"])), len(finished["success"]))
        loop["episodes"] += len(finished["success"])
        loop["update"] = update
        row = {
            "update": update, "global_step": loop["global_step"], "episodes": loop["episodes"],
            "return": stats.mean(finished["return"]), "success": success["success"],
            "success_stderr": success["stderr"], "length": stats.mean(finished["length"]),
            "lr": optimizer.param_groups[0]["lr"], "policy_loss": losses["policy_loss"],
            "value_loss": losses["value_loss"], "entropy": losses["entropy"], "target_loss": losses["target_loss"],
            "approx_kl": losses["approx_kl"],
            "clipfrac": float(np.mean(clipfracs)),
            "explained_variance": float("nan") if var_y == 0 else float(1 - np.var(y_true - y_pred) / var_y),
            "sps": batch_size / (time.perf_counter() - start_time),
        }
        _append_csv(out / "progress.csv", row)
        bar.update(batch_size)
        bar.set_postfix(success=f"{row['success'] or 0:.2f}", ret=f"{row['return'] or 0:.2f}")
        if update % args.checkpoint_every == 0 or update == num_updates:
            _save(checkpoint_path, args, policy, optimizer, envs, loop)
            plot_curves(out / "progress.csv", out / "curves.png")
    bar.close()
    envs.close()
    return row


# ---------------------------------------------------------------------- one turn, one update


def _policy_inputs(policy: SearchPolicy, loop: dict[str, Any], max_turns: int) -> dict[str, torch.Tensor]:
    obs = loop["obs"]
    return policy.inputs(obs["image"], obs["instruction"], obs["heading"][:, 1], loop["turn"], max_turns, loop["previous"])


def _env_turn(envs: VectorSearchEnv, loop: dict[str, Any], action: np.ndarray, finished: dict[str, list],
              progress_reward: float) -> np.ndarray:
    """One turn of all N episodes: step the vector env, track previous actions, turns and finished episodes;
    returns the training reward (the env's, plus the progress shaping)."""
    loop["obs"], reward, terminated, truncated, info = envs.step(action)
    done = terminated | truncated
    for i in np.flatnonzero(done):
        finished["return"].append(float(reward[i]))  # the only non-zero reward is the last one
        finished["success"].append(bool(info["final_info"]["success"][i]))
        finished["length"].append(int(info["final_info"]["turn"][i]))
    loop["previous"] = np.where(done, len(envs.action_names), action)
    loop["turn"] = info["turn"].copy()
    loop["direction"] = info["target_direction"].copy()
    loop["done"] = torch.as_tensor(done, dtype=torch.float32, device=loop["done"].device)
    return reward + progress_reward * info["progress"] / 90.0


def _minibatch_update(policy: SearchPolicy, optimizer: optim.Optimizer, mb: dict[str, Any], args: Args,
                      half_fov: tuple[float, float]) -> dict[str, float]:
    """One gradient step of the PPO loss (plus the target head's, if any) on a minibatch of whole
    environment sequences."""
    hidden, _ = policy.memory(mb["x"], mb["state"], mb["starts"])
    _, new_logprob, entropy, new_value = policy.heads(hidden, mb["x"]["last_turn"], mb["actions"])
    log_ratio = new_logprob - mb["logprobs"]
    ratio = log_ratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()  # http://joschu.net/blog/kl-approx.html
        clipfrac = ((ratio - 1.0).abs() > args.clip_coef).float().mean()
    advantages = mb["advantages"]
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

    policy_loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
    if args.clip_vloss:
        clipped = mb["values"] + (new_value - mb["values"]).clamp(-args.clip_coef, args.clip_coef)
        value_loss = 0.5 * torch.max((new_value - mb["returns"]) ** 2, (clipped - mb["returns"]) ** 2).mean()
    else:
        value_loss = 0.5 * ((new_value - mb["returns"]) ** 2).mean()
    entropy_loss = entropy.mean()
    loss = policy_loss - args.ent_coef * entropy_loss + args.vf_coef * value_loss
    target_loss = policy.target_loss(hidden, mb["direction"], half_fov) if args.target_loss > 0 else None
    if target_loss is not None:
        loss = loss + args.target_loss * target_loss

    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(policy.parameters(), args.max_grad_norm)
    optimizer.step()
    return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy_loss.item(),
            "target_loss": None if target_loss is None else target_loss.item(),
            "approx_kl": approx_kl.item(), "clipfrac": clipfrac.item()}


def _warm_up(path: Path, args: Args, policy: SearchPolicy, tasks: list, envs: VectorSearchEnv,
             half_fov: tuple[float, float]) -> None:
    """Run the perception warm-up, or load its result from ``path`` if this run's settings and
    policy config made it. Torch's RNG is left as it was (the codebook's dropout draws from it
    in the warm-up), so PPO goes on identically whether the warm-up ran or was loaded."""
    identity = json.loads(json.dumps({
        "args": {k: v for k, v in dataclasses.asdict(args).items() if k not in RUN_FREE},
        "config": dataclasses.asdict(policy.config),
    }))
    if path.is_file():
        data = torch.load(path, map_location="cpu", weights_only=True)
        if data.get("identity") == identity:
            policy.load_state_dict(data["policy"]["state_dict"])
            return
    device = policy.actor.weight.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        warm_up_perception(policy, tasks, steps=args.warmup_steps, batch_size=args.warmup_batch,
                           learning_rate=args.warmup_lr, max_turns=args.max_turns, fov_deg=envs.fov_deg,
                           half_fov=half_fov, crosshair=envs.crosshair, seed=args.seed, out=path.parent,
                           max_grad_norm=args.max_grad_norm, progress=args.progress)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({"identity": identity, "policy": policy_checkpoint(policy)}, partial)
    partial.replace(path)


# ---------------------------------------------------------------------- checkpoints and logs


def _save(path: Path, args: Args, policy: SearchPolicy, optimizer: optim.Optimizer, envs: VectorSearchEnv,
          loop: dict[str, Any]) -> None:
    """Write the whole training state atomically (a crash mid-write keeps the previous checkpoint)."""
    data = {
        "policy": policy_checkpoint(policy),
        "optimizer": optimizer.state_dict(),
        "args": {k: v for k, v in dataclasses.asdict(args).items() if k not in RUN_FREE},
        "env": envs.get_state(),
        "loop": {"update": loop["update"], "global_step": loop["global_step"], "episodes": loop["episodes"],
                 "state": loop["state"].cpu(), "done": loop["done"].cpu(),
                 "previous": loop["previous"].tolist(), "turn": loop["turn"].tolist(),
                 "direction": loop["direction"].tolist()},
        "rng": torch.get_rng_state(),
    }
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(data, partial)
    partial.replace(path)


def _resume(path: Path, args: Args, policy: SearchPolicy, optimizer: optim.Optimizer,
            envs: VectorSearchEnv) -> dict[str, Any]:
    """Restore a run from its checkpoint; refuse one made with other settings."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    wanted = {k: v for k, v in dataclasses.asdict(args).items() if k not in RUN_FREE}
    stored = {k: tuple(v) if isinstance(v, list) else v for k, v in {**ADDED_SETTINGS, **data["args"]}.items()}
    wanted = {k: tuple(v) if isinstance(v, list) else v for k, v in wanted.items()}
    for key in sorted(set(stored) | set(wanted)):
        if stored.get(key) != wanted.get(key):
            raise ValueError(f"{path}: this run was started with {key}={stored.get(key)!r}, not {wanted.get(key)!r}; "
                             "use the same settings to resume, or another --out")
    policy.load_state_dict(data["policy"]["state_dict"])
    optimizer.load_state_dict(data["optimizer"])
    torch.set_rng_state(data["rng"])
    device = policy.actor.weight.device
    loop = data["loop"]
    _truncate_csv(path.parent / "progress.csv", loop["update"])
    return {
        "update": loop["update"], "global_step": loop["global_step"], "episodes": loop["episodes"],
        "obs": envs.set_state(data["env"]), "state": loop["state"].to(device), "done": loop["done"].to(device),
        "previous": np.array(loop["previous"]), "turn": np.array(loop["turn"]),
        "direction": np.array(loop["direction"], dtype=np.float64).reshape(-1, 2),
    }


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def _truncate_csv(path: Path, last_update: int) -> None:
    """Keep only the rows up to ``last_update`` (rows written after the checkpoint are redone)."""
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["update"]) <= last_update]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def plot_curves(csv_path: Path, png_path: Path) -> None:
    """Success, return and losses against environment steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    steps = [int(r["global_step"]) for r in rows]

    def series(key: str) -> list[float]:
        return [float(r[key]) if r[key] not in ("", "None") else float("nan") for r in rows]

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(steps, series("success"))
    axes[0].set_title("success rate (finished episodes)")
    axes[1].plot(steps, series("return"), label="return")
    axes[1].plot(steps, series("length"), label="turns")
    axes[1].legend()
    axes[1].set_title("episode return and length")
    for key in ("policy_loss", "value_loss", "entropy", "target_loss"):
        axes[2].plot(steps, series(key), label=key)
    axes[2].legend()
    axes[2].set_title("losses")
    for axis in axes:
        axis.set_xlabel("environment steps")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
