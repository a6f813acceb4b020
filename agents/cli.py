"""``panoseek model ...``: build and inspect models for the language agents."""

from __future__ import annotations

import argparse
import math
import sys


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``model`` command group to the ``panoseek`` parser."""
    model = subparsers.add_parser("model", help="build models for the language agents")
    model.set_defaults(handler=lambda args: _print_help(model))
    commands = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")

    tiny = commands.add_parser(
        "init-tiny",
        help="write a tiny random Qwen2.5-VL model, tokenizer and processor (offline, for tests and CPU runs)",
    )
    tiny.add_argument("--out", required=True, metavar="DIR", help="folder to write the model into")
    tiny.add_argument("--size", choices=("S", "M"), default="M", help="S: ~0.3M parameters; M: ~5M (default)")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    tiny.add_argument("--max-pixels", type=int, default=28 * 28 * 16,
                      help="pixel budget per view of the processor (28x28 pixels a merged image token; default 16 tokens)")
    tiny.add_argument(
        "--force", action="store_true",
        help="write into a non-empty folder: overwrite the tiny model's own files, keep (never delete) the others",
    )
    tiny.set_defaults(handler=run_init_tiny)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def run_init_tiny(args: argparse.Namespace) -> int:
    """Build the tiny model into ``--out`` and print where it is and its size."""
    from safetensors import safe_open

    from panoseek.agents.tiny_model import build_tiny_model

    try:
        out = build_tiny_model(args.out, size=args.size, seed=args.seed, force=args.force, max_pixels=args.max_pixels)
    except (ValueError, OSError) as error:
        print(f"panoseek model init-tiny: {error}", file=sys.stderr)
        return 2
    with safe_open(str(out / "model.safetensors"), framework="pt") as weights:
        count = sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())
    print(f"wrote a tiny Qwen2.5-VL model (size {args.size}, seed {args.seed}, {count:,} parameters) to {out}")
    return 0
