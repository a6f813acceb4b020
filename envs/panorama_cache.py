"""Prepared panoramas kept for reuse, keyed by the panorama rather than by the task.

Several tasks often share one panorama (a synth scene's tasks, an H* folder's items);
keying by :func:`~panoseek.envs.task.panorama_key` lets them share one decoded, prepared
copy. The single environment and the vector environment both keep theirs here.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import MutableMapping, Sequence

from panoseek.envs.render import PreparedPanorama
from panoseek.envs.task import Task, panorama_key


class PanoramaCache:
    """The ``size`` most recently used panoramas (one cache may serve several environments)."""

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"a panorama cache holds a positive number of panoramas, got {size!r}")
        self.size = size
        self._entries: OrderedDict[str, PreparedPanorama] = OrderedDict()

    def get(self, tasks: Sequence[Task], task_index: int, timings: MutableMapping[str, float]) -> PreparedPanorama:
        """The prepared panorama of ``tasks[task_index]``, loaded on first use; the loading
        time is added to the caller's ``timings["load_s"]``."""
        key = panorama_key(tasks[task_index], task_index)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        start = time.perf_counter()
        self._entries[key] = PreparedPanorama(tasks[task_index].load_panorama())
        timings["load_s"] += time.perf_counter() - start
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
