"""``panoseek train grpo``: multi-turn GRPO of an image-text-to-text model (:mod:`panoseek.training.grpo`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, replace

from panoseek.agents.chat import STRUCTURES
from panoseek.envs.env import parse_view_size
from panoseek.training.grpo import PRESETS, REWARDS, GRPOOptions

# Options given on the command line as --name (underscores as dashes), with their help.
_HELP = {
    "suite": "training suite (default synth:train)",
    "tasks": "train on the first N tasks of the suite (default 64)",
    "batch": "episodes per optimizer step (default 16)",
    "group": "episodes per start; advantages are normalised within a group (default 8)",
    "micro_batches": "split a step's per-turn rows into N forward/backward passes (default 1)",
    "max_turns": "turns per episode (default 5)",
    "history": "views kept as images in the chat (default 2)",
    "temperature": "sampling temperature (default 0.7)",
    "max_new_tokens": "longest reply in tokens (default 256)",
    "beta": "KL coefficient against the starting model (default 0)",
    "epsilon": "PPO clip range (default 0.2)",
    "lr": "learning rate (default 1e-7)",
    "reward": f"episode reward: {', '.join(sorted(REWARDS))} (default hstar: 0.5 success + 0.5 format)",
    "prompt_format": "free_think, no_think or grounding (default free_think)",
    "chat": "chat structure, as the vlm agent's chat option: panoseek, compact (models of panoseek train recipe "
            "tiny) or hstar (H*'s prompts; default panoseek)",
    "turns_left": "end every user turn with the turns left of the --max-turns budget (not with --chat hstar); "
                  "evaluate the model with --agent-arg turns_left=true",
    "view_size": "WIDTHxHEIGHT of the views (default 448x252)",
    "max_steps": "optimizer steps (default 100)",
    "save_steps": "checkpoint every N steps (default 10)",
    "seed": "run seed: data order, starts, sampling (default 0)",
}


def _view_size(text: str) -> tuple[int, int]:
    try:
        return parse_view_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _options(args: argparse.Namespace) -> GRPOOptions:
    """The preset's options (or the defaults) with every option given on the command line on top."""
    base = GRPOOptions(**PRESETS[args.preset]) if args.preset else GRPOOptions()
    given = {f.name: getattr(args, f.name) for f in fields(GRPOOptions) if getattr(args, f.name, None) is not None}
    return replace(base, **given)


def _train_grpo(args: argparse.Namespace) -> int:
    from panoseek.training.grpo import GRPOError, train_grpo

    try:
        options = _options(args)
        options.check()
        summary = train_grpo(args.model, args.out, options, progress=not args.no_progress)
    except GRPOError as error:
        print(f"panoseek train grpo: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0 if summary["finished"] else 1


def add_grpo_command(train_subparsers: argparse._SubParsersAction) -> None:
    """Add ``grpo`` under an existing ``panoseek train`` subparser group."""
    parser = train_subparsers.add_parser(
        "grpo",
        help="multi-turn GRPO of a local image-text-to-text model on search episodes (resumable)",
        description="GRPO with TRL's GRPOTrainer, episodes played by the engine: each step plays --batch episodes "
        "(--group per start), trains every turn's reply with its episode's group-normalised advantage. Writes "
        "OUT/checkpoint-N, OUT/progress.jsonl, OUT/curves.png and OUT/final; rerun the same command to resume.",
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="local model folder (e.g. an SFT run's final/)")
    parser.add_argument("--out", required=True, metavar="DIR", help="run folder (rerun to resume)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="hstar: H* Bench's recipe (group 8, 5 turns, window 2, lr 1e-7, temperature 0.7, "
                        "reward 0.5 success + 0.5 format); other options override it")
    types = {f.name: f.type for f in fields(GRPOOptions)}
    for name, text in _HELP.items():
        kind = {"int": int, "float": float, "str": str}.get(types[name], None)
        if name == "view_size":
            parser.add_argument("--view-size", type=_view_size, default=None, metavar="WxH", help=text)
        elif name == "chat":
            parser.add_argument("--chat", choices=STRUCTURES, default=None, help=text)
        elif name == "turns_left":
            parser.add_argument("--turns-left", action="store_true", default=None, help=text)
        elif name == "prompt_format":
            parser.add_argument("--prompt-format", choices=("free_think", "no_think", "grounding"), default=None, help=text)
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=text)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_train_grpo)
