"""``panoseek report``: Markdown reports of results folders (tables, curves, trajectories).

This module wires the results (``panoseek.envs.eval.report``) to the suites
(``panoseek.scenes``) that trajectory pictures need.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from panoseek.envs.eval.report import ReportError, Results, TaskLookup, load_results, write_comparison, write_report


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a Markdown report (H*-style table, success-by-turn curve, trajectory pictures)",
        description="Write DIR/report.md for each results folder, or with --compare one page "
        "comparing several folders (one table row per agent).",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="results folder(s) written by 'panoseek eval'")
    parser.add_argument("--out", type=Path, help="report file (default DIR/report.md; with --compare, compare.md here)")
    parser.add_argument("--compare", action="store_true", help="one table comparing all the folders")
    parser.add_argument("--trajectories", type=int, default=6, metavar="N", help="trajectory pictures per report (default 6; 0 for none; not with --compare)")
    parser.set_defaults(handler=run_report)


def suite_lookup(results: Results) -> TaskLookup | None:
    """Task id -> Task for the results' suite, or None when the suite cannot be loaded."""
    from panoseek.scenes import load_suite

    try:
        suite = load_suite(results.suite)
    except Exception as error:  # a moved folder or an unknown spec must not stop the tables
        print(f"warning: {results.path}: cannot load suite {results.suite!r} for trajectory pictures ({error})", file=sys.stderr)
        return None
    if suite.fingerprint != results.fingerprint:
        print(
            f"warning: {results.path}: suite {results.suite!r} now has fingerprint {suite.fingerprint}, "
            f"the results were made on {results.fingerprint}; trajectory pictures may not match",
            file=sys.stderr,
        )
    tasks = {task.id: task for task in suite}
    return tasks.get


def run_report(args: argparse.Namespace) -> int:
    if args.trajectories < 0:
        print(f"error: --trajectories must be >= 0, got {args.trajectories}", file=sys.stderr)
        return 2
    if args.out is not None and len(args.dirs) > 1 and not args.compare:
        print("error: --out names one file; give one DIR, or use --compare", file=sys.stderr)
        return 2
    try:
        loaded = [load_results(directory) for directory in args.dirs]
        if args.compare:
            written = [write_comparison(loaded, args.out or Path("compare.md"))]
        else:
            written = [
                write_report(r, args.out, task_lookup=suite_lookup(r) if args.trajectories else None, trajectories=args.trajectories)
                for r in loaded
            ]
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the report's folder is a file, read-only, full ...
        print(f"error: cannot write the report: {error.strerror or error}: {error.filename or args.out}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
