"""panoseek.envs.eval: the evaluation harness on the rollout loop.

The runner (plan, play, record, resume), the results folder format, the one statistics
module, reports and figures. Names load lazily.
"""

from __future__ import annotations

from panoseek.envs.lazy import lazy_getattr

_EXPORTS = {
    # name: module inside panoseek.envs.eval
    "run_benchmark": "runner",
    "plan_episodes": "runner",
    "EpisodeFailure": "runner",
    "read_episodes": "records",
    "summarize": "records",
    "merge_folders": "records",
    "RecordsError": "records",
    "group_stats": "stats",
    "ReportError": "report",
    "Results": "report",
    "load_results": "report",
    "write_report": "report",
    "write_comparison": "report",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
