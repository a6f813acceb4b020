"""Per-token log-probabilities (and entropies) without holding the full logits.

GRPO and DPO need ``log p(target_t)`` for every token of long sequences; the naive path
``log_softmax(hidden @ W.T)`` holds a ``[tokens x vocab]`` float32 matrix (and its
gradient), which dominates training memory at Qwen2.5-VL's vocabulary of 151,936.
:func:`token_logprobs` walks the tokens in chunks: each chunk's logits are computed
(torch matmul), reduced to per-row statistics (Triton kernel or PyTorch), and freed; the
backward pass recomputes each chunk's logits and turns them into gradients in place.
Peak extra memory is a few ``[chunk_size x vocab]`` blocks and the float32 weight
gradient, at the price of one extra matmul. On the CPU the default keeps the logits
instead (``keep_logits``): one ``[tokens x vocab]`` matrix in the inputs' dtype, still
less than the naive path's logits plus log-softmax, and no extra matmul, whose cost on
the CPU (1.46x naive's time at 1k-2k tokens when recomputing) is what matters there. The weight gradient is summed over chunks in
float32 without rounding each chunk's product to bf16/fp16 first (rounding per chunk
biases training, which one big matmul does not).
"""

from __future__ import annotations

import torch

from panoseek.kernels.dispatch import choose_backend

IGNORE_INDEX = -100
DEFAULT_CHUNK = 512  # most tokens per block
MIN_CHUNK = 64  # blocks are at most a quarter of the tokens, but never fewer than this many
_CUDA_MM_OUT_DTYPE = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 8)


def token_logprobs(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    return_entropy: bool = False,
    ignore_index: int = IGNORE_INDEX,
    backend: str = "auto",
    keep_logits: bool | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``log softmax(hidden @ lm_head_weight.T)[target]`` per token, float32, differentiable.

    ``hidden`` is ``[..., dim]``, ``lm_head_weight`` ``[vocab, dim]``, ``targets`` ``[...]``
    (integer token ids; ``ignore_index`` marks padding, whose log-prob and entropy are 0
    and pass no gradient). The logits are computed in the inputs' dtype as a plain
    ``nn.Linear`` lm-head would, and reduced in float32 (float64 inputs stay float64
    and take the PyTorch path, for gradient checks). With ``return_entropy`` the
    result is ``(logprobs, entropies)``, the entropy of each token's full distribution.

    ``chunk_size`` is the most tokens per block; a block is also at most a quarter of
    the tokens (at least ``MIN_CHUNK``), so short sequences never hold more than the
    naive path would. ``keep_logits`` keeps each block's logits for the backward pass
    instead of recomputing them (default: on the CPU only; see the module docstring).
    """
    _validate(hidden, lm_head_weight, targets, chunk_size, ignore_index)
    if keep_logits is None:
        keep_logits = hidden.device.type == "cpu"
    tokens = targets.numel()
    chunk_size = min(chunk_size, max(MIN_CHUNK, -(-tokens // 4)))
    use_triton = choose_backend(backend, hidden, lm_head_weight, targets) == "triton" and hidden.dtype != torch.float64
    flat_targets = targets.reshape(-1).to(torch.int64)
    logprob, entropy = _ChunkedLogprobs.apply(
        hidden.reshape(-1, hidden.shape[-1]), lm_head_weight, flat_targets, chunk_size, ignore_index, use_triton,
        bool(keep_logits),
    )
    logprob = logprob.view(targets.shape)
    return (logprob, entropy.view(targets.shape)) if return_entropy else logprob


def token_logprobs_naive(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    return_entropy: bool = False,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The memory-hungry reference: full logits, ``log_softmax``, ``gather`` (autograd does the rest)."""
    logits = hidden @ lm_head_weight.T
    logits = logits.to(_reduce_dtype(logits))
    logp = torch.log_softmax(logits, dim=-1)
    valid = targets != ignore_index
    picked = logp.gather(-1, torch.where(valid, targets, 0).long().unsqueeze(-1)).squeeze(-1)
    logprob = torch.where(valid, picked, 0.0)
    if not return_entropy:
        return logprob
    entropy = torch.where(valid, -(logp.exp() * logp).sum(-1), 0.0)
    return logprob, entropy


class _ChunkedLogprobs(torch.autograd.Function):
    """Chunked forward; backward recomputes each chunk's logits (or reuses the kept ones) and
    turns them into the gradient."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_size, ignore_index, use_triton, keep_logits):
        rows_forward, _ = _row_ops(use_triton)
        n = hidden.shape[0]
        logprob = torch.empty(n, device=hidden.device, dtype=_reduce_dtype(hidden))
        entropy = torch.empty_like(logprob)
        lse = torch.empty_like(logprob)
        kept = torch.empty(n, weight.shape[0], device=hidden.device, dtype=hidden.dtype) if keep_logits else None
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            logits = hidden[start:stop] @ weight.T if kept is None else torch.matmul(
                hidden[start:stop], weight.T, out=kept[start:stop])
            logprob[start:stop], entropy[start:stop], lse[start:stop] = rows_forward(logits, targets[start:stop], ignore_index)
            del logits
        ctx.save_for_backward(hidden, weight, targets, lse, entropy)
        ctx.kept = kept
        ctx.chunk_size, ctx.ignore_index, ctx.use_triton = chunk_size, ignore_index, use_triton
        ctx.set_materialize_grads(False)  # an unused output (entropy) gets None, not zeros to multiply
        return logprob, entropy

    @staticmethod
    def backward(ctx, grad_logprob, grad_entropy):
        hidden, weight, targets, lse, entropy = ctx.saved_tensors
        kept, ctx.kept = ctx.kept, None  # used once: a second backward (retain_graph) recomputes them
        if grad_logprob is None and grad_entropy is None:
            return None, None, None, None, None, None, None
        _, rows_backward = _row_ops(ctx.use_triton)
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_logprob = torch.zeros_like(lse) if grad_logprob is None else grad_logprob.contiguous().to(lse.dtype)
        if grad_entropy is not None:
            grad_entropy = grad_entropy.contiguous().to(lse.dtype)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        # Accumulate the weight gradient over chunks in float32, as one big matmul would internally.
        grad_weight = torch.zeros(weight.shape, device=weight.device, dtype=_reduce_dtype(weight)) if need_weight else None
        for start in range(0, hidden.shape[0], ctx.chunk_size):
            stop = min(start + ctx.chunk_size, hidden.shape[0])
            chunk = hidden[start:stop]
            grad_logits = rows_backward(
                chunk @ weight.T if kept is None else kept[start:stop], targets[start:stop], lse[start:stop], entropy[start:stop], grad_logprob[start:stop],
                None if grad_entropy is None else grad_entropy[start:stop], ctx.ignore_index,
            )
            if need_hidden:
                grad_hidden[start:stop] = grad_logits @ weight
            if need_weight:
                _accumulate(grad_weight, grad_logits.T, chunk)
            del grad_logits
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None, None, None


def _accumulate(total: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``total += a @ b`` with ``total`` float32/64, never rounding ``a @ b`` to ``a``'s dtype first."""
    if a.dtype == total.dtype:
        total.addmm_(a, b)
    elif a.is_cuda and _CUDA_MM_OUT_DTYPE:
        torch.addmm(total, a, b, out_dtype=total.dtype, out=total)
    else:
        total.addmm_(a.to(total.dtype), b.to(total.dtype))


def _reduce_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _row_ops(use_triton: bool):
    if use_triton:
        from panoseek.kernels.logprobs_triton import rows_backward_triton, rows_forward_triton

        return rows_forward_triton, rows_backward_triton
    return _rows_forward_torch, _rows_backward_torch


def _rows_forward_torch(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PyTorch twin of the Triton forward row kernel (used on CPU): PyTorch's fused
    ``log_softmax`` (faster than ``logsumexp`` here), then one more block for the entropy."""
    z = logits.to(_reduce_dtype(logits))
    log_p = torch.log_softmax(z, dim=-1)
    lse = z[:, 0] - log_p[:, 0]
    valid = targets != ignore_index
    picked = log_p.gather(-1, torch.where(valid, targets, 0)[:, None]).squeeze(-1)
    entropy = -log_p.exp().mul_(log_p).sum(-1)
    return torch.where(valid, picked, 0.0), torch.where(valid, entropy, 0.0), lse


def _rows_backward_torch(
    logits: torch.Tensor, targets: torch.Tensor, lse: torch.Tensor, entropy: torch.Tensor,
    grad_logprob: torch.Tensor, grad_entropy: torch.Tensor | None, ignore_index: int,
) -> torch.Tensor:
    """PyTorch twin of the Triton backward row kernel: d(loss)/d(logits) in the logits' dtype.

    d/dz of g_lp * log p_t + g_h * H is g_lp (onehot_t - p) - g_h p (log p + H); computed
    in place in at most two blocks.
    """
    valid = targets != ignore_index
    z = logits.to(_reduce_dtype(logits))
    g_lp = torch.where(valid, grad_logprob, 0.0)
    log_p = torch.sub(z, lse[:, None])
    if grad_entropy is None:
        grad = log_p.exp_().mul_(-g_lp[:, None])
    else:
        g_h = torch.where(valid, grad_entropy, 0.0)
        p = log_p.exp()
        grad = log_p.add_(entropy[:, None]).mul_(g_h[:, None]).add_(g_lp[:, None]).mul_(p).neg_()
        del p
    rows = torch.arange(z.shape[0], device=z.device)
    grad[rows, torch.where(valid, targets, 0)] += g_lp
    return grad.to(logits.dtype)


def _validate(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int, ignore_index: int) -> None:
    if hidden.ndim < 1 or weight.ndim != 2 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"hidden [..., dim] and lm_head_weight [vocab, dim] disagree: {tuple(hidden.shape)} vs {tuple(weight.shape)}"
        )
    if hidden.dtype != weight.dtype or not hidden.is_floating_point():
        raise ValueError(f"hidden and lm_head_weight must share a floating dtype, got {hidden.dtype} and {weight.dtype}")
    if targets.shape != hidden.shape[:-1]:
        raise ValueError(f"targets shape {tuple(targets.shape)} must equal hidden's leading shape {tuple(hidden.shape[:-1])}")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer token ids, got {targets.dtype}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    real = targets[targets != ignore_index]
    if real.numel() and (int(real.min()) < 0 or int(real.max()) >= weight.shape[0]):
        bad = int(real.min()) if int(real.min()) < 0 else int(real.max())
        raise ValueError(f"target id {bad} is outside the vocabulary [0, {weight.shape[0]}) (ignore_index={ignore_index})")
