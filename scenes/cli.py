"""``panoseek scenes ...``: inspect benchmark suites from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from panoseek.envs.panorama import PanoramaError
from panoseek.envs.task import KINDS, TaskError
from panoseek.scenes.suite import SuiteError, load_suite


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``scenes`` command group to the ``panoseek`` parser."""
    scenes = subparsers.add_parser("scenes", help="inspect benchmark suites and their scenes")
    scenes.set_defaults(handler=lambda args: _print_help(scenes))
    commands = scenes.add_subparsers(dest="scenes_command", metavar="SUBCOMMAND")

    info = commands.add_parser("info", help="counts per kind and level, episodes and fingerprint of a suite")
    info.add_argument("spec", metavar="SPEC", help="suite spec: synth:SPLIT, hstar:FOLDER or jsonl:FILE")
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    info.set_defaults(handler=run_info)

    gallery = commands.add_parser("gallery", help="contact sheet of a suite: panoramas, targets, starts and views")
    gallery.add_argument("spec", metavar="SPEC", help="suite spec: synth:SPLIT, hstar:FOLDER or jsonl:FILE")
    gallery.add_argument("--out", required=True, help="PNG or JPEG file to write")
    gallery.add_argument("--scenes", type=int, default=4, help="panoramas shown (default 4)")
    gallery.add_argument("--width", type=int, default=1024, help="width of each panorama on the sheet (default 1024)")
    gallery.set_defaults(handler=run_gallery)

    cache = commands.add_parser("cache", help="pre-generate a synth suite's panoramas into the on-disk cache")
    cache.add_argument("spec", metavar="SPEC", help="synth:SPLIT")
    cache.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    cache.add_argument("--width", type=int, default=2048, help="panorama width (default 2048)")
    cache.set_defaults(handler=run_cache)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print a suite's description (a table, or JSON with ``--json``)."""
    try:
        description = load_suite(args.spec).describe()
    except (SuiteError, TaskError, PanoramaError) as error:
        print(f"panoseek scenes info: {error}", file=sys.stderr)
        return 2
    print(json.dumps(description, indent=2) if args.json else format_description(description))
    return 0


def format_description(description: dict[str, Any]) -> str:
    """A readable table: one row per kind (tasks, episodes, episodes per level) and a total."""
    level_names = list(dict.fromkeys(name for kind in KINDS for name in description["kinds"][kind]["levels"]))
    header = ["kind", "tasks", "episodes", *level_names]
    rows = []
    for kind in KINDS:
        counts = description["kinds"][kind]
        levels = [str(counts["levels"][name]) if name in counts["levels"] else "-" for name in level_names]
        rows.append([kind, str(counts["tasks"]), str(counts["episodes"]), *levels])
    rows.append(["all", str(description["tasks"]), str(description["episodes"]), *([""] * len(level_names))])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"suite        {description['name']}", f"fingerprint  {description['fingerprint']}", ""]
    for row in [header, *rows]:
        cells = [cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run_gallery(args: argparse.Namespace) -> int:
    """Write the contact sheet of a suite."""
    from panoseek.envs.panorama import save_image
    from panoseek.scenes.gallery import contact_sheet

    if args.scenes < 1 or args.width < 256 or args.width % 4:
        print("panoseek scenes gallery: --scenes must be >= 1 and --width a multiple of 4, >= 256", file=sys.stderr)
        return 2
    try:
        sheet = contact_sheet(load_suite(args.spec), scenes=args.scenes, pano_width=args.width)
        save_image(args.out, sheet)
    except (SuiteError, TaskError, PanoramaError, OSError, ValueError) as error:
        print(f"panoseek scenes gallery: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


def run_cache(args: argparse.Namespace) -> int:
    """Generate every panorama of a synth suite into the on-disk cache."""
    from panoseek.scenes.cache import cache_root, fill

    if not args.spec.startswith("synth:"):
        print(f"panoseek scenes cache: only synth suites are generated, got {args.spec!r}", file=sys.stderr)
        return 2
    if args.workers < 1 or args.width < 64 or args.width % 4:
        print("panoseek scenes cache: --workers must be >= 1 and --width a multiple of 4, >= 64", file=sys.stderr)
        return 2
    try:
        suite = load_suite(args.spec)
    except SuiteError as error:
        print(f"panoseek scenes cache: {error}", file=sys.stderr)
        return 2
    entries = [(task.panorama.seed, task.panorama.scene_type, args.width) for task in suite]
    written = fill(entries, workers=args.workers)
    print(f"{len(set(entries))} panoramas of {args.spec} in {cache_root()} ({written} newly written)")
    return 0
