"""Episodes per second of ``panoseek eval --agent vlm``: batched (refilled slots) vs one at a time.

Runs the real evaluation command twice on the same fixed sample of a suite, in this
process (``--in-process``), once with ``--batch-size 1`` and once with ``--batch-size B``,
checks that both recorded the same replies (greedy decoding does not depend on the
batch), and prints both rates and their ratio (goal: >= 3x at B = 16). Unlike
``vlm_batched.py`` (one lock-step batch of an untrained model, whose episodes all last
every turn), this measures what users run: a trained model whose episodes end at
different turns, on the benchmark's own scenes, runner and records included.

    python benchmarks/vlm_eval_speed.py --model MODEL_DIR [--suite synth:test] [--limit 200]
        [--batch-size 16] [--agent-arg chat=compact ...]

The default agent arguments are those of the tiny searcher (``panoseek train recipe
tiny``): compact chat, no_think, history 2, 24 new tokens.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from panoseek.cli import main as panoseek

TINY_SEARCHER_ARGS = ("chat=compact", "prompt_format=no_think", "history=2", "max_new_tokens=24")


def replies(folder: Path) -> dict[str, list]:
    with open(folder / "episodes.jsonl") as lines:
        records = [json.loads(line) for line in lines]
    return {record["episode_id"]: [action["raw"] for action in record["actions"]] for record in records}


def timed_eval(arguments: list[str], out: Path, batch_size: int) -> float:
    start = time.perf_counter()
    code = panoseek([*arguments, "--out", str(out), "--batch-size", str(batch_size)])
    if code != 0:
        raise SystemExit(f"panoseek eval failed (exit code {code}) with --batch-size {batch_size}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder (e.g. the tiny searcher's sft2/final)")
    parser.add_argument("--suite", default="synth:test")
    parser.add_argument("--limit", type=int, default=200, help="episodes: a fixed sample of the suite")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--agent-arg", action="append", default=None, metavar="KEY=VALUE",
                        help=f"agent arguments (default: {' '.join(TINY_SEARCHER_ARGS)})")
    args = parser.parse_args()
    agent_args = [part for item in args.agent_arg or TINY_SEARCHER_ARGS for part in ("--agent-arg", item)]

    def eval_arguments(limit: int) -> list[str]:
        return ["eval", "--agent", "vlm", "--model", args.model, "--suite", args.suite, "--limit", str(limit),
                "--in-process", "--quiet", *agent_args]

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        # Warm-up: loads the model, compiles kernels and builds the suite once for both runs.
        timed_eval(eval_arguments(1), root / "warm-up", 1)
        single_s = timed_eval(eval_arguments(args.limit), root / "single", 1)
        batched_s = timed_eval(eval_arguments(args.limit), root / "batched", args.batch_size)
        same = replies(root / "single") == replies(root / "batched")
    print(f"{args.suite}, {args.limit} episodes, model {args.model}")
    print(f"one at a time:      {args.limit / single_s:6.2f} episodes/s ({single_s:.1f} s)")
    print(f"batch size {args.batch_size:<3}:     {args.limit / batched_s:6.2f} episodes/s ({batched_s:.1f} s)")
    print(f"speed-up: {single_s / batched_s:.2f}x (goal >= 3x at B = 16); same replies: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit("batched and one-at-a-time replies differ")


if __name__ == "__main__":
    main()
