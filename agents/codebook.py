"""The task-conditioned codebook bottleneck of Embodied-Codebook (allenai/procthor-rl).

"Selective Visual Representations Improve Convergence and Generalization for Embodied
AI" squeezes an embedding through a small learned codebook: ReLU -> Linear -> softmax
over ``size`` codes -> dropout on those probabilities (against codebook collapse) -> the
probability-weighted sum of ``size`` x ``code_dim`` learned codes -> Linear back to the
feature size. With ``code_dim`` = 10 only what 10 numbers, mixed from 256 codes, can say
about the view and the task passes, which filters out what the task does not need.

One module for both users:

* the PPO policy (:mod:`panoseek.agents.policy`) feeds its joint embedding, which already
  mixes the view with the instruction (``condition_features=0``);
* the VLM's visual filter (:mod:`panoseek.agents.visual_filter`) feeds each visual token
  with the instruction's embedding beside it (``condition_features`` = its size): the
  scores over the codes see both, so the code chosen for a token depends on the task.
"""

from __future__ import annotations

import torch
from torch import nn


class CodebookBottleneck(nn.Module):
    """``features`` -> ``features`` through a softmax over a ``size`` x ``code_dim`` codebook,
    the scores optionally conditioned on a ``condition_features``-sized task embedding."""

    def __init__(
        self, features: int, size: int = 256, code_dim: int = 10, dropout: float = 0.1, condition_features: int = 0
    ) -> None:
        super().__init__()
        self.condition_features = int(condition_features)
        self.indexer = nn.Sequential(nn.ReLU(), nn.Linear(features + self.condition_features, size))
        self.codes = nn.Parameter(torch.randn(size, code_dim))
        self.dropout = nn.Dropout(dropout)
        self.upsample = nn.Linear(code_dim, features)

    def probabilities(self, embeds: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """(..., size) softmax weights of the codes, before dropout (each row sums to one).

        ``condition`` (..., condition_features) is given exactly when the module was built
        with ``condition_features`` > 0."""
        if (condition is None) != (self.condition_features == 0):
            raise ValueError(
                f"this codebook takes a condition of {self.condition_features} features"
                if self.condition_features else "this codebook was built without a condition (condition_features=0)"
            )
        scores_in = embeds if condition is None else torch.cat([embeds, condition], dim=-1)
        return torch.softmax(self.indexer(scores_in), dim=-1)

    def forward(self, embeds: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        weights = self.dropout(self.probabilities(embeds, condition))  # dropout only in training mode
        return self.upsample(weights @ self.codes)
