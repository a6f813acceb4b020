"""``panoseek data preferences`` and ``panoseek train dpo``: preference pairs and DPO on them."""

from __future__ import annotations

import argparse
import json
import sys


def _preferences(args: argparse.Namespace) -> int:
    from panoseek.scenes import SuiteError
    from panoseek.training.preferences import PreferenceError, build_preferences

    try:
        counts = build_preferences(
            args.data, args.model, args.out, samples=args.samples, temperature=args.temperature,
            max_new_tokens=args.max_new_tokens, seed=args.seed, limit=args.limit, device=args.device, dtype=args.dtype,
            progress=not args.no_progress,
        )
    except (PreferenceError, SuiteError, OSError) as error:
        print(f"panoseek data preferences: {error}", file=sys.stderr)
        return 2
    reasons = ", ".join(f"{key} {counts[key]}" for key in ("invalid", "malformed", "failed_submit", "delays_submit",
                                                             "revisit"))
    print(f"{counts['new']} new episodes: {counts['candidates']} sampled replies, {counts['pairs']} pairs ({reasons}); "
          f"{counts['episodes']} episodes in {args.out}")
    return 0


def _train_dpo(args: argparse.Namespace) -> int:
    from panoseek.training.malloc import malloc_settings_missing, reexec_with_malloc_settings

    # As `panoseek train sft`: re-run once with the malloc settings glibc reads only at start-up.
    if sys.argv[1:3] == ["train", "dpo"] and malloc_settings_missing():
        reexec_with_malloc_settings(sys.argv[1:])
    from panoseek.training.dpo import DPOError, DPOOptions, train_dpo
    from panoseek.training.preferences import PreferenceError

    options = DPOOptions(max_steps=args.max_steps, save_steps=args.save_steps, lr=args.lr, beta=args.beta,
                         seed=args.seed, batch_size=args.batch_size, grad_accum=args.grad_accum,
                         logprobs=args.logprobs, sft_weight=args.sft_weight)
    try:
        summary = train_dpo(args.model, args.data, args.out, options, eval_dir=args.val_data,
                            progress=not args.no_progress)
    except (DPOError, PreferenceError) as error:
        print(f"panoseek train dpo: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0 if summary["finished"] else 1


def add_preferences_command(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``preferences`` under the ``panoseek data`` group."""
    parser = data_subparsers.add_parser(
        "preferences", help="sample model replies at the expert's histories, judge them, write DPO pairs (resumable)")
    parser.add_argument("--data", required=True, metavar="DIR", help="expert-data folder (panoseek data experts)")
    parser.add_argument("--model", required=True, metavar="DIR", help="local model folder that samples the replies")
    parser.add_argument("--out", required=True, metavar="DIR", help="pairs folder (rerun to continue)")
    parser.add_argument("--samples", type=int, default=2, help="replies sampled per turn (default 2)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="longest sampled reply (default 96)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="at most N expert episodes")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=("auto", "float32", "bfloat16", "float16"),
                        help="weights dtype for sampling (default float32; bfloat16 on GPUs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_preferences)


def add_dpo_command(train_subparsers: argparse._SubParsersAction) -> None:
    """Add ``dpo`` under the ``panoseek train`` group."""
    parser = train_subparsers.add_parser("dpo", help="DPO on preference pairs with TRL's DPOTrainer (resumable)")
    parser.add_argument("--model", required=True, metavar="DIR", help="local image-text-to-text model folder")
    parser.add_argument("--data", required=True, metavar="DIR", help="pairs folder (panoseek data preferences)")
    parser.add_argument("--out", required=True, metavar="DIR", help="run folder (rerun to resume)")
    parser.add_argument("--val-data", default=None, metavar="DIR", help="pairs folder for the val loss")
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--save-steps", type=int, default=25, help="checkpoint (and val loss) every N steps")
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--beta", type=float, default=0.1, help="DPO's KL strength (default 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=2, help="pairs per device per step")
    parser.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    parser.add_argument("--logprobs", default="panoseek", choices=("panoseek", "trl"),
                        help="per-token log-probs: panoseek.kernels.token_logprobs (default) or TRL's fused head")
    parser.add_argument("--sft-weight", type=float, default=0.0, metavar="W",
                        help="add W x the chosen replies' negative log-likelihood to the DPO loss (TRL's 'sft' loss "
                             "type, as in RPO), which keeps the chosen replies likely while the margin grows "
                             "(default 0: plain DPO)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_train_dpo)
