"""Hostile and clumsy use of ``panoseek eval``, ``merge`` and ``report``: one clear error, nothing lost.

Each case is a regression test of a failure a hostile-user probe found; extend the
tables when a new one turns up.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_task, smooth_panorama
from panoseek.agents.registry import make_agent
from panoseek.cli import main
from panoseek.envs.eval.records import RecordsError, read_episodes
from panoseek.envs.eval.runner import AgentFactoryError, EpisodeFailure, run_benchmark
from panoseek.envs.rollout import EpisodeSettings

TESTS = Path(__file__).parent
TINY = EpisodeSettings(view_size=(16, 9))
PANORAMA = smooth_panorama(64)
RUN_INFO = {"suite": "test", "fingerprint": "f0", "agent": "random"}


def _tasks(n: int = 10):
    return [make_task(f"t{i}", panorama=PANORAMA) for i in range(n)]


def _run(out, agent="random", tasks=None, **kwargs):
    factory = agent if callable(agent) else functools.partial(make_agent, agent)
    return run_benchmark(tasks or _tasks(), factory, out, run_info=RUN_INFO, settings=TINY, progress=False, **kwargs)


def test_resume_keeps_a_complete_last_line_without_its_newline(tmp_path):
    _run(tmp_path)
    episodes = tmp_path / "episodes.jsonl"
    data = episodes.read_bytes()
    episodes.write_bytes(data[:-1])  # truncate -s -1: the last record loses only its newline
    summary = _run(tmp_path)
    assert summary["complete"] and summary["overall"]["episodes"] == 40
    assert len(read_episodes(episodes)) == 40 and episodes.read_bytes() == data


def test_a_lone_surrogate_in_a_reply_is_recorded_and_resumes(tmp_path):
    from hostile_agents import Surrogate

    summary = _run(tmp_path, Surrogate, tasks=_tasks(1))
    assert summary["complete"]
    (record, *_) = read_episodes(tmp_path / "episodes.jsonl")
    assert record["actions"][0]["raw"].endswith("\ud800") and _run(tmp_path, Surrogate, tasks=_tasks(1))["complete"]


def test_a_sleeping_agent_times_out_and_the_run_goes_on(tmp_path):
    from hostile_agents import Sleeper

    summary = _run(tmp_path, Sleeper, tasks=_tasks(1), turn_timeout=0.2)
    records = read_episodes(tmp_path / "episodes.jsonl")
    assert summary["complete"] and len(records) == 4
    for record in records:
        assert record["turns"] == 1 and not record["success"]  # the late turn ends the episode
        assert record["error"].startswith("act: AgentTimeout: no action within 0.2 s")


@pytest.mark.parametrize(
    "make_out, message",
    [
        (lambda tmp: tmp / "file.txt", "cannot write results there"),
        (lambda tmp: tmp / "file.txt" / "under", "cannot write results there"),
        (lambda tmp: "", "empty"),
    ],
)
def test_unusable_out_folders_are_named(tmp_path, make_out, message):
    (tmp_path / "file.txt").write_text("not a folder")
    with pytest.raises(RecordsError, match=message):
        _run(make_out(tmp_path))
    assert (tmp_path / "file.txt").read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_folder_is_named(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    with pytest.raises(RecordsError, match="cannot write results there"):
        _run(folder)


def test_merge_and_report_into_a_file_are_one_clear_error(tmp_path, capsys):
    _run(tmp_path / "run")
    (tmp_path / "file.txt").write_text("keep me")
    assert main(["merge", str(tmp_path / "file.txt" / "merged"), str(tmp_path / "run")]) == 2
    assert "cannot write the merged results there" in capsys.readouterr().err
    assert main(["merge", "", str(tmp_path / "run")]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "file.txt" / "r.md"), "--trajectories", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: cannot write the report") and "Traceback" not in error
    assert (tmp_path / "file.txt").read_text() == "keep me"


@pytest.mark.parametrize("workers", [1, 2])
def test_an_agent_factory_that_raises_is_named_once(tmp_path, workers):
    from hostile_agents import broken_factory

    with pytest.raises(AgentFactoryError, match="cannot build the agent: RuntimeError: no weights here"):
        _run(tmp_path, broken_factory, workers=workers)


@pytest.mark.slow
def test_keyboard_interrupt_inside_act_in_a_worker_is_one_line(tmp_path):
    from hostile_agents import Interrupter

    with pytest.raises(EpisodeFailure) as caught:
        _run(tmp_path, Interrupter, workers=2)
    assert "KeyboardInterrupt in a worker" in str(caught.value) and "Traceback" not in str(caught.value)


def test_a_changed_run_with_no_episode_recorded_is_replaced(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({**RUN_INFO, "agent": "typo", "seed": 0}))  # a failed first run
    assert _run(tmp_path)["complete"]


def test_a_changed_run_says_how_to_restart_and_restart_keeps_the_old_results(tmp_path):
    _run(tmp_path)
    sweep_info = {**RUN_INFO, "agent": "sweep"}
    with pytest.raises(RecordsError, match="--restart"):
        run_benchmark(_tasks(), functools.partial(make_agent, "sweep"), tmp_path, run_info=sweep_info, settings=TINY,
                      progress=False)
    summary = run_benchmark(_tasks(), functools.partial(make_agent, "sweep"), tmp_path, run_info={**RUN_INFO, "agent": "sweep"},
                            settings=TINY, progress=False, restart=True)
    assert summary["complete"] and summary["agent"] == "sweep"
    assert len(read_episodes(tmp_path / "previous-1" / "episodes.jsonl")) == 40
    assert json.loads((tmp_path / "previous-1" / "run.json").read_text())["agent"] == "random"


def test_merge_refuses_a_strict_shard_with_a_lenient_one(tmp_path):
    tasks = _tasks(2)
    for index, strict in ((0, True), (1, False)):
        run_benchmark(tasks, functools.partial(make_agent, "random"), tmp_path / f"part{index}", run_info=RUN_INFO,
                      settings=EpisodeSettings(view_size=(16, 9), strict=strict), shard=(index, 2), progress=False)
    with pytest.raises(RecordsError, match="strict"):
        from panoseek.envs.eval.records import merge_folders

        merge_folders(tmp_path / "merged", [tmp_path / "part0", tmp_path / "part1"])


def test_a_huge_view_size_is_refused_before_any_memory_is_taken(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--agent", "random", "--suite", "synth:val", "--out", str(tmp_path), "--view-size", "100000x60000"])
    assert "at most 8192 pixels" in capsys.readouterr().err


@pytest.mark.slow
def test_workers_die_with_a_killed_parent(tmp_path):
    psutil = pytest.importorskip("psutil")
    suite = tmp_path / "suite.jsonl"
    from panoseek.envs.panorama import save_image

    for i in range(8):  # one panorama each: two bundles, so both workers get one
        save_image(tmp_path / f"pano{i}.png", PANORAMA)
    suite.write_text("".join(json.dumps({"image": f"pano{i}.png", "instruction": f"Find {i}.", "kind": "HOS", "id": f"t{i}",
                                         "yaw_range": [80, 100], "pitch_range": [-5, 5], "levels": [0, 0, 0, 0]}) + "\n"
                             for i in range(8)))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "panoseek", "eval", "--agent", "hostile_agents:Sleeper", "--suite", f"jsonl:{suite}",
         "--out", str(tmp_path / "out"), "--workers", "2", "--view-size", "16x9", "--quiet"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    children: list = []
    while time.monotonic() < deadline and len(children) < 2:
        children = [c for c in psutil.Process(process.pid).children(recursive=True) if "resource_tracker" not in " ".join(c.cmdline())]
        time.sleep(0.2)
    assert len(children) >= 2, "the workers did not start"
    everyone = psutil.Process(process.pid).children(recursive=True)
    time.sleep(1.0)  # let the workers reach the sleeping agent
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    gone, alive = psutil.wait_procs(everyone, timeout=30)
    assert alive == [], f"orphans left behind: {[p.cmdline() for p in alive]}"


@pytest.mark.slow
def test_an_agent_that_kills_its_process_stops_the_run_with_a_message(tmp_path):
    save = tmp_path / "pano.png"
    from panoseek.envs.panorama import save_image

    save_image(save, PANORAMA)
    suite = tmp_path / "suite.jsonl"
    suite.write_text(json.dumps({"image": "pano.png", "instruction": "Find it.", "kind": "HOS", "id": "t0",
                                 "yaw_range": [80, 100], "pitch_range": [-5, 5], "levels": [0, 0, 0, 0]}) + "\n")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "panoseek", "eval", "--agent", "hostile_agents:Exiter", "--suite", f"jsonl:{suite}",
         "--out", str(tmp_path / "out"), "--view-size", "16x9", "--quiet"],
        env=environment, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2 and "all workers exited (codes [3])" in done.stderr, done.stderr
