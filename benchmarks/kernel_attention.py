"""Benchmark: attention with an attention map vs SDPA (flash) and eager attention with weights.

Qwen2.5-VL-3B decoder shapes: 16 query heads, 2 key/value heads, head dim 128, bf16,
causal, N = 1k..16k tokens, map for the last query row. Goals at N = 4096: at most
1.15x the time of SDPA flash, at least 5x less peak memory than eager attention.

    python benchmarks/kernel_attention.py                 # GPU
    python benchmarks/kernel_attention.py --cpu-smoke     # tiny shapes on the CPU
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernel_timing import device_line, fmt, measure, ratio, write_json  # noqa: E402

from panoseek.kernels import attention_with_map  # noqa: E402


def sdpa_flash(q, k, v):
    """SDPA restricted to the flash backend on CUDA (GQA through enable_gqa)."""
    context = contextlib.nullcontext()
    if q.is_cuda:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        context = sdpa_kernel([SDPBackend.FLASH_ATTENTION])
    with context:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


def eager_with_weights(q, k, v, rows):
    """What transformers' eager attention does: full weights, softmax in fp32."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    scores = torch.matmul(q, k.transpose(2, 3)) * q.shape[-1] ** -0.5
    n = q.shape[2]
    causal = torch.full((n, n), float("-inf"), device=q.device, dtype=q.dtype).triu(1)
    weights = torch.softmax(scores + causal, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(weights, v), weights[:, :, rows].float().sum(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on the CPU, to check the script runs")
    parser.add_argument("--seq", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    if args.cpu_smoke:
        device, dtype, heads, kv_heads, dim, seqs = torch.device("cpu"), torch.float32, 4, 2, 32, [64, 96]
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device; use --cpu-smoke")
        device, dtype, heads, kv_heads, dim, seqs = torch.device("cuda"), torch.bfloat16, 16, 2, 128, args.seq
    print(device_line(device))
    print(f"attention: batch 1, {heads} q heads, {kv_heads} kv heads, head dim {dim}, {dtype}, causal, map of the last row")
    header = f"{'N':>6} {'sdpa ms':>8} {'ours ms':>8} {'ours/sdpa':>9} {'torch-path ms':>13} {'eager ms':>8} {'eager MiB':>9} {'ours MiB':>8} {'eager/ours mem':>14} {'max|dout|':>9} {'max|dmap|':>9}"
    print(header)
    results = []
    for n in seqs:
        gen = torch.Generator(device=device).manual_seed(n)
        q = torch.randn(1, heads, n, dim, device=device, dtype=dtype, generator=gen)
        k = torch.randn(1, kv_heads, n, dim, device=device, dtype=dtype, generator=gen)
        v = torch.randn(1, kv_heads, n, dim, device=device, dtype=dtype, generator=gen)
        rows = [n - 1]
        sdpa = measure(lambda: sdpa_flash(q, k, v), device)
        ours = measure(lambda: attention_with_map(q, k, v, causal=True, map_rows=rows), device)
        torch_path = measure(lambda: attention_with_map(q, k, v, causal=True, map_rows=rows, backend="torch"), device)
        try:
            eager = measure(lambda: eager_with_weights(q, k, v, rows), device, warmup=1, repeat=3)
            eager_out, eager_map = eager_with_weights(q, k, v, rows)
        except torch.OutOfMemoryError:
            eager, eager_out, eager_map = {"ms": None, "peak_mib": None}, None, None
        out, key_mass = attention_with_map(q, k, v, causal=True, map_rows=rows)
        d_out = (out.float() - sdpa_flash(q, k, v).float()).abs().max().item()
        d_map = None if eager_map is None else (key_mass - eager_map).abs().max().item()
        row = {
            "n": n, "sdpa_ms": sdpa["ms"], "ours_ms": ours["ms"], "torch_path_ms": torch_path["ms"],
            "eager_ms": eager["ms"], "eager_peak_mib": eager["peak_mib"], "ours_peak_mib": ours["peak_mib"],
            "time_ratio_vs_sdpa": ratio(ours["ms"], sdpa["ms"]),
            "memory_ratio_eager_over_ours": ratio(eager["peak_mib"], ours["peak_mib"]),
            "max_abs_out_diff_vs_sdpa": d_out, "max_abs_map_diff_vs_eager": d_map,
        }
        results.append(row)
        print(
            f"{n:>6} {fmt(sdpa['ms']):>8} {fmt(ours['ms']):>8} {fmt(row['time_ratio_vs_sdpa']):>9} "
            f"{fmt(torch_path['ms']):>13} {fmt(eager['ms']):>8} {fmt(eager['peak_mib'], '.0f'):>9} "
            f"{fmt(ours['peak_mib'], '.0f'):>8} {fmt(row['memory_ratio_eager_over_ours'], '.1f'):>14} "
            f"{d_out:>9.2e} {fmt(d_map, '.2e'):>9}"
        )
        del q, k, v
    goal = next((r for r in results if r["n"] == 4096), None)
    if goal is not None:
        print(
            f"goal at N=4096: time ours/sdpa {fmt(goal['time_ratio_vs_sdpa'])} (goal <= 1.15), "
            f"memory eager/ours {fmt(goal['memory_ratio_eager_over_ours'], '.1f')} (goal >= 5)"
        )
    write_json(args.json, {"device": device_line(device), "dtype": str(dtype), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
