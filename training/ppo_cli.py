"""``panoseek train ppo``: the CleanRL-style PPO recipe of :mod:`panoseek.training.ppo`."""

from __future__ import annotations

import argparse
import sys

from panoseek.envs.env import parse_view_size
from panoseek.training.ppo_args import Args


def _view_size(text: str) -> tuple[int, int]:
    try:
        return parse_view_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _train_ppo(args: argparse.Namespace) -> int:
    from panoseek.scenes import SuiteError
    from panoseek.training.ppo import train

    settings = Args(
        suite=args.suite, out=args.out, seed=args.seed, total_steps=args.total_steps, num_envs=args.num_envs,
        num_steps=args.num_steps, codebook=args.codebook, cnn=args.cnn, spatial_attention=args.spatial_attention,
        distance_reward=args.distance_reward,
        progress_reward=args.progress_reward, last_turn_submits=args.last_turn_submits,
        learning_rate=args.learning_rate, ent_coef=args.ent_coef, gamma=args.gamma, target_loss=args.target_loss,
        view_size=args.view_size, working_set=args.working_set, swap_every=args.swap_every,
        update_epochs=args.update_epochs, warmup_steps=args.warmup_steps, warmup_batch=args.warmup_batch,
        warmup_lr=args.warmup_lr, device=args.device, threads=args.threads,
        checkpoint_every=args.checkpoint_every, progress=not args.quiet,
    )
    if settings.target_loss < 0 or settings.progress_reward < 0:
        print(f"panoseek train ppo: error: --target-loss and --progress-reward must be >= 0, got "
              f"{settings.target_loss} and {settings.progress_reward}", file=sys.stderr)
        return 2
    for flag, value, limit, bad in (("--warmup-steps", settings.warmup_steps, ">= 0", settings.warmup_steps < 0),
                                    ("--warmup-batch", settings.warmup_batch, ">= 1", settings.warmup_batch < 1),
                                    ("--warmup-lr", settings.warmup_lr, "> 0", settings.warmup_lr <= 0)):
        if bad:
            print(f"panoseek train ppo: error: {flag} must be {limit}, got {value}", file=sys.stderr)
            return 2
    if settings.warmup_steps and not settings.target_loss:
        print("panoseek train ppo: error: --warmup-steps trains the target head: it needs --target-loss > 0",
              file=sys.stderr)
        return 2
    if settings.num_envs % settings.num_minibatches:
        print(f"panoseek train ppo: error: --num-envs must be a multiple of {settings.num_minibatches} "
              f"(minibatches hold whole environments), got {settings.num_envs}", file=sys.stderr)
        return 2
    if settings.total_steps < settings.num_envs * settings.num_steps:
        print(f"panoseek train ppo: error: --total-steps {settings.total_steps} is less than one update "
              f"({settings.num_envs} envs x {settings.num_steps} steps)", file=sys.stderr)
        return 2
    try:
        row = train(settings)
    except (SuiteError, ValueError) as error:
        print(f"panoseek train ppo: error: {error}", file=sys.stderr)
        return 2
    print(f"update {row.get('update')}: success {row.get('success')}, return {row.get('return')}; "
          f"checkpoint in {args.out}/checkpoint.pt")
    return 0


def add_ppo_command(train_subparsers: argparse._SubParsersAction) -> None:
    """Add ``ppo`` under an existing ``panoseek train`` subparser group."""
    defaults = Args()
    parser = train_subparsers.add_parser(
        "ppo",
        help="train the small recurrent policy with PPO (resumable: rerun the same command)",
        description="CleanRL-style PPO on the natively batched vector env; writes OUT/checkpoint.pt, "
        "OUT/progress.csv and OUT/curves.png. Rerunning with the same OUT continues from the last checkpoint.",
    )
    parser.add_argument("--suite", default=defaults.suite, help="training suite (default synth:train)")
    parser.add_argument("--out", required=True, help="run folder (created; reused to resume)")
    parser.add_argument("--total-steps", type=int, default=defaults.total_steps, help="environment steps in all")
    parser.add_argument("--num-envs", type=int, default=defaults.num_envs, help="parallel episodes (default 16)")
    parser.add_argument("--num-steps", type=int, default=defaults.num_steps, help="turns per env per update")
    parser.add_argument("--update-epochs", type=int, default=defaults.update_epochs, help="epochs per update")
    parser.add_argument("--codebook", action="store_true", help="add the codebook bottleneck")
    parser.add_argument("--cnn", choices=("nature", "fine"), default=defaults.cnn,  # agents.policy.CNNS
                        help="view encoder: nature (8x8 stride-4 first layer, 5x12 last map at 128x72) or fine "
                        "(5x5 stride-2 first layer, 9x16 last map, about 5x the compute; default nature)")
    parser.add_argument("--spatial-attention", action="store_true",
                        help="the instruction queries the CNN's last map: attended features, best-cell score "
                        "and the attention's mean position join the policy's input")
    parser.add_argument("--distance-reward", action="store_true",
                        help="add the H* paper's distance shaping to the submission reward (training only)")
    parser.add_argument("--progress-reward", type=float, default=defaults.progress_reward, metavar="C",
                        help="shaping: C per 90 degrees a turn brings the heading toward the target's windows "
                        f"(training only; 0 turns it off; default {defaults.progress_reward})")
    parser.add_argument("--last-turn-submits", action=argparse.BooleanOptionalAction,
                        default=defaults.last_turn_submits,
                        help="on the last turn of the budget the only action is submit (default on)")
    parser.add_argument("--target-loss", type=float, default=defaults.target_loss, metavar="W",
                        help="weight of an auxiliary loss that predicts whether and where the target is in view, "
                        f"from privileged labels (training only; 0: off; default {defaults.target_loss})")
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps, metavar="N",
                        help="before PPO, N batches of a supervised perception warm-up: the target head's loss on "
                        "labelled random views of the suite (privileged labels, training only; default 0: none)")
    parser.add_argument("--warmup-batch", type=int, default=defaults.warmup_batch,
                        help=f"views per warm-up batch (default {defaults.warmup_batch})")
    parser.add_argument("--warmup-lr", type=float, default=defaults.warmup_lr,
                        help=f"warm-up Adam learning rate, annealed to 0 (default {defaults.warmup_lr})")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                        help=f"Adam learning rate, annealed linearly to 0 (default {defaults.learning_rate})")
    parser.add_argument("--ent-coef", type=float, default=defaults.ent_coef,
                        help=f"entropy bonus (default {defaults.ent_coef})")
    parser.add_argument("--gamma", type=float, default=defaults.gamma,
                        help=f"discount per turn (default {defaults.gamma})")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--view-size", type=_view_size, default=defaults.view_size, metavar="WxH",
                        help="policy view size (default 128x72)")
    parser.add_argument("--working-set", type=int, default=defaults.working_set,
                        help=f"panoramas held in memory at a time (default {defaults.working_set})")
    parser.add_argument("--swap-every", type=int, default=defaults.swap_every,
                        help=f"finished episodes between working-set swaps (default {defaults.swap_every})")
    parser.add_argument("--device", default=defaults.device, help="cpu or cuda (policy and renderer)")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch CPU threads (default 1)")
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every, help="updates")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_train_ppo)
