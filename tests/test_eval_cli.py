"""``panoseek eval`` and ``panoseek merge`` end to end: suites on disk, kills, shards, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import smooth_panorama
from panoseek.cli import main
from panoseek.envs.panorama import save_image
from panoseek.envs.eval.records import read_episodes

RANGES = [(80, 100), (350, 10), (200, 200), (300, 30), (10, 170), (0, 360)]


def write_jsonl_suite(folder: Path, n_tasks: int = 6) -> str:
    """A jsonl: suite of HOS and HPS tasks on two panoramas; returns its spec."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(2):
        save_image(folder / f"pano{seed}.png", smooth_panorama(128, seed=seed))
    lines = []
    for i in range(n_tasks):
        item = {"image": f"pano{i % 2}.png", "instruction": f"Find object {i}.", "kind": "HOS" if i % 3 else "HPS",
                "yaw_range": list(RANGES[i % len(RANGES)]), "levels": [0, 1, 2, 2 if i % 3 else 3], "id": f"task{i}"}
        if item["kind"] == "HOS":
            item["pitch_range"] = [-80, -60] if i % 2 else [5, 15]
        lines.append(json.dumps(item))
    (folder / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    return f"jsonl:{folder / 'tasks.jsonl'}"


def write_hstar_folder(root: Path) -> str:
    """Two H* Bench panorama folders (one HOS item with starts and levels, one HPS without)."""
    hos, hps = root / "hos" / "lobby", root / "hps" / "street"
    for seed, folder in enumerate((hos, hps)):
        folder.mkdir(parents=True)
        save_image(folder / "panorama.png", smooth_panorama(128, seed=seed))
    (hos / "annotation.json").write_text(json.dumps([
        {"task": "Find the clock.", "yaw": [340, 20], "pitch": [10, 30], "initial yaw": [0, 120, 240], "level": [0, 1, 2]},
        {"task": "Find the bin.", "yaw": [90, 95], "pitch": [-40, -35], "initial yaw": [0, 90, 180, 270],
         "level": [2, 2, 1, 2]},
    ]))
    (hps / "annotation.json").write_text(json.dumps([{"task": "Walk to the gate.", "yaw": [170, 175], "level": 3}]))
    return f"hstar:{root}"


def _eval(out: Path, suite: str, agent: str = "oracle", *extra: str) -> int:
    return main(["eval", "--agent", agent, "--suite", suite, "--out", str(out), "--view-size", "32x18", "--quiet", *extra])


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _results(folder: Path) -> dict[str, dict]:
    return {r["episode_id"]: {k: v for k, v in r.items() if k != "timings"} for r in read_episodes(folder / "episodes.jsonl")}


def test_oracle_scores_100_percent_on_jsonl_and_hstar_suites(tmp_path, capsys):
    for name, spec in (("jsonl", write_jsonl_suite(tmp_path / "j")), ("hstar", write_hstar_folder(tmp_path / "h"))):
        assert _eval(tmp_path / name, spec) == 0
        summary = _summary(tmp_path / name)
        assert summary["overall"]["success"] == 1.0 and summary["complete"]
        assert summary["fingerprint"] and summary["agent"] == "oracle" and summary["versions"]["numpy"]
        run = json.loads((tmp_path / name / "run.json").read_text())
        assert run["suite"] == spec and run["view_size"] == [32, 18]
    assert _summary(tmp_path / "hstar")["overall"]["episodes"] == 3 + 4 + 4
    assert summary["privileged"] == ["target"]
    assert "oracle (privileged: target) on hstar:" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("split", ["train", "val", "test", "test-unseen"])
def test_oracle_scores_100_percent_on_every_synth_split(tmp_path, split):
    assert _eval(tmp_path, f"synth:{split}", "oracle", "--limit", "12") == 0
    summary = _summary(tmp_path)
    assert summary["overall"]["episodes"] == 12 and summary["overall"]["success"] == 1.0


SLOW_AGENT = '''
import time
from panoseek.agents.baselines import RandomAgent

class SlowRandom(RandomAgent):
    """The random agent, a little slower, so that a kill lands in the middle of a run."""

    def act(self, observation):
        time.sleep(0.01)
        return super().act(observation)
'''


@pytest.mark.slow
def test_sigkill_midway_then_rerun_records_every_episode_once(tmp_path, monkeypatch):
    spec = write_jsonl_suite(tmp_path / "suite", n_tasks=30)
    (tmp_path / "slow_agent.py").write_text(SLOW_AGENT)
    monkeypatch.syspath_prepend(str(tmp_path))
    command = [sys.executable, "-m", "panoseek", "eval", "--agent", "slow_agent:SlowRandom", "--suite", spec,
               "--out", str(tmp_path / "killed"), "--view-size", "32x18", "--workers", "2", "--quiet"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    episodes = tmp_path / "killed" / "episodes.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if episodes.exists() and episodes.read_bytes().count(b"\n") >= 20:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    recorded = episodes.read_bytes().count(b"\n")
    assert 20 <= recorded < 120, f"the kill did not land midway ({recorded} episodes recorded)"

    rerun = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert _eval(tmp_path / "whole", spec, "slow_agent:SlowRandom") == 0
    resumed = _results(tmp_path / "killed")
    assert len(resumed) == 120  # read_episodes refuses duplicates, so each is there once
    assert resumed == _results(tmp_path / "whole")
    assert _summary(tmp_path / "killed")["overall"] == _summary(tmp_path / "whole")["overall"]


def test_sharded_runs_merged_equal_a_single_run(tmp_path, capsys):
    spec = write_jsonl_suite(tmp_path / "suite", n_tasks=9)
    assert _eval(tmp_path / "single", spec, "sweep") == 0
    shards = [tmp_path / f"part{i}" for i in range(3)]
    for i, folder in enumerate(shards):
        assert _eval(folder, spec, "sweep", "--shard", f"{i}/3") == 0
        assert not _summary(folder)["overall"]["episodes"] == 36
    assert main(["merge", str(tmp_path / "merged"), *map(str, shards)]) == 0
    assert _results(tmp_path / "merged") == _results(tmp_path / "single")
    merged, single = _summary(tmp_path / "merged"), _summary(tmp_path / "single")
    assert merged["overall"] == single["overall"] and merged["kinds"] == single["kinds"] and merged["complete"]
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "again"), str(shards[0]), str(shards[0])]) == 2
    assert "is in both" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "again"), str(shards[0]), str(tmp_path / "single")]) == 2
    assert "is in both" in capsys.readouterr().err


def test_rerun_finishes_and_a_different_run_is_refused(tmp_path, capsys):
    spec = write_jsonl_suite(tmp_path / "suite")
    assert _eval(tmp_path / "out", spec, "random", "--limit", "10") == 0
    first = _results(tmp_path / "out")
    assert _eval(tmp_path / "out", spec, "random", "--limit", "10") == 0  # nothing left to do
    assert _results(tmp_path / "out") == first
    capsys.readouterr()
    assert _eval(tmp_path / "out", spec, "sweep", "--limit", "10") == 2
    assert "agent: 'random' != 'sweep'" in capsys.readouterr().err
    other = write_jsonl_suite(tmp_path / "other", n_tasks=4)
    assert _eval(tmp_path / "out", other, "random", "--limit", "10") == 2
    assert "suite:" in capsys.readouterr().err


def test_agent_arguments_and_import_paths_reach_the_factory(tmp_path, monkeypatch):
    spec = write_jsonl_suite(tmp_path / "suite", n_tasks=3)
    assert _eval(tmp_path / "a", spec, "random", "--agent-arg", "seed=5", "--agent-arg", "max_rotations=0") == 0
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["agent_args"] == {"seed": 5, "max_rotations": 0}
    assert run["command"] == (f"panoseek eval --agent random --suite {spec} --out {tmp_path / 'a'} "
                              "--view-size 32x18 --agent-arg seed=5 --agent-arg max_rotations=0")
    assert all(r["turns"] == 1 for r in read_episodes(tmp_path / "a" / "episodes.jsonl"))
    (tmp_path / "my_agents.py").write_text(SLOW_AGENT)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _eval(tmp_path / "b", spec, "no_such_agents:Agent") == 2
    assert _eval(tmp_path / "b", spec, "my_agents:SlowRandom") == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--view-size", "448"], "--view-size must be WIDTHxHEIGHT"),
        (["--shard", "3/3"], "--shard I/N needs 0 <= I < N"),
        (["--agent-arg", "not an identifier=1"], "--agent-arg must be key=value"),
        (["--workers", "0"], "expected a positive integer"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--agent", "random", "--suite", "jsonl:x", "--out", str(tmp_path), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_agent_and_suite_are_one_line_errors(tmp_path, capsys):
    assert _eval(tmp_path / "a", "jsonl:missing.jsonl", "random") == 2
    assert "missing.jsonl" in capsys.readouterr().err
    assert _eval(tmp_path / "b", "jsonl:missing.jsonl", "randon") == 2
    err = capsys.readouterr().err
    assert "unknown agent 'randon'" in err and "sweep" in err
