"""Triton row kernels for ``token_logprobs``: one pass over a chunk of logits each way.

Forward: per row, an online log-sum-exp over the vocabulary that also accumulates
``sum(exp(z - m) * z)`` for the entropy and picks the target's logit, reading the
logits once. Backward: per row, overwrites the logits in place with their gradient
``g_lp * (onehot - p) - g_h * p * (z - lse + H)``, so no second [rows x vocab] buffer
is allocated. Both are bandwidth-bound; fusing them saves the several full passes that
``log_softmax`` + ``gather`` + entropy + their autograd make in PyTorch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from panoseek.kernels.dispatch import kernel


@kernel
def _rows_forward(
    Logits, Targets, LogProb, Entropy, Lse, stride_row, vocab, ignore_index, BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0)
    base = Logits + row.to(tl.int64) * stride_row
    m = tl.full([BLOCK_V], float("-inf"), dtype=tl.float32)
    s = tl.zeros([BLOCK_V], dtype=tl.float32)
    t = tl.zeros([BLOCK_V], dtype=tl.float32)
    for start in range(0, vocab, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        ok = cols < vocab
        z = tl.load(base + cols, mask=ok, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, z)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # lanes that saw no logit yet
        alpha = tl.exp(m - m_safe)
        e = tl.exp(z - m_safe)
        s = s * alpha + e
        t = t * alpha + e * tl.where(ok, z, 0.0)  # e == 0 on masked lanes
        m = m_new
    m_row = tl.max(m, 0)
    weight = tl.where(m == float("-inf"), 0.0, tl.exp(m - m_row))
    s_row = tl.sum(s * weight, 0)
    t_row = tl.sum(t * weight, 0)
    lse = m_row + tl.log(s_row)
    entropy = lse - t_row / s_row

    target = tl.load(Targets + row)
    valid = target != ignore_index
    z_target = tl.load(base + tl.where(valid, target, 0)).to(tl.float32)
    tl.store(LogProb + row, tl.where(valid, z_target - lse, 0.0))
    tl.store(Entropy + row, tl.where(valid, entropy, 0.0))
    tl.store(Lse + row, lse)


@kernel
def _rows_backward(
    Logits, Targets, Lse, Entropy, GradLogProb, GradEntropy, stride_row, vocab, ignore_index,
    HAS_GRAD_ENTROPY: tl.constexpr, BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0)
    base = Logits + row.to(tl.int64) * stride_row
    target = tl.load(Targets + row)
    valid = target != ignore_index
    lse = tl.load(Lse + row)
    g_lp = tl.where(valid, tl.load(GradLogProb + row), 0.0)
    if HAS_GRAD_ENTROPY:
        g_h = tl.where(valid, tl.load(GradEntropy + row), 0.0)
        entropy = tl.load(Entropy + row)
    for start in range(0, vocab, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        ok = cols < vocab
        z = tl.load(base + cols, mask=ok, other=0.0).to(tl.float32)
        p = tl.exp(z - lse)
        grad = tl.where(cols == target, g_lp, 0.0) - g_lp * p
        if HAS_GRAD_ENTROPY:
            grad -= g_h * p * (z - lse + entropy)
        tl.store(base + cols, grad.to(Logits.dtype.element_ty), mask=ok)


def _block_v(logits: torch.Tensor) -> int:
    # The interpreter runs each program in Python: one modest block keeps CPU tests quick.
    if logits.device.type == "cpu":
        return min(128, triton.next_power_of_2(logits.shape[1]))
    return min(4096, triton.next_power_of_2(logits.shape[1]))


def rows_forward_triton(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log-prob of target, entropy, log-sum-exp) per row of a ``[rows, vocab]`` chunk."""
    rows, vocab = logits.shape
    out = torch.empty((3, rows), device=logits.device, dtype=torch.float32)
    _rows_forward[(rows,)](
        logits, targets, out[0], out[1], out[2], logits.stride(0), vocab, ignore_index,
        BLOCK_V=_block_v(logits), num_warps=8,
    )
    return out[0], out[1], out[2]


def rows_backward_triton(
    logits: torch.Tensor, targets: torch.Tensor, lse: torch.Tensor, entropy: torch.Tensor,
    grad_logprob: torch.Tensor, grad_entropy: torch.Tensor | None, ignore_index: int,
) -> torch.Tensor:
    """Overwrite ``logits`` with d(loss)/d(logits) and return it."""
    rows, vocab = logits.shape
    _rows_backward[(rows,)](
        logits, targets, lse, entropy, grad_logprob,
        grad_entropy if grad_entropy is not None else grad_logprob,
        logits.stride(0), vocab, ignore_index,
        HAS_GRAD_ENTROPY=grad_entropy is not None, BLOCK_V=_block_v(logits), num_warps=8,
    )
    return logits
