"""The ``panoseek`` command line.

Each module listed in ``COMMAND_MODULES`` contributes commands with a function
``add_commands(subparsers)``; this module only collects them, so the dependency
direction of the folders is kept (DESIGN.md). A listed module that is missing or lacks
``add_commands`` is an error: a command must never vanish silently.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from panoseek import __version__

COMMAND_MODULES = (
    "panoseek.scenes.cli",
    "panoseek.agents.cli",
    "panoseek.evaluate_cli",
    "panoseek.report_cli",
    "panoseek.training.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="panoseek",
        description="Embodied 360-degree visual search: scenes, agents, evaluation and training.",
    )
    parser.add_argument("--version", action="version", version=f"panoseek {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        add_commands = getattr(importlib.import_module(name), "add_commands", None)
        if add_commands is None:
            raise ImportError(f"command module {name!r} has no add_commands(subparsers)")
        add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
