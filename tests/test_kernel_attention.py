"""attention_with_map: the Triton kernel (CPU interpreter) and the PyTorch path against dense attention."""

from __future__ import annotations

import pytest
import torch

from panoseek.kernels import attention_with_map
from panoseek.kernels.attention_map import attention_with_map_reference


def dense_attention(q, k, v, *, causal, rows, attn_mask=None):
    """Float64 attention that materialises the full matrix: the ground truth."""
    group = q.shape[1] // k.shape[1]
    q, k, v = q.double(), k.repeat_interleave(group, 1).double(), v.repeat_interleave(group, 1).double()
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    n_q, n_k = q.shape[2], k.shape[2]
    if causal:
        scores = scores.masked_fill(~torch.ones(n_q, n_k, dtype=torch.bool).tril(n_k - n_q), float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    probs = scores.softmax(-1)
    return probs @ v, probs[:, :, rows]


def make_qkv(batch, heads, kv_heads, n_q, n_k, dim, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, n_q, dim, generator=gen).to(dtype)
    k = torch.randn(batch, kv_heads, n_k, dim, generator=gen).to(dtype)
    v = torch.randn(batch, kv_heads, n_k, dim, generator=gen).to(dtype)
    return q, k, v


OUT_TOL = {torch.float32: 1e-5, torch.float16: 2e-3}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("causal", [True, False])
def test_triton_kernel_matches_dense_attention_gqa_odd_sizes(dtype, causal):
    # 4 query heads on 2 kv heads, 37 queries as the last of 45 keys, head dim 24 (not a power of two).
    q, k, v = make_qkv(2, 4, 2, 37, 45, 24, dtype)
    out, mass = attention_with_map(q, k, v, causal=causal, map_rows=[-1, 3, 20], backend="triton")
    want_out, want_probs = dense_attention(q, k, v, causal=causal, rows=[36, 3, 20])
    assert out.dtype == dtype and out.shape == q.shape
    assert mass.dtype == torch.float32 and mass.shape == (2, 3, 45)
    torch.testing.assert_close(out.double(), want_out, atol=OUT_TOL[dtype], rtol=0)
    torch.testing.assert_close(mass.double(), want_probs.sum(1), atol=2e-6, rtol=0)


def test_triton_kernel_mean_reduction_square_causal_and_strided_inputs():
    # The layout transformers hands over: [batch, seq, heads, dim] transposed to [batch, heads, seq, dim].
    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in make_qkv(1, 4, 1, 33, 33, 16, torch.float32, 1))
    assert not q.is_contiguous()
    out, mass = attention_with_map(q, k, v, causal=True, map_rows=[0, 32], reduce="mean", backend="triton")
    want_out, want_probs = dense_attention(q, k, v, causal=True, rows=[0, 32])
    torch.testing.assert_close(out.double(), want_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(mass.double(), want_probs.mean(1), atol=1e-6, rtol=0)
    # Row 0 of a causal square attention can only look at key 0.
    assert mass[0, 0, 0].item() == pytest.approx(1.0) and mass[0, 0, 1:].abs().max().item() < 1e-7
    torch.testing.assert_close(mass.sum(-1), torch.ones(1, 2), atol=1e-5, rtol=0)


def test_triton_kernel_without_map_returns_none():
    q, k, v = make_qkv(1, 2, 2, 5, 5, 16, torch.float32)
    out, mass = attention_with_map(q, k, v, map_rows=None, backend="triton")
    assert mass is None
    torch.testing.assert_close(out.double(), dense_attention(q, k, v, causal=True, rows=[0])[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("causal", [True, False])
def test_reference_matches_dense_attention(dtype, causal):
    q, k, v = make_qkv(2, 6, 3, 11, 19, 8, dtype, 2)
    out, mass = attention_with_map(q, k, v, causal=causal, map_rows=[-1, 0], reduce="sum", backend="torch")
    want_out, want_probs = dense_attention(q, k, v, causal=causal, rows=[10, 0])
    torch.testing.assert_close(out.double(), want_out, atol=1e-5 if dtype == torch.float32 else 3e-2, rtol=0)
    torch.testing.assert_close(mass.double(), want_probs.sum(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(mass.sum(-1), torch.full((2, 2), 6.0), atol=1e-4, rtol=0)


def test_mask_selects_the_reference_path_and_applies_padding():
    q, k, v = make_qkv(2, 2, 1, 7, 7, 8, torch.float32, 3)
    mask = torch.ones(2, 1, 7, 7, dtype=torch.bool)
    mask[0, :, :, :2] = False  # the first two keys of sequence 0 are padding
    out, mass = attention_with_map(q, k, v, causal=True, map_rows=[-1, 0], attn_mask=mask, backend="triton")
    want_out, want_probs = dense_attention(q, k, v, causal=True, rows=[6], attn_mask=mask)
    torch.testing.assert_close(out[:, :, 2:].double(), want_out[:, :, 2:], atol=1e-5, rtol=0)
    torch.testing.assert_close(mass[:, :1].double(), want_probs.sum(1), atol=1e-6, rtol=0)
    assert mass[0, 0, :2].abs().max().item() == 0.0
    # Row 0 of sequence 0 sees only key 0, which is padding: no mass rather than NaN.
    assert torch.equal(mass[0, 1], torch.zeros(7))
    assert mass[1, 1, 0].item() == pytest.approx(2.0)


def test_reference_takes_normalised_rows_like_the_public_function():
    q, k, v = make_qkv(1, 2, 2, 6, 6, 8, torch.float32)
    _, from_public = attention_with_map(q, k, v, map_rows=[-2], backend="torch")
    _, from_reference = attention_with_map_reference(q, k, v, map_rows=torch.tensor([4]))
    torch.testing.assert_close(from_public, from_reference)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(q=torch.zeros(1, 3, 4, 8)), "multiple of key/value heads"),
        (dict(k=torch.zeros(1, 2, 4, 4), v=torch.zeros(1, 2, 4, 4)), "differ in batch or head dim"),
        (dict(v=torch.zeros(1, 2, 5, 8)), "k and v must have the same shape"),
        (dict(q=torch.zeros(1, 2, 4, 8, dtype=torch.float64)), "share a dtype"),
        (dict(q=torch.zeros(2, 4, 8)), r"\[batch, heads, seq, dim\]"),
        (dict(map_rows=[4]), "map_rows value 4 is out of range for 4 query rows"),
        (dict(map_rows=[]), "map_rows is empty"),
        (dict(reduce="max"), "reduce must be one of"),
        (dict(q=torch.zeros(1, 2, 6, 8)), "causal attention needs n_q <= n_k"),
        (dict(backend="cuda"), "backend must be one of"),
    ],
)
def test_bad_input_is_named(change, message):
    args = dict(q=torch.zeros(1, 2, 4, 8), k=torch.zeros(1, 2, 4, 8), v=torch.zeros(1, 2, 4, 8), map_rows=[-1])
    args.update(change)
    q, k, v = args.pop("q"), args.pop("k"), args.pop("v")
    with pytest.raises(ValueError, match=message):
        attention_with_map(q, k, v, **args)
