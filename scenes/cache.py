"""Caches of generated panoramas: a small one in memory, an optional one on disk.

Generating a 2048x1024 scene takes ~0.15 s; an evaluation reads each panorama once per
task and start, so a process keeps the last few in memory. The on-disk cache (PNG,
lossless: pixels are identical) lives in ``$PANOSEEK_CACHE`` or ``~/.cache/panoseek``
and is filled ahead of time by ``panoseek scenes cache SPEC``; a panorama found there
is read instead of drawn. Entries are keyed by generator version and source digest and
the versions of the libraries that change pixels, so a stale file is never used.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

MEMORY_ENTRIES = 6  # panoramas kept per process (~6 MB each at 2048x1024)
_memory: OrderedDict[tuple, np.ndarray] = OrderedDict()


def cache_root() -> Path:
    """Folder of the on-disk cache: ``$PANOSEEK_CACHE`` or ``~/.cache/panoseek``."""
    return Path(os.environ.get("PANOSEEK_CACHE") or Path.home() / ".cache" / "panoseek")


def cache_path(seed: int, type_name: str, width: int) -> Path:
    """Where a scene's panorama is stored on disk."""
    from panoseek.scenes.scene import GENERATOR_VERSION, generator_digest

    version = f"v{GENERATOR_VERSION}-{generator_digest()}-numpy{np.__version__}-opencv{cv2.__version__}"
    return cache_root() / "synth" / version / f"{type_name}-{seed}-{width}.png"


def cached_render(seed: int, type_name: str, width: int, render: Callable[[], np.ndarray]) -> np.ndarray:
    """The panorama from memory, else from disk, else ``render()``; a fresh copy each call."""
    key = (seed, type_name, width)
    image = _memory.get(key)
    if image is None:
        image = _read(cache_path(seed, type_name, width))
        if image is None:
            image = render()
        image.setflags(write=False)
        _memory[key] = image
        while len(_memory) > MEMORY_ENTRIES:
            _memory.popitem(last=False)
    else:
        _memory.move_to_end(key)
    return image.copy()


def _read(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_entry(entry: tuple[int, str, int]) -> bool:
    """Generate one panorama into the disk cache unless present; True when written."""
    from panoseek.scenes.synth import scene

    seed, type_name, width = entry
    path = cache_path(seed, type_name, width)
    if path.is_file():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    image = scene(seed, type_name).render(width)
    partial = path.with_suffix(f".{os.getpid()}.tmp.png")
    if not cv2.imwrite(str(partial), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"{partial}: could not write the cached panorama")
    partial.replace(path)  # atomic: a reader never sees half a file
    return True


def fill(entries: Iterable[tuple[int, str, int]], workers: int = 1, progress: bool = True) -> int:
    """Write every missing entry, in ``workers`` processes, with a progress bar; returns how many were written."""
    from tqdm import tqdm

    entries = list(dict.fromkeys(entries))
    with tqdm(total=len(entries), unit="scene", disable=not progress, desc="caching panoramas") as bar:
        if workers <= 1:
            written = 0
            for entry in entries:
                written += write_entry(entry)
                bar.update()
            return written
        with ProcessPoolExecutor(max_workers=workers) as pool:
            written = 0
            for done in pool.map(write_entry, entries, chunksize=2):
                written += done
                bar.update()
            return written
