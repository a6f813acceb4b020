"""Benchmark: peak memory of one attention map from a whole model, kernel path vs eager.

What attention-guided cropping costs in memory: one forward of a Qwen2.5-VL decoder at
N tokens that hands back the last token's attention at one layer.

* kernel path: ``attn_implementation="panoseek_map"`` + ``AttentionMaps`` at that layer
  (SDPA everywhere, ``attention_with_map`` at the map layer: rows x N extra);
* eager: what ViCrop does, ``attn_implementation="eager"`` + ``output_attentions=True``
  (every layer builds, and returns, its N x N attention weights).

The decoder has Qwen2.5-VL-3B's layer shapes (hidden 2048, 16 query / 2 key-value heads of
dim 128, MLP 11008) but only ``--layers`` layers (random weights, text tokens only: the
vision tower costs both paths the same). Eager keeps one N x N map per layer, so on the
real 36-layer model its peak is larger still; the kernel path's is not. Each path runs in
a fresh process; on the CPU its figure is the rise of the peak resident set (``VmHWM``,
reset through ``/proc/self/clear_refs``) over the forward, on CUDA the rise of
``torch.cuda.max_memory_allocated``.

    nice -n 10 python benchmarks/attention_map_memory.py            # CPU, fp32, N = 4096
    python benchmarks/attention_map_memory.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(path: str, args: argparse.Namespace) -> dict:
    """Build the decoder, run one map forward through ``path``, return its memory and time."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.utils import logging as hf_logging

    from panoseek.kernels.hf_attention import ATTENTION_NAME, AttentionMaps

    hf_logging.set_verbosity_error()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=2048, hidden_size=2048, intermediate_size=11008, num_hidden_layers=args.layers,
            num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
        ),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=2048),
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).to(device=device, dtype=dtype).eval()
    model.set_attn_implementation(ATTENTION_NAME if path == "kernel" else "eager")
    ids = torch.randint(10, 2048, (1, args.seq), generator=torch.Generator().manual_seed(1)).to(device)
    layer = args.layers // 2

    def forward(ids):
        with torch.no_grad():
            if path == "kernel":
                with AttentionMaps([layer], rows=(-1,), reduce="mean") as maps:
                    model(input_ids=ids, logits_to_keep=1)
                return maps[layer][0, 0]
            out = model(input_ids=ids, logits_to_keep=1, output_attentions=True)
            return out.attentions[layer][0, :, -1].float().mean(0)

    forward(ids[:, :64])  # loads what the first call loads, outside the measurement

    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        base = _status_kib("VmRSS") * 1024
    start = time.perf_counter()
    relevance = forward(ids)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _status_kib("VmHWM") * 1024 - base
    seconds = time.perf_counter() - start
    return {"path": path, "peak_mib": peak / 2**20, "seconds": seconds, "map_sum": float(relevance.sum()),
            "map_argmax": int(relevance.argmax())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=int, default=4096, help="tokens (default 4096)")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers (default 2; the map is read at layers // 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--child", choices=["kernel", "eager"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return 0

    rows = []
    for path in ("kernel", "eager"):
        command = [sys.executable, __file__, "--child", path, "--seq", str(args.seq), "--layers", str(args.layers),
                   "--device", args.device, "--dtype", args.dtype]
        # Large blocks always mmap-ed, so freed tensors leave the resident set (glibc would keep some).
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    kernel, eager = rows
    print(f"map of the last token at layer {args.layers // 2} of {args.layers}, N = {args.seq}, {args.device} {args.dtype}, "
          "Qwen2.5-VL-3B layer shapes")
    print(f"{'path':>8} {'peak MiB':>9} {'seconds':>8} {'map argmax':>10}")
    for row in rows:
        print(f"{row['path']:>8} {row['peak_mib']:>9.0f} {row['seconds']:>8.1f} {row['map_argmax']:>10}")
    ratio = eager["peak_mib"] / kernel["peak_mib"]
    print(f"eager / kernel peak memory: {ratio:.1f}x (goal >= 5x); same map peak: {kernel['map_argmax'] == eager['map_argmax']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": rows, "ratio": ratio}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
