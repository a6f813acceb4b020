"""Attention that also returns how much attention chosen query rows pay to each key.

Attention-guided cropping (ViCrop's relative attention) needs, at one or two layers of a
vision-language model, the attention probabilities from a few query rows (the last
token, or the question's tokens) to every key. Eager attention materialises the whole
N x N matrix for that; :func:`attention_with_map` computes the normal attention output
with a FlashAttention-style kernel, keeps each row's log-sum-exp, and recomputes exact
probabilities for the chosen rows only (rows x N extra work and memory).

Shapes follow ``torch.nn.functional.scaled_dot_product_attention``:
``q`` is ``[batch, heads, n_q, dim]``, ``k`` and ``v`` are ``[batch, kv_heads, n_k, dim]``
with ``heads`` a multiple of ``kv_heads`` (grouped-query attention). With ``causal=True``
the queries are the *last* ``n_q`` positions of the ``n_k`` keys (as with a KV cache).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from panoseek.kernels.dispatch import choose_backend

REDUCTIONS = ("sum", "mean", "none")


def attention_with_map(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    map_rows: Sequence[int] | torch.Tensor | None = (-1,),
    scale: float | None = None,
    reduce: str = "sum",
    attn_mask: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention output and the key mass of the chosen query rows.

    Returns ``(out, key_mass)``: ``out`` is ``[batch, heads, n_q, dim]`` in ``q``'s dtype;
    ``key_mass`` is float32 ``[batch, len(map_rows), n_k]`` where ``key_mass[b, r, j]`` is
    the attention probability that query row ``map_rows[r]`` gives key ``j``, summed over
    the query heads (``reduce="sum"``, each row then sums to ``heads``) or averaged
    (``reduce="mean"``, each row sums to 1); ``reduce="none"`` keeps the heads, as float32
    ``[batch, heads, len(map_rows), n_k]`` (PyTorch path: grad-att cropping weights each
    head by its gradient). Row indices may be negative (``-1`` is the last query). ``map_rows=None`` skips the map and returns ``key_mass=None``.

    ``attn_mask`` (boolean, True = attend, or additive float; broadcastable to
    ``[batch, heads, n_q, n_k]``) is applied on top of ``causal``; the fused kernel does not
    take arbitrary masks, so a mask always selects the PyTorch path. A map row whose keys
    are all masked gets zero mass.
    """
    rows = _validate(q, k, v, map_rows, reduce, causal)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if attn_mask is None and reduce != "none" and choose_backend(backend, q, k, v) == "triton":
        from panoseek.kernels.attention_map_triton import attention_with_map_triton

        return attention_with_map_triton(q, k, v, rows, causal=causal, scale=scale, reduce=reduce)
    return attention_with_map_reference(q, k, v, causal=causal, map_rows=rows, scale=scale, reduce=reduce, attn_mask=attn_mask)


def attention_with_map_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    map_rows: torch.Tensor | None = None,
    scale: float | None = None,
    reduce: str = "sum",
    attn_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """PyTorch path: SDPA for the output, a rows-only softmax for the map (same memory bound).

    ``map_rows`` here is a tensor of non-negative row indices (as :func:`attention_with_map`
    normalises them).
    """
    n_q, n_k = q.shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    mask = _combined_mask(causal, n_q, n_k, attn_mask, q.device)
    group = q.shape[1] // k.shape[1]
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=causal and mask is None and n_q == n_k, scale=scale, enable_gqa=group > 1
    )
    if map_rows is None:
        return out, None
    batch, heads, n_rows = q.shape[0], q.shape[1], map_rows.numel()
    # Query heads h = kv * group + g share kv head kv: fold the group into the row axis.
    rows_q = q[:, :, map_rows].float().reshape(batch, k.shape[1], group * n_rows, q.shape[-1])
    scores = torch.matmul(rows_q, k.float().transpose(-1, -2)).view(batch, heads, n_rows, n_k) * scale
    if causal:
        visible = torch.arange(n_k, device=q.device)[None, :] <= map_rows[:, None] + (n_k - n_q)
        scores = scores.masked_fill(~visible, float("-inf"))
    if attn_mask is not None:
        row_mask = attn_mask.expand(q.shape[0], q.shape[1], n_q, n_k)[:, :, map_rows]
        scores = scores.masked_fill(~row_mask, float("-inf")) if row_mask.dtype == torch.bool else scores + row_mask.float()
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a row that sees no key gives no mass
    if reduce == "none":
        return out, probs
    mass = probs.sum(dim=1) if reduce == "sum" else probs.mean(dim=1)
    return out, mass


def _combined_mask(
    causal: bool, n_q: int, n_k: int, attn_mask: torch.Tensor | None, device: torch.device
) -> torch.Tensor | None:
    """Boolean/additive mask for SDPA, or None when ``is_causal`` (or nothing) suffices."""
    if not causal or (attn_mask is None and n_q == n_k):
        return attn_mask
    causal_mask = torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(diagonal=n_k - n_q)
    if attn_mask is None:
        return causal_mask
    if attn_mask.dtype == torch.bool:
        return attn_mask & causal_mask
    return attn_mask.masked_fill(~causal_mask, float("-inf"))


def _validate(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    map_rows: Sequence[int] | torch.Tensor | None,
    reduce: str,
    causal: bool,
) -> torch.Tensor | None:
    """Check shapes and dtypes; return the map rows as a non-negative int64 tensor on q's device."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim != 4:
            raise ValueError(f"{name} must be [batch, heads, seq, dim], got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating tensor, got {t.dtype}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise ValueError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} differ in batch or head dim")
    if k.shape[1] == 0 or q.shape[1] % k.shape[1]:
        raise ValueError(f"query heads ({q.shape[1]}) must be a multiple of key/value heads ({k.shape[1]})")
    if q.shape[2] == 0 or k.shape[2] == 0:
        raise ValueError(f"empty sequence: n_q={q.shape[2]}, n_k={k.shape[2]}")
    if causal and q.shape[2] > k.shape[2]:
        raise ValueError(f"causal attention needs n_q <= n_k (queries are the last keys), got {q.shape[2]} > {k.shape[2]}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if map_rows is None:
        return None
    rows = torch.as_tensor(map_rows, dtype=torch.int64).reshape(-1)
    n_q = q.shape[2]
    if rows.numel() == 0:
        raise ValueError("map_rows is empty; pass None to skip the map")
    bad = rows[(rows < -n_q) | (rows >= n_q)]
    if bad.numel():
        raise ValueError(f"map_rows value {int(bad[0])} is out of range for {n_q} query rows")
    return torch.where(rows < 0, rows + n_q, rows).to(q.device)
