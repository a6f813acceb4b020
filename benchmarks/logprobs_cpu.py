"""Token log-probabilities on the CPU: ours vs TRL's chunked function vs the naive path.

Forward + backward (gradients for the hidden states and the lm-head weight), at the
lm-head shapes of a small Qwen-family model (hidden 1024, vocab 151,936, float32).
Each (method, tokens) runs in a fresh process, so its peak memory is the process's
peak resident memory above what it held once the inputs were built (the weight
gradient counts: every method makes one). Methods take turns size by size, so a
drifting machine treats them alike. Goals on the CPU: never more memory than naive,
at most 1.3x its time. "ours" is ``token_logprobs``'s CPU default (the logits kept for the
backward pass), "recompute" its GPU default (each block's logits recomputed).

    python benchmarks/logprobs_cpu.py                         # 1k, 2k, 4k tokens
    python benchmarks/logprobs_cpu.py --tokens 512 1024 --repeats 2 --chunk-size 512
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, statistics, sys, time
import torch
method, n, dim, vocab, chunk, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
torch.manual_seed(0)
weight = (torch.randn(vocab, dim) * dim ** -0.5).requires_grad_()
hidden = torch.randn(n, dim).requires_grad_()
targets = torch.randint(0, vocab, (n,))
grad = torch.randn(n)
if method in ("ours", "recompute"):
    from panoseek.kernels import token_logprobs
    keep = method == "ours"  # the CPU default keeps the logits; "recompute" is the GPU default
    run = lambda: token_logprobs(hidden, weight, targets, chunk_size=chunk, backend="torch", keep_logits=keep)
elif method == "trl":
    from trl.kernels import ChunkedLogProbFunction
    run = lambda: ChunkedLogProbFunction.apply(hidden, weight, None, targets, 1.0, chunk)[0]
else:
    from panoseek.kernels.logprobs import token_logprobs_naive
    run = lambda: token_logprobs_naive(hidden, weight, targets)
def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
base = rss_kib()
times = []
for _ in range(repeats):
    start = time.perf_counter()
    run().backward(grad)
    times.append(time.perf_counter() - start)
    hidden.grad = weight.grad = None
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"seconds": statistics.median(times), "peak_gib": (peak - base) / 2**20}))
"""


def measure(method: str, tokens: int, args: argparse.Namespace) -> dict:
    # TRL's chunk_size counts vocabulary columns per tile, ours counts tokens.
    chunk = args.trl_chunk if method == "trl" else args.chunk_size
    command = [sys.executable, "-c", CHILD, method, str(tokens), str(args.dim), str(args.vocab), str(chunk), str(args.repeats)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{method} at {tokens} tokens failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--chunk-size", type=int, default=512, help="our tokens per block (the default of token_logprobs)")
    parser.add_argument("--trl-chunk", type=int, default=4096, help="TRL's vocabulary columns per tile")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU, float32, hidden {args.dim}, vocab {args.vocab}, forward + backward, median of {args.repeats}; "
          f"ours chunk {args.chunk_size} tokens, TRL chunk {args.trl_chunk} columns")
    print(f"{'tokens':>6} {'method':>9} {'seconds':>8} {'peak GiB':>9} {'time/naive':>10} {'mem/naive':>9}")
    for tokens in args.tokens:
        rows = {method: measure(method, tokens, args) for method in ("naive", "ours", "recompute", "trl")}
        for method, row in rows.items():
            print(f"{tokens:>6} {method:>9} {row['seconds']:>8.2f} {row['peak_gib']:>9.2f} "
                  f"{row['seconds'] / rows['naive']['seconds']:>10.2f} {row['peak_gib'] / rows['naive']['peak_gib']:>9.2f}")


if __name__ == "__main__":
    main()
