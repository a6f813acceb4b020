"""End to end from the command line: build the tiny model, evaluate the ``vlm`` agent with it."""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import smooth_panorama
from panoseek.cli import main
from panoseek.envs.panorama import save_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "model"
    assert main(["model", "init-tiny", "--out", str(out), "--size", "S"]) == 0
    return out


def evaluate(tiny_dir, suite: str, out, limit: int = 8) -> list[dict]:
    code = main([
        "eval", "--agent", "vlm", "--model", str(tiny_dir), "--suite", suite, "--limit", str(limit),
        "--out", str(out), "--quiet", "--view-size", "112x63", "--max-turns", "3",
        "--agent-arg", "max_new_tokens=16", "--agent-arg", "history=2",
    ])
    assert code == 0
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == limit
    for episode in episodes:
        assert episode["error"] is None  # the agent never crashed
        assert 1 <= episode["turns"] <= 3 and len(episode["actions"]) == episode["turns"]
        assert all(isinstance(action["raw"], str) for action in episode["actions"])
    return episodes


@pytest.mark.slow
def test_eval_on_own_panoramas(tiny_dir, tmp_path):
    save_image(tmp_path / "pano.png", smooth_panorama(256))
    lines = [
        {"image": "pano.png", "instruction": "Find the red clock.", "kind": "HOS", "yaw_range": [80, 100], "pitch_range": [-5, 5], "levels": 0},
        {"image": "pano.png", "instruction": "Go to gate 12.", "kind": "HPS", "yaw_range": [200, 230], "levels": 0},
    ]
    (tmp_path / "tasks.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    episodes = evaluate(tiny_dir, f"jsonl:{tmp_path / 'tasks.jsonl'}", tmp_path / "results")
    assert {episode["kind"] for episode in episodes} == {"HOS", "HPS"}


@pytest.mark.skipif(importlib.util.find_spec("panoseek.scenes.synth") is None, reason="the synth suite is not built yet")
def test_eval_on_the_bundled_test_suite(tiny_dir, tmp_path):
    episodes = evaluate(tiny_dir, "synth:test", tmp_path / "results")
    assert sum(episode["success"] for episode in episodes) <= 2  # a random model scores near zero
    assert (tmp_path / "results" / "summary.json").is_file()
