"""The ``panoseek`` command line.

Each top-level folder may contribute commands in its own ``cli.py`` with a function
``add_commands(subparsers)``; this module only collects them, so the dependency
direction of the folders is kept (DESIGN.md).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from panoseek import __version__

COMMAND_MODULES = (
    "panoseek.envs.cli",
    "panoseek.scenes.cli",
    "panoseek.agents.cli",
    "panoseek.training.cli",
    "panoseek.kernels.cli",
    "panoseek.evaluate_cli",
    "panoseek.report_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="panoseek",
        description="Embodied 360-degree visual search: scenes, agents, evaluation and training.",
    )
    parser.add_argument("--version", action="version", version=f"panoseek {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).add_commands(subparsers)
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
