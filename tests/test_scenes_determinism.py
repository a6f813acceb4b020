"""Same spec, same tasks and pixels in another process."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from panoseek.scenes import load_suite, task_record
from panoseek.scenes.scene import build_scene
from panoseek.scenes.synth import ScenePanorama

PROBE = """
import hashlib, json, sys
from panoseek.scenes import load_suite, task_record
from panoseek.scenes.synth import ScenePanorama
suite = load_suite("synth:val")
records = json.dumps([task_record(t) for t in suite], sort_keys=True)
pixels = [hashlib.sha256(ScenePanorama(suite[i].panorama.seed, suite[i].panorama.scene_type, 512)().tobytes()).hexdigest()
          for i in (0, 57, 399)]
print(json.dumps({"fingerprint": suite.fingerprint, "records": hashlib.sha256(records.encode()).hexdigest(), "pixels": pixels}))
"""


def _here() -> dict:
    suite = load_suite("synth:val")
    records = json.dumps([task_record(t) for t in suite], sort_keys=True)
    pixels = []
    for i in (0, 57, 399):
        source = suite[i].panorama
        image = ScenePanorama(source.seed, source.scene_type, 512)()
        pixels.append(hashlib.sha256(image.tobytes()).hexdigest())
    return {"fingerprint": suite.fingerprint, "records": hashlib.sha256(records.encode()).hexdigest(), "pixels": pixels}


@pytest.mark.slow
def test_two_processes_agree_on_fingerprint_tasks_and_pixels(tmp_path):
    env = {"PANOSEEK_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}  # empty disk cache: pixels are drawn
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == _here()


def test_opencv_thread_count_does_not_change_pixels():
    scene = build_scene(9, "city_street")
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        single = scene.render(512)
        cv2.setNumThreads(4)
        several = scene.render(512)
    finally:
        cv2.setNumThreads(threads)
    assert np.array_equal(single, several)
