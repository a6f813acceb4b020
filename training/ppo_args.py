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
    view_size: tuple[int, int] = (128, 72)
    max_turns: int = 10
    distance_reward: bool = False  # add the H* paper's distance shaping to the submission reward
    working_set: int = 16  # panoramas in memory at a time (see VectorSearchEnv)
    swap_every: int = 200  # finished episodes between two working-set swaps
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
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
