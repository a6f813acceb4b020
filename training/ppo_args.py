"""The settings of a PPO run (:mod:`panoseek.training.ppo`).

Apart from the trainer so that ``panoseek --help`` can show their defaults without
importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Args:
    """Everything a run depends on (all but ``out``, ``total_steps`` and ``progress`` must match to resume)."""

    suite: str = "synth:train"
    out: str = "runs/ppo"
    seed: int = 0
    total_steps: int = 200_000
    num_envs: int = 16
    num_steps: int = 32  # turns per environment per update
    codebook: bool = False
    cnn: str = "nature"  # the policy's view encoder (agents/policy.py: "nature" or "fine")
    spatial_attention: bool = False  # the instruction queries the CNN's last map (agents/policy.py)
    view_size: tuple[int, int] = (128, 72)
    max_turns: int = 10
    distance_reward: bool = False  # add the H* paper's distance shaping to the submission reward
    progress_reward: float = 0.0  # shaping per 90 degrees a turn brings the heading toward the target
    last_turn_submits: bool = True  # on the budget's last turn the only action is submit
    target_loss: float = 1.0  # weight of the target head's auxiliary loss (0: no head)
    warmup_steps: int = 0  # batches of the supervised perception warm-up before PPO (training/perception.py)
    warmup_batch: int = 64  # labelled views per warm-up batch
    warmup_lr: float = 1e-3  # the warm-up's Adam learning rate, annealed linearly to 0
    working_set: int = 64  # panoramas in memory at a time (see VectorSearchEnv)
    swap_every: int = 16  # finished episodes between two working-set swaps (rarer swaps: memorised panoramas)
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 1.0  # episodes are at most max_turns long: no discount needed
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    device: str = "cpu"  # "cuda": policy and the renderer (render_views_torch) on the GPU
    threads: int = 1  # torch CPU threads
    checkpoint_every: int = 10  # updates
    progress: bool = True
