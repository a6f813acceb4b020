"""Shared fixtures: small synthetic panoramas and tasks built in the tests themselves."""

from __future__ import annotations

import numpy as np
import pytest

from panoseek.envs.task import HOS, HPS, Task


def smooth_panorama(width: int = 512, seed: int = 0) -> np.ndarray:
    """A smooth, seamless, textured RGB panorama (sums of low-frequency sinusoids in lon/lat)."""
    height = width // 2
    rng = np.random.default_rng(seed)
    lon = (np.arange(width) + 0.5) / width * 2 * np.pi
    lat = (np.arange(height) + 0.5) / height * np.pi
    image = np.zeros((height, width, 3), dtype=np.float64)
    for channel in range(3):
        for _ in range(4):
            kx, ky = rng.integers(1, 6), rng.integers(1, 5)
            phase_x, phase_y = rng.uniform(0, 2 * np.pi, size=2)
            image[:, :, channel] += np.outer(np.sin(ky * lat + phase_y), np.sin(kx * lon + phase_x))
    image -= image.min()
    image /= image.max()
    return (image * 255).round().astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny size-S Qwen2.5-VL-architecture model (seed 0), built once per test session
    (per xdist worker). Tests must not write into it."""
    from panoseek.agents.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", size="S", seed=0)


@pytest.fixture(scope="session")
def textured_panorama() -> np.ndarray:
    return smooth_panorama(512)


def make_task(task_id: str = "t0", kind: str = HOS, panorama: np.ndarray | None = None, **overrides) -> Task:
    """A valid task on a smooth panorama; keyword overrides replace any field."""
    fields = dict(
        id=task_id,
        kind=kind,
        instruction="Find the red clock." if kind == HOS else "Go to gate 12.",
        panorama=smooth_panorama(256) if panorama is None else panorama,
        yaw_range=(80.0, 100.0),
        pitch_range=(-5.0, 5.0) if kind == HOS else None,
        start_yaws=(0.0, 90.0, 180.0, 270.0),
        levels=(2, 0, 2, 1) if kind == HOS else (0, 1, 2, 3),
    )
    fields.update(overrides)
    return Task(**fields)


@pytest.fixture
def hos_task() -> Task:
    return make_task("hos0", HOS)


@pytest.fixture
def hps_task() -> Task:
    return make_task("hps0", HPS)
