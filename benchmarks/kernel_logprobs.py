"""Benchmark: chunked token_logprobs vs the naive lm-head + log_softmax + gather (forward + backward).

Qwen2.5-VL-3B lm-head: hidden 2048, vocab 151,936, bf16, 4k-16k tokens, gradients for
the hidden states and the lm-head weight. Liger's fused linear cross-entropy is timed too
when ``liger-kernel`` is installed (it returns a loss, not per-token log-probs, and
computes its gradients during the forward pass). Goals: at least 4x lower peak memory
than the naive path at no more than 1.1x its time.

    python benchmarks/kernel_logprobs.py                  # GPU
    python benchmarks/kernel_logprobs.py --cpu-smoke      # tiny shapes on the CPU
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernel_timing import device_line, fmt, measure, ratio, write_json  # noqa: E402

from panoseek.kernels import token_logprobs  # noqa: E402
from panoseek.kernels.logprobs import token_logprobs_naive  # noqa: E402


def liger_loss():
    """Liger's fused linear cross-entropy (sum over tokens), or None when not installed."""
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    except ImportError:
        return None
    return LigerFusedLinearCrossEntropyLoss(reduction="sum")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on the CPU, to check the script runs")
    parser.add_argument("--tokens", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    if args.cpu_smoke:
        device, dtype, dim, vocab, token_counts, chunk = torch.device("cpu"), torch.float32, 64, 1000, [256, 512], 128
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device; use --cpu-smoke")
        device, dtype, dim, vocab, token_counts, chunk = torch.device("cuda"), torch.bfloat16, 2048, 151936, args.tokens, args.chunk_size
    liger = liger_loss() if device.type == "cuda" else None
    print(device_line(device))
    print(f"token_logprobs: hidden {dim}, vocab {vocab}, {dtype}, chunk {chunk}, forward + backward (hidden and weight grads)")
    print(f"liger-kernel: {'installed' if liger else 'not installed (skipped)'}")
    print(f"{'tokens':>7} {'naive ms':>9} {'ours ms':>8} {'ours/naive':>10} {'naive MiB':>9} {'ours MiB':>8} {'naive/ours mem':>14} {'liger ms':>8} {'liger MiB':>9} {'max|dlogp|':>10}")
    gen = torch.Generator(device=device).manual_seed(0)
    weight = (torch.randn(vocab, dim, device=device, generator=gen) * dim**-0.5).to(dtype).requires_grad_()
    results = []
    for n in token_counts:
        hidden = torch.randn(n, dim, device=device, dtype=dtype, generator=gen).requires_grad_()
        targets = torch.randint(0, vocab, (n,), device=device, generator=gen)
        grad = torch.randn(n, device=device, generator=gen)

        def run(fn):
            def step():
                fn().backward(grad if fn is not run_liger else None)
                hidden.grad = weight.grad = None  # freed after the step: the peak counts them once
            return step

        def run_naive():
            return token_logprobs_naive(hidden, weight, targets)

        def run_ours():
            return token_logprobs(hidden, weight, targets, chunk_size=chunk)

        def run_liger():
            return liger(weight, hidden, targets)

        naive = measure(run(run_naive), device, warmup=2, repeat=5)
        ours = measure(run(run_ours), device, warmup=2, repeat=5)
        lig = measure(run(run_liger), device, warmup=2, repeat=5) if liger else {"ms": None, "peak_mib": None}
        with torch.no_grad():
            diff = (token_logprobs(hidden, weight, targets, chunk_size=chunk) - token_logprobs_naive(hidden, weight, targets)).abs().max().item()
        row = {
            "tokens": n, "naive_ms": naive["ms"], "ours_ms": ours["ms"], "liger_ms": lig["ms"],
            "naive_peak_mib": naive["peak_mib"], "ours_peak_mib": ours["peak_mib"], "liger_peak_mib": lig["peak_mib"],
            "time_ratio_vs_naive": ratio(ours["ms"], naive["ms"]),
            "memory_ratio_naive_over_ours": ratio(naive["peak_mib"], ours["peak_mib"]),
            "max_abs_logprob_diff": diff,
        }
        results.append(row)
        print(
            f"{n:>7} {fmt(naive['ms']):>9} {fmt(ours['ms']):>8} {fmt(row['time_ratio_vs_naive']):>10} "
            f"{fmt(naive['peak_mib'], '.0f'):>9} {fmt(ours['peak_mib'], '.0f'):>8} "
            f"{fmt(row['memory_ratio_naive_over_ours'], '.1f'):>14} {fmt(lig['ms']):>8} {fmt(lig['peak_mib'], '.0f'):>9} {diff:>10.2e}"
        )
        del hidden, targets, grad
    print("goals: memory naive/ours >= 4, time ours/naive <= 1.1")
    write_json(args.json, {"device": device_line(device), "dtype": str(dtype), "chunk_size": chunk, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
