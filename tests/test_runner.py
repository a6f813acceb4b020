"""The evaluation runner and its records: planning, judging, resuming, merging, bad agents."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest

from conftest import make_task, smooth_panorama
from panoseek.agents.registry import make_agent
from panoseek.envs.eval.runner import plan_episodes, run_benchmark
from panoseek.envs.rollout import EpisodeSettings
from panoseek.envs.eval.records import RecordsError, merge_folders, read_episodes, summarize
from panoseek.envs.task import HOS, HPS

TINY = EpisodeSettings(view_size=(16, 9))
PANORAMA = smooth_panorama(64)


def _run(tasks, agent, out, *, settings=TINY, **kwargs):
    factory = agent if callable(agent) else functools.partial(make_agent, agent)
    name = agent if isinstance(agent, str) else "test-agent"
    return run_benchmark(tasks, factory, out, run_info={"suite": "test", "fingerprint": "f0", "agent": name},
                         settings=settings, progress=False, **kwargs)


def _results(folder) -> dict[str, dict]:
    """Records by episode id, without timings (the only field allowed to differ between runs)."""
    records = read_episodes(folder / "episodes.jsonl")
    return {r["episode_id"]: {k: v for k, v in r.items() if k != "timings"} for r in records}


def _mixed_tasks(n: int = 6) -> list:
    """HOS and HPS tasks, including wrapping, point-like and wide targets."""
    ranges = [(80.0, 100.0), (350.0, 10.0), (200.0, 200.0), (0.0, 360.0), (300.0, 30.0), (10.0, 170.0)]
    tasks = []
    for i in range(n):
        kind = HOS if i % 2 == 0 else HPS
        pitch = (60.0, 89.0) if i % 4 == 0 else (-5.0, 5.0)
        tasks.append(make_task(f"t{i}", kind, panorama=PANORAMA, yaw_range=ranges[i % len(ranges)],
                               pitch_range=pitch if kind == HOS else None))
    return tasks


# ------------------------------------------------------------------------ planning


def test_plan_limit_samples_the_suite_and_shards_partition_it():
    tasks = [make_task(f"t{i}", HOS if i < 5 else HPS, panorama=PANORAMA) for i in range(10)]
    limited = plan_episodes(tasks, limit=8)
    assert len(limited) == 8
    assert {tasks[e.spec.task_index].kind for e in limited} == {HOS, HPS}
    assert {e.spec.episode_id for e in limited} < {e.spec.episode_id for e in plan_episodes(tasks, limit=20)}
    everything = [e.spec.episode_id for e in plan_episodes(tasks)]
    shards = [[e.spec.episode_id for e in plan_episodes(tasks, shard=(i, 3))] for i in range(3)]
    assert sorted(sum(shards, [])) == sorted(everything)
    assert len(set(sum(shards, []))) == len(everything) == 40
    with pytest.raises(ValueError, match="shard"):
        plan_episodes(tasks, shard=(3, 3))


def test_plan_bundles_shared_panoramas_and_never_plays_a_tasks_starts_back_to_back():
    # 12 tasks on 6 panoramas (two tasks each): bundles of 4 panoramas, then 2.
    tasks = [make_task(f"t{i}", panorama=PANORAMA, panorama_id=f"scene{i // 2}") for i in range(12)]
    plan = plan_episodes(tasks, seed=3)
    assert len(plan) == 48 and len({e.spec.episode_id for e in plan}) == 48
    bundles = [e.bundle for e in plan]
    assert bundles == sorted(bundles) and bundles.count(0) == 32 and bundles.count(1) == 16
    for episode in plan:  # a bundle holds whole panoramas
        assert episode.bundle == (int(tasks[episode.spec.task_index].panorama_id[5:]) // 4)
    consecutive = list(zip(plan, plan[1:]))
    assert all(a.spec.task_index != b.spec.task_index for a, b in consecutive)
    # seeded: the same seed plays the same order, another seed another order, same episodes
    assert [e.spec for e in plan_episodes(tasks, seed=3)] == [e.spec for e in plan]
    other = plan_episodes(tasks, seed=4)
    assert [e.spec.episode_id for e in other] != [e.spec.episode_id for e in plan]
    assert {e.spec.episode_id for e in other} == {e.spec.episode_id for e in plan}


def test_a_lock_step_batch_never_holds_two_starts_of_one_task():
    """act_batch sees every view of its batch: another start of the same task would be free looks."""
    from panoseek.envs.eval.runner import _batches

    tasks = [make_task(f"t{i}", panorama=PANORAMA, panorama_id=f"scene{i // 3}") for i in range(12)]
    plan = plan_episodes(tasks, seed=1)
    batches = _batches(plan, batch_size=16)
    assert sum(len(batch) for batch in batches) == len(plan) and max(len(batch) for batch in batches) == 12
    for batch in batches:
        assert len({e.spec.task_index for e in batch}) == len(batch) and len({e.bundle for e in batch}) == 1


# ------------------------------------------------------------------------- judging


def test_oracle_scores_every_episode(tmp_path):
    summary = _run(_mixed_tasks(), "oracle", tmp_path)
    assert summary["overall"]["episodes"] == 24
    assert summary["overall"]["success"] == 1.0
    assert summary["complete"]


def _yaw_share(y0: float, y1: float, tau: float) -> float:
    """Share of yaws judged inside [y0, y1] (DESIGN.md rule, written out independently)."""
    width = 360.0 if abs(y1 - y0) >= 360 else (y1 - y0) % 360.0
    return min(2 * max(width / 2, tau), 360.0) / 360.0


def _pitch_share(p0: float, p1: float, tau: float, on_sphere: bool) -> float:
    half = max(abs(p1 - p0) / 2, tau)
    lo, hi = max((p0 + p1) / 2 - half, -90.0), min((p0 + p1) / 2 + half, 90.0)
    if on_sphere:  # uniform direction: pitch density cos(pitch) / 2
        return (math.sin(math.radians(hi)) - math.sin(math.radians(lo))) / 2
    return (hi - lo) / 180.0


def _chance(tasks, on_sphere: bool = True, widen: bool = True) -> np.ndarray:
    """Per-episode success chance of a uniformly random direction (wrong variants on request)."""
    p = []
    for task in tasks:
        share = _yaw_share(*task.yaw_range, ((30.0 if task.kind == HOS else 10.0) if widen else 0.0))
        if task.kind == HOS:
            share *= _pitch_share(*task.pitch_range, 20.0 if widen else 0.0, on_sphere)
        p += [share] * task.n_starts
    return np.array(p)


def _z(measured: float, p: np.ndarray) -> float:
    return (measured - p.mean()) / (math.sqrt(float(np.sum(p * (1 - p)))) / len(p))


def test_random_agent_success_matches_the_window_measure(tmp_path):
    """Measured success of `random` agrees with the integral of its submit distribution.

    The random agent submits a direction uniform over the sphere; its chance per task
    is the judged window's share of yaw times its share of sin(pitch). The suite is
    chosen so that two plausible wrong judges (pitch uniform in degrees, windows not
    widened to the tolerance) predict values many standard errors away.
    """
    rng = np.random.default_rng(7)
    tasks = []
    for i in range(800):
        kind = HOS if i % 6 else HPS
        y0 = float(rng.uniform(0, 360))
        width = float(rng.choice([0.0, 8.0, 40.0, 120.0, 250.0, 360.0]))
        centre = float(rng.uniform(-30, 30))
        extent = float(rng.choice([0.0, 10.0, 50.0]))
        pitch = (max(centre - extent / 2, -90.0), min(centre + extent / 2, 90.0))
        tasks.append(make_task(f"r{i}", kind, panorama=PANORAMA, yaw_range=(y0, y0 + width if width == 360 else (y0 + width) % 360),
                               pitch_range=pitch if kind == HOS else None))

    summary = _run(tasks, "random", tmp_path)
    p = _chance(tasks)
    assert summary["overall"]["episodes"] == len(p) == 3200
    assert abs(_z(summary["overall"]["success"], p)) < 3.5
    # The test discriminates: wrong judges would be far outside the band.
    assert abs(_z(_chance(tasks, on_sphere=False).mean(), p)) > 6
    assert abs(_z(_chance(tasks, widen=False).mean(), p)) > 6


@pytest.mark.slow
def test_random_agent_on_synth_test_matches_the_window_measure(tmp_path):
    """The same check on the bundled benchmark, all 4,000 episodes (tiny views keep it quick)."""
    from panoseek.scenes import load_suite

    suite = load_suite("synth:test")
    summary = _run(suite, "random", tmp_path, workers=2)
    p = _chance(suite)
    assert summary["overall"]["episodes"] == len(p) == 4000
    assert abs(_z(summary["overall"]["success"], p)) < 3.5
    for kind in (HOS, HPS):
        tasks = [task for task in suite if task.kind == kind]
        assert abs(_z(summary["kinds"][kind]["success"], _chance(tasks))) < 3.5


# --------------------------------------------------------------------- bad agents


class EvilText(str):
    """A string whose methods raise."""

    def __len__(self):
        raise RuntimeError("no length")

    def __str__(self):
        raise RuntimeError("no text")


class EvilDict(dict):
    """A mapping whose accessors raise."""

    def items(self):
        raise RuntimeError("no items")

    def __iter__(self):
        raise RuntimeError("no keys")


class HostileAgent:
    """Returns one kind of bad output per turn, then a valid submission."""

    OUTPUTS = [
        RuntimeError("agent crashed"),
        42,
        None,
        object(),
        b"<answer>rotate(10,0)</answer>",
        "x" * 1_000_000,
        "<answer>rotate(nan,0)</answer>",
        "<answer>submit(1e400,0)</answer>",
        {"submit": 1, "yaw": float("nan"), "pitch": 0.0},
        {"submit": 7, "yaw": 0, "pitch": 0},
        EvilText("<answer>rotate(10,0)</answer>"),
        EvilDict(),
        [float("inf")] * 100,
        10**400,
    ]

    def reset(self, task_info):
        self.turn = 0

    def act(self, observation):
        output = self.OUTPUTS[self.turn % len(self.OUTPUTS)]
        self.turn += 1
        if isinstance(output, Exception):
            raise output
        return output


def test_hostile_outputs_are_invalid_actions_and_the_run_goes_on(tmp_path):
    tasks = _mixed_tasks(2)
    summary = _run(tasks, HostileAgent, tmp_path, settings=EpisodeSettings(view_size=(16, 9), max_turns=10))
    later = _run(tasks, HostileAgent, tmp_path / "later", settings=EpisodeSettings(view_size=(16, 9), max_turns=14),
                 workers=1)
    for record in read_episodes(tmp_path / "later" / "episodes.jsonl"):
        # A str subclass is read as the text it holds, whatever its methods do; the rest are invalid.
        assert [a["valid"] for a in record["actions"]] == [False] * 10 + [True, False, False, False]
        assert record["actions"][10]["raw"] == "<answer>rotate(10,0)</answer>"
    assert later["complete"]
    records = read_episodes(tmp_path / "episodes.jsonl")
    assert len(records) == 8 and summary["complete"]
    for record in records:
        assert record["turns"] == 10 and record["submitted"] is None and not record["success"]
        assert [a["valid"] for a in record["actions"]] == [False] * 10
        assert all(a["error"] for a in record["actions"])
        assert record["headings"] == [record["headings"][0]] * 11  # the head never moved
        assert record["actions"][1]["error"].startswith("an action must be a string or a dict, got int")
        assert "agent crashed" in record["error"]
        assert len(record["actions"][5]["raw"]) < 2100  # the 1 MB reply is truncated
    json.dumps(records)  # everything recorded is plain JSON
    assert summary["overall"]["invalid_actions"] == 80


class FailingResetAgent:
    def reset(self, task_info):
        if task_info["start_yaw"] == 90.0:  # start index 1 of make_task's starts
            raise SystemExit("reset refused")

    def act(self, observation):
        return "<think>here</think><answer>submit(90,0)</answer>"


def test_a_failing_reset_fails_only_that_episode(tmp_path):
    _run([make_task("t0", panorama=PANORAMA)], FailingResetAgent, tmp_path)
    records = {r["start_index"]: r for r in read_episodes(tmp_path / "episodes.jsonl")}
    assert records[1]["error"].startswith("reset: SystemExit") and records[1]["turns"] == 0
    assert not records[1]["success"]
    assert all(records[i]["success"] and records[i]["reward"] == 1.0 for i in (0, 2, 3))


# --------------------------------------------------------------- resume and merge


class InterruptingAgent:
    """The random agent, but Ctrl-C arrives in the first path-search episode starting at yaw 180."""

    def __init__(self):
        self.inner = make_agent("random")

    def reset(self, task_info):
        self.inner.reset(task_info)
        self.stop = task_info["kind"] == HPS and task_info["start_yaw"] == 180.0

    def act(self, observation):
        if self.stop:
            raise KeyboardInterrupt
        return self.inner.act(observation)


def test_resume_after_interrupt_and_torn_line_plays_each_episode_once(tmp_path):
    tasks = _mixed_tasks()
    _run(tasks, "random", tmp_path / "whole")
    run_info = {"suite": "test", "fingerprint": "f0", "agent": "random"}
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(tasks, InterruptingAgent, tmp_path / "resumed", run_info=run_info, settings=TINY, progress=False)
    partial = read_episodes(tmp_path / "resumed" / "episodes.jsonl")
    assert 0 < len(partial) < 24
    with open(tmp_path / "resumed" / "episodes.jsonl", "a") as handle:
        handle.write('{"episode_id": "t5#0", "task_id": "t5", "act')  # a write cut short
    summary = _run(tasks, "random", tmp_path / "resumed")
    assert summary["complete"] and summary["overall"]["episodes"] == 24
    assert _results(tmp_path / "resumed") == _results(tmp_path / "whole")


def test_a_folder_of_another_run_is_refused(tmp_path):
    tasks = _mixed_tasks(2)
    _run(tasks, "random", tmp_path)
    with pytest.raises(RecordsError, match="agent: 'random' != 'oracle'"):
        _run(tasks, "oracle", tmp_path)
    with pytest.raises(RecordsError, match="seed"):
        _run(tasks, "random", tmp_path, settings=EpisodeSettings(view_size=(16, 9), seed=1))


def test_shards_merged_equal_a_single_run(tmp_path):
    tasks = _mixed_tasks()
    single = _run(tasks, "random", tmp_path / "single")
    shards = [tmp_path / f"shard{i}" for i in range(3)]
    for i, folder in enumerate(shards):
        _run(tasks, "random", folder, shard=(i, 3))
    merged = merge_folders(tmp_path / "merged", shards)
    assert _results(tmp_path / "merged") == _results(tmp_path / "single")
    for key in ("overall", "kinds", "complete", "fingerprint", "agent"):
        assert merged[key] == single[key]
    with pytest.raises(RecordsError, match="is in both"):
        merge_folders(tmp_path / "twice", [shards[0], shards[0]])
    _run(tasks, "oracle", tmp_path / "other", shard=(1, 3))
    with pytest.raises(RecordsError, match="different runs"):
        merge_folders(tmp_path / "mixed", [shards[0], tmp_path / "other"])


def test_two_workers_give_the_same_records_as_one(tmp_path):
    tasks = _mixed_tasks()
    _run(tasks, "sweep", tmp_path / "one")
    _run(tasks, "sweep", tmp_path / "two", workers=2)
    assert _results(tmp_path / "two") == _results(tmp_path / "one")


def test_lock_step_batches_give_the_same_records_as_one_at_a_time(tmp_path):
    tasks = _mixed_tasks()
    _run(tasks, "sweep", tmp_path / "one")
    _run(tasks, "sweep", tmp_path / "batched", batch_size=5)
    assert _results(tmp_path / "batched") == _results(tmp_path / "one")


# ------------------------------------------------------------------------ records


def test_record_fields_and_timings(tmp_path):
    _run([make_task("t0", panorama=PANORAMA)], "sweep", tmp_path)
    record = read_episodes(tmp_path / "episodes.jsonl")[0]
    assert record["episode_id"] == "t0#0" and record["level_name"] == "Hard" and record["start_yaw"] == 0.0
    assert len(record["headings"]) == record["turns"] + 1 == len(record["actions"]) + 1
    assert record["actions"][-1]["parsed"]["kind"] == "submit"
    timings = record["timings"]
    assert timings["render_s"] > 0 and timings["agent_s"] > 0
    assert timings["total_s"] >= timings["agent_s"] + timings["env_s"]
    assert timings["env_s"] >= timings["render_s"]


def test_read_episodes_drops_only_a_torn_last_line(tmp_path):
    path = tmp_path / "episodes.jsonl"
    path.write_text('{"episode_id": "a#0"}\n{"episode_id": "a#1"}\n{"episode_id": "a#')
    assert [r["episode_id"] for r in read_episodes(path)] == ["a#0", "a#1"]
    path.write_text('{"episode_id": "a#0"}\nnot json\n{"episode_id": "a#1"}\n')
    with pytest.raises(RecordsError, match="line 2"):
        read_episodes(path)
    path.write_text('{"episode_id": "a#0"}\n{"episode_id": "a#0"}\n')
    with pytest.raises(RecordsError, match="lines 1 and 2"):
        read_episodes(path)


def test_summary_counts_and_standard_errors():
    records = [
        {"episode_id": f"h{i}", "kind": "HOS", "level": i % 3, "success": i < 3, "turns": 2,
         "submitted": [0, 0], "yaw_error": 1.0, "pitch_error": 3.0, "actions": []}
        for i in range(6)
    ] + [{"episode_id": "p0", "kind": "HPS", "level": 3, "success": False, "turns": 10, "submitted": None,
          "yaw_error": None, "pitch_error": None, "actions": [{"valid": False}], "error": "boom"}]
    summary = summarize(records, {"agent": "a", "suite": "s", "fingerprint": "f"}, expected=7)
    assert summary["overall"]["successes"] == 3 and summary["overall"]["episodes"] == 7
    assert summary["overall"]["stderr"] == pytest.approx(math.sqrt(3 / 7 * 4 / 7 / 7))
    hos = summary["kinds"]["HOS"]
    assert hos["success"] == 0.5 and list(hos["levels"]) == ["Easy", "Medium", "Hard"]
    assert hos["levels"]["Easy"]["successes"] == 1 and hos["mean_pitch_error"] == 3.0
    hps = summary["kinds"]["HPS"]
    assert list(hps["levels"]) == ["Extreme"] and hps["invalid_actions"] == 1 and hps["agent_errors"] == 1
    assert hps["mean_yaw_error"] is None and summary["complete"]


def test_a_batch_loads_a_shared_panorama_once(tmp_path):
    """The batch's environments share one panorama cache: episodes of two tasks on one
    panorama, played side by side, decode it once."""
    loads = []

    def panorama():
        loads.append(1)
        return PANORAMA

    tasks = [make_task(f"t{i}", panorama=panorama, panorama_id="scene0", start_yaws=(0.0,), levels=(0,)) for i in range(2)]
    _run(tasks, "sweep", tmp_path, batch_size=2)
    assert len(read_episodes(tmp_path / "episodes.jsonl")) == 2 and len(loads) == 1
