"""The wheel holds every module of every design-card folder, subpackages included."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("envs", "scenes", "agents", "kernels", "training", "panoseek")


@pytest.mark.slow
def test_wheel_contains_every_module(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )
    (wheel,) = tmp_path.glob("panoseek-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "panoseek/" + (str(path.relative_to(ROOT / folder)) if folder == "panoseek" else f"{folder}/{path.relative_to(ROOT / folder)}")
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert "panoseek/envs/eval/runner.py" in expected
    assert sorted(expected - packed) == []
