"""glibc malloc settings for CPU training, set before the process allocates anything.

Each training step frees and re-allocates the same large activation buffers. With
glibc's defaults they are mmap-ed fresh and returned to the system every step (and the
heap top trimmed), so every step pays page faults on zeroed memory: on the project's
2-core CPU a step took 11 s instead of 0.38 s. Keeping large blocks on the heap and not trimming it
fixes that. glibc reads these variables once, at start-up, so ``panoseek train sft``
re-runs itself with them set (:func:`reexec_with_malloc_settings`); from Python, set
them in the environment of the process before it starts (docs/training.md).
"""

from __future__ import annotations

import os
import sys

MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),  # glibc's ceiling: blocks below 32 MiB come from the heap
    "MALLOC_TRIM_THRESHOLD_": str(4 * 1024 * 1024 * 1024),  # never give the heap top back between steps
    "MALLOC_TOP_PAD_": str(256 * 1024 * 1024),  # grow the heap in large steps
}


def malloc_settings_missing() -> bool:
    """Whether this process started without :data:`MALLOC_ENV`."""
    return any(os.environ.get(name) != value for name, value in MALLOC_ENV.items())


def reexec_with_malloc_settings(argv: list[str]) -> None:
    """Replace this process by ``python -m panoseek ARGV`` with :data:`MALLOC_ENV` set (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "panoseek", *argv], {**os.environ, **MALLOC_ENV})
