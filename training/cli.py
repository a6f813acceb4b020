"""``panoseek data ...`` and ``panoseek train ...``: expert data, supervised fine-tuning, PPO."""

from __future__ import annotations

import argparse
import json
import sys

from panoseek.envs.env import parse_view_size
from panoseek.training.dpo_cli import add_dpo_command, add_preferences_command
from panoseek.training.grpo_cli import add_grpo_command
from panoseek.training.ppo_cli import add_ppo_command
from panoseek.training.recipe_cli import add_recipe_command


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` and ``train`` command groups to the ``panoseek`` parser."""
    data = subparsers.add_parser("data", help="build training data (expert trajectories)")
    data.set_defaults(handler=lambda args: _print_help(data))
    data_commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    experts = data_commands.add_parser("experts", help="play the expert on a suite and write SFT rows (resumable)")
    experts.add_argument("--suite", required=True, help="suite spec, e.g. synth:train, hstar:DIR, jsonl:FILE")
    experts.add_argument("--out", required=True, metavar="DIR", help="data folder (rerun to continue)")
    experts.add_argument("--limit", type=int, default=None, metavar="N", help="at most N episodes (default: all)")
    experts.add_argument("--prompt-format", default="free_think", choices=("free_think", "no_think", "grounding"))
    experts.add_argument("--chat", default="panoseek", choices=("panoseek", "compact"),
                         help="chat structure: 'compact' opens with one line instead of the rules (models trained "
                              "from scratch); evaluate with --agent-arg chat=compact")
    experts.add_argument("--history", type=int, default=2, help="views kept as images in the chat (default 2)")
    experts.add_argument("--view-size", default="448x252", help="WIDTHxHEIGHT of the views (default 448x252)")
    experts.add_argument("--seed", type=int, default=0, help="run seed: episode seeds, the expert's scan (default 0)")
    experts.add_argument("--turns-left", action="store_true",
                         help="end every user turn with how many turns are left; evaluate with "
                              "--agent-arg turns_left=true")
    experts.add_argument("--short-budgets", type=float, default=0.0, metavar="P",
                         help="with --turns-left: play a seeded share P of the episodes with a budget of "
                              "3..9 turns, so the data shows last-turn submissions (default 0)")
    experts.add_argument("--no-progress", action="store_true", help="no progress bar")
    experts.set_defaults(handler=run_experts)

    sharegpt = data_commands.add_parser("export-sharegpt", help="write sharegpt.json + dataset_info.json (LLaMA-Factory)")
    sharegpt.add_argument("--data", required=True, metavar="DIR", help="an expert-data folder")
    sharegpt.set_defaults(handler=run_export_sharegpt)
    add_preferences_command(data_commands)

    train = subparsers.add_parser("train", help="post-train models: SFT on expert data, PPO for small policies")
    train.set_defaults(handler=lambda args: _print_help(train))
    train_commands = train.add_subparsers(dest="train_command", metavar="SUBCOMMAND")
    add_ppo_command(train_commands)
    add_recipe_command(train_commands)
    add_dpo_command(train_commands)
    add_grpo_command(train_commands)
    sft = train_commands.add_parser("sft", help="supervised fine-tuning with TRL's SFTTrainer (resumable)")
    sft.add_argument("--model", required=True, metavar="DIR", help="local image-text-to-text model folder")
    sft.add_argument("--data", required=True, metavar="DIR", help="expert-data folder (panoseek data experts)")
    sft.add_argument("--out", required=True, metavar="DIR", help="run folder (rerun to resume)")
    sft.add_argument("--val-data", default=None, metavar="DIR", help="expert-data folder for the val loss")
    sft.add_argument("--max-steps", type=int, default=200)
    sft.add_argument("--save-steps", type=int, default=50, help="checkpoint (and val loss) every N steps")
    sft.add_argument("--lr", type=float, default=1e-4)
    sft.add_argument("--seed", type=int, default=0)
    sft.add_argument("--batch-size", type=int, default=4, help="rows per device per step")
    sft.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    sft.add_argument("--max-length", type=int, default=None, help="fixed batch length (default: longest row)")
    sft.add_argument("--length-bucket", type=int, default=None,
                     help="group rows by length and pad each batch to a multiple of this (e.g. 64) instead of "
                          "the fixed length: fewer padded tokens when rows differ a lot")
    sft.add_argument("--codebook", action="store_true",
                     help="also train the task-conditioned codebook selective filter between the vision merger and "
                     "the language model (zero gate at the start; saved in final/)")
    sft.add_argument("--codebook-only", action="store_true",
                     help="train only the codebook filter, the model frozen (implies --codebook)")
    sft.add_argument("--target-loss", type=float, default=0.0, metavar="W",
                     help="weight of the target-map loss: each image token of an object-search view learns whether "
                          "the target is in its cell (labels from the data's suite; training only; 0: off, the "
                          "default; docs/training.md)")
    sft.add_argument("--no-progress", action="store_true", help="no progress bar")
    sft.set_defaults(handler=run_sft)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def run_experts(args: argparse.Namespace) -> int:
    from panoseek.scenes import load_suite
    from panoseek.scenes.suite import SuiteError
    from panoseek.training.expert_data import ExpertDataError, build_expert_data

    try:
        suite = load_suite(args.suite)
        counts = build_expert_data(
            suite, args.out, limit=args.limit, prompt_format=args.prompt_format, chat=args.chat, history=args.history,
            view_size=parse_view_size(args.view_size), seed=args.seed, turns_left=args.turns_left,
            short_budgets=args.short_budgets, progress=not args.no_progress,
        )
    except (ExpertDataError, SuiteError, ValueError, OSError) as error:
        print(f"panoseek data experts: {error}", file=sys.stderr)
        return 2
    print(f"{counts['new']} new episodes ({counts['successes']} successful, {counts['rows']} rows); "
          f"{counts['episodes']} episodes in {args.out}")
    return 0


def run_export_sharegpt(args: argparse.Namespace) -> int:
    from panoseek.training.dataset import DatasetError
    from panoseek.training.sharegpt import export_sharegpt

    try:
        path = export_sharegpt(args.data)
    except (DatasetError, OSError) as error:
        print(f"panoseek data export-sharegpt: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path} and dataset_info.json")
    return 0


def run_sft(args: argparse.Namespace) -> int:
    from panoseek.training.malloc import malloc_settings_missing, reexec_with_malloc_settings

    # Started as `panoseek train sft ...` (also under accelerate launch): re-run with the
    # malloc settings glibc only reads at start-up (panoseek.training.malloc).
    if sys.argv[1:3] == ["train", "sft"] and malloc_settings_missing():
        reexec_with_malloc_settings(sys.argv[1:])
    from panoseek.training.dataset import DatasetError
    from panoseek.training.sft import SFTError, SFTOptions, train_sft

    options = SFTOptions(
        max_steps=args.max_steps, save_steps=args.save_steps, lr=args.lr, seed=args.seed,
        batch_size=args.batch_size, grad_accum=args.grad_accum, max_length=args.max_length,
        length_bucket=args.length_bucket,
        codebook=args.codebook or args.codebook_only, codebook_only=args.codebook_only,
        target_loss=args.target_loss,
    )
    try:
        summary = train_sft(args.model, args.data, args.out, options, eval_dir=args.val_data,
                            progress=not args.no_progress)
    except (SFTError, DatasetError) as error:
        print(f"panoseek train sft: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0 if summary["finished"] else 1
