"""Triton kernels for attention with an attention map (see ``attention_map.py``).

Two launches:

1. ``_attention_forward``: FlashAttention-style forward (tiled, online softmax in base 2,
   fp32 accumulation, GQA by indexing the key/value head as ``head // group``, causal
   mask aligned bottom-right so queries are the last ``n_q`` positions of ``n_k`` keys).
   It also writes the log-sum-exp of every query row.
2. ``_attention_key_mass``: for the chosen query rows only, recomputes the scores against
   every key and turns them into exact probabilities with the stored log-sum-exp,
   summing over the query heads. Its cost is rows x keys, never keys x keys.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from panoseek.kernels.dispatch import interpreting, kernel

LOG2E = 1.4426950408889634


@triton.jit
def _attend_blocks(
    acc, l_i, m_i, q, k_base, v_base, offs_m, offs_n, offs_d, d_ok,
    stride_kn, stride_kd, stride_vn, stride_vd, n_k, causal_shift, scale_log2, lo, hi,
    MASKED: tl.constexpr, CAUSAL: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):
    """Online-softmax update of one query tile with key blocks [lo, hi).

    ``MASKED=False`` is for blocks wholly inside the sequence and (if causal) wholly
    visible to every row of the tile: no per-element mask is built there.
    """
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        if MASKED:
            k = tl.load(
                k_base + cols[None, :] * stride_kn + offs_d[:, None] * stride_kd,
                mask=(cols[None, :] < n_k) & d_ok[:, None], other=0.0,
            )
            v = tl.load(
                v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                mask=(cols[:, None] < n_k) & d_ok[None, :], other=0.0,
            )
        else:
            k = tl.load(k_base + cols[None, :] * stride_kn + offs_d[:, None] * stride_kd, mask=d_ok[:, None], other=0.0)
            v = tl.load(v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd, mask=d_ok[None, :], other=0.0)
        s = tl.dot(q, k, input_precision=PRECISION) * scale_log2
        if MASKED:
            valid = cols[None, :] < n_k
            if CAUSAL:
                valid = valid & (cols[None, :] <= offs_m[:, None] + causal_shift)
            s = tl.where(valid, s, float("-inf"))
        # Key 0 is visible to every row (causal rows start at n_k - n_q >= 0) and is in the
        # first block processed, so m_new is finite from then on and no NaN guard is needed.
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    return acc, l_i, m_i


_FORWARD_CONFIGS = [
    triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=st)
    for bm, bn, w, st in [(128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (128, 64, 4, 4), (64, 128, 4, 3)]
]


# Tuned once per power-of-two size bucket, not per exact length (generation grows n_k by one).
@kernel(autotune=dict(configs=_FORWARD_CONFIGS, key=["q_bucket", "k_bucket", "HEAD_DIM", "CAUSAL"]))
def _attention_forward(
    Q, K, V, Out, Lse,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    n_heads, group, n_q, n_k, scale_log2, q_bucket, k_bucket,
    CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):
    start_m = tl.program_id(0)
    batch_head = tl.program_id(1)
    b = (batch_head // n_heads).to(tl.int64)  # int64 offsets: batch x stride may pass 2**31
    h = batch_head % n_heads
    kv_h = h // group
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    causal_shift = n_k - n_q

    q = tl.load(
        Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
        mask=(offs_m[:, None] < n_q) & d_ok[None, :], other=0.0,
    )
    k_base = K + b * stride_kb + kv_h * stride_kh
    v_base = V + b * stride_vb + kv_h * stride_vh

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    # Key blocks [0, full_end) need no mask; [full_end, end_n) are masked (sequence end, diagonal).
    full_end = (n_k // BLOCK_N) * BLOCK_N
    end_n = n_k
    if CAUSAL:
        full_end = tl.minimum(full_end, ((start_m * BLOCK_M + causal_shift + 1) // BLOCK_N) * BLOCK_N)
        end_n = tl.minimum(n_k, (start_m + 1) * BLOCK_M + causal_shift)
    acc, l_i, m_i = _attend_blocks(
        acc, l_i, m_i, q, k_base, v_base, offs_m, offs_n, offs_d, d_ok,
        stride_kn, stride_kd, stride_vn, stride_vd, n_k, causal_shift, scale_log2, 0, full_end,
        MASKED=False, CAUSAL=CAUSAL, BLOCK_N=BLOCK_N, PRECISION=PRECISION,
    )
    acc, l_i, m_i = _attend_blocks(
        acc, l_i, m_i, q, k_base, v_base, offs_m, offs_n, offs_d, d_ok,
        stride_kn, stride_kd, stride_vn, stride_vd, n_k, causal_shift, scale_log2, full_end, end_n,
        MASKED=True, CAUSAL=CAUSAL, BLOCK_N=BLOCK_N, PRECISION=PRECISION,
    )

    out = acc / l_i[:, None]
    tl.store(
        Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od,
        out.to(Out.dtype.element_ty), mask=(offs_m[:, None] < n_q) & d_ok[None, :],
    )
    tl.store(Lse + batch_head * n_q + offs_m, m_i + tl.log2(l_i), mask=offs_m < n_q)


@kernel
def _attention_key_mass(
    Q, K, Lse, Rows, Mass,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    n_heads, n_kv_heads, group, n_rows, n_q, n_k, scale_log2, mass_scale,
    CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    start_n = tl.program_id(0)
    batch_row = tl.program_id(1)
    b = (batch_row // n_rows).to(tl.int64)
    r = batch_row % n_rows
    row = tl.load(Rows + r)
    cols = start_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    valid = cols < n_k
    if CAUSAL:
        valid = valid & (cols <= row + (n_k - n_q))

    total = tl.zeros([BLOCK_N], dtype=tl.float32)
    for kv_h in range(0, n_kv_heads):
        k = tl.load(
            K + b * stride_kb + kv_h * stride_kh + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd,
            mask=valid[:, None] & d_ok[None, :], other=0.0,
        ).to(tl.float32)
        for g in range(0, group):
            h = kv_h * group + g
            q = tl.load(
                Q + b * stride_qb + h * stride_qh + row * stride_qm + offs_d * stride_qd, mask=d_ok, other=0.0
            ).to(tl.float32)
            s = tl.sum(q[None, :] * k, 1) * scale_log2
            lse = tl.load(Lse + (b * n_heads + h) * n_q + row)
            total += tl.where(valid, tl.exp2(s - lse), 0.0)
    tl.store(Mass + batch_row.to(tl.int64) * n_k + cols, total * mass_scale, mask=cols < n_k)


def attention_with_map_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rows: torch.Tensor | None,
    *, causal: bool, scale: float, reduce: str,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launch both kernels; inputs are validated by the caller (``attention_with_map``)."""
    batch, n_heads, n_q, head_dim = q.shape
    n_kv_heads, n_k = k.shape[1], k.shape[2]
    group = n_heads // n_kv_heads
    interpret = interpreting(q)
    block_d = max(16, triton.next_power_of_2(head_dim))
    precision = "ieee" if q.dtype == torch.float32 else "tf32"
    scale_log2 = scale * LOG2E

    out = torch.empty_like(q)
    lse = torch.empty((batch, n_heads, n_q), device=q.device, dtype=torch.float32)
    # On a GPU the tile sizes are autotuned; the interpreter takes one small tile (quick CPU tests).
    tiles = dict(BLOCK_M=16, BLOCK_N=16) if interpret else {}
    grid = lambda meta: (triton.cdiv(n_q, meta["BLOCK_M"]), batch * n_heads)  # noqa: E731
    _attention_forward[grid](
        q, k, v, out, lse, *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        n_heads, group, n_q, n_k, scale_log2, triton.next_power_of_2(n_q), triton.next_power_of_2(n_k),
        CAUSAL=causal, HEAD_DIM=head_dim, BLOCK_D=block_d, PRECISION=precision, **tiles,
    )
    if rows is None:
        return out, None

    n_rows = rows.numel()
    mass = torch.empty((batch, n_rows, n_k), device=q.device, dtype=torch.float32)
    block_n_map = 16 if interpret else 128
    grid = (triton.cdiv(n_k, block_n_map), batch * n_rows)
    _attention_key_mass[grid](
        q, k, lse, rows, mass, *q.stride(), *k.stride(),
        n_heads, n_kv_heads, group, n_rows, n_q, n_k, scale_log2,
        1.0 / n_heads if reduce == "mean" else 1.0,
        CAUSAL=causal, HEAD_DIM=head_dim, BLOCK_D=block_d, BLOCK_N=block_n_map, num_warps=4,
    )
    return out, mass

