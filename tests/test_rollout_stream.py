"""The streaming episode loop: slots refilled as episodes end, specs read lazily, the
episode named when its environment fails, and ``play`` keeping spec i in env i."""

from __future__ import annotations

import pytest

from conftest import make_task, smooth_panorama
from panoseek.envs.agent import rotate, submit
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.rollout import EpisodeError, episode_spec, play, play_stream

PANORAMA = smooth_panorama(64)
VIEW = (16, 9)


class Turner:
    """Rotates ``turns`` times, then submits where it looks."""

    def __init__(self, turns: int = 2) -> None:
        self.turns = turns

    def reset(self, task_info):
        pass

    def act(self, observation):
        return rotate(30.0, 0.0) if observation["turn"] < self.turns else submit(*observation["heading"])


class FailsAtReset(Turner):
    def reset(self, task_info):
        raise RuntimeError("no model")


def _tasks(prefix: str = "t", count: int = 4):
    return [make_task(f"{prefix}{i}", panorama=PANORAMA) for i in range(count)]


def _env(tasks):
    return PanoramaSearchEnv(tasks, view_size=VIEW, diagnostics=True)


def _without_timings(record):
    return {key: value for key, value in record.items() if key != "timings"}


def test_a_stream_plays_every_spec_once_with_the_records_of_one_at_a_time():
    tasks = _tasks()
    specs = [episode_spec(task, index, start, 0) for index, task in enumerate(tasks) for start in range(2)]
    lengths = iter([0, 3, 1, 2, 4, 0, 2, 1])
    agents = {}

    def factory():
        agent = Turner(next(lengths))
        agents[len(agents)] = agent.turns
        return agent

    streamed = dict(play_stream([_env(tasks) for _ in range(3)], factory, specs))
    assert sorted(streamed) == list(range(len(specs)))
    for position, spec in enumerate(specs):
        [alone] = play([_env(tasks)], [Turner(agents[position])], [spec])
        assert _without_timings(streamed[position].record) == _without_timings(alone.record)


class BatchLogger(Turner):
    """Answered in batches; logs the instructions of each batch call."""

    calls: list[list[str]] = []

    def reset(self, task_info):
        self.instruction = task_info["instruction"]

    @staticmethod
    def act_batch(agents, observations):
        BatchLogger.calls.append([agent.instruction for agent in agents])
        return [agent.act(observation) for agent, observation in zip(agents, observations)]


def test_specs_are_read_lazily_and_exclusive_keys_never_play_together():
    tasks = [make_task(f"t{i}", panorama=PANORAMA, instruction=f"Find thing {i}.") for i in range(4)]
    pulled = []

    def specs():
        for start in range(2):
            for index, task in enumerate(tasks):
                pulled.append((index, start))
                yield episode_spec(task, index, start, 0)

    BatchLogger.calls = []
    stream = play_stream([_env(tasks) for _ in range(2)], lambda: BatchLogger(1), specs(),
                         exclusive=lambda spec: spec.task_index % 2)
    next(stream)
    assert len(pulled) <= 3  # two slots, at most one spec waiting for its key
    assert len(list(stream)) == 7 and len(pulled) == 8
    keys = [[int(text.split()[-1].rstrip(".")) % 2 for text in call] for call in BatchLogger.calls]
    assert all(len(set(call)) == len(call) for call in keys) and max(len(call) for call in keys) == 2


def test_an_environment_failure_names_its_episode():
    tasks = _tasks(count=2)
    broken = make_task("broken", panorama=lambda: (_ for _ in ()).throw(OSError("disk gone")))
    tasks.append(broken)
    specs = [episode_spec(task, index, 0, 0) for index, task in enumerate(tasks)]
    with pytest.raises(EpisodeError, match=r"episode broken#0: OSError: disk gone"):
        list(play_stream([_env(tasks)], lambda: Turner(1), specs))


def test_play_keeps_spec_i_in_env_i_when_an_earlier_agent_fails_at_reset():
    first, second = _tasks("a", 1), _tasks("b", 1)
    spec = episode_spec(first[0], 0, 0, 0)  # task 0 of each environment
    rollouts = play([_env(first), _env(second)], [FailsAtReset(), Turner(1)], [spec, spec])
    assert rollouts[0].record["error"].startswith("reset: RuntimeError: no model")
    assert rollouts[1].record["task_id"] == "b0" and rollouts[1].record["turns"] == 2
