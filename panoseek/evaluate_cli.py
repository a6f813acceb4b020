"""``panoseek eval`` and ``panoseek merge``: score an agent on a suite, join shards.

This root module wires the three folders together: suites from ``panoseek.scenes``,
agents from ``panoseek.agents`` and the runner from ``panoseek.envs.eval``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import shlex
import sys
from typing import Any

from panoseek.agents.registry import BUILTIN_AGENTS, AgentError, make_agent, resolve_factory
from panoseek.envs.eval.records import RecordsError, merge_folders
from panoseek.envs.env import HSTAR_CROSSHAIR_ARM_PX, parse_view_size
from panoseek.envs.eval.runner import EpisodeFailure, run_benchmark
from panoseek.envs.protocol import HSTAR
from panoseek.envs.rollout import EpisodeSettings
from panoseek.envs.task import Task
from panoseek.scenes import SuiteError, load_suite


DEFAULT_TURN_TIMEOUT = 900.0  # seconds: generous for a language model on a CPU
# Settings a preset fixes: "hstar" is the released H* evaluation (1920x1080 views, its 10 px
# crosshair, its parser and prompt structure, 10 turns).
PRESETS = {"hstar": {"view_size": (1920, 1080), "crosshair": HSTAR_CROSSHAIR_ARM_PX, "strict": HSTAR, "max_turns": 10}}


def episode_settings(args: argparse.Namespace) -> EpisodeSettings:
    """The run's settings from the flags, or the preset's (which flags may not change)."""
    if args.zoom and args.preset == "hstar":
        raise ValueError("--zoom is an extension of the protocol and is refused under --preset hstar; drop one of them")
    settings = EpisodeSettings(view_size=args.view_size, max_turns=args.max_turns, seed=args.seed, strict=args.strict,
                               zoom=args.zoom)
    if args.preset is None:
        return settings
    default = EpisodeSettings()
    changed = [name for name in ("view_size", "max_turns", "strict") if getattr(settings, name) != getattr(default, name)]
    if changed:
        flags = ", ".join("--" + name.replace("_", "-") for name in changed)
        raise ValueError(f"--preset {args.preset} fixes {flags}; drop {flags}")
    return dataclasses.replace(settings, **PRESETS[args.preset])


def _view_size(text: str) -> tuple[int, int]:
    try:
        return parse_view_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _seconds(text: str) -> float | None:
    """A positive number of seconds, or 0 / "none" for no limit."""
    if text.strip().lower() in ("0", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a positive number, or 0 for none), got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds (a positive number, or 0 for none), got {text!r}")
    return value


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must be I/N (0-based I), e.g. 0/4, got {text!r}") from None
    if not (count >= 1 and 0 <= index < count):
        raise argparse.ArgumentTypeError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return index, count


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _agent_arg(text: str) -> tuple[str, Any]:
    """``key=value``; the value is read as JSON when it parses (numbers, true, lists), else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"--agent-arg must be key=value with a Python identifier key, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def exemplar_picture(task: Task):
    """The suite's exemplar picture of a task's target (for agents that ask for one).

    ``None`` for tasks without one (path search, real panoramas), as the agent
    protocol promises; the agent decides whether it can work without.
    """
    from panoseek.scenes import exemplar_image

    try:
        return exemplar_image(task)
    except ValueError:
        return None


def format_summary(summary: dict[str, Any]) -> str:
    """A few console lines: success with standard error overall, per kind and per level."""

    def cell(stats: dict[str, Any]) -> str:
        if not stats["episodes"]:
            return "-"
        return f"{100 * stats['success']:.1f}% ± {100 * stats['stderr']:.1f} (n={stats['episodes']})"

    privileged = f" (privileged: {', '.join(summary['privileged'])})" if summary.get("privileged") else ""
    zoom = " (zoom)" if summary.get("zoom") else ""
    lines = [f"{summary['agent']}{zoom}{privileged} on {summary['suite']} [{summary['fingerprint']}]: {cell(summary['overall'])}"]
    for kind, stats in summary["kinds"].items():
        levels = ", ".join(f"{name} {cell(level)}" for name, level in stats["levels"].items())
        lines.append(f"  {kind}: {cell(stats)}; {levels}")
    if not summary["complete"]:
        lines.append(f"  incomplete: {summary['overall']['episodes']} of {summary['expected_episodes']} episodes")
    return "\n".join(lines)


def command_line(args: argparse.Namespace) -> str:
    """The ``panoseek eval`` command that makes this run (for run.json and reports)."""
    parts = ["panoseek", "eval", "--agent", args.agent, "--suite", args.suite, "--out", str(args.out)]
    options = {"--limit": args.limit, "--workers": args.workers if args.workers != 1 else None,
               "--batch-size": args.batch_size if args.batch_size != 1 else None,
               "--seed": args.seed or None, "--model": args.model,
               "--max-turns": args.max_turns if args.max_turns != 10 else None}
    if args.shard is not None:
        options["--shard"] = f"{args.shard[0]}/{args.shard[1]}"
    if tuple(args.view_size) != (448, 252):
        options["--view-size"] = f"{args.view_size[0]}x{args.view_size[1]}"
    for flag, value in options.items():
        if value is not None:
            parts += [flag, str(value)]
    for key, value in args.agent_arg or []:
        parts += ["--agent-arg", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    if args.strict:
        parts.append("--strict")
    if args.zoom:
        parts.append("--zoom")
    if args.turn_timeout != DEFAULT_TURN_TIMEOUT:
        parts += ["--turn-timeout", "0" if args.turn_timeout is None else f"{args.turn_timeout:g}"]
    if args.preset:
        parts += ["--preset", args.preset]
    return shlex.join(parts)


def _eval(args: argparse.Namespace) -> int:
    agent_args = dict(args.agent_arg or [])
    if args.model is not None:
        agent_args["model"] = args.model
    try:
        settings = episode_settings(args)
    except ValueError as error:
        print(f"panoseek eval: error: {error}", file=sys.stderr)
        return 2
    try:
        resolve_factory(args.agent)  # unknown names fail here, before any work
        suite = load_suite(args.suite)
        summary = run_benchmark(
            suite,
            functools.partial(make_agent, args.agent, **agent_args),
            args.out,
            run_info={
                "suite": args.suite,
                "fingerprint": suite.fingerprint,
                "agent": args.agent,
                "agent_args": agent_args,
                "model": args.model,
                "command": command_line(args),
            },
            settings=settings,
            workers=args.workers,
            batch_size=args.batch_size,
            limit=args.limit,
            shard=args.shard,
            exemplar=exemplar_picture,
            turn_timeout=args.turn_timeout,
            restart=args.restart,
            isolate=not args.in_process,
            progress=not args.quiet,
        )
    except (AgentError, SuiteError, RecordsError, EpisodeFailure) as error:
        print(f"panoseek eval: error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    print(f"results in {args.out}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    try:
        summary = merge_folders(args.out, args.folders)
    except RecordsError as error:
        print(f"panoseek merge: error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    print(f"merged results in {args.out}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``eval`` and ``merge`` to the ``panoseek`` command."""
    parser = subparsers.add_parser(
        "eval",
        help="score an agent on a suite (resumable: rerun the same command to finish)",
        description="Play every episode of a suite with an agent; write DIR/episodes.jsonl, run.json and "
        "summary.json. Rerunning the same command resumes an interrupted run.",
    )
    parser.add_argument("--agent", required=True,
                        help=f"built-in agent ({', '.join(sorted(BUILTIN_AGENTS))}) or package.module:factory")
    parser.add_argument("--suite", required=True, help="suite spec: synth:test, hstar:FOLDER, jsonl:FILE, ...")
    parser.add_argument("--out", required=True, help="results folder (created; reused to resume)")
    parser.add_argument("--limit", type=_positive, help="play only N episodes, a fixed random sample of the suite")
    parser.add_argument("--workers", type=_positive, default=1, help="worker processes (default 1)")
    parser.add_argument("--batch-size", type=_positive, default=1,
                        help="episodes each worker plays in lock-step (agents with act_batch, e.g. vlm, "
                        "answer a batch in one call; results do not depend on it for greedy agents)")
    parser.add_argument("--shard", type=_shard, help="play only shard I of N (0-based), e.g. 0/4; join with merge")
    parser.add_argument("--seed", type=int, default=0, help="run seed; each episode's seed derives from it")
    parser.add_argument("--model", help="model path passed to the agent factory as model=PATH")
    parser.add_argument("--agent-arg", type=_agent_arg, action="append", metavar="KEY=VALUE",
                        help="keyword argument for the agent factory (repeatable; JSON values parsed)")
    parser.add_argument("--view-size", type=_view_size, default=(448, 252), metavar="WxH",
                        help="size of the views (default 448x252; H* uses 1920x1080)")
    parser.add_argument("--max-turns", type=_positive, default=10, help="turns per episode (default 10, as H*)")
    parser.add_argument("--strict", action="store_true", help="parse text actions strictly (exact tags and integers; --preset hstar gives H*'s own parser)")
    parser.add_argument("--zoom", action="store_true",
                        help="allow the zoom(yaw,pitch,fov) action (an extension of the protocol: a narrower view "
                        "inside the current one, no turn used, at most 2 per turn); marked (zoom) in results; "
                        "refused with --preset hstar")
    parser.add_argument("--turn-timeout", type=_seconds, default=DEFAULT_TURN_TIMEOUT, metavar="SECONDS",
                        help=f"longest an agent may take for one turn (default {DEFAULT_TURN_TIMEOUT:g}; 0: no limit); "
                        "a late turn is invalid and ends its episode, recorded as a timeout")
    parser.add_argument("--in-process", action="store_true",
                        help="run the agent in this process instead of a worker process (lets a debugger stop in it; "
                        "an agent that kills its process then takes the command with it)")
    parser.add_argument("--restart", action="store_true",
                        help="move the results already in --out aside (into OUT/previous-N/) and start the run again")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="fixed settings: hstar = the released H* evaluation (1920x1080 views, 10 px crosshair, "
                        "H*'s parser and prompts, 10 turns); recorded in run.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_eval)

    merge = subparsers.add_parser(
        "merge",
        help="join results folders of the same run (e.g. shards) into one",
        description="Join the episodes of results folders that ran the same suite, agent and settings "
        "(typically --shard parts) into OUT; episodes present twice are refused.",
    )
    merge.add_argument("out", help="new results folder to write")
    merge.add_argument("folders", nargs="+", help="results folders to join")
    merge.set_defaults(handler=_merge)
