"""Compiled Triton kernels on a CUDA device against their references (bf16 included).

Skipped without a GPU (CI has none); ``benchmarks/gpu_all.sh`` runs them on one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from panoseek.envs.render import render_view
from panoseek.envs.render_torch import render_views_torch
from panoseek.kernels import attention_with_map, token_logprobs
from panoseek.kernels.logprobs import token_logprobs_naive

from conftest import smooth_panorama

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n_q, n_k, dim", [(1000, 1000, 128), (77, 1500, 128), (333, 333, 80)])
def test_attention_on_gpu(dtype, causal, n_q, n_k, dim):
    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(2, 16, n_q, dim, device="cuda", dtype=dtype, generator=gen)
    k = torch.randn(2, 2, n_k, dim, device="cuda", dtype=dtype, generator=gen)
    v = torch.randn(2, 2, n_k, dim, device="cuda", dtype=dtype, generator=gen)
    rows = [-1, 0, n_q // 2]
    out, mass = attention_with_map(q, k, v, causal=causal, map_rows=rows, backend="triton")
    ref_out, ref_mass = attention_with_map(q.float(), k.float(), v.float(), causal=causal, map_rows=rows, backend="torch")
    torch.testing.assert_close(out.float(), ref_out, atol=2e-2, rtol=0)
    torch.testing.assert_close(mass, ref_mass, atol=2e-3, rtol=0)
    torch.testing.assert_close(mass.sum(-1), torch.full_like(mass[..., 0], 16.0), atol=1e-2, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_token_logprobs_on_gpu(dtype):
    gen = torch.Generator(device="cuda").manual_seed(0)
    hidden = torch.randn(3000, 256, device="cuda", generator=gen).to(dtype).requires_grad_()
    weight = (torch.randn(50021, 256, device="cuda", generator=gen) / 16).to(dtype).requires_grad_()
    targets = torch.randint(0, 50021, (3000,), device="cuda", generator=gen)
    targets[:100] = -100
    grads = torch.randn(2, 3000, device="cuda", generator=gen)

    def run(fn, **kwargs):
        hidden.grad = weight.grad = None
        logprob, entropy = fn(hidden, weight, targets, return_entropy=True, **kwargs)
        (logprob * grads[0] + entropy * grads[1]).sum().backward()
        return logprob, entropy, hidden.grad.float(), weight.grad.float()

    ours = run(token_logprobs, chunk_size=1024, backend="triton")
    naive = run(token_logprobs_naive)
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    for got, want in zip(ours, naive):
        torch.testing.assert_close(got, want, **tol)


def test_sample_equirect_on_gpu():
    panoramas = np.stack([smooth_panorama(512, seed) for seed in range(3)])
    yaws = np.linspace(-200, 560, 48)
    pitches = np.linspace(-95, 95, 48)
    index = np.arange(48) % 3
    views = render_views_torch(torch.from_numpy(panoramas).cuda(), yaws, pitches, size=(448, 252), pano_index=index, backend="triton")
    reference = render_views_torch(torch.from_numpy(panoramas).cuda(), yaws, pitches, size=(448, 252), pano_index=index, backend="torch")
    assert (views.int() - reference.int()).abs().max().item() <= 1
    cpu = np.stack([render_view(panoramas[i], y, p, size=(448, 252)) for y, p, i in zip(yaws, pitches, index)])
    diff = np.abs(views.cpu().numpy().astype(int) - cpu.astype(int))
    # render_view samples an interpolated map with 1/32-pixel weights: a few levels at most.
    assert diff.max() <= 4 and diff.mean() < 0.1
