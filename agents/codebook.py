"""The task-conditioned codebook bottleneck of Embodied-Codebook (allenai/procthor-rl).

A policy's joint embedding (the view features conditioned on the task instruction, plus
the previous action) is squeezed through a small learned codebook before the recurrent
state: ReLU -> Linear -> softmax over ``size`` codes -> dropout on those probabilities
(against codebook collapse) -> the probability-weighted sum of ``size`` x ``code_dim``
learned codes -> Linear back to the feature size. With ``code_dim`` = 10 the policy
can only pass on what 10 numbers, mixed from 256 codes, can say about the view and the
task, which filters out what the task does not need.
"""

from __future__ import annotations

import torch
from torch import nn


class CodebookBottleneck(nn.Module):
    """``features`` -> ``features`` through a softmax over a ``size`` x ``code_dim`` codebook."""

    def __init__(self, features: int, size: int = 256, code_dim: int = 10, dropout: float = 0.1) -> None:
        super().__init__()
        self.indexer = nn.Sequential(nn.ReLU(), nn.Linear(features, size))
        self.codes = nn.Parameter(torch.randn(size, code_dim))
        self.dropout = nn.Dropout(dropout)
        self.upsample = nn.Linear(code_dim, features)

    def probabilities(self, embeds: torch.Tensor) -> torch.Tensor:
        """(..., size) softmax weights of the codes, before dropout (each row sums to one)."""
        return torch.softmax(self.indexer(embeds), dim=-1)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        weights = self.dropout(self.probabilities(embeds))  # dropout only in training mode
        return self.upsample(weights @ self.codes)
