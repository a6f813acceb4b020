"""``panoseek train recipe tiny``: the from-scratch tiny searcher recipe (training/recipe.py)."""

from __future__ import annotations

import argparse
import json
import sys

from panoseek.training.recipe import TinyRecipe


def add_recipe_command(train_commands: argparse._SubParsersAction) -> None:
    """Add ``train recipe tiny`` to the ``panoseek train`` group."""
    defaults = TinyRecipe()
    recipe = train_commands.add_parser(
        "recipe", help="one-command training recipes (resumable)",
        description="Train a tiny Qwen2.5-VL-style searcher from scratch on synth:train: model, expert data, "
                    "SFT, each stage resumable (rerun the same command after an interruption).",
    )
    recipe.add_argument("name", choices=("tiny",), help="the recipe: 'tiny' (size-M model, CPU, about 90 minutes)")
    recipe.add_argument("--out", required=True, metavar="DIR", help="recipe folder: model/, data-train/, data-val/, sft/, sft2/ (rerun to resume)")
    recipe.add_argument("--train-episodes", type=int, default=defaults.train_episodes,
                        help=f"expert episodes of synth:train (default {defaults.train_episodes})")
    recipe.add_argument("--max-steps", type=int, default=defaults.max_steps,
                        help=f"SFT steps of {defaults.batch_size} rows (default {defaults.max_steps})")
    recipe.add_argument("--second-steps", type=int, default=defaults.second_steps,
                        help=f"steps of the second SFT pass at lr {defaults.second_lr:g} (default "
                             f"{defaults.second_steps}; 0: none)")
    recipe.add_argument("--target-loss", type=float, default=defaults.target_loss, metavar="W",
                        help="weight of the target-map loss in both SFT passes (each image token learns whether "
                             f"the target is in its cell; default {defaults.target_loss:g}; docs/training.md)")
    recipe.add_argument("--seed", type=int, default=defaults.seed)
    recipe.add_argument("--no-progress", action="store_true", help="no progress bars")
    recipe.set_defaults(handler=run_recipe)


def run_recipe(args: argparse.Namespace) -> int:
    from panoseek.training.malloc import malloc_settings_missing, reexec_with_malloc_settings

    if sys.argv[1:3] == ["train", "recipe"] and malloc_settings_missing():
        reexec_with_malloc_settings(sys.argv[1:])  # glibc reads them at start-up only (training/malloc.py)
    from panoseek.training.dataset import DatasetError
    from panoseek.training.expert_data import ExpertDataError
    from panoseek.training.recipe import run_tiny_recipe
    from panoseek.training.sft import SFTError

    recipe = TinyRecipe(train_episodes=args.train_episodes, max_steps=args.max_steps, second_steps=args.second_steps,
                        target_loss=args.target_loss, seed=args.seed)
    try:
        summary = run_tiny_recipe(args.out, recipe, progress=not args.no_progress)
    except (SFTError, DatasetError, ExpertDataError, ValueError, OSError) as error:
        print(f"panoseek train recipe: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    if not summary["finished"]:
        return 1
    from pathlib import Path

    print(f"trained model: {recipe.final_model(Path(args.out))}\nscore it with:\n  {recipe.eval_command(Path(args.out))}")
    return 0
